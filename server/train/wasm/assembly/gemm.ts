import { loadPart, madd, storePart } from './simd';

/**
 * C[M, N] = A[M, K] · B[K, N] (+ bias[N]) (+ R[M, N] when addend ≠ 0), float32.
 *
 * Operands are described by strides (in elements) so that transposed views cost nothing:
 * A(i, k) is at a + 4·(i·ars + k·aks), B(k, n) at b + 4·(k·brs + n·bcs); C and R are row-major with
 * ldc (R = C accumulates in place; a separate R is a residual connection added for free).
 * B is first packed into `scratch` (K·⌈N/8⌉·8 floats) as 8-column panels, k-major, zero-padded;
 * each 4×8 block of C then keeps its sums in eight registers while A's values are broadcast.
 * When A's inner dimension is not contiguous (a transposed view, as dW = dyᵀ·x reads dy), each block
 * of 4 rows is first copied k-major after the panels (4·K more floats of scratch): read in place,
 * every k would touch another cache line and page, and this GEMM ran at half the speed of the others.
 * The products are summed in the same order either way, so the result is the same to the bit.
 */
export function gemm(
  M: i32, N: i32, K: i32,
  a: usize, ars: i32, aks: i32,
  b: usize, brs: i32, bcs: i32,
  c: usize, ldc: i32, bias: usize, addend: usize, scratch: usize,
): void {
  const panels = (N + 7) >> 3;
  packB(N, K, b, brs, bcs, scratch);
  const panelBytes = <usize>K << 5;
  const ars4 = <usize>ars << 2;
  const aks4 = <usize>aks << 2;
  const ldc4 = <usize>ldc << 2;
  const packA = aks != 1;
  const aPacked = scratch + <usize>panels * panelBytes;
  const rows4 = packA ? <usize>4 : ars4;
  const step4 = packA ? <usize>16 : aks4;
  let i = 0;
  for (; i + 4 <= M; i += 4) {
    let arow = a + <usize>i * ars4;
    if (packA) {
      packRows4(K, arow, ars4, aks4, aPacked);
      arow = aPacked;
    }
    const crow = c + <usize>i * ldc4;
    for (let p = 0; p < panels; p++) {
      const n0 = p << 3;
      const cols = min(8, N - n0);
      const cp = crow + (<usize>n0 << 2);
      const rp = addend + <usize>i * ldc4 + (<usize>n0 << 2);
      let c00 = f32x4.splat(0), c01 = f32x4.splat(0);
      if (bias) { c00 = loadPart(bias + (<usize>n0 << 2), cols); c01 = loadPart(bias + (<usize>n0 << 2) + 16, cols - 4); }
      let c10 = c00, c11 = c01, c20 = c00, c21 = c01, c30 = c00, c31 = c01;
      if (addend) {
        c00 = f32x4.add(c00, loadPart(rp, cols)); c01 = f32x4.add(c01, loadPart(rp + 16, cols - 4));
        c10 = f32x4.add(c10, loadPart(rp + ldc4, cols)); c11 = f32x4.add(c11, loadPart(rp + ldc4 + 16, cols - 4));
        c20 = f32x4.add(c20, loadPart(rp + 2 * ldc4, cols)); c21 = f32x4.add(c21, loadPart(rp + 2 * ldc4 + 16, cols - 4));
        c30 = f32x4.add(c30, loadPart(rp + 3 * ldc4, cols)); c31 = f32x4.add(c31, loadPart(rp + 3 * ldc4 + 16, cols - 4));
      }
      let ap = arow;
      let bp = scratch + <usize>p * panelBytes;
      const bend = bp + panelBytes;
      while (bp < bend) {
        const b0 = v128.load(bp);
        const b1 = v128.load(bp, 16);
        let av = v128.load32_splat(ap);
        c00 = madd(av, b0, c00); c01 = madd(av, b1, c01);
        av = v128.load32_splat(ap + rows4);
        c10 = madd(av, b0, c10); c11 = madd(av, b1, c11);
        av = v128.load32_splat(ap + 2 * rows4);
        c20 = madd(av, b0, c20); c21 = madd(av, b1, c21);
        av = v128.load32_splat(ap + 3 * rows4);
        c30 = madd(av, b0, c30); c31 = madd(av, b1, c31);
        ap += step4;
        bp += 32;
      }
      storeCols(cp, c00, c01, cols);
      storeCols(cp + ldc4, c10, c11, cols);
      storeCols(cp + 2 * ldc4, c20, c21, cols);
      storeCols(cp + 3 * ldc4, c30, c31, cols);
    }
  }
  for (; i < M; i++) {
    const arow = a + <usize>i * ars4;
    const cp0 = c + <usize>i * ldc4;
    for (let p = 0; p < panels; p++) {
      const n0 = p << 3;
      const cols = min(8, N - n0);
      const cp = cp0 + (<usize>n0 << 2);
      const rp = addend + <usize>i * ldc4 + (<usize>n0 << 2);
      let c00 = f32x4.splat(0), c01 = f32x4.splat(0);
      if (bias) { c00 = loadPart(bias + (<usize>n0 << 2), cols); c01 = loadPart(bias + (<usize>n0 << 2) + 16, cols - 4); }
      if (addend) { c00 = f32x4.add(c00, loadPart(rp, cols)); c01 = f32x4.add(c01, loadPart(rp + 16, cols - 4)); }
      let ap = arow;
      let bp = scratch + <usize>p * panelBytes;
      const bend = bp + panelBytes;
      while (bp < bend) {
        const av = v128.load32_splat(ap);
        c00 = madd(av, v128.load(bp), c00);
        c01 = madd(av, v128.load(bp, 16), c01);
        ap += aks4;
        bp += 32;
      }
      storeCols(cp, c00, c01, cols);
    }
  }
}

