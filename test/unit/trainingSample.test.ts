/**
 * "Unlike the training data" (server/model/trainingSample.ts): scores and threshold against numpy
 * (scripts/training_sample_ref.py), and the file's checks.
 */
import { execFileSync } from 'child_process';
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {
  buildTrainingSample,
  readTrainingSample,
  TRAINING_SAMPLE_FILE,
  trainingSampleScorer,
  writeTrainingSample,
} from '../../server/model/trainingSample';
import { mulberry32 } from '../../server/train/rng';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-training-sample-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Smooth random "images": a few prototypes plus noise, so that neighbours are meaningful. */
function thumbs(n: number, seed: number, prototypes = 4): Float32Array {
  const r = mulberry32(seed);
  const protos = Array.from({ length: prototypes }, (_, p) =>
    Float32Array.from(
      { length: 256 },
      (_, i) => Math.sin((i % 16) * (p + 1) * 0.4) + Math.cos(Math.floor(i / 16) * (p + 1) * 0.3),
    ),
  );
  const out = new Float32Array(n * 256);
  for (let i = 0; i < n; i++)
    for (let d = 0; d < 256; d++) out[i * 256 + d] = protos[i % prototypes][d] + 0.4 * (r() - 0.5);
  return out;
}

test('scores and threshold match numpy', () => {
  const sample = buildTrainingSample(thumbs(300, 1), 300);
  const queries = thumbs(12, 2, 6);
  const score = trainingSampleScorer(sample);
  const stored = Array.from(new Int8Array(Buffer.from(sample.vectors, 'base64')), v => v / 127);
  const rows = (a: ArrayLike<number>, n: number) =>
    Array.from({ length: n }, (_, i) => Array.prototype.slice.call(a, i * 256, (i + 1) * 256));
  const ref = JSON.parse(
    execFileSync('/usr/bin/python3', [path.join(__dirname, '..', '..', 'scripts', 'training_sample_ref.py')], {
      input: JSON.stringify({ sample: rows(stored, 300), queries: rows(queries, 12), k: 10 }),
      encoding: 'utf8',
    }),
  );
  assert.ok(
    Math.abs(sample.threshold - ref.threshold) < 1e-5,
    `threshold ${sample.threshold} vs numpy ${ref.threshold}`,
  );
  for (let i = 0; i < 12; i++) {
    const s = score(queries.subarray(i * 256, (i + 1) * 256));
    assert.ok(Math.abs(s - ref.scores[i]) < 1e-5, `query ${i}: ${s} vs numpy ${ref.scores[i]}`);
  }
  // Queries from prototypes 4 and 5, which the sample never saw, are over the threshold; 0–3 are not.
  const over = Array.from({ length: 12 }, (_, i) => score(queries.subarray(i * 256, (i + 1) * 256)) > sample.threshold);
  assert.deepEqual(
    over,
    Array.from({ length: 12 }, (_, i) => i % 6 >= 4),
  );
});

test('the file round-trips; a broken or foreign file is named', async () => {
  const sample = buildTrainingSample(thumbs(40, 3), 40);
  await writeTrainingSample(tmp, sample);
  assert.deepEqual(await readTrainingSample(tmp), sample);
  const file = path.join(tmp, TRAINING_SAMPLE_FILE);
  fs.writeFileSync(file, JSON.stringify({ ...sample, count: 41 }));
  await assert.rejects(readTrainingSample(tmp), /training_sample\.json: not a training sample/);
  fs.writeFileSync(file, '{"version"');
  await assert.rejects(readTrainingSample(tmp), /training_sample\.json: not valid JSON/);
  assert.equal(await readTrainingSample(path.join(tmp, 'none')), undefined);
});
