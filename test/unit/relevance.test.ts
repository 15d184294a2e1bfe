/**
 * Class relevance (Chefer, Gur & Wolf 2021): our ONNX forward + hand-written backward against PyTorch
 * autograd on the torchvision peers (scripts/make_relevance_fixtures.py), for every model kind; the
 * map depends on the class; and a hand-built model whose two classes are each driven by one patch.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Engine } from '../../server/engine';
import { defaultPreprocess, toPixelValues } from '../../server/preprocess';
import { buildVitOnnx } from '../../server/model/onnxBuilder';
import { W, ViTArch } from '../../server/model/vitConfig';
import { WeightMap } from '../../server/model/tensor';
import { relevanceClsRow } from '../../server/explain/relevance';
import { onnx } from 'onnx-proto';
import { readF32, maxAbsDiff } from './arrays';

const fixtures = path.join(__dirname, '..', 'fixtures');
const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-relevance-'));
after(() => fs.rmSync(cacheDir, { recursive: true, force: true }));

interface RelevanceFixture {
  grid: [number, number];
  images: { image: string; classes: { index: number; label: string; role: string; values: number[] }[] }[];
}

async function loaded(model: string, labelsFile?: string): Promise<Engine> {
  const e = new Engine({ cacheDir, provider: 'cpu', threads: 1 });
  await e.load(model, { labelsFile });
  return e;
}

const models: { name: string; dir: string; inputs: () => Float32Array[] }[] = [
  {
    name: 'vit-tiny (224 px, patch 16, 2 layers, 4 heads)',
    dir: 'vit-tiny',
    inputs: () => {
      const cfg = defaultPreprocess([224, 224]);
      return ['chelsea', 'coffee'].map(n =>
        toPixelValues(fs.readFileSync(path.join(fixtures, 'photos', `${n}.pil224.bin`)), cfg),
      );
    },
  },
  {
    name: 'vit-prelogits (tanh pre-logits, no qkv bias, 32 px, patch 8)',
    dir: 'vit-prelogits',
    inputs: () => {
      const all = readF32(path.join(fixtures, 'vit-prelogits', 'input.bin'));
      const per = all.length / 2;
      return [all.slice(0, per), all.slice(per)];
    },
  },
];

for (const m of models) {
  describe(`relevance, ${m.name}`, () => {
    const dir = path.join(fixtures, m.dir);
    const ref = JSON.parse(fs.readFileSync(path.join(dir, 'relevance.json'), 'utf8')) as RelevanceFixture;
    const inputs = m.inputs();
    const kinds: [string, string, string?][] = [
      ['torch.onnx export', path.join(dir, 'model.onnx'), path.join(dir, 'google-labels.txt')],
      ['Hugging Face folder', path.join(dir, 'hf')],
      ['Google npz', path.join(dir, 'google.npz'), path.join(dir, 'google-labels.txt')],
    ];
    for (const [kind, model, labels] of kinds) {
      test(`${kind}: top-1 and another class match PyTorch autograd to 1e-3`, async () => {
        const engine = await loaded(model, labels && fs.existsSync(labels) ? labels : undefined);
        try {
          for (const [i, img] of ref.images.entries()) {
            for (const c of img.classes) {
              const ours = await engine.relevancePixels(inputs[i], c.role === 'top1' ? -1 : c.index);
              assert.equal(ours.classIndex, c.index, `${img.image}: explained class`);
              assert.deepEqual(ours.map.grid, ref.grid);
              const d = maxAbsDiff(ours.map.values, c.values);
              assert.ok(d <= 1e-3, `${img.image} class ${c.index} (${c.role}): max abs diff ${d}`);
            }
          }
        } finally {
          await engine.dispose();
        }
      });
    }

    test('the map depends on the class', async () => {
      const engine = await loaded(path.join(dir, 'hf'));
      try {
        for (const [i, img] of ref.images.entries()) {
          const [top, other] = img.classes;
          const a = await engine.relevancePixels(inputs[i], top.index);
          const b = await engine.relevancePixels(inputs[i], other.index);
          const d = maxAbsDiff(a.map.values, b.map.values);
          assert.ok(
            d > 0.05,
            `${img.image}: classes ${top.index} and ${other.index} give nearly the same map (max diff ${d})`,
          );
        }
      } finally {
        await engine.dispose();
      }
    });
  });
}

/**
 * One block, one head, D = 4, a 2×2 patch grid, two classes. The patch embedding puts a patch's mean
 * red into feature 0 and its mean green into feature 1 (features 2, 3 are a constant +1, −1, so no
 * token's LayerNorm is degenerate); q = k = 0, so attention is uniform and rollout cannot tell the
 * patches apart; v and the projection keep features 0 and 1; the MLP is zero; class c's logit reads
 * feature c of the final [CLS]. Through the LayerNorms, a red patch's value vector raises logit 0 and
 * lowers logit 1 (and a green one the reverse), so ∂y_c/∂A[CLS, patch] ⊙ A is positive only on the
 * patch of class c's colour: relevance must light the red patch for class 0 and the green one for 1,
 * wherever they are.
 */
