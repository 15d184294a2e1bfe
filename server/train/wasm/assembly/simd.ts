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
