/**
 * The fast rollout (radix-selected threshold, [CLS] row carried as a vector, discard folded into the
 * passes) against the textbook definition written out with full T×T matrices. Parity with PyTorch is
 * in parity.test.ts; this covers the cases the random-weight fixtures cannot: ties at the discard
 * threshold, zeros, negative inputs to the selection, and non-square grids with extra prefix tokens.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  attentionRollout,
  discardLowest,
  fuseHeads,
  HeadFusion,
  LayerAttention,
  rawAttention,
  selectKth,
} from '../../server/explain/rollout';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

/** Random softmax rows; `levels` > 0 quantises logits so many probabilities tie exactly. */
function randomAttention(heads: number, tokens: number, seed: number, levels = 0): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(heads * tokens * tokens);
  for (let row = 0; row < heads * tokens; row++) {
    let sum = 0;
    for (let j = 0; j < tokens; j++) {
      let logit = r() * 4;
      if (levels) logit = Math.floor(logit * levels) / levels;
      sum += out[row * tokens + j] = Math.exp(logit);
    }
    for (let j = 0; j < tokens; j++) out[row * tokens + j] /= sum;
  }
  return out;
}

/** Rollout exactly as specified, with explicit matrices (result = A_l · result). */
function textbookRollout(
  layers: Float32Array[],
  heads: number,
  T: number,
  fusion: HeadFusion,
  discard: number,
  prefix: number,
): number[] {
  let result: number[][] = Array.from({ length: T }, (_, i) => Array.from({ length: T }, (_, j) => (i === j ? 1 : 0)));
  for (const data of layers) {
    const F = Array.from(fuseHeads({ data, offset: 0, heads, tokens: T }, fusion));
    const k = Math.floor(T * T * discard);
    const order = F.map((v, i) => [v, i]).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    for (const [, i] of order.slice(0, k)) if (i !== 0) F[i] = 0;
    const A = Array.from({ length: T }, (_, i) => {
      const row = Array.from({ length: T }, (_, j) => (F[i * T + j] + (i === j ? 1 : 0)) / 2);
      const s = row.reduce((a, b) => a + b, 0);
      return row.map(x => x / s);
    });
    result = A.map(row => Array.from({ length: T }, (_, j) => row.reduce((acc, a, m) => acc + a * result[m][j], 0)));
  }
  const cls = result[0].slice(prefix);
  const max = Math.max(...cls);
  return cls.map(x => x / max);
}

test('selectKth finds the k-th smallest, with the counts below and equal to it', () => {
  const r = rng(1);
  const cases: Float32Array[] = [
    Float32Array.from({ length: 1000 }, () => r()),
    Float32Array.from({ length: 1000 }, () => Math.floor(r() * 7) / 7), // heavy ties, exact zeros
    Float32Array.from({ length: 500 }, () => 1 / 197 + r() * 1e-9), // near-uniform attention
    Float32Array.from({ length: 300 }, () => r() - 0.5), // negatives take the sorting path
  ];
  for (const m of cases) {
    const sorted = Float32Array.from(m).sort();
    for (const k of [0, 1, 17, Math.floor(m.length / 2), m.length - 1]) {
      const got = selectKth(m, k);
      assert.equal(got.value, sorted[k]);
      assert.equal(got.below, sorted.filter(x => x < got.value).length);
      assert.equal(got.equal, sorted.filter(x => x === got.value).length);
    }
  }
  assert.throws(() => selectKth(new Float32Array(3), 3), RangeError);
});

test('discardLowest zeroes exactly floor(n·ratio) entries, never entry 0', () => {
  const m = Float32Array.from([0.01, 0.5, 0.2, 0.3, 0.02, 0.9, 0.4, 0.6, 0.05, 0.7]);
  discardLowest(m, 0.3); // the 3 smallest: 0.01 (index 0, kept), 0.02, 0.05
  assert.deepEqual(Array.from(m), Array.from(Float32Array.from([0.01, 0.5, 0.2, 0.3, 0, 0.9, 0.4, 0.6, 0, 0.7])));
  const ties = Float32Array.from([0.3, 0.1, 0.1, 0.1, 0.1, 0.5]);
  discardLowest(ties, 0.5); // 3 of the four 0.1s go, in index order
  assert.deepEqual(Array.from(ties), Array.from(Float32Array.from([0.3, 0, 0, 0, 0.1, 0.5])));
});

