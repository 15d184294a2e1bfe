/**
 * The optimizer step on the fused wasm kernels (server/train/fused/optim.ts) against the TF.js path
 * of the same Optimizer (within 1 ulp; the kernels do the same float32 operations in the same order)
 * and against a float64 reference of torch's AdamW / SGD / clip_grad_norm_: odd sizes (SIMD body and
 * scalar tail), decay on and off, momentum on and off, clipping off / not triggered / triggered,
 * checkpoint state round trips between the two paths, and no tensors left behind.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../server/train/backend';
import { fusedKernels } from '../../server/train/fused/kernels';
import { clipGradients, decays, Optimizer, OptimizerConfig } from '../../server/train/optimizer';
import { mulberry32 } from '../../server/train/rng';
import type { Tensor } from '../../server/model/tensor';

// Ranks and names decide weight decay (decays()); sizes cover < 4, 4k, 4k+1..3 and > 1,000 elements.
const SHAPES: [string, number[]][] = [
  ['patch.weight', [4, 3, 2, 2]],
  ['patch.bias', [4]],
  ['cls', [1, 1, 9]],
  ['norm.weight', [1]],
  ['blocks.0.qkv.weight', [7, 5]],
  ['blocks.0.qkv.bias', [7]],
  ['blocks.0.mlp.weight', [33, 31]],
  ['head.weight', [10, 13]],
  ['head.bias', [3]],
];
const STEPS = 6;
const LRS = [1e-2, 2e-2, 5e-3, 1e-2, 3e-3, 8e-3, 1e-2, 4e-3, 6e-3, 2e-3];

const ADAMW: OptimizerConfig = { name: 'adamw', weightDecay: 0.05, beta1: 0.9, beta2: 0.999, eps: 1e-8, momentum: 0 };
const SGD: OptimizerConfig = { name: 'sgd', weightDecay: 0, beta1: 0.9, beta2: 0.999, eps: 1e-8, momentum: 0.9 };
const CONFIGS: [string, OptimizerConfig][] = [
  ['adamw, decay 0.05', ADAMW],
  ['adamw, no decay', { ...ADAMW, weightDecay: 0 }],
  ['adamw, beta2 0.95, eps 1e-6, decay 0.3', { ...ADAMW, beta2: 0.95, eps: 1e-6, weightDecay: 0.3 }],
  ['sgd, momentum 0.9', SGD],
  ['sgd, momentum 0.9, decay 5e-3', { ...SGD, weightDecay: 5e-3 }],
  ['sgd, no momentum, decay 5e-3', { ...SGD, momentum: 0, weightDecay: 5e-3 }],
  ['sgd, no momentum, no decay', { ...SGD, momentum: 0 }],
];
// Gradients have a global norm of about 3: clip 1 scales them, clip 100 does not.
const CLIPS: [string, number][] = [
  ['clip off', 0],
  ['clip 100 (not triggered)', 100],
  ['clip 1 (triggered)', 1],
];

const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

function initial(seed: number): Map<string, Tensor> {
  const r = mulberry32(seed);
  return new Map(
    SHAPES.map(([k, s]) => [k, { shape: s, data: Float32Array.from({ length: numel(s) }, () => r() * 2 - 1) }]),
  );
}

/** The gradients of step `t` (the same for every run). */
function gradients(t: number): Map<string, Tensor> {
  const r = mulberry32(1000 + t);
  return new Map(
    SHAPES.map(([k, s]) => [k, { shape: s, data: Float32Array.from({ length: numel(s) }, () => (r() * 2 - 1) * 0.1) }]),
  );
}

interface Run {
  params: Map<string, Float32Array>;
  state: Map<string, Tensor>;
  norms: number[];
  /** Kernels the last step's optimizer update ran. */
  kernels: string[];
}

interface RunOptions {
  /** Resume from these parameters and optimizer state. */
  from?: { params: Map<string, Float32Array>; step: number; state: Map<string, Tensor> };
  steps?: number;
  /** Gradient norm on the fused kernels (float64 sum) or TF.js's (float32 sums); default: as the optimizer. */
  clipFused?: boolean;
}

