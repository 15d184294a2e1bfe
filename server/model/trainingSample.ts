/**
 * "Unlike the training data": a model folder can carry a small sample of its training images
 * (TRAINING_SAMPLE_FILE) as 16×16 grey thumbnails of the model input (server/audit/thumbnail.ts),
 * and an image's score is its mean distance (1 − correlation) to the k = 10 nearest of them — the
 * audit's outlier score, measured against the training data instead of the dataset itself.
 * `threshold` is the 99th percentile of the sample's own (leave-one-out) scores.
 *
 * Why pixels and not the [CLS] features: measured on the built-in Fashion-MNIST model (README),
 * a class-conditional Gaussian on its collapsed features (Lee et al. 2018) flagged 5 of 15
 * scikit-image photos, the thumbnail neighbours 13 of 15, each with ~1% of Fashion-MNIST test
 * images over the threshold.
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import { normalisedRows } from '../audit/neighbours';
import { THUMB } from '../audit/thumbnail';
import { writeFileAtomic } from '../util/atomicFile';

export const TRAINING_SAMPLE_FILE = 'training_sample.json';
const K = 10;
const PERCENTILE = 99;
const SIZE = THUMB * THUMB;

export interface TrainingSample {
  version: 1;
  method: 'thumbnail-knn';
  k: number;
  count: number;
  threshold: number;
  percentile: number;
  /** count × THUMB² centred, unit-length thumbnails, as int8 (× 127), base64. */
  vectors: string;
}

/** Rows of int8 → unit-ish float rows (the quantisation is part of the sample: scores use these). */
const decode = (s: TrainingSample) =>
  Float32Array.from(new Int8Array(Buffer.from(s.vectors, 'base64').buffer.slice(0)), v => v / 127);

function meanDistance(U: Float32Array, count: number, u: ArrayLike<number>, skip: number, k: number): number {
  const top: number[] = [];
  for (let j = 0; j < count; j++) {
    if (j === skip) continue;
    let s = 0;
    for (let d = 0; d < SIZE; d++) s += u[d] * U[j * SIZE + d];
    if (top.length < k) top.push(s);
    else {
      let m = 0;
      for (let t = 1; t < k; t++) if (top[t] < top[m]) m = t;
      if (s > top[m]) top[m] = s;
    }
  }
  return top.reduce((a, s) => a + 1 - s, 0) / Math.max(1, top.length);
}

/** `thumbs`: n thumbnails (THUMB² values each) of training images. */
export function buildTrainingSample(thumbs: Float32Array, n: number): TrainingSample {
  const U = normalisedRows(thumbs, n, SIZE, true);
  const bytes = Int8Array.from(U, v => Math.round(v * 127));
  const sample: TrainingSample = {
    version: 1,
    method: 'thumbnail-knn',
    k: K,
    count: n,
    threshold: 0,
    percentile: PERCENTILE,
    vectors: Buffer.from(bytes.buffer).toString('base64'),
  };
  const Q = decode(sample);
  const own = Float64Array.from({ length: n }, (_, i) =>
    meanDistance(Q, n, Q.subarray(i * SIZE, (i + 1) * SIZE), i, K),
  ).sort();
  sample.threshold = own[Math.max(0, Math.ceil((PERCENTILE / 100) * n) - 1)];
  return sample;
}

/** Scores one thumbnail against a sample; decode once per sample with `trainingSampleScorer`. */
export function trainingSampleScorer(sample: TrainingSample): (thumb: Float32Array) => number {
  const Q = decode(sample);
  return thumb => meanDistance(Q, sample.count, normalisedRows(thumb, 1, SIZE, true), -1, sample.k);
}

export const writeTrainingSample = (dir: string, s: TrainingSample) =>
  writeFileAtomic(path.join(dir, TRAINING_SAMPLE_FILE), JSON.stringify(s) + '\n');

/** The model folder's sample, if it has one; a broken file is named. */
export async function readTrainingSample(dir: string): Promise<TrainingSample | undefined> {
  const file = path.join(dir, TRAINING_SAMPLE_FILE);
  const text = await fs.readFile(file, 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  let s: TrainingSample;
  try {
    s = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
  const ok =
    s?.version === 1 &&
    s.method === 'thumbnail-knn' &&
    Number.isInteger(s.k) &&
    s.k > 0 &&
    Number.isInteger(s.count) &&
    s.count > s.k &&
    Number.isFinite(s.threshold) &&
    typeof s.vectors === 'string' &&
    Buffer.from(s.vectors, 'base64').length === s.count * SIZE;
  if (!ok)
    throw new Error(
      `${file}: not a training sample (version 1, thumbnail-knn, ${SIZE} int8 values per image); delete it or make it again`,
    );
  return s;
}
