/**
 * Attention rollout (Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers") and raw
 * per-layer/head attention maps, for one image.
 *
 * Rollout is R = A_L · … · A_1 with A_l = rownorm((fuse_heads(attn_l) + I) / 2) and we only need R's
 * [CLS] row. So instead of multiplying T×T matrices (T = 197 for ViT-B/16: 12 × 7.6 M mult-adds) we
 * carry a row vector from the last layer down: v ← v · A_l, and we never build A_l either:
 *   A_l[i][j] = (F[i][j] + δij) / (S_i + 1)      (S_i = row sum of the fused, discarded F)
 *   (v · A_l)[j] = Σ_i w_i F[i][j] + w_j          with w_i = v_i / (S_i + 1)
 * That costs one pass over F per layer, which is all the head fusion already costs.
 */

export type HeadFusion = 'mean' | 'max' | 'min';

/** One image's attention probabilities for one layer: heads × tokens × tokens, row-major. */
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
export function fuseHeads(layer: LayerAttention, fusion: HeadFusion, out = new Float32Array(layer.tokens * layer.tokens)): Float32Array {
  const { data, offset, heads, tokens } = layer;
  const n = tokens * tokens;
  out.set(data.subarray(offset, offset + n));
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
export function discardLowest(m: Float32Array, ratio: number, scratch = new Float32Array(m.length)): void {
  const k = Math.floor(m.length * ratio);
  if (k <= 0) return;
  scratch.set(m);
  const threshold = kthSmallest(scratch, k - 1);
  let below = 0;
  for (let i = 0; i < m.length; i++) if (m[i] < threshold) below++;
  // Entries equal to the threshold fill the remaining places in index order (topk's tie order is unspecified).
  let tiesLeft = k - below;
  for (let i = 0; i < m.length; i++) {
    const v = m[i];
    if (v < threshold || (v === threshold && tiesLeft-- > 0)) {
      if (i !== 0) m[i] = 0;
    }
  }
}

/** Hoare quickselect: the value that would sit at index `k` if `a` were sorted. Reorders `a`. */
function kthSmallest(a: Float32Array, k: number): number {
  let lo = 0;
  let hi = a.length - 1;
  while (lo < hi) {
    const pivot = a[(lo + hi) >>> 1];
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i] < pivot) i++;
      while (a[j] > pivot) j--;
      if (i <= j) {
        const t = a[i];
        a[i] = a[j];
        a[j] = t;
        i++;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return a[k];
  }
  return a[k];
}

export interface RolloutOptions {
  headFusion: HeadFusion;
  discardRatio: number;
}

/** Attention rollout for one image. `layers` in model order (first block first). */
export function attentionRollout(layers: LayerAttention[], layout: TokenLayout, opts: RolloutOptions): AttentionMap {
  if (layers.length === 0) throw new Error('rollout needs at least one attention layer');
  if (!(opts.discardRatio >= 0 && opts.discardRatio < 1)) throw new Error(`discard ratio must be in [0, 1), got ${opts.discardRatio}`);
  const T = layers[0].tokens;
  const fused = new Float32Array(T * T);
  const scratch = new Float32Array(T * T);
  let v: Float64Array = new Float64Array(T);
  v[0] = 1; // e_[CLS]
  const w = new Float64Array(T);
  for (let l = layers.length - 1; l >= 0; l--) {
    if (layers[l].tokens !== T) throw new Error(`layer ${l} has ${layers[l].tokens} tokens, layer 0 has ${T}`);
    fuseHeads(layers[l], opts.headFusion, fused);
    discardLowest(fused, opts.discardRatio, scratch);
    for (let i = 0; i < T; i++) {
      let s = 0;
      const row = i * T;
      for (let j = 0; j < T; j++) s += fused[row + j];
      w[i] = v[i] / (s + 1);
    }
    const next = new Float64Array(T);
    for (let i = 0; i < T; i++) {
      const wi = w[i];
      if (wi === 0) continue;
      const row = i * T;
      for (let j = 0; j < T; j++) next[j] += wi * fused[row + j];
    }
    for (let j = 0; j < T; j++) next[j] += w[j];
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

function patchMap(clsRow: ArrayLike<number>, layout: TokenLayout, T: number): AttentionMap {
  const [rows, cols] = layout.grid;
  if (layout.prefixTokens + rows * cols !== T) {
    throw new Error(`attention has ${T} tokens but a ${rows}×${cols} grid with ${layout.prefixTokens} prefix token(s) needs ${layout.prefixTokens + rows * cols}`);
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
