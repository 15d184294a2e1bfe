/**
 * The ViT forward pass in TensorFlow.js, for training. Same model as the engine's ONNX graph
 * (server/model/onnxBuilder.ts) and Hugging Face's ViTForImageClassification: pre-LN blocks, exact GELU,
 * [CLS] token, learned position embedding, optional tanh pre-logits, linear head.
 *
 * Written as plain functions over a map of variables keyed by the canonical weight names, so that
 * checkpoints, export and the optimizer all speak the same names. Two choices are forced by the wasm
 * backend, which has no gradient kernels for Conv2DBackpropFilter or UnsortedSegmentSum (gather):
 * the patch embedding is a reshape + matMul, and [CLS] is taken with slice, never gather.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ViTArch, W } from '../model/vitConfig';
import { fusedAttention } from './fused/attention';
import { fusedKernels } from './fused/kernels';
import { fusedLinear } from './fused/linear';
import { fusedGelu, fusedLayerNorm } from './fused/norm';
import type { Mode } from '../../common/training';

export type Params = Map<string, tf.Variable>;

/** Where a forward pass starts: raw pixels, tokens entering block `fromBlock`, or final [CLS] features. */
export type ForwardInput =
  | { kind: 'pixels'; x: tf.Tensor4D }
  | { kind: 'tokens'; x: tf.Tensor3D; fromBlock: number }
  | { kind: 'features'; x: tf.Tensor2D };

function p(params: Params, name: string): tf.Variable {
  const v = params.get(name);
  if (!v) throw new Error(`vitModel: missing parameter "${name}"`);
  return v;
}

/**
 * x [M, in] · W(out, in)ᵀ with hand-written gradients. The wasm backend's BatchMatMul is only fast
 * (XNNPACK) for untransposed 2-D operands; with transposeA/B it falls back to a loop ~7× slower,
 * and tf.matMul's own gradients use exactly those flags. Explicit transposes are cheap by comparison.
 */
const matMulWt = tf.customGrad(((x: tf.Tensor, w: tf.Tensor, save: tf.GradSaveFunc) => {
  save([x, w]);
  return {
    value: tf.matMul(x as tf.Tensor2D, tf.transpose(w as tf.Tensor2D)),
    gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
      const g = dy as tf.Tensor2D;
      const [xs, ws] = saved as [tf.Tensor2D, tf.Tensor2D];
      return [tf.matMul(g, ws), tf.matMul(tf.transpose(g), xs)];
    },
  };
}) as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (x: tf.Tensor2D, w: tf.Tensor2D) => tf.Tensor2D;

/**
 * Batched product of small matrices, a [G, M, K] · b [G, K, N] (either operand transposed by flag).
 * The wasm backend runs every batched BatchMatMul through a scalar loop (~1.6 GFLOP/s; 2.4–3.1 ms
 * for the bench's 512 × 17×17×16 attention products). A depthwise convolution computes the same sums
 * with XNNPACK: the G groups are channels, a's rows are the image height, K is a 1×K window and b is
 * a per-channel filter with N outputs per channel (channel multiplier). 0.9–1.3 ms including the
 * layout transposes, same summation order (bit-identical results in our checks).
 */
function bmmRaw(a: tf.Tensor3D, b: tf.Tensor3D, ta: boolean, tb: boolean): tf.Tensor3D {
  if (tf.getBackend() !== 'wasm') return tf.matMul(a, b, ta, tb);
  const G = a.shape[0];
  const [M, K] = ta ? [a.shape[2], a.shape[1]] : [a.shape[1], a.shape[2]];
  const N = tb ? b.shape[1] : b.shape[2];
  const x = a.transpose(ta ? [2, 1, 0] : [1, 2, 0]).reshape([1, M, K, G]) as tf.Tensor4D;
  const f = b.transpose(tb ? [2, 0, 1] : [1, 0, 2]).reshape([1, K, G, N]) as tf.Tensor4D;
  return tf.depthwiseConv2d(x, f, 1, 'valid').reshape([M, G, N]).transpose([1, 0, 2]) as tf.Tensor3D;
}

