import { exp4, hsum, loadPart, madd, storePart } from './simd';

// Multi-head self-attention, forward and backward, one call per layer for the whole batch.
//
// Layout (row-major float32, pointers are byte offsets into the shared heap):
//   qkv   [B·T, 3D]   q in columns 0..D-1, k in D..2D-1, v in 2D..3D-1; head h uses columns
//                     h·dh..(h+1)·dh-1 of each (Hugging Face's view(n, t, H, dh) order)
//   ctx   [B·T, D]    head h's output in columns h·dh.. (heads already merged back)
//   probs [B, H, T, T] softmax(scale·q·kᵀ), saved for the backward pass
// Heads are read and written in place through row strides: no transposes of the activations.
//
// Per (batch, head) the kernel packs Kᵀ (or Vᵀ in the backward pass) into scratch, T columns padded
// to T4 = ⌈T/4⌉·4 with zeros, so that score rows are computed four keys per vector with the query's
// values broadcast (no horizontal sums), and keeps the T × T4 score rows in scratch too: ~2.6 KB for
// the bench model (T = 17, dh = 16), ~209 KB for ViT-B/16 (T = 197, dh = 64), so a head's work stays
// in L1 or L2. The loop runs batch-major, so one sequence's qkv rows are reused by all its heads.
//
// Scratch needed by both passes: (dh·T4 + T·T4)·4 bytes (scratchBytes in server/train/fused/attention.ts).

/** Lanes 0..n-1 set (n < 4): masks the padding lanes of a row's last vector. */
// @ts-ignore: decorator
@inline function firstLanes(n: i32): v128 {
  return i32x4.lt_s(i32x4(0, 1, 2, 3), i32x4.splat(n));
}

/**
 * out[d, j] = X(j, d) for j < T, d < K: a head's keys (or values) transposed into K rows of T4 floats.
 * X(j, d) is at x + 4·(j·ldx + d). Columns T..T4-1 are not touched (zeroed once per call).
 * Four-by-four blocks go through registers (two rounds of shuffles); the edges are scalar.
 */
function packTransposed(T: i32, T4: i32, K: i32, x: usize, ldx: i32, out: usize): void {
  const ldx4 = <usize>ldx << 2;
  const row4 = <usize>T4 << 2;
  let j = 0;
  for (; j + 4 <= T; j += 4) {
    const x0 = x + <usize>j * ldx4;
    const o0 = out + (<usize>j << 2);
    let d = 0;
    for (; d + 4 <= K; d += 4) {
      const r0 = v128.load(x0 + (<usize>d << 2));
      const r1 = v128.load(x0 + ldx4 + (<usize>d << 2));
      const r2 = v128.load(x0 + 2 * ldx4 + (<usize>d << 2));
      const r3 = v128.load(x0 + 3 * ldx4 + (<usize>d << 2));
      const t0 = i32x4.shuffle(r0, r1, 0, 4, 1, 5); // x0d0 x1d0 x0d1 x1d1
      const t1 = i32x4.shuffle(r0, r1, 2, 6, 3, 7); // x0d2 x1d2 x0d3 x1d3
      const t2 = i32x4.shuffle(r2, r3, 0, 4, 1, 5);
      const t3 = i32x4.shuffle(r2, r3, 2, 6, 3, 7);
      const o = o0 + <usize>d * row4;
      v128.store(o, i32x4.shuffle(t0, t2, 0, 1, 4, 5));
      v128.store(o + row4, i32x4.shuffle(t0, t2, 2, 3, 6, 7));
      v128.store(o + 2 * row4, i32x4.shuffle(t1, t3, 0, 1, 4, 5));
      v128.store(o + 3 * row4, i32x4.shuffle(t1, t3, 2, 3, 6, 7));
    }
    for (; d < K; d++) {
      const o = o0 + <usize>d * row4;
      const s = x0 + (<usize>d << 2);
      store<f32>(o, load<f32>(s));
      store<f32>(o, load<f32>(s + ldx4), 4);
      store<f32>(o, load<f32>(s + 2 * ldx4), 8);
      store<f32>(o, load<f32>(s + 3 * ldx4), 12);
    }
  }
  for (; j < T; j++) {
    const s = x + <usize>j * ldx4;
    for (let d = 0; d < K; d++) store<f32>(out + <usize>d * row4 + (<usize>j << 2), load<f32>(s + (<usize>d << 2)));
  }
}

