/**
 * How many images one classification run takes, by device. On the CPU, 8: every core is already
 * busy inside one image's matrix products, so bigger batches only add memory (the size that has
 * always been used). On a GPU, as many as fit a fixed activation budget, because a GPU is only
 * kept busy by many images per run: the activations one image needs are estimated from the model's
 * shape, the budget divided by them, rounded down to a power of two, and kept within 1…64.
 */
import type { Provider } from './inference';

export const CPU_BATCH = 8;
export const GPU_BATCH_MAX = 64;
/**
 * fp32 activations one GPU run may hold: 1 GiB leaves room for the weights (1.2 GB for ViT-L fp32)
 * and the display on a 4 GB card, the smallest a ViT is likely to run on.
 */
export const GPU_ACTIVATION_BUDGET_BYTES = 2 ** 30;

export interface BatchShape {
  imageSize: [number, number];
  /** Unknown for an .onnx file without attention outputs: then the ViT-B defaults. */
  patchSize?: number;
  numLayers: number;
  numHeads?: number;
  hiddenSize?: number;
  mlpSize?: number;
}

/**
 * Bytes of fp32 activations per image: every layer's attention probabilities (graph outputs, so
 * they may all be alive at the end of a run: layers × heads × tokens²) plus one layer's widest
 * working set (the MLP's hidden activations and four token × width tensors).
 */
export function activationBytesPerImage(s: BatchShape): number {
  const patch = s.patchSize ?? 16;
  const tokens = Math.floor(s.imageSize[0] / patch) * Math.floor(s.imageSize[1] / patch) + 1;
  const heads = s.numHeads ?? 12;
  const hidden = s.hiddenSize ?? 64 * heads; // ViTs use 64-wide heads
  const mlp = s.mlpSize ?? 4 * hidden;
  return 4 * (s.numLayers * heads * tokens * tokens + tokens * (mlp + 4 * hidden));
}

export function classifyBatchSize(provider: Provider, shape: BatchShape): number {
  if (provider === 'cpu') return CPU_BATCH;
  const fits = Math.floor(GPU_ACTIVATION_BUDGET_BYTES / activationBytesPerImage(shape));
  if (fits < 1) return 1;
  return Math.min(GPU_BATCH_MAX, 2 ** Math.floor(Math.log2(fits)));
}
