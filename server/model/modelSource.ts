/**
 * Turns what a user names as MODEL into a ready-to-run ViT graph:
 *   - an `.onnx` file from any exporter (attention outputs are tapped in),
 *   - a Hugging Face folder (`model.safetensors` and/or `onnx/model.onnx`),
 *   - a Google `vision_transformer` `.npz` checkpoint,
 *   - a hub id `org/name[@revision]` (downloaded into the cache, then treated as a folder).
 * Weights (safetensors, npz) are built into ONNX by our exporter, and the build is cached under the
 * cache dir keyed by the weights' content hash, so the second load is a file read. Weights over
 * EXTERNAL_DATA_ABOVE are built into an external data file beside the graph (`<key>.onnx.data`).
 */
import { createHash } from 'crypto';
import { onnx } from 'onnx-proto';
import { promises as fs } from 'fs';
import * as path from 'path';
import { defaultPreprocess, PreprocessConfig, readPreprocessorConfig } from '../preprocess';
import { loadGoogleNpz } from '../formats/googleNpz';
import { archAndLabelsFromHfFolder, loadHfWeights } from '../formats/hfSafetensors';
import {
  attentionOutputName,
  buildVitOnnx,
  BUILDER_VERSION,
  externalDataSize,
  fusedAttentionOutputName,
} from './onnxBuilder';
import { HEAD_FUSIONS, type Dtype, type HeadFusion } from '../../common/options';
import { outputClassCount, tapAttention } from './attentionTap';
import { defaultCacheDir, downloadHubModel } from './hub';
import { classifyModelSpec, extensionOf } from '../../common/modelSpec';
import { formatBytes } from '../util/regularFile';
import type { ViTArch } from './vitConfig';
import type { WeightMap } from './tensor';
import { writeFileAtomic } from '../util/atomicFile';
import { processAlive } from '../util/processAlive';
import { hashFileRemembered } from '../util/hashFile';
import { MAX_CONFIG_FILE_BYTES, readModelFile } from '../util/regularFile';

export type ModelKind = 'onnx' | 'hf-folder' | 'npz' | 'hub';

export interface ResolvedModel {
  /** What the user passed. */
  spec: string;
  kind: ModelKind;
  /** Short name for status bars and logs. */
  name: string;
  /** The ONNX graph to run, with attention outputs when any could be found. */
  onnx: Uint8Array;
  /** The graph's file, set when its weights are in external data beside it: the session must then be made from the file. */
  onnxFile?: string;
  inputName: string;
  logitsName: string;
  attentionNames: string[];
  /** Outputs with each layer's heads already fused ([N, T, T]), present in graphs we built. */
  fusedAttentionNames?: Record<HeadFusion, string[]>;
  /** Heads per layer, when known before running (rank-3 attention outputs need it, or get it from the batch size). */
  numHeads?: number;
  patchSize?: number;
  imageSize: [number, number];
  labels: string[];
  labelsFrom: string;
  preprocess: PreprocessConfig;
  arch?: ViTArch;
  /** Why explain cannot work with this model, when it cannot. */
  explainUnavailable?: string;
  /** The .onnx file an `onnx` model was read from, before attention outputs were tapped in (class relevance recovers its weights from it). */
  originalOnnxFile?: string;
  /** Where our exporter's build of the weights is cached ('' when the cache could not be written), and whether this load reused it. */
  build?: { file: string; reused: boolean };
  /** The weights' precision: what --dtype asked for (built or a transformers.js variant file), or fp32. */
  dtype: Dtype;
}

export interface ProgressEvent {
  stage: 'download' | 'hash' | 'build' | 'load';
  message: string;
  /** 0–1 when known. */
  fraction?: number;
}

export interface ResolveOptions {
  labelsFile?: string;
  cacheDir?: string;
  /** How the user sets the cache folder, for messages: `--cache-dir` (default) or a setting's name. */
  cacheDirOption?: string;
  /** Problems that do not stop the load (the cache cannot be written), each said once. */
  onWarning?: (message: string) => void;
  offline?: boolean;
  signal?: AbortSignal;
  onProgress?: (p: ProgressEvent) => void;
  /** Weight precision for models built from weights, or the transformers.js onnx/ variant; default fp32. */
  dtype?: Dtype;
}

