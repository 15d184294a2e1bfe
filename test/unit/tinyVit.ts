/** A tiny ViT (32 px, patch 8, 2 layers, 2 heads) with seeded random weights, for graph-level tests. */
import { ViTArch, W } from '../../server/model/vitConfig';
import { WeightMap } from '../../server/model/tensor';

export const TINY: ViTArch = {
  hiddenSize: 32,
  numLayers: 2,
  numHeads: 2,
  mlpSize: 64,
  patchSize: 8,
  imageSize: [32, 32],
  numChannels: 3,
  layerNormEps: 1e-6,
  qkvBias: true,
  numClasses: 5,
};

export const TINY_TOKENS = 1 + (32 / 8) * (32 / 8);

/** Deterministic pseudo-random weights (mulberry32) for `arch`, scaled so attention is peaked and logits spread. */
export function randomWeights(arch: ViTArch, seed = 1): WeightMap {
  let s = seed >>> 0;
  const rand = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296 - 0.5;
  };
  const m: WeightMap = new Map();
  const put = (name: string, shape: number[], scale = 0.2) => {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) data[i] = rand() * scale;
    m.set(name, { shape, data });
  };
  const D = arch.hiddenSize;
  const P = arch.patchSize;
  put(W.clsToken, [1, 1, D]);
  put(W.posEmbed, [1, 1 + (arch.imageSize[0] / P) * (arch.imageSize[1] / P), D]);
  put(W.patchWeight, [D, arch.numChannels, P, P], 0.1);
  put(W.patchBias, [D]);
  for (let i = 0; i < arch.numLayers; i++) {
    const l = W.layer(i);
    for (const n of [l.norm1Bias, l.norm2Bias, l.projBias, l.fc2Bias]) put(n, [D]);
    for (const n of [l.norm1Weight, l.norm2Weight]) put(n, [D], 2);
    for (const n of [l.qWeight, l.kWeight, l.vWeight, l.projWeight]) put(n, [D, D], 0.6);
    if (arch.qkvBias) for (const n of [l.qBias, l.kBias, l.vBias]) put(n, [D]);
    put(l.fc1Weight, [arch.mlpSize, D], 0.6);
    put(l.fc1Bias, [arch.mlpSize]);
    put(l.fc2Weight, [D, arch.mlpSize], 0.4);
  }
  put(W.finalNormWeight, [D], 2);
  put(W.finalNormBias, [D]);
  if (arch.preLogitsSize) {
    put(W.preLogitsWeight, [arch.preLogitsSize, D], 0.6);
    put(W.preLogitsBias, [arch.preLogitsSize]);
  }
  put(W.headWeight, [arch.numClasses, arch.preLogitsSize ?? D], 0.6);
  put(W.headBias, [arch.numClasses]);
  return m;
}
