// Optimizer steps (server/train/optimizer.ts), one pass over a parameter and its state each.
//
// The arithmetic is the TF.js fallback's, op for op and in the same order, all in float32 with
// separate multiplies and adds (no fused multiply-add): every operation of that path (mul, add, sub,
// div, sqrt) is correctly rounded, so the results are bitwise the same. Outputs are new buffers,
// never the inputs (TF.js tensors are immutable and may share buffers). Any length: 4 lanes at a
// time, then a scalar tail with the same formula.

/**
 * AdamW with decoupled weight decay, for n elements:
 *   g' = g·gScale                       (gradient clipping's coefficient; 1 when not clipping)
 *   m' = m·β1 + g'·(1−β1)
 *   v' = v·β2 + (g'·g')·(1−β2)
 *   p' = p·decay − (m' / (√v' / √bc2 + eps))·stepSize
 * with decay = 1 − lr·wd (1 without decay) and stepSize = lr / bc1.
 */
export function adamw(
  n: i32, p: usize, m: usize, v: usize, g: usize,
  gScale: f32, decay: f32, beta1: f32, oneMinusBeta1: f32, beta2: f32, oneMinusBeta2: f32,
  sqrtBc2: f32, eps: f32, stepSize: f32,
  pOut: usize, mOut: usize, vOut: usize,
): void {
  const end = <usize>n << 2;
  const gs4 = f32x4.splat(gScale), d4 = f32x4.splat(decay);
  const b14 = f32x4.splat(beta1), c14 = f32x4.splat(oneMinusBeta1);
  const b24 = f32x4.splat(beta2), c24 = f32x4.splat(oneMinusBeta2);
  const q4 = f32x4.splat(sqrtBc2), e4 = f32x4.splat(eps), s4 = f32x4.splat(stepSize);
  let i: usize = 0;
  for (; i + 16 <= end; i += 16) {
    const gi = f32x4.mul(v128.load(g + i), gs4);
    const mi = f32x4.add(f32x4.mul(v128.load(m + i), b14), f32x4.mul(gi, c14));
    const vi = f32x4.add(f32x4.mul(v128.load(v + i), b24), f32x4.mul(f32x4.mul(gi, gi), c24));
    const denom = f32x4.add(f32x4.div(f32x4.sqrt(vi), q4), e4);
    const pi = f32x4.sub(f32x4.mul(v128.load(p + i), d4), f32x4.mul(f32x4.div(mi, denom), s4));
    v128.store(mOut + i, mi);
    v128.store(vOut + i, vi);
    v128.store(pOut + i, pi);
  }
  for (; i < end; i += 4) {
    const gi = load<f32>(g + i) * gScale;
    const mi = load<f32>(m + i) * beta1 + gi * oneMinusBeta1;
    const vi = load<f32>(v + i) * beta2 + (gi * gi) * oneMinusBeta2;
    const denom = sqrt<f32>(vi) / sqrtBc2 + eps;
    store<f32>(mOut + i, mi);
    store<f32>(vOut + i, vi);
    store<f32>(pOut + i, load<f32>(p + i) * decay - (mi / denom) * stepSize);
  }
}

/**
 * SGD with coupled weight decay and torch's momentum, for n elements:
 *   d  = g·gScale (+ p·wd when wd ≠ 0)
 *   mode 0 (no momentum):       p' = p − d·lr
 *   mode 1 (momentum, step 1):  buf' = d,                p' = p − buf'·lr
 *   mode 2 (momentum):          buf' = buf·momentum + d, p' = p − buf'·lr
 * `buf` is read only in mode 2, `bufOut` written only in modes 1 and 2.
 */
export function sgd(
  n: i32, p: usize, buf: usize, g: usize,
  gScale: f32, wd: f32, momentum: f32, lr: f32, mode: i32,
  pOut: usize, bufOut: usize,
): void {
  const end = <usize>n << 2;
  const gs4 = f32x4.splat(gScale), wd4 = f32x4.splat(wd), mu4 = f32x4.splat(momentum), lr4 = f32x4.splat(lr);
  const decay = wd != 0;
  let i: usize = 0;
  for (; i + 16 <= end; i += 16) {
    const pi = v128.load(p + i);
    let d = f32x4.mul(v128.load(g + i), gs4);
    if (decay) d = f32x4.add(d, f32x4.mul(pi, wd4));
    if (mode == 2) d = f32x4.add(f32x4.mul(v128.load(buf + i), mu4), d);
    if (mode != 0) v128.store(bufOut + i, d);
    v128.store(pOut + i, f32x4.sub(pi, f32x4.mul(d, lr4)));
  }
  for (; i < end; i += 4) {
    const pi = load<f32>(p + i);
    let d = load<f32>(g + i) * gScale;
    if (decay) d = d + pi * wd;
    if (mode == 2) d = load<f32>(buf + i) * momentum + d;
    if (mode != 0) store<f32>(bufOut + i, d);
    store<f32>(pOut + i, pi - d * lr);
  }
}

/**
 * Σ x[i]² over n float32 elements, accumulated in float64 (squares of floats are exact there), for
 * the global gradient norm. Fixed summation order, so the result is deterministic.
 */
export function sumSquares(n: i32, x: usize): f64 {
  const end = <usize>n << 2;
  let a0 = f64x2.splat(0), a1 = f64x2.splat(0), a2 = f64x2.splat(0), a3 = f64x2.splat(0);
  let i: usize = 0;
  for (; i + 32 <= end; i += 32) {
    const u = v128.load(x + i);
    const w = v128.load(x + i, 16);
    const u0 = f64x2.promote_low_f32x4(u), u1 = f64x2.promote_low_f32x4(i32x4.shuffle(u, u, 2, 3, 0, 1));
    const w0 = f64x2.promote_low_f32x4(w), w1 = f64x2.promote_low_f32x4(i32x4.shuffle(w, w, 2, 3, 0, 1));
    a0 = f64x2.add(a0, f64x2.mul(u0, u0));
    a1 = f64x2.add(a1, f64x2.mul(u1, u1));
    a2 = f64x2.add(a2, f64x2.mul(w0, w0));
    a3 = f64x2.add(a3, f64x2.mul(w1, w1));
  }
  const s = f64x2.add(f64x2.add(a0, a1), f64x2.add(a2, a3));
  let sum = f64x2.extract_lane(s, 0) + f64x2.extract_lane(s, 1);
  for (; i < end; i += 4) {
    const e = <f64>load<f32>(x + i);
    sum += e * e;
  }
  return sum;
}
