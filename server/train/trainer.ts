/**
 * The training loop: dataset → initial weights → (frozen-backbone cache) → epochs of optimizer steps
 * → validation, checkpoints and metrics in the run folder → export of the best checkpoint.
 *
 * Determinism: every random choice is derived from (seed, purpose, epoch, position) — see rng.ts —
 * and the loop position, optimizer state and running sums are checkpointed together, so a resumed
 * run takes exactly the steps the uninterrupted run would have taken.
 */
import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import type { ViTArch } from '../model/vitConfig';
import { defaultPreprocess, PreprocessConfig, readPreprocessorConfig } from '../preprocess';
import { defaultCacheDir } from '../model/hub';
import { onnxConfigDir } from '../model/modelSource';
import { BackendChoice, BackendName, initBackend, onThreads } from './backend';
import { loadCheckpoint, LoopState } from './checkpoint';
import { classCoverageWarnings, Dataset, Sample, scanDataset, SkippedFile } from './datasetFolder';
import { evaluateAndCheckpoint, trainOneEpoch } from './epoch';
import { exportHfFolder, writeTrainingSampleOf } from './exportModel';
import { isTempFileName, removeOrphanTempFiles } from '../util/atomicFile';
import { folderLoader, PixelLoader } from './imageLoader';
import { initialWeights, InitResult } from './initWeights';
import { Optimizer } from './optimizer';
import {
  carryOverReport,
  checkpointFile,
  exportDir,
  readRunInfo,
  RunInfo,
  RunReport,
  runFile,
  RUN_FORMAT_VERSION,
  TrainConfig,
  truncateMetrics,
  writeReport,
  writeRunInfo,
} from './runFiles';
import { stepPlan } from './schedule';
import { lockRun, RunLock } from './runLock';
import { bestAccuracy, TrainingError, TrainingRun } from './runState';
import { lossAndGrads } from './step';
import { DataParallel } from './threads';
import { buildInputs, PreparedInputs } from './trainInputs';
import { Params, trainableNames } from './vitModel';

export { TrainingError } from './runState';

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
  /**
   * Threads to train on (default 1). On the wasm backend, more than one splits every micro-batch
   * over worker_threads (threads.ts); other backends use their own threading and train on one.
   */
  threads?: number;
}

