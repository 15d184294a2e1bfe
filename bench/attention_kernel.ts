/**
 * Times the fused attention kernels (server/train/wasm/assembly/attention.ts) on one shape:
 *   kernel  — the wasm calls alone on preallocated buffers; with --sets N > 1 the calls rotate over
 *             N sets of buffers, so inputs are not all in cache (closer to a training step)
 *   op      — fusedAttention through the engine, forward and forward + backward (allocations,
 *             customGrad and tape included)
 *
 *   node --import tsx bench/attention_kernel.ts [--batch 128] [--tokens 17] [--heads 4] [--dh 16] [--reps 100] [--sets 1]
 *
 * Prints the minimum and median ms per call: the machine may be shared, and the minimum is the steadier number.
 */
import { parseArgs } from 'util';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../server/train/backend';
import { fusedAttention } from '../server/train/fused/attention';
import { fusedKernels, output, ptr, scratchSpace } from '../server/train/fused/kernels';

const { values: o } = parseArgs({
  options: {
    batch: { type: 'string', default: '128' },
    tokens: { type: 'string', default: '17' },
    heads: { type: 'string', default: '4' },
    dh: { type: 'string', default: '16' },
    reps: { type: 'string', default: '100' },
    sets: { type: 'string', default: '1' },
  },
});

const stats = (ms: number[]) => {
  ms.sort((x, y) => x - y);
  return `min ${ms[0].toFixed(3)} ms, median ${ms[ms.length >> 1].toFixed(3)} ms`;
};

(async () => {
  const backend = await initBackend('wasm');
  const k = fusedKernels();
  if (!k) throw new Error(`fused kernels not loaded: ${backend.notes.join('; ')}`);
  const [B, T, H, dh, reps, nSets] = [o.batch, o.tokens, o.heads, o.dh, o.reps, o.sets].map(Number);
  const D = H * dh;
  console.log(`${backend.notes.join('; ')}; B ${B}, T ${T}, H ${H}, dh ${dh}`);

  const sets = Array.from({ length: nSets }, () => ({
    qkv: tf.randomNormal([B * T, 3 * D]),
    dctx: tf.randomNormal([B * T, D]),
    ctx: output([B * T, D]),
    probs: output([B, H, T, T]),
    dqkv: output([B * T, 3 * D]),
  }));
  const scratch = scratchSpace((dh + T) * Math.ceil(T / 4) * 4 * 4);
  const fwd: number[] = [];
  const bwd: number[] = [];
  for (let r = 0; r < reps + 10; r++) {
    const s = sets[r % nSets];
    const t0 = performance.now();
    k.attentionForward(B, T, H, dh, ptr(s.qkv), ptr(s.ctx), ptr(s.probs), scratch);
    const t1 = performance.now();
    k.attentionBackward(B, T, H, dh, ptr(s.dctx), ptr(s.qkv), ptr(s.probs), ptr(s.dqkv), scratch);
    const t2 = performance.now();
    if (r >= 10) {
      fwd.push(t1 - t0);
      bwd.push(t2 - t1);
    }
  }
  console.log(`kernel forward:  ${stats(fwd)}\nkernel backward: ${stats(bwd)}`);

  const qkv = sets[0].qkv as tf.Tensor2D;
  const w = sets[0].dctx;
  const time = (f: () => void) => {
    const ms: number[] = [];
    for (let i = 0; i < reps + 3; i++) {
      const t0 = performance.now();
      f();
      if (i >= 3) ms.push(performance.now() - t0);
    }
    return stats(ms);
  };
  // dataSync waits for nothing on wasm but makes sure the result is used; tidy returns nothing
  // (it walks returned containers element by element).
  const op = time(() => tf.tidy(() => void fusedAttention(qkv, B, T, H)!.dataSync()));
  const opGrad = time(() =>
    tf.tidy(
      () =>
        void tf
          .grads((x: tf.Tensor) =>
            fusedAttention(x as tf.Tensor2D, B, T, H)!
              .mul(w)
              .sum(),
          )([qkv])[0]
          .dataSync(),
    ),
  );
  console.log(
    `op forward:            ${op}\nop forward + backward: ${opGrad} (includes a Multiply and Sum for the loss)`,
  );
})();
