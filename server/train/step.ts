/**
 * One forward + backward pass: the loss and the gradients of the trainable parameters. Async: the
 * loss and predictions are read back with data(), since the WebGPU backend has no synchronous read in Node.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ViTArch } from '../model/vitConfig';
import { crossEntropy, ForwardInput, logits, Params } from './vitModel';
import { throwIfWebGpuFailed } from './webgpuKernels';

export interface StepResult {
  loss: number;
  grads: Map<string, tf.Tensor>;
  /** How many of the batch's predictions (argmax) were right. */
  correct: number;
}

export async function lossAndGrads(
  params: Params,
  arch: ViTArch,
  trainable: readonly string[],
  input: ForwardInput,
  labels: Int32Array,
  smoothing: number,
): Promise<StepResult> {
  const vars = trainable.map(n => params.get(n)!);
  let predicted: tf.Tensor | undefined;
  const { value, grads } = tf.variableGrads(() => {
    const z = logits(params, arch, input);
    predicted = tf.keep(tf.tidy(() => z.argMax(1)));
    return crossEntropy(z, labels, smoothing);
  }, vars);
  const [loss] = await value.data();
  const pred = await predicted!.data();
  value.dispose();
  predicted!.dispose();
  throwIfWebGpuFailed();
  let correct = 0;
  for (let i = 0; i < labels.length; i++) if (pred[i] === labels[i]) correct++;
  const byName = new Map<string, tf.Tensor>();
  for (const n of trainable) byName.set(n, grads[params.get(n)!.name]);
  return { loss, grads: byName, correct };
}
