/**
 * Dataset audit: every image of a class-folder dataset gets out-of-sample class probabilities from
 * K-fold cross-validated softmax heads on cached [CLS] features, then
 *   - label issues: confident learning (confidentLearning.ts), lowest self-confidence first;
 *   - duplicates: byte-identical files (content hash), and images whose 16×16 thumbnails of the model
 *     input correlate ≥ threshold, grouped; a group whose images carry different labels is
 *     "conflicting" and listed first;
 *   - outliers: mean distance (1 − correlation) of the thumbnail to its k nearest, highest first.
 * Why thumbnails and not the features for the last two: see thumbnail.ts.
 * The report goes atomically to OUT/audit.json (default DATASET/.vit-lens/, which the folder
 * scanners skip as a hidden folder). Decisions taken on an earlier report (ignore, move, delete)
 * are kept, and ignored items are not listed again.
 */
import { createHash } from 'crypto';
import { promises as fs } from 'fs';
import * as path from 'path';
import type { Engine } from '../engine';
import { defaultCacheDir } from '../model/hub';
import { scanDataset, Sample } from '../train/datasetFolder';
import { FeatureCache } from '../train/featureCache';
import { folderLoader } from '../train/imageLoader';
import type { AuditDecision, AuditKind, AuditReport } from '../../common/workerRequests';
import { writeFileAtomic } from '../util/atomicFile';
import { rankedLabelIssues } from './confidentLearning';
import { outOfFoldProbabilities } from './crossValidation';
import { groupPairs, neighbours, normalisedRows } from './neighbours';
import { THUMB, thumbnail } from './thumbnail';

export type { AuditDecision, AuditKind, AuditReport };

export const AUDIT_FILE = 'audit.json';
export const AUDIT_VERSION = 1;
/** Thumbnail correlation of a near-duplicate: resized copies of 28-pixel Fashion-MNIST images score 0.97–0.99. */
export const DEFAULT_SIMILARITY = 0.965;

export interface AuditOptions {
  /** Where audit.json goes (default DATASET/.vit-lens). */
  outDir?: string;
  /** Feature cache root (default: the engine's cache folder, e.g. ~/.cache/vit-lens). */
  cacheDir?: string;
  folds?: number;
  seed?: number;
  /** Thumbnail correlation at or above which two images are near-duplicates. */
  similarity?: number;
  /** Neighbours averaged for the outlier score. */
  neighbours?: number;
  /** How many of the most unusual images the outlier list holds at most. */
  maxOutliers?: number;
  batchSize?: number;
  /** Runs each model call (the worker puts them on its model queue, so an explain can slip in between). */
  runModel?: <T>(work: () => Promise<T>) => Promise<T>;
  signal?: AbortSignal;
  onProgress?: (p: { stage: 'features' | 'folds' | 'neighbours'; message: string; fraction: number }) => void;
  /** The features and labels the heads are trained on (bench:audit hands them to the scikit-learn peer). */
  onFeatures?: (features: Float32Array, dim: number, labels: Int32Array) => void;
}

export const auditFileOf = (dataset: string, outDir?: string): string =>
  path.join(path.resolve(outDir ?? path.join(dataset, '.vit-lens')), AUDIT_FILE);

export const decisionKey = (kind: AuditKind, files: string[]): string => `${kind}:${files.slice().sort().join('\n')}`;

export async function readDecisions(file: string): Promise<AuditDecision[]> {
  const text = await fs.readFile(file, 'utf8').catch(() => undefined);
  if (text === undefined) return [];
  try {
    const d: unknown = (JSON.parse(text) as Partial<AuditReport>).decisions;
    // Hand-edited files: keep only well-formed decisions.
    const ok = (x: unknown): x is AuditDecision => {
      const r = (x ?? {}) as { kind?: unknown; action?: unknown; files?: unknown };
      return (
        ['labelIssue', 'duplicate', 'outlier'].includes(r.kind as string) &&
        ['ignore', 'move', 'delete'].includes(r.action as string) &&
        Array.isArray(r.files) &&
        r.files.every((f: unknown) => typeof f === 'string')
      );
    };
    return Array.isArray(d) ? d.filter(ok) : [];
  } catch (e) {
    throw new Error(`${file}: not a valid audit file (${(e as Error).message}); delete it to start afresh`);
  }
}

