import { hsum, madd } from './simd';

// LayerNorm and exact GELU, forward and backward, for the trainer's fused kernels
// (server/train/fused/norm.ts). Rows are processed one at a time: a row of the bench ViT is 64–128
// floats, so the second and third passes over it hit L1 and each tensor crosses memory once.
// Vector loops handle four floats at a time (row sums eight, in two accumulators) with unaligned
// loads (any row start); a scalar tail handles D % 4.

/**
 * LayerNorm over the rows of x [M, D]: y = (x − μ)·r·γ + β, r = 1/√(σ² + ε), σ² biased.
 * Writes y [M, D], μ [M] and r [M] (for layerNormBackward).
 *
 * The moments use the corrected two-pass algorithm: m₁ = mean(x) in f32, then s₁ = Σ(x − m₁) and
 * s₂ = Σ(x − m₁)², δ = s₁/D, μ = m₁ + δ, σ² = s₂/D − δ². x − m₁ is exact for x near m₁ (Sterbenz),
 * so the rounding error of m₁ (large when |μ| ≫ σ, e.g. 1000 ± 1) is removed by δ, and the output
 * uses (x − m₁) − δ, never a rounded μ. The one-pass E[x²] − E[x]² would cancel catastrophically.
 */
export function layerNormForward(M: i32, D: i32, x: usize, gamma: usize, beta: usize, eps: f32, y: usize, mean: usize, rstd: usize): void {
  const rowBytes = <usize>D << 2;
  const D4 = D & ~3;
  const D8 = D & ~7;
  const invD: f32 = 1.0 / <f32>D;
  for (let m = 0; m < M; m++) {
    const xr = x + <usize>m * rowBytes;
    const yr = y + <usize>m * rowBytes;
    // Pass 1: m₁. Two accumulators (eight floats a step) halve the chain of dependent adds.
    let acc = f32x4.splat(0);
    let accB = f32x4.splat(0);
    let i = 0;
    for (; i < D8; i += 8) {
      const p = xr + (<usize>i << 2);
      acc = f32x4.add(acc, v128.load(p));
      accB = f32x4.add(accB, v128.load(p, 16));
    }
    for (; i < D4; i += 4) acc = f32x4.add(acc, v128.load(xr + (<usize>i << 2)));
    let s: f32 = hsum(f32x4.add(acc, accB));
    for (; i < D; i++) s += load<f32>(xr + (<usize>i << 2));
    const m1 = s * invD;
    // Pass 2: s₁ = Σ(x − m₁), s₂ = Σ(x − m₁)².
    const m1v = f32x4.splat(m1);
    let a1 = f32x4.splat(0);
    let a2 = f32x4.splat(0);
    let b1 = f32x4.splat(0);
    let b2 = f32x4.splat(0);
    i = 0;
    for (; i < D8; i += 8) {
      const p = xr + (<usize>i << 2);
      const c = f32x4.sub(v128.load(p), m1v);
      const cB = f32x4.sub(v128.load(p, 16), m1v);
      a1 = f32x4.add(a1, c);
      a2 = madd(c, c, a2);
      b1 = f32x4.add(b1, cB);
      b2 = madd(cB, cB, b2);
    }
    for (; i < D4; i += 4) {
      const c = f32x4.sub(v128.load(xr + (<usize>i << 2)), m1v);
      a1 = f32x4.add(a1, c);
      a2 = madd(c, c, a2);
    }
    let s1: f32 = hsum(f32x4.add(a1, b1));
    let s2: f32 = hsum(f32x4.add(a2, b2));
    for (; i < D; i++) {
      const c = load<f32>(xr + (<usize>i << 2)) - m1;
      s1 += c;
      s2 += c * c;
    }
    const delta = s1 * invD;
    const variance = max<f32>(s2 * invD - delta * delta, 0);
    const r: f32 = 1.0 / sqrt<f32>(variance + eps);
    store<f32>(mean + (<usize>m << 2), m1 + delta);
    store<f32>(rstd + (<usize>m << 2), r);
    // Pass 3: y = ((x − m₁) − δ)·r·γ + β.
    const dv = f32x4.splat(delta);
    const rv = f32x4.splat(r);
    i = 0;
    for (; i < D4; i += 4) {
      const o = <usize>i << 2;
      const xh = f32x4.mul(f32x4.sub(f32x4.sub(v128.load(xr + o), m1v), dv), rv);
      v128.store(yr + o, madd(xh, v128.load(gamma + o), v128.load(beta + o)));
    }
    for (; i < D; i++) {
      const o = <usize>i << 2;
      const xh = (load<f32>(xr + o) - m1 - delta) * r;
      store<f32>(yr + o, xh * load<f32>(gamma + o) + load<f32>(beta + o));
    }
  }
}

