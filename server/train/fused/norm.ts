/**
 * LayerNorm and exact GELU on the fused wasm kernels (server/train/wasm/assembly/norm.ts): one kernel
 * per pass instead of TF.js's 10–25 elementwise kernels each (Sub, Mean, Square, Rsqrt, Mul, Add,
 * Erf, Exp, … every one a pass over memory plus JS dispatch).
 *
 * LayerNorm's forward kernel also writes the per-row mean and 1/σ; the backward kernel recomputes x̂
 * from x with them, so the forward pass saves x (kept alive anyway: it is the residual stream) and
 * two [M] vectors instead of x̂ [M, D]. GELU's backward recomputes Φ(x) and φ(x) from x (they share
 * one exp), which costs less than writing Φ in the forward pass and reading it back.
 */
import * as tf from '@tensorflow/tfjs-core';
import { customGrad, KernelExports, kernelsWith, output, ptr, registerFused, scratchSpace } from './kernels';

const LAYER_NORM = 'VitLensLayerNorm';
const LAYER_NORM_GRAD = 'VitLensLayerNormGrad';
const GELU = 'VitLensGelu';
const GELU_GRAD = 'VitLensGeluGrad';

function register(k: KernelExports): void {
  const geluScratch = k.geluScratchBytes() as number; // the GELU kernels keep their constants there
  // x [M, D], γ, β [D]; attrs.eps → [y [M, D], mean [M], rstd [M]].
  registerFused(LAYER_NORM, ({ inputs, attrs }) => {
    const { x, gamma, beta } = inputs as { x: tf.TensorInfo; gamma: tf.TensorInfo; beta: tf.TensorInfo };
    const [M, D] = x.shape;
    const y = output([M, D]);
    const mean = output([M]);
    const rstd = output([M]);
    k.layerNormForward(
      M,
      D,
      ptr(x),
      ptr(gamma),
      ptr(beta),
      (attrs as { eps: number }).eps,
      ptr(y),
      ptr(mean),
      ptr(rstd),
    );
    return [y, mean, rstd];
  });
  // → [dx [M, D], dγ [D], dβ [D]].
  registerFused(LAYER_NORM_GRAD, ({ inputs }) => {
    const { dy, x, gamma, mean, rstd } = inputs as Record<'dy' | 'x' | 'gamma' | 'mean' | 'rstd', tf.TensorInfo>;
    const [M, D] = x.shape;
    const dx = output([M, D]);
    const dgamma = output([D]);
    const dbeta = output([D]);
    k.layerNormBackward(
      M,
      D,
      ptr(dy),
      ptr(x),
      ptr(gamma),
      ptr(mean),
      ptr(rstd),
      ptr(dx),
      ptr(dgamma),
      ptr(dbeta),
      scratchSpace(8 * D),
    );
    return [dx, dgamma, dbeta];
  });
  registerFused(GELU, ({ inputs }) => {
    const { x } = inputs as { x: tf.TensorInfo };
    const y = output(x.shape);
    k.geluForward(tf.util.sizeFromShape(x.shape), ptr(x), ptr(y), scratchSpace(geluScratch));
    return y;
  });
  registerFused(GELU_GRAD, ({ inputs }) => {
    const { dy, x } = inputs as { dy: tf.TensorInfo; x: tf.TensorInfo };
    const dx = output(x.shape);
    k.geluBackward(tf.util.sizeFromShape(x.shape), ptr(dy), ptr(x), ptr(dx), scratchSpace(geluScratch));
    return dx;
  });
}

type LayerNormFn = (x: tf.Tensor2D, gamma: tf.Tensor1D, beta: tf.Tensor1D) => tf.Tensor2D;

// eps is an attribute of the kernel, not an input, so there is one customGrad function per eps.
const layerNormByEps = new Map<number, LayerNormFn>();

function layerNormFor(eps: number): LayerNormFn {
  let f = layerNormByEps.get(eps);
  if (!f) {
    f = customGrad<LayerNormFn>((x: tf.Tensor2D, gamma: tf.Tensor1D, beta: tf.Tensor1D, save: tf.GradSaveFunc) => {
      const [y, mean, rstd] = tf.engine().runKernel(LAYER_NORM, { x, gamma, beta }, { eps }) as tf.Tensor[];
      save([x, gamma, mean, rstd]);
      return {
        value: y,
        gradFunc: (dy, [xs, gs, ms, rs]) =>
          tf
            .engine()
            .runKernel(LAYER_NORM_GRAD, { dy: dy as tf.Tensor, x: xs, gamma: gs, mean: ms, rstd: rs }) as tf.Tensor[],
      };
    });
    layerNormByEps.set(eps, f);
  }
  return f;
}

const gelu = customGrad<(x: tf.Tensor) => tf.Tensor>((x: tf.Tensor, save: tf.GradSaveFunc) => {
  save([x]);
  return {
    value: tf.engine().runKernel(GELU, { x }) as tf.Tensor,
    gradFunc: (dy, [xs]) => [tf.engine().runKernel(GELU_GRAD, { dy: dy as tf.Tensor, x: xs }) as tf.Tensor],
  };
});

/**
 * LayerNorm over the rows of x [M, D] (biased variance, ε inside the square root, as torch), or
 * undefined when the fused kernels are not loaded.
 */
export function fusedLayerNorm(
  x: tf.Tensor2D,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  eps: number,
): tf.Tensor2D | undefined {
  return kernelsWith(register) ? layerNormFor(eps)(x, gamma, beta) : undefined;
}

/** Exact GELU x·Φ(x), elementwise, or undefined when the fused kernels are not loaded. */
export function fusedGelu(x: tf.Tensor): tf.Tensor | undefined {
  return kernelsWith(register) ? gelu(x) : undefined;
}
