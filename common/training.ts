/**
 * Training choices, defaults and ranges that the trainer's CLI (server/train/cli.ts) and the
 * Fine-tune flow (extension/runs/trainArgs.ts) share, so that what the form offers is what the
 * trainer does.
 */

export const TRAIN_MODES = ['head', 'last-k', 'full'] as const;
export type Mode = (typeof TRAIN_MODES)[number];

export const OPTIMIZERS = ['adamw', 'sgd'] as const;
export type Optimizer = (typeof OPTIMIZERS)[number];

/** The trainer's learning rate when none is given. */
export function defaultLr(optimizer: Optimizer, mode: Mode, scratch: boolean): number {
  if (optimizer === 'sgd') return mode === 'head' ? 0.1 : 0.01;
  if (scratch) return 1e-3;
  return mode === 'head' ? 1e-3 : mode === 'last-k' ? 3e-4 : 1e-4;
}

/** DeiT/ViT sizes for `scratch:tiny|small|base` (Touvron et al. 2021; Dosovitskiy et al. 2020). */
export const SCRATCH_PRESETS = {
  tiny: { hiddenSize: 192, numLayers: 12, numHeads: 3, mlpSize: 768 },
  small: { hiddenSize: 384, numLayers: 12, numHeads: 6, mlpSize: 1536 },
  base: { hiddenSize: 768, numLayers: 12, numHeads: 12, mlpSize: 3072 },
} as const;
export type ScratchSize = keyof typeof SCRATCH_PRESETS;

/** Scratch models' input and patch size unless --image-size / --patch say otherwise. */
export const SCRATCH_IMAGE_SIZE = 224;
export const SCRATCH_PATCH_SIZE = 16;

/** A numeric training option's allowed values. */
export interface Range {
  lo: number;
  hi: number;
  integer: boolean;
}

/** The ranges the CLI enforces and the Fine-tune form checks as the user types. */
export const TRAIN_RANGES = {
  lastK: { lo: 1, hi: 1000, integer: true },
  epochs: { lo: 1, hi: 100000, integer: true },
  batchSize: { lo: 1, hi: 65536, integer: true },
  accumulate: { lo: 1, hi: 4096, integer: true },
  lr: { lo: 0, hi: 100, integer: false },
  weightDecay: { lo: 0, hi: 10, integer: false },
  momentum: { lo: 0, hi: 0.9999, integer: false },
  warmupSteps: { lo: 0, hi: 1e9, integer: true },
  clipNorm: { lo: 0, hi: 1e9, integer: false },
  labelSmoothing: { lo: 0, hi: 0.999, integer: false },
  patchSize: { lo: 1, hi: 1024, integer: true },
  imageSize: { lo: 8, hi: 4096, integer: true },
  valSplit: { lo: 0, hi: 0.9, integer: false },
  seed: { lo: 0, hi: 2 ** 31, integer: true },
} as const satisfies Record<string, Range>;

/** What the trainer uses when an option is not given (the learning rate: defaultLr; weight decay and momentum: per optimizer). */
export const TRAIN_DEFAULTS = {
  lastK: 2,
  epochs: 10,
  batchSize: 32,
  accumulate: 1,
  clipNorm: 1,
  labelSmoothing: 0,
  valSplit: 0.2,
  seed: 0,
} as const;
