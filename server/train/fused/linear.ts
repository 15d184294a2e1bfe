/**
 * Linear layer y = x·Wᵀ + b on the fused wasm kernels: one GEMM forward, two GEMMs and a column sum
 * backward, with W and dy read transposed in place (TF.js's wasm matMul needs explicit transposes and
 * runs ~2–3× slower on these shapes; see bench/profile_train.ts).
 */
import * as tf from '@tensorflow/tfjs-core';
import { customGrad, KernelExports, kernelsWith, output, ptr, registerFused, scratchSpace } from './kernels';
import { ortGemm } from './onnxRuntime';

const LINEAR = 'VitLensLinear';
const LINEAR_GRAD = 'VitLensLinearGrad';

/** Bytes gemm needs to pack its right operand (K × N, 8-column panels) and a transposed left one's 4-row blocks (K × 4). */
const packBytes = (K: number, N: number) => K * Math.ceil(N / 8) * 8 * 4 + K * 16;

/**
 * One product C[M,N] = A[M,K]·B[K,N] (+ bias[N]) (+ addend[M,N]): sizes, and byte offsets of
 * row-major tensors in the wasm heap, A read transposed from [K,M] when ta, B from [N,K] when tb;
 * bias and addend 0 for none. Both GEMMs take it: ours below and ONNX Runtime's (ortGemm).
 */
export type GemmOperands = [
  M: number,
  N: number,
  K: number,
  a: number,
  ta: boolean,
  b: number,
  tb: boolean,
  c: number,
  bias?: number,
  addend?: number,
];

/** ONNX Runtime's GEMM where it loaded (onnxRuntime.ts), our AssemblyScript kernel otherwise. */
export function gemm(k: KernelExports, ...operands: GemmOperands): void {
  if (ortGemm(...operands)) return;
  const [M, N, K, a, ta, b, tb, c, bias = 0, addend = 0] = operands;
  const [ars, aks, brs, bcs] = [ta ? 1 : K, ta ? M : 1, tb ? 1 : N, tb ? K : 1];
  // Long inner dimensions (weight gradients sum over all B·T rows) go in slices of K_BLOCK, each
  // accumulated into C, so that a slice of the packed B and of A stays in L1 across a row block.
  // Wide outputs (ViT-B's MLP: N = 3072) go in column blocks of N_BLOCK, so that the packed slice of
  // B (K_BLOCK × N_BLOCK floats) stays in L2 while every row block of A passes over it; otherwise
  // each 4 rows of A stream all of it from memory. Each C element still sums its K products in
  // order, so the result is the same to the bit.
  for (let n0 = 0; n0 < N; n0 += N_BLOCK) {
    const nb = Math.min(N_BLOCK, N - n0);
    for (let k0 = 0; k0 < K; k0 += K_BLOCK) {
      const kb = Math.min(K_BLOCK, K - k0);
      const first = k0 === 0;
      const cn = c + 4 * n0;
      k.gemm(
        M,
        nb,
        kb,
        a + 4 * k0 * aks,
        ars,
        aks,
        b + 4 * (k0 * brs + n0 * bcs),
        brs,
        bcs,
        cn,
        N,
        first && bias ? bias + 4 * n0 : 0,
        first ? (addend ? addend + 4 * n0 : 0) : cn,
        scratchSpace(packBytes(kb, nb)),
      );
    }
  }
}
const K_BLOCK = 512;
const N_BLOCK = 256;

function register(k: KernelExports): void {
  registerFused(LINEAR, ({ inputs }) => {
    const { x, w, b, r } = inputs as { x: tf.TensorInfo; w: tf.TensorInfo; b?: tf.TensorInfo; r?: tf.TensorInfo };
    const [M, K] = x.shape;
    const N = w.shape[0];
    const y = output([M, N]);
    gemm(k, M, N, K, ptr(x), false, ptr(w), true, ptr(y), b ? ptr(b) : 0, r ? ptr(r) : 0);
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

type Linear = (x: tf.Tensor2D, w: tf.Tensor2D, ...rest: tf.Tensor[]) => tf.Tensor2D;

/** The op for one combination of optional inputs (customGrad needs every input to be a tensor). */
function makeLinear(hasBias: boolean, hasResidual: boolean): Linear {
  return customGrad<Linear>((...args: tf.Tensor[]) => {
    const save = args.pop() as unknown as tf.GradSaveFunc;
    const [x, w] = args;
    const b = hasBias ? args[2] : undefined;
    const r = hasResidual ? args[hasBias ? 3 : 2] : undefined;
    save([x, w]);
    return {
      value: tf.engine().runKernel(LINEAR, { x, w, ...(b ? { b } : {}), ...(r ? { r } : {}) }) as tf.Tensor2D,
      gradFunc: (dy, [xs, ws]) => {
        const g = dy as tf.Tensor;
        const [dx, dw, db] = tf.engine().runKernel(LINEAR_GRAD, { dy: g, x: xs, w: ws }) as tf.Tensor[];
        const grads = [dx, dw];
        if (hasBias) grads.push(db);
        else db.dispose();
        // The residual's gradient is the output's (a clone shares the buffer on wasm: server/train/wasmKernels.ts).
        if (hasResidual) grads.push(g.clone());
        return grads;
      },
    };
  });
}

const variants = new Map<string, Linear>();

/**
 * x [M, in] · W(out, in)ᵀ (+ b) (+ residual [M, out]), or undefined when the fused kernels are not
 * loaded. The residual is added inside the GEMM: a transformer block's skip connection costs no pass.
 */
export function fusedLinear(
  x: tf.Tensor2D,
  w: tf.Tensor2D,
  b?: tf.Tensor1D,
  residual?: tf.Tensor2D,
): tf.Tensor2D | undefined {
  if (!kernelsWith(register)) return undefined;
  const key = `${b ? 'b' : ''}${residual ? 'r' : ''}`;
  let f = variants.get(key);
  if (!f) variants.set(key, (f = makeLinear(!!b, !!residual)));
  return f(x, w, ...(b ? [b] : []), ...(residual ? [residual] : []));
}
