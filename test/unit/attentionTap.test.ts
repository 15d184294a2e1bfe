import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ort from 'onnxruntime-node';
import { onnx } from 'onnx-proto';
import { tapAttention, outputClassCount } from '../../server/model/attentionTap';
import { buildVitOnnx } from '../../server/model/onnxBuilder';
import { randomWeights, TINY, TINY_TOKENS } from './tinyVit';

const ARCH = TINY;
const TOKENS = TINY_TOKENS;
const FIXTURE = path.join(__dirname, '..', 'fixtures', 'vit-tiny');

const BUILT = buildVitOnnx(ARCH, randomWeights(ARCH));

/** Our own graph as an exporter might have produced it: same Softmax nodes, but only `logits` is an output. */
function withoutAttentionOutputs(bytes: Uint8Array, edit?: (g: onnx.IGraphProto) => void): Uint8Array {
  const model = onnx.ModelProto.decode(bytes);
  const g = model.graph!;
  g.output = g.output!.filter(o => o.name === 'logits');
  edit?.(g);
  return onnx.ModelProto.encode(model).finish();
}

const pixels = (n: number) =>
  new ort.Tensor(
    'float32',
    new Float32Array(n * 3 * 32 * 32).map((_, i) => Math.sin(i * 0.37)),
    [n, 3, 32, 32],
  );

function assertRowsSumToOne(t: ort.Tensor, label: string): void {
  const T = Number(t.dims[t.dims.length - 1]);
  const data = t.data as Float32Array;
  for (let row = 0; row < data.length / T; row++) {
    let sum = 0;
    for (let j = 0; j < T; j++) sum += data[row * T + j];
    assert.ok(Math.abs(sum - 1) < 1e-5, `${label} row ${row} sums to ${sum}`);
  }
}

test('re-finds the attention Softmaxes of a graph whose attention is not exposed', async () => {
  const { bytes, info } = tapAttention(withoutAttentionOutputs(BUILT));
  assert.deepEqual(info, {
    inputName: 'pixel_values',
    inputShape: ['batch', 3, 32, 32],
    inputElemType: 1, // float32
    logitsName: 'logits',
    attentionOutputs: ['attentions.0', 'attentions.1'],
    attentionRank: 4,
    numHeads: 2,
    patchSize: 8,
    imageSize: [32, 32],
    tokens: TOKENS,
    numClasses: 5,
  });
  const tapped = await ort.InferenceSession.create(Buffer.from(bytes));
  assert.deepEqual(tapped.outputNames, ['logits', 'attentions.0', 'attentions.1']);
  const reference = await ort.InferenceSession.create(Buffer.from(BUILT));
  const got = await tapped.run({ pixel_values: pixels(2) });
  const want = await reference.run({ pixel_values: pixels(2) });
  for (const name of ['logits', ...info.attentionOutputs]) assert.deepEqual(got[name].data, want[name].data, name);
  assert.deepEqual(got['attentions.1'].dims, [2, 2, TOKENS, TOKENS]);
});

test('a Softmax over the logits is not taken for attention', () => {
  const model = withoutAttentionOutputs(BUILT, g => {
    g.node!.push({
      opType: 'Softmax',
      name: 'probabilities',
      input: ['logits'],
      output: ['probabilities'],
      attribute: [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: -1 }],
    });
    g.output!.push({ name: 'probabilities', type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT } } });
    // No static class count on the output: it must come from the classifier bias.
    g.output![0].type = { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT } };
  });
  const { info } = tapAttention(model);
  assert.deepEqual(info.attentionOutputs, ['attentions.0', 'attentions.1']);
  assert.equal(info.numClasses, 5);
  assert.equal(outputClassCount(model, 'logits'), 5);
});

test('a model without attention keeps its bytes and says why explain cannot work', () => {
  const f = onnx.TensorProto.DataType.FLOAT;
  const weight = (name: string, dims: number[]): onnx.ITensorProto => ({
    name,
    dataType: f,
    dims,
    floatData: new Array(dims[0] * dims[1]).fill(0.1),
  });
  const mlp = onnx.ModelProto.encode({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    graph: {
      name: 'mlp',
      input: [
        { name: 'x', type: { tensorType: { elemType: f, shape: { dim: [{ dimParam: 'batch' }, { dimValue: 16 }] } } } },
      ],
      output: [
        {
          name: 'probs',
          type: { tensorType: { elemType: f, shape: { dim: [{ dimParam: 'batch' }, { dimValue: 4 }] } } },
        },
      ],
      initializer: [weight('w1', [16, 8]), weight('w2', [8, 4])],
      node: [
        { opType: 'MatMul', name: 'fc1', input: ['x', 'w1'], output: ['h'] },
        { opType: 'Relu', name: 'relu', input: ['h'], output: ['a'] },
        { opType: 'MatMul', name: 'fc2', input: ['a', 'w2'], output: ['logits'] },
        { opType: 'Softmax', name: 'softmax', input: ['logits'], output: ['probs'] },
      ],
    },
  }).finish();
  const { bytes, info } = tapAttention(mlp);
  assert.equal(bytes, mlp);
  assert.deepEqual(info.attentionOutputs, []);
  assert.equal(info.logitsName, 'probs');
  assert.deepEqual(info.inputShape, ['batch', 16]);
  assert.match(info.reason ?? '', /no attention Softmax feeding a MatMul found in 4 nodes/);
});

