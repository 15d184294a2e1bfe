/**
 * Attention rollout (Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers") and raw
 * per-layer/head attention maps, for one image.
 *
 * Rollout is R = A_L · … · A_1 with A_l = rownorm((fuse_heads(attn_l) + I) / 2) and we only need R's
 * [CLS] row. So instead of multiplying T×T matrices (T = 197 for ViT-B/16: 12 × 7.6 M mult-adds) we
 * carry a row vector from the last layer down: v ← v · A_l, and we never build A_l either:
 *   A_l[i][j] = (F[i][j] + δij) / (S_i + 1)      (S_i = row sum of the fused, discarded F)
 *   (v · A_l)[j] = Σ_i w_i F[i][j] + w_j          with w_i = v_i / (S_i + 1)
 * so each row of F is read twice while it is in cache (its sum, then its share of the product), and
 * discarded entries are skipped by comparing with the threshold rather than written as zeros.
 */

import type { HeadFusion } from '../../common/options';

export type { HeadFusion } from '../../common/options';

/**
 * One image's attention probabilities for one layer: heads × tokens × tokens, row-major.
 * `heads` is 1 when the graph already fused the heads (see onnxBuilder's attention_{mean,max,min}).
 */
export interface LayerAttention {
  data: Float32Array;
  /** Offset of this image's [H, T, T] block inside `data` (batched outputs are shared, not copied). */
  offset: number;
  heads: number;
  tokens: number;
}

export interface TokenLayout {
  /** Patch grid [rows, cols]. */
  grid: [number, number];
  /** Tokens before the patches ([CLS], and a distillation token in DeiT-style models). */
  prefixTokens: number;
}

export interface AttentionMap {
  grid: [number, number];
  /** Row-major over the patch grid, divided by its maximum (so the largest value is 1). */
  values: Float32Array;
}

/** Fuse heads into a T×T matrix (written into `out`). */
export function fuseHeads(
  layer: LayerAttention,
  fusion: HeadFusion,
  out = new Float32Array(layer.tokens * layer.tokens),
): Float32Array {
  const { data, offset, heads, tokens } = layer;
  const n = tokens * tokens;
  out.set(data.subarray(offset, offset + n));
  if (heads === 1) return out; // already fused in the graph
  for (let h = 1; h < heads; h++) {
    const base = offset + h * n;
    if (fusion === 'mean') for (let i = 0; i < n; i++) out[i] += data[base + i];
    else if (fusion === 'max') for (let i = 0; i < n; i++) out[i] = Math.max(out[i], data[base + i]);
    else for (let i = 0; i < n; i++) out[i] = Math.min(out[i], data[base + i]);
  }
  if (fusion === 'mean') for (let i = 0; i < n; i++) out[i] /= heads;
  return out;
}

/**
 * Zero the floor(n · ratio) smallest entries of `m`, except entry 0 ([CLS]→[CLS]), which is kept
 * even when it is among them (so one fewer is zeroed, as in the reference implementation).
 */
export function discardLowest(m: Float32Array, ratio: number): void {
  const k = Math.floor(m.length * ratio);
  if (k <= 0) return;
  const { value: threshold, below } = selectKth(m, k - 1);
  // Entries equal to the threshold fill the remaining places in index order (topk's tie order is unspecified).
  let tiesLeft = k - below;
  for (let i = 0; i < m.length; i++) {
    const v = m[i];
    if (v < threshold || (v === threshold && tiesLeft-- > 0)) {
      if (i !== 0) m[i] = 0;
    }
  }
}

const hiHistogram = new Uint32Array(1 << 16);
const loHistogram = new Uint32Array(1 << 16);
const oneFloat = new Float32Array(1);
const oneFloatBits = new Uint32Array(oneFloat.buffer);

/**
 * The value that would sit at index `k` if `m` were sorted, with how many entries are below it and
 * equal to it. Attention probabilities are ≥ 0, and non-negative floats sort like their bit
 * patterns, so a two-pass radix select (high 16 bits, then low 16 bits within the chosen bucket)
 * finds it exactly in two linear passes — several times faster than quickselect, and immune to the
 * near-uniform attention that makes comparison-based selection slow.
 */
export function selectKth(m: Float32Array, k: number): { value: number; below: number; equal: number } {
  if (!(k >= 0 && k < m.length)) throw new RangeError(`k = ${k} is outside 0…${m.length - 1}`);
  const bits = new Uint32Array(m.buffer, m.byteOffset, m.length);
  hiHistogram.fill(0);
  let anyBits = 0;
  for (let i = 0; i < bits.length; i++) {
    const b = bits[i];
    anyBits |= b;
    hiHistogram[b >>> 16]++;
  }
  // A sign bit (a negative value, or -0) breaks the bits-order = value-order rule.
  if (anyBits < 0) {
    const sorted = Float32Array.from(m).sort();
    const value = sorted[k];
    const below = sorted.findIndex(x => x >= value);
    let equal = 0;
    while (below + equal < sorted.length && sorted[below + equal] === value) equal++;
    return { value, below, equal };
  }
  let hi = 0;
  let rank = k;
  let below = 0;
  while (rank >= hiHistogram[hi]) {
    rank -= hiHistogram[hi];
    below += hiHistogram[hi++];
  }
  loHistogram.fill(0);
  for (let i = 0; i < bits.length; i++) if (bits[i] >>> 16 === hi) loHistogram[bits[i] & 0xffff]++;
  let lo = 0;
  while (rank >= loHistogram[lo]) {
    rank -= loHistogram[lo];
    below += loHistogram[lo++];
  }
  oneFloatBits[0] = ((hi << 16) | lo) >>> 0;
  return { value: oneFloat[0], below, equal: loHistogram[lo] };
}