/** Zeroes columns T..T4-1 of a K × T4 packed block (the padding keys, whose scores are masked). */
function zeroPadding(T: i32, T4: i32, K: i32, out: usize): void {
  if (T == T4) return;
  const row4 = <usize>T4 << 2;
  for (let d = 0; d < K; d++) {
    for (let j = T; j < T4; j++) store<f32>(out + <usize>d * row4 + (<usize>j << 2), 0);
  }
}

/**
 * out[i, 0..T4) = Σ_d A(i, d) · Bt[d, 0..T4) for i < M: score rows, four keys per vector.
 * A(i, d) is at a + 4·(i·lda + d); Bt is K × T4 (packTransposed); out has rows of T4 floats.
 * Blocks of 4 rows × 8 keys keep eight sums in registers while A's values are broadcast.
 */
function mulPackedT(M: i32, T4: i32, K: i32, a: usize, lda: i32, bt: usize, out: usize): void {
  const lda4 = <usize>lda << 2;
  const row4 = <usize>T4 << 2;
  let i = 0;
  for (; i + 4 <= M; i += 4) {
    const a0 = a + <usize>i * lda4;
    const o0 = out + <usize>i * row4;
    let j = 0;
    for (; j + 8 <= T4; j += 8) {
      let c00 = f32x4.splat(0), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
      let ap = a0;
      let bp = bt + (<usize>j << 2);
      for (let d = 0; d < K; d++) {
        const b0 = v128.load(bp);
        const b1 = v128.load(bp, 16);
        let av = v128.load32_splat(ap);
        c00 = madd(av, b0, c00); c01 = madd(av, b1, c01);
        av = v128.load32_splat(ap + lda4);
        c10 = madd(av, b0, c10); c11 = madd(av, b1, c11);
        av = v128.load32_splat(ap + 2 * lda4);
        c20 = madd(av, b0, c20); c21 = madd(av, b1, c21);
        av = v128.load32_splat(ap + 3 * lda4);
        c30 = madd(av, b0, c30); c31 = madd(av, b1, c31);
        ap += 4;
        bp += row4;
      }
      const o = o0 + (<usize>j << 2);
      v128.store(o, c00); v128.store(o, c01, 16);
      v128.store(o + row4, c10); v128.store(o + row4, c11, 16);
      v128.store(o + 2 * row4, c20); v128.store(o + 2 * row4, c21, 16);
      v128.store(o + 3 * row4, c30); v128.store(o + 3 * row4, c31, 16);
    }
    if (j < T4) { // four keys left
      let c0 = f32x4.splat(0), c1 = c0, c2 = c0, c3 = c0;
      let ap = a0;
      let bp = bt + (<usize>j << 2);
      for (let d = 0; d < K; d++) {
        const b0 = v128.load(bp);
        c0 = madd(v128.load32_splat(ap), b0, c0);
        c1 = madd(v128.load32_splat(ap + lda4), b0, c1);
        c2 = madd(v128.load32_splat(ap + 2 * lda4), b0, c2);
        c3 = madd(v128.load32_splat(ap + 3 * lda4), b0, c3);
        ap += 4;
        bp += row4;
      }
      const o = o0 + (<usize>j << 2);
      v128.store(o, c0);
      v128.store(o + row4, c1);
      v128.store(o + 2 * row4, c2);
      v128.store(o + 3 * row4, c3);
    }
  }
  for (; i < M; i++) {
    const a0 = a + <usize>i * lda4;
    const o0 = out + <usize>i * row4;
    for (let j = 0; j < T4; j += 4) {
      let c0 = f32x4.splat(0);
      let ap = a0;
      let bp = bt + (<usize>j << 2);
      for (let d = 0; d < K; d++) {
        c0 = madd(v128.load32_splat(ap), v128.load(bp), c0);
        ap += 4;
        bp += row4;
      }
      v128.store(o0 + (<usize>j << 2), c0);
    }
  }
}

