import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { onnx } from 'onnx-proto';
import {
  buildVitOnnx,
  readBuildMetadata,
  BUILDER_VERSION,
  attentionOutputName,
  fusedAttentionOutputName,
} from '../../server/model/onnxBuilder';
import { HEAD_FUSIONS } from '../../common/options';
import { ViTArch, W } from '../../server/model/vitConfig';
import { randomWeights, TINY, TINY_TOKENS } from './tinyVit';
import { maxAbsDiff } from './arrays';

const TOKENS = TINY_TOKENS;

function randomPixels(n: number, seed: number): Float32Array {
  const out = new Float32Array(n * 3 * 32 * 32);
  let s = seed;
  for (let i = 0; i < out.length; i++) {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    out[i] = (s / 0x7fffffff) * 4 - 2;
  }
  return out;
}

async function session(arch: ViTArch, weights = randomWeights(arch)): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(Buffer.from(buildVitOnnx(arch, weights)), { intraOpNumThreads: 1 });
}

const VARIANTS: [string, ViTArch][] = [
  ['qkv bias, no pre-logits', TINY],
  ['pre-logits, no qkv bias', { ...TINY, qkvBias: false, preLogitsSize: 24 }],
];

for (const [label, arch] of VARIANTS) {
  test(`built ViT runs in ONNX Runtime with the promised outputs (${label})`, async () => {
    const s = await session(arch);
    assert.deepEqual(s.inputNames, ['pixel_values']);
    const fusedNames = [0, 1].flatMap(i => HEAD_FUSIONS.map(f => fusedAttentionOutputName(f, i)));
    assert.deepEqual(s.outputNames, [
      'logits',
      'features',
      attentionOutputName(0),
      attentionOutputName(1),
      ...fusedNames,
    ]);
    const out = await s.run({ pixel_values: new ort.Tensor('float32', randomPixels(3, 7), [3, 3, 32, 32]) });
    assert.deepEqual(out.logits.dims, [3, 5]);
    assert.deepEqual(out.features.dims, [3, 32]);
    for (let i = 0; i < arch.numLayers; i++) {
      const a = out[attentionOutputName(i)];
      assert.deepEqual(a.dims, [3, 2, TOKENS, TOKENS]);
      const data = a.data as Float32Array;
      for (let row = 0; row < data.length / TOKENS; row++) {
        let sum = 0;
        for (let j = 0; j < TOKENS; j++) sum += data[row * TOKENS + j];
        assert.ok(Math.abs(sum - 1) < 1e-5, `layer ${i} row ${row} sums to ${sum}`);
      }
    }
    // The head-fused maps are the per-head maps reduced over the head axis.
    for (let i = 0; i < arch.numLayers; i++) {
      const heads = out[attentionOutputName(i)].data as Float32Array;
      const perHead = TOKENS * TOKENS;
      for (const fusion of HEAD_FUSIONS) {
        const fused = out[fusedAttentionOutputName(fusion, i)];
        assert.deepEqual(fused.dims, [3, TOKENS, TOKENS]);
        const want = new Float32Array(3 * perHead);
        for (let b = 0; b < 3; b++) {
          for (let e = 0; e < perHead; e++) {
            const xs = [0, 1].map(h => heads[(b * 2 + h) * perHead + e]);
            want[b * perHead + e] =
              fusion === 'mean' ? (xs[0] + xs[1]) / 2 : fusion === 'max' ? Math.max(...xs) : Math.min(...xs);
          }
        }
        assert.ok(maxAbsDiff(fused.data as Float32Array, want) <= 1e-7, `${fusion} fusion of layer ${i}`);
      }
    }
    assert.ok((out.logits.data as Float32Array).every(Number.isFinite));
    await s.release();
  });

  test(`batch items are independent (${label})`, async () => {
    const s = await session(arch);
    const pixels = randomPixels(2, 11);
    const per = 3 * 32 * 32;
    const names = ['logits', 'features', attentionOutputName(1)];
    const both = await s.run({ pixel_values: new ort.Tensor('float32', pixels, [2, 3, 32, 32]) }, names);
    for (let b = 0; b < 2; b++) {
      const one = await s.run(
        { pixel_values: new ort.Tensor('float32', pixels.slice(b * per, (b + 1) * per), [1, 3, 32, 32]) },
        names,
      );
      for (const n of names) {
        const size = (one[n].data as Float32Array).length;
        const part = (both[n].data as Float32Array).subarray(b * size, (b + 1) * size);
        assert.ok(
          maxAbsDiff(part, one[n].data as Float32Array) <= 1e-5,
          `${n} of item ${b} differs between batch 2 and batch 1`,
        );
      }
    }
    await s.release();
  });
}

test('model records its arch and builder version, and stores weights as raw little-endian floats', () => {
  const weights = randomWeights(TINY);
  const bytes = buildVitOnnx(TINY, weights, { producer: 'unit-test' });
  assert.deepEqual(readBuildMetadata(bytes), { arch: TINY, builderVersion: BUILDER_VERSION });
  const model = onnx.ModelProto.decode(bytes);
  assert.equal(model.producerName, 'unit-test');
  assert.equal(Number(model.irVersion), 8);
  assert.deepEqual(
    model.opsetImport.map(o => [o.domain, Number(o.version)]),
    [['', 17]],
  );
  const init = new Map(model.graph!.initializer!.map(t => [t.name, t]));
  // Stored as is: the position embeddings, byte for byte.
  const pos = init.get(W.posEmbed)!;
  const posData = weights.get(W.posEmbed)!.data;
  assert.deepEqual(Buffer.from(pos.rawData!), Buffer.from(posData.buffer, posData.byteOffset, posData.byteLength));
  // Linear weights are stored transposed to (in, out) so MatMul needs no runtime Transpose.
  const q = init.get(W.layer(0).qWeight + '.T')!;
  const qData = new Float32Array(Uint8Array.from(q.rawData!).buffer);
  const qSrc = weights.get(W.layer(0).qWeight)!.data;
  assert.equal(qData[1 * 32 + 0], qSrc[0 * 32 + 1]);
  assert.equal(qData[5 * 32 + 3], qSrc[3 * 32 + 5]);
  assert.equal(readBuildMetadata(onnx.ModelProto.encode({ irVersion: 8, graph: { name: 'x' } }).finish()), undefined);
});

test('missing or misshapen weights are rejected naming the tensor', () => {
  const weights = randomWeights(TINY);
  weights.delete(W.layer(1).fc2Bias);
  assert.throws(() => buildVitOnnx(TINY, weights), /vit\.encoder\.layer\.1\.output\.dense\.bias/);
  assert.throws(
    () => buildVitOnnx({ ...TINY, imageSize: [30, 30] }, randomWeights(TINY)),
    /position_embeddings|multiple of the patch size/,
  );
});
