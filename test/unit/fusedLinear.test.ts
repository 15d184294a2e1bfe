/**
 * The fused linear layer (server/train/fused/linear.ts) against TF.js's own matMul and autodiff, once
 * on each GEMM it can run: ONNX Runtime's (onnxRuntime.ts, on the wasm backend's heap in place) and our
 * AssemblyScript kernel. The shapes hit every edge of ours: row counts that are not a multiple of its
 * 4-row blocks, column counts that are not a multiple of its 8-column panels, tiny and long inner
 * dimensions, with and without bias; and both sides of ortGemm's size cut-off.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../server/train/backend';
import { fusedKernels } from '../../server/train/fused/kernels';
import { fusedLinear } from '../../server/train/fused/linear';
import {
  checkBinding,
  MIN_MACS,
  NativeBinding,
  NativeSession,
  onnxRuntimeActive,
  ortStats,
  setOnnxRuntimeEnabled,
} from '../../server/train/fused/onnxRuntime';

function maxRelDiff(a: tf.Tensor, b: tf.Tensor): number {
  const x = a.dataSync();
  const y = b.dataSync();
  assert.deepEqual(a.shape, b.shape);
  let scale = 1e-6;
  for (const v of y) scale = Math.max(scale, Math.abs(v));
  let d = 0;
  for (let i = 0; i < x.length; i++) d = Math.max(d, Math.abs(x[i] - y[i]));
  return d / scale;
}

const SHAPES: [M: number, K: number, N: number][] = [
  [1, 1, 1],
  [3, 5, 7],
  [4, 8, 8],
  [7, 13, 10],
  [9, 64, 17],
  [2176, 64, 64],
  [2048, 147, 64],
  [130, 2176, 9],
  [33, 128, 192],
  // Wider than the GEMM's column block (256) and longer than its K block (512), neither a multiple: every block edge at once.
  [70, 600, 521],
  [5, 30, 777],
];

test('the fused kernels load on the wasm backend (else every fused test below would test TF.js against itself)', async () => {
  await initBackend('wasm');
  assert.ok(fusedKernels(), 'dist/train-kernels*.wasm not loaded: run `npm run build`');
  assert.ok(
    onnxRuntimeActive(),
    "ONNX Runtime's GEMM did not load (else the ONNX Runtime rows below would test ours twice)",
  );
});

const GEMMS = [
  ['ONNX Runtime', true],
  ['ours', false],
] as const;

for (const [gemmName, onOrt] of GEMMS)
  for (const [M, K, N] of SHAPES) {
    for (const [withBias, withResidual] of [
      [true, false],
      [false, false],
      [true, true],
      [false, true],
    ]) {
      const what = `${withBias ? ' + b' : ''}${withResidual ? ' + residual' : ''}`;
      test(`${gemmName} GEMM: linear ${M}×${K} · (${N}×${K})ᵀ${what}: value and gradients equal TF.js's`, async () => {
        await initBackend('wasm');
        setOnnxRuntimeEnabled(onOrt);
        const x = tf.randomNormal([M, K], 0, 1, 'float32', M + K) as tf.Tensor2D;
        const w = tf.randomNormal([N, K], 0, 1, 'float32', N) as tf.Tensor2D;
        const b = tf.randomNormal([N], 0, 1, 'float32', 7) as tf.Tensor1D;
        const r = tf.randomNormal([M, N], 0, 1, 'float32', 5) as tf.Tensor2D;
        const upstream = tf.randomNormal([M, N], 0, 1, 'float32', 3);
        type F = (xx: tf.Tensor, ww: tf.Tensor, bb: tf.Tensor, rr: tf.Tensor) => tf.Tensor;
        const reference: F = (xx, ww, bb, rr) => {
          let y: tf.Tensor = tf.matMul(xx as tf.Tensor2D, ww as tf.Tensor2D, false, true);
          if (withBias) y = y.add(bb);
          return withResidual ? rr.add(y) : y;
        };
        const fused: F = (xx, ww, bb, rr) =>
          fusedLinear(
            xx as tf.Tensor2D,
            ww as tf.Tensor2D,
            withBias ? (bb as tf.Tensor1D) : undefined,
            withResidual ? (rr as tf.Tensor2D) : undefined,
          )!;
        // Long inner products accumulate in a different order (and with FMA): relative, not bitwise.
        const tol = 2e-6 * Math.sqrt(Math.max(K, M));
        assert.ok(maxRelDiff(fused(x, w, b, r), reference(x, w, b, r)) < tol, 'forward');
        const names = ['dx', 'dW', ...(withBias ? ['db'] : []), ...(withResidual ? ['dresidual'] : [])];
        const args = [x, w, ...(withBias ? [b] : []), ...(withResidual ? [r] : [])];
        const loss =
          (f: F) =>
          (...a: tf.Tensor[]) =>
            f(a[0], a[1], withBias ? a[2] : b, withResidual ? a[a.length - 1] : r)
              .mul(upstream)
              .sum();
        const calls = ortStats.gemm;
        const got = tf.grads(loss(fused))(args);
        // The forward and the two backward products (each M·N·K multiply-adds) went where this row says.
        const expected = onOrt && M * N * K >= MIN_MACS ? 3 : 0;
        assert.equal(ortStats.gemm - calls, expected, 'products computed by ONNX Runtime');
        const want = tf.grads(loss(reference))(args);
        assert.equal(got.length, args.length);
        for (const [i, name] of names.entries()) {
          const d = maxRelDiff(got[i], want[i]);
          assert.ok(d < tol, `${name}: max relative difference ${d.toExponential(2)}`);
        }
      });
    }
  }

test('no tensors leak through a fused forward + backward', async () => {
  await initBackend('wasm');
  const x = tf.randomNormal([37, 20]) as tf.Tensor2D;
  const w = tf.randomNormal([11, 20]) as tf.Tensor2D;
  const b = tf.zeros([11]) as tf.Tensor1D;
  const before = tf.memory().numTensors;
  for (let i = 0; i < 3; i++)
    tf.dispose(
      tf.grads((xx: tf.Tensor, ww: tf.Tensor, bb: tf.Tensor) =>
        fusedLinear(xx as tf.Tensor2D, ww as tf.Tensor2D, bb as tf.Tensor1D)!.sum(),
      )([x, w, b]),
    );
  assert.equal(tf.memory().numTensors, before);
});

test("a binding whose run no longer fills the output synchronously is refused (its API is onnxruntime-node's internal one)", () => {
  const file = path.join(path.dirname(require.resolve('onnxruntime-node')), 'binding.js');
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- the same module onnxRuntime.ts loads
  const real = require(file) as NativeBinding;
  assert.doesNotThrow(() => checkBinding(real));
  class DeferredSession extends real.binding.InferenceSession {
    override run(feeds: Parameters<NativeSession['run']>[0], fetches: Parameters<NativeSession['run']>[1]): unknown {
      return new Promise(resolve => setImmediate(() => resolve(super.run(feeds, fetches))));
    }
  }
  assert.throws(
    () => checkBinding({ ...real, binding: { InferenceSession: DeferredSession } }),
    /test product came back as \[0, 0, 0, 0\]/,
  );
  assert.throws(() => checkBinding({ ...real, binding: {} as NativeBinding['binding'] }), /no InferenceSession/);
});