/**
 * out(r, 0..W) = Σ_k C(r, k) · X(k, 0..W) for r < R, k < K: a weighted sum of rows, SIMD over W.
 * C(r, k) is at c + 4·(r·crs + k·cks), so a row-major coefficient matrix can be read transposed in
 * place; X(k, w) at x + 4·(k·ldx + w); out(r, w) at out + 4·(r·ldo + w).
 * Columns go in chunks of 16 (2 rows × 4 vectors of sums in registers), then 4, then one at a time
 * (head sizes that are not a multiple of 4).
 */
function mulRows(R: i32, K: i32, W: i32, c: usize, crs: i32, cks: i32, x: usize, ldx: i32, out: usize, ldo: i32): void {
  const crs4 = <usize>crs << 2;
  const cks4 = <usize>cks << 2;
  const ldx4 = <usize>ldx << 2;
  const ldo4 = <usize>ldo << 2;
  let w = 0;
  for (; w + 16 <= W; w += 16) {
    const x0 = x + (<usize>w << 2);
    const o0 = out + (<usize>w << 2);
    let r = 0;
    for (; r + 2 <= R; r += 2) {
      let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
      let cp = c + <usize>r * crs4;
      let xp = x0;
      for (let k = 0; k < K; k++) {
        const x0v = v128.load(xp);
        const x1v = v128.load(xp, 16);
        const x2v = v128.load(xp, 32);
        const x3v = v128.load(xp, 48);
        const ca = v128.load32_splat(cp);
        const cb = v128.load32_splat(cp + crs4);
        a0 = madd(ca, x0v, a0); a1 = madd(ca, x1v, a1); a2 = madd(ca, x2v, a2); a3 = madd(ca, x3v, a3);
        b0 = madd(cb, x0v, b0); b1 = madd(cb, x1v, b1); b2 = madd(cb, x2v, b2); b3 = madd(cb, x3v, b3);
        cp += cks4;
        xp += ldx4;
      }
      const o = o0 + <usize>r * ldo4;
      v128.store(o, a0); v128.store(o, a1, 16); v128.store(o, a2, 32); v128.store(o, a3, 48);
      v128.store(o + ldo4, b0); v128.store(o + ldo4, b1, 16); v128.store(o + ldo4, b2, 32); v128.store(o + ldo4, b3, 48);
    }
    if (r < R) {
      let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
      let cp = c + <usize>r * crs4;
      let xp = x0;
      for (let k = 0; k < K; k++) {
        const ca = v128.load32_splat(cp);
        a0 = madd(ca, v128.load(xp), a0);
        a1 = madd(ca, v128.load(xp, 16), a1);
        a2 = madd(ca, v128.load(xp, 32), a2);
        a3 = madd(ca, v128.load(xp, 48), a3);
        cp += cks4;
        xp += ldx4;
      }
      const o = o0 + <usize>r * ldo4;
      v128.store(o, a0); v128.store(o, a1, 16); v128.store(o, a2, 32); v128.store(o, a3, 48);
    }
  }
  for (; w + 4 <= W; w += 4) {
    const x0 = x + (<usize>w << 2);
    const o0 = out + (<usize>w << 2);
    let r = 0;
    for (; r + 4 <= R; r += 4) {
      let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
      let cp = c + <usize>r * crs4;
      let xp = x0;
      for (let k = 0; k < K; k++) {
        const xv = v128.load(xp);
        a0 = madd(v128.load32_splat(cp), xv, a0);
        a1 = madd(v128.load32_splat(cp + crs4), xv, a1);
        a2 = madd(v128.load32_splat(cp + 2 * crs4), xv, a2);
        a3 = madd(v128.load32_splat(cp + 3 * crs4), xv, a3);
        cp += cks4;
        xp += ldx4;
      }
      const o = o0 + <usize>r * ldo4;
      v128.store(o, a0);
      v128.store(o + ldo4, a1);
      v128.store(o + 2 * ldo4, a2);
      v128.store(o + 3 * ldo4, a3);
    }
    for (; r < R; r++) {
      let a0 = f32x4.splat(0);
      let cp = c + <usize>r * crs4;
      let xp = x0;
      for (let k = 0; k < K; k++) {
        a0 = madd(v128.load32_splat(cp), v128.load(xp), a0);
        cp += cks4;
        xp += ldx4;
      }
      v128.store(o0 + <usize>r * ldo4, a0);
    }
  }
  for (; w < W; w++) {
    const x0 = x + (<usize>w << 2);
    const o0 = out + (<usize>w << 2);
    for (let r = 0; r < R; r++) {
      let acc: f32 = 0;
      let cp = c + <usize>r * crs4;
      let xp = x0;
      for (let k = 0; k < K; k++) {
        acc += load<f32>(cp) * load<f32>(xp);
        cp += cks4;
        xp += ldx4;
      }
      store<f32>(o0 + <usize>r * ldo4, acc);
    }
  }
}

