/**
 * AdamW and SGD with momentum, written out rather than taken from tf.train because the update must
 * match PyTorch's (decoupled weight decay for AdamW, coupled for SGD; torch's bias-correction order)
 * and its state must be saved into checkpoints and restored bit for bit.
 *
 * On the wasm backend with the fused kernels loaded, each parameter's update is one kernel
 * (server/train/fused/optim.ts) with the same float32 arithmetic as the TF.js code here.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Tensor } from '../model/tensor';
import { adamwStep, fusedOptimizer, sgdStep, sumOfSquares } from './fused/optim';

import type { Optimizer as OptimizerName } from '../../common/training';

export type { OptimizerName };

export interface OptimizerConfig {
  name: OptimizerName;
  weightDecay: number;
  /** AdamW */
  beta1: number;
  beta2: number;
  eps: number;
  /** SGD */
  momentum: number;
}

export const OPTIMIZER_DEFAULTS: Record<OptimizerName, Omit<OptimizerConfig, 'name'>> = {
  adamw: { weightDecay: 0.05, beta1: 0.9, beta2: 0.999, eps: 1e-8, momentum: 0 },
  sgd: { weightDecay: 0, beta1: 0.9, beta2: 0.999, eps: 1e-8, momentum: 0.9 },
};

/** Weight decay applies to matrices (linear and patch kernels), not to biases, norms, [CLS] or positions. */
export function decays(name: string, rank: number): boolean {
  return rank >= 2 && name.endsWith('.weight');
}

export interface OptimizerOptions {
  /** Use the fused wasm kernels when they are loaded (the default); false: TF.js kernels only. */
  fused?: boolean;
}

export class Optimizer {
  /** Steps taken so far (AdamW's bias correction needs it). */
  step = 0;
  private readonly slots = new Map<string, tf.Variable[]>();
  private readonly fused: boolean;

  constructor(
    readonly config: OptimizerConfig,
    options: OptimizerOptions = {},
  ) {
    this.fused = options.fused ?? true;
  }

  /**
   * One update of `vars` with `grads` (same keys) at learning rate `lr`, the gradients taken times
   * `gradScale` (gradient clipping's coefficient, from clipGradients).
   */
  apply(vars: Map<string, tf.Variable>, grads: Map<string, tf.Tensor>, lr: number, gradScale = 1): void {
    this.step++;
    const c = this.config;
    const t = this.step;
    const bc1 = 1 - Math.pow(c.beta1, t);
    const bc2 = 1 - Math.pow(c.beta2, t);
    tf.tidy(() => {
      for (const [name, v] of vars) {
        const g0 = grads.get(name);
        if (!g0) continue;
        const wd = decays(name, v.rank) ? c.weightDecay : 0;
        if (this.fused && fusedOptimizer(v, g0)) {
          if (c.name === 'adamw') {
            const [m, s] = this.slotsFor(name, v, 2);
            const [p1, m1, s1] = adamwStep(v, m, s, g0, {
              gradScale,
              decay: wd ? 1 - lr * wd : 1,
              beta1: c.beta1,
              beta2: c.beta2,
              sqrtBc2: Math.sqrt(bc2),
              eps: c.eps,
              stepSize: lr / bc1,
            });
            v.assign(p1);
            m.assign(m1);
            s.assign(s1);
          } else {
            const fresh = !this.slots.has(name);
            const buf = c.momentum ? this.slotsFor(name, v, 1)[0] : v;
            const [p1, buf1] = sgdStep(v, buf, g0, {
              gradScale,
              weightDecay: wd,
              momentum: c.momentum,
              lr,
              mode: !c.momentum ? 0 : fresh ? 1 : 2,
            });
            v.assign(p1);
            if (buf1) buf.assign(buf1);
          }
          continue;
        }
        const g = gradScale !== 1 ? g0.mul(gradScale) : g0;
        if (c.name === 'adamw') {
          const [m, s] = this.slotsFor(name, v, 2);
          if (wd) v.assign(v.mul(1 - lr * wd));
          m.assign(m.mul(c.beta1).add(g.mul(1 - c.beta1)));
          s.assign(s.mul(c.beta2).add(g.square().mul(1 - c.beta2)));
          const denom = s.sqrt().div(Math.sqrt(bc2)).add(c.eps);
          v.assign(v.sub(m.div(denom).mul(lr / bc1)));
        } else {
          const d = wd ? g.add(v.mul(wd)) : g;
          if (c.momentum) {
            const fresh = !this.slots.has(name);
            const [buf] = this.slotsFor(name, v, 1);
            // torch initialises the buffer with the first gradient itself (no dampening).
            buf.assign(fresh ? d : buf.mul(c.momentum).add(d));
            v.assign(v.sub(buf.mul(lr)));
          } else {
            v.assign(v.sub(d.mul(lr)));
          }
        }
      }
    });
  }

  private slotsFor(name: string, v: tf.Variable, count: number): tf.Variable[] {
    let s = this.slots.get(name);
    if (!s) {
      s = Array.from({ length: count }, () => tf.variable(tf.zerosLike(v), false));
      this.slots.set(name, s);
    }
    return s;
  }

  /** State as plain tensors named `optim.<slot>.<param>`, for checkpoints. */
  async state(): Promise<Map<string, Tensor>> {
    const out = new Map<string, Tensor>();
    for (const [name, vars] of this.slots) {
      for (let i = 0; i < vars.length; i++) {
        out.set(`optim.${i}.${name}`, { shape: vars[i].shape.slice(), data: (await vars[i].data()) as Float32Array });
      }
    }
    return out;
  }

  restore(step: number, tensors: Map<string, Tensor>): void {
    this.dispose();
    this.step = step;
    const byParam = new Map<string, tf.Variable[]>();
    for (const [key, t] of tensors) {
      const m = /^optim\.(\d+)\.(.+)$/.exec(key);
      if (!m) continue;
      const list = byParam.get(m[2]) ?? [];
      list[Number(m[1])] = tf.variable(tf.tensor(t.data, t.shape), false);
      byParam.set(m[2], list);
    }
    for (const [k, v] of byParam) this.slots.set(k, v);
  }

  dispose(): void {
    for (const vars of this.slots.values()) for (const v of vars) v.dispose();
    this.slots.clear();
  }
}

/**
 * Global gradient-norm clipping as torch's clip_grad_norm_: the L2 norm of all of `grads` together
 * and the coefficient maxNorm / (norm + 1e-6) when that is below 1 (else 1; always 1 when maxNorm ≤ 0),
 * to pass to Optimizer.apply as its gradScale. `grads` are not modified. With the fused kernels the
 * sum of squares is accumulated in float64 straight from the heap; TF.js's kernels sum in float32.
 */
export async function clipGradients(
  grads: Map<string, tf.Tensor>,
  maxNorm: number,
  options: OptimizerOptions = {},
): Promise<{ norm: number; scale: number }> {
  const list = [...grads.values()];
  const k = (options.fused ?? true) && list.length ? fusedOptimizer(...list) : undefined;
  const norm = k
    ? Math.sqrt(sumOfSquares(k, list))
    : list.length
      ? await readScalar(tf.tidy(() => tf.sqrt(tf.addN(list.map(g => g.square().sum())))))
      : 0;
  let scale = 1;
  if (maxNorm > 0) {
    const coef = maxNorm / (norm + 1e-6);
    if (coef < 1) scale = coef;
  }
  return { norm, scale };
}

/** A scalar's value, disposing it; async because the WebGPU backend cannot read synchronously in Node. */
async function readScalar(t: tf.Tensor): Promise<number> {
  const [v] = await t.data();
  t.dispose();
  return v;
}
