/**
 * The ML engine behind both the worker and the CLI: holds one loaded model and answers classify and
 * explain. Nothing here knows about JSON-RPC or the terminal.
 */
import { createHash } from 'crypto';
import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import type * as ort from 'onnxruntime-node';
import { Semaphore } from 'async-mutex';
import { decodeImageFile, DecodedImage, peekImageSize, resizeForModel, toPixelValues } from './preprocess';
import { classifyBatchSize } from './batchSize';
import { cleanOrtMessage, ProviderBackend, Provider, ProviderPreference, softmax, VitSession } from './inference';
import { thumbnail } from './audit/thumbnail';
import { defaultCacheDir } from './model/hub';
import { readTrainingSample, trainingSampleScorer } from './model/trainingSample';
import { resolveModel, ResolvedModel, ResolveOptions } from './model/modelSource';
import { relevanceMap, RelevanceSession } from './explain/relevance';
import {
  attentionRollout,
  AttentionMap,
  HeadFusion,
  LayerAttention,
  rawAttention,
  TokenLayout,
} from './explain/rollout';
import { renderOverlayPng } from './explain/overlay';
import { COLORMAPS, EXPLAIN_METHODS, HEAD_FUSIONS, type Dtype, type ExplainMethod } from '../common/options';
import { FEATURES_NAME } from './model/onnxBuilder';
import type { ExplainParams, ModelInfo, Prediction, TrainingDataNote } from '../common/workerRequests';
import { fsPath } from './util/fileNames';

export interface EngineOptions {
  provider?: ProviderPreference;
  threads?: number;
  cacheDir?: string;
  /** How the user sets the cache folder, for messages (default `--cache-dir`). */
  cacheDirOption?: string;
  offline?: boolean;
  /** Megapixels of images decoded at once (default DEFAULT_DECODE_BUDGET_MP, or $VIT_LENS_DECODE_BUDGET_MP). */
  decodeBudgetMegapixels?: number;
  /** Weight precision for models built from weights (or the transformers.js variant); default fp32. */
  dtype?: Dtype;
  /** Replaces the real execution providers (tests). */
  backends?: Partial<Record<Provider, ProviderBackend>>;
  /** Called once when the GPU failed during a run and the model moved to the CPU. */
  onProviderFallback?: (note: string) => void;
}

/** ≈ 400 MB of decoded 8-bit RGB: eight 16-megapixel photos at once; a bigger image decodes alone. */
export const DEFAULT_DECODE_BUDGET_MP = 128;

function decodeBudgetFromEnv(): number {
  const env = process.env.VIT_LENS_DECODE_BUDGET_MP;
  const n = env === undefined ? NaN : Number(env);
  return Number.isInteger(n) && n >= 1 ? n : DEFAULT_DECODE_BUDGET_MP;
}

/** An image's share of the decode budget: its megapixels, or all of it when the header could not be read. */
function budgetWeight(size: { width: number; height: number } | undefined, budget: number): number {
  return size ? Math.min(budget, Math.max(1, Math.ceil((size.width * size.height) / 1e6))) : budget;
}

export interface ClassifiedImage {
  image: string;
  predictions: Prediction[];
  logits: number[];
  /**
   * Only for models whose folder carries a training sample (training_sample.json, e.g. the built-in
   * model): the image's distance to its nearest training images, and the threshold 99% of the
   * training images stay under; `unlike` when it is above.
   */
  trainingData?: TrainingDataNote;
}

export interface ImageFailure {
  image: string;
  error: string;
}

/** The explain request's options (common/workerRequests.ts), for the CLI and the worker alike. */
export interface ExplainOptions extends Omit<ExplainParams, 'image' | 'workDoneToken'> {
  signal?: AbortSignal;
}

export interface Explanation {
  image: string;
  width: number;
  height: number;
  predictions: Prediction[];
  /** The rollout, relevance or raw attention map. */
  map: AttentionMap;
  method: ExplainMethod;
  /** Relevance: the class explained. */
  class?: { index: number; label: string };
  layer?: number;
  head?: number | HeadFusion;
  overlayPng?: Buffer;
}