function bmm(a: tf.Tensor3D, b: tf.Tensor3D, ta = false, tb = false): tf.Tensor3D {
  const f = tf.customGrad(((x: tf.Tensor, y: tf.Tensor, save: tf.GradSaveFunc) => {
    save([x, y]);
    return {
      value: bmmRaw(x as tf.Tensor3D, y as tf.Tensor3D, ta, tb),
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const g = dy as tf.Tensor3D;
        const [xs, ys] = saved as [tf.Tensor3D, tf.Tensor3D];
        const dx = ta ? bmmRaw(ys, g, tb, true) : bmmRaw(g, ys, false, !tb);
        const dyv = tb ? bmmRaw(g, xs, true, ta) : bmmRaw(xs, g, !ta, false);
        return [dx, dyv];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (x: tf.Tensor3D, y: tf.Tensor3D) => tf.Tensor3D;
  return f(a, b);
}

/**
 * x [M, in] · W(out, in)ᵀ + b with hand-written gradients (see matMulWt). The bias gradient sums the
 * transposed dy the weight gradient needs anyway along its last axis: the wasm backend's Sum over
 * axis 0 transposes internally (0.16–0.6 ms for the bench's 2176×64/128 gradients vs 0.09–0.15 ms).
 * A ones-row matMul is no better: XNNPACK repacks its right operand, a new tensor each step.
 */
const matMulWtBias = tf.customGrad(((x: tf.Tensor, w: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
  save([x, w]);
  return {
    value: tf.matMul(x as tf.Tensor2D, tf.transpose(w as tf.Tensor2D)).add(b),
    gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
      const g = dy as tf.Tensor2D;
      const [xs, ws] = saved as [tf.Tensor2D, tf.Tensor2D];
      const gT = tf.transpose(g);
      return [tf.matMul(g, ws), tf.matMul(gT, xs), gT.sum(1)];
    },
  };
}) as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (
  x: tf.Tensor2D,
  w: tf.Tensor2D,
  b: tf.Tensor1D,
) => tf.Tensor2D;

/**
 * residual + x [..., in] · W(out, in)ᵀ + b, on the flattened leading dimensions. With the fused
 * kernels the residual (a block's skip connection) is added inside the GEMM instead of by a pass.
 */
function linear(x: tf.Tensor, weight: tf.Tensor, bias: tf.Tensor | undefined, residual?: tf.Tensor): tf.Tensor {
  const shape = x.shape;
  const outShape = [...shape.slice(0, -1), weight.shape[0]];
  const flat = x.reshape([-1, shape[shape.length - 1]]) as tf.Tensor2D;
  const w = weight as tf.Tensor2D;
  const b = bias as tf.Tensor1D | undefined;
  const fused = fusedLinear(flat, w, b, residual?.reshape([flat.shape[0], w.shape[0]]) as tf.Tensor2D | undefined);
  if (fused) return fused.reshape(outShape);
  const y = (b ? matMulWtBias(flat, w, b) : matMulWt(flat, w)).reshape(outShape);
  return residual ? residual.add(y) : y;
}

/**
 * LayerNorm over the last axis, on the flattened rows [M, D], with a hand-written backward:
 *   x̂ = (x − μ)·r, r = 1/√(σ² + ε), y = x̂·γ + β
 *   dx = r·(g − mean(g) − x̂·mean(g·x̂)), g = dy·γ;  dγ = Σ dy·x̂, dβ = Σ dy (over rows).
 * Autodiff of the moments-based formula ran ~25 small kernels per norm and saved more tensors.
 */
function layerNormRows(eps: number) {
  return tf.customGrad(((x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, save: tf.GradSaveFunc) => {
    const xc = x.sub(x.mean(-1, true));
    const r = tf.rsqrt(xc.square().mean(-1, true).add(eps));
    const xhat = xc.mul(r);
    save([xhat, r, gamma]);
    return {
      value: xhat.mul(gamma).add(beta),
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const d = dy as tf.Tensor2D;
        const [xh, rs, gm] = saved;
        const g = d.mul(gm);
        const dx = g
          .sub(g.mean(-1, true))
          .sub(xh.mul(g.mul(xh).mean(-1, true)))
          .mul(rs);
        return [dx, d.mul(xh).sum(0), d.sum(0)];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (
    x: tf.Tensor2D,
    g: tf.Tensor1D,
    b: tf.Tensor1D,
  ) => tf.Tensor2D;
}
const layerNormByEps = new Map<number, ReturnType<typeof layerNormRows>>();

/** LayerNorm over the last axis: the fused wasm kernel when loaded (server/train/fused/norm.ts), else layerNormRows. */
function layerNorm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, eps: number): tf.Tensor {
  const D = x.shape[x.shape.length - 1];
  const rows = x.reshape([-1, D]) as tf.Tensor2D;
  const fused = fusedLayerNorm(rows, gamma as tf.Tensor1D, beta as tf.Tensor1D, eps);
  if (fused) return fused.reshape(x.shape);
  let f = layerNormByEps.get(eps);
  if (!f) layerNormByEps.set(eps, (f = layerNormRows(eps)));
  return f(rows, gamma as tf.Tensor1D, beta as tf.Tensor1D).reshape(x.shape);
}

/**
 * Exact GELU: 0.5·x·(1 + erf(x/√2)), as torch's nn.GELU() and HF's "gelu". Hand-written gradient:
 * Φ(x) + x·φ(x), with Φ = 0.5·(1 + erf(x/√2)) kept from the forward pass.
 */
const geluOps = tf.customGrad(((x: tf.Tensor, save: tf.GradSaveFunc) => {
  const cdf = tf.erf(x.mul(Math.SQRT1_2)).mul(0.5).add(0.5);
  save([x, cdf]);
  return {
    value: x.mul(cdf),
    gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
      const [xs, c] = saved;
      const pdf = tf.exp(xs.square().mul(-0.5)).mul(1 / Math.sqrt(2 * Math.PI));
      return [(dy as tf.Tensor).mul(c.add(xs.mul(pdf)))];
    },
  };
}) as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (x: tf.Tensor) => tf.Tensor;

/** Exact GELU: the fused wasm kernel when loaded (one pass each way instead of ~10 kernels), else geluOps. */
const gelu = (x: tf.Tensor): tf.Tensor => fusedGelu(x) ?? geluOps(x);

/** Pixels [N, C, H, W] → tokens [N, 1 + gh·gw, D] (patches, [CLS] prepended, positions added). */
export function embed(params: Params, arch: ViTArch, pixels: tf.Tensor4D): tf.Tensor3D {
  const [n, c, h, w] = pixels.shape;
  const P = arch.patchSize;
  const gh = h / P;
  const gw = w / P;
  const D = arch.hiddenSize;
  // [N, C, gh, P, gw, P] → [N, gh, gw, C, P, P]: each patch flattened in the conv weight's (C, P, P) order.
  // Two 4-D transposes instead of one 6-D one: the wasm backend's 6-D transpose is a generic
  // index loop (17 ms for a 128×3×28×28 batch), its 4-D one is fast (0.5 ms for both).
  const patches = pixels
    .reshape([n * c * gh, P, gw, P])
    .transpose([0, 2, 1, 3]) // [N·C·gh, gw, P, P]
    .reshape([n, c, gh * gw, P * P])
    .transpose([0, 2, 1, 3]) // [N, gh·gw, C, P·P]
    .reshape([n * gh * gw, c * P * P]) as tf.Tensor2D;
  const kernel = p(params, W.patchWeight).reshape([D, c * P * P]) as tf.Tensor2D;
  const tokens = linear(patches, kernel, p(params, W.patchBias)).reshape([n, gh * gw, D]);
  // [CLS] repeated by a broadcasting add, whose gradient is one Sum: tile's (and broadcastTo's, which
  // runs Tile) is one Slice + Add per image, 256 kernels at batch 128.
  const cls = tf.zeros([n, 1, D]).add(p(params, W.clsToken));
  return tf.concat([cls, tokens], 1).add(p(params, W.posEmbed)) as tf.Tensor3D;
}

export function block(params: Params, arch: ViTArch, i: number, x: tf.Tensor3D): tf.Tensor3D {
  const l = W.layer(i);
  const [n, t, D] = x.shape;
  const H = arch.numHeads;
  const dh = D / H;
  const eps = arch.layerNormEps;
  const bias = (name: string) => (arch.qkvBias ? p(params, name) : undefined);
  const h = layerNorm(x, p(params, l.norm1Weight), p(params, l.norm1Bias), eps);
  let ctx: tf.Tensor;
  if (fusedKernels()) {
    // One projection for q, k and v (a single GEMM reading h once), then one attention kernel that
    // reads each head in place from its columns and writes the heads merged: no layout transposes.
    // The weights are concatenated each step (Concat forward, SplitV for their gradients: ~1.5 ms/step
    // on the bench ViT), far less than the per-head transposes this path avoids.
    const wqkv = tf.concat([p(params, l.qWeight), p(params, l.kWeight), p(params, l.vWeight)], 0);
    const bqkv = arch.qkvBias ? tf.concat([p(params, l.qBias), p(params, l.kBias), p(params, l.vBias)], 0) : undefined;
    const qkv = linear(h, wqkv, bqkv).reshape([n * t, 3 * D]) as tf.Tensor2D;
    ctx = fusedAttention(qkv, n, t, H)!;
  } else {
    const heads = (y: tf.Tensor) =>
      y
        .reshape([n, t, H, dh])
        .transpose([0, 2, 1, 3])
        .reshape([n * H, t, dh]) as tf.Tensor3D;
    const q = heads(linear(h, p(params, l.qWeight), bias(l.qBias)));
    const k = heads(linear(h, p(params, l.kWeight), bias(l.kBias)));
    const v = heads(linear(h, p(params, l.vWeight), bias(l.vBias)));
    const attn = tf.softmax(bmm(q, k, false, true).mul(1 / Math.sqrt(dh)), -1) as tf.Tensor3D;
    ctx = bmm(attn, v).reshape([n, H, t, dh]).transpose([0, 2, 1, 3]).reshape([n, t, D]);
  }
  const x1 = linear(ctx, p(params, l.projWeight), p(params, l.projBias), x).reshape([n, t, D]);
  const h2 = layerNorm(x1, p(params, l.norm2Weight), p(params, l.norm2Bias), eps);
  return linear(
    gelu(linear(h2, p(params, l.fc1Weight), p(params, l.fc1Bias))),
    p(params, l.fc2Weight),
    p(params, l.fc2Bias),
    x1,
  ) as tf.Tensor3D;
}

/** Final LayerNorm on the [CLS] token → features [N, D]. */
export function clsFeatures(params: Params, arch: ViTArch, x: tf.Tensor3D): tf.Tensor2D {
  const [n, , D] = x.shape;
  // LayerNorm is per token, so normalising only [CLS] equals normalising all tokens and then slicing.
  const cls = tf.slice(x, [0, 0, 0], [n, 1, D]).reshape([n, D]);
  return layerNorm(cls, p(params, W.finalNormWeight), p(params, W.finalNormBias), arch.layerNormEps) as tf.Tensor2D;
}

export function head(params: Params, arch: ViTArch, features: tf.Tensor2D): tf.Tensor2D {
  let f: tf.Tensor = features;
  if (arch.preLogitsSize) f = tf.tanh(linear(f, p(params, W.preLogitsWeight), p(params, W.preLogitsBias)));
  return linear(f, p(params, W.headWeight), p(params, W.headBias)) as tf.Tensor2D;
}

/** Tokens after blocks [0, toBlock) — what last-k mode caches (toBlock = L − k). */
export function tokensBefore(params: Params, arch: ViTArch, pixels: tf.Tensor4D, toBlock: number): tf.Tensor3D {
  let x = embed(params, arch, pixels);
  for (let i = 0; i < toBlock; i++) x = block(params, arch, i, x);
  return x;
}

export function logits(params: Params, arch: ViTArch, input: ForwardInput): tf.Tensor2D {
  if (input.kind === 'features') return head(params, arch, input.x);
  let x = input.kind === 'pixels' ? embed(params, arch, input.x) : input.x;
  for (let i = input.kind === 'pixels' ? 0 : input.fromBlock; i < arch.numLayers; i++) x = block(params, arch, i, x);
  return head(params, arch, clsFeatures(params, arch, x));
}

/** Mean cross-entropy with label smoothing, as torch's CrossEntropyLoss(label_smoothing=ε). */
export function crossEntropy(logitsT: tf.Tensor2D, labels: Int32Array, smoothing: number): tf.Scalar {
  const K = logitsT.shape[1];
  const target = tf.tidy(() =>
    tf
      .oneHot(tf.tensor1d(labels, 'int32'), K)
      .toFloat()
      .mul(1 - smoothing)
      .add(smoothing / K),
  );
  const loss = tf.logSoftmax(logitsT).mul(target).sum(1).neg().mean() as tf.Scalar;
  target.dispose();
  return loss;
}

/** Names of the parameters a mode trains; everything else stays frozen. */
export function trainableNames(arch: ViTArch, mode: Mode, lastK: number): string[] {
  const headNames: string[] = [W.headWeight, W.headBias];
  if (arch.preLogitsSize) headNames.unshift(W.preLogitsWeight, W.preLogitsBias);
  const blockNames = (i: number) =>
    Object.values(W.layer(i)).filter(n => arch.qkvBias || !/\.(query|key|value)\.bias$/.test(n));
  if (mode === 'head') return headNames;
  const out: string[] = [];
  if (mode === 'full') out.push(W.clsToken, W.posEmbed, W.patchWeight, W.patchBias);
  const first = mode === 'full' ? 0 : arch.numLayers - lastK;
  for (let i = first; i < arch.numLayers; i++) out.push(...blockNames(i));
  out.push(W.finalNormWeight, W.finalNormBias, ...headNames);
  return out;
}
