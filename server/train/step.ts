/** One forward + backward pass: the loss and the gradients of the trainable parameters. */
import * as tf from '@tensorflow/tfjs-core';
import type { ViTArch } from '../model/vitConfig';
import { crossEntropy, ForwardInput, logits, Params } from './vitModel';

export interface StepResult {
  loss: number;
  grads: Map<string, tf.Tensor>;
  /** How many of the batch's predictions (argmax) were right. */
  correct: number;
}

export function lossAndGrads(
  params: Params,
  arch: ViTArch,
  trainable: readonly string[],
  input: ForwardInput,
  labels: Int32Array,
  smoothing: number,
): StepResult {
  const vars = trainable.map((n) => params.get(n)!);
  let correct = 0;
  const { value, grads } = tf.variableGrads(() => {
    const z = logits(params, arch, input);
    correct = tf.tidy(() => countCorrect(z, labels));
    return crossEntropy(z, labels, smoothing);
  }, vars);
  const loss = value.dataSync()[0];
  value.dispose();
  const byName = new Map<string, tf.Tensor>();
  for (const n of trainable) byName.set(n, grads[params.get(n)!.name]);
  return { loss, grads: byName, correct };
}

function countCorrect(z: tf.Tensor2D, labels: Int32Array): number {
  const pred = z.argMax(1).dataSync();
  let c = 0;
  for (let i = 0; i < labels.length; i++) if (pred[i] === labels[i]) c++;
  return c;
}
