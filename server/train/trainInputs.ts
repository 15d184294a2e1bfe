/**
 * What the trainable part of the network sees, per mode: pixels (full), tokens after block L−k
 * (last-k) or [CLS] features (head). The frozen part runs once per image into the disk cache, unless
 * augmentation was asked for, in which case it runs on every augmented batch.
 */
import { createHash } from 'crypto';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import type { ViTArch } from '../model/vitConfig';
import type { PreprocessConfig } from '../preprocess';
import { buildVitOnnx, FEATURES_NAME, hiddenOutputName } from '../model/onnxBuilder';
import { VitSession } from '../inference';
import { hashFile } from '../util/hashFile';
import type { BackendName } from './backend';
import type { Sample, SkippedFile } from './datasetFolder';
import { FeatureCache } from './featureCache';
import type { InitResult } from './initWeights';
import type { PixelLoader } from './imageLoader';
import { mixSeed, mulberry32, PURPOSE } from './rng';
import type { TrainConfig } from './runFiles';
import { ForwardInput, Params, tokensBefore } from './vitModel';

export interface LoadedBatch {
  input: ForwardInput;
  kept: Sample[];
}

export interface PreparedInputs {
  train: Sample[];
  val: Sample[];
  trainBatch(batch: Sample[], epoch: number, index: number): Promise<LoadedBatch>;
  evalBatch(batch: Sample[]): Promise<LoadedBatch>;
  dispose(): Promise<void>;
  /** Where the frozen part could not run as intended (joins the backend's notes in run.json). */
  notes: string[];
}

export interface InputSources {
  config: TrainConfig;
  arch: ViTArch;
  init: InitResult;
  params: Params;
  train: Sample[];
  val: Sample[];
  loader: PixelLoader;
  pre: PreprocessConfig;
  cacheDir: string;
  /** Unreadable images found while loading are appended here (once per file). */
  skipped: SkippedFile[];
  log: (line: string) => void;
  backendName: BackendName;
}

type Random = (i: number) => () => number;

/** The frozen part of the network as a function of pixels, and how its output enters the trainable part. */
interface FrozenBackbone {
  produce: (pixels: Float32Array, n: number) => Promise<Float32Array>;
  /** Values per image. */
  size: number;
  wrap: (x: Float32Array, n: number) => ForwardInput;
  /** Which engine computed the values; part of the cache key for last-k (values differ in the last bits). */
  producer: string;
  fromBlock: number;
  release: () => Promise<void>;
}

export async function buildInputs(src: InputSources): Promise<PreparedInputs> {
  const notes: string[] = [];
  const read = pixelReader(src);
  if (src.config.mode === 'full') return pixelInputs(src, read, notes);
  const backbone = await frozenBackbone(src, notes);
  if (src.config.augment) return augmentedInputs(src, read, backbone, notes);
  return cachedInputs(src, backbone, notes);
}

/** Decodes a batch into one [n, C, H, W] buffer, leaving out (and recording) unreadable images. */
function pixelReader({ arch, loader, skipped }: InputSources) {
  const [H, W] = arch.imageSize;
  const C = arch.numChannels;
  const pixelsPer = C * H * W;
  const load = async (batch: Sample[], random?: Random) => {
    const results = await Promise.all(
      batch.map((s, i) =>
        loader(s, random?.(i)).then(
          x => ({ s, x }),
          (e: Error) => ({ s, e }),
        ),
      ),
    );
    const kept: Sample[] = [];
    const xs: Float32Array[] = [];
    for (const r of results) {
      if ('e' in r) {
        if (!skipped.some(k => k.file === r.s.file)) skipped.push({ file: r.s.file, reason: r.e.message });
      } else {
        kept.push(r.s);
        xs.push(r.x);
      }
    }
    const pixels = new Float32Array(kept.length * pixelsPer);
    xs.forEach((x, i) => pixels.set(x, i * pixelsPer));
    return { pixels, kept };
  };
  const toTensor = (pixels: Float32Array, n: number): ForwardInput => ({
    kind: 'pixels',
    x: tf.tensor4d(pixels, [n, C, H, W]),
  });
  return { load, toTensor, pixelsPer, shape: [C, H, W] as const };
}
type PixelReader = ReturnType<typeof pixelReader>;

/** Per-image random streams of one training batch, derived from (seed, epoch, batch, position). */
const augRandom =
  (config: TrainConfig, epoch: number, index: number): Random =>
  i =>
    mulberry32(mixSeed(config.seed, PURPOSE.augment, epoch, index * 1_000_003 + i));

function pixelInputs(src: InputSources, read: PixelReader, notes: string[]): PreparedInputs {
  const { config } = src;
  return {
    train: src.train,
    val: src.val,
    trainBatch: async (b, epoch, index) => {
      const { pixels, kept } = await read.load(b, config.augment ? augRandom(config, epoch, index) : undefined);
      return { input: read.toTensor(pixels, kept.length), kept };
    },
    evalBatch: async b => {
      const { pixels, kept } = await read.load(b);
      return { input: read.toTensor(pixels, kept.length), kept };
    },
    dispose: async () => {},
    notes,
  };
}

/**
 * Frozen backbone on ONNX Runtime: the full graph's [CLS] features (head), or a graph truncated
 * after block L−k whose only output is the tokens there (last-k). Our TF.js blocks compute the
 * last-k tokens only when ONNX Runtime cannot start (noted in run.json's backendNotes).
 */
