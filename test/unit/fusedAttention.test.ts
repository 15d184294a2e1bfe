/**
 * The fused attention kernel (server/train/fused/attention.ts) against attention built from
 * TF.js's own ops on the same backend: forward output and the gradient to qkv, for shapes that
 * exercise every code path (head sizes that are and are not multiples of 4 and 16, one token,
 * token counts with and without padding to a multiple of 4, peaked softmaxes), and the model's
 * block() on the fused path against the same block on TF.js's kernels (cpu backend). Each case runs
 * on our kernel and on ONNX Runtime's graphs (server/train/fused/onnxRuntime.ts), which take
 * sequences of MIN_ATTENTION_TOKENS tokens and more; the calls are counted to show which ran.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../server/train/backend';
import { fusedAttention } from '../../server/train/fused/attention';
import { fusedKernels } from '../../server/train/fused/kernels';
import { MIN_ATTENTION_TOKENS, ortStats, setOnnxRuntimeEnabled } from '../../server/train/fused/onnxRuntime';
import { block, Params } from '../../server/train/vitModel';
import { ViTArch } from '../../server/model/vitConfig';
import { randomWeights } from './tinyVit';

/** Deterministic values in [-scale/2, scale/2) (mulberry32). */
function random(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = (((t ^ (t >>> 14)) >>> 0) / 4294967296 - 0.5) * scale;
  }
  return out;
}

/** Attention the unfused way: heads split by reshape/transpose, softmax(scale·Q·Kᵀ)·V, merged back. */
function reference(qkv: tf.Tensor2D, batch: number, tokens: number, heads: number): tf.Tensor2D {
  const D = qkv.shape[1] / 3;
  const dh = D / heads;
  const [q, k, v] = tf
    .split(qkv, 3, 1)
    .map(x => x.reshape([batch, tokens, heads, dh]).transpose([0, 2, 1, 3]) as tf.Tensor4D);
  const p = tf.softmax(tf.matMul(q, k, false, true).mul(1 / Math.sqrt(dh)), -1);
  return tf
    .matMul(p, v)
    .transpose([0, 2, 1, 3])
    .reshape([batch * tokens, D]);
}

/** max |a − b| / max(max |b|, floor): the error relative to the reference's scale. */
function relErr(a: Float32Array, b: Float32Array, floor = 0): number {
  assert.equal(a.length, b.length);
  let diff = 0;
  let mag = 0;
  for (let i = 0; i < a.length; i++) {
    assert.ok(Number.isFinite(a[i]), `non-finite value ${a[i]} at ${i}`);
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    mag = Math.max(mag, Math.abs(b[i]));
  }
  return diff / Math.max(mag, floor);
}

/** Forward output and d(Σ w ⊙ ctx)/d qkv, with w random so every output element matters differently. */
function valueAndGrad(
  f: (qkv: tf.Tensor2D) => tf.Tensor2D,
  qkv: tf.Tensor2D,
  w: tf.Tensor2D,
): { y: Float32Array; g: Float32Array } {
  return tf.tidy(() => {
    const y = f(qkv);
    const [g] = tf.grads((x: tf.Tensor) =>
      f(x as tf.Tensor2D)
        .mul(w)
        .sum(),
    )([qkv]);
    return { y: y.dataSync() as Float32Array, g: g.dataSync() as Float32Array };
  });
}

const CASES = [
  { name: 'bench shape (dh 16, T 17)', batch: 3, tokens: 17, heads: 4, dh: 16, scale: 2 },
  { name: 'ViT-B head size (dh 64, T 50)', batch: 2, tokens: 50, heads: 2, dh: 64, scale: 1 },
  { name: 'dh 6 (not a multiple of 4)', batch: 3, tokens: 5, heads: 2, dh: 6, scale: 2 },
  { name: 'dh 3, one head', batch: 2, tokens: 9, heads: 1, dh: 3, scale: 2 },
  { name: 'dh 20 (16 + 4), T 8 (no padding)', batch: 2, tokens: 8, heads: 3, dh: 20, scale: 2 },
  { name: 'dh 27, T 13', batch: 1, tokens: 13, heads: 2, dh: 27, scale: 2 },
  { name: 'one token', batch: 4, tokens: 1, heads: 3, dh: 8, scale: 2 },
  { name: 'two tokens, dh 1', batch: 2, tokens: 2, heads: 5, dh: 1, scale: 2 },
  { name: 'large values (peaked softmax)', batch: 2, tokens: 17, heads: 4, dh: 16, scale: 16 },
  { name: 'ViT-B/16 sequence (T 197, dh 64)', batch: 2, tokens: 197, heads: 2, dh: 64, scale: 1 },
  { name: 'peaked softmax, T 40', batch: 3, tokens: 40, heads: 3, dh: 8, scale: 16 },
];