/** transformers.js's file for each dtype in a hub folder's onnx/ (as on the hub). */
export const TRANSFORMERS_JS_FILES: Record<Dtype, string> = {
  fp32: 'model.onnx',
  fp16: 'model_fp16.onnx',
  q8: 'model_quantized.onnx',
};

/** "model.safetensors: 12.3 MB of 45.6 MB (27%)"; without a total, what has arrived. */
export function downloadMessage(file: string, received: number, total?: number): string {
  return total
    ? `${file}: ${formatBytes(received)} of ${formatBytes(total)} (${Math.floor((received / total) * 100)}%)`
    : `${file}: ${formatBytes(received)}`;
}

export async function resolveModel(spec: string, opts: ResolveOptions = {}): Promise<ResolvedModel> {
  const stat = await fs.stat(spec).catch(() => undefined);
  // The engine reads every folder as a Hugging Face folder.
  const kind = classifyModelSpec(
    spec,
    stat && (stat.isDirectory() ? { folder: true, hasRunJson: false } : { folder: false }),
  );
  if (kind === 'hub') {
    const dir = await downloadHubModel(spec, {
      cacheDir: opts.cacheDir,
      offline: opts.offline,
      signal: opts.signal,
      onProgress: p =>
        opts.onProgress?.({
          stage: 'download',
          // The notification's title names the model already: the file and how far, in MB and percent.
          message: downloadMessage(p.file, p.received, p.total),
          fraction: p.total ? p.received / p.total : undefined,
        }),
    });
    // transformers.js layout without weights: its variant file for this dtype, fetched on demand.
    const variant = `onnx/${TRANSFORMERS_JS_FILES[opts.dtype ?? 'fp32']}`;
    if (opts.dtype && opts.dtype !== 'fp32' && !(await exists(path.join(dir, 'model.safetensors')))) {
      await downloadHubModel(spec, {
        cacheDir: opts.cacheDir,
        offline: opts.offline,
        signal: opts.signal,
        files: [variant],
      });
    }
    const m = await resolveFolder(dir, spec, opts);
    return { ...m, kind: 'hub', name: spec };
  }
  if (kind === 'missing' || kind === 'scratch')
    throw new Error(`${spec}: no such file or folder, and not a hub id of the form org/name`);
  if (kind === 'hf-folder' || kind === 'run-folder') return resolveFolder(spec, spec, opts);
  if (kind === 'onnx') {
    if (opts.dtype && opts.dtype !== 'fp32')
      throw new Error(
        `${spec}: --dtype ${opts.dtype} applies to models built from weights (safetensors, npz) or to a transformers.js folder's onnx/ variants, not to one .onnx file`,
      );
    return resolveOnnxFile(spec, opts);
  }
  if (kind === 'npz') return resolveNpz(spec, opts);
  if (kind === 'safetensors') {
    const dir = path.dirname(spec);
    if (path.basename(spec) !== 'model.safetensors' || !(await exists(path.join(dir, 'config.json')))) {
      throw new Error(
        `${spec}: a .safetensors file is loaded as part of a Hugging Face folder (config.json + model.safetensors); pass the folder`,
      );
    }
    return resolveFolder(dir, spec, opts);
  }
  throw new Error(
    `${spec}: unknown model format "${extensionOf(spec) || '(no extension)'}"; expected .onnx, .npz, a Hugging Face folder or a hub id`,
  );
}

