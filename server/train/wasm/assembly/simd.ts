// Shared helpers for the kernels. Built twice by scripts/build.mjs: with relaxed SIMD, where
// f32x4.relaxed_madd becomes one fused multiply-add instruction (twice the arithmetic per cycle on
// x86 with FMA3), and without it for engines that lack the proposal.

/** a·b + c on four lanes (fused when the engine has relaxed SIMD, so rounding may differ by 1 ulp). */
// @ts-ignore: decorator
@inline export function madd(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(f32x4.mul(a, b), c);
}

/** Sum of the four lanes. */
// @ts-ignore: decorator
@inline export function hsum(v: v128): f32 {
  const s = f32x4.add(v, i32x4.shuffle(v, v, 2, 3, 0, 1));
  return f32x4.extract_lane(f32x4.add(s, i32x4.shuffle(s, s, 1, 0, 3, 2)), 0);
}

/** Four floats from p, or the first n of them (n < 4) with zeros after: never reads past p + 4n. */
// @ts-ignore: decorator
@inline export function loadPart(p: usize, n: i32): v128 {
  if (n >= 4) return v128.load(p);
  let v = f32x4.splat(0);
  if (n > 0) v = f32x4.replace_lane(v, 0, load<f32>(p));
  if (n > 1) v = f32x4.replace_lane(v, 1, load<f32>(p, 4));
  if (n > 2) v = f32x4.replace_lane(v, 2, load<f32>(p, 8));
  return v;
}

/** Stores the first n (< 4) lanes of v at p: never writes past p + 4n. */
// @ts-ignore: decorator
@inline export function storePart(p: usize, v: v128, n: i32): void {
  if (n > 0) store<f32>(p, f32x4.extract_lane(v, 0));
  if (n > 1) store<f32>(p, f32x4.extract_lane(v, 1), 4);
  if (n > 2) store<f32>(p, f32x4.extract_lane(v, 2), 8);
}

/**
 * e^x on four lanes, without lookup tables (the module must not have data segments): Cody–Waite
 * reduction x = n·ln2 + r, |r| ≤ ln2/2, a degree-6 Taylor polynomial for e^r (relative error
 * < 2.3e-7 there), and 2^n built in the exponent bits. Inputs are clamped to [-87.3, 88.3] (results
 * 0 < e^x < f32 max; e^-87.3 ≈ 1.2e-38 stands in for smaller values).
 * Cheap forms in V8: pmin/pmax clamps (one minps/maxps each; the NaN-exact min/max are ~7
 * instructions), and n rounded by adding 1.5·2²³, whose low bits are then n itself (no trunc_sat).
 */
// @ts-ignore: decorator
@inline export function exp4(x: v128): v128 {
  x = f32x4.pmin(f32x4.pmax(x, f32x4.splat(-87.3)), f32x4.splat(88.3));
  const magic = f32x4.splat(12582912.0); // 1.5·2²³
  const t = madd(x, f32x4.splat(1.44269504088896341), magic);
  const n = f32x4.sub(t, magic);
  let r = madd(n, f32x4.splat(-0.693359375), x);
  r = madd(n, f32x4.splat(2.12194440e-4), r);
  let p = f32x4.splat(1.0 / 720.0);
  p = madd(p, r, f32x4.splat(1.0 / 120.0));
  p = madd(p, r, f32x4.splat(1.0 / 24.0));
  p = madd(p, r, f32x4.splat(1.0 / 6.0));
  p = madd(p, r, f32x4.splat(0.5));
  p = madd(p, r, f32x4.splat(1.0));
  p = madd(p, r, f32x4.splat(1.0));
  // bits(t) − bits(1.5·2²³) = n; + 127 and shifted into the exponent field gives 2ⁿ.
  const scale = i32x4.shl(i32x4.add(t, i32x4.splat(127 - 0x4b400000)), 23);
  return f32x4.mul(p, scale);
}
