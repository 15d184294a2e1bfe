/**
 * One pass over all pairs of L2-normalised vectors gives both near-duplicates (cosine similarity at
 * or above a threshold, grouped with union-find) and outlier scores: the mean cosine distance to the
 * k nearest other images (cleanlab's OutOfDistribution default: k = 10, cosine metric). The n²/2
 * dot products (10,000 images × 256 values: ~13 G multiply-adds) run as blocks of one Gemm on ONNX
 * Runtime, already loaded for the model; plain JS loops would take tens of seconds.
 */
import * as ort from 'onnxruntime-node';
import { onnx } from 'onnx-proto';

export function normalisedRows(X: Float32Array, n: number, dim: number, centre = false): Float32Array {
  const out = new Float32Array(n * dim);
  for (let i = 0; i < n; i++) {
    let mean = 0;
    if (centre) for (let d = 0; d < dim; d++) mean += X[i * dim + d] / dim;
    let s = 0;
    for (let d = 0; d < dim; d++) s += (X[i * dim + d] - mean) ** 2;
    const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
    for (let d = 0; d < dim; d++) out[i * dim + d] = (X[i * dim + d] - mean) * inv;
  }
  return out;
}

/** A · Bᵀ for A [m, d] and B [n, d]. */
function gemmModel(): Uint8Array {
  const FLOAT = onnx.TensorProto.DataType.FLOAT;
  const info = (name: string, dims: string[]): onnx.IValueInfoProto => ({
    name,
    type: { tensorType: { elemType: FLOAT, shape: { dim: dims.map(d => ({ dimParam: d })) } } },
  });
  return onnx.ModelProto.encode({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    producerName: 'vit-lens',
    graph: {
      name: 'similarity',
      input: [info('a', ['m', 'd']), info('b', ['n', 'd'])],
      output: [info('s', ['m', 'n'])],
      node: [
        {
          opType: 'Gemm',
          input: ['a', 'b'],
          output: ['s'],
          attribute: [{ name: 'transB', type: onnx.AttributeProto.AttributeType.INT, i: 1 }],
        },
      ],
    },
  }).finish();
}

export interface NeighbourResult {
  /** Pairs with similarity ≥ threshold: [i, j, similarity], i < j. */
  pairs: [number, number, number][];
  /** Mean cosine distance (1 − similarity) to the k nearest other images; higher is more unusual. */
  outlierScore: Float64Array;
}

const BLOCK = 512;

/** `U`: n rows of `dim` values, L2-normalised (normalisedRows). */
export async function neighbours(
  U: Float32Array,
  n: number,
  dim: number,
  opts: { threshold: number; k: number; signal?: AbortSignal },
): Promise<NeighbourResult> {
  const k = Math.max(1, Math.min(opts.k, n - 1));
  // Each row's k largest similarities so far, unsorted, with the position of the smallest.
  const top = new Float64Array(n * k).fill(-Infinity);
  const minAt = new Int32Array(n);
  // The smallest of each row's k, so that the n²/2 pairs' common case is one comparison, not a call.
  const floor = new Float64Array(n).fill(-Infinity);
  const push = (i: number, s: number) => {
    const base = i * k;
    top[base + minAt[i]] = s;
    let m = 0;
    for (let t = 1; t < k; t++) if (top[base + t] < top[base + m]) m = t;
    minAt[i] = m;
    floor[i] = top[base + m];
  };
  const pairs: [number, number, number][] = [];
  const session = await ort.InferenceSession.create(gemmModel(), {
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    interOpNumThreads: 1,
  });
  try {
    for (let start = 0; start < n; start += BLOCK) {
      opts.signal?.throwIfAborted();
      const m = Math.min(BLOCK, n - start);
      // This block against itself and every later row: the upper triangle only.
      const rest = n - start;
      const a = new ort.Tensor('float32', U.subarray(start * dim, (start + m) * dim), [m, dim]);
      const b = new ort.Tensor('float32', U.subarray(start * dim, n * dim), [rest, dim]);
      const s = (await session.run({ a, b })).s.data as Float32Array;
      for (let r = 0; r < m; r++) {
        const i = start + r;
        for (let c = r + 1; c < rest; c++) {
          const sim = s[r * rest + c];
          const j = start + c;
          if (sim >= opts.threshold) pairs.push([i, j, sim]);
          if (sim > floor[i]) push(i, sim);
          if (sim > floor[j]) push(j, sim);
        }
      }
    }
  } finally {
    await session.release();
  }
  const outlierScore = new Float64Array(n);
  for (let i = 0; i < n && n > 1; i++) {
    let sum = 0;
    for (let t = 0; t < k; t++) sum += 1 - top[i * k + t];
    outlierScore[i] = sum / k;
  }
  return { pairs, outlierScore };
}

/** Connected components of `pairs` (only images in some pair); each group's members ascending, with the weakest link that joined it. */
export function groupPairs(n: number, pairs: [number, number, number][]): { members: number[]; similarity: number }[] {
  const parent = Int32Array.from({ length: n }, (_, i) => i);
  const find = (x: number): number => {
    while (parent[x] !== x) x = parent[x] = parent[parent[x]];
    return x;
  };
  // Strongest links first, so a group's recorded similarity is the weakest link of its maximum spanning tree.
  const sorted = pairs.slice().sort((p, q) => q[2] - p[2] || p[0] - q[0] || p[1] - q[1]);
  const weakest = new Map<number, number>();
  for (const [i, j, s] of sorted) {
    const [a, b] = [find(i), find(j)];
    if (a === b) continue;
    const w = Math.min(s, weakest.get(a) ?? Infinity, weakest.get(b) ?? Infinity);
    parent[b] = a;
    weakest.delete(b);
    weakest.set(a, w);
  }
  const groups = new Map<number, Set<number>>();
  for (const [i, j] of pairs) {
    const r = find(i);
    if (!groups.has(r)) groups.set(r, new Set());
    groups.get(r)!.add(i).add(j);
  }
  return [...groups].map(([r, members]) => ({
    members: [...members].sort((a, b) => a - b),
    similarity: Math.min(1, weakest.get(r) ?? 1),
  }));
}
