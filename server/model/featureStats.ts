/**
 * Feature statistics a model folder can carry (FEATURE_STATS_FILE) so that classify can say when an
 * image is unlike the training data: a class-conditional Gaussian with one shared covariance over
 * the [CLS] features of the training images (Lee et al., NeurIPS 2018, "A Simple Unified Framework
 * for Detecting Out-of-Distribution Samples"). An image's score is its smallest squared Mahalanobis
 * distance to a class mean; `threshold` is the 99th percentile of the training images' own scores.
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import { writeFileAtomic } from '../util/atomicFile';

export const FEATURE_STATS_FILE = 'feature_stats.json';
/** Training images scoring at or below the threshold. */
export const STATS_PERCENTILE = 99;
/** Ridge added to the covariance's diagonal, relative to its mean variance: collapsed features have near-singular covariances. */
const RIDGE = 1e-3;

export interface FeatureStats {
  version: 1;
  method: 'class-gaussian-shared-covariance';
  dim: number;
  /** Training images the statistics come from. */
  count: number;
  /** Class means, [K][dim]. */
  means: number[][];
  /** Inverse of the shared covariance (ridge added), dim × dim row-major. */
  precision: number[];
  threshold: number;
  percentile: number;
}

/** Cholesky factor L (lower, row-major) of a symmetric positive-definite matrix. */
function cholesky(A: Float64Array, n: number): Float64Array {
  const L = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = A[i * n + j];
      for (let k = 0; k < j; k++) s -= L[i * n + k] * L[j * n + k];
      if (i === j) {
        if (!(s > 0)) throw new Error('feature covariance is not positive definite');
        L[i * n + i] = Math.sqrt(s);
      } else L[i * n + j] = s / L[j * n + j];
    }
  }
  return L;
}

/** A⁻¹ from its Cholesky factor: solve L·Lᵀ·X = I column by column. */
function inverseSpd(A: Float64Array, n: number): Float64Array {
  const L = cholesky(A, n);
  const inv = new Float64Array(n * n);
  const y = new Float64Array(n);
  for (let c = 0; c < n; c++) {
    for (let i = 0; i < n; i++) {
      let s = i === c ? 1 : 0;
      for (let k = 0; k < i; k++) s -= L[i * n + k] * y[k];
      y[i] = s / L[i * n + i];
    }
    for (let i = n - 1; i >= 0; i--) {
      let s = y[i];
      for (let k = i + 1; k < n; k++) s -= L[k * n + i] * inv[k * n + c];
      inv[i * n + c] = s / L[i * n + i];
    }
  }
  return inv;
}

/** `X`: n × dim features; `labels` in [0, K). Classes without images get no mean (they are never nearest). */
export function computeFeatureStats(X: ArrayLike<number>, n: number, dim: number, labels: ArrayLike<number>, K: number): FeatureStats {
  const means = Array.from({ length: K }, () => new Float64Array(dim));
  const counts = new Float64Array(K);
  for (let i = 0; i < n; i++) {
    counts[labels[i]]++;
    for (let d = 0; d < dim; d++) means[labels[i]][d] += X[i * dim + d];
  }
  means.forEach((m, c) => m.forEach((_, d) => (m[d] /= Math.max(1, counts[c]))));
  const cov = new Float64Array(dim * dim);
  const r = new Float64Array(dim);
  for (let i = 0; i < n; i++) {
    for (let d = 0; d < dim; d++) r[d] = X[i * dim + d] - means[labels[i]][d];
    for (let a = 0; a < dim; a++) for (let b = 0; b <= a; b++) cov[a * dim + b] += r[a] * r[b];
  }
  let trace = 0;
  for (let a = 0; a < dim; a++) {
    for (let b = 0; b <= a; b++) cov[b * dim + a] = cov[a * dim + b] /= Math.max(1, n);
    trace += cov[a * dim + a];
  }
  const ridge = RIDGE * (trace / dim || 1);
  for (let a = 0; a < dim; a++) cov[a * dim + a] += ridge;
  const stats: FeatureStats = {
    version: 1,
    method: 'class-gaussian-shared-covariance',
    dim,
    count: n,
    means: means.filter((_, c) => counts[c] > 0).map((m) => Array.from(m)),
    precision: Array.from(inverseSpd(cov, dim)),
    threshold: 0,
    percentile: STATS_PERCENTILE,
  };
  const own = Float64Array.from({ length: n }, (_, i) => featureScore(stats, Array.prototype.slice.call(X, i * dim, (i + 1) * dim)));
  own.sort();
  stats.threshold = own[Math.min(n - 1, Math.ceil((STATS_PERCENTILE / 100) * n) - 1)] ?? 0;
  return stats;
}

/** Smallest squared Mahalanobis distance of one feature vector to a class mean. */
export function featureScore(stats: FeatureStats, x: ArrayLike<number>): number {
  const { dim, precision: P } = stats;
  const r = new Float64Array(dim);
  let best = Infinity;
  for (const mean of stats.means) {
    for (let d = 0; d < dim; d++) r[d] = x[d] - mean[d];
    let s = 0;
    for (let a = 0; a < dim; a++) {
      let row = 0;
      for (let b = 0; b < dim; b++) row += P[a * dim + b] * r[b];
      s += r[a] * row;
    }
    best = Math.min(best, s);
  }
  return best;
}

export const writeFeatureStats = (dir: string, stats: FeatureStats) => writeFileAtomic(path.join(dir, FEATURE_STATS_FILE), JSON.stringify(stats) + '\n');

/** The model folder's statistics, if it has a usable file for features of this size; a broken file names itself. */
export async function readFeatureStats(dir: string, dim: number): Promise<FeatureStats | undefined> {
  const file = path.join(dir, FEATURE_STATS_FILE);
  const text = await fs.readFile(file, 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  let s: FeatureStats;
  try {
    s = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
  const ok = s?.version === 1 && s.dim === dim && Array.isArray(s.means) && s.means.length > 0 && s.means.every((m) => Array.isArray(m) && m.length === dim) && Array.isArray(s.precision) && s.precision.length === dim * dim && Number.isFinite(s.threshold);
  if (!ok) throw new Error(`${file}: not feature statistics for this model's ${dim}-value features (version 1: means, precision, threshold); delete it or recompute it`);
  return s;
}
