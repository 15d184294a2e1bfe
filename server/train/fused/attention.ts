/**
 * Multi-head self-attention on the fused wasm kernels (server/train/wasm/assembly/attention.ts), or
 * for sequences of 32 tokens and more on ONNX Runtime (onnxRuntime.ts: batched MLAS products, ~1.5×
 * ours at ViT-B/16's 197 tokens): one call per layer forward and one backward, reading each head's
 * q, k and v in place from the fused qkv projection and writing the context with the heads already
 * merged.
 *
 * It replaces, per layer, the reshape/transpose of q, k, v into [n·H, t, dh], the two batched
 * products (depthwise convolutions with their layout transposes), the scale and the softmax, the
 * transpose back, and all their gradients. On the bench ViT (bench/profile_train.ts: B 128, T 17,
 * H 4, dh 16, 6 layers) attention went from ~63 ms/step (DepthwiseConv2dNative ~30, Transpose ~30,
 * Softmax ~2.4, plus multiplies) to ~10 ms/step for both kernels; bench/attention_kernel.ts times
 * them alone.
 */
import * as tf from '@tensorflow/tfjs-core';
import { customGrad, KernelExports, kernelsWith, output, ptr, registerFused, scratchSpace } from './kernels';
import { ortAttentionBackward, ortAttentionForward } from './onnxRuntime';

const ATTENTION = 'VitLensAttention';
const ATTENTION_GRAD = 'VitLensAttentionGrad';

/** Scratch for one head (both passes): Kᵀ or Vᵀ (dh × T4) and the score rows (T × T4), T4 = ⌈T/4⌉·4. */
const scratchBytes = (tokens: number, dh: number) => {
  const t4 = Math.ceil(tokens / 4) * 4;
  return (dh + tokens) * t4 * 4;
};

function register(k: KernelExports): void {
  // qkv [B·T, 3D] → ctx [B·T, D], probs [B, H, T, T] (kept for the backward pass).
  registerFused(ATTENTION, ({ inputs, attrs }) => {
    const { qkv } = inputs as { qkv: tf.TensorInfo };
    const { tokens, heads } = attrs as { tokens: number; heads: number };
    const [rows, threeD] = qkv.shape;
    const D = threeD / 3;
    const dh = D / heads;
    const batch = rows / tokens;
    const ctx = output([rows, D]);
    const probs = output([batch, heads, tokens, tokens]);
    if (ortAttentionForward({ batch, tokens, heads, dh }, ptr(qkv), ptr(ctx), ptr(probs))) return [ctx, probs];
    k.attentionForward(
      batch,
      tokens,
      heads,
      dh,
      ptr(qkv),
      ptr(ctx),
      ptr(probs),
      scratchSpace(scratchBytes(tokens, dh)),
    );
    return [ctx, probs];
  });
  registerFused(ATTENTION_GRAD, ({ inputs }) => {
    const { dctx, qkv, probs } = inputs as { dctx: tf.TensorInfo; qkv: tf.TensorInfo; probs: tf.TensorInfo };
    const [batch, heads, tokens] = probs.shape;
    const dh = dctx.shape[1] / heads;
    const dqkv = output(qkv.shape);
    const shape = { batch, tokens, heads, dh };
    if (ortAttentionBackward(shape, ptr(dctx), ptr(qkv), ptr(probs), ptr(dqkv))) return dqkv;
    k.attentionBackward(
      batch,
      tokens,
      heads,
      dh,
      ptr(dctx),
      ptr(qkv),
      ptr(probs),
      ptr(dqkv),
      scratchSpace(scratchBytes(tokens, dh)),
    );
    return dqkv;
  });
}

// customGrad functions take tensors only, so one per (tokens, heads): a model has one.
const byShape = new Map<string, (qkv: tf.Tensor2D) => tf.Tensor2D>();

function attentionFor(tokens: number, heads: number): (qkv: tf.Tensor2D) => tf.Tensor2D {
  const key = `${tokens}/${heads}`;
  let f = byShape.get(key);
  if (!f) {
    f = customGrad<(qkv: tf.Tensor2D) => tf.Tensor2D>((qkv: tf.Tensor2D, save: tf.GradSaveFunc) => {
      const attrs = { tokens, heads } as unknown as tf.NamedAttrMap;
      const [ctx, probs] = tf.engine().runKernel(ATTENTION, { qkv }, attrs) as tf.Tensor[];
      // probs is not an output: customGrad keeps a clone of what is saved (only while recording
      // gradients) and the forward pass's scope disposes the rest.
      save([qkv, probs]);
      return {
        value: ctx as tf.Tensor2D,
        gradFunc: (dy, [qkvs, ps]) => [
          tf.engine().runKernel(ATTENTION_GRAD, { dctx: dy as tf.Tensor, qkv: qkvs, probs: ps }) as tf.Tensor,
        ],
      };
    });
    byShape.set(key, f);
  }
  return f;
}

/**
 * Self-attention of `batch` sequences of `tokens` tokens with `heads` heads, from the fused
 * projection qkv [batch·tokens, 3D] (q | k | v, each head's dh columns contiguous inside each) to
 * the context [batch·tokens, D] (heads merged, ready for the output projection); scale 1/√dh.
 * Undefined when the fused kernels are not loaded (other backends, VIT_LENS_FUSED_KERNELS=0).
 */
export function fusedAttention(
  qkv: tf.Tensor2D,
  batch: number,
  tokens: number,
  heads: number,
): tf.Tensor2D | undefined {
  if (!kernelsWith(register)) return undefined;
  const [rows, cols] = qkv.shape;
  if (rows !== batch * tokens || cols % (3 * heads) !== 0)
    throw new Error(`fusedAttention: qkv [${qkv.shape}] does not fit ${batch}×${tokens} tokens and ${heads} heads`);
  return attentionFor(tokens, heads)(qkv);
}