test('weights in external data are inlined from the model folder, or rejected without it', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-tap-'));
  try {
    const model = onnx.ModelProto.decode(withoutAttentionOutputs(BUILT));
    const chunks: Buffer[] = [];
    let offset = 0;
    for (const t of model.graph!.initializer!) {
      if (!t.rawData || t.rawData.length < 64) continue;
      chunks.push(Buffer.from(t.rawData));
      t.externalData = [
        { key: 'location', value: 'model.onnx.data' },
        { key: 'offset', value: String(offset) },
        { key: 'length', value: String(t.rawData.length) },
      ];
      t.dataLocation = onnx.TensorProto.DataLocation.EXTERNAL;
      offset += t.rawData.length;
      t.rawData = new Uint8Array(0);
    }
    fs.writeFileSync(path.join(dir, 'model.onnx.data'), Buffer.concat(chunks));
    const bytes = onnx.ModelProto.encode(model).finish();

    assert.throws(() => tapAttention(bytes), /external data \("model\.onnx\.data"/);
    assert.throws(() => tapAttention(bytes, path.join(dir, 'elsewhere')), /model\.onnx\.data.*does not exist/);
    const { bytes: inlined, info } = tapAttention(bytes, dir);
    assert.deepEqual(info.attentionOutputs, ['attentions.0', 'attentions.1']);
    const s = await ort.InferenceSession.create(Buffer.from(inlined));
    const want = await (await ort.InferenceSession.create(Buffer.from(BUILT))).run({ pixel_values: pixels(1) });
    const got = await s.run({ pixel_values: pixels(1) });
    assert.deepEqual(got['attentions.0'].data, want['attentions.0'].data);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test(
  'torch.onnx export of torchvision VisionTransformer (fixture): rank-3 attention matches torch',
  { skip: !fs.existsSync(path.join(FIXTURE, 'model.onnx')) },
  async () => {
    const { bytes, info } = tapAttention(fs.readFileSync(path.join(FIXTURE, 'model.onnx')), FIXTURE);
    assert.equal(info.attentionOutputs.length, 2);
    assert.equal(info.attentionRank, 3);
    assert.equal(info.numHeads, 4);
    assert.equal(info.patchSize, 16);
    assert.deepEqual(info.imageSize, [224, 224]);
    assert.equal(info.tokens, 197);
    assert.equal(info.numClasses, 10);
    assert.equal(info.logitsName, 'logits');

    // reference.json names the image behind each attn_layer*.bin and how to rebuild its input (the formula is
    // float32((u8 / 255 - 0.5) / 0.5), HWC -> CHW); we reproduce it for the first image.
    const ref = JSON.parse(fs.readFileSync(path.join(FIXTURE, 'reference.json'), 'utf8')) as {
      input: { images: string[]; derive_from: string[] };
      files: Record<string, { shape: number[]; images?: string[] }>;
    };
    const image = ref.input.images[0];
    const u8 = fs.readFileSync(path.join(FIXTURE, ref.input.derive_from[0]));
    const x = new Float32Array(3 * 224 * 224);
    for (let p = 0; p < 224 * 224; p++)
      for (let c = 0; c < 3; c++) x[c * 224 * 224 + p] = (u8[p * 3 + c] * (1 / 255) - 0.5) * (1 / 0.5);
    const s = await ort.InferenceSession.create(Buffer.from(bytes));
    const out = await s.run({ pixel_values: new ort.Tensor('float32', x, [1, 3, 224, 224]) });
    let compared = 0;
    info.attentionOutputs.forEach((name, layer) => {
      const a = out[name];
      assert.deepEqual(a.dims, [4, 197, 197]); // [N*H, T, T] with N = 1
      assertRowsSumToOne(a, name);
      const file = `attn_layer${layer}.bin`;
      if (!ref.files[file] || ref.files[file].images?.[0] !== image || !fs.existsSync(path.join(FIXTURE, file))) return;
      const raw = fs.readFileSync(path.join(FIXTURE, file));
      const want = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + 4 * 4 * 197 * 197)); // first image
      const got = a.data as Float32Array;
      let maxDiff = 0;
      for (let i = 0; i < want.length; i++) maxDiff = Math.max(maxDiff, Math.abs(got[i] - want[i]));
      assert.ok(maxDiff < 1e-5, `layer ${layer} attention differs from torch by ${maxDiff}`);
      compared++;
    });
    assert.ok(compared > 0, 'no attn_layer*.bin reference to compare with');
  },
);
