/**
 * `node --import tsx bench/lastk_tokens.ts`: the frozen part of last-k training on the built-in model
 * (models/default) for 512 Fashion-MNIST images in batches of 64 — tokens after block L−k from our
 * TF.js blocks (wasm), from ONNX Runtime on the graph truncated after block L−k (what the trainer
 * uses), and from the full graph with the block's output added as an extra graph output — for k = 2
 * and k = 1. Three timed passes each after one warm-up batch. Needs dataset-fashion-mnist.
 */
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { onnx } from 'onnx-proto';
import { initBackend } from '../server/train/backend';
import { initialWeights } from '../server/train/initWeights';
import { buildVitOnnx, hiddenOutputName } from '../server/model/onnxBuilder';
import { VitSession } from '../server/inference';
import { tokensBefore, Params } from '../server/train/vitModel';
import { fashionMnistData } from '../server/train/fashionMnist';
(async () => {
  await initBackend('wasm');
  const init = await initialWeights(path.join(__dirname, '..', 'models', 'default'), { numClasses: 10, seed: 0 });
  const arch = init.arch;
  const [H, W] = arch.imageSize;
  const C = 3;
  const N = 512,
    B = 64;
  const { data } = fashionMnistData({ limit: N });
  const px = new Float32Array(N * C * H * W);
  for (let i = 0; i < N; i++) px.set(await data.loader(data.train[i]), i * C * H * W);
  const params: Params = new Map();
  for (const [n, t] of init.weights) params.set(n, tf.variable(tf.tensor(t.data, t.shape), false));
  const time = async (name: string, f: (x: Float32Array, n: number) => Promise<Float32Array>) => {
    await f(px.subarray(0, B * C * H * W), B);
    const ts: number[] = [];
    for (let r = 0; r < 3; r++) {
      const t0 = performance.now();
      for (let b = 0; b < N; b += B) await f(px.subarray(b * C * H * W, (b + B) * C * H * W), B);
      ts.push(performance.now() - t0);
    }
    console.log(name, ts.map(t => t.toFixed(0)).join(' / '), 'ms for', N);
  };
  for (const k of [2, 1]) {
    const from = arch.numLayers - k;
    const hid = hiddenOutputName(from);
    await time(`k=${k} TF.js tokensBefore        `, async (x, n) =>
      tf.tidy(() => tokensBefore(params, arch, tf.tensor4d(x, [n, C, H, W]), from).dataSync() as Float32Array),
    );
    const trunc = await VitSession.create(buildVitOnnx(arch, init.weights, { hiddenAfter: from }), {
      input: 'pixel_values',
      logits: hid,
    });
    await time(
      `k=${k} ORT truncated graph         `,
      async (x, n) => (await trunc.fetch(x, [n, C, H, W], [hid]))[hid].data as Float32Array,
    );
    // The alternative: the full graph with the block output added as one more graph output.
    const m = onnx.ModelProto.decode(buildVitOnnx(arch, init.weights));
    const name = `layer${from - 1}/mlp/residual`;
    m.graph!.output!.push({
      name,
      type: {
        tensorType: {
          elemType: 1,
          shape: {
            dim: [
              { dimParam: 'batch' },
              { dimValue: 1 + (H / arch.patchSize) * (W / arch.patchSize) },
              { dimValue: arch.hiddenSize },
            ],
          },
        },
      },
    });
    const full = await VitSession.create(onnx.ModelProto.encode(m).finish(), {
      input: 'pixel_values',
      logits: 'logits',
    });
    await time(
      `k=${k} ORT full graph + extra output`,
      async (x, n) => (await full.fetch(x, [n, C, H, W], [name]))[name].data as Float32Array,
    );
  }
})();
