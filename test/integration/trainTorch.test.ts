/**
 * `--backend torch` (server/train/torchBackend.ts + server/train/torch/train.py) on this machine's CPU
 * with Debian's python3-torch (/usr/bin/python3, or VIT_LENS_TEST_PYTHON; the tests fail, not skip, when it is missing):
 * per-step loss parity with our TF.js trainer from the same initial weights and batches, a 2-process
 * DDP run (gloo) equal to 1 process at the same global batch (training and sharded validation), stop +
 * resume exact, the run folder read by our readers, `vit-lens runs` and the engine (classify with the
 * exported model), two "nodes" meeting through c10d rendezvous, and the batched augmentation.
 */
import { spawnSync } from 'child_process';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import { readSafetensors } from '../../server/formats/safetensors';
import { FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, readIdx } from '../../server/train/fashionMnist';
import {
  EpochMetrics,
  readMetrics,
  readRunInfo,
  RunReport,
  StepMetrics,
  TrainConfig,
} from '../../server/train/runFiles';
import {
  freePort,
  probePython,
  TorchOptions,
  torchLaunch,
  trainScript,
  trainTorch,
} from '../../server/train/torchBackend';
import { openBlasOverride } from '../../server/train/openblasCore';
import { train } from '../../server/train/trainer';
import { runCli } from './runCli';
import { RunSource } from '../../extension/dashboard/runSource';

// VIT_LENS_TEST_PYTHON runs the suite against another interpreter (another torch version, e.g. a
// Debian testing chroot's torch 2.x behind a wrapper script).
const PYTHON = process.env.VIT_LENS_TEST_PYTHON ?? '/usr/bin/python3';
const root = path.join(__dirname, '..', '..');
const tinyHf = path.join(root, 'test', 'fixtures', 'vit-tiny', 'hf');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-torch-'));
const dataset = path.join(tmp, 'fashion');
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** The first 12 Fashion-MNIST training images of 4 classes as PNG folders: 48 images, ~39 train, 20 steps over 4 epochs at batch 8. */
before(async () => {
  const set = readIdx(FASHION_MNIST_DIR, 'train');
  const n = set.rows * set.cols;
  const count = new Map<number, number>();
  for (let i = 0; i < set.count && [...count.values()].reduce((a, b) => a + b, 0) < 48; i++) {
    const label = set.labels[i];
    if (label >= 4 || (count.get(label) ?? 0) >= 12) continue;
    const dir = path.join(dataset, FASHION_MNIST_CLASSES[label].replace('/', '-'));
    fs.mkdirSync(dir, { recursive: true });
    await sharp(Buffer.from(set.pixels.subarray(i * n, (i + 1) * n)), {
      raw: { width: set.cols, height: set.rows, channels: 1 },
    })
      .png()
      .toFile(path.join(dir, `${i}.png`));
    count.set(label, (count.get(label) ?? 0) + 1);
  }
});

const config: TrainConfig = {
  dataset,
  model: tinyHf,
  mode: 'full',
  lastK: 2,
  epochs: 4,
  batchSize: 8,
  accumulate: 1,
  lr: 1e-3,
  optimizer: 'adamw',
  weightDecay: 0.05,
  momentum: 0.9,
  warmupSteps: 3,
  clipNorm: 1,
  labelSmoothing: 0.1,
  augment: false,
  imageSize: [32, 32],
  valSplit: 0.2,
  seed: 7,
};

const quiet = () => {};
async function torchRun(name: string, torch: TorchOptions, extra: Partial<Parameters<typeof trainTorch>[0]> = {}) {
  const runDir = path.join(tmp, 'runs', name);
  const info = await trainTorch({
    runDir,
    config,
    resume: false,
    torch: { python: PYTHON, device: 'cpu', ...torch },
    logEvery: 1,
    log: quiet,
    ...extra,
  });
  return { runDir, info };
}
const steps = async (runDir: string) => (await readMetrics(runDir)).filter((m): m is StepMetrics => m.type === 'step');
const stepLosses = async (runDir: string) => (await steps(runDir)).map(m => m.loss);
/** Pre-clipping gradient norms: unlike Adam's losses, they show a wrongly scaled gradient. */
const gradNorms = async (runDir: string) => (await steps(runDir)).map(m => m.gradNorm);
const maxRel = (a: number[], b: number[]) => Math.max(...a.map((x, i) => Math.abs(x - b[i]) / Math.abs(b[i])));
async function maxWeightDiff(a: string, b: string): Promise<number> {
  const [x, y] = [(await readSafetensors(a)).tensors, (await readSafetensors(b)).tensors];
  assert.deepEqual([...x.keys()].sort(), [...y.keys()].sort());
  let m = 0;
  for (const [k, t] of x)
    for (let i = 0; i < t.data.length; i++) m = Math.max(m, Math.abs(t.data[i] - y.get(k)!.data[i]));
  return m;
}