describe('relevance on a hand-built class-discriminative model', () => {
  const arch: ViTArch = {
    hiddenSize: 4,
    numLayers: 1,
    numHeads: 1,
    mlpSize: 4,
    patchSize: 8,
    imageSize: [16, 16],
    numChannels: 3,
    layerNormEps: 1e-6,
    qkvBias: false,
    numClasses: 2,
  };
  const t = (shape: number[], fill: (i: number) => number = () => 0) => ({
    shape,
    data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => fill(i)),
  });
  const eye = (n: number, keep: number) => t([n, n], i => (Math.floor(i / n) === i % n && i % n < keep ? 1 : 0));
  const weights: WeightMap = new Map();
  const l = W.layer(0);
  weights.set(
    W.clsToken,
    t([1, 1, 4], i => [0, 0, 1, -1][i]),
  );
  weights.set(W.posEmbed, t([1, 5, 4]));
  // [D, C, P, P]: feature 0 = mean of channel 0 (red), feature 1 = mean of channel 1 (green).
  weights.set(
    W.patchWeight,
    t([4, 3, 8, 8], i => (Math.floor(i / 192) === Math.floor((i % 192) / 64) && i < 384 ? 1 / 64 : 0)),
  );
  weights.set(
    W.patchBias,
    t([4], i => [0, 0, 1, -1][i]),
  );
  for (const n of [l.norm1Weight, l.norm2Weight])
    weights.set(
      n,
      t([4], () => 1),
    );
  for (const n of [l.norm1Bias, l.norm2Bias, l.projBias, l.fc1Bias, l.fc2Bias]) weights.set(n, t([4]));
  weights.set(l.qWeight, t([4, 4]));
  weights.set(l.kWeight, t([4, 4]));
  weights.set(l.vWeight, eye(4, 2));
  weights.set(l.projWeight, eye(4, 2));
  weights.set(l.fc1Weight, t([4, 4]));
  weights.set(l.fc2Weight, t([4, 4]));
  weights.set(
    W.finalNormWeight,
    t([4], () => 1),
  );
  weights.set(W.finalNormBias, t([4]));
  weights.set(
    W.headWeight,
    t([2, 4], i => (i === 0 || i === 5 ? 1 : 0)),
  );
  weights.set(W.headBias, t([2]));

  /** A 16×16 CHW image: one red patch and one green patch (grid index 0–3), the rest black. */
  const image = (red: number, green: number) => {
    const px = new Float32Array(3 * 16 * 16);
    for (const [patch, channel] of [
      [red, 0],
      [green, 1],
    ]) {
      const [r0, c0] = [Math.floor(patch / 2) * 8, (patch % 2) * 8];
      for (let y = r0; y < r0 + 8; y++) for (let x = c0; x < c0 + 8; x++) px[channel * 256 + y * 16 + x] = 1;
    }
    return px;
  };
  const argmax = (v: ArrayLike<number>) => Array.from(v).reduce((best, x, i, a) => (x > a[best] ? i : best), 0);

  test('each class lights the patch that drives it, and rollout does not', async () => {
    const file = path.join(cacheDir, 'two-patches.onnx');
    fs.writeFileSync(file, buildVitOnnx(arch, weights));
    const engine = await loaded(file);
    try {
      for (const [red, green] of [
        [0, 3],
        [3, 0],
        [1, 2],
      ]) {
        const px = image(red, green);
        for (const [cls, patch] of [
          [0, red],
          [1, green],
        ]) {
          const { map } = await engine.relevancePixels(px, cls);
          assert.equal(
            argmax(map.values),
            patch,
            `class ${cls} (red at ${red}, green at ${green}): ${Array.from(map.values)}`,
          );
          const other = cls === 0 ? green : red;
          assert.ok(
            Math.abs(map.values[other]) < 0.01,
            `class ${cls} also lights the other class's patch: ${Array.from(map.values)}`,
          );
        }
        const out = await engine.runPixels(px, 1, true);
        const cls = (out.attentions![0].data as Float32Array).subarray(0, 5);
        assert.ok(
          maxAbsDiff(cls, new Float32Array(5).fill(0.2)) < 1e-6,
          `attention is not uniform: ${Array.from(cls)}`,
        );
      }
    } finally {
      await engine.dispose();
    }
  });
});

test('an ONNX whose weights cannot be recovered: relevance says so and names the file, rollout still works', async () => {
  // The vit-tiny torch.onnx export with its GELU's Erf turned into Tanh: the attention is still found
  // (rollout works), but onnxWeights.ts refuses tanh-GELU graphs, so no relevance graph can be built.
  const model = onnx.ModelProto.decode(fs.readFileSync(path.join(fixtures, 'vit-tiny', 'model.onnx')));
  for (const n of model.graph!.node!) if (n.opType === 'Erf') n.opType = 'Tanh';
  const file = path.join(cacheDir, 'tanh-gelu.onnx');
  fs.writeFileSync(file, onnx.ModelProto.encode(model).finish());
  const engine = await loaded(file);
  const cat = path.join(fixtures, 'photos', 'chelsea.png');
  try {
    await assert.rejects(
      engine.explain(cat, { method: 'relevance' }),
      /class relevance is not available for this model \(rollout and attention still work\): .*tanh-gelu\.onnx: cannot recover ViT weights/,
    );
    const rollout = await engine.explain(cat);
    assert.equal(rollout.method, 'rollout');
    assert.deepEqual(rollout.map.grid, [14, 14]);
    await assert.rejects(engine.explain(cat, { method: 'relevance', class: 1 }), /cannot recover ViT weights/);
  } finally {
    await engine.dispose();
  }
});

test('the [CLS] row recurrence equals R = R + Ā·R over full matrices, layers in forward order', () => {
  const T = 4;
  const layers = [0, 1, 2].map(l => Float32Array.from({ length: T * T }, (_, i) => ((i * 7 + l * 3) % 5) / 10));
  // Textbook definition: R = I, then R = R + Ā_l R for l = 0, 1, 2.
  let R: number[][] = Array.from({ length: T }, (_, i) => Array.from({ length: T }, (_, j) => (i === j ? 1 : 0)));
  for (const a of layers) {
    R = R.map((row, i) => row.map((r, j) => r + R.reduce((s, _, k) => s + a[i * T + k] * R[k][j], 0)));
  }
  assert.ok(maxAbsDiff(relevanceClsRow(layers, T), R[0]) < 1e-12);
});