/** Rows whose γ and β gradients are summed in scratch before being added to the outputs. */
const BLOCK_ROWS = 32;

/**
 * LayerNorm backward for rows of x [M, D] given dy, γ and the forward's μ, r [M]:
 *   x̂ = (x − μ)·r, g = dy·γ, dx = r·(g − mean(g) − x̂·mean(g·x̂)),
 *   dγ = Σ_rows dy·x̂, dβ = Σ_rows dy.
 * Pass 1 over a row sums g, g·(x − μ) and x − μ; the last gives δ = mean(x) − μ, the residual of
 * the f32-rounded μ, so x̂ = ((x − μ) − δ)·r is as accurate as in the forward pass. Pass 2 writes
 * dx and adds dy·x̂, dy to per-block column sums in `scratch` (2·D floats), which are added to dγ, dβ
 * every BLOCK_ROWS rows (shorter f32 sums than one running total over all M rows).
 */
export function layerNormBackward(M: i32, D: i32, dy: usize, x: usize, gamma: usize, mean: usize, rstd: usize,
  dx: usize, dgamma: usize, dbeta: usize, scratch: usize): void {
  const rowBytes = <usize>D << 2;
  const D4 = D & ~3;
  const D8 = D & ~7;
  const invD: f32 = 1.0 / <f32>D;
  const pg = scratch; // partial dγ
  const pb = scratch + rowBytes; // partial dβ
  memory.fill(dgamma, 0, rowBytes);
  memory.fill(dbeta, 0, rowBytes);
  memory.fill(scratch, 0, rowBytes << 1);
  for (let m = 0; m < M; m++) {
    const off = <usize>m * rowBytes;
    const dyr = dy + off;
    const xr = x + off;
    const dxr = dx + off;
    const mu = load<f32>(mean + (<usize>m << 2));
    const r = load<f32>(rstd + (<usize>m << 2));
    const muv = f32x4.splat(mu);
    // Pass 1: Σg, Σg·(x − μ), Σ(x − μ), two accumulators each.
    let ag = f32x4.splat(0);
    let agx = f32x4.splat(0);
    let ax = f32x4.splat(0);
    let bg = f32x4.splat(0);
    let bgx = f32x4.splat(0);
    let bx = f32x4.splat(0);
    let i = 0;
    for (; i < D8; i += 8) {
      const o = <usize>i << 2;
      const g = f32x4.mul(v128.load(dyr + o), v128.load(gamma + o));
      const c = f32x4.sub(v128.load(xr + o), muv);
      const gB = f32x4.mul(v128.load(dyr + o, 16), v128.load(gamma + o, 16));
      const cB = f32x4.sub(v128.load(xr + o, 16), muv);
      ag = f32x4.add(ag, g);
      agx = madd(g, c, agx);
      ax = f32x4.add(ax, c);
      bg = f32x4.add(bg, gB);
      bgx = madd(gB, cB, bgx);
      bx = f32x4.add(bx, cB);
    }
    for (; i < D4; i += 4) {
      const o = <usize>i << 2;
      const g = f32x4.mul(v128.load(dyr + o), v128.load(gamma + o));
      const c = f32x4.sub(v128.load(xr + o), muv);
      ag = f32x4.add(ag, g);
      agx = madd(g, c, agx);
      ax = f32x4.add(ax, c);
    }
    let sg: f32 = hsum(f32x4.add(ag, bg));
    let sgx: f32 = hsum(f32x4.add(agx, bgx));
    let sx: f32 = hsum(f32x4.add(ax, bx));
    for (; i < D; i++) {
      const o = <usize>i << 2;
      const g = load<f32>(dyr + o) * load<f32>(gamma + o);
      const c = load<f32>(xr + o) - mu;
      sg += g;
      sgx += g * c;
      sx += c;
    }
    const delta = sx * invD;
    // mean(g·x̂) = r·(Σg·(x − μ) − δ·Σg)/D;  dx = r·g + shift + x̂·slope with
    // shift = −r·mean(g), slope = −r·mean(g·x̂).
    const shift: f32 = -r * sg * invD;
    const slope: f32 = -r * r * (sgx - delta * sg) * invD;
    const dv = f32x4.splat(delta);
    const rv = f32x4.splat(r);
    const shiftv = f32x4.splat(shift);
    const slopev = f32x4.splat(slope);
    // Pass 2: dx, and the column sums.
    i = 0;
    for (; i < D4; i += 4) {
      const o = <usize>i << 2;
      const d = v128.load(dyr + o);
      const xh = f32x4.mul(f32x4.sub(f32x4.sub(v128.load(xr + o), muv), dv), rv);
      const g = f32x4.mul(d, v128.load(gamma + o));
      v128.store(dxr + o, madd(g, rv, madd(xh, slopev, shiftv)));
      v128.store(pg + o, madd(d, xh, v128.load(pg + o)));
      v128.store(pb + o, f32x4.add(v128.load(pb + o), d));
    }
    for (; i < D; i++) {
      const o = <usize>i << 2;
      const d = load<f32>(dyr + o);
      const xh = (load<f32>(xr + o) - mu - delta) * r;
      store<f32>(dxr + o, d * load<f32>(gamma + o) * r + (xh * slope + shift));
      store<f32>(pg + o, load<f32>(pg + o) + d * xh);
      store<f32>(pb + o, load<f32>(pb + o) + d);
    }
    if ((m + 1) % BLOCK_ROWS == 0 || m + 1 == M) {
      addInto(dgamma, pg, D);
      addInto(dbeta, pb, D);
      memory.fill(scratch, 0, rowBytes << 1);
    }
  }
}

