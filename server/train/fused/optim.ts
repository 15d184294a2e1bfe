/**
 * The optimizer step on the fused wasm kernels (server/train/wasm/assembly/optim.ts): one kernel per
 * parameter instead of 10–15 elementwise TF.js kernels, with gradient clipping's coefficient folded
 * in, and the global gradient norm read straight from the heap. Bitwise the same updates as
 * server/train/optimizer.ts's TF.js path (the kernels do its float32 operations in its order).
 */
import * as tf from '@tensorflow/tfjs-core';
import { KernelExports, kernelsWith, output, ptr, registerFused } from './kernels';

const ADAMW = 'VitLensAdamW';
const SGD = 'VitLensSgd';

export interface AdamWStep {
  gradScale: number;
  /** 1 − lr·wd (1: no decay). */
  decay: number;
  beta1: number;
  beta2: number;
  /** √(1 − β2^t) */
  sqrtBc2: number;
  eps: number;
  /** lr / (1 − β1^t) */
  stepSize: number;
}

export interface SgdStep {
  gradScale: number;
  weightDecay: number;
  momentum: number;
  lr: number;
  /** 0: no momentum; 1: momentum, first step (buffer = gradient); 2: momentum. */
  mode: 0 | 1 | 2;
}

const size = (t: tf.TensorInfo) => t.shape.reduce((a, b) => a * b, 1);

function register(k: KernelExports): void {
  registerFused(ADAMW, ({ inputs, attrs }) => {
    const { p, m, v, g } = inputs as Record<'p' | 'm' | 'v' | 'g', tf.TensorInfo>;
    const a = attrs as unknown as AdamWStep;
    const [pOut, mOut, vOut] = [output(p.shape), output(p.shape), output(p.shape)];
    k.adamw(
      size(p),
      ptr(p),
      ptr(m),
      ptr(v),
      ptr(g),
      a.gradScale,
      a.decay,
      a.beta1,
      1 - a.beta1,
      a.beta2,
      1 - a.beta2,
      a.sqrtBc2,
      a.eps,
      a.stepSize,
      ptr(pOut),
      ptr(mOut),
      ptr(vOut),
    );
    return [pOut, mOut, vOut];
  });
  registerFused(SGD, ({ inputs, attrs }) => {
    const { p, buf, g } = inputs as Record<'p' | 'buf' | 'g', tf.TensorInfo>;
    const a = attrs as unknown as SgdStep;
    const pOut = output(p.shape);
    const bufOut = a.mode ? output(p.shape) : undefined;
    k.sgd(
      size(p),
      ptr(p),
      a.mode === 2 ? ptr(buf) : 0,
      ptr(g),
      a.gradScale,
      a.weightDecay,
      a.momentum,
      a.lr,
      a.mode,
      ptr(pOut),
      bufOut ? ptr(bufOut) : 0,
    );
    return bufOut ? [pOut, bufOut] : [pOut];
  });
}

/** The kernels, registered, or undefined when the fused kernels are not loaded or a tensor is not float32. */
export function fusedOptimizer(...tensors: tf.Tensor[]): KernelExports | undefined {
  return tensors.every(t => t.dtype === 'float32') ? kernelsWith(register) : undefined;
}

/** [p', m', v'] (new tensors; the caller assigns and disposes them). */
export function adamwStep(p: tf.Tensor, m: tf.Tensor, v: tf.Tensor, g: tf.Tensor, step: AdamWStep): tf.Tensor[] {
  return tf.engine().runKernel(ADAMW, { p, m, v, g }, step as unknown as tf.NamedAttrMap) as tf.Tensor[];
}

/** [p'] without momentum, [p', buf'] with (`buf` is read only in mode 2). */
export function sgdStep(p: tf.Tensor, buf: tf.Tensor, g: tf.Tensor, step: SgdStep): tf.Tensor[] {
  return tf.engine().runKernel(SGD, { p, buf, g }, step as unknown as tf.NamedAttrMap) as tf.Tensor[];
}

/** Σ‖g‖² over the tensors, in float64, from the heap (no kernels, no tensors). */
export function sumOfSquares(k: KernelExports, grads: Iterable<tf.Tensor>): number {
  let s = 0;
  for (const g of grads) s += k.sumSquares(g.size, ptr(g)) as number;
  return s;
}
