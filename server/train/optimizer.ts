/**
 * AdamW and SGD with momentum, written out rather than taken from tf.train because the update must
 * match PyTorch's (decoupled weight decay for AdamW, coupled for SGD; torch's bias-correction order)
 * and its state must be saved into checkpoints and restored bit for bit.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Tensor } from '../model/tensor';

export type OptimizerName = 'adamw' | 'sgd';

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

export class Optimizer {
  /** Steps taken so far (AdamW's bias correction needs it). */
  step = 0;
  private readonly slots = new Map<string, tf.Variable[]>();

  constructor(readonly config: OptimizerConfig) {}

  /** One update of `vars` with `grads` (same keys) at learning rate `lr`. */
  apply(vars: Map<string, tf.Variable>, grads: Map<string, tf.Tensor>, lr: number): void {
    this.step++;
    const c = this.config;
    const t = this.step;
    tf.tidy(() => {
      for (const [name, v] of vars) {
        const g = grads.get(name);
        if (!g) continue;
        const wd = decays(name, v.rank) ? c.weightDecay : 0;
        if (c.name === 'adamw') {
          const [m, s] = this.slotsFor(name, v, 2);
          if (wd) v.assign(v.mul(1 - lr * wd));
          m.assign(m.mul(c.beta1).add(g.mul(1 - c.beta1)));
          s.assign(s.mul(c.beta2).add(g.square().mul(1 - c.beta2)));
          const bc1 = 1 - Math.pow(c.beta1, t);
          const bc2 = 1 - Math.pow(c.beta2, t);
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

/** Scale `grads` in place so their global L2 norm is at most `maxNorm` (torch's clip_grad_norm_). Returns the norm before clipping. */
export function clipGlobalNorm(grads: Map<string, tf.Tensor>, maxNorm: number): number {
  const norm = tf.tidy(() => tf.sqrt(tf.addN([...grads.values()].map((g) => g.square().sum()))).dataSync()[0]);
  if (maxNorm > 0) {
    const coef = maxNorm / (norm + 1e-6);
    if (coef < 1) {
      for (const [k, g] of grads) {
        grads.set(k, g.mul(coef));
        g.dispose();
      }
    }
  }
  return norm;
}