interface AttentionRun {
  key: string;
  image: DecodedImage;
  pixels: Float32Array;
  logits: Float32Array;
  /** Per layer, heads fused in the graph, for each fusion. */
  fused?: Record<HeadFusion, LayerAttention[]>;
  /** Per layer, every head. */
  heads?: LayerAttention[];
  /** Relevance maps by class index. */
  relevance?: Map<number, AttentionMap>;
}

interface Loaded {
  resolved: ResolvedModel;
  session: VitSession;
  /** Names the network's weights for feature caches: the built graph's content key, or the ONNX bytes' hash. */
  weightsKey: string;
  /** Distance of a thumbnail to the model folder's training sample, with its threshold (trainingSample.ts). */
  trainingSample?: { score: (thumb: Float32Array) => number; threshold: number };
}

export class Engine {
  private loaded: Loaded | undefined;
  /** The last explained image's attention maps, so changing fusion/discard/layer does not rerun the model. */
  private lastRun: AttentionRun | undefined;
  /** The relevance graph, built on the first relevance request for the loaded model (or why it cannot be). */
  private relevance: Promise<RelevanceSession> | undefined;

  /**
   * Full-size decodes in flight, weighted by megapixels: a batch of small photos decodes in
   * parallel, huge images one or a few at a time (8 grey 13000×13000 PNGs of 190 KB each, decoded
   * together, peaked at 4.1 GB).
   */
  private readonly decodeBudgetMp: number;
  private readonly decodeBudget: Semaphore;

  constructor(private readonly options: EngineOptions = {}) {
    this.decodeBudgetMp = options.decodeBudgetMegapixels ?? decodeBudgetFromEnv();
    this.decodeBudget = new Semaphore(this.decodeBudgetMp);
  }

  get isLoaded(): boolean {
    return this.loaded !== undefined;
  }

  async load(
    spec: string,
    opts: Pick<ResolveOptions, 'labelsFile' | 'signal' | 'onProgress' | 'onWarning' | 'dtype'> & {
      provider?: ProviderPreference;
    } = {},
  ): Promise<ModelInfo> {
    const resolved = await resolveModel(spec, {
      ...opts,
      dtype: opts.dtype ?? this.options.dtype,
      cacheDir: this.options.cacheDir,
      cacheDirOption: this.options.cacheDirOption,
      offline: this.options.offline,
    });
    opts.signal?.throwIfAborted();
    opts.onProgress?.({ stage: 'load', message: `Starting ONNX Runtime for ${resolved.name}` });
    const [h, w] = resolved.preprocess.size;
    const session = await VitSession.create(
      resolved.onnxFile ?? resolved.onnx,
      { input: resolved.inputName, logits: resolved.logitsName },
      {
        provider: opts.provider ?? this.options.provider,
        threads: this.options.threads,
        backends: this.options.backends,
        choiceCacheFile: path.join(this.options.cacheDir ?? defaultCacheDir(), 'provider-choice.json'),
        timingInput: [1, 3, h, w],
        onFallback: this.options.onProviderFallback,
      },
    ).catch((e: Error) => {
      throw new Error(`${resolved.spec}: ONNX Runtime cannot load this model: ${cleanOrtMessage(e.message)}`);
    });
    // Only replace the current model once the new one is ready: a failed load keeps the old one.
    const previous = this.loaded;
    const weightsKey = resolved.build
      ? path.basename(resolved.build.file, '.onnx')
      : createHash('sha256').update(resolved.onnx).digest('hex');
    // A model folder may carry a sample of its training images; a broken one only loses the note.
    const folder = (await fs.stat(resolved.spec).catch(() => undefined))?.isDirectory() ? resolved.spec : undefined;
    const sample = folder
      ? await readTrainingSample(folder).catch((e: Error) => void opts.onWarning?.(e.message))
      : undefined;
    const trainingSample = sample ? { score: trainingSampleScorer(sample), threshold: sample.threshold } : undefined;
    this.loaded = { resolved, session, weightsKey, trainingSample };
    this.lastRun = undefined;
    const oldRelevance = this.relevance;
    this.relevance = undefined;
    await oldRelevance?.then(r => r.release()).catch(() => undefined);
    resolved.onnx = new Uint8Array(0); // the session holds its own copy; do not keep hundreds of MB twice
    await previous?.session.release();
    return this.info();
  }