/** out[i] += v[i] for i < n. */
// @ts-ignore: decorator
@inline function addInto(out: usize, v: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(out + o, f32x4.add(v128.load(out + o), v128.load(v + o)));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(out + o, load<f32>(out + o) + load<f32>(v + o));
  }
}

// Exact GELU, y = x·Φ(x), Φ the standard normal CDF = ½·(1 + erf(x/√2)), with two table-free erf
// approximations, each the cheaper one for its pass (both within 3e-7 of Φ, f32 rounding included;
// torch's vectorised CPU erf is the first one, in the 1 + erf form):
//
// Backward, dx = dy·(Φ(x) + x·φ(x)): Abramowitz & Stegun 7.1.26. With z = |x|/√2, t = 1/(1 + p·z),
// erfc(z) = t·(a₁ + t·(a₂ + t·(a₃ + t·(a₄ + t·a₅))))·e^(−z²) (error ≤ 1.5e-7 in exact arithmetic).
// e^(−z²) = e^(−x²/2) = √(2π)·φ(x) is the other factor the derivative needs, so one exp serves both,
// and Φ(−|x|) = ½·erfc(z) keeps its relative accuracy in the left tail. Recomputing Φ from x here is
// cheaper than saving it in the forward pass (one more tensor written and read back).
//
// Forward: the rational erf(z) = z·P(z²)/Q(z²) on z clamped to [−4, 4] (erf(4) = 1 − 1.5e-8) of
// Eigen's and XLA's float erf: no exp, ~17 vector operations instead of ~30 (0.21 vs 0.34 ms for the
// bench ViT's 278k activations). Its error is absolute, like torch's: Φ in the far left tail is
// 1 + erf ≈ 1 − 1, off by up to 3e-7 — for y = x·Φ at most ~1e-6 where |y| < 1e-5.
//
// The constants live in a block of scratch memory (geluConstants) and are loaded where they are
// used. As v128.const immediates, V8 (TurboFan, Node 20) has more of them than the 16 SIMD registers
// and rebuilds each one inside the loop from two 64-bit immediates (three instructions, two of them
// on the shuffle port); one load each makes the whole kernel ~1.7× faster.

