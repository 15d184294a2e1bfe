/**
 * The PyTorch/torchvision references that scripts/make_fixtures.py wrote, as parity.test.ts (CPU)
 * and webgpuParity.test.ts (WebGPU) both use them: the models in each format, the reference input,
 * and the rollout comparison. Not named *.test.ts: the runner does not run it on its own.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { attentionRollout, HeadFusion, LayerAttention } from '../../server/explain/rollout';
import { defaultPreprocess, toPixelValues } from '../../server/preprocess';
import { maxAbsDiff, readF32 } from './arrays';

export const FIXTURES = path.join(__dirname, '..', 'fixtures');

/** A model format: what it is, the model path, and a labels file where the format has none. */
export type ModelKind = [kind: string, model: string, labels?: string];

export const HEAD_FUSIONS: HeadFusion[] = ['mean', 'max', 'min'];

/** torchvision ViT, 224 px, patch 16, 2 layers, 4 heads; references for two photos. */
export const VIT_TINY = (() => {
  const dir = path.join(FIXTURES, 'vit-tiny');
  const T = 197;
  const H = 4;
  const kinds: ModelKind[] = [
    ['torch.onnx export', path.join(dir, 'model.onnx'), path.join(dir, 'google-labels.txt')],
    ['Hugging Face folder (safetensors)', path.join(dir, 'hf')],
    ['Google npz', path.join(dir, 'google.npz'), path.join(dir, 'google-labels.txt')],
  ];
  /** The reference input: PIL-resized photos normalised the ViTImageProcessor way. */
  const input = (): Float32Array => {
    const cfg = defaultPreprocess([224, 224]);
    const per = 3 * 224 * 224;
    const out = new Float32Array(per * 2);
    ['chelsea.pil224.bin', 'coffee.pil224.bin'].forEach((n, i) =>
      toPixelValues(fs.readFileSync(path.join(FIXTURES, 'photos', n)), cfg, out, i * per),
    );
    return out;
  };
  /** Our rollout of each of the two images from `attentions` against PyTorch's map for `fusion` / `discard`: max abs difference per image. */
  const rolloutDiffs = (attentions: { data: unknown }[], fusion: HeadFusion, discard: number): number[] => {
    const refMaps = readF32(path.join(dir, `rollout_${fusion}_${discard.toFixed(1)}.bin`));
    return [0, 1].map(img => {
      const layers: LayerAttention[] = attentions.map(t => ({
        data: t.data as Float32Array,
        offset: img * H * T * T,
        heads: H,
        tokens: T,
      }));
      const map = attentionRollout(
        layers,
        { grid: [14, 14], prefixTokens: 1 },
        { headFusion: fusion, discardRatio: discard },
      );
      return maxAbsDiff(map.values, refMaps.subarray(img * 196, (img + 1) * 196));
    });
  };
  return { dir, T, H, kinds, input, rolloutDiffs };
})();

/** A tanh pre-logits layer, no qkv bias, 32 px, patch 8; its own reference input. */
export const VIT_PRELOGITS = (() => {
  const dir = path.join(FIXTURES, 'vit-prelogits');
  const kinds: ModelKind[] = [
    ['torch.onnx export', path.join(dir, 'model.onnx')],
    ['Hugging Face folder', path.join(dir, 'hf')],
    ['Google npz', path.join(dir, 'google.npz'), path.join(dir, 'google-labels.txt')],
  ];
  return { dir, kinds };
})();
