/**
 * Data-parallel training on worker_threads (server/train/threads.ts): 2 threads train like 1 (the
 * same losses and weights up to the order of float32 sums), a stopped 2-thread run resumes to
 * bitwise the same weights as an uninterrupted 2-thread run, and a thread that throws fails the run
 * with a clear message and leaves it resumable.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'fs';
import * as os from 'os';
import * as path from 'path';
import { makeColorDataset } from '../fixtures/train/makeDataset';
import { loadCheckpoint } from '../../server/train/checkpoint';
import { checkpointFile, readRunInfo, TrainConfig } from '../../server/train/runFiles';
import { train, TrainOptions } from '../../server/train/trainer';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'vit-lens-threads-'));
const SMALL = { hiddenSize: 32, numLayers: 2, numHeads: 4, mlpSize: 64 };
const ds = path.join(tmp, 'ds');
const dataset = makeColorDataset(ds, { perClass: 8 });

function config(over: Partial<TrainConfig> = {}): TrainConfig {
  return {
    dataset: ds,
    model: 'scratch:tiny',
    mode: 'full',
    lastK: 1,
    epochs: 2,
    batchSize: 5,
    accumulate: 2,
    lr: 2e-3,
    optimizer: 'adamw',
    weightDecay: 0.05,
    momentum: 0,
    warmupSteps: 2,
    clipNorm: 1,
    labelSmoothing: 0.1,
    augment: true,
    imageSize: [16, 16],
    patchSize: 4,
    valSplit: 0.25,
    seed: 7,
    ...over,
  };
}

const common = {
  backend: 'wasm' as const,
  scratchArch: SMALL,
  exportAtEnd: false,
  cacheDir: path.join(tmp, 'cache'),
  logEvery: 1,
};
const run = async (name: string, opts: Partial<TrainOptions> & { config?: TrainConfig }) => {
  await dataset;
  const runDir = path.join(tmp, name);
  return { runDir, info: await train({ ...common, config: config(), ...opts, runDir }) };
};
const stepLosses = (dir: string) =>
  readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map(l => JSON.parse(l))
    .filter(m => m.type === 'step')
    .map(m => m.loss as number);
async function weightDiff(a: string, b: string): Promise<number> {
  const wa = (await loadCheckpoint(checkpointFile(a, 'latest'))).weights;
  const wb = (await loadCheckpoint(checkpointFile(b, 'latest'))).weights;
  assert.equal(wa.size, wb.size);
  let max = 0;
  for (const [name, t] of wa) t.data.forEach((v, i) => (max = Math.max(max, Math.abs(v - wb.get(name)!.data[i]))));
  return max;
}

const twoThreads = (() => {
  let p: ReturnType<typeof run> | undefined;
  return () => (p ??= run('t2', { threads: 2 }));
})();

for (const mode of ['full', 'last-k'] as const) {
  test(`${mode}: 2 threads give 1 thread's losses and weights within float32 summation-order differences`, async () => {
    const over = mode === 'full' ? {} : { mode, augment: false };
    const one = await run(`${mode}-1`, { threads: 1, config: config(over) });
    const two = mode === 'full' ? await twoThreads() : await run(`${mode}-2`, { threads: 2, config: config(over) });
    assert.equal(two.info.status, 'finished');
    assert.ok(
      two.info.backendNotes.includes('threads: 2 (data-parallel on worker_threads)'),
      two.info.backendNotes.join('\n'),
    );
    assert.ok(one.info.backendNotes.includes('threads: 1'), one.info.backendNotes.join('\n'));
    const l1 = stepLosses(one.runDir);
    const l2 = stepLosses(two.runDir);
    assert.equal(l2.length, l1.length);
    let maxRel = 0;
    l1.forEach((v, i) => (maxRel = Math.max(maxRel, Math.abs(v - l2[i]) / Math.abs(v))));
    const dw = await weightDiff(one.runDir, two.runDir);
    console.log(
      `# ${mode}: 1 vs 2 threads: max relative loss difference ${maxRel.toExponential(2)}, max |Δweight| ${dw.toExponential(2)}`,
    );
    assert.ok(maxRel < 1e-5, `losses differ by up to ${maxRel} relative: ${l1} vs ${l2}`);
    assert.ok(dw < 1e-4, `weights differ by up to ${dw}`);
    // Training moved the loss (else agreement proves little).
    assert.ok(Math.min(...l1.slice(-3)) < l1[0]);
  });
}

test('2 threads: stop mid-epoch + resume gives bitwise the weights of the uninterrupted 2-thread run', async () => {
  const full = await twoThreads();
  let steps = 0;
  const b = path.join(tmp, 't2-stopped');
  const first = await train({
    ...common,
    config: config(),
    runDir: b,
    threads: 2,
    log: l => {
      if (/step \d+\//.test(l)) steps++;
    },
    shouldStop: () => steps >= 3,
  });
  assert.equal(first.status, 'stopped');
  const resumed = await train({ ...common, config: config(), runDir: b, threads: 2, resume: true });
  assert.equal(resumed.status, 'finished');
  assert.equal(resumed.step, full.info.step);
  assert.equal(await weightDiff(full.runDir, b), 0);
  assert.deepEqual(stepLosses(b), stepLosses(full.runDir));
});

test('a thread that throws fails the run with a clear message; the run resumes to the uninterrupted weights', async () => {
  const full = await twoThreads();
  const b = path.join(tmp, 't2-crash');
  process.env.VIT_LENS_TEST_THREAD_FAILURE = '2:5';
  try {
    await assert.rejects(
      train({ ...common, config: config(), runDir: b, threads: 2, checkpointEvery: { steps: 1 } }),
      /training thread 2 of 2 failed: simulated failure on slice 5/,
    );
  } finally {
    delete process.env.VIT_LENS_TEST_THREAD_FAILURE;
  }
  const failed = await readRunInfo(b);
  assert.equal(failed.status, 'failed');
  assert.match(failed.reason ?? '', /training thread 2 of 2 failed/);
  assert.ok(failed.step > 0 && failed.step < full.info.step, `failed at step ${failed.step}`);
  const resumed = await train({ ...common, config: config(), runDir: b, threads: 2, resume: true });
  assert.equal(resumed.status, 'finished');
  assert.equal(await weightDiff(full.runDir, b), 0);
});