/** A(0..4, k) → out[k][0..4) for k < K (rows `rs` bytes apart, k `ks` bytes apart). */
function packRows4(K: i32, a: usize, rs: usize, ks: usize, out: usize): void {
  if (rs == 4) {
    for (let k = 0; k < K; k++) {
      v128.store(out, v128.load(a));
      a += ks;
      out += 16;
    }
    return;
  }
  for (let k = 0; k < K; k++) {
    store<f32>(out, load<f32>(a));
    store<f32>(out, load<f32>(a + rs), 4);
    store<f32>(out, load<f32>(a + 2 * rs), 8);
    store<f32>(out, load<f32>(a + 3 * rs), 12);
    a += ks;
    out += 16;
  }
}

/** B(k, n) → panels[p][k][0..8) for columns 8p..8p+7, zero beyond N. */
function packB(N: i32, K: i32, b: usize, brs: i32, bcs: i32, out: usize): void {
  const brs4 = <usize>brs << 2;
  const bcs4 = <usize>bcs << 2;
  for (let n0 = 0; n0 < N; n0 += 8) {
    const cols = min(8, N - n0);
    let src = b + <usize>n0 * bcs4;
    if (bcs == 1 && cols == 8) {
      for (let k = 0; k < K; k++) {
        v128.store(out, v128.load(src));
        v128.store(out, v128.load(src, 16), 16);
        src += brs4;
        out += 32;
      }
    } else {
      for (let k = 0; k < K; k++) {
        let s = src;
        for (let j = 0; j < 8; j++) {
          store<f32>(out + (<usize>j << 2), j < cols ? load<f32>(s) : 0);
          s += bcs4;
        }
        src += brs4;
        out += 32;
      }
    }
  }
}

/** Stores the first `cols` (≤ 8) lanes of lo:hi at p. */
// @ts-ignore: decorator
@inline function storeCols(p: usize, lo: v128, hi: v128, cols: i32): void {
  if (cols < 4) {
    storePart(p, lo, cols);
    return;
  }
  v128.store(p, lo);
  if (cols == 8) v128.store(p, hi, 16);
  else storePart(p + 16, hi, cols - 4);
}
