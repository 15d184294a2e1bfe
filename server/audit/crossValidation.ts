/**
 * Out-of-sample probabilities for every image: K stratified, seeded folds; a softmax head trained on
 * the other K−1 folds predicts each fold. Features are standardised once (mean/std over all images:
 * no labels are involved, so no label leaks into a fold's predictions).
 */
import { mixSeed, mulberry32, shuffled } from '../train/rng';
import { DEFAULT_SOFTMAX, fitSoftmax, predictSoftmax, SoftmaxOptions } from './logistic';

/** Seed purpose of the audit's fold assignment (the trainer's purposes are 1–4, see train/rng.ts). */
const FOLD_PURPOSE = 16;

/**
 * fold[i] ∈ [0, K): each class's images are shuffled with (seed, class) and dealt round-robin,
 * continuing where the previous class stopped so fold sizes differ by at most one.
 */
export function stratifiedFolds(labels: Int32Array, numClasses: number, folds: number, seed: number): Int32Array {
  const fold = new Int32Array(labels.length);
  let next = 0;
  for (let c = 0; c < numClasses; c++) {
    const mine: number[] = [];
    labels.forEach((l, i) => l === c && mine.push(i));
    for (const i of shuffled(mine, mulberry32(mixSeed(seed, FOLD_PURPOSE, c)))) fold[i] = next++ % folds;
  }
  return fold;
}

export function standardise(X: Float32Array, n: number, dim: number): Float64Array {
  const out = new Float64Array(X.length);
  for (let d = 0; d < dim; d++) {
    let mean = 0;
    for (let i = 0; i < n; i++) mean += X[i * dim + d];
    mean /= Math.max(1, n);
    let v = 0;
    for (let i = 0; i < n; i++) v += (X[i * dim + d] - mean) ** 2;
    const std = Math.sqrt(v / Math.max(1, n)) || 1;
    for (let i = 0; i < n; i++) out[i * dim + d] = (X[i * dim + d] - mean) / std;
  }
  return out;
}

export interface CrossValOptions {
  folds: number;
  seed: number;
  softmax?: SoftmaxOptions;
  /** Fold of each image (default: stratifiedFolds of the labels). */
  foldOf?: Int32Array;
  signal?: AbortSignal;
  onFold?: (done: number, total: number) => void;
}

/** n × K out-of-fold probabilities, row-major. */
export async function outOfFoldProbabilities(
  X: Float32Array,
  dim: number,
  labels: Int32Array,
  numClasses: number,
  opts: CrossValOptions,
): Promise<Float64Array> {
  const n = labels.length;
  const Xs = standardise(X, n, dim);
  const fold = opts.foldOf ?? stratifiedFolds(labels, numClasses, opts.folds, opts.seed);
  const probs = new Float64Array(n * numClasses);
  for (let f = 0; f < opts.folds; f++) {
    opts.signal?.throwIfAborted();
    const train: number[] = [];
    const test: number[] = [];
    fold.forEach((g, i) => (g === f ? test : train).push(i));
    const head = await fitSoftmax(
      Xs,
      dim,
      labels,
      Int32Array.from(train),
      numClasses,
      opts.softmax ?? DEFAULT_SOFTMAX,
      opts.signal,
    );
    predictSoftmax(head, Xs, Int32Array.from(test), probs);
    opts.onFold?.(f + 1, opts.folds);
  }
  return probs;
}
