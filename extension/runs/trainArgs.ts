/**
 * Fine-tune answers → `vit-lens train` arguments, the default run name and the input checks.
 * Pure (no `vscode`): the unit tests check it, and an integration test runs the CLI with its output.
 * The ranges match server/train/cli.ts, so what passes here is not refused by the trainer; the
 * learning-rate default is the trainer's own (common/training.ts).
 */
import * as os from 'node:os';
import * as path from 'node:path';
import {
  defaultLr,
  type Mode,
  type Optimizer,
  type Range,
  TRAIN_DEFAULTS,
  TRAIN_RANGES as R,
} from '../../common/training';

export { defaultLr } from '../../common/training';
export type { Mode, Optimizer } from '../../common/training';
/** The form's backend choices: the trainer's `auto`, or one forced (`--backend webgpu|wasm`). */
export type TrainBackend = 'auto' | 'webgpu' | 'wasm';

export interface FineTuneAnswers {
  /** A model folder, .npz, run folder or scratch:tiny|small|base. */
  model: string;
  mode: Mode;
  epochs: number;
  /** undefined: the trainer's default for the optimizer and mode. */
  lr?: number;
  /** Square input size; undefined: the model's own. */
  imageSize?: number;
  batchSize: number;
  optimizer: Optimizer;
  valSplit: number;
  seed: number;
  /** undefined: the trainer's default (on for full, off otherwise). */
  augment?: boolean;
  lastK: number;
  labelSmoothing: number;
  /** undefined: the optimizer's default. */
  weightDecay?: number;
  /** Training threads (wasm backend); undefined: the trainer's default, all cores. */
  threads?: number;
  /** Train with PyTorch (--backend torch) using this interpreter; undefined: the built-in trainer. */
  torchPython?: string;
  /** undefined: auto (the trainer picks). */
  backend?: TrainBackend;
}

export const DEFAULT_ANSWERS: Omit<FineTuneAnswers, 'model'> = {
  mode: 'head',
  epochs: TRAIN_DEFAULTS.epochs,
  batchSize: TRAIN_DEFAULTS.batchSize,
  optimizer: 'adamw',
  valSplit: TRAIN_DEFAULTS.valSplit,
  seed: TRAIN_DEFAULTS.seed,
  lastK: TRAIN_DEFAULTS.lastK,
  labelSmoothing: TRAIN_DEFAULTS.labelSmoothing,
};

/** Training threads launched from the editor: all cores but one, which stays with the editor. */
export function editorTrainThreads(cores = os.availableParallelism()): number {
  return Math.max(1, cores - 1);
}

export function effectiveLr(a: FineTuneAnswers): number {
  return a.lr ?? defaultLr(a.optimizer, a.mode, a.model.startsWith('scratch:'));
}

const two = (n: number) => String(n).padStart(2, '0');

/** `<dataset>-<mode>-<yyyymmdd-HHMMSS>`, with -2, -3 … when taken. */
export function defaultRunName(dataset: string, mode: Mode, now: Date, taken: (name: string) => boolean): string {
  const ds = path.basename(dataset.replace(/[\\/]+$/, '')).replace(/[^\w.-]+/g, '_') || 'dataset';
  const stamp = `${now.getFullYear()}${two(now.getMonth() + 1)}${two(now.getDate())}-${two(now.getHours())}${two(now.getMinutes())}${two(now.getSeconds())}`;
  const base = `${ds}-${mode}-${stamp}`;
  let name = base;
  for (let i = 2; taken(name); i++) name = `${base}-${i}`;
  return name;
}

export function trainArgs(dataset: string, runDir: string, a: FineTuneAnswers, cacheDir?: string): string[] {
  const args = ['train', dataset, '--out', runDir, '--model', a.model, '--mode', a.mode, '--epochs', String(a.epochs)];
  if (a.mode === 'last-k') args.push('--last-k', String(a.lastK));
  if (a.lr !== undefined) args.push('--lr', String(a.lr));
  if (a.imageSize !== undefined) args.push('--image-size', String(a.imageSize));
  args.push(
    '--batch-size',
    String(a.batchSize),
    '--optimizer',
    a.optimizer,
    '--val-split',
    String(a.valSplit),
    '--seed',
    String(a.seed),
  );
  if (a.augment !== undefined) args.push(a.augment ? '--augment' : '--no-augment');
  if (a.labelSmoothing) args.push('--label-smoothing', String(a.labelSmoothing));
  if (a.weightDecay !== undefined) args.push('--weight-decay', String(a.weightDecay));
  // PyTorch (its own row in the form) takes precedence over the TF.js backend and its threads.
  if (a.torchPython) args.push('--backend', 'torch', '--python', a.torchPython);
  else {
    if (a.backend && a.backend !== 'auto') args.push('--backend', a.backend);
    if (a.threads !== undefined) args.push('--threads', String(a.threads));
  }
  if (cacheDir) args.push('--cache-dir', cacheDir);
  return args;
}

export function resumeArgs(runDir: string, cacheDir?: string, threads?: number): string[] {
  return [
    'train',
    '--out',
    runDir,
    '--resume',
    ...(cacheDir ? ['--cache-dir', cacheDir] : []),
    ...(threads !== undefined ? ['--threads', String(threads)] : []),
  ];
}

// ---- input checks: undefined when fine, else the message shown under the input box ----

function number(v: string, what: string, { lo, hi, integer }: Range): string | undefined {
  const t = v.trim();
  const n = Number(t);
  if (!t || !Number.isFinite(n)) return `${what} must be a number`;
  if (integer && !Number.isInteger(n)) return `${what} must be a whole number`;
  if (n < lo || n > hi) return `${what} must be between ${lo} and ${hi}`;
  return undefined;
}

export const check = {
  epochs: (v: string) => number(v, 'Epochs', R.epochs),
  lr: (v: string) =>
    number(v, 'Learning rate', R.lr) ?? (Number(v) === 0 ? 'A learning rate of 0 trains nothing' : undefined),
  batchSize: (v: string) => number(v, 'Batch size', R.batchSize),
  valSplit: (v: string) => number(v, 'Validation split', R.valSplit),
  seed: (v: string) => number(v, 'Seed', R.seed),
  lastK: (v: string, layers?: number) => number(v, 'k', { ...R.lastK, hi: layers ?? R.lastK.hi }),
  labelSmoothing: (v: string) => number(v, 'Label smoothing', R.labelSmoothing),
  weightDecay: (v: string) => (v.trim() === '' ? undefined : number(v, 'Weight decay', R.weightDecay)),
  imageSize(v: string, patch?: number): string | undefined {
    const bad = number(v, 'Image size', R.imageSize);
    if (bad) return bad;
    if (patch && Number(v) % patch !== 0) return `Image size must be a multiple of the patch size (${patch})`;
    return undefined;
  },
  runName(v: string, taken: (name: string) => boolean): string | undefined {
    const t = v.trim();
    if (!t) return 'A run needs a name';
    // eslint-disable-next-line no-control-regex -- control characters are what this refuses
    if (/[\\/:*?"<>|\u0000-\u001f]/.test(t) || t === '.' || t === '..')
      return 'Use letters, digits, "-", "_" and "." (the name becomes a folder)';
    if (taken(t)) return `A run named "${t}" already exists`;
    return undefined;
  },
};
