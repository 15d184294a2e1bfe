/**
 * The ViT forward pass plus the backward pass that class-specific relevance (Chefer, Gur & Wolf 2021,
 * "Generic Attention-model Explainability") needs, as one ONNX graph for ONNX Runtime.
 *
 * Relevance needs ∂y_c/∂A_l, the gradient of one class logit with respect to every layer's attention
 * probabilities. onnxruntime-node has no autodiff, so the backward pass is written out here by hand,
 * for the activations only (no weight gradients): it costs about one more forward pass.
 *
 * One image (batch 1, static shapes), tokens as a [T, D] matrix so linear layers are Gemm(transB) on
 * the weights as stored (out, in), and their backward a MatMul with the same initializer.
 *   input  `pixel_values` [1, C, H, W], `target` int64 [1] (the class; −1 = the top-1 prediction)
 *   output `logits` [1, K], `target_used` int64 [1], and per layer `relevance_attention.{i}` [T, T]
 *          = mean over heads of (∂y_c/∂A ⊙ A)⁺ (clamped per head, before the mean).
 * The recurrence R = R + Ā·R over these matrices is done by the caller (server/explain/relevance.ts).
 */
import * as os from 'os';
import { onnx } from 'onnx-proto';
import { attribute, GraphBuilder, IR_VERSION, OPSET, valueInfo } from './onnxBuilder';
import { WeightMap } from './tensor';
import { checkWeights, ViTArch, W } from './vitConfig';

export const RELEVANCE_INPUT = 'pixel_values';
export const RELEVANCE_TARGET = 'target';
export const RELEVANCE_TARGET_USED = 'target_used';
export const RELEVANCE_LOGITS = 'logits';
export const relevanceOutputName = (layer: number): string => `relevance_attention.${layer}`;