let oneProcess: string;

// Why 8.46e-5 (step 14) against the 1e-4 limit, the same on every run: float32 rounding, not an op
// that differs. Measured on this test's data and config:
// - Step 1 (same weights, same batch) agrees to 8.6e-8 in the loss and 1.4e-7 in the gradient norm:
//   every forward and backward op (GELU, LayerNorm eps, softmax, smoothed cross-entropy) means the same.
// - Against train.py run in float64 (every .float() made .double()), TF.js's cpu backend is within
//   3.9e-5 and train.py in float32 within 1.24e-4: ours is the closer one (its kernels compute in JS
//   doubles and round each op's result to float32; PyTorch's accumulate in float32).
// - Wrapping one op family at a time in float64 inside the float32 run moves the gap only partly
//   (linear/conv/attention matmuls 8.5e-5 → 6.5e-5, cross-entropy → 6.4e-5, GELU and softmax not at
//   all; all of them → 3.9e-5, the float64 run's own distance): no single op carries it.
// - In float64, changing every initial weight by one part in 2^24 moves the losses by ≤ 3.3e-7, so
//   the trajectory is not chaotic: the gap is each step's rounding in the gradients, which Adam's
//   per-parameter normalisation turns into full-size updates for parameters whose gradient is tiny.
test('1 process: 20 steps match our TF.js trainer within 1e-4 relative per step (same weights, same batches)', async () => {
  const tfRun = path.join(tmp, 'runs', 'tfjs');
  await train({ runDir: tfRun, config, backend: 'cpu', logEvery: 1, exportAtEnd: false });
  const { runDir, info } = await torchRun('torch1', { nproc: 1 });
  oneProcess = runDir;
  assert.equal(info.status, 'finished');
  const [ours, torch] = [await stepLosses(tfRun), await stepLosses(runDir)];
  assert.equal(torch.length, 20);
  assert.equal(ours.length, 20);
  const rel = maxRel(torch, ours);
  console.log(`# torch vs TF.js: max relative step-loss difference ${rel.toExponential(2)} over 20 steps`);
  assert.ok(rel <= 1e-4, `torch ${torch.map(l => l.toFixed(6))}\nTF.js ${ours.map(l => l.toFixed(6))}`);
  assert.ok(torch[19] < torch[0] * 0.9, 'training lowers the loss');
  const g = maxRel(await gradNorms(runDir), await gradNorms(tfRun));
  console.log(`# torch vs TF.js: max relative gradient-norm difference ${g.toExponential(2)}`);
  assert.ok(g <= 1e-3, `gradient norms differ by ${g}`);
});

