/**
 * How big the hub download of a model is, asked before downloading it (the first-run question).
 * Kept apart from the worker's hub client (server/model/hub.ts), which the extension bundle must not
 * pull in: the same URL layout (`${HF_ENDPOINT}/${repo}/resolve/${revision}/${file}`), HF_TOKEN,
 * and the same weights order (model.safetensors, else onnx/model.onnx).
 */
const WEIGHTS = ['model.safetensors', 'onnx/model.onnx'];

/**
 * The weights file a default download of `id` (org/name) fetches and its size, by HEAD requests;
 * `bytes` is undefined when the hub does not say, the result undefined when it has neither file. The
 * hub answers an LFS file with a redirect whose first response carries `x-linked-size`; a plain
 * server sends Content-Length. Throws when the hub cannot be reached, so the caller can say so.
 */
export async function hubWeightsSize(
  id: string,
  opts: { endpoint?: string; signal?: AbortSignal } = {},
): Promise<{ file: string; bytes?: number } | undefined> {
  const endpoint = (opts.endpoint ?? (process.env.HF_ENDPOINT || 'https://huggingface.co')).replace(/\/+$/, '');
  const headers: Record<string, string> = { 'user-agent': 'vit-lens', 'accept-encoding': 'identity' };
  const token = process.env.HF_TOKEN || process.env.HUGGING_FACE_HUB_TOKEN;
  if (token) headers.authorization = `Bearer ${token}`;
  for (const file of WEIGHTS) {
    const url = `${endpoint}/${id.split('/').map(encodeURIComponent).join('/')}/resolve/main/${file}`;
    let res: Response;
    try {
      res = await fetch(url, { method: 'HEAD', headers, signal: opts.signal, redirect: 'follow' });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new Error(`cannot reach ${url} (${cause?.code ?? cause?.message ?? (err as Error).message})`);
    }
    if (res.status === 404) continue;
    if (!res.ok) throw new Error(`${url} answered HTTP ${res.status}`);
    const size = Number(res.headers.get('x-linked-size') ?? res.headers.get('content-length') ?? NaN);
    return { file, bytes: Number.isFinite(size) && size > 0 ? size : undefined };
  }
  return undefined;
}

/** "346.3 MB", "522.7 kB" (as the worker's messages write sizes). */
export function formatSize(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} kB`;
  return `${n} bytes`;
}
