/**
 * Confident learning (Northcutt, Jiang & Chuang, "Confident Learning: Estimating Uncertainty in
 * Dataset Labels", JAIR 2021) on out-of-sample probabilities p[i][j]:
 *   1. per-class thresholds t_j = mean of p[i][j] over the images labelled j;
 *   2. the confident joint C[ỹ][y*]: an image labelled ỹ counts toward y* = the most probable class
 *      among those it reaches the threshold of (none reached: not counted);
 *   3. calibrate: rows rescaled to the number of images with that label, then the whole matrix to
 *      sum 1 (Q̂, eq. 3), so N·Q̂[i][j] estimates how many images labelled i are really j;
 *   4. prune by noise rate: for every i ≠ j, the round(N·Q̂[i][j]) images labelled i with the
 *      largest margin p[j] − p[i] are label issues.
 * Conventions where the paper leaves a choice (cleanlab's, and what tools/confident_learning.py
 * implements independently): p ≥ t − 1e-6 counts as reaching t (sums in another order must not flip
 * an image sitting exactly on a threshold); a class nobody is labelled with has t = +∞; the joint's
 * diagonal is at least 1; ties in argmax and margin go to the lower index; rounding is half-to-even;
 * an image whose most probable class is its label is never an issue.
 */

export const THRESHOLD_TOLERANCE = 1e-6;

function argmax(p: Float64Array, base: number, K: number): number {
  let best = 0;
  for (let k = 1; k < K; k++) if (p[base + k] > p[base + best]) best = k;
  return best;
}

/** Round half to even, as numpy's rint. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export function classThresholds(labels: Int32Array, probs: Float64Array, K: number): Float64Array {
  const sum = new Float64Array(K);
  const count = new Float64Array(K);
  labels.forEach((l, i) => {
    sum[l] += probs[i * K + l];
    count[l]++;
  });
  return sum.map((s, j) => (count[j] ? s / count[j] : Infinity));
}

/** C[given][true] counts (K × K row-major), diagonal at least 1. */
export function confidentJoint(
  labels: Int32Array,
  probs: Float64Array,
  K: number,
  thresholds = classThresholds(labels, probs, K),
): Float64Array {
  const C = new Float64Array(K * K);
  labels.forEach((l, i) => {
    let best = -1;
    for (let j = 0; j < K; j++) {
      const p = probs[i * K + j];
      if (p >= thresholds[j] - THRESHOLD_TOLERANCE && (best < 0 || p > probs[i * K + best])) best = j;
    }
    if (best >= 0) C[l * K + best]++;
  });
  for (let j = 0; j < K; j++) C[j * K + j] = Math.max(1, C[j * K + j]);
  return C;
}

/** Q̂[given][true], summing to 1. */
export function calibratedJoint(C: Float64Array, labels: Int32Array, K: number): Float64Array {
  const count = new Float64Array(K);
  labels.forEach(l => count[l]++);
  const Q = new Float64Array(K * K);
  let total = 0;
  for (let i = 0; i < K; i++) {
    let row = 0;
    for (let j = 0; j < K; j++) row += C[i * K + j];
    for (let j = 0; j < K; j++) total += Q[i * K + j] = (C[i * K + j] / row) * count[i];
  }
  return Q.map(q => q / total);
}

/** Which images are label issues (prune by noise rate). */
export function findLabelIssues(labels: Int32Array, probs: Float64Array, K: number): boolean[] {
  const n = labels.length;
  const Q = calibratedJoint(confidentJoint(labels, probs, K), labels, K);
  const issue = new Array<boolean>(n).fill(false);
  const byLabel: number[][] = Array.from({ length: K }, () => []);
  labels.forEach((l, i) => byLabel[l].push(i));
  for (let i = 0; i < K; i++) {
    for (let j = 0; j < K; j++) {
      if (i === j) continue;
      const prune = roundHalfEven(n * Q[i * K + j]);
      if (prune <= 0) continue;
      const margin = (x: number) => probs[x * K + j] - probs[x * K + i];
      const order = byLabel[i].slice().sort((a, b) => margin(b) - margin(a) || a - b);
      for (const x of order.slice(0, prune)) issue[x] = true;
    }
  }
  labels.forEach((l, x) => {
    if (argmax(probs, x * K, K) === l) issue[x] = false;
  });
  return issue;
}

export interface LabelIssue {
  index: number;
  suggested: number;
  /** Self-confidence p[i][label]: lower is worse. */
  selfConfidence: number;
}

/** The label issues, lowest self-confidence first, each with the most probable class as suggestion. */
export function rankedLabelIssues(labels: Int32Array, probs: Float64Array, K: number): LabelIssue[] {
  const issues = findLabelIssues(labels, probs, K);
  const out: LabelIssue[] = [];
  issues.forEach(
    (bad, i) =>
      bad && out.push({ index: i, suggested: argmax(probs, i * K, K), selfConfidence: probs[i * K + labels[i]] }),
  );
  return out.sort((a, b) => a.selfConfidence - b.selfConfidence || a.index - b.index);
}
