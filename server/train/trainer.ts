/**
 * The training loop: dataset → initial weights → (frozen-backbone cache) → epochs of optimizer steps
 * → validation, checkpoints and metrics in the run folder → export of the best checkpoint.
 *
 * Determinism: every random choice is derived from (seed, purpose, epoch, position) — see rng.ts —
 * and the loop position, optimizer state and running sums are checkpointed together, so a resumed
 * run takes exactly the steps the uninterrupted run would have taken.
 */
import { createHash } from 'crypto';
import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import type { WeightMap } from '../model/tensor';
import type { ViTArch } from '../model/vitConfig';
import { defaultPreprocess, PreprocessConfig, readPreprocessorConfig } from '../preprocess';
import { onnxConfigDir } from '../model/modelSource';
import { buildVitOnnx, FEATURES_NAME, hiddenOutputName } from '../model/onnxBuilder';
import { VitSession } from '../inference';
import { BackendName, initBackend } from './backend';
import { loadCheckpoint, LoopState, saveCheckpoint } from './checkpoint';
import { classCoverageWarnings, Dataset, Sample, scanDataset, SkippedFile } from './datasetFolder';
import { evaluate, Evaluation } from './evaluate';
import { exportHfFolder } from './exportModel';
import { FeatureCache } from './featureCache';
import { isTempFileName, removeOrphanTempFiles } from '../util/atomicFile';
import { hashFile } from '../util/hashFile';
import { folderLoader, PixelLoader } from './imageLoader';
import { initialWeights, InitResult } from './initWeights';
import { clipGradients, Optimizer } from './optimizer';
import { mixSeed, mulberry32, PURPOSE, shuffled } from './rng';
import {
  appendMetrics, checkpointFile, exportDir, readRunInfo, RunInfo, RunReport, runFile, RUN_FORMAT_VERSION, TrainConfig,
  truncateMetrics, writeReport, writeRunInfo,
} from './runFiles';
import { lockRun, RunLock } from './runLock';
import { learningRate } from './schedule';
import { lossAndGrads } from './step';
import { ForwardInput, Params, tokensBefore, trainableNames } from './vitModel';

/** In-memory data (the benchmark's Fashion-MNIST) instead of a folder; `loader` maps a sample to pixels. */
export interface TrainData extends Omit<Dataset, 'root' | 'layout'> {
  loader: PixelLoader;
  preprocess: PreprocessConfig;
}

export interface TrainOptions {
  runDir: string;
  config: TrainConfig;
  resume?: boolean;
  backend?: BackendName;
  cacheDir?: string;
  data?: TrainData;
  /** Architecture overrides for scratch models. */
  scratchArch?: Partial<ViTArch>;
  /** Checked after every optimizer step; true stops the run cleanly (status "stopped"). */
  shouldStop?: () => boolean;
  log?: (line: string) => void;
  /** Log a step line every N optimizer steps (default 10). */
  logEvery?: number;
  /** Write export/ when the run ends (default true). */
  exportAtEnd?: boolean;
  /**
   * Also write checkpoints/latest.safetensors within an epoch: every `steps` optimizer steps, or
   * when `seconds` have passed since the last one (default: every 300 s). Epoch ends always checkpoint.
   */
  checkpointEvery?: { steps: number } | { seconds: number };
}

/** About every 5 minutes: a kill loses at most that much work, and writing a checkpoint costs a negligible share of it. */
export const DEFAULT_CHECKPOINT_SECONDS = 300;

export class TrainingError extends Error {}

const defaultCacheDir = () =>
  process.env.VIT_LENS_CACHE ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'vit-lens');

const exists = async (file: string) => !!(await fs.stat(file).catch(() => undefined));

/**
 * Trains into `opts.runDir` while holding its lock (runLock.ts), so no second trainer writes there.
 * A folder created here is removed again when the run fails before writing run.json.
 */