for (const [name, levels] of [
  ['distinct values', 0],
  ['many ties at the threshold', 3],
] as const) {
  test(`fast rollout equals the textbook definition (${name})`, () => {
    const H = 3;
    const prefix = 2; // e.g. DeiT's [CLS] + distillation token
    const grid: [number, number] = [3, 4];
    const T = prefix + grid[0] * grid[1];
    const layers = [0, 1, 2].map(l => randomAttention(H, T, 100 + l, levels));
    for (const fusion of ['mean', 'max', 'min'] as HeadFusion[]) {
      for (const discard of [0, 0.5, 0.9]) {
        const want = textbookRollout(layers, H, T, fusion, discard, prefix);
        const perHead = attentionRollout(
          layers.map(data => ({ data, offset: 0, heads: H, tokens: T })),
          { grid, prefixTokens: prefix },
          { headFusion: fusion, discardRatio: discard },
        );
        // Maps fused in the graph (heads = 1) take the in-place path.
        const prefused = attentionRollout(
          layers.map(data => ({
            data: fuseHeads({ data, offset: 0, heads: H, tokens: T }, fusion),
            offset: 0,
            heads: 1,
            tokens: T,
          })),
          { grid, prefixTokens: prefix },
          { headFusion: fusion, discardRatio: discard },
        );
        assert.deepEqual(perHead.grid, grid);
        for (const got of [perHead.values, prefused.values]) {
          const d = Math.max(...want.map((w, i) => Math.abs(w - got[i])));
          assert.ok(d < 1e-6, `${fusion}/${discard}: differs by ${d}`);
        }
      }
    }
  });
}

test('a batched output is read at the image offset, untouched', () => {
  const H = 2;
  const T = 5;
  const batch = new Float32Array(2 * H * T * T);
  batch.set(randomAttention(H, T, 7), 0);
  batch.set(randomAttention(H, T, 8), H * T * T);
  const copy = batch.slice();
  const second: LayerAttention = { data: batch, offset: H * T * T, heads: H, tokens: T };
  const alone: LayerAttention = { data: batch.slice(H * T * T), offset: 0, heads: H, tokens: T };
  const layout = { grid: [2, 2] as [number, number], prefixTokens: 1 };
  const opts = { headFusion: 'max' as const, discardRatio: 0.5 };
  assert.deepEqual(
    attentionRollout([second, second], layout, opts).values,
    attentionRollout([alone, alone], layout, opts).values,
  );
  assert.deepEqual(batch, copy, 'rollout must not modify the attention it reads');
});

test('raw attention is the [CLS] row of one head, or of the fused heads', () => {
  const H = 2;
  const T = 5;
  const data = randomAttention(H, T, 9);
  const layer: LayerAttention = { data, offset: 0, heads: H, tokens: T };
  const layout = { grid: [2, 2] as [number, number], prefixTokens: 1 };
  const head1 = rawAttention(layer, layout, 1);
  const row = Array.from(data.subarray(T * T + 1, T * T + T));
  const max = Math.max(...row);
  row.forEach((x, i) => assert.ok(Math.abs(head1.values[i] - x / max) < 1e-7));
  const mean = rawAttention(layer, layout, 'mean');
  const fused = fuseHeads(layer, 'mean');
  const fusedRow = Array.from(fused.subarray(1, T));
  fusedRow.forEach((x, i) => assert.ok(Math.abs(mean.values[i] - x / Math.max(...fusedRow)) < 1e-6));
  assert.throws(() => rawAttention(layer, layout, 2), /head 2 does not exist/);
  assert.throws(
    () => attentionRollout([layer], { grid: [3, 3], prefixTokens: 1 }, { headFusion: 'mean', discardRatio: 0 }),
    /5 tokens/,
  );
});