test('2 processes (DDP, gloo) equal 1 process at the same global batch; the run folder is ours', async () => {
  const { runDir, info } = await torchRun('torch2', { nproc: 2 });
  assert.equal(info.status, 'finished');
  // How torchrun started on this torch (train.py --torchrun on a build without libuv) is in the notes.
  assert.deepEqual(info.backendNotes.slice(1), torchLaunch(probePython(PYTHON), 'cpu').notes);
  const rel = maxRel(await stepLosses(runDir), await stepLosses(oneProcess));
  const w = await maxWeightDiff(
    path.join(runDir, 'checkpoints', 'latest.safetensors'),
    path.join(oneProcess, 'checkpoints', 'latest.safetensors'),
  );
  console.log(
    `# 2 vs 1 process: max relative step-loss difference ${rel.toExponential(2)}, max weight difference ${w.toExponential(2)}`,
  );
  assert.ok(rel < 1e-5, `step losses differ by ${rel}`);
  const g = maxRel(await gradNorms(runDir), await gradNorms(oneProcess));
  assert.ok(g < 1e-4, `gradient norms differ by ${g}`);
  assert.ok(w < 1e-4, `final weights differ by ${w}`);

  // Validation is sharded, each rank its share of the held-out images, and gathered in image order:
  // the same held-out predictions and epoch metrics as 1 process, within what the weights above differ by.
  const shares = [0, 1].map(r => {
    const log = fs.readFileSync(path.join(runDir, 'torch', `rank${r}.log`), 'utf8');
    return /rank \d validated (\d+) of (\d+) held-out images/.exec(log);
  });
  assert.ok(shares[0] && shares[1], 'a rank did not validate');
  assert.ok(+shares[0][1] > 0 && +shares[1][1] > 0 && +shares[0][1] + +shares[1][1] === +shares[0][2]);
  const heldOut = (dir: string) =>
    (JSON.parse(fs.readFileSync(path.join(dir, 'report.json'), 'utf8')) as RunReport).heldOut;
  const [two, one] = [heldOut(runDir), heldOut(oneProcess)];
  assert.equal(two.length, +shares[0][2]);
  assert.deepEqual(
    two.map(h => [h.file, h.label, h.predicted]),
    one.map(h => [h.file, h.label, h.predicted]),
  );
  const pDiff = Math.max(
    ...two.flatMap((h, i) => h.probabilities.map((p, c) => Math.abs(p - one[i].probabilities[c]))),
  );
  const epochsOf = async (dir: string) => (await readMetrics(dir)).filter((m): m is EpochMetrics => m.type === 'epoch');
  const [e2, e1] = [await epochsOf(runDir), await epochsOf(oneProcess)];
  const valRel = maxRel(
    e2.map(e => e.valLoss!),
    e1.map(e => e.valLoss!),
  );
  console.log(
    `# 2 vs 1 process, validation: max probability difference ${pDiff.toExponential(2)}, val loss ${valRel.toExponential(2)}`,
  );
  assert.ok(pDiff < 1e-4, `held-out probabilities differ by ${pDiff}`);
  assert.ok(valRel < 1e-5, `validation losses differ by ${valRel}`);
  assert.deepEqual(
    e2.map(e => [e.valAcc, e.confusion]),
    e1.map(e => [e.valAcc, e.confusion]),
  );

  // Our readers and the CLI read the folder as any run.
  const run = await readRunInfo(runDir);
  assert.equal(run.backend, 'torch');
  assert.deepEqual((run as unknown as { devices: string[] }).devices, ['cpu:0', 'cpu:1']);
  assert.equal(run.epoch, 4);
  assert.equal(run.step, 20);
  assert.ok(run.bestValAcc !== undefined && run.bestEpoch !== undefined);
  const epochs = (await readMetrics(runDir)).filter(m => m.type === 'epoch');
  assert.equal(epochs.length, 4);
  for (const e of epochs) assert.ok(e.type === 'epoch' && e.confusion!.length === 4 && Number.isFinite(e.valLoss));
  const ls = await runCli(['runs', path.join(tmp, 'runs'), '--json']);
  const row = JSON.parse(ls.stdout).runs.find((r: { run: string }) => r.run === runDir);
  assert.equal(row.status, 'finished');
  assert.equal(row.backend, 'torch');
  assert.equal(row.bestValAcc, run.bestValAcc);

  // The dashboard's reader replays the folder without a complaint.
  const seen = { steps: 0, epochs: 0, status: '', heldOut: 0, problems: [] as string[] };
  const source = new RunSource(
    runDir,
    {
      metrics: (st, ep) => {
        seen.steps += st.length;
        seen.epochs += ep.length;
      },
      runInfo: (i, err) => {
        seen.status = i?.status ?? `error: ${err}`;
      },
      report: (rep, err) => {
        seen.heldOut = rep?.heldOut.length ?? (err ? -1 : 0);
      },
      problem: m => seen.problems.push(m),
    },
    60_000,
  );
  await source.poll();
  source.dispose();
  assert.deepEqual(seen, { steps: 20, epochs: 4, status: 'finished', heldOut: run.valImages, problems: [] });

  // The export (our builder) classifies held-out images with the probabilities PyTorch computed.
  const report = JSON.parse(fs.readFileSync(path.join(runDir, 'report.json'), 'utf8')) as RunReport;
  assert.equal(report.heldOut.length, run.valImages);
  const images = report.heldOut.slice(0, 3);
  const c = await runCli([
    'classify',
    ...images.map(h => h.file),
    '--model',
    path.join(runDir, 'export'),
    '--json',
    '--top-k',
    '4',
  ]);
  assert.equal(c.code, 0, c.stderr);
  JSON.parse(c.stdout).results.forEach((r: { predictions: { index: number; score: number }[] }, i: number) => {
    for (const p of r.predictions)
      assert.ok(
        Math.abs(p.score - images[i].probabilities[p.index]) < 1e-4,
        `${images[i].file}: ONNX ${p.score} vs torch ${images[i].probabilities[p.index]}`,
      );
  });
});

