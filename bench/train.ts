/**
 * `npm run bench:train`: a from-scratch small ViT on Fashion-MNIST (28×28, patch 7), our trainer vs
 * PyTorch CPU (bench/torch_train.py) on the same architecture, batch, optimizer and schedule, in the
 * same run. Prints images/s of both, the ratio, and test accuracy after the same number of epochs.
 *
 *   npm run bench:train -- [--epochs 10] [--limit 60000] [--batch-size 128] [--skip-torch]
 *                          [--threads 1,2]    (each side at each thread count; ratios printed; a list such
 *                                              as 1,2,1,2,1,2 interleaves repeats: ratios of medians)
 *                          [--save-builtin]   (export our model to models/default + samples/)
 *   npm run bench:train -- --arch vit-b16 [--threads 2] [--steps 2]   (bench/train_vitb16.ts)
 * Needs `apt-get install dataset-fashion-mnist` and, for the peer, Debian's python3-torch.
 */
import { spawn } from 'child_process';
import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseArgs } from 'util';
import * as tf from '@tensorflow/tfjs';
import { fashionMnistData, pixelsOf } from '../server/train/fashionMnist';
import { loadCheckpoint } from '../server/train/checkpoint';
import { checkpointFile, exportDir, readMetrics, TrainConfig } from '../server/train/runFiles';
import { train } from '../server/train/trainer';
import { logits, Params } from '../server/train/vitModel';
import type { ViTArch } from '../server/model/vitConfig';
import { saveBuiltIn } from '../server/train/builtinModel';
import { BENCH_ARCH, threadCeiling } from './threadCeiling';
import { fixOpenBlasCore } from './openblasCore';

const { values: o } = parseArgs({
  options: {
    epochs: { type: 'string', default: '10' },
    limit: { type: 'string', default: '60000' },
    'batch-size': { type: 'string', default: '128' },
    lr: { type: 'string', default: '1e-3' },
    'skip-torch': { type: 'boolean' },
    threads: { type: 'string', default: '1' },
    'torch-threads': { type: 'string' },
    arch: { type: 'string', default: 'small' },
    steps: { type: 'string', default: '2' },
    'save-builtin': { type: 'boolean' },
    'run-dir': { type: 'string' },
    backend: { type: 'string', default: 'wasm' },
  },
});

const ARCH = BENCH_ARCH;
const epochs = Number(o.epochs);
const limit = Number(o.limit);
const batchSize = Number(o['batch-size']);
const lr = Number(o.lr);

async function testAccuracy(
  params: Params,
  arch: ViTArch,
  test: ReturnType<typeof fashionMnistData>['test'],
): Promise<number> {
  let correct = 0;
  for (let i = 0; i < test.count; i += 500) {
    const n = Math.min(500, test.count - i);
    const x = new Float32Array(n * 3 * 784);
    for (let j = 0; j < n; j++) x.set(pixelsOf(test, i + j), j * 3 * 784);
    const pred = tf.tidy(() =>
      logits(params, arch, { kind: 'pixels', x: tf.tensor4d(x, [n, 3, 28, 28]) })
        .argMax(1)
        .dataSync(),
    );
    for (let j = 0; j < n; j++) if (pred[j] === test.labels[i + j]) correct++;
  }
  return correct / test.count;
}

/** `repeats` interleaved measurements of the machine's ceiling for each thread count. */
async function ceilingRepeated(counts: number[], repeats: number) {
  const runs: Awaited<ReturnType<typeof threadCeiling>>[] = [];
  for (let i = 0; i < repeats; i++) runs.push(await threadCeiling(counts, batchSize, 30));
  return runs;
}

/** Thread counts to measure, e.g. "1,2" (the first is the baseline of the speed-up lines). */
const threadCounts = o.threads.split(',').map(t => Number(t));
if (!threadCounts.every(t => Number.isInteger(t) && t >= 1))
  throw new Error(`--threads must be a thread count or a list (1,2), got "${o.threads}"`);

interface OurResult {
  imagesPerSec: number;
  testAcc: number;
  seconds: number;
  runDir: string;
  cpuUtilization: number;
  kernels?: string;
  threads: number;
}

