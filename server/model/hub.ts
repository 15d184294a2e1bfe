/**
 * Hugging Face hub downloads into a local cache, following the conventions of Hugging Face's own
 * tools: `${HF_ENDPOINT}/${repo}/resolve/${revision}/${file}`, HF_TOKEN, HF_HUB_OFFLINE, and
 * `.incomplete` files that are resumed with a Range request.
 *
 * Cache layout: `<cache>/hub/<org>--<name>/<revision>/<file>`. A file that is present there is complete
 * (it only gets its name by a rename after the last byte), so it is never fetched again; a cached
 * `main` is therefore not refreshed: delete its folder to pick up a newer upload.
 */
import { existsSync, promises as fsp } from 'fs';
import { processAlive } from '../util/processAlive';
import * as os from 'os';
import * as path from 'path';
import { looksLikeHubId, parseHubId } from '../../common/modelSpec';

export interface HubProgress {
  /** Path inside the repository, e.g. `model.safetensors`. */
  file: string;
  /** Bytes on disk so far, including a resumed prefix. */
  received: number;
  total?: number;
}

export interface DownloadOptions {
  cacheDir?: string;
  /** Never touch the network (also on with HF_HUB_OFFLINE=1). */
  offline?: boolean;
  /** Download exactly these repository files, all required, instead of the default model files. */
  files?: string[];
  /** Called at most every ~100 ms while bytes arrive, and once when each file completes. */
  onProgress?: (p: HubProgress) => void;
  /** Aborting keeps the `.incomplete` file, so the next call resumes it. */
  signal?: AbortSignal;
  /** Overrides HF_ENDPOINT. */
  endpoint?: string;
}

/** One thing the folder needs: the first of `alternatives` the hub has. */
interface Step {
  alternatives: string[];
  required: boolean;
}

/**
 * Weights: model.safetensors is preferred and onnx/model.onnx (transformers.js layout) is fetched only
 * when the repo has no safetensors. Our own ONNX build of the safetensors has exact fp32 weights and
 * known attention outputs, and fetching both would double a ~350 MB download for nothing.
 */
const DEFAULT_STEPS: Step[] = [
  { alternatives: ['config.json'], required: true },
  { alternatives: ['preprocessor_config.json'], required: false },
  { alternatives: ['model.safetensors', 'onnx/model.onnx'], required: true },
];

/** Optional files the hub answered 404 for, so a later call does not ask again. */
const ABSENT_LIST = '.absent.json';
const PROGRESS_INTERVAL_MS = 100;

/** A hub id, not a local path (common/modelSpec.ts says what a hub id looks like). */
export function isHubId(s: string): boolean {
  return looksLikeHubId(s) && !existsSync(s);
}

export function hubEndpoint(): string {
  return (process.env.HF_ENDPOINT || 'https://huggingface.co').replace(/\/+$/, '');
}

/** $VIT_LENS_CACHE, else $XDG_CACHE_HOME/vit-lens, else ~/.cache/vit-lens; an empty variable counts as unset (XDG spec). For the engine and the trainer. */
export function defaultCacheDir(): string {
  if (process.env.VIT_LENS_CACHE) return process.env.VIT_LENS_CACHE;
  return path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'vit-lens');
}

