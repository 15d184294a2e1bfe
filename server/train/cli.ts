/**
 * `vit-lens train | runs | export` — the training engine on the command line.
 *   vit-lens train DATASET_DIR --model INIT --out RUN_DIR [--mode head|last-k|full] …
 *   vit-lens runs [DIR]
 *   vit-lens export RUN_DIR --out MODEL_DIR
 * Exit codes: 0 finished, 1 failed, 2 bad usage, 130 stopped by SIGINT/SIGTERM (resumable).
 */
import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseArgs, ParseArgsConfig } from 'util';
import { BACKEND_NAMES, BackendName, formatListing, listBackends } from './backend';
import { exportRun } from './exportModel';
import { OPTIMIZER_DEFAULTS } from './optimizer';
import { defaultLr, OPTIMIZERS, Range, TRAIN_DEFAULTS, TRAIN_MODES, TRAIN_RANGES as R } from '../../common/training';
import { readMetrics, readRunInfo, RunInfo, TrainConfig } from './runFiles';
import { scanDataset } from './datasetFolder';
import { scratchAdvice } from '../../common/scratchAdvice';
import { train, TrainOptions } from './trainer';
import { shownStatus } from '../../common/runStatus';
import { lastActivity, thisMachine } from '../../extension/runs/runProbes';
import { probePython, referenceBlasWarning, TorchOptions, torchLabel, trainTorch } from './torchBackend';

export const TRAIN_USAGE = `Usage:
  vit-lens train DATASET_DIR --model INIT --out RUN_DIR [--mode head|last-k|full] [--last-k 2]
        [--epochs 10] [--batch-size 32] [--lr LR] [--optimizer adamw|sgd] [--image-size 224]
        [--val-split 0.2] [--seed 0] [--checkpoint-every 5m] [--backend auto] [--resume]
  vit-lens train --list-backends [--json] [--threads N]  what each backend would run on (wasm: on N threads, default all cores), and what auto picks
  vit-lens runs [DIR]                     list runs: status, epoch, best val acc
  vit-lens torch-check [--python PATH] [--json]   the interpreter --backend torch would use, and what it has
  vit-lens export RUN_DIR --out MODEL_DIR  best checkpoint as a Hugging Face folder

INIT: a Hugging Face folder (config.json + model.safetensors), a Google .npz, a ViT exported to .onnx,
one of our run folders, or scratch:tiny|small|base (with --patch 16 --image-size 224).

More training options:
  --weight-decay W      (AdamW 0.05, SGD 0)     --momentum M       SGD momentum (0.9)
  --warmup-steps N      (5% of the steps)       --clip NORM        global-norm clipping (1.0; 0 = off)
  --label-smoothing E   (0)                      --accumulate N     micro-batches per step (1)
  --augment / --no-augment   random-resized-crop + flip (default: on for full, off otherwise)
  --patch P             patch size for scratch models (16)
  --backend B           auto|tensorflow-gpu|webgpu|tensorflow|wasm|cpu (default auto: the first
                        that starts in that order; webgpu only on a hardware adapter, a software
                        one such as lavapipe only when named); --resume keeps the run's
                        backend unless --backend is given; or torch:
                        PyTorch DistributedDataParallel under torchrun (see "Training on PyTorch")
  --threads N           wasm: train data-parallel on N threads (default: all cores)
  --python PATH         (torch) interpreter with PyTorch ≥ 1.13 (default: $VIT_LENS_PYTHON, python3)
  --nproc N             (torch) processes on this machine (default: one per CUDA device, else 1)
  --device cuda|cpu     (torch) default cuda when PyTorch sees a GPU (NCCL + mixed precision), else cpu (gloo)
  --nnodes M --node-rank K --rdzv-endpoint HOST:PORT
                        (torch) multi-node: one command per node, same --out on a shared folder
  --cache-dir DIR       feature cache (default: $VIT_LENS_CACHE or ~/.cache/vit-lens)
  --checkpoint-every N  within an epoch, checkpoint every N optimizer steps, or every Ns / Nm
                        (default 5m; 0 = at epoch ends only); also allowed with --resume

RUN_DIR must be new, empty, or (with --resume) one of our runs; a run folder is locked
(RUN_DIR/run.lock) while a trainer uses it.
`;