/** `steps` optimizer steps with fixed gradients, on the fused kernels or on TF.js's. */
async function run(config: OptimizerConfig, fused: boolean, clip: number, opts: RunOptions = {}): Promise<Run> {
  await initBackend('wasm');
  assert.ok(fusedKernels(), 'the fused kernels did not load (run `npm run build`)');
  const init = initial(1);
  const vars = new Map(
    [...init].map(([k, t]) => [k, tf.variable(tf.tensor(opts.from?.params.get(k) ?? t.data, t.shape))]),
  );
  const opt = new Optimizer(config, { fused });
  if (opts.from) opt.restore(opts.from.step, opts.from.state);
  const norms: number[] = [];
  let kernels: string[] = [];
  for (let i = 0; i < (opts.steps ?? STEPS); i++) {
    const t = opt.step;
    const grads = new Map([...gradients(t)].map(([k, g]) => [k, tf.tensor(g.data, g.shape)]));
    const { norm, scale } = await clipGradients(grads, clip, { fused: opts.clipFused ?? fused });
    norms.push(norm);
    const profile = await tf.profile(() => opt.apply(vars, grads, LRS[t], scale));
    kernels = profile.kernels.map(k => k.name);
    for (const g of grads.values()) g.dispose();
  }
  const params = new Map([...vars].map(([k, v]) => [k, v.dataSync() as Float32Array]));
  const state = await opt.state();
  for (const v of vars.values()) v.dispose();
  opt.dispose();
  return { params, state, norms, kernels };
}

/** Largest distance in units in the last place between two float32 arrays (sign changes count as far). */
function maxUlp(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  const ia = new Int32Array(a.buffer, a.byteOffset, a.length);
  const ib = new Int32Array(b.buffer, b.byteOffset, b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    if (Number.isNaN(a[i]) || Number.isNaN(b[i])) return Infinity;
    if (a[i] === b[i]) continue;
    worst = Math.max(worst, ia[i] < 0 !== ib[i] < 0 ? Infinity : Math.abs(ia[i] - ib[i]));
  }
  return worst;
}

function compare(what: string, a: Run, b: Run, maxUlps: number): number {
  let worst = 0;
  for (const [k, p] of a.params) worst = Math.max(worst, maxUlp(p, b.params.get(k)!));
  assert.deepEqual([...a.state.keys()].sort(), [...b.state.keys()].sort(), `${what}: optimizer state keys differ`);
  for (const [k, s] of a.state) {
    assert.deepEqual(s.shape, b.state.get(k)!.shape);
    worst = Math.max(worst, maxUlp(s.data, b.state.get(k)!.data));
  }
  assert.ok(worst <= maxUlps, `${what}: parameters or state differ by ${worst} ulp (at most ${maxUlps} allowed)`);
  return worst;
}

/** torch's clip_grad_norm_ + AdamW / SGD in float64. */
function reference(
  config: OptimizerConfig,
  clip: number,
  steps = STEPS,
): { params: Map<string, Float64Array>; norms: number[] } {
  const params = new Map([...initial(1)].map(([k, t]) => [k, Float64Array.from(t.data)]));
  const m = new Map([...params].map(([k, p]) => [k, new Float64Array(p.length)]));
  const v = new Map([...params].map(([k, p]) => [k, new Float64Array(p.length)]));
  const norms: number[] = [];
  for (let t = 0; t < steps; t++) {
    const grads = gradients(t);
    let ss = 0;
    for (const g of grads.values()) for (const x of g.data) ss += x * x;
    const norm = Math.sqrt(ss);
    norms.push(norm);
    const scale = clip > 0 && clip / (norm + 1e-6) < 1 ? clip / (norm + 1e-6) : 1;
    const lr = LRS[t];
    const bc1 = 1 - config.beta1 ** (t + 1);
    const bc2 = 1 - config.beta2 ** (t + 1);
    for (const [k, p] of params) {
      const g = grads.get(k)!.data;
      const wd = decays(k, grads.get(k)!.shape.length) ? config.weightDecay : 0;
      const mk = m.get(k)!;
      const vk = v.get(k)!;
      for (let i = 0; i < p.length; i++) {
        const gi = g[i] * scale;
        if (config.name === 'adamw') {
          p[i] *= 1 - lr * wd;
          mk[i] = config.beta1 * mk[i] + (1 - config.beta1) * gi;
          vk[i] = config.beta2 * vk[i] + (1 - config.beta2) * gi * gi;
          p[i] -= ((lr / bc1) * mk[i]) / (Math.sqrt(vk[i]) / Math.sqrt(bc2) + config.eps);
        } else {
          const d = gi + wd * p[i];
          if (config.momentum) {
            mk[i] = t === 0 ? d : config.momentum * mk[i] + d;
            p[i] -= lr * mk[i];
          } else {
            p[i] -= lr * d;
          }
        }
      }
    }
  }
  return { params, norms };
}

