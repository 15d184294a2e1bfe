/**
 * Per-kernel profile of one training step of the bench model (bench/train.ts's architecture) on a
 * backend: wraps every registered kernel of the backend with a wall-clock timer (wasm kernels run
 * synchronously, so wall time is kernel time) and prints the totals per kernel and shape.
 *
 *   node --import tsx bench/profile_train.ts [--backend wasm] [--batch-size 128] [--steps 20] [--patch 7] [--tfjs-optimizer]
 *                                            [--arch small|vit-b16]   (vit-b16: ViT-B/16 at 224; give --batch-size 8 --steps 2 --warmup 1)
 *
 * --tfjs-optimizer: clipping and the optimizer step on TF.js's kernels instead of the fused ones.
 */
import { parseArgs } from 'util';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../server/train/backend';
import { initialWeights } from '../server/train/initWeights';
import { clipGradients, Optimizer } from '../server/train/optimizer';
import { lossAndGrads } from '../server/train/step';
import { Params, trainableNames } from '../server/train/vitModel';
import { BENCH_ARCH } from './threadCeiling';

const { values: o } = parseArgs({
  options: {
    backend: { type: 'string', default: 'wasm' },
    'batch-size': { type: 'string', default: '128' },
    steps: { type: 'string', default: '20' },
    patch: { type: 'string', default: '7' },
    'no-kernels': { type: 'boolean', default: false },
    'tfjs-optimizer': { type: 'boolean', default: false },
    arch: { type: 'string', default: 'small' },
    warmup: { type: 'string', default: '3' },
  },
});

(async () => {
  await initBackend(o.backend as 'wasm');
  const B = Number(o['batch-size']);
  if (o.arch !== 'small' && o.arch !== 'vit-b16') throw new Error(`--arch must be small or vit-b16, got "${o.arch}"`);
  const vitB = o.arch === 'vit-b16';
  const P = vitB ? 16 : Number(o.patch);
  const S = vitB ? 224 : 28;
  const init = vitB
    ? await initialWeights('scratch:base', { numClasses: 10, imageSize: [S, S], patchSize: P, seed: 0 })
    : await initialWeights('scratch:bench', {
        numClasses: 10,
        imageSize: [S, S],
        patchSize: P,
        seed: 0,
        scratchArch: { ...BENCH_ARCH, patchSize: P },
      });
  const arch = init.arch;
  const params: Params = new Map();
  for (const [k, t] of init.weights) params.set(k, tf.variable(tf.tensor(t.data, t.shape), true, `p/${k}`));
  const trainable = trainableNames(arch, 'full', 0);
  const opt = new Optimizer(
    { name: 'adamw', weightDecay: 0.05, beta1: 0.9, beta2: 0.999, eps: 1e-8, momentum: 0 },
    { fused: !o['tfjs-optimizer'] },
  );
  const x = new Float32Array(B * 3 * S * S).map(() => Math.random() * 2 - 1);
  const y = Int32Array.from({ length: B }, (_, i) => i % 10);

  const totals = new Map<string, { ms: number; n: number }>();
  let timing = false;
  const wrapped = new Set<string>();
  const wrap = () => {
    for (const k of tf.getKernelsForBackend(o.backend!)) {
      if (wrapped.has(k.kernelName)) continue;
      wrapped.add(k.kernelName);
      const f = k.kernelFunc;
      (k as { kernelFunc: typeof f }).kernelFunc = args => {
        if (!timing) return f(args);
        const t0 = performance.now();
        const r = f(args);
        const ms = performance.now() - t0;
        const shapes = Object.values(args.inputs)
          .map(t => (t as tf.Tensor).shape.join('x'))
          .join(',');
        const a = args.attrs as Record<string, unknown> | undefined;
        const flags =
          a && ('transposeA' in a || 'transposeB' in a) ? ` tA=${a.transposeA ? 1 : 0} tB=${a.transposeB ? 1 : 0}` : '';
        let key = `${k.kernelName} ${shapes}${flags}`;
        if (process.env.TRACE_KERNEL === k.kernelName)
          key +=
            ' @ ' +
            (new Error().stack ?? '')
              .split('\n')
              .slice(2, 9)
              .map(s =>
                s
                  .trim()
                  .replace(/^at /, '')
                  .replace(/\(.*node_modules\//, '(')
                  .replace(/\(\/work\/wt\/perf\//, '('),
              )
              .join(' < ');
        const e = totals.get(key) ?? { ms: 0, n: 0 };
        e.ms += ms;
        e.n++;
        totals.set(key, e);
        return r;
      };
    }
  };
  if (!o['no-kernels']) wrap();
  const phase = { grads: 0, clip: 0, update: 0 };
  const step = async () => {
    const xt = tf.tensor4d(x, [B, 3, S, S]);
    let t = performance.now();
    const r = await lossAndGrads(params, arch, trainable, { kind: 'pixels', x: xt }, y, 0.1);
    phase.grads += performance.now() - t;
    t = performance.now();
    const { scale } = await clipGradients(r.grads, 1, { fused: !o['tfjs-optimizer'] });
    phase.clip += performance.now() - t;
    t = performance.now();
    opt.apply(params, r.grads, 1e-4, scale);
    phase.update += performance.now() - t;
    for (const g of r.grads.values()) g.dispose();
    xt.dispose();
  };
  for (let i = 0; i < Number(o.warmup); i++) await step();
  if (!o['no-kernels']) wrap(); // kernels registered during the first steps (server/train/fused)
  const steps = Number(o.steps);
  timing = !o['no-kernels'];
  phase.grads = phase.clip = phase.update = 0;
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < steps; i++) await step();
  const ms = (performance.now() - t0) / steps;
  const cpu = process.cpuUsage(cpu0);
  const kernelMs = [...totals.values()].reduce((a, e) => a + e.ms, 0) / steps;
  console.log(
    `${o.backend} batch ${B}: ${ms.toFixed(1)} ms/step = ${((B * 1000) / ms).toFixed(1)} img/s; kernels ${kernelMs.toFixed(1)} ms/step; CPU ${(((cpu.user + cpu.system) / 1000 / steps / ms) * 100).toFixed(0)}%; tensors alive ${tf.memory().numTensors}`,
  );
  console.log(
    `phases (ms/step): forward+backward ${(phase.grads / steps).toFixed(1)}, clip ${(phase.clip / steps).toFixed(1)}, optimizer ${(phase.update / steps).toFixed(1)}`,
  );
  if (!o['no-kernels']) {
    const byKernel = new Map<string, { ms: number; n: number }>();
    for (const [k, e] of totals) {
      const name = k.split(' ')[0];
      const b = byKernel.get(name) ?? { ms: 0, n: 0 };
      b.ms += e.ms;
      b.n += e.n;
      byKernel.set(name, b);
    }
    console.log('\nby kernel (ms/step, calls/step):');
    for (const [k, e] of [...byKernel].sort((a, b) => b[1].ms - a[1].ms).slice(0, 25))
      console.log(`  ${(e.ms / steps).toFixed(2).padStart(7)} ${String(e.n / steps).padStart(5)}  ${k}`);
    console.log('\nby kernel and shape:');
    for (const [k, e] of [...totals].sort((a, b) => b[1].ms - a[1].ms).slice(0, 30))
      console.log(`  ${(e.ms / steps).toFixed(2).padStart(7)} ${String(e.n / steps).padStart(5)}  ${k}`);
  }
})();