async function frozenBackbone(
  { config, arch, init, params, log, backendName }: InputSources,
  notes: string[],
): Promise<FrozenBackbone> {
  const [H, W] = arch.imageSize;
  const C = arch.numChannels;
  const fromBlock = arch.numLayers - config.lastK;
  const T = 1 + (H / arch.patchSize) * (W / arch.patchSize);
  const D = arch.hiddenSize;
  if (config.mode === 'head') {
    const session = await VitSession.create(
      buildVitOnnx(arch, init.weights),
      { input: 'pixel_values', logits: 'logits' },
      {},
    );
    return {
      produce: async (pixels, n) =>
        (await session.run(pixels, [n, C, H, W], [FEATURES_NAME])).outputs[FEATURES_NAME].data as Float32Array,
      size: D,
      wrap: (x, n) => ({ kind: 'features', x: tf.tensor2d(x, [n, D]) }),
      producer: 'onnxruntime',
      fromBlock,
      release: () => session.release(),
    };
  }
  const hidden = hiddenOutputName(fromBlock);
  let session: VitSession | undefined;
  try {
    session = await VitSession.create(
      buildVitOnnx(arch, init.weights, { hiddenAfter: fromBlock }),
      { input: 'pixel_values', logits: hidden },
      {},
    );
  } catch (e) {
    const note = `last-k: ONNX Runtime could not start (${(e as Error).message.split('\n')[0]}); the frozen blocks run on our TF.js blocks (${backendName}) instead`;
    notes.push(note);
    log(`warning: ${note}`);
  }
  log(
    `frozen backbone: embeddings${fromBlock ? ` and blocks 1–${fromBlock} of ${arch.numLayers}` : ''} on ${session ? `ONNX Runtime (${session.provider})` : `TF.js (${backendName})`}`,
  );
  const s = session;
  return {
    produce: s
      ? async (pixels, n) => (await s.fetch(pixels, [n, C, H, W], [hidden]))[hidden].data as Float32Array
      : async (pixels, n) => {
          // Read back asynchronously: WebGPU has no synchronous read in Node.
          const tokens = tf.tidy(() => tokensBefore(params, arch, tf.tensor4d(pixels, [n, C, H, W]), fromBlock));
          const out = (await tokens.data()) as Float32Array;
          tokens.dispose();
          return out;
        },
    size: T * D,
    wrap: (x, n) => ({ kind: 'tokens', x: tf.tensor3d(x, [n, T, D]), fromBlock }),
    producer: s ? 'onnxruntime' : 'tfjs',
    fromBlock,
    release: async () => {
      await s?.release();
    },
  };
}

/** With augmentation every batch differs, so the frozen backbone runs on every batch (no cache). */
function augmentedInputs(
  src: InputSources,
  read: PixelReader,
  backbone: FrozenBackbone,
  notes: string[],
): PreparedInputs {
  src.log(`augmentation on: the frozen backbone runs on every batch (no feature cache)`);
  const run = async (b: Sample[], random?: Random) => {
    const { pixels, kept } = await read.load(b, random);
    return {
      input: backbone.wrap(
        kept.length ? await backbone.produce(pixels, kept.length) : new Float32Array(0),
        kept.length,
      ),
      kept,
    };
  };
  return {
    train: src.train,
    val: src.val,
    trainBatch: (b, e, i) => run(b, augRandom(src.config, e, i)),
    evalBatch: b => run(b),
    dispose: backbone.release,
    notes,
  };
}

/** The backbone's output for every image, computed once into the disk cache (FeatureCache) and read from there each epoch. */
async function cachedInputs(src: InputSources, backbone: FrozenBackbone, notes: string[]): Promise<PreparedInputs> {
  const { config, arch, init, pre, log } = src;
  const { size, wrap } = backbone;
  const key = createHash('sha256')
    .update(
      JSON.stringify({
        v: 1,
        mode: config.mode,
        fromBlock: backbone.fromBlock,
        arch,
        pre,
        source: init.weightsFile ? await hashFile(init.weightsFile) : `${init.source}/${config.seed}`,
        // Head caches keep their v1 key (always ONNX Runtime); last-k tokens from the TF.js fallback are kept apart.
        ...(config.mode === 'last-k' ? { producer: backbone.producer } : {}),
      }),
    )
    .digest('hex')
    .slice(0, 24);
  const [H, W] = arch.imageSize;
  const opts = {
    cacheDir: path.join(src.cacheDir, 'train-features'),
    key,
    size,
    batchSize: config.batchSize,
    loader: src.loader,
    produce: backbone.produce,
    pixelsPerSample: arch.numChannels * H * W,
  };
  let lastPct = -1;
  const progress = (what: string) => (done: number, total: number) => {
    const pct = Math.floor((done / total) * 10);
    if (pct !== lastPct) {
      log(`caching ${config.mode === 'head' ? 'features' : 'tokens'} (${what}): ${done}/${total}`);
      lastPct = pct;
    }
  };
  const tr = await FeatureCache.build(src.train, { ...opts, onProgress: progress('train') });
  const va = await FeatureCache.build(src.val, { ...opts, onProgress: progress('val') });
  src.skipped.push(...tr.skipped, ...va.skipped);
  log(
    `frozen backbone: ${tr.computed + va.computed} images computed, ${tr.kept.length + va.kept.length - tr.computed - va.computed} from cache`,
  );
  const fromCache = async (cache: FeatureCache, b: Sample[]) => {
    const xs = await Promise.all(b.map(s => cache.load(s)));
    const all = new Float32Array(b.length * size);
    xs.forEach((x, i) => all.set(x, i * size));
    return { input: wrap(all, b.length), kept: b };
  };
  return {
    train: tr.kept,
    val: va.kept,
    trainBatch: b => fromCache(tr.cache, b),
    evalBatch: b => fromCache(va.cache, b),
    dispose: backbone.release,
    notes,
  };
}