  info(): ModelInfo {
    const { resolved: m, session } = this.require();
    return {
      name: m.name,
      spec: m.spec,
      kind: m.kind,
      provider: session.provider,
      device: session.device,
      providerNote: session.providerNote && cleanOrtMessage(session.providerNote),
      dtype: m.dtype,
      batchSize: this.classifyBatchSize(),
      numClasses: m.labels.length,
      labels: m.labels,
      labelsFrom: m.labelsFrom,
      imageSize: m.imageSize,
      patchSize: m.patchSize,
      numLayers: m.arch?.numLayers ?? m.attentionNames.length,
      numHeads: m.numHeads,
      architecture: m.arch
        ? {
            hiddenSize: m.arch.hiddenSize,
            numLayers: m.arch.numLayers,
            numHeads: m.arch.numHeads,
            mlpSize: m.arch.mlpSize,
            patchSize: m.arch.patchSize,
            layerNormEps: m.arch.layerNormEps,
            qkvBias: m.arch.qkvBias,
            preLogitsSize: m.arch.preLogitsSize,
          }
        : undefined,
      preprocess: m.preprocess,
      explainAvailable: !m.explainUnavailable,
      explainUnavailableReason: m.explainUnavailable,
      builtFile: m.build?.file || undefined,
    };
  }

  /** Images per classification run on the provider the model runs on now (batchSize.ts); back to the CPU's after a GPU fallback. */
  classifyBatchSize(): number {
    const { resolved: m, session } = this.require();
    return classifyBatchSize(session.provider, {
      imageSize: m.preprocess.size,
      patchSize: m.arch?.patchSize ?? m.patchSize,
      numLayers: m.arch?.numLayers ?? Math.max(1, m.attentionNames.length),
      numHeads: m.arch?.numHeads ?? m.numHeads,
      hiddenSize: m.arch?.hiddenSize,
      mlpSize: m.arch?.mlpSize,
    });
  }

  /** Classify files; a file that cannot be read is reported in `failures` and does not stop the rest. */
  async classify(
    files: string[],
    topK = 5,
    signal?: AbortSignal,
  ): Promise<{ results: ClassifiedImage[]; failures: ImageFailure[] }> {
    const { resolved: m } = this.require();
    checkTopK(topK);
    const results: ClassifiedImage[] = [];
    const failures: ImageFailure[] = [];
    for (let start = 0; start < files.length;) {
      signal?.throwIfAborted();
      // Asked per batch: a GPU that fell back to the CPU mid-folder continues with the CPU's size.
      const chunk = files.slice(start, (start += this.classifyBatchSize()));
      const prepared = await Promise.all(chunk.map(f => this.preparePixels(f).catch((e: Error) => e)));
      const ok: { file: string; pixels: Float32Array }[] = [];
      prepared.forEach((p, i) => {
        if (p instanceof Error) failures.push({ image: chunk[i], error: p.message });
        else ok.push({ file: chunk[i], pixels: p });
      });
      if (ok.length === 0) continue;
      const out = await this.runBatch(ok.map(o => o.pixels));
      const sample = this.loaded?.trainingSample;
      const [h, w] = m.preprocess.size;
      ok.forEach((o, i) => {
        const logits = out.logits.subarray(i * out.numClasses, (i + 1) * out.numClasses);
        const r: ClassifiedImage = {
          image: o.file,
          predictions: topPredictions(logits, m.labels, topK),
          logits: Array.from(logits),
        };
        if (sample) {
          const distance = sample.score(thumbnail(o.pixels, 0, h, w));
          r.trainingData = { distance, threshold: sample.threshold, unlike: distance > sample.threshold };
        }
        results.push(r);
      });
    }
    return { results, failures };
  }

