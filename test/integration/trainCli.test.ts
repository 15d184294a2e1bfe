/**
 * `vit-lens train | runs | export` through the built CLI (dist/cli.js): the run-folder contract,
 * the exported model loading in classify with the same probabilities the trainer computed, the
 * feature cache, SIGINT → "stopped" → --resume, and usage/dataset errors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { trainingSetup } from './trainingSetup';

const root = path.join(__dirname, '..', '..');
const tinyHf = path.join(root, 'test', 'fixtures', 'vit-tiny', 'hf');
const { tmp, dataset, cacheDir, cli } = trainingSetup('train-cli', { perClass: 6 });

const readJson = (f: string) => JSON.parse(fs.readFileSync(f, 'utf8'));
const common = ['--model', tinyHf, '--image-size', '32', '--batch-size', '8', '--cache-dir', cacheDir];

test('head mode: run folder contract, export, classify with the exported model', async () => {
  const run = path.join(tmp, 'runs', 'head');
  const r = await cli(['train', dataset, '--out', run, '--mode', 'head', '--epochs', '3', '--lr', '3e-3', ...common]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /caching features/);
  const info = readJson(path.join(run, 'run.json'));
  assert.equal(info.status, 'finished');
  assert.deepEqual(info.classes, ['blue', 'green', 'red']);
  assert.equal(info.backend, 'wasm');
  assert.equal(info.config.mode, 'head');
  assert.equal(info.epoch, 3);
  assert.ok(info.pid > 0 && info.createdAt && info.finishedAt);
  const metrics = fs
    .readFileSync(path.join(run, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map(l => JSON.parse(l));
  const epochs = metrics.filter(m => m.type === 'epoch');
  assert.equal(epochs.length, 3);
  for (const e of epochs) {
    assert.equal(e.confusion.length, 3);
    assert.equal(e.perClassAcc.length, 3);
    assert.ok(Number.isFinite(e.trainLoss) && Number.isFinite(e.valLoss));
  }
  assert.ok(metrics.some(m => m.type === 'step' && m.lr > 0 && m.imagesPerSec > 0));
  assert.ok(epochs[2].trainLoss < epochs[0].trainLoss, 'training lowers the loss');
  for (const f of [
    'checkpoints/best.safetensors',
    'checkpoints/latest.safetensors',
    'export/config.json',
    'export/preprocessor_config.json',
    'export/model.safetensors',
    'export/onnx/model.onnx',
  ]) {
    assert.ok(fs.existsSync(path.join(run, f)), `${f} is missing`);
  }
  const config = readJson(path.join(run, 'export', 'config.json'));
  assert.deepEqual(config.id2label, { 0: 'blue', 1: 'green', 2: 'red' });
  assert.equal(config.image_size, 32);
  assert.deepEqual(readJson(path.join(run, 'export', 'preprocessor_config.json')).size, { height: 32, width: 32 });

  // The exported ONNX model gives the probabilities the trainer computed in TF.js for held-out images.
  const report = readJson(path.join(run, 'report.json'));
  assert.ok(report.heldOut.length >= 3);
  const images = report.heldOut.slice(0, 3);
  const c = await cli([
    'classify',
    ...images.map((h: { file: string }) => h.file),
    '--model',
    path.join(run, 'export'),
    '--json',
    '--top-k',
    '3',
  ]);
  assert.equal(c.code, 0, c.stderr);
  const results = JSON.parse(c.stdout).results;
  images.forEach((h: { file: string; probabilities: number[] }, i: number) => {
    for (const p of results[i].predictions) {
      assert.ok(
        Math.abs(p.score - h.probabilities[p.index]) < 1e-4,
        `${h.file}: ONNX ${p.label} ${p.score} vs trainer ${h.probabilities[p.index]}`,
      );
    }
  });
  // The export carries a sample of its training images, so classify can say when an image is unlike them;
  // held-out images of the same colours are not.
  assert.ok(fs.existsSync(path.join(run, 'export', 'training_sample.json')), 'export/training_sample.json is missing');
  for (const r of results) assert.equal(r.trainingData?.unlike, false, `${r.image}: ${JSON.stringify(r.trainingData)}`);

  // A second run on the same data and backbone reads the cache.
  const again = await cli([
    'train',
    dataset,
    '--out',
    path.join(tmp, 'runs', 'head2'),
    '--mode',
    'head',
    '--epochs',
    '1',
    ...common,
  ]);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /frozen backbone: 0 images computed, 18 from cache/);

  const ls = await cli(['runs', path.join(tmp, 'runs'), '--json']);
  assert.equal(ls.code, 0, ls.stderr);
  const runs = JSON.parse(ls.stdout).runs;
  assert.deepEqual(
    runs.map((x: { status: string }) => x.status),
    ['finished', 'finished'],
  );
  assert.equal(runs[0].bestValAcc, info.bestValAcc);

  const out = path.join(tmp, 'exported');
  const ex = await cli(['export', run, '--out', out]);
  assert.equal(ex.code, 0, ex.stderr);
  const st = await cli(['classify', images[0].file, '--model', out, '--json']);
  assert.equal(st.code, 0, st.stderr);
  assert.equal(JSON.parse(st.stdout).results[0].predictions.length, 3);
  // `vit-lens export` writes the training sample too (the run's training split, from run.json's dataset).
  assert.equal(JSON.parse(st.stdout).results[0].trainingData?.unlike, false);
});

// Per-step training losses and per-epoch validation losses of these exact runs, recorded before the
// frozen blocks moved from TF.js to ONNX Runtime (commit f3ac1c7); the cached tokens must not change them.
const LAST_K_REFERENCE: Record<number, { step: number[]; val: number[] }> = {
  1: {
    step: [1.0986120700836182, 0.9970085024833679, 0.8617004156112671, 0.749267578125],
    val: [0.9967606663703918, 0.8607983589172363, 0.7478125691413879, 0.7100307941436768],
  },
  2: {
    step: [1.0986120700836182, 0.997010350227356, 0.8243023753166199, 0.7060844898223877],
    val: [0.9967625141143799, 0.8232572078704834, 0.7057285308837891, 0.6684951186180115],
  },
};

test('last-k mode: frozen tokens from ONNX Runtime, the same losses as the TF.js-cached runs, then from the cache', async () => {
  const losses = (run: string) => {
    const m = fs
      .readFileSync(path.join(run, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map(l => JSON.parse(l));
    return {
      step: m.filter(x => x.type === 'step').map(x => x.loss),
      val: m.filter(x => x.type === 'epoch').map(x => x.valLoss),
    };
  };
  const close = (got: number[], want: number[], what: string) => {
    assert.equal(got.length, want.length, what);
    got.forEach((g, i) => assert.ok(Math.abs(g - want[i]) <= 1e-4, `${what}[${i}]: ${g} vs ${want[i]}`));
  };
  // Batch 16 > 15 training images: one optimizer step per epoch, so every step's loss is in metrics.jsonl.
  const args = (k: number, out: string) => [
    'train',
    dataset,
    '--out',
    out,
    '--model',
    tinyHf,
    '--image-size',
    '32',
    '--batch-size',
    '16',
    '--cache-dir',
    cacheDir,
    '--mode',
    'last-k',
    '--last-k',
    String(k),
    '--epochs',
    '4',
    '--lr',
    '3e-3',
  ];
  for (const k of [1, 2]) {
    const run = path.join(tmp, 'lastk-runs', `k${k}`);
    const r = await cli(args(k, run));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /frozen backbone: embeddings.* on ONNX Runtime/);
    assert.match(r.stderr, /caching tokens/);
    assert.match(r.stderr, /frozen backbone: 18 images computed, 0 from cache/);
    const info = readJson(path.join(run, 'run.json'));
    assert.equal(info.status, 'finished');
    assert.ok(!info.backendNotes.some((n: string) => /last-k/.test(n)), info.backendNotes.join('\n'));
    close(losses(run).step, LAST_K_REFERENCE[k].step, `k=${k} step losses`);
    close(losses(run).val, LAST_K_REFERENCE[k].val, `k=${k} val losses`);
  }
  // The same model, block and data again: every token comes from the cache, and the losses are the same.
  const again = path.join(tmp, 'lastk-runs', 'k1-again');
  const r = await cli(args(1, again));
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /frozen backbone: 0 images computed, 18 from cache/);
  close(losses(again).step, LAST_K_REFERENCE[1].step, 'cached k=1 step losses');
});

test('full mode: SIGINT stops after the current step with status "stopped"; --resume finishes the run', async () => {
  const run = path.join(tmp, 'sigint');
  let sent = false;
  const r = await cli(['train', dataset, '--out', run, '--mode', 'full', '--epochs', '40', ...common], {
    onStderr: (text, kill) => {
      if (!sent && /epoch 1\/40:/.test(text)) {
        sent = true;
        kill('SIGINT');
      }
    },
  });
  assert.ok(sent, r.stderr);
  assert.equal(r.code, 130, r.stderr);
  const stopped = readJson(path.join(run, 'run.json'));
  assert.equal(stopped.status, 'stopped');
  assert.ok(stopped.epoch < 40);
  assert.ok(
    fs.existsSync(path.join(run, 'export', 'onnx', 'model.onnx')),
    'a stopped run still exports its best checkpoint',
  );
  const resumed = await cli(['train', '--out', run, '--resume']);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(resumed.stderr, /resuming at epoch/);
  const done = readJson(path.join(run, 'run.json'));
  assert.equal(done.status, 'finished');
  assert.equal(done.epoch, 40);
  assert.equal(done.createdAt, stopped.createdAt);
});

test('usage and dataset errors: exit 2 for bad usage, 1 naming the folder for a bad dataset', async () => {
  const noOut = await cli(['train', dataset, '--model', tinyHf]);
  assert.equal(noOut.code, 2);
  assert.match(noOut.stderr, /--out RUN_DIR/);
  const badMode = await cli(['train', dataset, '--model', tinyHf, '--out', path.join(tmp, 'x'), '--mode', 'some']);
  assert.equal(badMode.code, 2);
  assert.match(badMode.stderr, /--mode must be head, last-k or full/);
  const missing = path.join(tmp, 'does-not-exist');
  const bad = await cli(['train', missing, '--out', path.join(tmp, 'y'), ...common]);
  assert.equal(bad.code, 1);
  assert.ok(bad.stderr.includes(`${missing}: dataset folder does not exist`), bad.stderr);
  assert.ok(!fs.existsSync(path.join(tmp, 'y')), 'a failed start leaves no run folder behind');
  const onnxInit = await cli(['train', dataset, '--out', path.join(tmp, 'z'), '--model', path.join(tmp, 'model.onnx')]);
  assert.equal(onnxInit.code, 1);
  assert.match(onnxInit.stderr, /model\.onnx: no such model/);
  const notRun = await cli(['export', dataset, '--out', path.join(tmp, 'w')]);
  assert.equal(notRun.code, 1);
  assert.match(notRun.stderr, /not a run folder \(no run\.json\)/);
});
