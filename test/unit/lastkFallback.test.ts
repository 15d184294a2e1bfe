/**
 * last-k when ONNX Runtime cannot start a session for the truncated graph: the frozen tokens come
 * from our TF.js blocks instead, run.json's backendNotes and the log say so, the losses are the
 * reference ones (test/integration/trainCli.test.ts records them), and those tokens are cached
 * under their own key, so a later ONNX Runtime run computes its own.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'fs';
import * as os from 'os';
import * as path from 'path';
import { makeColorDataset } from '../fixtures/train/makeDataset';
import { VitSession } from '../../server/inference';
import { TrainConfig } from '../../server/train/runFiles';
import { train } from '../../server/train/trainer';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'vit-lens-lastk-fallback-'));
const tinyHf = path.join(__dirname, '..', 'fixtures', 'vit-tiny', 'hf');
// k = 1 of trainCli.test.ts's LAST_K_REFERENCE (the same dataset and options as its CLI run).
const REFERENCE_STEP_LOSSES = [1.0986120700836182, 0.9970085024833679, 0.8617004156112671, 0.749267578125];

test('last-k falls back to the TF.js blocks when ONNX Runtime cannot start, and says so', async t => {
  t.after(() => rmSync(tmp, { recursive: true, force: true }));
  const ds = path.join(tmp, 'ds');
  await makeColorDataset(ds, { perClass: 6 });
  const config: TrainConfig = {
    dataset: ds,
    model: tinyHf,
    mode: 'last-k',
    lastK: 1,
    epochs: 4,
    batchSize: 16,
    accumulate: 1,
    lr: 3e-3,
    optimizer: 'adamw',
    weightDecay: 0.05,
    momentum: 0,
    warmupSteps: -1,
    clipNorm: 1,
    labelSmoothing: 0,
    augment: false,
    imageSize: [32, 32],
    valSplit: 0.2,
    seed: 0,
  };
  const common = { backend: 'wasm' as const, exportAtEnd: false, cacheDir: path.join(tmp, 'cache') };
  const stepLosses = (run: string) =>
    readFileSync(path.join(run, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map(l => JSON.parse(l))
      .filter(m => m.type === 'step')
      .map(m => m.loss as number);

  const create = VitSession.create;
  VitSession.create = async () => {
    throw new Error('simulated: no ONNX Runtime here');
  };
  const lines: string[] = [];
  let info;
  try {
    info = await train({ ...common, runDir: path.join(tmp, 'fallback'), config, log: l => lines.push(l) });
  } finally {
    VitSession.create = create;
  }
  assert.equal(info.status, 'finished');
  assert.ok(
    info.backendNotes.some(n =>
      /last-k: ONNX Runtime could not start \(simulated: no ONNX Runtime here\).*TF\.js blocks \(wasm\)/.test(n),
    ),
    info.backendNotes.join('\n'),
  );
  assert.ok(
    lines.some(l => /^warning: last-k: ONNX Runtime could not start/.test(l)),
    lines.join('\n'),
  );
  assert.ok(
    lines.some(l => /frozen backbone: embeddings and blocks 1–1 of 2 on TF\.js \(wasm\)/.test(l)),
    lines.join('\n'),
  );
  const fallback = stepLosses(path.join(tmp, 'fallback'));
  assert.equal(fallback.length, REFERENCE_STEP_LOSSES.length);
  fallback.forEach((l, i) =>
    assert.ok(Math.abs(l - REFERENCE_STEP_LOSSES[i]) <= 1e-4, `step ${i + 1}: ${l} vs ${REFERENCE_STEP_LOSSES[i]}`),
  );

  // ONNX Runtime available again: its tokens are not the TF.js ones from the cache.
  const ortLines: string[] = [];
  const ort = await train({ ...common, runDir: path.join(tmp, 'ort'), config, log: l => ortLines.push(l) });
  assert.ok(!ort.backendNotes.some(n => /last-k/.test(n)));
  assert.ok(
    ortLines.some(l => /on ONNX Runtime/.test(l)),
    ortLines.join('\n'),
  );
  assert.ok(
    ortLines.some(l => /frozen backbone: 18 images computed, 0 from cache/.test(l)),
    ortLines.join('\n'),
  );
});