/** About every 5 minutes: a kill loses at most that much work, and writing a checkpoint costs a negligible share of it. */
export const DEFAULT_CHECKPOINT_SECONDS = 300;

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
export async function checkNewRunFolder(runDir: string): Promise<void> {
  if (await exists(runFile(runDir)))
    throw new TrainingError(`${runDir}: already holds a run; pass --resume to continue it or choose another --out`);
  let entries: import('fs').Dirent[];
  try {
    entries = await fs.readdir(runDir, { withFileTypes: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return;
    throw new TrainingError(
      `${runDir}: cannot be the run folder (${code === 'ENOTDIR' ? 'it is a file' : (e as Error).message})`,
    );
  }
  const foreign: string[] = [];
  for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    const ours =
      e.name === 'checkpoints'
        ? e.isDirectory() && (await fs.readdir(path.join(runDir, e.name))).every(isTempFileName)
        : BEFORE_RUN_JSON.has(e.name) || isTempFileName(e.name);
    if (!ours) foreign.push(e.isDirectory() ? `${e.name}/` : e.name);
  }
  if (foreign.length) {
    const shown = foreign.slice(0, 5).join(', ') + (foreign.length > 5 ? ` and ${foreign.length - 5} more` : '');
    throw new TrainingError(
      `${runDir}: not empty and not a vit-lens run (no run.json); it holds ${shown}. Its files would be overwritten: choose a new or empty folder for --out`,
    );
  }
}

/** Removes temp files that a killed or failed write left in the run folder (ours only: see removeOrphanTempFiles). */
export async function cleanTempFiles(runDir: string, log: (l: string) => void): Promise<void> {
  for (const dir of [
    runDir,
    path.join(runDir, 'checkpoints'),
    exportDir(runDir),
    path.join(exportDir(runDir), 'onnx'),
  ]) {
    const removed = await removeOrphanTempFiles(dir).catch(() => []);
    if (removed.length)
      log(
        `removed ${removed.length} temp file${removed.length > 1 ? 's' : ''} left by an interrupted write in ${dir}: ${removed.join(', ')}`,
      );
  }
}

/**
 * The stages of a run, in order: set it up (backend, data, initial weights), resume its state,
 * build the inputs (frozen-backbone cache), then epochs of trainOneEpoch + evaluateAndCheckpoint
 * (epoch.ts), then finishRun (status, export, release).
 */
async function trainLocked(opts: TrainOptions, log: (line: string) => void): Promise<RunInfo> {
  const runDir = opts.runDir;
  await cleanTempFiles(runDir, log);
  const setup = await setUpRun(opts, log);
  // Created only once the dataset and model are known to be usable, so a typo leaves no empty run folder.
  await fs.mkdir(path.join(runDir, 'checkpoints'), { recursive: true });
  const model = createModel(setup);
  const { loop, restart } = await resumeState(opts, model, log);
  const skipped: SkippedFile[] = [...setup.data.skipped];
  const inputs = await buildInputs({
    config: setup.config,
    arch: setup.arch,
    init: setup.init,
    params: model.params,
    train: setup.data.train,
    val: setup.data.val,
    loader: setup.data.loader,
    pre: setup.pre,
    cacheDir: opts.cacheDir ?? defaultCacheDir(),
    skipped,
    log,
    backendName: setup.backend.name,
  });
  if (inputs.train.length === 0) throw new TrainingError(`${setup.config.dataset}: no readable training images`);
  const { pool, note } = await startThreads(opts, setup, model);
  inputs.notes.push(note);
  const run = openRun(opts, setup, model, loop, inputs, skipped, log, pool);
  try {
    await writeRunInfo(runDir, run.info);
    await startRun(run, opts, restart, setup);
    for (let epoch = loop.epoch; epoch < run.config.epochs; epoch++) {
      const epochStart = Date.now();
      if ((await trainOneEpoch(run, epoch)) === 'stopped') {
        await finishRun(run, opts, 'stopped', STOP_REASON);
        return run.info;
      }
      await evaluateAndCheckpoint(run, epoch, epochStart);
      if (opts.shouldStop?.() && epoch + 1 < run.config.epochs) {
        await finishRun(run, opts, 'stopped', STOP_REASON);
        return run.info;
      }
    }
    await finishRun(run, opts, 'finished');
    return run.info;
  } catch (e) {
    await finishRun(run, opts, 'failed', (e as Error).message).catch(e2 =>
      log(`warning: after the failure, ${(e2 as Error).message}`),
    );
    throw e;
  }
}

const STOP_REASON = 'stop requested (SIGINT/SIGTERM)';

interface RunSetup {
  backend: BackendChoice;
  config: TrainConfig;
  /** The run being resumed. */
  previous?: RunInfo;
  data: TrainData;
  init: InitResult;
  arch: ViTArch;
  pre: PreprocessConfig;
}

/** The backend, the config (a resumed run's own), the dataset and the initial weights, each checked before anything is written. */
async function setUpRun(opts: TrainOptions, log: (line: string) => void): Promise<RunSetup> {
  const runDir = opts.runDir;
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
    throw new TrainingError(
      `${config.dataset}: classes changed since the run started (${previous.classes.join(', ')} → ${data.classes.join(', ')})`,
    );
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
  return { backend, config, previous, data, init, arch, pre };
}

interface Model {
  params: Params;
  trainable: Set<string>;
  optimizer: Optimizer;
}

/** The parameters as TF.js variables (trainable per mode) and a fresh optimizer. */
function createModel({ config, init, arch }: RunSetup): Model {
  const uid = `run${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  const trainable = new Set(trainableNames(arch, config.mode, config.lastK));
  const params: Params = new Map();
  for (const [name, t] of init.weights)
    params.set(name, tf.variable(tf.tensor(t.data, t.shape), trainable.has(name), `${uid}/${name}`));
  const optimizer = new Optimizer({
    name: config.optimizer,
    weightDecay: config.weightDecay,
    momentum: config.momentum,
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-8,
  });
  return { params, trainable, optimizer };
}

/** The loop position: the start, or (--resume) the latest checkpoint's weights, optimizer state and position. */
async function resumeState(
  opts: TrainOptions,
  { params, optimizer }: Model,
  log: (line: string) => void,
): Promise<{ loop: LoopState; restart: boolean }> {
  const runDir = opts.runDir;
  let loop: LoopState = {
    epoch: 0,
    batchInEpoch: 0,
    step: 0,
    bestValAcc: -1,
    bestEpoch: -1,
    epochLossSum: 0,
    epochCorrect: 0,
    epochSeen: 0,
  };
  // Killed before its first checkpoint: --resume starts the run over (same config, same seed).
  const restart = !!opts.resume && !(await exists(checkpointFile(runDir, 'latest')));
  if (restart) {
    log(
      `${checkpointFile(runDir, 'latest')} does not exist (the run ended before its first checkpoint); starting it over from the beginning`,
    );
    await fs.rm(checkpointFile(runDir, 'best'), { force: true });
    await truncateMetrics(runDir, 0, 0);
  } else if (opts.resume) {
    const ck = await loadCheckpoint(checkpointFile(runDir, 'latest')).catch(e => {
      throw new TrainingError(`${runDir}: cannot resume (${(e as Error).message})`);
    });
    if (!ck.loop) throw new TrainingError(`${checkpointFile(runDir, 'latest')}: no loop state; cannot resume`);
    for (const [name, t] of ck.weights) params.get(name)?.assign(tf.tensor(t.data, t.shape));
    optimizer.restore(ck.loop.step, ck.optimizer);
    loop = ck.loop;
    await truncateMetrics(runDir, loop.step, loop.epoch);
    log(`resuming at epoch ${loop.epoch + 1}, step ${loop.step}`);
  }
  return { loop, restart };
}

/** The run's state for the epochs: step counts, run.json's record, the checkpoint clock, the unreadable-image warnings. */
function openRun(
  opts: TrainOptions,
  setup: RunSetup,
  model: Model,
  loop: LoopState,
  inputs: PreparedInputs,
  skipped: SkippedFile[],
  log: (line: string) => void,
  pool?: DataParallel,
): TrainingRun {
  const { backend, data, arch, init, pre, previous } = setup;
  const { microPerEpoch, totalSteps, config } = stepPlan(inputs.train.length, setup.config);
  const now = new Date().toISOString();
  const info: RunInfo = {
    format: RUN_FORMAT_VERSION,
    config,
    classes: data.classes,
    backend: backend.name,
    // The wasm backend names one thread; a data-parallel run trains on the pool's threads.
    device: pool ? onThreads(backend.device, pool.threads) : backend.device,
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
    ...bestAccuracy(loop, inputs.val.length > 0),
    trainImages: inputs.train.length,
    valImages: inputs.val.length,
    architecture: arch,
    preprocess: pre,
    initNotes: init.notes,
  };
  const every = opts.checkpointEvery ?? { seconds: DEFAULT_CHECKPOINT_SECONDS };
  const checkpointSteps = 'steps' in every ? every.steps : 0;
  const checkpointSeconds = 'seconds' in every ? every.seconds : 0;
  let lastCheckpoint = Date.now();
  const report: RunReport = { skipped, warnings: [...data.warnings], heldOut: [] };
  const trainable = [...model.trainable];
  const run: TrainingRun = {
    runDir: opts.runDir,
    config,
    arch,
    pre,
    classes: data.classes,
    loader: data.loader,
    params: model.params,
    trainable,
    optimizer: model.optimizer,
    loop,
    inputs,
    info,
    report,
    skipped,
    microPerEpoch,
    totalSteps,
    log,
    logEvery: opts.logEvery ?? 10,
    shouldStop: opts.shouldStop,
    checkpointDue: () =>
      checkpointSteps > 0
        ? run.loop.step % checkpointSteps === 0
        : checkpointSeconds > 0 && Date.now() - lastCheckpoint >= checkpointSeconds * 1000,
    checkpointWritten: () => {
      lastCheckpoint = Date.now();
    },
    warnUnreadable: unreadableWarner(config, data, inputs, skipped, report, log),
    gradients: pool
      ? (input, labels) => pool.gradients(input, labels)
      : async (input, labels) => [
          {
            ...(await lossAndGrads(model.params, arch, trainable, input, labels, config.labelSmoothing)),
            n: labels.length,
          },
        ],
    pool,
  };
  return run;
}

/** The worker threads of a data-parallel run (wasm only), and run.json's note on the thread count. */
async function startThreads(
  opts: TrainOptions,
  { backend, config, arch }: RunSetup,
  model: Model,
): Promise<{ pool?: DataParallel; note: string }> {
  const threads = opts.threads ?? 1;
  if (threads <= 1) return { note: 'threads: 1' };
  if (backend.name !== 'wasm')
    return {
      note: `threads: 1 (${threads} asked for; only the wasm backend trains data-parallel on worker_threads, ${backend.name} uses its own threading)`,
    };
  const pool = await DataParallel.start(threads, model.params, [...model.trainable], arch, config.labelSmoothing);
  return { pool, note: `threads: ${threads} (data-parallel on worker_threads)` };
}

/** Unreadable images are found while caching (head, last-k) or while training (full, augmented): said on stderr as they are found, not only in report.json. */
function unreadableWarner(
  config: TrainConfig,
  data: TrainData,
  inputs: PreparedInputs,
  skipped: SkippedFile[],
  report: RunReport,
  log: (line: string) => void,
): () => void {
  let skipsSaid = data.skipped.length;
  return () => {
    if (skipped.length > skipsSaid) {
      const first = skipped[skipsSaid];
      log(
        `warning: ${skipped.length - skipsSaid} image${skipped.length - skipsSaid > 1 ? 's' : ''} could not be read and ${skipped.length - skipsSaid > 1 ? 'are' : 'is'} left out (listed in report.json), e.g. ${first.reason.startsWith(first.file) ? first.reason : `${first.file}: ${first.reason}`}`,
      );
      skipsSaid = skipped.length;
    }
    const unread = new Set(skipped.map(k => k.file));
    const readable = (s: Sample) => !unread.has(s.file);
    for (const w of classCoverageWarnings(
      config.dataset,
      data.classes,
      [...data.train, ...data.val],
      inputs.train.filter(readable),
      inputs.val.filter(readable),
    )) {
      if (report.warnings.includes(w)) continue;
      report.warnings.push(w);
      log(`warning: ${w}`);
    }
  };
}

/** Before the first step: warnings so far, report.json (a resumed run keeps its best epoch's held-out predictions), the summary line. */
async function startRun(run: TrainingRun, opts: TrainOptions, restart: boolean, setup: RunSetup): Promise<void> {
  const { runDir, report, inputs, config } = run;
  run.warnUnreadable();
  if (!inputs.val.length)
    run.log(
      `note: no validation images: the best epoch is chosen by training accuracy, and no validation accuracy is reported`,
    );
  if (opts.resume && !restart) await carryOverReport(runDir, report);
  await writeReport(runDir, report);
  run.log(
    `training ${inputs.train.length} images (${inputs.val.length} validation), ${run.classes.length} classes, mode ${config.mode}, backend ${setup.backend.name} (${run.info.device ?? setup.backend.device}), ${run.totalSteps} steps`,
  );
}

const released = new WeakSet<TrainingRun>();

/** The status first (a small write): whatever fails next (the export on a full disk), run.json tells the truth. Then the export of the best checkpoint, then the memory. */
async function finishRun(
  run: TrainingRun,
  opts: TrainOptions,
  status: RunInfo['status'],
  reason?: string,
): Promise<void> {
  const { info, runDir } = run;
  info.status = status;
  info.reason = reason;
  info.finishedAt = new Date().toISOString();
  await writeRunInfo(runDir, info);
  try {
    if (status === 'failed') await cleanTempFiles(runDir, run.log);
    if (opts.exportAtEnd !== false && (await exists(checkpointFile(runDir, 'best')))) {
      const { weights } = await loadCheckpoint(checkpointFile(runDir, 'best'));
      await exportHfFolder(exportDir(runDir), run.arch, weights, run.classes, run.pre, {
        vit_lens: { bestEpoch: info.bestEpoch, bestValAcc: info.bestValAcc },
      });
      await writeTrainingSampleOf(exportDir(runDir), run.inputs.train, run.pre);
    }
  } finally {
    if (!released.has(run)) {
      released.add(run);
      for (const v of run.params.values()) v.dispose();
      run.optimizer.dispose();
      await run.inputs.dispose();
      await run.pool?.close();
    }
  }
}

export async function folderData(config: TrainConfig): Promise<TrainData> {
  const ds = await scanDataset(config.dataset, { valSplit: config.valSplit, seed: config.seed });
  // The preprocessing of the initial model (mean/std) is kept; the size follows the training size.
  let pre = defaultPreprocess();
  if (!config.model.startsWith('scratch:')) {
    const dir = (await fs.stat(config.model).catch(() => undefined))?.isDirectory() ? config.model : undefined;
    if (dir)
      pre = await readPreprocessorConfig(
        (await fs.stat(path.join(dir, 'export')).catch(() => undefined)) ? path.join(dir, 'export') : dir,
        [224, 224],
      );
    // An .onnx INIT takes its folder's preprocessing, as the engine does when it classifies with it.
    else if (config.model.toLowerCase().endsWith('.onnx')) {
      const configDir = await onnxConfigDir(config.model);
      if (configDir) pre = await readPreprocessorConfig(configDir, [224, 224]);
    }
  }
  return {
    ...ds,
    loader: async () => {
      throw new Error('loader not set');
    },
    preprocess: pre,
  };
}