const OPTIONS = {
  model: { type: 'string', short: 'm' },
  out: { type: 'string', short: 'o' },
  mode: { type: 'string' },
  'last-k': { type: 'string' },
  epochs: { type: 'string' },
  'batch-size': { type: 'string' },
  lr: { type: 'string' },
  optimizer: { type: 'string' },
  'weight-decay': { type: 'string' },
  momentum: { type: 'string' },
  'warmup-steps': { type: 'string' },
  clip: { type: 'string' },
  'label-smoothing': { type: 'string' },
  accumulate: { type: 'string' },
  augment: { type: 'boolean' },
  'no-augment': { type: 'boolean' },
  'image-size': { type: 'string' },
  patch: { type: 'string' },
  'val-split': { type: 'string' },
  seed: { type: 'string' },
  resume: { type: 'boolean' },
  'checkpoint-every': { type: 'string' },
  backend: { type: 'string' },
  threads: { type: 'string' },
  'list-backends': { type: 'boolean' },
  'cache-dir': { type: 'string' },
  python: { type: 'string' },
  nproc: { type: 'string' },
  device: { type: 'string' },
  nnodes: { type: 'string' },
  'node-rank': { type: 'string' },
  'rdzv-endpoint': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

export class TrainUsageError extends Error {}

function num(v: string | undefined, name: string, range: Range): number | undefined;
function num(v: string | undefined, name: string, lo: number, hi: number, integer?: boolean): number | undefined;
function num(v: string | undefined, name: string, a: Range | number, b?: number, c = false): number | undefined {
  const { lo, hi, integer } = typeof a === 'number' ? { lo: a, hi: b!, integer: c } : a;
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < lo || n > hi || (integer && !Number.isInteger(n))) {
    throw new TrainUsageError(`--${name} must be ${integer ? 'an integer' : 'a number'} in [${lo}, ${hi}], got "${v}"`);
  }
  return n;
}

function imageSize(v: string | undefined): [number, number] | undefined {
  if (v === undefined) return undefined;
  const m = /^(\d+)(?:x(\d+))?$/.exec(v);
  if (!m) throw new TrainUsageError(`--image-size must be N or HxW, got "${v}"`);
  const size: [number, number] = [Number(m[1]), Number(m[2] ?? m[1])];
  const { lo, hi } = R.imageSize;
  if (size.some(n => n < lo || n > hi))
    throw new TrainUsageError(`--image-size must be in [${lo}, ${hi}] per side, got "${v}"`);
  return size;
}

/** --checkpoint-every: N optimizer steps, or a time (Ns, Nm); 0 turns mid-epoch checkpoints off. */
export function checkpointEvery(v: string | undefined): TrainOptions['checkpointEvery'] {
  if (v === undefined) return undefined;
  const m = /^(\d+(?:\.\d+)?)(s|m)?$/.exec(v.trim());
  if (!m || (!m[2] && !Number.isInteger(Number(m[1]))))
    throw new TrainUsageError(
      `--checkpoint-every must be a number of steps (500), seconds (90s) or minutes (5m), got "${v}"`,
    );
  const n = Number(m[1]);
  return m[2] ? { seconds: m[2] === 'm' ? n * 60 : n } : { steps: n };
}

