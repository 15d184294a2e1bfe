/**
 * Confident learning against scripts/confident_learning_ref.py, a numpy implementation written from
 * the paper's definitions (cleanlab itself is not installable here): the flagged sets must be equal
 * on fixed probability matrices, including ties, exact thresholds, half-way rounding, an empty class
 * and one-example classes.
 */
import { execFileSync } from 'child_process';
import { strict as assert } from 'assert';
import { test } from 'node:test';
import * as path from 'path';
import { findLabelIssues, rankedLabelIssues, roundHalfEven } from '../../server/audit/confidentLearning';
import { mulberry32 } from '../../server/train/rng';

interface Case {
  name: string;
  labels: number[];
  probs: number[][];
}

/** Noisy labels and peaked probabilities: `noise` of the images carry another class's label. */
function randomCase(name: string, seed: number, n: number, K: number, noise: number, peak: number): Case {
  const r = mulberry32(seed);
  const labels: number[] = [];
  const probs: number[][] = [];
  for (let i = 0; i < n; i++) {
    const truth = Math.floor(r() * K);
    const raw = Array.from({ length: K }, (_, k) => r() + (k === truth ? peak * r() : 0));
    const sum = raw.reduce((a, b) => a + b, 0);
    probs.push(raw.map(v => v / sum));
    labels.push(r() < noise ? (truth + 1 + Math.floor(r() * (K - 1))) % K : truth);
  }
  return { name, labels, probs };
}

const CASES: Case[] = [
  randomCase('random 200×5, 20% noise', 1, 200, 5, 0.2, 4),
  randomCase('random 500×10, 10% noise', 2, 500, 10, 0.1, 8),
  randomCase('random 60×3, 40% noise, flat', 3, 60, 3, 0.4, 1),
  randomCase('random 1000×4, 5% noise, sharp', 4, 1000, 4, 0.05, 30),
  {
    // Rows repeated exactly: thresholds equal some probabilities exactly, argmax and margins tie.
    name: 'ties',
    labels: [0, 0, 0, 1, 1, 1, 2, 2, 2, 0, 1, 2],
    probs: [
      [0.5, 0.25, 0.25],
      [0.5, 0.25, 0.25],
      [0.25, 0.5, 0.25],
      [0.25, 0.5, 0.25],
      [0.25, 0.5, 0.25],
      [0.5, 0.25, 0.25],
      [0.25, 0.25, 0.5],
      [0.4, 0.4, 0.2],
      [0.4, 0.4, 0.2],
      [0.1, 0.45, 0.45],
      [0.45, 0.1, 0.45],
      [0.45, 0.45, 0.1],
    ],
  },
  {
    // n·Q lands on x.5 for some cells (rounding half to even matters), with a class nobody is labelled with.
    name: 'half-way rounding, empty class',
    labels: [0, 0, 0, 0, 0, 0, 1, 1, 1, 1],
    probs: [
      [0.9, 0.05, 0.05],
      [0.9, 0.05, 0.05],
      [0.8, 0.1, 0.1],
      [0.2, 0.7, 0.1],
      [0.1, 0.8, 0.1],
      [0.3, 0.6, 0.1],
      [0.1, 0.9, 0],
      [0.1, 0.8, 0.1],
      [0.7, 0.2, 0.1],
      [0.6, 0.3, 0.1],
    ],
  },
  {
    // t0 = (0.1 + 0.2 + 0.3) / 3 = 0.20000000000000004: image 1 (p0 = 0.2) reaches it only with the tolerance.
    name: 'probability on the threshold',
    labels: [0, 0, 0, 1, 1, 1, 2, 2],
    probs: [
      [0.1, 0.4, 0.5],
      [0.2, 0.35, 0.45],
      [0.3, 0.3, 0.4],
      [0.1, 0.8, 0.1],
      [0.5, 0.4, 0.1],
      [0.6, 0.3, 0.1],
      [0.3, 0.2, 0.5],
      [0.2, 0.3, 0.5],
    ],
  },
  {
    // Images 2 and 3 are confident only for class 1 (t1 = 0.3) yet most probable as labelled: pruned, then kept.
    name: 'confident elsewhere, most probable as labelled',
    labels: [0, 0, 0, 0, 1, 1, 1, 1],
    probs: [
      [0.9, 0.1],
      [0.9, 0.1],
      [0.55, 0.45],
      [0.55, 0.45],
      [0.7, 0.3],
      [0.7, 0.3],
      [0.7, 0.3],
      [0.7, 0.3],
    ],
  },
  {
    name: 'one image per class',
    labels: [0, 1, 2, 3],
    probs: [
      [0.1, 0.7, 0.1, 0.1],
      [0.25, 0.25, 0.25, 0.25],
      [0.4, 0.1, 0.4, 0.1],
      [0.1, 0.1, 0.1, 0.7],
    ],
  },
  {
    name: 'uniform probabilities',
    labels: [0, 1, 0, 1, 0, 1],
    probs: Array.from({ length: 6 }, () => [0.5, 0.5]),
  },
];

function reference(cases: Case[]): number[][] {
  const out = execFileSync(
    '/usr/bin/python3',
    [path.join(__dirname, '..', '..', 'scripts', 'confident_learning_ref.py')],
    {
      input: JSON.stringify(cases.map(({ labels, probs }) => ({ labels, probs }))),
      encoding: 'utf8',
    },
  );
  return JSON.parse(out);
}

function ours(c: Case): number[] {
  const K = c.probs[0].length;
  const flagged = findLabelIssues(Int32Array.from(c.labels), Float64Array.from(c.probs.flat()), K);
  return flagged.flatMap((f, i) => (f ? [i] : []));
}

test('flagged sets equal the numpy reference on every fixed case', () => {
  const expected = reference(CASES);
  let flaggedTotal = 0;
  CASES.forEach((c, i) => {
    assert.deepEqual(ours(c), expected[i], c.name);
    flaggedTotal += expected[i].length;
  });
  // The comparison is not empty against empty: the random cases have many issues each.
  assert.ok(
    expected[0].length > 10 && expected[1].length > 10,
    `random cases flag ${expected[0].length} and ${expected[1].length}`,
  );
  assert.ok(flaggedTotal > 60);
});

test('issues are ranked by self-confidence with the most probable class as suggestion', () => {
  const c = CASES[1];
  const ranked = rankedLabelIssues(Int32Array.from(c.labels), Float64Array.from(c.probs.flat()), 10);
  for (let r = 1; r < ranked.length; r++) assert.ok(ranked[r - 1].selfConfidence <= ranked[r].selfConfidence);
  for (const x of ranked) {
    const row = c.probs[x.index];
    assert.equal(x.selfConfidence, row[c.labels[x.index]]);
    assert.equal(x.suggested, row.indexOf(Math.max(...row)));
    assert.notEqual(x.suggested, c.labels[x.index]);
  }
});

test('rounding is half to even, as numpy rint', () => {
  assert.deepEqual([0.5, 1.5, 2.5, 3.49, -0.5, 4].map(roundHalfEven), [0, 2, 2, 3, -0, 4]);
});