  /** Run one already-preprocessed batch (N × C × H × W); used by parity tests and benchmarks. */
  async runPixels(
    pixels: Float32Array,
    batch: number,
    attentions = false,
  ): Promise<{ logits: Float32Array; numClasses: number; attentions?: ort.Tensor[] }> {
    const { resolved: m, session } = this.require();
    const [h, w] = m.preprocess.size;
    const out = await session.run(pixels, [batch, 3, h, w], attentions ? m.attentionNames : []);
    return {
      logits: out.logits,
      numClasses: out.numClasses,
      attentions: attentions ? m.attentionNames.map(n => out.outputs[n]) : undefined,
    };
  }

  /**
   * One preprocessed batch's [CLS] features (the final-LayerNorm token, the `features` output of the
   * graphs we build). A foreign ONNX graph has no such output, so its logits stand in (`source`).
   */
  async features(
    pixels: Float32Array,
    batch: number,
  ): Promise<{ values: Float32Array; size: number; source: 'features' | 'logits' }> {
    const { resolved: m, session } = this.require();
    const [h, w] = m.preprocess.size;
    if (session.outputNames.includes(FEATURES_NAME)) {
      const out = await session.fetch(pixels, [batch, 3, h, w], [FEATURES_NAME]);
      const t = out[FEATURES_NAME];
      return { values: t.data as Float32Array, size: Number(t.dims[t.dims.length - 1]), source: 'features' };
    }
    const out = await session.run(pixels, [batch, 3, h, w]);
    return { values: out.logits, size: out.numClasses, source: 'logits' };
  }

  /** What feature caches key on: the weights, the preprocessing and which output the features come from. */
  featureIdentity(): { weights: string; preprocess: ResolvedModel['preprocess']; source: 'features' | 'logits' } {
    const { resolved: m, session, weightsKey } = this.require();
    return {
      weights: weightsKey,
      preprocess: m.preprocess,
      source: session.outputNames.includes(FEATURES_NAME) ? 'features' : 'logits',
    };
  }

  async explain(file: string, opts: ExplainOptions = {}): Promise<Explanation> {
    const { resolved: m } = this.require();
    checkExplainOptions(opts);
    const method = opts.method ?? (opts.layer !== undefined ? 'attention' : 'rollout');
    if (method === 'relevance') return this.explainRelevance(file, opts);
    if (m.explainUnavailable) throw new Error(`explain is not available for this model: ${m.explainUnavailable}`);
    const fusion = opts.headFusion ?? 'mean';
    const raw = method === 'attention';
    if (raw) opts = { ...opts, layer: opts.layer ?? m.attentionNames.length - 1 };
    if (raw && (!Number.isInteger(opts.layer) || opts.layer! < 0 || opts.layer! >= m.attentionNames.length)) {
      throw new Error(`layer ${opts.layer} does not exist: this model has layers 0–${m.attentionNames.length - 1}`);
    }
    // Rollout reads head-fused maps (fused in the graph when we built it); raw attention needs every head.
    const run = await this.attentionRun(file, raw || !m.fusedAttentionNames ? 'heads' : 'fused', opts.signal);
    let map: AttentionMap;
    if (raw) {
      const layer = run.heads![opts.layer!];
      map = rawAttention(layer, this.tokenLayout(layer.tokens), opts.head ?? fusion);
    } else {
      const layers = run.fused?.[fusion] ?? run.heads!;
      map = attentionRollout(layers, this.tokenLayout(layers[0].tokens), {
        headFusion: fusion,
        discardRatio: opts.discardRatio ?? 0.9,
      });
    }
    const overlayPng = opts.overlay ? await renderOverlayPng(run.image, map, opts.overlay) : undefined;
    return {
      image: file,
      width: run.image.width,
      height: run.image.height,
      predictions: topPredictions(run.logits, m.labels, opts.topK ?? 5),
      map,
      method: raw ? 'attention' : 'rollout',
      layer: opts.layer,
      head: raw ? (opts.head ?? fusion) : undefined,
      overlayPng,
    };
  }