for (const onOrt of [true, false])
  for (const c of CASES) {
    test(`fused attention (${onOrt ? 'ONNX Runtime' : 'our kernel'}) matches TF.js ops: ${c.name}`, async () => {
      await initBackend('wasm');
      assert.ok(fusedKernels(), 'fused kernels not loaded (run `npm run build`)');
      setOnnxRuntimeEnabled(onOrt);
      const calls = ortStats.attention;
      const D = c.heads * c.dh;
      const rows = c.batch * c.tokens;
      const qkv = tf.tensor2d(random(rows * 3 * D, 1 + c.tokens * 31 + c.dh, c.scale), [rows, 3 * D]);
      const w = tf.tensor2d(random(rows * D, 7 + c.dh), [rows, D]);
      const before = tf.memory().numTensors;
      const fused = valueAndGrad(x => fusedAttention(x, c.batch, c.tokens, c.heads)!, qkv, w);
      assert.equal(tf.memory().numTensors, before, 'fused attention leaked tensors');
      // Forward for the value, forward and backward for the gradient.
      const expected = onOrt && c.tokens >= MIN_ATTENTION_TOKENS ? 3 : 0;
      assert.equal(ortStats.attention - calls, expected, 'attention calls run by ONNX Runtime');
      const ref = valueAndGrad(x => reference(x, c.batch, c.tokens, c.heads), qkv, w);
      const ey = relErr(fused.y, ref.y);
      const eg = relErr(fused.g, ref.g);
      console.log(`# ${c.name}: forward ${ey.toExponential(2)}, gradient ${eg.toExponential(2)}`);
      assert.ok(ey < 1e-5, `forward differs by ${ey} (relative)`);
      assert.ok(eg < 1e-5, `gradient differs by ${eg} (relative)`);
      // The q, k and v parts of the gradient each carry signal (a zeroed or swapped part would not).
      for (let part = 0; part < 3; part++) {
        let mag = 0;
        for (let r = 0; r < rows; r++)
          for (let j = 0; j < D; j++) mag = Math.max(mag, Math.abs(ref.g[r * 3 * D + part * D + j]));
        if (c.tokens > 1 || part === 2)
          assert.ok(mag > 1e-4, `reference gradient of part ${part} is ~0: the case tests nothing`);
      }
      qkv.dispose();
      w.dispose();
    });
  }

test('fused attention without gradients keeps no tensors', async () => {
  await initBackend('wasm');
  const qkv = tf.tensor2d(random(2 * 5 * 3 * 8, 3), [10, 24]);
  const before = tf.memory().numTensors;
  const y = fusedAttention(qkv, 2, 5, 2)!;
  assert.deepEqual(y.shape, [10, 8]);
  y.dispose();
  assert.equal(tf.memory().numTensors, before);
  qkv.dispose();
});

for (const qkvBias of [true, false]) {
  test(`block() on the fused path matches the unfused path (qkv bias ${qkvBias})`, async () => {
    await initBackend('wasm');
    const arch: ViTArch = {
      hiddenSize: 24,
      numLayers: 1,
      numHeads: 3,
      mlpSize: 48,
      patchSize: 8,
      imageSize: [32, 32],
      numChannels: 3,
      layerNormEps: 1e-6,
      qkvBias,
      numClasses: 5,
    };
    assert.ok(fusedKernels(), 'fused kernels not loaded (run `npm run build`)');
    const weights = randomWeights({ ...arch, qkvBias: true }, 3);
    const x = random(2 * 17 * 24, 11, 2);
    const dy = random(2 * 17 * 24, 12);
    // Output and every parameter's gradient of Σ dy ⊙ block(x), on the current backend.
    const run = () => {
      const params: Params = new Map();
      for (const [k, t] of weights)
        if (k.startsWith('vit.encoder.layer.0.'))
          params.set(k, tf.variable(tf.tensor(t.data, t.shape), true, `${qkvBias}/${tf.getBackend()}/${k}`));
      const names = [...params.keys()].filter(k => qkvBias || !/\.(query|key|value)\.bias$/.test(k));
      let y: Float32Array = new Float32Array(0);
      const grads = new Map<string, Float32Array>();
      tf.tidy(() => {
        const xt = tf.tensor3d(x, [2, 17, 24]);
        const g = tf.variableGrads(
          () =>
            block(params, arch, 0, xt)
              .mul(tf.tensor3d(dy, [2, 17, 24]))
              .sum() as tf.Scalar,
          names.map(k => params.get(k)!),
        ).grads;
        for (const k of names) grads.set(k, g[params.get(k)!.name].dataSync() as Float32Array);
        y = block(params, arch, 0, xt).dataSync() as Float32Array;
      });
      for (const v of params.values()) v.dispose();
      return { y, grads };
    };
    const fused = run();
    await tf.setBackend('cpu');
    assert.equal(fusedKernels(), undefined);
    let plain: ReturnType<typeof run>;
    try {
      plain = run();
    } finally {
      await tf.setBackend('wasm');
    }
    assert.ok(relErr(fused.y, plain.y) < 1e-5, `block output differs by ${relErr(fused.y, plain.y)}`);
    assert.equal(fused.grads.size, plain.grads.size);
    // The key bias's gradient is 0 up to rounding (it adds q·b_k to a whole row of scores, which the
    // softmax ignores), so its errors are measured against the layer's gradients as a whole.
    const floor =
      Math.max(...[...plain.grads.values()].map(g => g.reduce((m, v) => Math.max(m, Math.abs(v)), 0))) * 1e-2;
    for (const [k, g] of plain.grads) {
      const e = relErr(fused.grads.get(k)!, g, floor);
      assert.ok(e < 1e-4, `gradient of ${k} differs by ${e}`);
    }
  });
}