export async function auditDataset(engine: Engine, dataset: string, opts: AuditOptions = {}): Promise<AuditReport> {
  const root = path.resolve(dataset);
  const folds = opts.folds ?? 5;
  const seed = opts.seed ?? 0;
  const threshold = opts.similarity ?? DEFAULT_SIMILARITY;
  if (!Number.isInteger(folds) || folds < 2) throw new Error(`folds must be an integer ≥ 2, got ${folds}`);
  if (!(threshold > 0 && threshold <= 1)) throw new Error(`similarity threshold must be in (0, 1], got ${threshold}`);
  const file = auditFileOf(root, opts.outDir);
  const decisions = await readDecisions(file);
  const ds = await scanDataset(root, { valSplit: 0, seed });
  const rel = (f: string) => path.relative(root, f).split(path.sep).join('/');
  const all = [...ds.train, ...ds.val].sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
  const progress = opts.onProgress ?? (() => {});

  // 1. [CLS] features and a pixel thumbnail, computed once per image content and kept in the feature cache.
  let t0 = Date.now();
  const identity = engine.featureIdentity();
  const key = createHash('sha256')
    .update(JSON.stringify({ v: 1, what: `cls-features+thumbnail${THUMB}`, ...identity }))
    .digest('hex')
    .slice(0, 24);
  const [h, w] = identity.preprocess.size;
  const pixelsPerSample = 3 * h * w;
  const runModel = opts.runModel ?? (work => work());
  const dim = (await runModel(() => engine.features(new Float32Array(pixelsPerSample), 1))).size;
  const thumbSize = THUMB * THUMB;
  const size = dim + thumbSize;
  const built = await FeatureCache.build(all, {
    cacheDir: path.join(opts.cacheDir ?? defaultCacheDir(), 'features'),
    key,
    size,
    batchSize: opts.batchSize ?? 64,
    loader: folderLoader(identity.preprocess),
    pixelsPerSample,
    produce: async (pixels, n) => {
      opts.signal?.throwIfAborted();
      const features = (await runModel(() => engine.features(pixels, n))).values;
      const out = new Float32Array(n * size);
      for (let i = 0; i < n; i++) {
        out.set(features.subarray(i * dim, (i + 1) * dim), i * size);
        out.set(thumbnail(pixels, i * pixelsPerSample, h, w), i * size + dim);
      }
      return out;
    },
    onProgress: (done, total) => {
      if (done === total || done % 256 === 0)
        progress({ stage: 'features', message: `features ${done}/${total}`, fraction: done / total });
      if (done % 64 === 0) opts.signal?.throwIfAborted();
    },
  });
  const samples: Sample[] = built.kept;
  const n = samples.length;
  if (n < folds) throw new Error(`${root}: ${n} readable images; the audit needs at least ${folds} (one per fold)`);
  const X = new Float32Array(n * dim);
  const T = new Float32Array(n * thumbSize);
  await built.cache.loadAll(samples, (i, v) => {
    X.set(v.subarray(0, dim), i * dim);
    T.set(v.subarray(dim), i * thumbSize);
  });
  const labels = Int32Array.from(samples, s => s.label);
  const featureSeconds = (Date.now() - t0) / 1000;
  opts.onFeatures?.(X, dim, labels);

  // 2. Out-of-fold probabilities and confident learning.
  t0 = Date.now();
  const K = ds.classes.length;
  progress({ stage: 'folds', message: `cross-validation 0/${folds} folds`, fraction: 0 });
  const probs = await outOfFoldProbabilities(X, dim, labels, K, {
    folds,
    seed,
    signal: opts.signal,
    onFold: done =>
      progress({ stage: 'folds', message: `cross-validation ${done}/${folds} folds`, fraction: done / folds }),
  });
  const foldSeconds = (Date.now() - t0) / 1000;

  // 3. Neighbours: duplicates and outliers.
  t0 = Date.now();
  progress({ stage: 'neighbours', message: 'comparing images', fraction: 0 });
  // Thumbnails centred then normalised: their cosine is the Pearson correlation of the pixels.
  const nb = await neighbours(normalisedRows(T, n, thumbSize, true), n, thumbSize, {
    threshold,
    k: opts.neighbours ?? 10,
    signal: opts.signal,
  });
  const hashes = samples.map(s => built.cache.contentHash(s) ?? s.file);
  const firstWithHash = new Map<string, number>();
  hashes.forEach((hash, i) => {
    const first = firstWithHash.get(hash);
    if (first === undefined) firstWithHash.set(hash, i);
    else nb.pairs.push([first, i, 1]);
  });
  const neighbourSeconds = (Date.now() - t0) / 1000;

  const hidden = new Set(decisions.filter(d => d.action === 'ignore').map(d => decisionKey(d.kind, d.files)));
  const files = samples.map(s => rel(s.file));
  const labelIssues = rankedLabelIssues(labels, probs, K)
    .map(r => ({
      file: files[r.index],
      label: ds.classes[labels[r.index]],
      suggested: ds.classes[r.suggested],
      score: r.selfConfidence,
    }))
    .filter(r => !hidden.has(decisionKey('labelIssue', [r.file])));
  const duplicates = groupPairs(n, nb.pairs)
    .map(g => {
      const groupLabels = [...new Set(g.members.map(i => ds.classes[labels[i]]))];
      return {
        files: g.members.map(i => files[i]),
        similarity: g.similarity,
        conflicting: groupLabels.length > 1,
        exact: g.members.every(i => hashes[i] === hashes[g.members[0]]),
        labels: groupLabels,
      };
    })
    .filter(d => !hidden.has(decisionKey('duplicate', d.files)))
    .sort(
      (a, b) =>
        Number(b.conflicting) - Number(a.conflicting) ||
        b.similarity - a.similarity ||
        (a.files[0] < b.files[0] ? -1 : 1),
    );
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => nb.outlierScore[b] - nb.outlierScore[a] || a - b);
  const outliers = order
    .slice(0, outlierCount(nb.outlierScore, opts.maxOutliers))
    .map(i => ({ file: files[i], score: nb.outlierScore[i] }))
    .filter(o => !hidden.has(decisionKey('outlier', [o.file])));

  const report: AuditReport = {
    version: AUDIT_VERSION,
    dataset: root,
    model: engine.info().name,
    images: n,
    classes: ds.classes,
    folds,
    seed,
    similarityThreshold: threshold,
    labelIssues,
    duplicates,
    outliers,
    skipped: [...ds.skipped, ...built.skipped],
    decisions,
    timings: {
      features: featureSeconds,
      crossValidation: foldSeconds,
      neighbours: neighbourSeconds,
      computed: built.computed,
    },
    file,
  };
  opts.signal?.throwIfAborted();
  await writeFileAtomic(file, JSON.stringify(report, null, 1) + '\n');
  return report;
}

/**
 * How many images the outlier list shows: those above the upper Tukey fence (Q3 + 3·IQR) of the
 * scores — "far out" — capped at maxOutliers (default 1% of the dataset, at least 10).
 */
function outlierCount(scores: Float64Array, max?: number): number {
  const sorted = Float64Array.from(scores).sort();
  const q = (f: number) => sorted[Math.min(sorted.length - 1, Math.floor(f * (sorted.length - 1)))];
  const fence = q(0.75) + 3 * (q(0.75) - q(0.25));
  const above = sorted.filter(s => s > fence).length;
  return Math.min(above, max ?? Math.max(10, Math.ceil(sorted.length / 100)));
}
