/**
 * The audit's softmax heads and folds: the fitted head against scipy's L-BFGS-B on the same
 * objective (scripts/softmax_ref.py), stratified folds, and the property that makes the
 * probabilities out-of-sample: an image's own label never reaches the head that predicts it.
 */
import { execFileSync } from 'child_process';
import { strict as assert } from 'assert';
import { test } from 'node:test';
import * as path from 'path';
import { outOfFoldProbabilities, stratifiedFolds } from '../../server/audit/crossValidation';
import { fitSoftmax, predictSoftmax } from '../../server/audit/logistic';
import { mulberry32 } from '../../server/train/rng';

/** Three Gaussian blobs in 6 dimensions with some overlap (so the optimum is finite without λ too). */
function blobs(n: number, seed: number): { X: Float32Array; y: Int32Array; dim: number; K: number } {
  const r = mulberry32(seed);
  const dim = 6,
    K = 3;
  const gauss = () => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
  const X = new Float32Array(n * dim);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    y[i] = i % K;
    for (let d = 0; d < dim; d++) X[i * dim + d] = gauss() + (d === y[i] ? 1.5 : 0);
  }
  return { X, y, dim, K };
}

test('the fitted head matches scipy L-BFGS-B on the same objective', async () => {
  const { X, y, dim, K } = blobs(150, 7);
  const n = y.length;
  const l2 = 1e-2;
  const rows = Int32Array.from({ length: n }, (_, i) => i);
  const X64 = Float64Array.from(X);
  const head = await fitSoftmax(X64, dim, y, rows, K, { l2, iterations: 200 });
  const probs = new Float64Array(n * K);
  predictSoftmax(head, X64, rows, probs);
  const rowsOf = (a: Float32Array) =>
    Array.from({ length: n }, (_, i) => Array.from(a.subarray(i * dim, (i + 1) * dim)));
  const ref = JSON.parse(
    execFileSync('/usr/bin/python3', [path.join(__dirname, '..', '..', 'scripts', 'softmax_ref.py')], {
      input: JSON.stringify({ X: rowsOf(X), y: Array.from(y), classes: K, l2 }),
      encoding: 'utf8',
    }),
  ) as { loss: number; probs: number[][] };
  let worst = 0;
  for (let i = 0; i < n; i++)
    for (let k = 0; k < K; k++) worst = Math.max(worst, Math.abs(probs[i * K + k] - ref.probs[i][k]));
  assert.ok(worst < 1e-4, `probabilities differ from scipy by up to ${worst}`);
  let loss = 0;
  let penalty = 0;
  for (let i = 0; i < n; i++) loss -= Math.log(probs[i * K + y[i]]) / n;
  for (let j = 0; j < dim * K; j++) penalty += head.params[j] ** 2;
  assert.ok(
    Math.abs(loss + 0.5 * l2 * penalty - ref.loss) < 1e-6,
    `objective ${loss + 0.5 * l2 * penalty} vs scipy ${ref.loss}`,
  );
});

test('folds are stratified, balanced and seeded', () => {
  const labels = Int32Array.from({ length: 103 }, (_, i) => (i < 50 ? 0 : i < 90 ? 1 : 2));
  const folds = stratifiedFolds(labels, 3, 5, 0);
  const sizes = [0, 1, 2, 3, 4].map(f => folds.filter(g => g === f).length);
  assert.ok(Math.max(...sizes) - Math.min(...sizes) <= 1, `fold sizes ${sizes}`);
  for (const c of [0, 1, 2]) {
    const per = [0, 1, 2, 3, 4].map(f => folds.filter((g, i) => g === f && labels[i] === c).length);
    assert.ok(Math.max(...per) - Math.min(...per) <= 1, `class ${c} per fold ${per}`);
  }
  assert.deepEqual(stratifiedFolds(labels, 3, 5, 0), folds);
  assert.notDeepEqual(stratifiedFolds(labels, 3, 5, 1), folds);
});

test("an image's out-of-fold probabilities do not depend on its own label", async () => {
  const { X, y, dim, K } = blobs(120, 3);
  // Folds fixed up front: stratifying by the flipped label could otherwise move the image.
  const foldOf = stratifiedFolds(y, K, 4, 0);
  const opts = { folds: 4, seed: 0, foldOf, softmax: { l2: 1e-2, iterations: 30 } };
  const before = await outOfFoldProbabilities(X, dim, y, K, opts);
  for (const i of [0, 17, 101]) {
    const flipped = y.slice();
    flipped[i] = (y[i] + 1) % K;
    const after = await outOfFoldProbabilities(X, dim, flipped, K, opts);
    assert.deepEqual(
      Array.from(after.subarray(i * K, (i + 1) * K)),
      Array.from(before.subarray(i * K, (i + 1) * K)),
      `image ${i}`,
    );
    // …while the heads of the other folds, which did see the flip, changed.
    const other = foldOf.findIndex(f => f !== foldOf[i]);
    assert.notDeepEqual(
      Array.from(after.subarray(other * K, (other + 1) * K)),
      Array.from(before.subarray(other * K, (other + 1) * K)),
    );
  }
});