export function configFromArgs(positionals: string[], o: Record<string, string | boolean | undefined>): TrainConfig {
  const s = (k: string) => o[k] as string | undefined;
  if (positionals.length !== 1) throw new TrainUsageError('train needs exactly one DATASET_DIR');
  if (!s('model'))
    throw new TrainUsageError(
      'train needs --model INIT (a model folder, .npz, .onnx, run folder or scratch:tiny|small|base)',
    );
  const mode = (s('mode') ?? 'head') as TrainConfig['mode'];
  if (!TRAIN_MODES.includes(mode)) throw new TrainUsageError(`--mode must be head, last-k or full, got "${mode}"`);
  const optimizer = (s('optimizer') ?? 'adamw') as TrainConfig['optimizer'];
  if (!OPTIMIZERS.includes(optimizer))
    throw new TrainUsageError(`--optimizer must be adamw or sgd, got "${optimizer}"`);
  if (o.augment && o['no-augment']) throw new TrainUsageError('--augment and --no-augment contradict each other');
  const d = OPTIMIZER_DEFAULTS[optimizer];
  return {
    dataset: path.resolve(positionals[0]),
    model: s('model')!.startsWith('scratch:') ? s('model')! : path.resolve(s('model')!),
    mode,
    lastK: num(s('last-k'), 'last-k', R.lastK) ?? TRAIN_DEFAULTS.lastK,
    epochs: num(s('epochs'), 'epochs', R.epochs) ?? TRAIN_DEFAULTS.epochs,
    batchSize: num(s('batch-size'), 'batch-size', R.batchSize) ?? TRAIN_DEFAULTS.batchSize,
    accumulate: num(s('accumulate'), 'accumulate', R.accumulate) ?? TRAIN_DEFAULTS.accumulate,
    lr: num(s('lr'), 'lr', R.lr) ?? defaultLr(optimizer, mode, s('model')!.startsWith('scratch:')),
    optimizer,
    weightDecay: num(s('weight-decay'), 'weight-decay', R.weightDecay) ?? d.weightDecay,
    momentum: num(s('momentum'), 'momentum', R.momentum) ?? d.momentum,
    warmupSteps: num(s('warmup-steps'), 'warmup-steps', R.warmupSteps) ?? -1,
    clipNorm: num(s('clip'), 'clip', R.clipNorm) ?? TRAIN_DEFAULTS.clipNorm,
    labelSmoothing: num(s('label-smoothing'), 'label-smoothing', R.labelSmoothing) ?? TRAIN_DEFAULTS.labelSmoothing,
    augment: o.augment ? true : o['no-augment'] ? false : mode === 'full',
    imageSize: imageSize(s('image-size')),
    patchSize: num(s('patch'), 'patch', R.patchSize),
    valSplit: num(s('val-split'), 'val-split', R.valSplit) ?? TRAIN_DEFAULTS.valSplit,
    seed: num(s('seed'), 'seed', R.seed) ?? TRAIN_DEFAULTS.seed,
  };
}

export async function runTrainCommand(command: string, args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (e) {
    process.stderr.write(`vit-lens ${command}: ${(e as Error).message}\n\n${TRAIN_USAGE}`);
    return 2;
  }
  const { values: o, positionals } = parsed;
  if (o.help) {
    process.stdout.write(TRAIN_USAGE);
    return 0;
  }
  try {
    if (command === 'runs') return await listRuns(positionals[0] ?? '.', !!o.json);
    if (command === 'torch-check') return torchCheck(o.python, !!o.json);
    if (command === 'export') {
      if (positionals.length !== 1 || !o.out) throw new TrainUsageError('export needs RUN_DIR and --out MODEL_DIR');
      const { checkpoint } = await exportRun(positionals[0], o.out);
      process.stdout.write(`exported ${checkpoint} to ${o.out}\n`);
      return 0;
    }
    if (command !== 'train') throw new TrainUsageError(`unknown command "${command}"`);
    if (o['list-backends']) {
      const listing = await listBackends(num(o.threads, 'threads', 1, 1024, true) ?? os.availableParallelism());
      process.stdout.write(o.json ? JSON.stringify(listing) + '\n' : formatListing(listing));
      return 0;
    }
    if (!o.out) throw new TrainUsageError('train needs --out RUN_DIR');
    const config = o.resume ? ({} as TrainConfig) : configFromArgs(positionals, o);
    if (o.backend === 'torch' || (o.resume && (await readRunInfo(o.out).catch(() => undefined))?.backend === 'torch')) {
      return await runTorchTraining(o.out, config, !!o.resume, torchOptions(o), checkpointEvery(o['checkpoint-every']));
    }
    const threads = num(o.threads, 'threads', 1, 1024, true) ?? os.availableParallelism();
    let backend = backendOption(o.backend);
    // A resumed run keeps its backend: another one would not continue it bit for bit.
    if (o.resume && o.backend === undefined)
      backend = await readRunInfo(o.out).then(
        i => ((BACKEND_NAMES as readonly string[]).includes(i.backend) ? (i.backend as BackendName) : undefined),
        () => undefined,
      );
    return await runTraining(
      o.out,
      config,
      !!o.resume,
      backend,
      o['cache-dir'],
      checkpointEvery(o['checkpoint-every']),
      threads,
    );
  } catch (e) {
    if (e instanceof TrainUsageError) {
      process.stderr.write(`vit-lens ${command}: ${e.message}\n\n${TRAIN_USAGE}`);
      return 2;
    }
    process.stderr.write(`vit-lens ${command}: error: ${(e as Error).message}\n`);
    if (process.env.VIT_LENS_DEBUG) process.stderr.write(`${(e as Error).stack}\n`);
    return 1;
  }
}

