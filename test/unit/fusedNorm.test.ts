/**
 * The fused LayerNorm and GELU kernels (server/train/fused/norm.ts) against references built from
 * TF.js's own ops on the same wasm backend: tf.moments / tf.erf forward, autodiff for the gradients
 * of a weighted sum (so every element of dy differs). Needs `npm run build` (dist/train-kernels*.wasm).
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../server/train/backend';
import { fusedKernels } from '../../server/train/fused/kernels';
import { fusedGelu, fusedLayerNorm } from '../../server/train/fused/norm';
import { mulberry32 } from '../../server/train/rng';

/** Seeded standard normals (mulberry32 + Box–Muller), so a failure reproduces. */
function normals(n: number, seed: number): Float32Array {
  const uniform = mulberry32(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
  return out;
}

/** Largest |a − b| / (atol + rtol·|b|); ≤ 1 passes. Reports the worst element. */
function assertClose(name: string, actual: tf.Tensor, expected: tf.Tensor, rtol = 1e-5, atol = 1e-5): void {
  assert.deepEqual(actual.shape, expected.shape, `${name}: shape`);
  const a = actual.dataSync();
  const b = expected.dataSync();
  let worst = 0;
  let at = -1;
  for (let i = 0; i < a.length; i++) {
    const r = Math.abs(a[i] - b[i]) / (atol + rtol * Math.abs(b[i]));
    if (!(r <= worst)) {
      worst = r;
      at = i;
    }
  }
  assert.ok(worst <= 1, `${name}: element ${at} is ${a[at]}, expected ${b[at]} (${worst.toFixed(2)}× the tolerance)`);
}

function refLayerNorm(x: tf.Tensor2D, gamma: tf.Tensor1D, beta: tf.Tensor1D, eps: number): tf.Tensor2D {
  const { mean, variance } = tf.moments(x, -1, true);
  return x
    .sub(mean)
    .mul(tf.rsqrt(variance.add(eps)))
    .mul(gamma)
    .add(beta);
}

type LayerNormFn = (x: tf.Tensor2D, gamma: tf.Tensor1D, beta: tf.Tensor1D) => tf.Tensor2D;

/** y and the gradients of Σ y·w with respect to x, γ, β. */
function withGrads(f: LayerNormFn, x: tf.Tensor2D, gamma: tf.Tensor1D, beta: tf.Tensor1D, w: tf.Tensor2D): tf.Tensor[] {
  const y = f(x, gamma, beta);
  const grads = tf.grads((a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) =>
    f(a as tf.Tensor2D, g as tf.Tensor1D, b as tf.Tensor1D)
      .mul(w)
      .sum(),
  )([x, gamma, beta]);
  return [y, ...grads];
}

/**
 * Fused vs reference LayerNorm on x [M, D] = shift + scale·noise. The reference normalises the noise
 * part, x − shift, computed exactly in f32 (LayerNorm is shift-invariant), so with a large shift the
 * reference stays accurate while the kernel sees the cancellation-prone input.
 */
function checkLayerNorm(M: number, D: number, seed: number, shift = 0, scale = 1, eps = 1e-6): void {
  tf.tidy(() => {
    const noise = normals(M * D, seed).map(v => v * scale);
    const x = tf.tensor2d(
      noise.map(v => v + shift),
      [M, D],
    );
    const xRef = shift ? (x.sub(shift) as tf.Tensor2D) : x;
    const gamma = tf.tensor1d(normals(D, seed + 1).map(v => 1 + 0.5 * v));
    const beta = tf.tensor1d(normals(D, seed + 2));
    const w = tf.tensor2d(normals(M * D, seed + 3), [M, D]);
    const fused: LayerNormFn = (a, g, b) => fusedLayerNorm(a, g, b, eps)!;
    const got = withGrads(fused, x, gamma, beta, w);
    const want = withGrads((a, g, b) => refLayerNorm(a, g, b, eps), xRef, gamma, beta, w);
    const names = ['y', 'dx', 'dγ', 'dβ'];
    // Column sums of M products: the tolerance grows with the number of terms.
    const rtol = (i: number) => (i >= 2 ? 1e-5 * Math.max(1, Math.sqrt(M / 16)) : 1e-5);
    got.forEach((t, i) => assertClose(`[${M}, ${D}] shift ${shift} ${names[i]}`, t, want[i], rtol(i), rtol(i)));
  });
}

before(async () => {
  await initBackend('wasm');
  assert.ok(fusedKernels(), 'fused kernels not loaded (run `npm run build`)');
});

test('fused LayerNorm matches tf.moments and autodiff: shapes with D % 4 = 0 and ≠ 0, M = 1', () => {
  checkLayerNorm(1, 64, 1);
  checkLayerNorm(1, 7, 2);
  checkLayerNorm(16, 64, 3);
  checkLayerNorm(37, 5, 4); // rows start unaligned; tail lanes only
  checkLayerNorm(70, 130, 5); // more rows than one column-sum block (32), a partial block at the end
  checkLayerNorm(2176, 64, 6); // the bench ViT's shape
  checkLayerNorm(5, 1, 7); // D = 1: x̂ = 0, y = β
});

test('fused LayerNorm keeps its accuracy for rows with a large mean (1000 + noise)', () => {
  checkLayerNorm(64, 64, 11, 1000, 1);
  checkLayerNorm(33, 30, 12, -1000, 2);
  checkLayerNorm(8, 768, 13, 1000, 0.5);
});

test('fused LayerNorm: ε inside the square root (tiny and zero variance)', () => {
  checkLayerNorm(9, 12, 21, 0, 1e-3, 1e-5);
  // Constant rows: x̂ = 0 exactly, y = β, dx = 0.
  tf.tidy(() => {
    const x = tf.fill([3, 8], 2.5) as tf.Tensor2D;
    const gamma = tf.ones([8]) as tf.Tensor1D;
    const beta = tf.range(0, 8).toFloat() as tf.Tensor1D;
    assertClose('constant rows y', fusedLayerNorm(x, gamma, beta, 1e-6)!, tf.tile(beta.reshape([1, 8]), [3, 1]));
  });
});

test('fused LayerNorm sees a wrong ε (the test can fail)', () => {
  assert.throws(
    () =>
      tf.tidy(() => {
        const x = tf.tensor2d(
          normals(4 * 8, 31).map(v => 1e-3 * v),
          [4, 8],
        );
        const gamma = tf.ones([8]) as tf.Tensor1D;
        const beta = tf.zeros([8]) as tf.Tensor1D;
        assertClose('ε 1e-6 vs 1e-5', fusedLayerNorm(x, gamma, beta, 1e-6)!, refLayerNorm(x, gamma, beta, 1e-5));
      }),
    /times the tolerance|× the tolerance/,
  );
});

function refGelu(x: tf.Tensor): tf.Tensor {
  return x.mul(tf.erf(x.mul(Math.SQRT1_2)).add(1)).mul(0.5);
}

function checkGelu(name: string, values: Float32Array, seed: number): void {
  tf.tidy(() => {
    const x = tf.tensor1d(values);
    const w = tf.tensor1d(normals(values.length, seed));
    const loss = (f: (t: tf.Tensor) => tf.Tensor) => (t: tf.Tensor) => f(t).mul(w).sum();
    assertClose(`${name} y`, fusedGelu(x)!, refGelu(x), 1e-5, 2e-6);
    assertClose(`${name} dx`, tf.grad(loss(t => fusedGelu(t)!))(x), tf.grad(loss(refGelu))(x), 1e-5, 2e-6);
  });
}

test('fused GELU matches 0.5·x·(1 + tf.erf(x/√2)) and its autodiff gradient over [-10, 10]', () => {
  const n = 20001; // odd: the last elements go through the tail path
  checkGelu(
    'linspace',
    Float32Array.from({ length: n }, (_, i) => -10 + (20 * i) / (n - 1)),
    41,
  );
  checkGelu(
    'normal',
    normals(4099, 42).map(v => 3 * v),
    43,
  );
  checkGelu('three', Float32Array.of(-0.5, 0, 1.5), 44);
});

test('fused GELU: Φ(x) = gelu(x)/x within 4e-7 of ½·(1 + tf.erf(x/√2))', () => {
  tf.tidy(() => {
    const n = 40000; // x = ±(0.00025 … 10)
    const x = tf.tensor1d(Float32Array.from({ length: n }, (_, i) => (i % 2 ? -1 : 1) * 0.00025 * (1 + (i >> 1))));
    const cdf = tf.erf(x.mul(Math.SQRT1_2)).add(1).mul(0.5);
    assertClose('Φ', fusedGelu(x)!.div(x), cdf, 0, 4e-7);
  });
});

test('fused GELU keeps shape and is exact at the easy points', () => {
  tf.tidy(() => {
    const x = tf.tensor3d([0, 20, -20, 1e-30, -1e-30, 6], [2, 1, 3]);
    const y = fusedGelu(x)!;
    assert.deepEqual(y.shape, [2, 1, 3]);
    const v = y.dataSync();
    assert.equal(v[0], 0);
    assert.equal(v[1], 20);
    assert.ok(v[2] <= 0 && v[2] > -1e-30, `gelu(-20) = ${v[2]}`);
    assert.ok(Math.abs(v[3] - 0.5e-30) < 1e-37 && Math.abs(v[4] + 0.5e-30) < 1e-37);
  });
});

test('fused kernels leak no tensors (saved tensors are freed after the backward pass)', () => {
  const x = tf.tensor2d(normals(12 * 20, 51), [12, 20]);
  const gamma = tf.ones([20]) as tf.Tensor1D;
  const beta = tf.zeros([20]) as tf.Tensor1D;
  const before = tf.memory().numTensors;
  const grads = tf.grads((a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) =>
    fusedGelu(fusedLayerNorm(a as tf.Tensor2D, g as tf.Tensor1D, b as tf.Tensor1D, 1e-6)!)!.sum(),
  )([x, gamma, beta]);
  assert.equal(tf.memory().numTensors, before + 3);
  tf.dispose(grads);
  tf.tidy(() => {
    fusedGelu(fusedLayerNorm(x, gamma, beta, 1e-6)!);
  });
  assert.equal(tf.memory().numTensors, before);
  tf.dispose([x, gamma, beta]);
});