const C_ONE: usize = 0;
const C_HALF: usize = 16;
const C_INV_SQRT2: usize = 32; // 1/√2
const C_INV_SQRT_2PI: usize = 48; // 1/√(2π)
const C_ERF_P: usize = 64; // A&S 7.1.26: p, a₁…a₅
const C_ERF_A1: usize = 80;
const C_ERF_A2: usize = 96;
const C_ERF_A3: usize = 112;
const C_ERF_A4: usize = 128;
const C_ERF_A5: usize = 144;
const C_EXP_MIN: usize = 160; // e^−87.3 ≈ 1.2e-38 stands in for smaller values
const C_LOG2E: usize = 176;
const C_ROUND: usize = 192; // 1.5·2²³: adding it rounds to an integer, kept in the low mantissa bits
const C_LN2_HI: usize = 208; // −ln 2 in two parts (Cody–Waite)
const C_LN2_LO: usize = 224;
const C_EXP_C6: usize = 240; // Taylor coefficients 1/6!, 1/5!, 1/4!, 1/3!
const C_EXP_C5: usize = 256;
const C_EXP_C4: usize = 272;
const C_EXP_C3: usize = 288;
const C_EXP_BIAS: usize = 304; // 127 << 23
const C_NEG_HALF: usize = 320;
const C_ERF_ZMAX: usize = 336; // the rational erf: |z| ≤ 4, P's coefficients α₁₃…α₁, Q's β₈…β₀
const C_ERF_ZMIN: usize = 352;
const C_ERF_AL13: usize = 368;
const C_ERF_AL11: usize = 384;
const C_ERF_AL9: usize = 400;
const C_ERF_AL7: usize = 416;
const C_ERF_AL5: usize = 432;
const C_ERF_AL3: usize = 448;
const C_ERF_AL1: usize = 464;
const C_ERF_BE8: usize = 480;
const C_ERF_BE6: usize = 496;
const C_ERF_BE4: usize = 512;
const C_ERF_BE2: usize = 528;
const C_ERF_BE0: usize = 544;
const C_END: usize = 560;

/** Bytes of scratch memory geluForward and geluBackward need (for their constants). */
export function geluScratchBytes(): i32 {
  return <i32>C_END;
}

function geluConstants(c: usize): void {
  v128.store(c + C_ONE, f32x4.splat(1));
  v128.store(c + C_HALF, f32x4.splat(0.5));
  v128.store(c + C_INV_SQRT2, f32x4.splat(0.7071067811865476));
  v128.store(c + C_INV_SQRT_2PI, f32x4.splat(0.3989422804014327));
  v128.store(c + C_ERF_P, f32x4.splat(0.3275911));
  v128.store(c + C_ERF_A1, f32x4.splat(0.254829592));
  v128.store(c + C_ERF_A2, f32x4.splat(-0.284496736));
  v128.store(c + C_ERF_A3, f32x4.splat(1.421413741));
  v128.store(c + C_ERF_A4, f32x4.splat(-1.453152027));
  v128.store(c + C_ERF_A5, f32x4.splat(1.061405429));
  v128.store(c + C_EXP_MIN, f32x4.splat(-87.3));
  v128.store(c + C_LOG2E, f32x4.splat(1.44269504088896341));
  v128.store(c + C_ROUND, f32x4.splat(12582912.0));
  v128.store(c + C_LN2_HI, f32x4.splat(-0.693359375));
  v128.store(c + C_LN2_LO, f32x4.splat(2.12194440e-4));
  v128.store(c + C_EXP_C6, f32x4.splat(1.0 / 720.0));
  v128.store(c + C_EXP_C5, f32x4.splat(1.0 / 120.0));
  v128.store(c + C_EXP_C4, f32x4.splat(1.0 / 24.0));
  v128.store(c + C_EXP_C3, f32x4.splat(1.0 / 6.0));
  v128.store(c + C_EXP_BIAS, i32x4.splat(127 << 23));
  v128.store(c + C_NEG_HALF, f32x4.splat(-0.5));
  v128.store(c + C_ERF_ZMAX, f32x4.splat(4));
  v128.store(c + C_ERF_ZMIN, f32x4.splat(-4));
  v128.store(c + C_ERF_AL13, f32x4.splat(-2.72614225801306e-10));
  v128.store(c + C_ERF_AL11, f32x4.splat(2.77068142495902e-08));
  v128.store(c + C_ERF_AL9, f32x4.splat(-2.10102402082508e-06));
  v128.store(c + C_ERF_AL7, f32x4.splat(-5.69250639462346e-05));
  v128.store(c + C_ERF_AL5, f32x4.splat(-7.34990630326855e-04));
  v128.store(c + C_ERF_AL3, f32x4.splat(-2.95459980854025e-03));
  v128.store(c + C_ERF_AL1, f32x4.splat(-1.60960333262415e-02));
  v128.store(c + C_ERF_BE8, f32x4.splat(-1.45660718464996e-05));
  v128.store(c + C_ERF_BE6, f32x4.splat(-2.13374055278905e-04));
  v128.store(c + C_ERF_BE4, f32x4.splat(-1.68282697438203e-03));
  v128.store(c + C_ERF_BE2, f32x4.splat(-7.37332916720468e-03));
  v128.store(c + C_ERF_BE0, f32x4.splat(-1.42647390514189e-02));
}

