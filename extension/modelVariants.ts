/**
 * The weight precisions (vitLens.dtype) a model offers, with their size, for the Select Model
 * picker. Mirrors how the worker resolves a model (server/model/modelSource.ts; the extension
 * cannot import server code): a Hugging Face folder with model.safetensors, a model.safetensors
 * file and a Google .npz are built from their weights, in any of fp32/fp16/q8, so their sizes are
 * estimates from the parameter count; a transformers.js folder without weights offers the onnx/
 * variant files that are present, at their size on disk. A single .onnx file offers none.
 * Only headers are read (safetensors' JSON header, the zip's central directory), never weights.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import yauzl from 'yauzl';
import type { Dtype } from '../common/options';

export type { Dtype } from '../common/options';

export interface ModelVariant {
  dtype: Dtype;
  bytes: number;
  /** transformers.js layout: the variant file, relative to the folder. */
  file?: string;
  /** Built from weights: `bytes` is what our builder will write, estimated. */
  estimated: boolean;
}

/** transformers.js's file in onnx/ for each dtype (as TRANSFORMERS_JS_FILES in modelSource.ts). */
export const TRANSFORMERS_JS_FILES: Record<Dtype, string> = {
  fp32: 'model.onnx',
  fp16: 'model_fp16.onnx',
  q8: 'model_quantized.onnx',
};

/** Parameters of a model built from weights: all of them, and those q8 stores as int8 (the blocks' linear layers). */
export interface ParamCount {
  total: number;
  /** Elements of the encoder blocks' linear weights, and their output channels (one fp32 scale + one int8 zero each). */
  q8: { elements: number; channels: number };
  /** Encoder blocks: the graph's structure grows with them. */
  layers: number;
}

/** The graph's nodes and names, measured on our builds of the test models (2 and 6 blocks): about 5 kB a block, 6 kB with q8's extra ops. */
const GRAPH_BYTES = { base: 2_500, perLayer: 5_000, perLayerQ8: 6_200 };

/**
 * What the builder writes per dtype: fp32 4 bytes a parameter; fp16 2; q8 1 for the blocks'
 * linear weights plus 5 bytes per output channel, 4 for everything else; and the graph's structure.
 */
export function estimatedBuildBytes(p: ParamCount): Record<Dtype, number> {
  const rest = p.total - p.q8.elements;
  const graph = GRAPH_BYTES.base + GRAPH_BYTES.perLayer * p.layers;
  const graphQ8 = GRAPH_BYTES.base + GRAPH_BYTES.perLayerQ8 * p.layers;
  return {
    fp32: 4 * p.total + graph,
    fp16: 2 * p.total + graph,
    q8: p.q8.elements + 5 * p.q8.channels + 4 * rest + graphQ8,
  };
}

/** The variants `spec` (the vitLens.model value) offers; [] for a single .onnx, a hub id or anything unreadable. */
export async function listModelVariants(spec: string): Promise<ModelVariant[]> {
  const stat = await fs.stat(spec).catch(() => undefined);
  if (!stat) return [];
  try {
    if (stat.isDirectory()) return await folderVariants(spec);
    if (path.basename(spec) === 'model.safetensors') return await folderVariants(path.dirname(spec));
    if (path.extname(spec).toLowerCase() === '.npz') return built(await npzParams(spec));
  } catch {
    // A broken model is reported by the worker when it loads; the picker just offers no variants.
  }
  return [];
}

async function folderVariants(dir: string): Promise<ModelVariant[]> {
  const hasConfig = await exists(path.join(dir, 'config.json'));
  const weights = path.join(dir, 'model.safetensors');
  // With config.json, the weights win over onnx/ (as in modelSource.ts's resolveFolder).
  if (hasConfig && (await exists(weights))) return built(await safetensorsParams(weights));
  const out: ModelVariant[] = [];
  for (const [dtype, name] of Object.entries(TRANSFORMERS_JS_FILES) as [Dtype, string][]) {
    const file = path.join(dir, 'onnx', name);
    const size = await fileSize(file);
    if (size === undefined) continue;
    // Exports over 2 GB keep their weights beside the graph: model.onnx_data, model.onnx_data_1, …
    const siblings = await fs.readdir(path.join(dir, 'onnx')).catch(() => [] as string[]);
    let bytes = size;
    for (const s of siblings)
      if (s.startsWith(`${name}_data`) || s === `${name}.data`)
        bytes += (await fileSize(path.join(dir, 'onnx', s))) ?? 0;
    out.push({ dtype, bytes, file: `onnx/${name}`, estimated: false });
  }
  return out;
}