export function buildRelevanceOnnx(arch: ViTArch, weights: WeightMap): Uint8Array {
  if (os.endianness() !== 'LE') throw new Error('buildRelevanceOnnx needs a little-endian host');
  checkWeights(arch, name => weights.get(name)?.shape, 'buildRelevanceOnnx');
  const g = new GraphBuilder(weights);
  const [imgH, imgW] = arch.imageSize;
  const P = arch.patchSize;
  const D = arch.hiddenSize;
  const H = arch.numHeads;
  const dh = D / H;
  const T = 1 + (imgH / P) * (imgW / P);
  const K = arch.numClasses;
  const eps = arch.layerNormEps;

  // y = x·Wᵀ + b on [rows, in] (Gemm reads W as stored), and its input gradient g·W.
  const linear = (name: string, x: string, weight: string, bias?: string) =>
    g.node('Gemm', name, bias ? [x, g.weight(weight), g.weight(bias)] : [x, g.weight(weight)], { transB: 1 });
  const linearBack = (name: string, dy: string, weight: string) => g.node('MatMul', name, [dy, g.weight(weight)]);
  // LayerNormalization with its optional Mean and InvStdDev outputs, which the backward pass reuses.
  const layerNorm = (name: string, x: string, gamma: string, beta: string) => {
    const out = { y: name, x, mean: `${name}/mean`, invStd: `${name}/inv_std`, gamma };
    g.nodes.push({
      opType: 'LayerNormalization',
      name,
      input: [x, g.weight(gamma), g.weight(beta)],
      output: [out.y, out.mean, out.invStd],
      attribute: [attribute('axis', -1), attribute('epsilon', { float: eps })],
    });
    return out;
  };
  // dx = r·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)), ĝ = dy·γ, x̂ = (x − μ)·r.
  const layerNormBack = (name: string, dy: string, ln: ReturnType<typeof layerNorm>) => {
    const xhat = g.node('Mul', `${name}/xhat`, [g.node('Sub', `${name}/centred`, [ln.x, ln.mean]), ln.invStd]);
    const gg = g.node('Mul', `${name}/dy_gamma`, [dy, g.weight(ln.gamma)]);
    const m1 = g.node('ReduceMean', `${name}/mean_dy`, [gg], { axes: [-1], keepdims: 1 });
    const m2 = g.node('ReduceMean', `${name}/mean_dy_xhat`, [g.node('Mul', `${name}/dy_xhat`, [gg, xhat])], {
      axes: [-1],
      keepdims: 1,
    });
    const inner = g.node('Sub', `${name}/minus_proj`, [
      g.node('Sub', `${name}/minus_mean`, [gg, m1]),
      g.node('Mul', `${name}/xhat_m2`, [xhat, m2]),
    ]);
    return g.node('Mul', `${name}/dx`, [inner, ln.invStd]);
  };

  const headsShape = g.int64s('const/heads_shape', [T, H, dh]);
  const tokensShape = g.int64s('const/tokens_shape', [T, D]);
  const toHeads = (name: string, x: string, perm: number[]) =>
    g.node('Transpose', name, [g.node('Reshape', `${name}/split`, [x, headsShape])], { perm });
  const fromHeads = (name: string, x: string) =>
    g.node('Reshape', name, [g.node('Transpose', `${name}/tokens`, [x], { perm: [1, 0, 2] }), tokensShape]);
  const qkScale = g.float('const/attn_scale', 1 / Math.sqrt(dh));
  const invSqrt2 = g.float('const/inv_sqrt2', Math.SQRT1_2);
  const half = g.float('const/half', 0.5);
  const minusHalf = g.float('const/minus_half', -0.5);
  const invSqrt2Pi = g.float('const/inv_sqrt_2pi', 1 / Math.sqrt(2 * Math.PI));

  // ---- forward ----
  const conv = g.node('Conv', 'embed/patch_conv', [RELEVANCE_INPUT, g.weight(W.patchWeight), g.weight(W.patchBias)], {
    kernel_shape: [P, P],
    strides: [P, P],
  });
  const patches = g.node(
    'Transpose',
    'embed/tokens_last',
    [g.node('Reshape', 'embed/flatten', [conv, g.int64s('const/grid_shape', [D, T - 1])])],
    { perm: [1, 0] },
  );
  const cls = g.node('Reshape', 'embed/cls', [g.weight(W.clsToken), g.int64s('const/cls_shape', [1, D])]);
  const pos = g.node('Reshape', 'embed/pos', [g.weight(W.posEmbed), tokensShape]);
  let x = g.node('Add', 'embed/add_positions', [
    g.node('Concat', 'embed/prepend_cls', [cls, patches], { axis: 0 }),
    pos,
  ]);

  const blocks = [];
  for (let i = 0; i < arch.numLayers; i++) {
    const w = W.layer(i);
    const at = (s: string) => `layer${i}/${s}`;
    const ln1 = layerNorm(at('ln1'), x, w.norm1Weight, w.norm1Bias);
    const q = linear(at('q'), ln1.y, w.qWeight, arch.qkvBias ? w.qBias : undefined);
    const k = linear(at('k'), ln1.y, w.kWeight, arch.qkvBias ? w.kBias : undefined);
    const v = linear(at('v'), ln1.y, w.vWeight, arch.qkvBias ? w.vBias : undefined);
    const qh = toHeads(at('q_heads'), g.node('Mul', at('q_scaled'), [q, qkScale]), [1, 0, 2]); // [H, T, dh]
    const kh = toHeads(at('k_heads'), k, [1, 0, 2]);
    const vh = toHeads(at('v_heads'), v, [1, 0, 2]);
    const khT = g.node('Transpose', at('k_heads_t'), [kh], { perm: [0, 2, 1] });
    const probs = g.node('Softmax', at('softmax'), [g.node('MatMul', at('scores'), [qh, khT])], { axis: -1 }); // [H, T, T]
    const ctx = fromHeads(at('context'), g.node('MatMul', at('context_heads'), [probs, vh]));
    const x1 = g.node('Add', at('attn_residual'), [x, linear(at('proj'), ctx, w.projWeight, w.projBias)]);
    const ln2 = layerNorm(at('ln2'), x1, w.norm2Weight, w.norm2Bias);
    const u = linear(at('fc1'), ln2.y, w.fc1Weight, w.fc1Bias);
    const cdf = g.node('Add', at('gelu_cdf'), [
      g.node('Mul', at('gelu_half_erf'), [
        g.node('Erf', at('gelu_erf'), [g.node('Mul', at('gelu_scaled'), [u, invSqrt2])]),
        half,
      ]),
      half,
    ]);
    const gelu = g.node('Mul', at('gelu'), [u, cdf]);
    x = g.node('Add', at('mlp_residual'), [x1, linear(at('fc2'), gelu, w.fc2Weight, w.fc2Bias)]);
    blocks.push({ w, at, ln1, qh, kh, vh, probs, ln2, u, cdf });
  }
  const clsToken = g.node('Slice', 'head/cls', [
    x,
    g.int64s('const/zero', [0]),
    g.int64s('const/one_i', [1]),
    g.int64s('const/axis0', [0]),
  ]);
  const lnF = layerNorm('head/final_ln', clsToken, W.finalNormWeight, W.finalNormBias);
  let z = lnF.y;
  let tanh: string | undefined;
  if (arch.preLogitsSize)
    z = tanh = g.node('Tanh', 'head/pre_logits_tanh', [
      linear('head/pre_logits', z, W.preLogitsWeight, W.preLogitsBias),
    ]);
  const logits = linear(RELEVANCE_LOGITS, z, W.headWeight, W.headBias);

  // ---- backward, from d logits = one-hot(target) ----
  const argmax = g.node('ArgMax', 'grad/argmax', [logits], { axis: 1, keepdims: 0 });
  const negative = g.node('Less', 'grad/target_negative', [RELEVANCE_TARGET, g.int64s('const/zero_i', [0])]);
  const target = g.node('Where', RELEVANCE_TARGET_USED, [negative, argmax, RELEVANCE_TARGET]);
  const seed = g.node(
    'OneHot',
    'grad/seed',
    [target, g.int64s('const/classes', [K]), g.floats('const/off_on', [0, 1])],
    { axis: -1 },
  ); // [1, K]
  let dz = linearBack('grad/head', seed, W.headWeight);
  if (tanh) {
    const dtanh = g.node('Sub', 'grad/tanh_deriv', [
      g.float('const/one', 1),
      g.node('Mul', 'grad/tanh_sq', [tanh, tanh]),
    ]);
    dz = linearBack('grad/pre_logits', g.node('Mul', 'grad/pre_logits_tanh', [dz, dtanh]), W.preLogitsWeight);
  }
  const dCls = layerNormBack('grad/final_ln', dz, lnF);
  let dx = g.node('Pad', 'grad/tokens', [dCls, g.int64s('const/pad_tokens', [0, 0, T - 1, 0])]); // only [CLS] reaches the head

  const outputs: onnx.IValueInfoProto[] = [];
  for (let i = arch.numLayers - 1; i >= 0; i--) {
    const { w, at, ln1, qh, kh, vh, probs, ln2, u, cdf } = blocks[i];
    const b = (s: string) => at(`grad/${s}`);
    // MLP: y = x1 + fc2(gelu(fc1(ln2(x1)))); gelu'(u) = Φ(u) + u·φ(u).
    const pdf = g.node('Mul', b('gelu_pdf'), [
      g.node('Exp', b('gelu_exp'), [g.node('Mul', b('gelu_sq'), [g.node('Mul', b('gelu_u2'), [u, u]), minusHalf])]),
      invSqrt2Pi,
    ]);
    const dGelu = g.node('Add', b('gelu_deriv'), [cdf, g.node('Mul', b('gelu_u_pdf'), [u, pdf])]);
    const du = g.node('Mul', b('fc1_out'), [linearBack(b('fc2'), dx, w.fc2Weight), dGelu]);
    const dx1 = g.node('Add', b('x1'), [dx, layerNormBack(b('ln2'), linearBack(b('fc1'), du, w.fc1Weight), ln2)]);
    // Attention: x1 = x + proj(merge(A·V)).
    const dCtx = toHeads(b('context_heads'), linearBack(b('proj'), dx1, w.projWeight), [1, 0, 2]); // [H, T, dh]
    const dProbs = g.node('MatMul', b('probs'), [dCtx, g.node('Transpose', b('v_heads_t'), [vh], { perm: [0, 2, 1] })]); // [H, T, T]
    const cam = g.node('Relu', b('cam_positive'), [g.node('Mul', b('cam'), [dProbs, probs])]);
    const name = relevanceOutputName(i);
    g.node('ReduceMean', name, [cam], { axes: [0], keepdims: 0 });
    outputs.unshift(valueInfo(name, [T, T]));
    if (i === 0) break; // nothing below layer 0's attention is needed
    const probsT = g.node('Transpose', b('probs_t'), [probs], { perm: [0, 2, 1] });
    const dv = fromHeads(b('v'), g.node('MatMul', b('v_heads'), [probsT, dCtx]));
    // Softmax: dS = A ⊙ (dA − Σ_j dA·A); S = q̃·kᵀ with q̃ = q·scale.
    const rowDot = g.node(
      'ReduceSum',
      b('softmax_dot'),
      [g.node('Mul', b('softmax_prod'), [dProbs, probs]), g.int64s('const/last_axis', [-1])],
      { keepdims: 1 },
    );
    const dScores = g.node('Mul', b('scores'), [probs, g.node('Sub', b('softmax_centred'), [dProbs, rowDot])]);
    const dq = g.node('Mul', b('q'), [
      fromHeads(b('q_scaled'), g.node('MatMul', b('q_heads'), [dScores, kh])),
      qkScale,
    ]);
    const dk = fromHeads(
      b('k'),
      g.node('MatMul', b('k_heads'), [g.node('Transpose', b('scores_t'), [dScores], { perm: [0, 2, 1] }), qh]),
    );
    const dLn1 = g.node('Add', b('ln1_out'), [
      g.node('Add', b('ln1_qk'), [linearBack(b('q_in'), dq, w.qWeight), linearBack(b('k_in'), dk, w.kWeight)]),
      linearBack(b('v_in'), dv, w.vWeight),
    ]);
    dx = g.node('Add', b('x'), [dx1, layerNormBack(b('ln1'), dLn1, ln1)]);
  }

  return onnx.ModelProto.encode({
    irVersion: IR_VERSION,
    opsetImport: [{ domain: '', version: OPSET }],
    producerName: 'vit-lens',
    graph: {
      name: 'vit_relevance',
      input: [
        valueInfo(RELEVANCE_INPUT, [1, arch.numChannels, imgH, imgW]),
        {
          ...valueInfo(RELEVANCE_TARGET, [1]),
          type: { tensorType: { elemType: onnx.TensorProto.DataType.INT64, shape: { dim: [{ dimValue: 1 }] } } },
        },
      ],
      output: [
        valueInfo(logits, [1, K]),
        {
          ...valueInfo(target, [1]),
          type: { tensorType: { elemType: onnx.TensorProto.DataType.INT64, shape: { dim: [{ dimValue: 1 }] } } },
        },
        ...outputs,
      ],
      node: g.nodes,
      initializer: g.initializers,
    },
  }).finish();
}