  /**
   * Class-specific relevance (server/explain/relevance.ts) for `opts.class`, default the top-1 class.
   * The relevance graph is built and started on the first request, so classify never pays for it.
   */
  private async explainRelevance(file: string, opts: ExplainOptions): Promise<Explanation> {
    const { resolved: m } = this.require();
    const key = await this.runKey(file);
    const last = this.lastRun?.key === key ? this.lastRun : undefined;
    // The top-1 class is known once the image has run, and its map may be cached already.
    const classIndex =
      opts.class !== undefined
        ? this.classIndex(opts.class)
        : last
          ? topPredictions(last.logits, m.labels, 1)[0].index
          : -1;
    let map = classIndex >= 0 ? last?.relevance?.get(classIndex) : undefined;
    let run = last;
    let explained = classIndex;
    if (!map) {
      const relevance = await this.relevanceSession();
      const { image, pixels } = last ?? (await this.prepare(file));
      opts.signal?.throwIfAborted();
      const out = await relevance.run(pixels, classIndex);
      explained = out.classIndex;
      map = relevanceMap(out.layers, this.tokenLayout(out.tokens), out.tokens);
      run = last ?? { key, image, pixels, logits: out.logits.slice() };
      (run.relevance ??= new Map()).set(explained, map);
      this.lastRun = run;
    }
    const overlayPng = opts.overlay ? await renderOverlayPng(run!.image, map, opts.overlay) : undefined;
    return {
      image: file,
      width: run!.image.width,
      height: run!.image.height,
      predictions: topPredictions(run!.logits, m.labels, opts.topK ?? 5),
      map,
      method: 'relevance',
      class: { index: explained, label: m.labels[explained] ?? `class_${explained}` },
      overlayPng,
    };
  }

  /** A class given as an index (number or digits) or a label (exact, else ignoring case), checked against the model. */
  classIndex(spec: number | string): number {
    const { labels } = this.require().resolved;
    const asIndex = typeof spec === 'number' ? spec : /^\d+$/.test(spec.trim()) ? Number(spec.trim()) : undefined;
    if (asIndex !== undefined) {
      if (!Number.isInteger(asIndex) || asIndex < 0 || asIndex >= labels.length) {
        throw new Error(`class ${spec} does not exist: this model has classes 0–${labels.length - 1}`);
      }
      return asIndex;
    }
    const label = String(spec);
    const exact = labels.indexOf(label);
    if (exact >= 0) return exact;
    const folded = labels.findIndex(l => l.toLowerCase() === label.toLowerCase());
    if (folded >= 0) return folded;
    throw new Error(
      `class "${spec}" is not one of this model's labels (${labels.slice(0, 10).join(', ')}${labels.length > 10 ? ', …' : ''})`,
    );
  }

  /** One image's relevance for a class (−1: top-1) from already-preprocessed pixels; for parity tests and benchmarks. */
  async relevancePixels(
    pixels: Float32Array,
    classIndex = -1,
  ): Promise<{ map: AttentionMap; classIndex: number; logits: Float32Array }> {
    const out = await (await this.relevanceSession()).run(pixels, classIndex);
    return {
      map: relevanceMap(out.layers, this.tokenLayout(out.tokens), out.tokens),
      classIndex: out.classIndex,
      logits: out.logits,
    };
  }