function built(p: ParamCount): ModelVariant[] {
  const sizes = estimatedBuildBytes(p);
  return (['fp32', 'fp16', 'q8'] as const).map(dtype => ({ dtype, bytes: sizes[dtype], estimated: true }));
}

/** From the JSON header only: 8 bytes of little-endian length, then {name: {dtype, shape, data_offsets}}. */
export async function safetensorsParams(file: string): Promise<ParamCount> {
  const fh = await fs.open(file, 'r');
  try {
    const len = Buffer.alloc(8);
    await fh.read(len, 0, 8, 0);
    const n = Number(len.readBigUInt64LE());
    if (n > 100 * 2 ** 20) throw new Error(`${file}: safetensors header of ${n} bytes`);
    const header = Buffer.alloc(n);
    await fh.read(header, 0, n, 8);
    const tensors = JSON.parse(header.toString('utf8')) as Record<string, { shape?: number[] }>;
    const count: ParamCount = { total: 0, q8: { elements: 0, channels: 0 }, layers: 0 };
    for (const [name, t] of Object.entries(tensors)) {
      const layer = /encoder\.layer\.(\d+)\./.exec(name);
      if (layer) count.layers = Math.max(count.layers, Number(layer[1]) + 1);
      if (name === '__metadata__' || !Array.isArray(t.shape)) continue;
      const elements = t.shape.reduce((a, b) => a * b, 1);
      count.total += elements;
      // vit.encoder.layer.N.{attention.attention.query|key|value,attention.output.dense,intermediate.dense,output.dense}.weight
      if (/encoder\.layer\.\d+\..*\.weight$/.test(name) && t.shape.length === 2) {
        count.q8.elements += elements;
        count.q8.channels += t.shape[0];
      }
    }
    return count;
  } finally {
    await fh.close();
  }
}

/**
 * From the zip's central directory: each array's uncompressed size, taken as float32 (as Google's
 * checkpoints are), less the .npy header; the blocks' kernels also have their header read for
 * their shape. Optimizer state (opt/…) is not part of the model.
 */
export async function npzParams(file: string): Promise<ParamCount> {
  const zip = await yauzl.openPromise(file, { lazyEntries: true });
  const count: ParamCount = { total: 0, q8: { elements: 0, channels: 0 }, layers: 0 };
  try {
    for await (const e of zip.eachEntry()) {
      if (!e.fileName.endsWith('.npy') || e.fileName.startsWith('opt/')) continue;
      const elements = Math.max(0, Math.round((e.uncompressedSize - 128) / 4)); // numpy pads the header to 128 bytes
      count.total += elements;
      const block = /encoderblock_(\d+)\//.exec(e.fileName);
      if (block) count.layers = Math.max(count.layers, Number(block[1]) + 1);
      // Transformer/encoderblock_N/{MultiHeadDotProductAttention_1/{query,key,value,out},MlpBlock_3/Dense_0|1}/kernel
      if (block && e.fileName.endsWith('/kernel.npy')) {
        const shape = await npyShape(zip, e);
        count.q8.elements += elements;
        // Output channels: query/key/value kernels are (in, heads, head_dim), the others (…, out).
        count.q8.channels += /\/(query|key|value)\//.test(e.fileName) ? elements / shape[0] : shape[shape.length - 1];
      }
    }
  } finally {
    zip.close();
  }
  return count;
}

/** An .npy array's shape, from the header at its start ("{'descr': '<f4', 'fortran_order': False, 'shape': (768, 12, 64), }"). */
async function npyShape(zip: yauzl.ZipFile, entry: yauzl.Entry): Promise<number[]> {
  const stream = await zip.openReadStreamPromise(entry);
  let head = '';
  for await (const chunk of stream) {
    head += Buffer.from(chunk as Buffer).toString('latin1');
    if (head.includes('\n') || head.length > 4096) break;
  }
  stream.destroy();
  const m = /'shape':\s*\(([^)]*)\)/.exec(head);
  if (!m) throw new Error(`${entry.fileName}: no .npy shape in its header`);
  return m[1]
    .split(',')
    .filter(d => d.trim())
    .map(Number);
}

/** "343 MB" / "1.2 GB" / "871 kB": decimal units, as file managers show. */
export function formatSize(bytes: number): string {
  if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(1)} GB`;
  if (bytes >= 1e6) return `${Math.round(bytes / 1e6)} MB`;
  return `${Math.max(1, Math.round(bytes / 1e3))} kB`;
}

async function exists(file: string): Promise<boolean> {
  return (await fileSize(file)) !== undefined;
}

async function fileSize(file: string): Promise<number | undefined> {
  const st = await fs.stat(file).catch(() => undefined);
  return st?.isFile() ? st.size : undefined;
}
