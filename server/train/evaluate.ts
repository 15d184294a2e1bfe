/** Validation pass: loss, accuracy, per-class accuracy, confusion matrix and per-image probabilities. */
import * as tf from '@tensorflow/tfjs-core';
import type { ViTArch } from '../model/vitConfig';
import type { Sample } from './datasetFolder';
import type { HeldOutPrediction } from './runFiles';
import { crossEntropy, ForwardInput, logits, Params } from './vitModel';
import { throwIfWebGpuFailed } from './webgpuKernels';

export interface Evaluation {
  loss: number;
  acc: number;
  perClassAcc: (number | null)[];
  confusion: number[][];
  predictions: HeldOutPrediction[];
}

export async function evaluate(
  params: Params,
  arch: ViTArch,
  samples: Sample[],
  batchSize: number,
  loadBatch: (batch: Sample[]) => Promise<{ input: ForwardInput; kept: Sample[] }>,
  /** The batch's logits; by default computed here (a data-parallel run spreads them over its threads). */
  logitsOf: (input: ForwardInput, n: number) => Promise<tf.Tensor2D> | tf.Tensor2D = input =>
    tf.tidy(() => logits(params, arch, input) as tf.Tensor2D),
): Promise<Evaluation> {
  const K = arch.numClasses;
  const confusion = Array.from({ length: K }, () => new Array<number>(K).fill(0));
  const predictions: HeldOutPrediction[] = [];
  let lossSum = 0;
  let seen = 0;
  for (let i = 0; i < samples.length; i += batchSize) {
    const { input, kept } = await loadBatch(samples.slice(i, i + batchSize));
    if (!kept.length) continue;
    const labels = Int32Array.from(kept.map(s => s.label));
    // Read back with data(): the WebGPU backend has no synchronous read in Node.
    const z = await logitsOf(input, kept.length);
    input.x.dispose();
    const [lossT, probsT] = tf.tidy(() => [crossEntropy(z, labels, 0), tf.softmax(z)]);
    z.dispose();
    const [loss] = await lossT.data();
    const probs = (await probsT.data()) as Float32Array;
    tf.dispose([lossT, probsT]);
    throwIfWebGpuFailed();
    lossSum += loss * kept.length;
    seen += kept.length;
    kept.forEach((s, j) => {
      const p = Array.from(probs.subarray(j * K, (j + 1) * K));
      let best = 0;
      for (let k = 1; k < K; k++) if (p[k] > p[best]) best = k;
      confusion[s.label][best]++;
      predictions.push({
        file: s.file,
        label: s.label,
        predicted: best,
        probabilities: p.map(v => Math.round(v * 1e6) / 1e6),
      });
    });
  }
  const correct = confusion.reduce((a, row, k) => a + row[k], 0);
  const perClassAcc = confusion.map((row, k) => {
    const n = row.reduce((a, b) => a + b, 0);
    return n ? row[k] / n : null;
  });
  return { loss: seen ? lossSum / seen : NaN, acc: seen ? correct / seen : 0, perClassAcc, confusion, predictions };
}