test('the kernels are the ones in the module, and they would catch a wrong update', async () => {
  await initBackend('wasm');
  const k = fusedKernels();
  assert.ok(k, 'the fused kernels did not load (run `npm run build`)');
  for (const name of ['adamw', 'sgd', 'sumSquares'])
    assert.equal(typeof k[name], 'function', `kernel module lacks ${name}`);
  // The comparison itself is sensitive: one step with a slightly different learning rate is far more than 1 ulp.
  const a = await run(ADAMW, true, 0, { steps: 1 });
  const saved = LRS[0];
  LRS[0] = saved * (1 + 1e-5);
  try {
    const b = await run(ADAMW, true, 0, { steps: 1 });
    assert.throws(() => compare('perturbed', a, b, 1));
  } finally {
    LRS[0] = saved;
  }
});

for (const [cname, config] of CONFIGS) {
  for (const [clipName, clip] of CLIPS) {
    test(`${cname}, ${clipName}: fused = TF.js path (≤ 1 ulp) ≈ float64 reference`, async () => {
      const fused = await run(config, true, clip);
      const plain = await run(config, false, clip);
      // The same clipping coefficients (the fused norm's) for both, so the updates themselves are compared.
      const plainSameScale = await run(config, false, clip, { clipFused: true });
      // The fused path really ran: one kernel per parameter and nothing else; the TF.js path none of them.
      const kernel = config.name === 'adamw' ? 'VitLensAdamW' : 'VitLensSgd';
      assert.deepEqual(
        fused.kernels,
        SHAPES.map(() => kernel),
      );
      assert.ok(!plain.kernels.some(n => n.startsWith('VitLens')), `TF.js path ran ${plain.kernels.join(', ')}`);
      const ulps = compare(`${cname}, ${clipName}`, fused, plainSameScale, 1);
      // With each path's own norm (float64 vs float32 sums) the coefficient differs in its last bits.
      let pathsAbs = 0;
      for (const [k, p] of plain.params) {
        const got = fused.params.get(k)!;
        for (let i = 0; i < p.length; i++) pathsAbs = Math.max(pathsAbs, Math.abs(got[i] - p[i]));
      }
      if (!clip) assert.equal(pathsAbs, 0);
      const ref = reference(config, clip);
      let maxAbs = 0;
      for (const [k, p] of ref.params) {
        const got = fused.params.get(k)!;
        for (let i = 0; i < p.length; i++) maxAbs = Math.max(maxAbs, Math.abs(got[i] - p[i]));
      }
      for (let t = 0; t < STEPS; t++) {
        assert.ok(
          Math.abs(fused.norms[t] - ref.norms[t]) <= 1e-12 * ref.norms[t],
          `fused norm ${fused.norms[t]} vs float64 ${ref.norms[t]}`,
        );
        assert.ok(
          Math.abs(plain.norms[t] - ref.norms[t]) <= 1e-6 * ref.norms[t],
          `TF.js norm ${plain.norms[t]} vs float64 ${ref.norms[t]}`,
        );
        if (clip === 1) assert.ok(ref.norms[t] > 1.5, 'the gradients are too small to be clipped');
        if (clip === 100) assert.ok(ref.norms[t] < 50);
      }
      console.log(
        `# ${cname}, ${clipName}: fused vs TF.js update ${ulps} ulp, with own norms max |Δp| ${pathsAbs.toExponential(2)}; vs float64 max |Δp| ${maxAbs.toExponential(2)}`,
      );
      assert.ok(pathsAbs < 1e-6, `${cname}, ${clipName}: fused and TF.js parameters differ by ${pathsAbs}`);
      assert.ok(maxAbs < 2e-6, `${cname}, ${clipName}: parameters differ from the float64 reference by ${maxAbs}`);
    });
  }
}