test('train.py --torchrun is torchrun, with stores that follow USE_LIBUV=0 (for builds without libuv)', async () => {
  // Two ranks meet through torchrun's store and all-reduce; on a torch ≥ 2.4 without libuv (Debian's
  // 2.x, Windows wheels) both torchrun's store and the ranks' need train.py's store_follows_use_libuv.
  const script = path.join(tmp, 'allreduce.py');
  fs.writeFileSync(
    script,
    [
      'import sys',
      `sys.path.insert(0, ${JSON.stringify(path.dirname(trainScript()))})`,
      `train = __import__(${JSON.stringify(path.basename(trainScript(), '.py'))})`,
      'import torch, torch.distributed as dist',
      'train.store_follows_use_libuv()',
      'dist.init_process_group("gloo")',
      't = torch.tensor([dist.get_rank() + 1.0])',
      'dist.all_reduce(t)',
      'print("rank %d of %d: %g" % (dist.get_rank(), dist.get_world_size(), t.item()), flush=True)',
    ].join('\n'),
  );
  const r = spawnSync(
    PYTHON,
    [
      trainScript(),
      '--torchrun',
      '--nproc_per_node',
      '2',
      '--nnodes',
      '1',
      '--node_rank',
      '0',
      '--master_addr',
      '127.0.0.1',
      '--master_port',
      String(await freePort()),
      '--redirects',
      '2',
      '--tee',
      '2',
      script,
    ],
    { encoding: 'utf8', env: { ...process.env, USE_LIBUV: '0', OMP_NUM_THREADS: '1' }, timeout: 120_000 },
  );
  assert.equal(r.status, 0, r.stderr);
  // Both ranks print to the one stdout, whose lines may interleave.
  assert.deepEqual(r.stdout.match(/rank \d of \d: \d+/g)?.sort(), ['rank 0 of 2: 3', 'rank 1 of 2: 3']);
});

test("OpenBLAS: the probe reads the core OpenBLAS itself reports; a core below the CPU's vector instructions is overridden and noted", async () => {
  const probe = probePython(PYTHON);
  // OpenBLAS's own account of its pick, printed when it loads with OPENBLAS_VERBOSE=2.
  const verbose = spawnSync(PYTHON, ['-c', 'import torch'], {
    encoding: 'utf8',
    env: { ...process.env, OPENBLAS_VERBOSE: '2' },
  });
  const reported = /Core:\s*(\S+)/.exec(`${verbose.stdout}${verbose.stderr}`)?.[1];
  // Debian 12's torch loads OpenBLAS; another interpreter's may not (Debian 13's uses the reference BLAS).
  if (PYTHON === '/usr/bin/python3')
    assert.ok(reported, "Debian's torch should load OpenBLAS, which names its core with OPENBLAS_VERBOSE=2");
  assert.equal(probe.openblasCore, reported);
  const override = openBlasOverride(probe.openblasCore, {});
  console.log(`# OpenBLAS picked ${reported} here; override: ${override?.core ?? 'none'}`);
  const { info } = await torchRun('torch-openblas', { nproc: 1 }, { config: { ...config, epochs: 1 } });
  const noted = info.backendNotes.filter(n => n.includes('OPENBLAS_CORETYPE'));
  assert.deepEqual(noted, override && !process.env.OPENBLAS_CORETYPE ? [override.note] : []);
});