  private relevanceSession(): Promise<RelevanceSession> {
    if (!this.relevance) {
      const { resolved: m, session } = this.require();
      const file = m.build?.file ?? m.originalOnnxFile;
      this.relevance = (async () => {
        if (!file)
          throw new Error(`class relevance is not available for ${m.name}: no ONNX file to read its weights from`);
        const [h, w] = m.preprocess.size;
        const created = await RelevanceSession.create(file, {
          cuda: session.provider === 'cuda',
          threads: this.options.threads ?? os.availableParallelism(),
        }).catch((e: Error) => {
          throw new Error(
            `class relevance is not available for this model (rollout and attention still work): ${e.message}`,
          );
        });
        if (created.arch.imageSize[0] !== h || created.arch.imageSize[1] !== w) {
          await created.release();
          throw new Error(
            `class relevance is not available for this model: its preprocessing gives ${h}×${w} images but the network takes ${created.arch.imageSize.join('×')}`,
          );
        }
        return created;
      })();
    }
    return this.relevance;
  }

  /** Drop the cached attention maps of the last explained image (the next explain reruns the model). */
  forgetLastRun(): void {
    this.lastRun = undefined;
  }

  async dispose(): Promise<void> {
    await this.relevance?.then(r => r.release()).catch(() => undefined);
    this.relevance = undefined;
    await this.loaded?.session.release();
    this.loaded = undefined;
    this.lastRun = undefined;
  }

  private require(): Loaded {
    if (!this.loaded) throw new Error('no model is loaded');
    return this.loaded;
  }

  private async prepare(file: string): Promise<{ image: DecodedImage; pixels: Float32Array }> {
    const size = await peekImageSize(file);
    return this.decodeBudget.runExclusive(
      async () => {
        const image = await decodeImageFile(file);
        const cfg = this.require().resolved.preprocess;
        return { image, pixels: toPixelValues(await resizeForModel(image, cfg), cfg) };
      },
      budgetWeight(size, this.decodeBudgetMp),
    );
  }

  /** Model input for one file; the full-size decode is dropped as soon as it is resized. */
  private async preparePixels(file: string): Promise<Float32Array> {
    return (await this.prepare(file)).pixels;
  }

  private async runBatch(pixels: Float32Array[], extra: readonly string[] = []) {
    const { resolved: m, session } = this.require();
    const [h, w] = m.preprocess.size;
    const per = 3 * h * w;
    const batch = new Float32Array(per * pixels.length);
    pixels.forEach((p, i) => batch.set(p, i * per));
    return session.run(batch, [pixels.length, 3, h, w], extra).catch((e: Error) => {
      throw new Error(`${m.spec}: ONNX Runtime cannot run this model: ${e.message}`);
    });
  }

  /** What identifies a run: the model and the image file as it is now (a changed file is run again). */
  private async runKey(file: string): Promise<string> {
    const m = this.require().resolved;
    const stat = await fs.stat(fsPath(file)).catch(() => undefined);
    return `${m.spec}\0${file}\0${stat?.mtimeMs}\0${stat?.size}`;
  }

  /** Run the model on one image fetching the attention maps `need` asks for, reusing the last run when it has them. */
  private async attentionRun(file: string, need: 'fused' | 'heads', signal?: AbortSignal): Promise<AttentionRun> {
    const m = this.require().resolved;
    const key = await this.runKey(file);
    const last = this.lastRun?.key === key ? this.lastRun : undefined;
    if (last && (need === 'heads' ? last.heads : last.fused)) return last;
    const { image, pixels } = last ?? (await this.prepare(file));
    signal?.throwIfAborted();
    const names = need === 'heads' ? m.attentionNames : Object.values(m.fusedAttentionNames!).flat();
    const out = await this.runBatch([pixels], names);
    const run: AttentionRun = last ?? { key, image, pixels, logits: out.logits.slice(0, out.numClasses) };
    if (need === 'heads') run.heads = m.attentionNames.map(n => this.layerAttention(n, out.outputs[n], 1, 0));
    else {
      const fused = m.fusedAttentionNames!;
      const view = (names: string[]) => names.map(n => this.layerAttention(n, out.outputs[n], 1, 0));
      run.fused = { mean: view(fused.mean), max: view(fused.max), min: view(fused.min) };
    }
    this.lastRun = run;
    return run;
  }

