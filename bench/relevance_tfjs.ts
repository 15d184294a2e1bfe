/**
 * `node --import tsx bench/relevance_tfjs.ts [--runs 2]`: the alternative to our ONNX backward graph for
 * class relevance, measured. ViT-B/16 (random weights) on the trainer's TF.js (wasm + fused kernels,
 * what the worker would load lazily) — a forward pass, and a forward pass plus the gradient of one
 * logit with respect to the pixels, which needs the same backward pass through every block as the
 * attention gradients do (a lower bound for that route) — against ONNX Runtime on the same weights:
 * one inference and one relevance map (server/model/relevanceGraph.ts). Interleaved, medians.
 */
import * as tf from '@tensorflow/tfjs-core';
import { performance } from 'perf_hooks';
import { initBackend } from '../server/train/backend';
import { initialWeights } from '../server/train/initWeights';
import { logits, Params } from '../server/train/vitModel';
import { buildVitOnnx } from '../server/model/onnxBuilder';
import { buildRelevanceOnnx } from '../server/model/relevanceGraph';
import { VitSession } from '../server/inference';
import * as ort from 'onnxruntime-node';

const runs = Number(process.argv[process.argv.indexOf('--runs') + 1] || 2);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

(async () => {
  const backend = await initBackend('wasm');
  const { arch, weights } = await initialWeights('scratch:base', { numClasses: 1000, seed: 0 });
  // initialWeights zeroes the head; give it values so the gradient is not zero.
  const head = weights.get('classifier.weight')!;
  for (let i = 0; i < head.data.length; i++) head.data[i] = Math.sin(i) * 0.02;
  const params: Params = new Map();
  for (const [n, t] of weights) params.set(n, tf.variable(tf.tensor(t.data, t.shape), false));
  const x = new Float32Array(3 * 224 * 224).map((_, i) => Math.sin(i * 0.37));
  const ortInfer = await VitSession.create(
    buildVitOnnx(arch, weights),
    { input: 'pixel_values', logits: 'logits' },
    { provider: 'cpu' },
  );
  const ortRelevance = await ort.InferenceSession.create(buildRelevanceOnnx(arch, weights), {
    graphOptimizationLevel: 'all',
    executionProviders: ['cpu'],
  });

  const tfForward = () =>
    tf.tidy(() => logits(params, arch, { kind: 'pixels', x: tf.tensor4d(x, [1, 3, 224, 224]) }).dataSync());
  const tfGradient = () =>
    tf.tidy(() => {
      const g = tf.grad((px: tf.Tensor) =>
        logits(params, arch, { kind: 'pixels', x: px as tf.Tensor4D })
          .slice([0, 3], [1, 1])
          .sum(),
      );
      return g(tf.tensor4d(x, [1, 3, 224, 224])).dataSync();
    });
  const ortOnce = () => ortInfer.run(x, [1, 3, 224, 224]);
  const ortRel = () =>
    ortRelevance.run({
      pixel_values: new ort.Tensor('float32', x, [1, 3, 224, 224]),
      target: new ort.Tensor('int64', BigInt64Array.from([3n]), [1]),
    });

  const times: Record<string, number[]> = {
    ortInference: [],
    ortRelevance: [],
    tfjsForward: [],
    tfjsForwardBackward: [],
  };
  const time = async (name: string, f: () => unknown) => {
    const t0 = performance.now();
    await f();
    times[name].push(performance.now() - t0);
  };
  await ortOnce();
  await ortRel();
  tfForward();
  tfGradient();
  for (let r = 0; r < runs; r++) {
    await time('ortInference', ortOnce);
    await time('ortRelevance', ortRel);
    await time('tfjsForward', tfForward);
    await time('tfjsForwardBackward', tfGradient);
  }
  const inf = median(times.ortInference);
  console.log(`ViT-B/16, batch 1, ${runs} runs each, TF.js ${backend.name} (${backend.notes.join('; ')}), ORT CPU`);
  for (const [name, ts] of Object.entries(times))
    console.log(
      `${name.padEnd(22)}${median(ts).toFixed(0).padStart(8)} ms  ${(median(ts) / inf).toFixed(2)}× one ORT inference`,
    );
})();