/** Where `id` lives (or would live) in the cache. */
export function hubCacheFolder(id: string, cacheDir = defaultCacheDir()): string {
  const { org, name, revision } = parseHubId(id);
  // Revisions such as refs/pr/1 contain slashes; keep them one folder deep.
  return path.join(cacheDir, 'hub', `${org}--${name}`, revision.replace(/\//g, '--'));
}

export function hubFileUrl(endpoint: string, repo: string, revision: string, file: string): string {
  const encodedFile = file.split('/').map(encodeURIComponent).join('/');
  return `${endpoint.replace(/\/+$/, '')}/${repo}/resolve/${encodeURIComponent(revision)}/${encodedFile}`;
}

function isOfflineEnv(): boolean {
  return /^(1|true|yes|on)$/i.test(process.env.HF_HUB_OFFLINE ?? '');
}

/** Download (or find in the cache) a model repo's files; returns the local folder. */
export async function downloadHubModel(id: string, opts: DownloadOptions = {}): Promise<string> {
  const folder = hubCacheFolder(id, opts.cacheDir ?? defaultCacheDir());
  const pending = await pendingFiles(folder, opts);
  if (opts.offline ?? isOfflineEnv()) {
    if (pending.some(s => s.required))
      throw new Error(`Model "${id}" is not in the cache (${folder}) and offline mode is on`);
    return folder;
  }
  if (pending.length === 0) return folder;
  // The CLI and the editor's worker may fetch the same model at once; both writing one .incomplete
  // file would corrupt it, so the second waits for the first and then finds the files in the cache.
  return withFolderLock(folder, opts.signal, () => fetchPending(id, folder, opts));
}

async function pendingFiles(folder: string, opts: DownloadOptions): Promise<Step[]> {
  const steps = opts.files
    ? opts.files.map(f => ({ alternatives: [checkRepoPath(f)], required: true }))
    : DEFAULT_STEPS;
  const absent = await readAbsentList(folder);
  const pending: Step[] = [];
  for (const step of steps) {
    const local = await Promise.all(step.alternatives.map(f => isFile(path.join(folder, f))));
    const knownAbsent = !step.required && step.alternatives.every(f => absent.has(f));
    if (!local.some(Boolean) && !knownAbsent) pending.push(step);
  }
  return pending;
}

const LOCK_FILE = '.download.lock';

async function withFolderLock<T>(folder: string, signal: AbortSignal | undefined, work: () => Promise<T>): Promise<T> {
  await fsp.mkdir(folder, { recursive: true });
  const lock = path.join(folder, LOCK_FILE);
  for (;;) {
    signal?.throwIfAborted();
    try {
      await fsp.writeFile(lock, String(process.pid), { flag: 'wx' });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const owner = Number(await fsp.readFile(lock, 'utf8').catch(() => ''));
      if (owner && owner !== process.pid && !processAlive(owner)) {
        await fsp.rm(lock, { force: true }); // left by a process that died mid-download
        continue;
      }
      await new Promise(r => setTimeout(r, 200));
    }
  }
  try {
    return await work();
  } finally {
    await fsp.rm(lock, { force: true });
  }
}

async function fetchPending(id: string, folder: string, opts: DownloadOptions): Promise<string> {
  const { repo, revision } = parseHubId(id);
  // Looked at again under the lock: whoever held it before may have fetched these files.
  const pending = await pendingFiles(folder, opts);
  if (pending.length === 0) return folder;
  const absent = await readAbsentList(folder);

  const endpoint = (opts.endpoint ?? hubEndpoint()).replace(/\/+$/, '');
  const ctx: FetchContext = {
    id,
    folder,
    signal: opts.signal,
    onProgress: throttled(opts.onProgress),
    headers: requestHeaders(),
    url: file => hubFileUrl(endpoint, repo, revision, file),
  };
  for (const step of pending) {
    let found = false;
    for (const file of step.alternatives) {
      if (await fetchFile(ctx, file)) {
        found = true;
        break;
      }
    }
    if (found) continue;
    if (step.required) {
      const urls = step.alternatives.map(f => ctx.url(f)).join(', ');
      const what =
        step.alternatives.length > 1
          ? `none of ${step.alternatives.join(', ')} exist`
          : `${step.alternatives[0]} does not exist`;
      throw new Error(`Model "${id}": ${what} on the hub (HTTP 404 for ${urls}); check the model id and revision`);
    }
    step.alternatives.forEach(f => absent.add(f));
  }
  await fsp.writeFile(path.join(folder, ABSENT_LIST), JSON.stringify([...absent]));
  return folder;
}

interface FetchContext {
  id: string;
  folder: string;
  signal?: AbortSignal;
  onProgress: (p: HubProgress, final: boolean) => void;
  headers: Record<string, string>;
  url: (file: string) => string;
}

/** Fetch one file into place through `<file>.incomplete`; false when the hub has no such file (404). */
async function fetchFile(ctx: FetchContext, file: string): Promise<boolean> {
  const url = ctx.url(file);
  const dest = path.join(ctx.folder, ...file.split('/'));
  const partial = `${dest}.incomplete`;
  await fsp.mkdir(path.dirname(dest), { recursive: true });
  let start = (await fsp.stat(partial).catch(() => undefined))?.size ?? 0;

  // At most two rounds: a resume the server cannot honour (416, odd Content-Range) restarts from zero once.
  for (let round = 0; round < 2; round++) {
    const headers = { ...ctx.headers, ...(start > 0 ? { range: `bytes=${start}-` } : {}) };
    let res: Response;
    try {
      res = await fetch(url, { headers, signal: ctx.signal, redirect: 'follow' });
    } catch (err) {
      throw ctx.signal?.aborted ? err : networkError(ctx, url, err);
    }
    if (res.status === 404) {
      await res.body?.cancel();
      return false;
    }
    if (res.status === 416 && start > 0) {
      await res.body?.cancel();
      start = 0;
      continue;
    }
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel();
      const hint = process.env.HF_TOKEN ? 'HF_TOKEN is set but was refused' : 'set HF_TOKEN if it is private or gated';
      throw new Error(
        `Model "${ctx.id}": ${url} answered HTTP ${res.status}; the repository does not exist or needs access (${hint})`,
      );
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw new Error(`Model "${ctx.id}": ${url} answered HTTP ${res.status} ${res.statusText}`);
    }

    let total: number | undefined;
    if (res.status === 206) {
      const range = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(res.headers.get('content-range') ?? '');
      if (!range || Number(range[1]) !== start) {
        await res.body?.cancel();
        start = 0;
        continue;
      }
      total = range[2] === '*' ? undefined : Number(range[2]);
    } else {
      // 200 to a Range request: the server ignored it, so the body is the whole file.
      start = 0;
      const length = res.headers.get('content-length');
      const encoded = (res.headers.get('content-encoding') ?? 'identity') !== 'identity';
      total = length && !encoded ? Number(length) : undefined;
    }
    const received = await writeBody(ctx, res, file, url, partial, start, total);
    if (total !== undefined && received !== total) {
      throw new Error(
        `Model "${ctx.id}": download of ${url} ended at ${received} of ${total} bytes; ${partial} is kept and the next attempt resumes it`,
      );
    }
    await fsp.rename(partial, dest);
    return true;
  }
  throw new Error(`Model "${ctx.id}": ${url} did not honour a request to resume at byte ${start}`);
}

/** Stream the body into `partial` (appending after `start` bytes); returns the bytes on disk. */
async function writeBody(
  ctx: FetchContext,
  res: Response,
  file: string,
  url: string,
  partial: string,
  start: number,
  total: number | undefined,
): Promise<number> {
  const handle = await fsp.open(partial, start > 0 ? 'a' : 'w');
  let received = start;
  try {
    if (res.body) {
      for await (const chunk of res.body) {
        await handle.write(chunk);
        received += chunk.byteLength;
        ctx.onProgress({ file, received, total }, false);
      }
    }
  } catch (err) {
    if (ctx.signal?.aborted) throw err;
    const reason = describeCause(err);
    throw new Error(
      `Model "${ctx.id}": download of ${url} was interrupted after ${received} bytes (${reason}); ` +
        `${partial} is kept and the next attempt resumes it`,
    );
  } finally {
    await handle.close();
  }
  ctx.onProgress({ file, received, total: total ?? received }, true);
  return received;
}

function networkError(ctx: FetchContext, url: string, err: unknown): Error {
  return new Error(
    `Model "${ctx.id}": cannot reach ${url} (${describeCause(err)}). Files are cached in ${ctx.folder}. ` +
      `Work offline with --offline (HF_HUB_OFFLINE=1) once the model is cached, or set HF_ENDPOINT to a reachable mirror.`,
  );
}

/** fetch() reports "fetch failed" and hides the useful part (ECONNREFUSED, ENOTFOUND) in `cause`. */
function describeCause(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (err as Error).message ?? String(err);
}

function requestHeaders(): Record<string, string> {
  // identity: a compressed body has no byte ranges to resume and its Content-Length is not the file size.
  const headers: Record<string, string> = { 'user-agent': 'vit-lens', 'accept-encoding': 'identity' };
  const token = process.env.HF_TOKEN || process.env.HUGGING_FACE_HUB_TOKEN;
  if (token) headers.authorization = `Bearer ${token}`;
  return headers;
}

function throttled(onProgress: DownloadOptions['onProgress']): FetchContext['onProgress'] {
  let last = 0;
  return (p, final) => {
    if (!onProgress) return;
    const now = Date.now();
    if (!final && now - last < PROGRESS_INTERVAL_MS) return;
    last = now;
    onProgress(p);
  };
}

function checkRepoPath(file: string): string {
  if (!file || path.isAbsolute(file) || file.split(/[\\/]/).some(part => part === '..' || part === '')) {
    throw new Error(`"${file}" is not a file path inside a repository`);
  }
  return file;
}

async function isFile(p: string): Promise<boolean> {
  return (await fsp.stat(p).catch(() => undefined))?.isFile() ?? false;
}

async function readAbsentList(folder: string): Promise<Set<string>> {
  try {
    const list = JSON.parse(await fsp.readFile(path.join(folder, ABSENT_LIST), 'utf8'));
    return new Set(Array.isArray(list) ? list.filter((f): f is string => typeof f === 'string') : []);
  } catch {
    return new Set();
  }
}