  /**
   * View one image's block of an attention output: [N, H, T, T], [N·H, T, T] (torch's MHA export,
   * image-major), or [N, T, T] (heads fused in the graph).
   */
  private layerAttention(name: string, t: ort.Tensor, batch: number, index: number): LayerAttention {
    const dims = t.dims.map(Number);
    const tokens = dims[dims.length - 1];
    const fused = name.startsWith('attention_');
    const heads = fused ? 1 : dims.length === 4 ? dims[1] : dims[0] / batch;
    if (!Number.isInteger(heads) || dims[dims.length - 2] !== tokens || (fused && dims.length !== 3)) {
      throw new Error(`attention output "${name}" has unexpected shape [${dims.join(', ')}]`);
    }
    return { data: t.data as Float32Array, offset: index * heads * tokens * tokens, heads, tokens };
  }

  private tokenLayout(tokens: number): TokenLayout {
    const m = this.require().resolved;
    const [h, w] = m.preprocess.size;
    let grid: [number, number];
    if (m.patchSize) grid = [Math.floor(h / m.patchSize), Math.floor(w / m.patchSize)];
    else {
      // Unknown patch size: assume a square grid and one [CLS] token (plus any extras left over).
      const g = Math.floor(Math.sqrt(tokens - 1));
      grid = [g, g];
    }
    return { grid, prefixTokens: tokens - grid[0] * grid[1] };
  }
}

/** Requests also arrive from other processes (the worker), so check what the CLI's parser would have. */
function checkExplainOptions(opts: ExplainOptions): void {
  if (opts.method !== undefined && !EXPLAIN_METHODS.includes(opts.method)) {
    throw new Error(`explain method must be one of ${EXPLAIN_METHODS.join(', ')}, got "${opts.method}"`);
  }
  if (opts.method !== undefined && opts.method !== 'attention' && opts.layer !== undefined) {
    throw new Error(`a layer (and head) applies to method attention, not ${opts.method}`);
  }
  if (opts.class !== undefined && opts.method !== 'relevance') throw new Error('a class applies to method relevance');
  if (opts.class !== undefined && typeof opts.class !== 'number' && typeof opts.class !== 'string')
    throw new Error('class must be an index or a label');
  if (opts.headFusion !== undefined && !HEAD_FUSIONS.includes(opts.headFusion)) {
    throw new Error(`head fusion must be one of ${HEAD_FUSIONS.join(', ')}, got "${opts.headFusion}"`);
  }
  if (opts.discardRatio !== undefined && !(opts.discardRatio >= 0 && opts.discardRatio < 1)) {
    throw new Error(`discard ratio must be in [0, 1), got ${opts.discardRatio}`);
  }
  if (opts.head !== undefined && opts.layer === undefined && opts.method !== 'attention')
    throw new Error('a head needs a layer');
  if (opts.topK !== undefined) checkTopK(opts.topK);
  if (opts.overlay) {
    if (!COLORMAPS.includes(opts.overlay.colormap))
      throw new Error(`colormap must be one of ${COLORMAPS.join(', ')}, got "${opts.overlay.colormap}"`);
    if (!(opts.overlay.opacity >= 0 && opts.overlay.opacity <= 1))
      throw new Error(`overlay opacity must be in [0, 1], got ${opts.overlay.opacity}`);
  }
}

function checkTopK(k: number): void {
  if (!Number.isInteger(k) || k < 1) throw new Error(`top-k must be a positive integer, got ${k}`);
}

export function topPredictions(logits: ArrayLike<number>, labels: string[], k: number): Prediction[] {
  const probs = softmax(logits);
  const order = Array.from(probs.keys()).sort((a, b) => probs[b] - probs[a] || a - b);
  return order
    .slice(0, Math.max(1, Math.min(k, order.length)))
    .map(i => ({ label: labels[i] ?? `class_${i}`, index: i, score: probs[i] }));
}