/**
 * e^(−x²/2) on four lanes: simd.ts's exp4 (same reduction and polynomial, relative error < 2e-7)
 * specialised to arguments ≤ 0, which is about half its cost in V8: one pmax clamp (a single maxps;
 * exp4's NaN-exact min and max are ~7 instructions each, and NaN still propagates here), and n
 * rounded by adding 1.5·2²³, whose bits then give 2ⁿ with one shift instead of trunc_sat (~8).
 */
// @ts-ignore: decorator
@inline function gauss4(x: v128, c: usize): v128 {
  const t = f32x4.pmax(f32x4.mul(f32x4.mul(x, x), v128.load(c + C_NEG_HALF)), v128.load(c + C_EXP_MIN));
  const k = madd(t, v128.load(c + C_LOG2E), v128.load(c + C_ROUND)); // round(t·log₂e) in the low bits
  const n = f32x4.sub(k, v128.load(c + C_ROUND));
  let r = madd(n, v128.load(c + C_LN2_HI), t);
  r = madd(n, v128.load(c + C_LN2_LO), r);
  let p = madd(v128.load(c + C_EXP_C6), r, v128.load(c + C_EXP_C5));
  p = madd(p, r, v128.load(c + C_EXP_C4));
  p = madd(p, r, v128.load(c + C_EXP_C3));
  p = madd(p, r, v128.load(c + C_HALF));
  p = madd(p, r, v128.load(c + C_ONE));
  p = madd(p, r, v128.load(c + C_ONE));
  // 2ⁿ: the integer n sits in k's low mantissa bits; shifting by 23 drops the rest.
  return f32x4.mul(p, i32x4.add(i32x4.shl(k, 23), v128.load(c + C_EXP_BIAS)));
}

/** Φ(x) on four lanes by the rational erf (forward pass). NaN propagates through pmax/pmin. */
// @ts-ignore: decorator
@inline function cdfRational4(x: v128, c: usize): v128 {
  const z = f32x4.pmin(f32x4.pmax(f32x4.mul(x, v128.load(c + C_INV_SQRT2)), v128.load(c + C_ERF_ZMIN)), v128.load(c + C_ERF_ZMAX));
  const z2 = f32x4.mul(z, z);
  let p = madd(z2, v128.load(c + C_ERF_AL13), v128.load(c + C_ERF_AL11));
  p = madd(z2, p, v128.load(c + C_ERF_AL9));
  p = madd(z2, p, v128.load(c + C_ERF_AL7));
  p = madd(z2, p, v128.load(c + C_ERF_AL5));
  p = madd(z2, p, v128.load(c + C_ERF_AL3));
  p = madd(z2, p, v128.load(c + C_ERF_AL1));
  let q = madd(z2, v128.load(c + C_ERF_BE8), v128.load(c + C_ERF_BE6));
  q = madd(z2, q, v128.load(c + C_ERF_BE4));
  q = madd(z2, q, v128.load(c + C_ERF_BE2));
  q = madd(z2, q, v128.load(c + C_ERF_BE0));
  const half = v128.load(c + C_HALF);
  return madd(f32x4.div(f32x4.mul(z, p), q), half, half);
}