async function runOurs(threads: number): Promise<OurResult> {
  const runDir =
    o['run-dir'] && threadCounts.length === 1
      ? o['run-dir']
      : path.join(os.tmpdir(), `vit-lens-bench-${Date.now()}-t${threads}`);
  const { data, test } = fashionMnistData({ limit });
  const config: TrainConfig = {
    dataset: 'fashion-mnist',
    model: 'scratch:bench',
    mode: 'full',
    lastK: 0,
    epochs,
    batchSize,
    accumulate: 1,
    lr,
    optimizer: 'adamw',
    weightDecay: 0.05,
    momentum: 0,
    warmupSteps: -1,
    clipNorm: 1,
    labelSmoothing: 0.1,
    augment: false,
    imageSize: [28, 28],
    patchSize: 7,
    valSplit: 0,
    seed: 0,
  };
  const t0 = Date.now();
  const cpu0 = process.cpuUsage();
  const info = await train({
    runDir,
    config,
    data,
    scratchArch: ARCH,
    backend: o.backend as 'wasm',
    threads,
    logEvery: 50,
    log: l => console.error(`[ours] ${l}`),
  });
  const seconds = (Date.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const cpuUtilization = (cpu.user + cpu.system) / 1e6 / seconds;
  const epochsM = (await readMetrics(runDir)).filter(m => m.type === 'epoch');
  const trainSeconds = epochsM.reduce((a, m) => a + (m.type === 'epoch' ? m.seconds : 0), 0);
  // Final weights (the same point in training as PyTorch's last epoch), evaluated on the test set.
  const ck = await loadCheckpoint(checkpointFile(runDir, 'latest'));
  const arch = info.architecture!;
  const params: Params = new Map(
    [...ck.weights].map(([k, t]) => [k, tf.variable(tf.tensor(t.data, t.shape), false, `bench/${k}`)]),
  );
  const testAcc = await testAccuracy(params, arch, test);
  for (const v of params.values()) v.dispose();
  // The backend notes say which kernels ran (fused relaxed-SIMD / plain SIMD, or TF.js's own).
  const kernels = info.backendNotes.find(n => n.startsWith('fused kernels:'))?.replace('fused kernels: ', '');
  return { imagesPerSec: (limit * epochs) / trainSeconds, testAcc, seconds, runDir, cpuUtilization, kernels, threads };
}

function runTorch(threads: number): Promise<{
  imagesPerSec: number;
  testAcc: number[];
  threads: number;
  interopThreads: number;
  cpuUtilization: number;
}> {
  return new Promise((resolve, reject) => {
    const args = [
      'bench/torch_train.py',
      '--epochs',
      String(epochs),
      '--limit',
      String(limit),
      '--batch-size',
      String(batchSize),
      '--lr',
      String(lr),
      '--hidden',
      String(ARCH.hiddenSize),
      '--layers',
      String(ARCH.numLayers),
      '--heads',
      String(ARCH.numHeads),
      '--mlp',
      String(ARCH.mlpSize),
      '--patch',
      String(ARCH.patchSize),
      '--threads',
      o['torch-threads'] ?? String(threads),
    ];
    const p = spawn('/usr/bin/python3', args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let last = '';
    p.stdout.on('data', (d: Buffer) => {
      for (const line of d.toString().split('\n').filter(Boolean)) {
        console.error(`[torch] ${line}`);
        last = line;
      }
    });
    p.on('error', reject);
    p.on('close', code => {
      if (code !== 0) return reject(new Error(`bench/torch_train.py exited with ${code}`));
      const r = JSON.parse(last);
      resolve({
        imagesPerSec: r.images_per_sec,
        testAcc: r.test_acc,
        threads: r.threads,
        interopThreads: r.interop_threads,
        cpuUtilization: r.cpu_utilization,
      });
    });
  });
}

(async () => {
  console.log(fixOpenBlasCore());
  if (o.arch === 'vit-b16') {
    const { benchVitB16 } = await import('./train_vitb16');
    return benchVitB16({
      threads: threadCounts[threadCounts.length - 1],
      steps: Number(o.steps),
      batchSize: o['batch-size'] === '128' ? 8 : batchSize,
      lastK: 2,
      skipTorch: !!o['skip-torch'],
    });
  }
  if (o.arch !== 'small') throw new Error(`--arch must be small or vit-b16, got "${o.arch}"`);
  console.error(
    `Fashion-MNIST, ViT hidden ${ARCH.hiddenSize}, ${ARCH.numLayers} layers, ${ARCH.numHeads} heads, MLP ${ARCH.mlpSize}, patch ${ARCH.patchSize}; batch ${batchSize}, AdamW lr ${lr}, ${epochs} epochs on ${limit} images`,
  );
  const lines: string[] = [];
  const results: { threads: number; ours: OurResult; torch?: Awaited<ReturnType<typeof runTorch>> }[] = [];
  for (const threads of threadCounts) {
    const ours = await runOurs(threads);
    const torch = o['skip-torch'] ? undefined : await runTorch(threads);
    results.push({ threads, ours, torch });
    // tfjs-backend-wasm never loads its threaded binary in Node (WASM_HAS_MULTITHREAD_SUPPORT is false there): more threads are worker_threads, data-parallel.
    lines.push(
      `ours (TF.js ${o.backend}${ours.kernels ? `, fused kernels ${ours.kernels}` : ''}, ${threads} thread${threads > 1 ? 's' : ''}, ${(ours.cpuUtilization * 100).toFixed(0)}% CPU of the main thread): ${ours.imagesPerSec.toFixed(1)} images/s, test accuracy ${(ours.testAcc * 100).toFixed(2)}% after ${epochs} epochs (${ours.seconds.toFixed(0)} s in all)`,
    );
    if (torch) {
      lines.push(
        `PyTorch CPU (${torch.threads} intra-op / ${torch.interopThreads} inter-op thread${torch.threads > 1 ? 's' : ''}, OMP/MKL/OPENBLAS pinned, ${(torch.cpuUtilization * 100).toFixed(0)}% CPU while training): ${torch.imagesPerSec.toFixed(1)} images/s, test accuracy ${(torch.testAcc[torch.testAcc.length - 1] * 100).toFixed(2)}% after ${epochs} epochs`,
      );
      lines.push(
        `throughput ratio ours/PyTorch at ${threads} thread${threads > 1 ? 's' : ''} each: ${(ours.imagesPerSec / torch.imagesPerSec).toFixed(3)}×`,
      );
    }
  }
  // Per thread count, the median of its runs (a list such as 1,2,1,2 interleaves them, so that a
  // machine whose speed drifts during the run weighs on both sides alike).
  const counts = [...new Set(threadCounts)];
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
  const medianOf = (t: number, side: (r: (typeof results)[number]) => number | undefined) => {
    const xs = results.filter(r => r.threads === t).map(side);
    return xs.every(x => x !== undefined) ? median(xs as number[]) : undefined;
  };
  // What the machine allows at all: as many independent copies, no communication (bench/threadCeiling.ts),
  // measured interleaved as often as each count ran.
  const repeats = Math.max(...counts.map(t => threadCounts.filter(c => c === t).length));
  const ceilingRuns = counts.length > 1 && o.backend === 'wasm' ? await ceilingRepeated(counts, repeats) : [];
  const base = counts[0];
  for (const t of counts.slice(1)) {
    const ours = medianOf(t, r => r.ours.imagesPerSec)! / medianOf(base, r => r.ours.imagesPerSec)!;
    const torchT = medianOf(t, r => r.torch?.imagesPerSec);
    const torchBase = medianOf(base, r => r.torch?.imagesPerSec);
    lines.push(
      `ours ${t} threads / ours ${base} (median of ${results.filter(r => r.threads === t).length} and ${results.filter(r => r.threads === base).length} runs): ${ours.toFixed(3)}×${torchT && torchBase ? `  (PyTorch ${t} / ${base}: ${(torchT / torchBase).toFixed(3)}×)` : ''}`,
    );
    const free = ceilingRuns.length
      ? median(ceilingRuns.map(rows => rows.find(c => c.threads === t)!.imagesPerSec)) /
        median(ceilingRuns.map(rows => rows.find(c => c.threads === base)!.imagesPerSec))
      : undefined;
    if (free)
      lines.push(
        `  machine ceiling: ${t} independent single-thread copies / ${base} (median of ${ceilingRuns.length}): ${free.toFixed(3)}× (ours keeps ${((ours / free) * 100).toFixed(0)}% of it)`,
      );
  }
  console.log(lines.join('\n'));
  const last = results[results.length - 1];
  const summary = {
    date: new Date().toISOString(),
    arch: ARCH,
    epochs,
    limit,
    batchSize,
    lr,
    results,
    ceiling: ceilingRuns,
    ours: last.ours,
    torch: last.torch,
  };
  await fs.writeFile(path.join(last.ours.runDir, 'bench.json'), JSON.stringify(summary, null, 2));
  if (o['save-builtin']) await saveBuiltIn(exportDir(last.ours.runDir), last.ours.runDir, summary);
})().catch(e => {
  console.error(e);
  process.exit(1);
});