test('stop after a step, then --resume: the same steps and weights as the uninterrupted run', async () => {
  let request: ((level: 1 | 2) => void) | undefined;
  // A step of this tiny model takes milliseconds, less than the log line's way to us and the stop
  // file's way back: train.py holds after step 7 until the stop file is there (a test hook).
  process.env.VIT_LENS_TEST_HOLD_AT_STEP = '7';
  const { runDir, info } = await torchRun(
    'stopped',
    { nproc: 1 },
    {
      onStopRequest: r => (request = r),
      log: l => {
        if (/ step 7\//.test(l)) request!(1);
      },
    },
  ).finally(() => delete process.env.VIT_LENS_TEST_HOLD_AT_STEP);
  assert.equal(info.status, 'stopped');
  assert.equal(info.step, 8, 'the stop file, written after step 7, is read in step 8');
  assert.ok(fs.existsSync(path.join(runDir, 'export', 'onnx', 'model.onnx')), 'a stopped run is exported too');
  const resumed = await trainTorch({
    runDir,
    config: {} as TrainConfig,
    resume: true,
    torch: { python: PYTHON, device: 'cpu', nproc: 1 },
    logEvery: 1,
    log: quiet,
  });
  assert.equal(resumed.status, 'finished');
  assert.deepEqual(await stepLosses(runDir), await stepLosses(oneProcess));
  assert.equal(
    await maxWeightDiff(
      path.join(runDir, 'checkpoints', 'latest.safetensors'),
      path.join(oneProcess, 'checkpoints', 'latest.safetensors'),
    ),
    0,
  );
});

test('a failing rank is named with its last lines; missing torch is a clear error', async () => {
  await assert.rejects(
    torchRun('nan', { nproc: 2 }, { config: { ...config, lr: 1e30, epochs: 1 } }),
    /rank \d failed:[\s\S]*loss became/,
  );
  assert.equal((await readRunInfo(path.join(tmp, 'runs', 'nan'))).status, 'failed');
  await assert.rejects(torchRun('nopython', { python: path.join(tmp, 'no-such-python') }), /cannot run it/);
  await assert.rejects(
    torchRun('notorch', { python: process.execPath }),
    /did not answer the torch check|cannot import torch/,
  );
  // What the Fine-tune form asks.
  const check = await runCli(['torch-check', '--python', PYTHON, '--json']);
  assert.equal(check.code, 0, check.stdout);
  assert.equal(JSON.parse(check.stdout).label, 'PyTorch · CPU');
  // A wrapper (as clusters' module scripts are) is what runs; the check also names the interpreter it led to.
  const wrapper = path.join(tmp, 'python-wrapper');
  fs.writeFileSync(wrapper, `#!/bin/sh\nexec ${PYTHON} "$@"\n`, { mode: 0o755 });
  const wrapped = await runCli(['torch-check', '--python', wrapper, '--json']);
  assert.equal(wrapped.code, 0, wrapped.stdout);
  const answer = JSON.parse(wrapped.stdout) as { python: string; executable: string };
  const executable = probePython(PYTHON).executable;
  assert.deepEqual([answer.python, answer.executable], [wrapper, executable]);
  const text = await runCli(['torch-check', '--python', wrapper]);
  assert.match(text.stdout, new RegExp(`^PyTorch · CPU: ${wrapper} \\(runs ${executable}\\), torch \\d`));
});

test('through the CLI, 2 processes: SIGTERM stops every rank after the step, kill -9 leaves a resumable run, --resume finishes both', async () => {
  const args = (out: string) => [
    'train',
    dataset,
    '--out',
    out,
    '--model',
    tinyHf,
    '--image-size',
    '32',
    '--batch-size',
    '8',
    '--epochs',
    '4',
    '--no-augment',
    '--mode',
    'full',
    '--backend',
    'torch',
    '--python',
    PYTHON,
    '--nproc',
    '2',
    '--device',
    'cpu',
    '--checkpoint-every',
    '1',
  ];
  // The trainer logs every 10 steps; step 10 ends epoch 2 (5 steps an epoch): signal it there.
  // Its steps are faster than the log line's way to us and the signal's way back: train.py holds
  // after step 10 until it sees the stop (a test hook), which the epoch's end then honours.
  const hold = { VIT_LENS_TEST_HOLD_AT_STEP: '10' };
  const term = path.join(tmp, 'runs', 'cli-term');
  let sent = false;
  const r = await runCli(args(term), {
    env: hold,
    onStderr: (s, kill) => {
      if (!sent && / step 10\//.test(s)) {
        kill('SIGTERM');
        sent = true;
      }
    },
  });
  assert.equal(r.code, 130, r.stderr);
  assert.match(r.stdout, /^stopped: /);
  const stopped = await readRunInfo(term);
  assert.equal(stopped.status, 'stopped');
  assert.equal(stopped.step, 10);
  const ls = JSON.parse((await runCli(['runs', term, '--json'])).stdout).runs[0];
  assert.equal(ls.status, 'stopped');

  const killed = path.join(tmp, 'runs', 'cli-kill9');
  let killedOnce = false;
  await runCli(args(killed), {
    env: hold,
    onStderr: (s, kill) => {
      if (!killedOnce && / step 10\//.test(s)) {
        kill('SIGKILL');
        killedOnce = true;
      }
    },
  });
  // The ranks see their launcher gone, checkpoint after the step and exit.
  const outcome = path.join(killed, 'torch', 'outcome.json');
  for (let i = 0; i < 120 && !fs.existsSync(outcome); i++) await new Promise(res => setTimeout(res, 500));
  assert.ok(fs.existsSync(outcome), 'the ranks did not stop after the launcher was killed');
  const ended = JSON.parse(fs.readFileSync(outcome, 'utf8'));
  assert.equal(ended.status, 'stopped', 'the ranks ran on without their launcher');
  assert.equal(ended.step, 10);
  assert.equal(JSON.parse((await runCli(['runs', killed, '--json'])).stdout).runs[0].status, 'interrupted');

  for (const run of [term, killed]) {
    const resumed = await runCli(['train', '--out', run, '--resume']); // the interpreter, device and --nproc come from run.json
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stderr, /resuming at epoch/);
    const info = await readRunInfo(run);
    assert.equal(info.status, 'finished');
    assert.equal(info.step, 20);
    // Metrics written after the checkpoint were dropped: each step once, in order.
    const logged = (await steps(run)).map(m => m.step);
    assert.deepEqual(
      logged,
      [...logged].sort((x, y) => x - y),
    );
    assert.equal(new Set(logged).size, logged.length);
    assert.equal(logged[logged.length - 1], 20);
  }
});