/**
 * One row of probabilities: p[j] = e^(scale·s[j] − m) / Σ e^(…), m = max_j scale·s[j] (so no
 * exponent overflows), for j < T. s is a padded score row (T4 floats, left holding the
 * exponentials); p is the row of probs (exactly T floats are written).
 */
function softmaxRow(s: usize, p: usize, T: i32, scale: f32): void {
  // pmax is one instruction; NaN scores are not expected (they would give NaN or a wrong max).
  let mv = f32x4.splat(f32.NEGATIVE_INFINITY);
  let j = 0;
  for (; j + 4 <= T; j += 4) mv = f32x4.pmax(mv, v128.load(s + (<usize>j << 2)));
  if (j < T) mv = f32x4.pmax(mv, v128.bitselect(v128.load(s + (<usize>j << 2)), mv, firstLanes(T - j)));
  mv = f32x4.pmax(mv, i32x4.shuffle(mv, mv, 2, 3, 0, 1));
  mv = f32x4.pmax(mv, i32x4.shuffle(mv, mv, 1, 0, 3, 2));
  const sv = f32x4.splat(scale);
  const shift = f32x4.neg(f32x4.mul(mv, sv)); // scale > 0, so scale·max(s) = max(scale·s)
  let sum = f32x4.splat(0);
  j = 0;
  for (; j + 4 <= T; j += 4) {
    const e = exp4(madd(v128.load(s + (<usize>j << 2)), sv, shift));
    v128.store(s + (<usize>j << 2), e);
    sum = f32x4.add(sum, e);
  }
  if (j < T) {
    const e = v128.and(exp4(madd(v128.load(s + (<usize>j << 2)), sv, shift)), firstLanes(T - j));
    v128.store(s + (<usize>j << 2), e);
    sum = f32x4.add(sum, e);
  }
  const inv = f32x4.splat(<f32>1 / hsum(sum));
  j = 0;
  for (; j + 4 <= T; j += 4) v128.store(p + (<usize>j << 2), f32x4.mul(v128.load(s + (<usize>j << 2)), inv));
  if (j < T) storePart(p + (<usize>j << 2), f32x4.mul(v128.load(s + (<usize>j << 2)), inv), T - j);
}

/**
 * One row of the scores' gradient, in place over dP: dS[j] = scale · P[j]·(dP[j] − Σ_k dP[k]·P[k])
 * (the softmax Jacobian, with the score scale folded in for dQ and dK). dp is a padded row (T4
 * floats, zero past T); p is the row of probs (T floats).
 */
function softmaxGradRow(dp: usize, p: usize, T: i32, scale: f32): void {
  let dot = f32x4.splat(0);
  let j = 0;
  for (; j + 4 <= T; j += 4) dot = madd(v128.load(dp + (<usize>j << 2)), v128.load(p + (<usize>j << 2)), dot);
  if (j < T) dot = madd(v128.load(dp + (<usize>j << 2)), loadPart(p + (<usize>j << 2), T - j), dot);
  const c = f32x4.splat(hsum(dot));
  const sv = f32x4.splat(scale);
  j = 0;
  for (; j + 4 <= T; j += 4) {
    const o = dp + (<usize>j << 2);
    v128.store(o, f32x4.mul(f32x4.mul(v128.load(p + (<usize>j << 2)), sv), f32x4.sub(v128.load(o), c)));
  }
  if (j < T) {
    const o = dp + (<usize>j << 2);
    v128.store(o, f32x4.mul(f32x4.mul(loadPart(p + (<usize>j << 2), T - j), sv), f32x4.sub(v128.load(o), c)));
  }
}

