/**
 * The "unlike the training data" statistics (server/model/featureStats.ts) against a numpy
 * implementation of the same formulas (scripts/feature_stats_ref.py), and the file checks.
 */
import { execFileSync } from 'child_process';
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { computeFeatureStats, featureScore, FEATURE_STATS_FILE, readFeatureStats, writeFeatureStats } from '../../server/model/featureStats';
import { mulberry32 } from '../../server/train/rng';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-feature-stats-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Correlated Gaussian clusters in 12 dimensions, 4 classes (class 4 of 5 has no images). */
function data(n: number, seed: number) {
  const r = mulberry32(seed);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
  const dim = 12;
  const rows: number[][] = [];
  const y: number[] = [];
  for (let i = 0; i < n; i++) {
    const c = [0, 1, 2, 3][i % 4];
    const g = Array.from({ length: dim }, gauss);
    rows.push(g.map((v, d) => v * (1 + d / 4) + 0.5 * g[(d + 1) % dim] + (d === c ? 4 : 0)));
    y.push(c);
  }
  return { rows, y, dim };
}

test('scores and threshold match numpy', () => {
  const { rows, y, dim } = data(400, 5);
  const test = [...data(20, 9).rows, Array(dim).fill(30), Array(dim).fill(-3)];
  const stats = computeFeatureStats(rows.flat(), rows.length, dim, y, 5);
  const ref = JSON.parse(execFileSync('/usr/bin/python3', [path.join(__dirname, '..', '..', 'scripts', 'feature_stats_ref.py')], { input: JSON.stringify({ X: rows, y, classes: 5, test }), encoding: 'utf8' }));
  assert.equal(stats.means.length, 4, 'a class without images has no mean');
  const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(1, Math.abs(b));
  assert.ok(rel(stats.threshold, ref.threshold) < 1e-9, `threshold ${stats.threshold} vs numpy ${ref.threshold}`);
  test.forEach((x, i) => assert.ok(rel(featureScore(stats, x), ref.scores[i]) < 1e-9, `point ${i}: ${featureScore(stats, x)} vs numpy ${ref.scores[i]}`));
  assert.ok(featureScore(stats, test[20]) > 10 * stats.threshold, 'a far point scores far above the threshold');
});

test('the file round-trips; a wrong size or a broken file is named', async () => {
  const { rows, y, dim } = data(40, 1);
  const stats = computeFeatureStats(rows.flat(), rows.length, dim, y, 4);
  await writeFeatureStats(tmp, stats);
  assert.deepEqual(await readFeatureStats(tmp, dim), stats);
  await assert.rejects(readFeatureStats(tmp, dim + 1), new RegExp(`${FEATURE_STATS_FILE}: not feature statistics for this model's ${dim + 1}-value features`));
  fs.writeFileSync(path.join(tmp, FEATURE_STATS_FILE), '{"version"');
  await assert.rejects(readFeatureStats(tmp, dim), /feature_stats\.json: not valid JSON/);
  assert.equal(await readFeatureStats(path.join(tmp, 'none'), dim), undefined);
});