async function resolveFolder(dir: string, spec: string, opts: ResolveOptions): Promise<ResolvedModel> {
  const safetensors = path.join(dir, 'model.safetensors');
  const onnxFile = path.join(dir, 'onnx', TRANSFORMERS_JS_FILES[opts.dtype ?? 'fp32']);
  const hasSafetensors = await exists(safetensors);
  const hasOnnx = await exists(onnxFile);
  if (!(await exists(path.join(dir, 'config.json')))) {
    if (hasOnnx) return resolveOnnxFile(onnxFile, opts, spec);
    throw new Error(`${dir}: not a model folder (no config.json; expected the Hugging Face layout)`);
  }
  if (!hasSafetensors && !hasOnnx) {
    throw new Error(`${dir}: has config.json but neither model.safetensors nor onnx/${path.basename(onnxFile)}`);
  }
  const { arch, labels: configLabels } = await archAndLabelsFromHfFolder(dir);
  // Prefer the weights: our own build of them has known attention outputs and exact fp32 weights,
  // whereas onnx/ in the transformers.js layout is whatever some exporter produced.
  if (!hasSafetensors) {
    // The ONNX reader finds this folder's config.json (labels) and preprocessor_config.json itself.
    return {
      ...(await resolveOnnxFile(onnxFile, opts, spec)),
      kind: 'hf-folder',
      name: await folderModelName(dir),
      arch,
      dtype: opts.dtype ?? 'fp32',
    };
  }
  const labels = await chooseLabels(
    opts.labelsFile,
    configLabels,
    arch.numClasses,
    `${path.join(dir, 'config.json')} (id2label)`,
  );
  const preprocess = await readPreprocessorConfig(dir, arch.imageSize);
  const built = await buildCachedOrInMemory(safetensors, arch, () => loadHfWeights(safetensors, arch), opts);
  return {
    ...builtModel(spec, 'hf-folder', built, arch, opts.dtype),
    name: await folderModelName(dir),
    labels: labels.labels,
    labelsFrom: labels.from,
    preprocess,
  };
}

/**
 * What a model folder is called in status bars and panels: config.json's `vit_lens_display_name`
 * (the built-in demo says what it is: "Fashion-MNIST demo (10 clothing classes)"), else the run's
 * name for a fine-tuning run's `export/` folder, else the folder's name.
 */
export async function folderModelName(dir: string): Promise<string> {
  const config = await fs.readFile(path.join(dir, 'config.json'), 'utf8').then(JSON.parse, () => undefined);
  const display = config?.vit_lens_display_name;
  if (typeof display === 'string' && display.trim() && display.length <= 80) return display.trim();
  const base = path.basename(dir.replace(/[\\/]+$/, ''));
  return base === 'export' ? path.basename(path.dirname(path.resolve(dir))) : base;
}