test('last-k with SGD-momentum and 2-batch accumulation matches TF.js too; head mode with augmentation trains', async () => {
  const lastK: TrainConfig = {
    ...config,
    mode: 'last-k',
    lastK: 1,
    optimizer: 'sgd',
    lr: 0.05,
    weightDecay: 1e-4,
    accumulate: 2,
    clipNorm: 0.5,
    labelSmoothing: 0,
  };
  const tfRun = path.join(tmp, 'runs', 'tfjs-lastk');
  await train({
    runDir: tfRun,
    config: lastK,
    backend: 'cpu',
    logEvery: 1,
    exportAtEnd: false,
    cacheDir: path.join(tmp, 'cache'),
  });
  const { runDir } = await torchRun('torch-lastk', { nproc: 1 }, { config: lastK });
  const [ours, torch] = [await stepLosses(tfRun), await stepLosses(runDir)];
  assert.equal(torch.length, 12); // 5 batches an epoch in steps of 2, 2, 1
  const rel = maxRel(torch, ours);
  console.log(`# last-k/SGD/accumulate 2, torch vs TF.js: max relative step-loss difference ${rel.toExponential(2)}`);
  assert.ok(rel <= 1e-4, `torch ${torch.map(l => l.toFixed(6))}\nTF.js ${ours.map(l => l.toFixed(6))}`);

  const { runDir: aug, info } = await torchRun(
    'torch-head-aug',
    { nproc: 2 },
    { config: { ...config, mode: 'head', augment: true, epochs: 2 } },
  );
  assert.equal(info.status, 'finished');
  const losses = await stepLosses(aug);
  assert.ok(losses.every(Number.isFinite) && losses.length === 10);
});

