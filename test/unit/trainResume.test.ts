/**
 * Resume parity: 2 uninterrupted epochs vs 1½ epochs + stop + resume give the same final weights
 * (bitwise on the wasm backend), with augmentation on so the per-sample random choices are exercised.
 * The same after kill -9 in mid-epoch (resumed from a mid-epoch checkpoint) and in the first epoch
 * before any checkpoint (--resume starts over).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'fs';
import * as os from 'os';
import * as path from 'path';
import { makeColorDataset } from '../fixtures/train/makeDataset';
import { SMALL_ARCH, smallRunConfig } from '../fixtures/train/smallRun';
import { loadCheckpoint } from '../../server/train/checkpoint';
import { checkpointFile, readRunInfo, RunInfo } from '../../server/train/runFiles';
import { train } from '../../server/train/trainer';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'vit-lens-resume-'));

const common = {
  backend: 'wasm' as const,
  scratchArch: SMALL_ARCH,
  exportAtEnd: false,
  cacheDir: path.join(tmp, 'cache'),
};
const ds = path.join(tmp, 'ds');
const a = path.join(tmp, 'a');
let uninterrupted: Promise<RunInfo> | undefined;
/** The uninterrupted 2-epoch run every interrupted one is compared with (run once). */
const baseline = () =>
  (uninterrupted ??= (async () => {
    await makeColorDataset(ds, { perClass: 8 });
    return train({ ...common, runDir: a, config: smallRunConfig(ds) });
  })());

test('stop mid-epoch + resume gives the same weights as an uninterrupted run', async () => {
  const full = await baseline();
  assert.equal(full.status, 'finished');

  const b = path.join(tmp, 'b');
  let steps = 0;
  // 18 training images, micro-batches of 4, 2 per step → 3 steps per epoch; stop after step 4 (mid-epoch 2).
  const first = await train({
    ...common,
    runDir: b,
    config: smallRunConfig(ds),
    logEvery: 1,
    log: l => {
      if (/step \d+\//.test(l)) steps++;
    },
    shouldStop: () => steps >= 4,
  });
  assert.equal(first.status, 'stopped');
  assert.equal((await readRunInfo(b)).status, 'stopped');
  assert.equal(first.step, 4);
  const resumed = await train({ ...common, runDir: b, config: smallRunConfig(ds), resume: true });
  assert.equal(resumed.status, 'finished');
  assert.equal(resumed.step, full.step);

  const wa = (await loadCheckpoint(checkpointFile(a, 'latest'))).weights;
  const wb = (await loadCheckpoint(checkpointFile(b, 'latest'))).weights;
  assert.equal(wa.size, wb.size);
  let maxDiff = 0;
  for (const [name, t] of wa) {
    const u = wb.get(name)!;
    for (let i = 0; i < t.data.length; i++) maxDiff = Math.max(maxDiff, Math.abs(t.data[i] - u.data[i]));
  }
  console.log(`# resume: max |Δweight| = ${maxDiff}`);
  assert.equal(maxDiff, 0, `resumed weights differ from the uninterrupted run by up to ${maxDiff}`);
  // Training moved the weights at all (else equality proves nothing).
  const init = await train({ ...common, runDir: path.join(tmp, 'c'), config: { ...smallRunConfig(ds), lr: 0 } });
  const w0 = (await loadCheckpoint(checkpointFile(path.join(tmp, 'c'), 'latest'))).weights;
  assert.equal(init.status, 'finished');
  const moved = [...wa].some(([n, t]) => t.data.some((v, i) => v !== w0.get(n)!.data[i]));
  assert.ok(moved);

  // The epoch records of both runs agree too (the resumed one re-reports nothing twice).
  const epochs = (dir: string) =>
    readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map(l => JSON.parse(l))
      .filter(m => m.type === 'epoch');
  const ea = epochs(a);
  const eb = epochs(b);
  assert.equal(eb.length, 2);
  assert.deepEqual(
    eb.map(m => [m.trainLoss, m.valLoss, m.valAcc]),
    ea.map(m => [m.trainLoss, m.valLoss, m.valAcc]),
  );
});

/** Runs train() in a child process (test/fixtures/train/trainChild.ts) that blocks at the first log line matching `pauseAt`, then kill -9s it there. */
async function killAt(opts: object, pauseAt: string): Promise<{ pid: number; stderr: string }> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(__dirname, '..', 'fixtures', 'train', 'trainChild.ts'), JSON.stringify(opts)],
    {
      env: { ...process.env, PAUSE_AT: pauseAt },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(res =>
    child.once('exit', (code, signal) => res({ code, signal })),
  );
  await new Promise<void>((resolve, reject) => {
    child.stderr!.on('data', d => {
      stderr += d;
      if (stderr.includes('PAUSED\n')) resolve();
    });
    void exited.then(() => reject(new Error(`the child exited before "${pauseAt}":\n${stderr}`)));
  });
  child.kill('SIGKILL');
  assert.equal((await exited).signal, 'SIGKILL');
  return { pid: child.pid!, stderr };
}

async function maxWeightDiff(a: string, b: string): Promise<number> {
  const wa = (await loadCheckpoint(checkpointFile(a, 'latest'))).weights;
  const wb = (await loadCheckpoint(checkpointFile(b, 'latest'))).weights;
  assert.equal(wa.size, wb.size);
  let maxDiff = 0;
  for (const [name, t] of wa)
    t.data.forEach((v, i) => (maxDiff = Math.max(maxDiff, Math.abs(v - wb.get(name)!.data[i]))));
  return maxDiff;
}