async function resolveOnnxFile(file: string, opts: ResolveOptions, spec = file): Promise<ResolvedModel> {
  opts.onProgress?.({ stage: 'load', message: `Reading ${path.basename(file)}` });
  const bytes = await readModelFile(
    file,
    MAX_ONNX_FILE_BYTES,
    'an .onnx file (a protobuf holds at most 2 GB; larger models keep their weights in external data)',
  );
  if (bytes.length === 0) throw new Error(`${file}: the file is empty, not an ONNX model`);
  let tap: ReturnType<typeof tapAttention>;
  try {
    tap = tapAttention(bytes, path.dirname(file));
  } catch (e) {
    throw new Error(onnxProblem(file, e));
  }
  const { bytes: tapped, info } = tap;
  // Our preprocessing makes N × 3 × H × W batches: say so now rather than let ONNX Runtime refuse the first batch.
  const rank = info.inputShape.length;
  const channels = info.inputShape[1];
  if (rank !== 0 && (rank !== 4 || (typeof channels === 'number' && channels !== 3))) {
    throw new Error(
      `${file}: input "${info.inputName}" has shape [${info.inputShape.join(', ')}], but an image model takes a batch of RGB images [N, 3, height, width]`,
    );
  }
  // Some fp16 exports (e.g. transformers.js's model_fp16.onnx) take float16 pixels; we feed float32.
  if (info.inputElemType && info.inputElemType !== onnx.TensorProto.DataType.FLOAT) {
    const type = onnx.TensorProto.DataType[info.inputElemType]?.toLowerCase() ?? `type ${info.inputElemType}`;
    throw new Error(
      `${file}: input "${info.inputName}" is ${type}; ViT Lens feeds float32 pixels (for a Hugging Face folder, build from model.safetensors with --dtype fp16 instead)`,
    );
  }
  const dims = info.inputShape.map(d => (typeof d === 'number' && d > 0 ? d : undefined));
  const imageSize: [number, number] = [dims[2] ?? info.imageSize?.[0] ?? 224, dims[3] ?? info.imageSize?.[1] ?? 224];
  const configDir = await onnxConfigDir(file);
  let configLabels: string[] | undefined;
  if (configDir) configLabels = (await archAndLabelsFromHfFolder(configDir).catch(() => undefined))?.labels;
  const numClasses = outputClassCount(tapped, info.logitsName);
  if (!numClasses)
    throw new Error(
      `${file}: cannot tell how many classes the model has (output "${info.logitsName}" has no static last dimension)`,
    );
  const labels = await chooseLabels(
    opts.labelsFile,
    configLabels,
    numClasses,
    configDir ? `${path.join(configDir, 'config.json')} (id2label)` : '',
  );
  const preprocess = configDir ? await readPreprocessorConfig(configDir, imageSize) : defaultPreprocess(imageSize);
  return {
    spec,
    kind: 'onnx',
    dtype: 'fp32' as Dtype,
    name: path.basename(file),
    onnx: tapped,
    originalOnnxFile: file,
    inputName: info.inputName,
    logitsName: info.logitsName,
    attentionNames: info.attentionOutputs,
    numHeads: info.numHeads,
    patchSize: info.patchSize,
    imageSize,
    labels: labels.labels,
    labelsFrom: labels.from,
    preprocess,
    explainUnavailable:
      info.attentionOutputs.length === 0 ? `${file}: ${info.reason ?? 'no attention found'}` : undefined,
  };
}

async function resolveNpz(file: string, opts: ResolveOptions): Promise<ResolvedModel> {
  let loaded: { arch: ViTArch; weights: WeightMap } | undefined;
  const load = async () => (loaded ??= await loadGoogleNpz(file));
  // The architecture is only known from the tensor shapes, so the npz is read even on a cache hit.
  const { arch } = await load();
  const built = await buildCachedOrInMemory(file, arch, async () => (await load()).weights, opts);
  const labels = await chooseLabels(opts.labelsFile, undefined, arch.numClasses, '');
  return {
    ...builtModel(file, 'npz', built, arch, opts.dtype),
    labels: labels.labels,
    labelsFrom: labels.from,
    preprocess: defaultPreprocess(arch.imageSize),
  };
}

function builtModel(spec: string, kind: ModelKind, built: BuiltGraph, arch: ViTArch, dtype: Dtype = 'fp32') {
  const layers = Array.from({ length: arch.numLayers }, (_, i) => i);
  return {
    spec,
    kind,
    name: path.basename(spec.replace(/[\\/]+$/, '')),
    onnx: built.bytes,
    onnxFile: built.external ? built.file : undefined,
    inputName: 'pixel_values',
    logitsName: 'logits',
    attentionNames: layers.map(attentionOutputName),
    fusedAttentionNames: Object.fromEntries(
      HEAD_FUSIONS.map(f => [f, layers.map(i => fusedAttentionOutputName(f, i))]),
    ) as ResolvedModel['fusedAttentionNames'],
    numHeads: arch.numHeads,
    patchSize: arch.patchSize,
    imageSize: arch.imageSize,
    arch,
    build: { file: built.file, reused: built.reused },
    dtype,
  };
}

/**
 * Above this many bytes of weights the build keeps them in an external data file: a protobuf message
 * cannot exceed 2 GB, and half of that leaves room for the graph. Smaller models keep the one-file build.
 */
const EXTERNAL_DATA_ABOVE = 1 << 30;