test('multi-node recipe, two "nodes" on this machine: node 0 prepares and finishes the run, node 1 joins', async () => {
  const out = path.join(tmp, 'runs', 'two-nodes');
  const port = 20000 + (process.pid % 20000);
  const args = (rank: number) => [
    'train',
    dataset,
    '--out',
    out,
    '--model',
    tinyHf,
    '--image-size',
    '32',
    '--batch-size',
    '8',
    '--epochs',
    '1',
    '--mode',
    'full',
    '--backend',
    'torch',
    '--python',
    PYTHON,
    '--device',
    'cpu',
    '--nproc',
    '1',
    '--nnodes',
    '2',
    '--node-rank',
    String(rank),
    '--rdzv-endpoint',
    `127.0.0.1:${port}`,
  ];
  const [node0, node1] = await Promise.all([runCli(args(0)), runCli(args(1))]);
  assert.equal(node0.code, 0, node0.stderr);
  assert.equal(node1.code, 0, node1.stderr);
  assert.match(node0.stderr, /on 2 processes/);
  assert.match(node1.stdout, /^finished: /);
  // Both nodes met through torchrun's c10d rendezvous hosted by node 0, under the id node 0 chose for this launch.
  const rdzv = (log: string) =>
    new RegExp(
      `--rdzv_backend c10d --rdzv_endpoint 127\\.0\\.0\\.1:${port} --rdzv_id (two-nodes-[0-9a-f]{12}) --rdzv_conf is_host=(\\d)`,
    ).exec(log);
  const [r0, r1] = [rdzv(node0.stderr), rdzv(node1.stderr)];
  assert.ok(r0 && r1, `no c10d rendezvous in the torchrun command lines:\n${node0.stderr}\n${node1.stderr}`);
  assert.equal(r0[1], r1[1]);
  assert.deepEqual([r0[2], r1[2]], ['1', '0']);
  const run = await readRunInfo(out);
  assert.equal(run.status, 'finished');
  // Every node's devices, gathered from the ranks, not only node 0's.
  const host = os.hostname();
  assert.deepEqual((run as unknown as { devices: string[] }).devices, [
    `node 0 (${host}) cpu:0`,
    `node 1 (${host}) cpu:0`,
  ]);
});

test('augmentation: the batched crops are F.interpolate of each seeded box; loader workers change no step', async () => {
  // PyTorch's own resize of each crop (the per-image loop train.py had) against the batched version.
  const check = `
import importlib.util, sys, tempfile, torch, torch.nn.functional as F
spec = importlib.util.spec_from_file_location("train", sys.argv[1]); t = importlib.util.module_from_spec(spec); spec.loader.exec_module(t)
total = [0, 0, 0]
for n, h, w in ((64, 28, 28), (16, 40, 56), (8, 224, 224)):
    u8 = torch.randint(0, 256, (n, h, w, 3), generator=torch.Generator().manual_seed(n), dtype=torch.uint8)
    f = tempfile.NamedTemporaryFile(delete=False); f.write(u8.numpy().tobytes()); f.close()
    images = t.Images(f.name, n, h, w, dict(doRescale=False, doNormalize=False, mean=[0] * 3, std=[1] * 3))
    idx = list(range(n))[::-1]
    rngs = lambda: [t.mulberry32(t.mix_seed(7, 4, 0, k)) for k in range(n)]
    ours = images.augmented(idx, rngs())
    for j, (i, rnd) in enumerate(zip(idx, rngs())):
        left, top, cw, ch = t.crop_box(w, h, rnd)
        crop = u8[i, top:top + ch, left:left + cw].permute(2, 0, 1).unsqueeze(0).float()
        ref = F.interpolate(crop, size=(h, w), mode="bilinear", align_corners=False).round().clamp(0, 255)
        if rnd() < 0.5:
            ref = ref.flip(-1)
        d = (ours[j].permute(2, 0, 1).float() - ref[0]).abs()
        total = [max(total[0], d.max().item()), total[1] + (d > 0).sum().item(), total[2] + d.numel()]
print(*total)`;
  const r = spawnSync(PYTHON, ['-c', check, path.join(root, 'server', 'train', 'torch', 'train.py')], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  const [max, differing, pixels] = r.stdout.trim().split(' ').map(Number);
  console.log(
    `# batched augmentation vs F.interpolate per image: ${differing} of ${pixels} values differ, by at most ${max}`,
  );
  // Only where the kernel's float rounding lands a value on the other side of .5.
  assert.ok(max <= 1 && differing / pixels < 2e-3, `${differing} of ${pixels} differ, by up to ${max}`);

  // Two loader workers prepare the same batches as the main process: the same losses, bit for bit.
  const augmented = { ...config, augment: true, epochs: 2 };
  const withWorkers = async (n: number) => {
    process.env.VIT_LENS_LOADER_WORKERS = String(n);
    try {
      const { runDir } = await torchRun(`aug-workers-${n}`, { nproc: 1 }, { config: augmented });
      return runDir;
    } finally {
      delete process.env.VIT_LENS_LOADER_WORKERS;
    }
  };
  const [w0, w2] = [await withWorkers(0), await withWorkers(2)];
  assert.match(fs.readFileSync(path.join(w2, 'torch', 'rank0.log'), 'utf8'), /2 loader workers/);
  const losses = await stepLosses(w0);
  assert.equal(losses.length, 10);
  assert.deepEqual(await stepLosses(w2), losses);
});