/** Φ(x) on four lanes by A&S 7.1.26 (backward pass), given e = gauss4(x) = e^(−z²). */
// @ts-ignore: decorator
@inline function cdf4(x: v128, e: v128, c: usize): v128 {
  const one = v128.load(c + C_ONE);
  const z = f32x4.mul(f32x4.abs(x), v128.load(c + C_INV_SQRT2));
  const t = f32x4.div(one, madd(z, v128.load(c + C_ERF_P), one));
  let p = madd(t, v128.load(c + C_ERF_A5), v128.load(c + C_ERF_A4));
  p = madd(p, t, v128.load(c + C_ERF_A3));
  p = madd(p, t, v128.load(c + C_ERF_A2));
  p = madd(p, t, v128.load(c + C_ERF_A1));
  // q = ½·erfc(|x|/√2) = Φ(−|x|)
  const q = f32x4.mul(f32x4.mul(p, t), f32x4.mul(e, v128.load(c + C_HALF)));
  return v128.bitselect(q, f32x4.sub(one, q), f32x4.lt(x, f32x4.splat(0)));
}

/** The first n (< 4) floats at p in the low lanes, zeros above. */
// @ts-ignore: decorator
@inline function loadTail(p: usize, n: i32): v128 {
  let v = f32x4.splat(0);
  if (n > 0) v = f32x4.replace_lane(v, 0, load<f32>(p));
  if (n > 1) v = f32x4.replace_lane(v, 1, load<f32>(p, 4));
  if (n > 2) v = f32x4.replace_lane(v, 2, load<f32>(p, 8));
  return v;
}

/** Stores the low n (< 4) lanes of v at p. */
// @ts-ignore: decorator
@inline function storeTail(p: usize, v: v128, n: i32): void {
  if (n > 0) store<f32>(p, f32x4.extract_lane(v, 0));
  if (n > 1) store<f32>(p, f32x4.extract_lane(v, 1), 4);
  if (n > 2) store<f32>(p, f32x4.extract_lane(v, 2), 8);
}

/** y = x·Φ(x) over n floats. `scratch`: geluScratchBytes(). */
export function geluForward(n: i32, x: usize, y: usize, scratch: usize): void {
  geluConstants(scratch);
  const n4 = n & ~3;
  for (let i = 0; i < n4; i += 4) {
    const o = <usize>i << 2;
    const xv = v128.load(x + o);
    v128.store(y + o, f32x4.mul(xv, cdfRational4(xv, scratch)));
  }
  if (n > n4) {
    const o = <usize>n4 << 2;
    const xv = loadTail(x + o, n - n4);
    storeTail(y + o, f32x4.mul(xv, cdfRational4(xv, scratch)), n - n4);
  }
}

/** dx = dy·(Φ(x) + x·φ(x)), φ(x) = e^(−x²/2)/√(2π), over n floats. `scratch`: geluScratchBytes(). */
export function geluBackward(n: i32, dy: usize, x: usize, dx: usize, scratch: usize): void {
  geluConstants(scratch);
  const n4 = n & ~3;
  for (let i = 0; i < n4; i += 4) {
    const o = <usize>i << 2;
    const xv = v128.load(x + o);
    const e = gauss4(xv, scratch);
    const phi = f32x4.mul(e, v128.load(scratch + C_INV_SQRT_2PI));
    v128.store(dx + o, f32x4.mul(v128.load(dy + o), madd(xv, phi, cdf4(xv, e, scratch))));
  }
  if (n > n4) {
    const o = <usize>n4 << 2;
    const xv = loadTail(x + o, n - n4);
    const e = gauss4(xv, scratch);
    const phi = f32x4.mul(e, v128.load(scratch + C_INV_SQRT_2PI));
    storeTail(dx + o, f32x4.mul(loadTail(dy + o, n - n4), madd(xv, phi, cdf4(xv, e, scratch))), n - n4);
  }
}
