/**
 * The speed-up this machine allows N training threads at all: N worker_threads, each with its own
 * wasm backend, fused kernels and copy of the bench model, each running whole training steps
 * (forward, backward, clipping, AdamW) on its own B/N images with no communication, started together
 * after warm-up. Their summed images/s over one thread's at the full batch B is the ceiling of what
 * data-parallel training (server/train/threads.ts) can reach on this machine: anything below it is
 * our communication and serial work; the gap between it and N is the machine (shared FMA units of
 * SMT siblings or a busy host, memory bandwidth, the V8 helper threads every isolate runs).
 *
 *   node --import tsx bench/threadCeiling.ts --threads 1,2 [--batch-size 128] [--steps 30]
 * bench/train.ts prints it next to its thread-count ratios.
 */
import * as path from 'path';
import { parseArgs } from 'util';
import { isMainThread, parentPort, Worker, workerData } from 'worker_threads';
import * as tf from '@tensorflow/tfjs';
import type { ViTArch } from '../server/model/vitConfig';
import { initBackend } from '../server/train/backend';
import { initialWeights } from '../server/train/initWeights';
import { clipGradients, Optimizer } from '../server/train/optimizer';
import { lossAndGrads } from '../server/train/step';
import { trainableNames } from '../server/train/vitModel';

export const BENCH_ARCH: Partial<ViTArch> = { hiddenSize: 64, numLayers: 6, numHeads: 4, mlpSize: 128, patchSize: 7 };

interface CopyInit {
  batch: number;
  steps: number;
  warmup: number;
  seed: number;
}
type CopyMessage = { ready: true } | { done: true; ms: number } | { error: string };

/** One independent copy (runs inside a worker thread): warm up, wait for "go", then time `steps` steps. */
async function runCopy(init: CopyInit): Promise<void> {
  const port = parentPort!;
  const backend = await initBackend('wasm');
  if (backend.name !== 'wasm') throw new Error(`the wasm backend did not start (${backend.notes.join('; ')})`);
  const weights = await initialWeights('scratch:bench', {
    numClasses: 10,
    imageSize: [28, 28],
    patchSize: 7,
    seed: init.seed,
    scratchArch: BENCH_ARCH,
  });
  const params = new Map(
    [...weights.weights].map(([k, t]) => [k, tf.variable(tf.tensor(t.data, t.shape), true, `copy/${k}`)]),
  );
  const trainable = trainableNames(weights.arch, 'full', 0);
  const opt = new Optimizer({ name: 'adamw', weightDecay: 0.05, beta1: 0.9, beta2: 0.999, eps: 1e-8, momentum: 0 });
  const x = new Float32Array(init.batch * 3 * 28 * 28).map((_, i) => Math.sin(i * 12.9898 + init.seed));
  const y = Int32Array.from({ length: init.batch }, (_, i) => i % 10);
  const step = async () => {
    const xt = tf.tensor4d(x, [init.batch, 3, 28, 28]);
    const r = await lossAndGrads(params, weights.arch, trainable, { kind: 'pixels', x: xt }, y, 0.1);
    const { scale } = await clipGradients(r.grads, 1);
    opt.apply(params, r.grads, 1e-4, scale);
    for (const g of r.grads.values()) g.dispose();
    xt.dispose();
  };
  for (let i = 0; i < init.warmup; i++) await step();
  port.postMessage({ ready: true } satisfies CopyMessage);
  await new Promise(resolve => port.once('message', resolve));
  const t0 = performance.now();
  for (let i = 0; i < init.steps; i++) await step();
  port.postMessage({ done: true, ms: performance.now() - t0 } satisfies CopyMessage);
}

function startCopy(init: CopyInit): Worker {
  const tsx = 'tsx/cjs';
  const code = `require(${JSON.stringify(require.resolve(tsx))}); require(${JSON.stringify(__filename)});`;
  return new Worker(code, { eval: true, workerData: init });
}

/** Images/s of `threads` independent copies on batch/threads images each, all timed over the same window. */
export async function independentImagesPerSec(
  threads: number,
  batch: number,
  steps: number,
  warmup = 3,
): Promise<number> {
  const slice = Math.floor(batch / threads);
  const workers = Array.from({ length: threads }, (_, i) => startCopy({ batch: slice, steps, warmup, seed: i }));
  const next = (w: Worker) =>
    new Promise<CopyMessage>((resolve, reject) => {
      w.once('message', (m: CopyMessage) => ('error' in m ? reject(new Error(m.error)) : resolve(m)));
      w.once('error', reject);
    });
  try {
    await Promise.all(workers.map(next));
    const t0 = performance.now();
    const done = workers.map(next);
    for (const w of workers) w.postMessage('go');
    await Promise.all(done);
    const seconds = (performance.now() - t0) / 1000;
    return (threads * slice * steps) / seconds;
  } finally {
    await Promise.all(workers.map(w => w.terminate()));
  }
}

/** For each thread count, the independent copies' images/s and its ratio to the first count's. */
export async function threadCeiling(counts: number[], batch: number, steps: number) {
  const rows: { threads: number; imagesPerSec: number; ratio: number }[] = [];
  for (const threads of counts) {
    const imagesPerSec = await independentImagesPerSec(threads, batch, steps);
    rows.push({ threads, imagesPerSec, ratio: imagesPerSec / (rows[0]?.imagesPerSec ?? imagesPerSec) });
  }
  return rows;
}

if (!isMainThread) {
  runCopy(workerData as CopyInit).catch(e => parentPort!.postMessage({ error: (e as Error).message }));
} else if (require.main === module || process.argv[1]?.endsWith(path.join('bench', 'threadCeiling.ts'))) {
  const { values: o } = parseArgs({
    options: {
      threads: { type: 'string', default: '1,2' },
      'batch-size': { type: 'string', default: '128' },
      steps: { type: 'string', default: '30' },
    },
  });
  void (async () => {
    const counts = o.threads.split(',').map(Number);
    for (const r of await threadCeiling(counts, Number(o['batch-size']), Number(o.steps)))
      console.log(
        `${r.threads} independent cop${r.threads > 1 ? 'ies' : 'y'} at batch ${Math.floor(Number(o['batch-size']) / r.threads)}: ${r.imagesPerSec.toFixed(1)} images/s (${r.ratio.toFixed(3)}× one)`,
      );
  })();
}
