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