for (const config of [ADAMW, SGD]) {
  test(`${config.name}: checkpoint state round trip, between the fused and TF.js paths`, async () => {
    const first = await run(config, true, 1, { steps: 3 });
    const from = { params: first.params, step: 3, state: first.state };
    const straight = await run(config, true, 1, { steps: 5 });
    const fusedResumed = await run(config, true, 1, { from, steps: 2 });
    const plainResumed = await run(config, false, 1, { from, steps: 2, clipFused: true });
    assert.equal(compare('fused resumed', straight, fusedResumed, 0), 0);
    compare('TF.js resumed from fused state', straight, plainResumed, 1);
    // And the other way: state saved by the TF.js path, resumed on the fused one.
    const plainFirst = await run(config, false, 1, { steps: 3, clipFused: true });
    const resumed = await run(config, true, 1, {
      from: { params: plainFirst.params, step: 3, state: plainFirst.state },
      steps: 2,
    });
    compare('fused resumed from TF.js state', straight, resumed, 1);
  });
}

for (const config of [ADAMW, SGD, { ...SGD, momentum: 0, weightDecay: 1e-2 }]) {
  test(`${config.name}${config.name === 'sgd' && !config.momentum ? ' without momentum' : ''}: no tensors or bytes left behind step over step`, async () => {
    await initBackend('wasm');
    const vars = new Map([...initial(2)].map(([k, t]) => [k, tf.variable(tf.tensor(t.data, t.shape))]));
    const opt = new Optimizer(config);
    const counts: [number, number][] = [];
    for (let t = 0; t < 8; t++) {
      const grads = new Map([...gradients(t)].map(([k, g]) => [k, tf.tensor(g.data, g.shape)]));
      const { scale } = await clipGradients(grads, 1);
      opt.apply(vars, grads, 1e-2, scale);
      for (const g of grads.values()) g.dispose();
      counts.push([tf.memory().numTensors, tf.memory().numBytes]);
    }
    // The first step creates the state; from then on the counts stay put.
    for (const c of counts.slice(2))
      assert.deepEqual(c, counts[1], `tensors/bytes per step: ${counts.map(c => c.join('/')).join(' ')}`);
    for (const v of vars.values()) v.dispose();
    opt.dispose();
  });
}

test('clipGradients: torch coefficient, grads untouched, empty map', async () => {
  await initBackend('wasm');
  const grads = new Map([...gradients(0)].map(([k, g]) => [k, tf.tensor(g.data, g.shape)]));
  const before = [...grads.values()].map(g => g.dataSync().slice());
  const ref = reference(ADAMW, 0, 1).norms[0];
  for (const fused of [true, false]) {
    const off = await clipGradients(grads, 0, { fused });
    assert.equal(off.scale, 1);
    assert.ok(Math.abs(off.norm - ref) <= 1e-6 * ref);
    const on = await clipGradients(grads, 1, { fused });
    assert.ok(Math.abs(on.scale - 1 / (ref + 1e-6)) <= 1e-6 * on.scale, `scale ${on.scale} vs ${1 / (ref + 1e-6)}`);
    assert.equal((await clipGradients(grads, ref * 2, { fused })).scale, 1);
    assert.deepEqual(await clipGradients(new Map(), 1, { fused }), { norm: 0, scale: 1 });
  }
  [...grads.values()].forEach((g, i) => assert.deepEqual(g.dataSync(), before[i]));
  for (const g of grads.values()) g.dispose();
});