/**
 * ctx, probs ← attention(qkv) for B sequences of T tokens, H heads of dh: for each (b, h),
 * P = softmax(scale·Q·Kᵀ) (rows), ctx = P·V, scale = 1/√dh.
 */
export function attentionForward(B: i32, T: i32, H: i32, dh: i32, qkv: usize, ctx: usize, probs: usize, scratch: usize): void {
  const D = H * dh;
  const ld = 3 * D;
  const T4 = (T + 3) & ~3;
  const scale = <f32>(1.0 / Math.sqrt(<f64>dh));
  const kt = scratch; // dh × T4: the head's keys, transposed
  const s = scratch + ((<usize>dh * <usize>T4) << 2); // T × T4: scores, then exponentials
  zeroPadding(T, T4, dh, kt);
  const headBytes = <usize>T * <usize>T << 2;
  for (let b = 0; b < B; b++) {
    const row0 = <usize>b * <usize>T;
    for (let h = 0; h < H; h++) {
      const q = qkv + ((row0 * <usize>ld + <usize>(h * dh)) << 2);
      const k = q + (<usize>D << 2);
      const v = q + (<usize>(2 * D) << 2);
      const p = probs + (<usize>(b * H + h)) * headBytes;
      packTransposed(T, T4, dh, k, ld, kt);
      mulPackedT(T, T4, dh, q, ld, kt, s);
      for (let i = 0; i < T; i++) softmaxRow(s + ((<usize>i * <usize>T4) << 2), p + ((<usize>i * <usize>T) << 2), T, scale);
      // ctx(i) = Σ_j P(i, j)·v(j)
      mulRows(T, T, dh, p, T, 1, v, ld, ctx + ((row0 * <usize>D + <usize>(h * dh)) << 2), D);
    }
  }
}

/**
 * dqkv ← gradient of attentionForward given dctx, with the probs it saved:
 *   dV = Pᵀ·dO, dP = dO·Vᵀ, dS = P ⊙ (dP − rowsum(dP ⊙ P)), dQ = scale·dS·K, dK = scale·dSᵀ·Q.
 * Every element of dqkv is written (no accumulation).
 */
export function attentionBackward(B: i32, T: i32, H: i32, dh: i32, dctx: usize, qkv: usize, probs: usize, dqkv: usize, scratch: usize): void {
  const D = H * dh;
  const ld = 3 * D;
  const T4 = (T + 3) & ~3;
  const scale = <f32>(1.0 / Math.sqrt(<f64>dh));
  const vt = scratch; // dh × T4: the head's values, transposed
  const ds = scratch + ((<usize>dh * <usize>T4) << 2); // T × T4: dP, then dS (scaled)
  zeroPadding(T, T4, dh, vt);
  const headBytes = <usize>T * <usize>T << 2;
  for (let b = 0; b < B; b++) {
    const row0 = <usize>b * <usize>T;
    for (let h = 0; h < H; h++) {
      const off = (row0 * <usize>ld + <usize>(h * dh)) << 2;
      const q = qkv + off;
      const k = q + (<usize>D << 2);
      const v = q + (<usize>(2 * D) << 2);
      const dq = dqkv + off;
      const dk = dq + (<usize>D << 2);
      const dv = dq + (<usize>(2 * D) << 2);
      const dO = dctx + ((row0 * <usize>D + <usize>(h * dh)) << 2);
      const p = probs + (<usize>(b * H + h)) * headBytes;
      packTransposed(T, T4, dh, v, ld, vt);
      mulPackedT(T, T4, dh, dO, D, vt, ds); // dP(i, j) = dO(i)·v(j)
      for (let i = 0; i < T; i++) softmaxGradRow(ds + ((<usize>i * <usize>T4) << 2), p + ((<usize>i * <usize>T) << 2), T, scale);
      mulRows(T, T, dh, p, 1, T, dO, D, dv, ld); // dV(j) = Σ_i P(i, j)·dO(i)
      mulRows(T, T, dh, ds, T4, 1, k, ld, dq, ld); // dQ(i) = Σ_j dS(i, j)·k(j)
      mulRows(T, T, dh, ds, 1, T4, q, ld, dk, ld); // dK(j) = Σ_i dS(i, j)·q(i)
    }
  }
}