test("kill -9 in mid-epoch: resumes from the mid-epoch checkpoint to the same weights; the killed run's lock and temp files are cleaned up", async () => {
  await baseline();

  const b = path.join(tmp, 'kill-b');
  // 3 steps per epoch: step 4 is in the middle of epoch 2.
  const killed = await killAt(
    { ...common, runDir: b, config: smallRunConfig(ds), checkpointEvery: { steps: 1 } },
    '^checkpoint at epoch 2, step 4$',
  );
  assert.equal((await readRunInfo(b)).status, 'running');
  assert.ok(existsSync(path.join(b, 'run.lock')), 'kill -9 leaves the lock');
  // What a kill during a checkpoint write leaves: a temp file of the dead process; one of a live writer stays.
  const orphan = path.join(b, 'checkpoints', `.latest.safetensors.${killed.pid}.${Date.now()}.tmp`);
  writeFileSync(orphan, Buffer.alloc(4096));
  const live = spawn('sleep', ['30']);
  const liveTemp = path.join(b, `.run.json.${live.pid}.abc.tmp`);
  writeFileSync(liveTemp, '{}');
  const log: string[] = [];
  try {
    const resumed = await train({
      ...common,
      runDir: b,
      config: smallRunConfig(ds),
      resume: true,
      log: l => log.push(l),
    });
    assert.equal(resumed.status, 'finished');
  } finally {
    live.kill();
  }
  assert.ok(
    log.some(l => l === 'resuming at epoch 2, step 4'),
    log.join('\n'),
  );
  assert.ok(
    log.some(l => l.includes(`took over the lock of pid ${killed.pid}`)),
    log.join('\n'),
  );
  assert.ok(!existsSync(orphan), "the dead writer's temp file is removed on resume");
  assert.ok(existsSync(liveTemp), "a live writer's temp file is left alone");
  assert.ok(!existsSync(path.join(b, 'run.lock')), 'the lock is released at the end');
  const maxDiff = await maxWeightDiff(a, b);
  console.log(`# kill -9 mid-epoch + resume: max |Δweight| = ${maxDiff}`);
  assert.equal(maxDiff, 0);
  const epochs = (dir: string) =>
    readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map(l => JSON.parse(l))
      .filter(m => m.type === 'epoch');
  assert.deepEqual(
    epochs(b).map(m => [m.trainLoss, m.valLoss]),
    epochs(a).map(m => [m.trainLoss, m.valLoss]),
  );
});

test('kill -9 in the first epoch before any checkpoint: --resume starts the run over, to the same weights', async () => {
  await baseline();
  const b = path.join(tmp, 'kill0-b');
  await killAt({ ...common, runDir: b, config: smallRunConfig(ds) }, '^epoch 1/2 step 2/');
  assert.ok(!existsSync(checkpointFile(b, 'latest')), 'no checkpoint yet');
  const log: string[] = [];
  const resumed = await train({
    ...common,
    runDir: b,
    config: smallRunConfig(ds),
    resume: true,
    log: l => log.push(l),
  });
  assert.equal(resumed.status, 'finished');
  assert.ok(
    log.some(l => /does not exist .*starting it over from the beginning/.test(l)),
    log.join('\n'),
  );
  assert.equal(await maxWeightDiff(a, b), 0);
  const lines = readFileSync(path.join(b, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map(l => JSON.parse(l));
  assert.deepEqual(
    lines.map(m => m.step),
    readFileSync(path.join(a, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map(l => JSON.parse(l).step),
    "the killed attempt's step lines are gone",
  );
  assert.deepEqual(
    readdirSync(b).filter(n => n.endsWith('.tmp')),
    [],
  );
});

test('gradient accumulation: 2 micro-batches of 4 train like one batch of 8', async () => {
  const ds = path.join(tmp, 'ds-acc');
  await makeColorDataset(ds, { perClass: 8 });
  const common = { backend: 'wasm' as const, scratchArch: SMALL_ARCH, exportAtEnd: false };
  // SGD without clipping: unlike Adam it is sensitive to the gradient's scale, so a wrongly weighted sum would show.
  const base = {
    ...smallRunConfig(ds),
    epochs: 1,
    augment: false,
    optimizer: 'sgd' as const,
    lr: 0.05,
    momentum: 0.9,
    weightDecay: 0,
    clipNorm: 0,
  };
  const one = path.join(tmp, 'acc1');
  const two = path.join(tmp, 'acc2');
  await train({ ...common, runDir: one, config: { ...base, batchSize: 8, accumulate: 1 } });
  await train({ ...common, runDir: two, config: { ...base, batchSize: 4, accumulate: 2 } });
  const w1 = (await loadCheckpoint(checkpointFile(one, 'latest'))).weights;
  const w2 = (await loadCheckpoint(checkpointFile(two, 'latest'))).weights;
  let maxDiff = 0;
  for (const [name, t] of w1)
    t.data.forEach((v, i) => (maxDiff = Math.max(maxDiff, Math.abs(v - w2.get(name)!.data[i]))));
  assert.ok(maxDiff < 1e-5, `accumulated and single-batch weights differ by ${maxDiff}`);
  assert.equal((await readRunInfo(one)).step, (await readRunInfo(two)).step);
});
