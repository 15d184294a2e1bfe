/**
 * Linear layer y = x·Wᵀ + b on the fused wasm kernels: one GEMM forward, two GEMMs and a column sum
 * backward, with W and dy read transposed in place (TF.js's wasm matMul needs explicit transposes and
 * runs ~2–3× slower on these shapes; see bench/profile_train.ts).
 */
import * as tf from '@tensorflow/tfjs-core';
import { fusedKernels, KernelExports, output, ptr, registerFused, scratchSpace } from './kernels';

const LINEAR = 'VitLensLinear';
const LINEAR_GRAD = 'VitLensLinearGrad';

/** Bytes gemm needs to pack its right operand (K × N, 8-column panels). */
const packBytes = (K: number, N: number) => K * Math.ceil(N / 8) * 8 * 4;

/** C[M,N] = A[M,K]·B[K,N] (+bias); A and B given as row-major tensors, each optionally transposed. */
export function gemm(k: KernelExports, M: number, N: number, K: number, a: number, ta: boolean, b: number, tb: boolean, c: number, bias = 0): void {
  k.gemm(M, N, K, a, ta ? 1 : K, ta ? M : 1, b, tb ? 1 : N, tb ? K : 1, c, N, bias, 0, scratchSpace(packBytes(K, N)));
}

function register(k: KernelExports): void {
  registerFused(LINEAR, ({ inputs }) => {
    const { x, w, b } = inputs as { x: tf.TensorInfo; w: tf.TensorInfo; b?: tf.TensorInfo };
    const [M, K] = x.shape;
    const N = w.shape[0];
    const y = output([M, N]);
    gemm(k, M, N, K, ptr(x), false, ptr(w), true, ptr(y), b ? ptr(b) : 0);
    return y;
  });
  registerFused(LINEAR_GRAD, ({ inputs }) => {
    const { dy, x, w } = inputs as { dy: tf.TensorInfo; x: tf.TensorInfo; w: tf.TensorInfo };
    const [M, K] = x.shape;
    const N = w.shape[0];
    const dx = output([M, K]);
    const dw = output([N, K]);
    const db = output([N]);
    gemm(k, M, K, N, ptr(dy), false, ptr(w), false, ptr(dx)); // dx = dy · W
    gemm(k, N, K, M, ptr(dy), true, ptr(x), false, ptr(dw)); // dW = dyᵀ · x
    k.colSum(M, N, ptr(dy), N, ptr(db)); // db = Σ_rows dy
    return [dx, dw, db];
  });
}

type Grad = (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => tf.Tensor[];
const customGrad = tf.customGrad as unknown as <F>(f: (...args: never[]) => { value: tf.Tensor; gradFunc: Grad }) => F;

const withBias = customGrad<(x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor1D) => tf.Tensor2D>(
  (x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor1D, save: tf.GradSaveFunc) => {
    save([x, w]);
    return {
      value: tf.engine().runKernel(LINEAR, { x, w, b }) as tf.Tensor2D,
      gradFunc: (dy, [xs, ws]) => tf.engine().runKernel(LINEAR_GRAD, { dy: dy as tf.Tensor, x: xs, w: ws }) as tf.Tensor[],
    };
  },
);

const noBias = customGrad<(x: tf.Tensor2D, w: tf.Tensor2D) => tf.Tensor2D>((x: tf.Tensor2D, w: tf.Tensor2D, save: tf.GradSaveFunc) => {
  save([x, w]);
  return {
    value: tf.engine().runKernel(LINEAR, { x, w }) as tf.Tensor2D,
    gradFunc: (dy, [xs, ws]) => {
      const [dx, dw, db] = tf.engine().runKernel(LINEAR_GRAD, { dy: dy as tf.Tensor, x: xs, w: ws }) as tf.Tensor[];
      db.dispose();
      return [dx, dw];
    },
  };
});

let registeredFor: KernelExports | undefined;

/** x [M, in] · W(out, in)ᵀ (+ b), or undefined when the fused kernels are not loaded. */
export function fusedLinear(x: tf.Tensor2D, w: tf.Tensor2D, b?: tf.Tensor1D): tf.Tensor2D | undefined {
  const k = fusedKernels();
  if (!k) return undefined;
  if (registeredFor !== k) {
    register(k);
    registeredFor = k;
  }
  return b ? withBias(x, w, b) : noBias(x, w);
}