export interface RolloutOptions {
  headFusion: HeadFusion;
  discardRatio: number;
}

/** Attention rollout for one image. `layers` in model order (first block first). */
export function attentionRollout(layers: LayerAttention[], layout: TokenLayout, opts: RolloutOptions): AttentionMap {
  if (layers.length === 0) throw new Error('rollout needs at least one attention layer');
  if (!(opts.discardRatio >= 0 && opts.discardRatio < 1))
    throw new Error(`discard ratio must be in [0, 1), got ${opts.discardRatio}`);
  const T = layers[0].tokens;
  const n = T * T;
  const scratch = new Float32Array(n);
  const k = Math.floor(n * opts.discardRatio);
  let v = new Float64Array(T);
  v[0] = 1; // e_[CLS]
  for (let l = layers.length - 1; l >= 0; l--) {
    const layer = layers[l];
    if (layer.tokens !== T) throw new Error(`layer ${l} has ${layer.tokens} tokens, layer 0 has ${T}`);
    // Maps fused in the graph are read where they lie; per-head maps are fused into scratch first.
    let F =
      layer.heads === 1
        ? layer.data.subarray(layer.offset, layer.offset + n)
        : fuseHeads(layer, opts.headFusion, scratch);
    // Discarding = keeping only entries above the k-th smallest, plus entry 0. When ties at the
    // threshold would be split (only some of them discarded), fall back to zeroing explicitly.
    let threshold = -Infinity;
    if (k > 0) {
      const sel = selectKth(F, k - 1);
      if (sel.below + sel.equal === k) threshold = sel.value;
      else {
        if (F !== scratch) F = scratch.set(F) ?? scratch;
        discardLowest(F, opts.discardRatio);
      }
    }
    const f00 = F[0]; // [CLS]→[CLS] is never discarded
    const restore00 = f00 > threshold ? 0 : f00;
    const next = new Float64Array(T);
    for (let i = 0; i < T; i++) {
      const vi = v[i];
      if (vi === 0) continue; // the first layer processed only needs the [CLS] row
      const row = i * T;
      let sum = i === 0 ? restore00 : 0;
      for (let j = 0; j < T; j++) {
        const x = F[row + j];
        if (x > threshold) sum += x;
      }
      const wi = vi / (sum + 1);
      for (let j = 0; j < T; j++) {
        const x = F[row + j];
        if (x > threshold) next[j] += wi * x;
      }
      if (i === 0) next[0] += wi * restore00;
      next[i] += wi; // the identity's share
    }
    v = next;
  }
  return patchMap(v, layout, T);
}

/**
 * Raw attention of one layer: the [CLS] token's attention to each patch, for one head or with the
 * heads fused.
 */
export function rawAttention(layer: LayerAttention, layout: TokenLayout, head: number | HeadFusion): AttentionMap {
  const T = layer.tokens;
  if (typeof head === 'number') {
    if (!Number.isInteger(head) || head < 0 || head >= layer.heads) {
      throw new Error(`head ${head} does not exist: this layer has heads 0–${layer.heads - 1}`);
    }
    const start = layer.offset + head * T * T;
    return patchMap(layer.data.subarray(start, start + T), layout, T);
  }
  const row = new Float32Array(T);
  // Fuse only the [CLS] row: each head's row 0 lies at offset + h·T².
  for (let h = 0; h < layer.heads; h++) {
    const start = layer.offset + h * T * T;
    for (let j = 0; j < T; j++) {
      const x = layer.data[start + j];
      if (h === 0) row[j] = x;
      else if (head === 'mean') row[j] += x;
      else if (head === 'max') row[j] = Math.max(row[j], x);
      else row[j] = Math.min(row[j], x);
    }
  }
  if (head === 'mean') for (let j = 0; j < T; j++) row[j] /= layer.heads;
  return patchMap(row, layout, T);
}

/** The [CLS] row's patch entries on the grid, divided by their max (left as is when the max is not positive). */
export function patchMap(clsRow: ArrayLike<number>, layout: TokenLayout, T: number): AttentionMap {
  const [rows, cols] = layout.grid;
  if (layout.prefixTokens + rows * cols !== T) {
    throw new Error(
      `attention has ${T} tokens but a ${rows}×${cols} grid with ${layout.prefixTokens} prefix token(s) needs ${layout.prefixTokens + rows * cols}`,
    );
  }
  const values = new Float32Array(rows * cols);
  let max = 0;
  for (let i = 0; i < values.length; i++) {
    values[i] = clsRow[layout.prefixTokens + i];
    if (values[i] > max) max = values[i];
  }
  if (max > 0) for (let i = 0; i < values.length; i++) values[i] /= max;
  return { grid: [rows, cols], values };
}