/** --backend: undefined for auto. */
function backendOption(v: string | undefined): BackendName | undefined {
  if (v === undefined || v === 'auto') return undefined;
  if (!(BACKEND_NAMES as readonly string[]).includes(v))
    throw new TrainUsageError(`--backend must be auto, ${BACKEND_NAMES.join(', ')}, got "${v}"`);
  return v as BackendName;
}

async function runTraining(
  out: string,
  config: TrainConfig,
  resume: boolean,
  backend: BackendName | undefined,
  cacheDir: string | undefined,
  every: TrainOptions['checkpointEvery'],
  threads: number,
): Promise<number> {
  let stop = false;
  // First signal: finish the current step, checkpoint, exit "stopped". A second one kills as usual.
  const onSignal = (sig: NodeJS.Signals) => {
    if (stop) process.exit(130); // the run lock goes with the 'exit' event
    stop = true;
    process.stderr.write(`\n${sig}: stopping after the current step (again to abort)\n`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  if (!resume && config.model.startsWith('scratch:')) {
    // A listing only (no decoding); a dataset error is left for train() to report.
    const ds = await scanDataset(config.dataset, { valSplit: config.valSplit, seed: config.seed }).catch(
      () => undefined,
    );
    const advice = ds && scratchAdvice(config.model, ds.train.length);
    if (advice) process.stderr.write(`note: ${advice}\n`);
  }
  const info = await train({
    runDir: out,
    config,
    resume,
    backend,
    cacheDir,
    checkpointEvery: every,
    threads,
    shouldStop: () => stop,
    log: l => process.stderr.write(l + '\n'),
  });
  process.stdout.write(`${info.status}: ${out} (epoch ${info.epoch}/${info.totalEpochs}${bestText(info)})\n`);
  return info.status === 'stopped' ? 130 : 0;
}

/** What --backend torch would find (the Fine-tune form asks this): exit 0 when it can train, 1 with the reason when not. */
function torchCheck(python: string | undefined, json: boolean): number {
  try {
    const p = probePython(python);
    const blas = referenceBlasWarning(p);
    process.stdout.write(
      json
        ? JSON.stringify({ ...p, label: torchLabel(p) }) + '\n'
        : `${torchLabel(p)}: ${p.python}${p.executable !== p.python ? ` (runs ${p.executable})` : ''}, torch ${p.torch}\n` +
            (blas ? `warning: ${blas}\n` : ''),
    );
    return 0;
  } catch (e) {
    process.stdout.write(json ? JSON.stringify({ error: (e as Error).message }) + '\n' : `${(e as Error).message}\n`);
    return 1;
  }
}

/** --backend torch's own flags. */
function torchOptions(o: Record<string, string | boolean | undefined>): TorchOptions {
  const s = (k: string) => o[k] as string | undefined;
  const device = s('device');
  if (device && !['cuda', 'cpu'].includes(device))
    throw new TrainUsageError(`--device must be cuda or cpu, got "${device}"`);
  const nnodes = num(s('nnodes'), 'nnodes', 1, 100000, true);
  const endpoint = s('rdzv-endpoint');
  if (nnodes && nnodes > 1 && !/^[^:]+:\d+$/.test(endpoint ?? ''))
    throw new TrainUsageError("--nnodes > 1 needs --rdzv-endpoint HOST:PORT (node 0's address) and --node-rank K");
  return {
    python: s('python'),
    nproc: num(s('nproc'), 'nproc', 1, 4096, true),
    device: device as TorchOptions['device'],
    nnodes,
    nodeRank: num(s('node-rank'), 'node-rank', 0, 100000, true),
    rdzvEndpoint: endpoint,
  };
}

async function runTorchTraining(
  out: string,
  config: TrainConfig,
  resume: boolean,
  torch: TorchOptions,
  every: TrainOptions['checkpointEvery'],
): Promise<number> {
  let request: ((level: 1 | 2) => void) | undefined;
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals++;
    if (signals === 1) process.stderr.write(`\n${sig}: stopping all ranks after the current step (again to abort)\n`);
    request?.(signals === 1 ? 1 : 2);
    if (signals > 1) process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const info = await trainTorch({
    runDir: out,
    config,
    resume,
    torch,
    checkpointEvery: every,
    log: l => process.stderr.write(l + '\n'),
    onStopRequest: r => {
      request = r;
      if (signals) r(1);
    },
  });
  process.stdout.write(`${info.status}: ${out} (epoch ${info.epoch}/${info.totalEpochs}${bestText(info)})\n`);
  return info.status === 'stopped' ? 130 : 0;
}

/** The best epoch, never calling training accuracy validation accuracy. */
function bestText(info: RunInfo): string {
  const at = `at epoch ${(info.bestEpoch ?? 0) + 1}`;
  if (info.bestValAcc !== undefined) return `, best val acc ${(info.bestValAcc * 100).toFixed(2)}% ${at}`;
  if (info.bestTrainAcc !== undefined)
    return `, no validation set: best train acc ${(info.bestTrainAcc * 100).toFixed(2)}% ${at}`;
  return '';
}

async function findRuns(dir: string): Promise<string[]> {
  if (await fs.stat(path.join(dir, 'run.json')).catch(() => undefined)) return [dir];
  const entries = await fs.readdir(dir, { withFileTypes: true }).catch(() => {
    throw new Error(`${dir}: cannot list folder`);
  });
  const out: string[] = [];
  for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    if (e.isDirectory() && (await fs.stat(path.join(dir, e.name, 'run.json')).catch(() => undefined)))
      out.push(path.join(dir, e.name));
  }
  return out;
}

async function listRuns(dir: string, json: boolean): Promise<number> {
  const runs = await findRuns(dir);
  const rows: Record<string, unknown>[] = [];
  for (const r of runs) {
    try {
      const info = await readRunInfo(r);
      const last = (await readMetrics(r)).filter(m => m.type === 'epoch').pop();
      // The Runs view's rule (one function for both): a crashed run is "interrupted", another host's live run "running".
      const { status, elsewhere } = shownStatus(info, await lastActivity(r), { ...thisMachine(), now: Date.now() });
      rows.push({
        run: r,
        status,
        elsewhere: !!elsewhere,
        pid: info.pid,
        host: info.host ?? null,
        epoch: info.epoch,
        epochs: info.totalEpochs,
        validation: info.valImages > 0,
        bestValAcc: info.bestValAcc ?? null,
        bestTrainAcc: info.bestTrainAcc ?? null,
        lastValAcc: last && 'valAcc' in last ? (last.valAcc ?? null) : null,
        mode: info.config.mode,
        backend: info.backend,
        updatedAt: info.updatedAt,
      });
    } catch (e) {
      rows.push({ run: r, status: 'unreadable', error: (e as Error).message });
    }
  }
  if (json) {
    process.stdout.write(JSON.stringify({ runs: rows }) + '\n');
    return 0;
  }
  if (!rows.length) {
    process.stdout.write(`no runs under ${dir}\n`);
    return 0;
  }
  const pct = (v: unknown) => (typeof v === 'number' ? `${(v * 100).toFixed(2)}%` : '-');
  process.stdout.write(`${'RUN'.padEnd(40)} ${'STATUS'.padEnd(12)} ${'EPOCH'.padEnd(8)} BEST VAL ACC\n`);
  for (const r of rows) {
    const best =
      r.validation === false ? `none (no validation set; best train acc ${pct(r.bestTrainAcc)})` : pct(r.bestValAcc);
    const where = r.elsewhere ? `  (on ${r.host ?? 'another machine'}, pid ${r.pid})` : '';
    process.stdout.write(
      `${String(r.run).padEnd(40)} ${String(r.status).padEnd(12)} ${`${r.epoch ?? '-'}/${r.epochs ?? '-'}`.padEnd(8)} ${best}${where}\n`,
    );
  }
  return 0;
}
