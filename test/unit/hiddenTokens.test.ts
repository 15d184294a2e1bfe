/**
 * The tokens last-k training caches for its frozen part: the builder's graph truncated after block n
 * (output `hidden.{n}`), run on ONNX Runtime, against torchvision's VisionTransformer (forward hooks
 * on its encoder blocks; scripts/make_hidden_fixtures.py) and against our TF.js blocks (tokensBefore,
 * the fallback when ONNX Runtime cannot start), for every n from the embeddings to the last block.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'path';
import { readFileSync } from 'fs';
import * as tf from '@tensorflow/tfjs-core';
import { onnx } from 'onnx-proto';
import { readNpz } from '../../server/formats/npz';
import {
  buildVitOnnx,
  hiddenOutputName,
  readBuildMetadata,
  BUILDER_VERSION,
  LOGITS_NAME,
} from '../../server/model/onnxBuilder';
import { VitSession } from '../../server/inference';
import type { WeightMap } from '../../server/model/tensor';
import type { ViTArch } from '../../server/model/vitConfig';
import { initBackend } from '../../server/train/backend';
import { Params, tokensBefore } from '../../server/train/vitModel';
import { maxAbsDiff } from './arrays';

const DIR = path.join(__dirname, '..', 'fixtures', 'train');
const meta = JSON.parse(readFileSync(path.join(DIR, 'hidden.json'), 'utf8'));
const a = meta.arch;
const ARCH: ViTArch = {
  hiddenSize: a.hidden,
  numLayers: a.layers,
  numHeads: a.heads,
  mlpSize: a.mlp,
  patchSize: a.patch,
  imageSize: [a.image, a.image],
  numChannels: 3,
  layerNormEps: a.eps,
  qkvBias: true,
  numClasses: a.classes,
};
const N = meta.batch as number;
const DIMS: [number, number, number, number] = [N, 3, a.image, a.image];

async function fixture() {
  const npz = await readNpz(path.join(DIR, 'hidden.npz'));
  const weights: WeightMap = new Map();
  for (const [k, t] of npz) if (k.startsWith('w/')) weights.set(k.slice(2), t);
  return {
    weights,
    x: npz.get('x')!.data,
    hidden: (i: number) => npz.get(`hidden/${i}`)!,
    logits: npz.get('logits')!.data,
  };
}

test("truncated graph: ONNX Runtime tokens after block n equal torchvision's and our TF.js blocks' (n = 0 … L)", async () => {
  await initBackend('wasm');
  const f = await fixture();
  const params: Params = new Map();
  for (const [name, t] of f.weights)
    params.set(name, tf.variable(tf.tensor(t.data, t.shape), false, `hiddenTokens/${name}`));
  try {
    for (let n = 0; n <= ARCH.numLayers; n++) {
      const name = hiddenOutputName(n);
      const s = await VitSession.create(
        buildVitOnnx(ARCH, f.weights, { hiddenAfter: n }),
        { input: 'pixel_values', logits: name },
        { provider: 'cpu', threads: 1 },
      );
      assert.deepEqual(s.outputNames, [name]);
      const out = (await s.fetch(f.x, DIMS, [name]))[name];
      await s.release();
      const ref = f.hidden(n);
      assert.deepEqual(out.dims, ref.shape);
      const ort = out.data as Float32Array;
      const torchDiff = maxAbsDiff(ort, ref.data);
      assert.ok(torchDiff <= 1e-4, `hidden.${n}: ONNX Runtime vs torchvision max |diff| ${torchDiff}`);
      const tfjs = tf.tidy(() => tokensBefore(params, ARCH, tf.tensor4d(f.x, DIMS), n).dataSync() as Float32Array);
      const tfDiff = maxAbsDiff(ort, tfjs);
      assert.ok(tfDiff <= 1e-4, `hidden.${n}: ONNX Runtime vs TF.js max |diff| ${tfDiff}`);
      // The blocks change the tokens (a graph that stopped early, or skipped a block, would not pass).
      if (n > 0) assert.ok(maxAbsDiff(ref.data, f.hidden(n - 1).data) > 0.05);
    }
    // The weights mapping itself: the full graph's logits are torchvision's.
    const full = await VitSession.create(
      buildVitOnnx(ARCH, f.weights),
      { input: 'pixel_values', logits: LOGITS_NAME },
      { provider: 'cpu', threads: 1 },
    );
    const d = maxAbsDiff((await full.run(f.x, DIMS)).logits, f.logits);
    await full.release();
    assert.ok(d <= 1e-4, `logits max |diff| ${d}`);
  } finally {
    for (const v of params.values()) v.dispose();
  }
});

test('truncated graph: one output, only the blocks before the cut, marked as a variant in its metadata', async () => {
  const { weights } = await fixture();
  const full = onnx.ModelProto.decode(buildVitOnnx(ARCH, weights));
  for (let n = 0; n <= ARCH.numLayers; n++) {
    const bytes = buildVitOnnx(ARCH, weights, { hiddenAfter: n });
    const m = onnx.ModelProto.decode(bytes);
    assert.deepEqual(
      m.graph!.output!.map(o => o.name),
      [hiddenOutputName(n)],
    );
    const dims = m.graph!.output![0].type!.tensorType!.shape!.dim!.map(d => d.dimParam || Number(d.dimValue));
    assert.deepEqual(dims, ['batch', 1 + (a.image / a.patch) ** 2, a.hidden]);
    const layers = new Set(m.graph!.node!.map(nd => /^layer(\d+)\//.exec(nd.name!)?.[1]).filter(x => x !== undefined));
    assert.deepEqual(
      [...layers].map(Number),
      Array.from({ length: n }, (_, i) => i),
    );
    assert.ok(!m.graph!.node!.some(nd => nd.name!.startsWith('head/')));
    // No initializer that no node reads (ORT would warn about each), e.g. the GELU constants when n = 0.
    const used = new Set(m.graph!.node!.flatMap(nd => nd.input!));
    assert.deepEqual(
      m.graph!.initializer!.filter(t => !used.has(t.name!)).map(t => t.name),
      [],
    );
    assert.deepEqual(readBuildMetadata(bytes), {
      arch: ARCH,
      builderVersion: BUILDER_VERSION,
      variant: hiddenOutputName(n),
    });
    assert.ok(m.graph!.node!.length < full.graph!.node!.length);
  }
  assert.equal(readBuildMetadata(buildVitOnnx(ARCH, weights))!.variant, undefined);
  for (const bad of [-1, ARCH.numLayers + 1, 1.5]) {
    assert.throws(
      () => buildVitOnnx(ARCH, weights, { hiddenAfter: bad }),
      /hiddenAfter .* between 0 and the model's 3 layers/,
    );
  }
});