export async function train(opts: TrainOptions): Promise<RunInfo> {
  const log = opts.log ?? (() => {});
  const runDir = opts.runDir;
  const existed = await exists(runDir);
  if (!opts.resume) await checkNewRunFolder(runDir);
  await fs.mkdir(runDir, { recursive: true });
  let lock: RunLock;
  try {
    lock = await lockRun(runDir);
  } catch (e) {
    if (!existed) await fs.rmdir(runDir).catch(() => {});
    throw e;
  }
  if (lock.replaced) log(`took over the lock of pid ${lock.replaced.pid} on ${lock.replaced.host}, which is gone`);
  try {
    return await trainLocked(opts, log);
  } finally {
    await lock.release();
    // A typo in the dataset path or a bad model leaves no empty run folder behind.
    if (!existed && !(await exists(runFile(runDir)))) {
      await fs.rmdir(path.join(runDir, 'checkpoints')).catch(() => {});
      await fs.rmdir(runDir).catch(() => {});
    }
  }
}

/** What a folder may hold before run.json exists and still become a run: the editor writes train.log first; a lock; temp files; checkpoints/ (empty or temp files only). */
const BEFORE_RUN_JSON = new Set(['train.log', 'run.lock', '.DS_Store']);

/** --out for a new run: a new or empty folder, never one holding someone else's files (they would be overwritten). */
async function checkNewRunFolder(runDir: string): Promise<void> {
  if (await exists(runFile(runDir))) throw new TrainingError(`${runDir}: already holds a run; pass --resume to continue it or choose another --out`);
  let entries: import('fs').Dirent[];
  try {
    entries = await fs.readdir(runDir, { withFileTypes: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return;
    throw new TrainingError(`${runDir}: cannot be the run folder (${code === 'ENOTDIR' ? 'it is a file' : (e as Error).message})`);
  }
  const foreign: string[] = [];
  for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    const ours = e.name === 'checkpoints'
      ? e.isDirectory() && (await fs.readdir(path.join(runDir, e.name))).every(isTempFileName)
      : BEFORE_RUN_JSON.has(e.name) || isTempFileName(e.name);
    if (!ours) foreign.push(e.isDirectory() ? `${e.name}/` : e.name);
  }
  if (foreign.length) {
    const shown = foreign.slice(0, 5).join(', ') + (foreign.length > 5 ? ` and ${foreign.length - 5} more` : '');
    throw new TrainingError(`${runDir}: not empty and not a vit-lens run (no run.json); it holds ${shown}. Its files would be overwritten: choose a new or empty folder for --out`);
  }
}

/** Removes temp files that a killed or failed write left in the run folder (ours only: see removeOrphanTempFiles). */
async function cleanTempFiles(runDir: string, log: (l: string) => void): Promise<void> {
  for (const dir of [runDir, path.join(runDir, 'checkpoints'), exportDir(runDir), path.join(exportDir(runDir), 'onnx')]) {
    const removed = await removeOrphanTempFiles(dir).catch(() => []);
    if (removed.length) log(`removed ${removed.length} temp file${removed.length > 1 ? 's' : ''} left by an interrupted write in ${dir}: ${removed.join(', ')}`);
  }
}

async function trainLocked(opts: TrainOptions, log: (line: string) => void): Promise<RunInfo> {
  const runDir = opts.runDir;
  await cleanTempFiles(runDir, log);
  const backend = await initBackend(opts.backend);
  let config = opts.config;
  let previous: RunInfo | undefined;
  if (opts.resume) {
    previous = await readRunInfo(runDir);
    config = previous.config;
  } else if (await exists(runFile(runDir))) {
    throw new TrainingError(`${runDir}: already holds a run; pass --resume to continue it or choose another --out`);
  }
  const data: TrainData = opts.data ?? (await folderData(config));
  if (previous && previous.classes.join('\n') !== data.classes.join('\n')) {
    throw new TrainingError(`${config.dataset}: classes changed since the run started (${previous.classes.join(', ')} → ${data.classes.join(', ')})`);
  }
  for (const w of data.warnings) log(`warning: ${w}`);
  const init = await initialWeights(config.model, {
    numClasses: data.classes.length,
    imageSize: config.imageSize,
    patchSize: config.patchSize,
    scratchArch: opts.scratchArch,
    seed: config.seed,
  });
  const arch = init.arch;
  const pre: PreprocessConfig = opts.data ? data.preprocess : { ...data.preprocess, size: arch.imageSize };
  if (!opts.data) data.loader = folderLoader(pre);
  if (config.mode === 'last-k' && (config.lastK < 1 || config.lastK > arch.numLayers)) {
    throw new TrainingError(`--last-k ${config.lastK} must be between 1 and the model's ${arch.numLayers} layers`);
  }

  // Created only once the dataset and model are known to be usable, so a typo leaves no empty run folder.
  await fs.mkdir(path.join(runDir, 'checkpoints'), { recursive: true });
  const uid = `run${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  const trainable = new Set(trainableNames(arch, config.mode, config.lastK));
  const params: Params = new Map();
  for (const [name, t] of init.weights) params.set(name, tf.variable(tf.tensor(t.data, t.shape), trainable.has(name), `${uid}/${name}`));

  const optimizer = new Optimizer({
    name: config.optimizer, weightDecay: config.weightDecay, momentum: config.momentum, beta1: 0.9, beta2: 0.999, eps: 1e-8,
  });
  let loop: LoopState = { epoch: 0, batchInEpoch: 0, step: 0, bestValAcc: -1, bestEpoch: -1, epochLossSum: 0, epochCorrect: 0, epochSeen: 0 };
  // Killed before its first checkpoint: --resume starts the run over (same config, same seed).
  const restart = opts.resume && !(await exists(checkpointFile(runDir, 'latest')));
  if (restart) {
    log(`${checkpointFile(runDir, 'latest')} does not exist (the run ended before its first checkpoint); starting it over from the beginning`);
    await fs.rm(checkpointFile(runDir, 'best'), { force: true });
    await truncateMetrics(runDir, 0, 0);
  } else if (opts.resume) {
    const ck = await loadCheckpoint(checkpointFile(runDir, 'latest')).catch((e) => {
      throw new TrainingError(`${runDir}: cannot resume (${(e as Error).message})`);
    });
    if (!ck.loop) throw new TrainingError(`${checkpointFile(runDir, 'latest')}: no loop state; cannot resume`);
    for (const [name, t] of ck.weights) params.get(name)?.assign(tf.tensor(t.data, t.shape));
    optimizer.restore(ck.loop.step, ck.optimizer);
    loop = ck.loop;
    await truncateMetrics(runDir, loop.step, loop.epoch);
    log(`resuming at epoch ${loop.epoch + 1}, step ${loop.step}`);
  }

  const skipped: SkippedFile[] = [...data.skipped];
  const inputs = await prepareInputs(config, arch, init, params, data, pre, opts.cacheDir ?? defaultCacheDir(), skipped, log, backend.name);
  const trainSamples = inputs.train;
  const valSamples = inputs.val;
  if (trainSamples.length === 0) throw new TrainingError(`${config.dataset}: no readable training images`);

  const microPerEpoch = Math.ceil(trainSamples.length / config.batchSize);
  const stepsPerEpoch = Math.ceil(microPerEpoch / config.accumulate);
  const totalSteps = stepsPerEpoch * config.epochs;
  // -1 = automatic: 5% of the steps, resolved here (and recorded) because it depends on the dataset size.
  if (config.warmupSteps < 0) config = { ...config, warmupSteps: Math.ceil(0.05 * totalSteps) };
  const now = new Date().toISOString();
  const info: RunInfo = {
    format: RUN_FORMAT_VERSION,
    config,
    classes: data.classes,
    backend: backend.name,
    device: backend.device,
    backendNotes: [...backend.notes, ...inputs.notes],
    status: 'running',
    pid: process.pid,
    host: os.hostname(),
    createdAt: previous?.createdAt ?? now,
    updatedAt: now,
    epoch: loop.epoch,
    totalEpochs: config.epochs,
    step: loop.step,
    totalSteps,
    ...bestAccuracy(loop, valSamples.length > 0),
    trainImages: trainSamples.length,
    valImages: valSamples.length,
    architecture: arch,
    preprocess: pre,
    initNotes: init.notes,
  };
  const snapshot = async (): Promise<WeightMap> => {
    const w: WeightMap = new Map();
    for (const [name, v] of params) w.set(name, { shape: v.shape.slice(), data: (await v.data()) as Float32Array });
    return w;
  };
  let released = false;
  const release = async () => {
    if (released) return;
    released = true;
    for (const v of params.values()) v.dispose();
    optimizer.dispose();
    await inputs.dispose();
  };
  const finish = async (status: RunInfo['status'], reason?: string) => {
    info.status = status;
    info.reason = reason;
    info.finishedAt = new Date().toISOString();
    // The status first (a small write): whatever fails next (the export on a full disk), run.json tells the truth.
    await writeRunInfo(runDir, info);
    try {
      if (status === 'failed') await cleanTempFiles(runDir, log);
      if (opts.exportAtEnd !== false && (await exists(checkpointFile(runDir, 'best')))) {
        const { weights } = await loadCheckpoint(checkpointFile(runDir, 'best'));
        await exportHfFolder(exportDir(runDir), arch, weights, data.classes, pre, { vit_lens: { bestEpoch: info.bestEpoch, bestValAcc: info.bestValAcc } });
      }
    } finally {
      await release();
    }
  };
  const every = opts.checkpointEvery ?? { seconds: DEFAULT_CHECKPOINT_SECONDS };
  const checkpointSteps = 'steps' in every ? every.steps : 0;
  const checkpointSeconds = 'seconds' in every ? every.seconds : 0;
  let lastCheckpoint = Date.now();
  const checkpointDue = () => (checkpointSteps > 0 ? loop.step % checkpointSteps === 0 : checkpointSeconds > 0 && Date.now() - lastCheckpoint >= checkpointSeconds * 1000);

  const report: RunReport = { skipped, warnings: [...data.warnings], heldOut: [] };
  try {
    await writeRunInfo(runDir, info);
    // Unreadable images are found while caching (head, last-k) or while training (full, augmented): said on stderr as they are found, not only in report.json.
    let skipsSaid = data.skipped.length;
    const warnUnreadable = () => {
      if (skipped.length > skipsSaid) {
        const first = skipped[skipsSaid];
        log(`warning: ${skipped.length - skipsSaid} image${skipped.length - skipsSaid > 1 ? 's' : ''} could not be read and ${skipped.length - skipsSaid > 1 ? 'are' : 'is'} left out (listed in report.json), e.g. ${first.reason.startsWith(first.file) ? first.reason : `${first.file}: ${first.reason}`}`);
        skipsSaid = skipped.length;
      }
      const unread = new Set(skipped.map((k) => k.file));
      const readable = (s: Sample) => !unread.has(s.file);
      for (const w of classCoverageWarnings(config.dataset, data.classes, [...data.train, ...data.val], trainSamples.filter(readable), valSamples.filter(readable))) {
        if (report.warnings.includes(w)) continue;
        report.warnings.push(w);
        log(`warning: ${w}`);
      }
    };
    warnUnreadable();
    if (!valSamples.length) log(`note: no validation images: the best epoch is chosen by training accuracy, and no validation accuracy is reported`);
    if (opts.resume && !restart) {
      const old = await fs.readFile(path.join(runDir, 'report.json'), 'utf8').then((t) => JSON.parse(t) as RunReport).catch(() => undefined);
      if (old) report.heldOut = old.heldOut, report.bestEpoch = old.bestEpoch;
    }
    await writeReport(runDir, report);
    log(`training ${trainSamples.length} images (${valSamples.length} validation), ${data.classes.length} classes, mode ${config.mode}, backend ${backend.name} (${backend.device}), ${totalSteps} steps`);
    for (let epoch = loop.epoch; epoch < config.epochs; epoch++) {
      const epochStart = Date.now();
      const order = shuffled(trainSamples, mulberry32(mixSeed(config.seed, PURPOSE.shuffle, epoch)));
      const batchAt = (b: number) => inputs.trainBatch(order.slice(b * config.batchSize, (b + 1) * config.batchSize), epoch, b);
      let next = loop.batchInEpoch < microPerEpoch ? batchAt(loop.batchInEpoch) : undefined;
      while (loop.batchInEpoch < microPerEpoch) {
        const stepStart = Date.now();
        const lr = learningRate(loop.step, config.lr, config.warmupSteps, totalSteps);
        const micro = Math.min(config.accumulate, microPerEpoch - loop.batchInEpoch);
        let accumulated: Map<string, tf.Tensor> | undefined;
        let stepLoss = 0;
        let stepImages = 0;
        const parts: { n: number; loss: number; grads: Map<string, tf.Tensor> }[] = [];
        for (let m = 0; m < micro; m++) {
          const batch = await next!;
          loop.batchInEpoch++;
          next = loop.batchInEpoch < microPerEpoch ? batchAt(loop.batchInEpoch) : undefined;
          if (!batch.kept.length) continue;
          const labels = Int32Array.from(batch.kept.map((s) => s.label));
          const r = await lossAndGrads(params, arch, [...trainable], batch.input, labels, config.labelSmoothing);
          batch.input.x.dispose();
          if (!Number.isFinite(r.loss)) {
            for (const g of r.grads.values()) g.dispose();
            throw new TrainingError(`loss became ${r.loss} at epoch ${epoch + 1}, step ${loop.step + 1} (lr ${lr.toExponential(3)}); stopped instead of training on garbage — try a lower --lr`);
          }
          parts.push({ n: labels.length, loss: r.loss, grads: r.grads });
          loop.epochCorrect += r.correct;
          stepImages += labels.length;
        }
        // Micro-batch means weighted by size: the accumulated gradient is that of one large batch.
        for (const part of parts) {
          const w = part.n / stepImages;
          stepLoss += part.loss * w;
          if (!accumulated) accumulated = new Map([...part.grads].map(([k, g]) => [k, parts.length === 1 ? g : tf.tidy(() => g.mul(w))]));
          else for (const [k, g] of part.grads) { const s = tf.tidy(() => accumulated!.get(k)!.add(g.mul(w))); accumulated.get(k)!.dispose(); accumulated.set(k, s); }
          if (parts.length > 1) for (const g of part.grads.values()) g.dispose();
        }
        if (accumulated) {
          const { norm: gradNorm, scale } = await clipGradients(accumulated, config.clipNorm);
          optimizer.apply(params, accumulated, lr, scale);
          for (const g of accumulated.values()) g.dispose();
          loop.step++;
          loop.epochLossSum += stepLoss * stepImages;
          loop.epochSeen += stepImages;
          const ips = (stepImages * 1000) / Math.max(1, Date.now() - stepStart);
          if (loop.step % (opts.logEvery ?? 10) === 0 || loop.batchInEpoch === microPerEpoch) {
            await appendMetrics(runDir, { type: 'step', epoch, step: loop.step, loss: stepLoss, lr, gradNorm, imagesPerSec: ips, time: new Date().toISOString() });
            log(`epoch ${epoch + 1}/${config.epochs} step ${loop.step}/${totalSteps} loss ${stepLoss.toFixed(4)} lr ${lr.toExponential(2)} ${ips.toFixed(1)} img/s`);
          }
          // Within the epoch (its end checkpoints anyway): the loop position makes the resume exact.
          if (loop.batchInEpoch < microPerEpoch && checkpointDue()) {
            await saveCheckpoint(checkpointFile(runDir, 'latest'), await snapshot(), await optimizer.state(), loop);
            lastCheckpoint = Date.now();
            info.step = loop.step;
            await writeRunInfo(runDir, info);
            log(`checkpoint at epoch ${epoch + 1}, step ${loop.step}`);
          }
        }
        if (opts.shouldStop?.() && loop.batchInEpoch < microPerEpoch) {
          await next?.then((b) => b.input.x.dispose()).catch(() => {});
          await saveCheckpoint(checkpointFile(runDir, 'latest'), await snapshot(), await optimizer.state(), loop);
          info.epoch = epoch;
          info.step = loop.step;
          log(`stopped at epoch ${epoch + 1}, step ${loop.step}; resume with --resume`);
          await finish('stopped', 'stop requested (SIGINT/SIGTERM)');
          return info;
        }
      }
      // End of epoch: validate, checkpoint, record.
      const ev: Evaluation | undefined = valSamples.length ? await evaluate(params, arch, valSamples, config.batchSize, (b) => inputs.evalBatch(b)) : undefined;
      warnUnreadable();
      const trainLoss = loop.epochSeen ? loop.epochLossSum / loop.epochSeen : NaN;
      const trainAcc = loop.epochSeen ? loop.epochCorrect / loop.epochSeen : 0;
      const score = ev ? ev.acc : trainAcc;
      const weights = await snapshot();
      if (score > loop.bestValAcc) {
        loop.bestValAcc = score;
        loop.bestEpoch = epoch;
        await saveCheckpoint(checkpointFile(runDir, 'best'), weights, undefined, loop);
        report.bestEpoch = epoch;
        report.heldOut = ev?.predictions ?? [];
        await writeReport(runDir, report);
      }
      await appendMetrics(runDir, {
        type: 'epoch', epoch, step: loop.step, trainLoss, trainAcc,
        ...(ev ? { valLoss: ev.loss, valAcc: ev.acc, perClassAcc: ev.perClassAcc, confusion: ev.confusion } : {}),
        seconds: (Date.now() - epochStart) / 1000, time: new Date().toISOString(),
      });
      log(`epoch ${epoch + 1}/${config.epochs}: train loss ${trainLoss.toFixed(4)} acc ${(trainAcc * 100).toFixed(2)}%${ev ? `, val loss ${ev.loss.toFixed(4)} acc ${(ev.acc * 100).toFixed(2)}%` : ''}`);
      loop = { ...loop, epoch: epoch + 1, batchInEpoch: 0, epochLossSum: 0, epochCorrect: 0, epochSeen: 0 };
      await saveCheckpoint(checkpointFile(runDir, 'latest'), weights, await optimizer.state(), loop);
      lastCheckpoint = Date.now();
      Object.assign(info, { epoch: epoch + 1, step: loop.step, ...bestAccuracy(loop, valSamples.length > 0) });
      await writeRunInfo(runDir, info);
      if (opts.shouldStop?.() && epoch + 1 < config.epochs) {
        await finish('stopped', 'stop requested (SIGINT/SIGTERM)');
        return info;
      }
    }
    await finish('finished');
    return info;
  } catch (e) {
    await finish('failed', (e as Error).message).catch((e2) => log(`warning: after the failure, ${(e2 as Error).message}`));
    throw e;
  }
}

/** run.json's best-epoch fields: validation accuracy, or without validation images the training accuracy that chose the epoch (never called validation accuracy). */
function bestAccuracy(loop: LoopState, validation: boolean): Pick<RunInfo, 'bestValAcc' | 'bestTrainAcc' | 'bestEpoch'> {
  if (loop.bestEpoch < 0) return { bestValAcc: undefined, bestTrainAcc: undefined, bestEpoch: undefined };
  return validation ? { bestValAcc: loop.bestValAcc, bestEpoch: loop.bestEpoch } : { bestTrainAcc: loop.bestValAcc, bestEpoch: loop.bestEpoch };
}

async function folderData(config: TrainConfig): Promise<TrainData> {
  const ds = await scanDataset(config.dataset, { valSplit: config.valSplit, seed: config.seed });
  // The preprocessing of the initial model (mean/std) is kept; the size follows the training size.
  let pre = defaultPreprocess();
  if (!config.model.startsWith('scratch:')) {
    const dir = (await fs.stat(config.model).catch(() => undefined))?.isDirectory() ? config.model : undefined;
    if (dir) pre = await readPreprocessorConfig((await fs.stat(path.join(dir, 'export')).catch(() => undefined)) ? path.join(dir, 'export') : dir, [224, 224]);
    // An .onnx INIT takes its folder's preprocessing, as the engine does when it classifies with it.
    else if (config.model.toLowerCase().endsWith('.onnx')) {
      const configDir = await onnxConfigDir(config.model);
      if (configDir) pre = await readPreprocessorConfig(configDir, [224, 224]);
    }
  }
  return { ...ds, loader: async () => { throw new Error('loader not set'); }, preprocess: pre };
}

interface PreparedInputs {
  train: Sample[];
  val: Sample[];
  trainBatch(batch: Sample[], epoch: number, index: number): Promise<{ input: ForwardInput; kept: Sample[] }>;
  evalBatch(batch: Sample[]): Promise<{ input: ForwardInput; kept: Sample[] }>;
  dispose(): Promise<void>;
  /** Where the frozen part could not run as intended (joins the backend's notes in run.json). */
  notes: string[];
}

/**
 * What the trainable part of the network sees: pixels (full), tokens after block L−k (last-k) or
 * [CLS] features (head). The frozen part runs once per image into the disk cache, unless
 * augmentation was asked for, in which case it runs on every augmented batch.
 */
async function prepareInputs(
  config: TrainConfig, arch: ViTArch, init: InitResult, params: Params, data: TrainData, pre: PreprocessConfig,
  cacheDir: string, skipped: SkippedFile[], log: (l: string) => void, backendName: BackendName,
): Promise<PreparedInputs> {
  const notes: string[] = [];
  const [H, Wd] = arch.imageSize;
  const C = arch.numChannels;
  const pixelsPer = C * H * Wd;
  const loadPixels = async (batch: Sample[], random?: (i: number) => () => number) => {
    const results = await Promise.all(batch.map((s, i) => data.loader(s, random?.(i)).then((x) => ({ s, x }), (e: Error) => ({ s, e }))));
    const kept: Sample[] = [];
    const xs: Float32Array[] = [];
    for (const r of results) {
      if ('e' in r) {
        if (!skipped.some((k) => k.file === r.s.file)) skipped.push({ file: r.s.file, reason: r.e.message });
      } else {
        kept.push(r.s);
        xs.push(r.x);
      }
    }
    const pixels = new Float32Array(kept.length * pixelsPer);
    xs.forEach((x, i) => pixels.set(x, i * pixelsPer));
    return { pixels, kept };
  };
  const augRandom = (epoch: number, index: number) => (i: number) => mulberry32(mixSeed(config.seed, PURPOSE.augment, epoch, index * 1_000_003 + i));
  const toPixels = (pixels: Float32Array, n: number): ForwardInput => ({ kind: 'pixels', x: tf.tensor4d(pixels, [n, C, H, Wd]) });

  if (config.mode === 'full') {
    return {
      train: data.train,
      val: data.val,
      trainBatch: async (b, epoch, index) => {
        const { pixels, kept } = await loadPixels(b, config.augment ? augRandom(epoch, index) : undefined);
        return { input: toPixels(pixels, kept.length), kept };
      },
      evalBatch: async (b) => {
        const { pixels, kept } = await loadPixels(b);
        return { input: toPixels(pixels, kept.length), kept };
      },
      dispose: async () => {},
      notes,
    };
  }

  // Frozen backbone on ONNX Runtime: the full graph's [CLS] features (head), or a graph truncated
  // after block L−k whose only output is the tokens there (last-k). Our TF.js blocks compute the
  // last-k tokens only when ONNX Runtime cannot start (noted in run.json's backendNotes).
  const fromBlock = arch.numLayers - config.lastK;
  const T = 1 + (H / arch.patchSize) * (Wd / arch.patchSize);
  const D = arch.hiddenSize;
  let session: VitSession | undefined;
  let produce: (pixels: Float32Array, n: number) => Promise<Float32Array>;
  let size: number;
  let wrap: (x: Float32Array, n: number) => ForwardInput;
  /** Which engine computed the cached values; part of the cache key for last-k (values differ in the last bits). */
  let producer: string;
  if (config.mode === 'head') {
    session = await VitSession.create(buildVitOnnx(arch, init.weights), { input: 'pixel_values', logits: 'logits' }, {});
    produce = async (pixels, n) => (await session!.run(pixels, [n, C, H, Wd], [FEATURES_NAME])).outputs[FEATURES_NAME].data as Float32Array;
    size = D;
    wrap = (x, n) => ({ kind: 'features', x: tf.tensor2d(x, [n, D]) });
    producer = 'onnxruntime';
  } else {
    const hidden = hiddenOutputName(fromBlock);
    try {
      session = await VitSession.create(buildVitOnnx(arch, init.weights, { hiddenAfter: fromBlock }), { input: 'pixel_values', logits: hidden }, {});
    } catch (e) {
      const note = `last-k: ONNX Runtime could not start (${(e as Error).message.split('\n')[0]}); the frozen blocks run on our TF.js blocks (${backendName}) instead`;
      notes.push(note);
      log(`warning: ${note}`);
    }
    if (session) {
      const s = session;
      produce = async (pixels, n) => (await s.fetch(pixels, [n, C, H, Wd], [hidden]))[hidden].data as Float32Array;
      producer = 'onnxruntime';
    } else {
      produce = async (pixels, n) => {
        const tokens = tf.tidy(() => tokensBefore(params, arch, tf.tensor4d(pixels, [n, C, H, Wd]), fromBlock));
        const out = (await tokens.data()) as Float32Array;
        tokens.dispose();
        return out;
      };
      producer = 'tfjs';
    }
    log(`frozen backbone: embeddings${fromBlock ? ` and blocks 1–${fromBlock} of ${arch.numLayers}` : ''} on ${session ? `ONNX Runtime (${session.provider})` : `TF.js (${backendName})`}`);
    size = T * D;
    wrap = (x, n) => ({ kind: 'tokens', x: tf.tensor3d(x, [n, T, D]), fromBlock });
  }
  const dispose = async () => { await session?.release(); };
  if (config.augment) {
    log(`augmentation on: the frozen backbone runs on every batch (no feature cache)`);
    const run = async (b: Sample[], random?: (i: number) => () => number) => {
      const { pixels, kept } = await loadPixels(b, random);
      return { input: wrap(kept.length ? await produce(pixels, kept.length) : new Float32Array(0), kept.length), kept };
    };
    return { train: data.train, val: data.val, trainBatch: (b, e, i) => run(b, augRandom(e, i)), evalBatch: (b) => run(b), dispose, notes };
  }
  const key = createHash('sha256')
    .update(JSON.stringify({
      v: 1, mode: config.mode, fromBlock, arch, pre, source: init.weightsFile ? await hashFile(init.weightsFile) : `${init.source}/${config.seed}`,
      // Head caches keep their v1 key (always ONNX Runtime); last-k tokens from the TF.js fallback are kept apart.
      ...(config.mode === 'last-k' ? { producer } : {}),
    }))
    .digest('hex')
    .slice(0, 24);
  const opts = { cacheDir: path.join(cacheDir, 'train-features'), key, size, batchSize: config.batchSize, loader: data.loader, produce, pixelsPerSample: pixelsPer };
  let lastPct = -1;
  const progress = (what: string) => (done: number, total: number) => {
    const pct = Math.floor((done / total) * 10);
    if (pct !== lastPct) log(`caching ${config.mode === 'head' ? 'features' : 'tokens'} (${what}): ${done}/${total}`), (lastPct = pct);
  };
  const tr = await FeatureCache.build(data.train, { ...opts, onProgress: progress('train') });
  const va = await FeatureCache.build(data.val, { ...opts, onProgress: progress('val') });
  skipped.push(...tr.skipped, ...va.skipped);
  log(`frozen backbone: ${tr.computed + va.computed} images computed, ${tr.kept.length + va.kept.length - tr.computed - va.computed} from cache`);
  const fromCache = async (cache: FeatureCache, b: Sample[]) => {
    const xs = await Promise.all(b.map((s) => cache.load(s)));
    const all = new Float32Array(b.length * size);
    xs.forEach((x, i) => all.set(x, i * size));
    return { input: wrap(all, b.length), kept: b };
  };
  return { train: tr.kept, val: va.kept, trainBatch: (b) => fromCache(tr.cache, b), evalBatch: (b) => fromCache(va.cache, b), dispose, notes };
}