interface BuiltGraph {
  bytes: Uint8Array;
  file: string;
  reused: boolean;
  /** The weights are in `${file}.data`. */
  external: boolean;
}

async function buildCached(
  weightsFile: string,
  arch: ViTArch,
  loadWeights: () => Promise<WeightMap>,
  opts: ResolveOptions,
): Promise<BuiltGraph> {
  opts.onProgress?.({ stage: 'hash', message: `Hashing ${path.basename(weightsFile)}` });
  const cacheDir = opts.cacheDir ?? defaultCacheDir();
  // The key is the content's hash (see hashFileRemembered for why not size + mtime + header).
  const digest = createHash('sha256');
  digest.update(`${BUILDER_VERSION}\n${JSON.stringify(arch)}\n`);
  digest.update(await hashFileRemembered(weightsFile, path.join(cacheDir, 'hashes'), opts.signal));
  const key = digest.digest('hex').slice(0, 32);
  // fp32 keeps the file name it had before dtypes existed, so earlier builds stay valid.
  const dtype = opts.dtype ?? 'fp32';
  const file = path.join(cacheDir, 'built', `${key}${dtype === 'fp32' ? '' : `.${dtype}`}.onnx`);
  const dataFile = `${file}.data`;
  const cached = await fs.readFile(file).catch(() => undefined);
  if (cached) {
    const dataSize = externalDataSize(cached);
    if (dataSize === 0) return { bytes: cached, file, reused: true, external: false };
    // The graph is renamed into place after its data, so a missing or short data file was deleted or damaged since: rebuild.
    if ((await fs.stat(dataFile).catch(() => undefined))?.size === dataSize)
      return { bytes: cached, file, reused: true, external: true };
  }
  opts.signal?.throwIfAborted();
  opts.onProgress?.({ stage: 'build', message: `Building ONNX graph from ${path.basename(weightsFile)}` });
  const weights = await loadWeights();
  let weightBytes = 0;
  for (const t of weights.values()) weightBytes += t.data.byteLength;
  if (weightBytes <= EXTERNAL_DATA_ABOVE) {
    const bytes = buildVitOnnx(arch, weights, { producer: 'vit-lens', dtype });
    opts.signal?.throwIfAborted();
    await writeFileAtomic(file, bytes);
    return { bytes, file, reused: false, external: false };
  }
  // Data first, then the graph, each renamed into place when complete: a graph in the cache always has its data.
  await fs.mkdir(path.dirname(file), { recursive: true });
  await removeOrphanedData(path.dirname(file));
  const tmp = `${dataFile}.${process.pid}.${Date.now().toString(36)}.tmp`;
  let bytes: Uint8Array;
  try {
    bytes = buildVitOnnx(arch, weights, {
      producer: 'vit-lens',
      dtype,
      externalData: { file: tmp, location: path.basename(dataFile) },
    });
    opts.signal?.throwIfAborted();
    await fs.rename(tmp, dataFile);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
  await writeFileAtomic(file, bytes);
  return { bytes, file, reused: false, external: true };
}

/** A protobuf message cannot exceed 2 GB, so neither can an .onnx file without external data. */
const MAX_ONNX_FILE_BYTES = 2 ** 31 - 1;

/** Data files from builds killed midway (`<key>.onnx.data.<pid>.<time>.tmp`) are as big as the weights: remove them. */
async function removeOrphanedData(builtDir: string): Promise<void> {
  for (const name of await fs.readdir(builtDir).catch(() => [])) {
    const pid = Number(/\.onnx\.data\.(\d+)\.[0-9a-z]+\.tmp$/.exec(name)?.[1]);
    if (!pid || pid === process.pid || processAlive(pid)) continue;
    // A build writes its temp file without pause, so one untouched for a minute is not another host's build in progress.
    const stat = await fs.stat(path.join(builtDir, name)).catch(() => undefined);
    if (stat && Date.now() - stat.mtimeMs > 60_000) await fs.rm(path.join(builtDir, name), { force: true });
  }
}

async function chooseLabels(
  labelsFile: string | undefined,
  configLabels: string[] | undefined,
  numClasses: number,
  configSource: string,
): Promise<{ labels: string[]; from: string }> {
  if (labelsFile) {
    const text = (await readModelFile(labelsFile, MAX_CONFIG_FILE_BYTES, 'a labels file')).toString('utf8');
    const labels = text
      .split(/\r?\n/)
      .map(l => l.trim())
      .filter(l => l.length > 0);
    if (labels.length !== numClasses) {
      throw new Error(`${labelsFile}: has ${labels.length} labels but the model has ${numClasses} classes`);
    }
    return { labels, from: labelsFile };
  }
  if (configLabels && configLabels.length === numClasses) return { labels: configLabels, from: configSource };
  return { labels: Array.from({ length: numClasses }, (_, i) => `class_${i}`), from: 'none (class_N)' };
}

async function exists(p: string): Promise<boolean> {
  return fs.stat(p).then(
    () => true,
    () => false,
  );
}

/**
 * buildCached, or, when the cache folder cannot be written (a file in the way, read-only, full), the
 * same build kept in memory only, with one warning: the cache only saves time.
 */
async function buildCachedOrInMemory(
  weightsFile: string,
  arch: ViTArch,
  loadWeights: () => Promise<WeightMap>,
  opts: ResolveOptions,
): ReturnType<typeof buildCached> {
  let weights: Promise<WeightMap> | undefined;
  const loadOnce = () => (weights ??= loadWeights());
  try {
    return await buildCached(weightsFile, arch, loadOnce, opts);
  } catch (e) {
    const cacheDir = path.resolve(opts.cacheDir ?? defaultCacheDir());
    const err = e as NodeJS.ErrnoException;
    const inCache = typeof err.path === 'string' && !path.relative(cacheDir, path.resolve(err.path)).startsWith('..');
    if (!inCache || !CACHE_WRITE_ERRORS[err.code ?? '']) throw e;
    opts.onWarning?.(
      `cannot write the model cache in ${cacheDir} (${CACHE_WRITE_ERRORS[err.code!]}); the model was built in memory and will be built again on every load. ` +
        `Set ${opts.cacheDirOption ?? '--cache-dir'} to a writable folder`,
    );
    const bytes = buildVitOnnx(arch, await loadOnce(), { producer: 'vit-lens', dtype: opts.dtype });
    return { bytes, file: '', reused: false, external: false }; // '': no file holds this build
  }
}

/** The errors of a cache folder that cannot be written, in a few words. */
const CACHE_WRITE_ERRORS: Record<string, string> = {
  ENOTDIR: 'a file is in the way of the folder',
  EEXIST: 'a file is in the way of the folder',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on the disk',
  EDQUOT: 'disk quota exceeded',
};

/** Why an .onnx file could not be read, in our words, naming the file (protobuf's and fs's own messages name neither). */
function onnxProblem(file: string, e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  const message = err instanceof Error ? err.message : String(e);
  // protobufjs: "invalid wire type 4 at offset 2", "index out of range: 3 + 1 > 3", "illegal tag …".
  if (/wire type|index out of range|illegal tag|invalid (varint|utf8|length)/i.test(message)) {
    return `${file}: not an ONNX model (the file is not a valid ONNX protobuf: ${message})`;
  }
  if (message === 'ONNX model has no graph') return `${file}: not an ONNX model (it holds no graph)`;
  if (err.code === 'EISDIR') return `${file}: an external data "location" names a folder, not a file`;
  if (err.code) return `${file}: cannot read its external data (${message})`;
  return message.includes(file) ? message : `${file}: ${message}`;
}

/** An exported .onnx file's own folder, or its parent for the onnx/ sub-folder layout, when it carries the Hugging Face configs. */
export async function onnxConfigDir(file: string): Promise<string | undefined> {
  for (const dir of [path.dirname(file), path.join(path.dirname(file), '..')]) {
    if (await exists(path.join(dir, 'config.json'))) return dir;
  }
  return undefined;
}
