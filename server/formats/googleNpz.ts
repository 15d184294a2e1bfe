/**
 * Google `vision_transformer` (flax) .npz checkpoints → canonical weights (vitConfig.ts `W`).
 *
 * The npz carries no config, so the architecture is read off the tensor shapes. Flax kernels are
 * (in, out) and attention kernels keep heads as separate axes; canonical linear weights are
 * (out, in) like PyTorch.
 */
import { numel, permute, Tensor, transpose2d, WeightMap } from '../model/tensor';
import { checkWeights, ViTArch, W } from '../model/vitConfig';
import { readNpz } from './npz';

/** Wrappers some checkpoints put around the parameter tree (flax optimizer state, `params` collections). */
const KEY_PREFIXES = ['opt/target/', 'params/'];
/** Flax optimizer state next to `opt/target/` (moments can be twice the weights' size): never decoded. */
const OPTIMIZER_STATE = /^opt\/(?!target\/)/;

const BLOCK_KEY = /^Transformer\/encoderblock_(\d+)\//;

export async function loadGoogleNpz(file: string): Promise<{ arch: ViTArch; weights: WeightMap }> {
  const raw = await readNpz(file, { include: name => !OPTIMIZER_STATE.test(name) });
  const npz = new Map<string, Tensor>();
  for (const [key, t] of raw) npz.set(stripPrefix(key), t);
  if (!npz.has('embedding/kernel')) {
    throw new Error(`${file}: no "embedding/kernel" key, so not a Google vision_transformer checkpoint`);
  }

  const used = new Set<string>();
  /** Canonical name → the npz key it came from, so shape errors can name the key the user can see. */
  const origin = new Map<string, string>();
  const get = (key: string): Tensor => {
    const t = npz.get(key);
    if (!t) throw new Error(`${file}: missing key "${key}"`);
    used.add(key);
    return t;
  };
  const has = (key: string) => npz.has(key);
  const expectRank = (key: string, t: Tensor, rank: number, layout: string) => {
    if (t.shape.length !== rank) {
      throw new Error(`${file}: key "${key}" has shape [${t.shape.join(', ')}], expected rank ${rank} (${layout})`);
    }
  };

  const weights: WeightMap = new Map();
  const put = (name: string, key: string, t: Tensor) => {
    weights.set(name, t);
    origin.set(name, key);
  };

  // Architecture from the shapes.
  const patchKernel = get('embedding/kernel');
  expectRank('embedding/kernel', patchKernel, 4, '[P, P, C, D]');
  const [P, P2, C, D] = patchKernel.shape;
  if (P !== P2) throw new Error(`${file}: key "embedding/kernel" has non-square patches ${P}x${P2}`);
  if (!has('cls')) {
    throw new Error(`${file}: no "cls" token; ViTs that pool by global averaging (classifier="gap") are not supported`);
  }
  const posKey = 'Transformer/posembed_input/pos_embedding';
  const pos = get(posKey);
  expectRank(posKey, pos, 3, '[1, 1 + N, D]');
  const side = Math.round(Math.sqrt(pos.shape[1] - 1));
  if (side * side !== pos.shape[1] - 1) {
    throw new Error(`${file}: key "${posKey}" has ${pos.shape[1] - 1} patch positions, not a square grid`);
  }
  const numLayers = countLayers(file, npz);
  const q0Key = 'Transformer/encoderblock_0/MultiHeadDotProductAttention_1/query/kernel';
  const q0 = get(q0Key);
  expectRank(q0Key, q0, 3, '[D, H, dh]');
  const mlp0Key = 'Transformer/encoderblock_0/MlpBlock_3/Dense_0/kernel';
  const mlp0 = get(mlp0Key);
  expectRank(mlp0Key, mlp0, 2, '[D, M]');
  const head = get('head/kernel');
  expectRank('head/kernel', head, 2, '[D or R, K]');
  const hasPreLogits = has('pre_logits/kernel');

  const arch: ViTArch = {
    hiddenSize: D,
    numLayers,
    numHeads: q0.shape[1],
    mlpSize: mlp0.shape[1],
    patchSize: P,
    imageSize: [side * P, side * P],
    numChannels: C,
    layerNormEps: 1e-6, // flax.linen.LayerNorm's default
    qkvBias: has('Transformer/encoderblock_0/MultiHeadDotProductAttention_1/query/bias'),
    numClasses: head.shape[1],
  };

  // Embeddings. HWIO → OIHW: out[d][c][y][x] = in[y][x][c][d].
  put(W.patchWeight, 'embedding/kernel', permute(patchKernel, [3, 2, 0, 1]));
  put(W.patchBias, 'embedding/bias', get('embedding/bias'));
  put(W.clsToken, 'cls', get('cls'));
  put(W.posEmbed, posKey, pos);

  for (let i = 0; i < numLayers; i++) {
    const b = `Transformer/encoderblock_${i}/`;
    const l = W.layer(i);
    const attn = `${b}MultiHeadDotProductAttention_1/`;
    put(l.norm1Weight, `${b}LayerNorm_0/scale`, get(`${b}LayerNorm_0/scale`));
    put(l.norm1Bias, `${b}LayerNorm_0/bias`, get(`${b}LayerNorm_0/bias`));
    const qkv: [string, string, string][] = [
      ['query', l.qWeight, l.qBias],
      ['key', l.kWeight, l.kBias],
      ['value', l.vWeight, l.vBias],
    ];
    for (const [part, weightName, biasName] of qkv) {
      const key = `${attn}${part}/kernel`;
      const kernel = get(key);
      expectRank(key, kernel, 3, '[D, H, dh]');
      // [D, H, dh] is [D_in, D_out] once the head axes are merged.
      put(weightName, key, transpose2d(reshape(kernel, [kernel.shape[0], kernel.shape[1] * kernel.shape[2]])));
      const biasKey = `${attn}${part}/bias`;
      if (has(biasKey) !== arch.qkvBias) {
        throw new Error(
          `${file}: key "${biasKey}" is ${arch.qkvBias ? 'missing' : 'present'} but query/key/value biases must be all present or all absent`,
        );
      }
      if (arch.qkvBias) put(biasName, biasKey, flatten(get(biasKey)));
    }
    const outKey = `${attn}out/kernel`;
    const outKernel = get(outKey);
    expectRank(outKey, outKernel, 3, '[H, dh, D]');
    put(
      l.projWeight,
      outKey,
      transpose2d(reshape(outKernel, [outKernel.shape[0] * outKernel.shape[1], outKernel.shape[2]])),
    );
    put(l.projBias, `${attn}out/bias`, get(`${attn}out/bias`));
    put(l.norm2Weight, `${b}LayerNorm_2/scale`, get(`${b}LayerNorm_2/scale`));
    put(l.norm2Bias, `${b}LayerNorm_2/bias`, get(`${b}LayerNorm_2/bias`));
    put(l.fc1Weight, `${b}MlpBlock_3/Dense_0/kernel`, dense(`${b}MlpBlock_3/Dense_0/kernel`));
    put(l.fc1Bias, `${b}MlpBlock_3/Dense_0/bias`, get(`${b}MlpBlock_3/Dense_0/bias`));
    put(l.fc2Weight, `${b}MlpBlock_3/Dense_1/kernel`, dense(`${b}MlpBlock_3/Dense_1/kernel`));
    put(l.fc2Bias, `${b}MlpBlock_3/Dense_1/bias`, get(`${b}MlpBlock_3/Dense_1/bias`));
  }

  put(W.finalNormWeight, 'Transformer/encoder_norm/scale', get('Transformer/encoder_norm/scale'));
  put(W.finalNormBias, 'Transformer/encoder_norm/bias', get('Transformer/encoder_norm/bias'));
  if (hasPreLogits) {
    const kernel = dense('pre_logits/kernel');
    arch.preLogitsSize = kernel.shape[0];
    put(W.preLogitsWeight, 'pre_logits/kernel', kernel);
    put(W.preLogitsBias, 'pre_logits/bias', get('pre_logits/bias'));
  }
  put(W.headWeight, 'head/kernel', transpose2d(head));
  put(W.headBias, 'head/bias', get('head/bias'));

  // Left-over keys mean a different model family (e.g. the hybrid ResNet+ViT); loading it as a plain ViT would be silently wrong.
  const unused = [...npz.keys()].filter(k => !used.has(k));
  if (unused.length) {
    const shown = unused
      .slice(0, 5)
      .map(k => `"${k}"`)
      .join(', ');
    throw new Error(
      `${file}: unexpected keys for a plain ViT: ${shown}${unused.length > 5 ? ` and ${unused.length - 5} more` : ''}`,
    );
  }

  try {
    checkWeights(arch, name => weights.get(name)?.shape, file);
  } catch (err) {
    const name = /tensor "([^"]+)"/.exec((err as Error).message)?.[1];
    const key = name && origin.get(name);
    if (!key) throw err;
    const t = npz.get(key)!;
    throw new Error(`${(err as Error).message}; it comes from npz key "${key}" with shape [${t.shape.join(', ')}]`);
  }
  return { arch, weights };

  /** A flax Dense kernel (in, out) as a canonical (out, in) linear weight. */
  function dense(key: string): Tensor {
    const t = get(key);
    expectRank(key, t, 2, '[in, out]');
    return transpose2d(t);
  }
}

function stripPrefix(key: string): string {
  for (const p of KEY_PREFIXES) if (key.startsWith(p)) return key.slice(p.length);
  return key;
}

function countLayers(file: string, npz: Map<string, Tensor>): number {
  const indices = new Set<number>();
  for (const key of npz.keys()) {
    const m = BLOCK_KEY.exec(key);
    if (m) indices.add(Number(m[1]));
  }
  if (indices.size === 0) throw new Error(`${file}: no "Transformer/encoderblock_N/" keys found`);
  for (let i = 0; i < indices.size; i++) {
    if (!indices.has(i)) {
      throw new Error(`${file}: encoder blocks are not numbered 0..${indices.size - 1} (encoderblock_${i} is missing)`);
    }
  }
  return indices.size;
}

function reshape(t: Tensor, shape: number[]): Tensor {
  return { shape, data: t.data };
}

function flatten(t: Tensor): Tensor {
  return { shape: [numel(t.shape)], data: t.data };
}
