/**
 * Data-parallel training on worker_threads (server/train/threads.ts): 2 threads train like 1 (the
 * same losses and weights up to the order of float32 sums), a stopped 2-thread run resumes to
 * bitwise the same weights as an uninterrupted 2-thread run, a thread that throws fails the run
 * with a clear message and leaves it resumable, and validation logits spread over the threads are
 * one thread's to the bit.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'fs';
import * as os from 'os';
import * as path from 'path';
import { makeColorDataset } from '../fixtures/train/makeDataset';
import { SMALL_ARCH, smallRunConfig } from '../fixtures/train/smallRun';
import { loadCheckpoint } from '../../server/train/checkpoint';
import { checkpointFile, readRunInfo, TrainConfig } from '../../server/train/runFiles';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../server/train/backend';
import { initialWeights } from '../../server/train/initWeights';
import { DataParallel } from '../../server/train/threads';
import { train, TrainOptions } from '../../server/train/trainer';
import { ForwardInput, logits, Params, tokensBefore, trainableNames } from '../../server/train/vitModel';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'vit-lens-threads-'));
const ds = path.join(tmp, 'ds');
const dataset = makeColorDataset(ds, { perClass: 8 });

const config = (over: Partial<TrainConfig> = {}) => smallRunConfig(ds, { lastK: 1, batchSize: 5, ...over });

const common = {
  backend: 'wasm' as const,
  scratchArch: SMALL_ARCH,
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

test('validation logits spread over 2 threads equal one thread’s to the bit (pixels and last-k tokens)', async () => {
  await initBackend('wasm');
  const init = await initialWeights('scratch:tiny', {
    numClasses: 3,
    imageSize: [16, 16],
    patchSize: 4,
    seed: 3,
    scratchArch: SMALL_ARCH,
  });
  const arch = init.arch;
  // A scratch model starts with a zero head, cls token and biases: give them values, or every logit is 0.
  for (const t of init.weights.values())
    if (t.data.every(v => v === 0)) t.data.forEach((_, i) => (t.data[i] = 0.5 * Math.sin(1 + i * 12.9898)));
  for (const mode of ['full', 'last-k'] as const) {
    const trainable = trainableNames(arch, mode, 1);
    const keep = new Set(trainable);
    const params: Params = new Map(
      [...init.weights].map(([k, t]) => [k, tf.variable(tf.tensor(t.data, t.shape), keep.has(k), `eval-${mode}/${k}`)]),
    );
    const pixels = tf.randomUniform([7, 3, 16, 16], -1, 1, 'float32', 11) as tf.Tensor4D;
    const fromBlock = arch.numLayers - 1;
    const input: ForwardInput =
      mode === 'full'
        ? { kind: 'pixels', x: pixels }
        : { kind: 'tokens', x: tf.tidy(() => tokensBefore(params, arch, pixels, fromBlock)), fromBlock };
    const pool = await DataParallel.start(2, params, trainable, arch, 0);
    try {
      const spread = await pool.logits(input, 7);
      const here = tf.tidy(() => logits(params, arch, input));
      assert.deepEqual(spread.shape, [7, 3]);
      assert.ok((await here.abs().min().data())[0] > 0, 'the logits are not zero');
      assert.deepEqual(Array.from(await spread.data()), Array.from(await here.data()), mode);
      tf.dispose([spread, here]);
    } finally {
      await pool.close();
      tf.dispose([pixels, input.x, ...params.values()]);
    }
  }
});
