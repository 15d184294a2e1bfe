/**
 * Training INIT from ONNX (server/formats/onnxWeights.ts): every weight recovered from an exporter's
 * graph equals the tensor it was exported from (HF safetensors or the PyTorch state dict), the
 * inferred architecture equals the config, and graphs that are not a recognisable ViT are refused
 * with an error naming the file.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { onnx } from 'onnx-proto';
import { loadOnnxWeights } from '../../server/formats/onnxWeights';
import { archAndLabelsFromHfFolder, loadHfWeights } from '../../server/formats/hfSafetensors';
import { readNpz } from '../../server/formats/npz';
import { buildVitOnnx } from '../../server/model/onnxBuilder';
import { Tensor, WeightMap } from '../../server/model/tensor';
import { W } from '../../server/model/vitConfig';
import { initialWeights } from '../../server/train/initWeights';

const FIX = path.join(__dirname, '..', 'fixtures');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-onnx-init-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function assertSameWeights(got: WeightMap, want: WeightMap, what: string): void {
  assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort(), `${what}: tensor names`);
  for (const [name, w] of want) {
    const g = got.get(name)!;
    assert.deepEqual(g.shape, w.shape, `${what}: ${name} shape`);
    // Exact: recovering is copying and transposing float32 values, nothing is computed.
    assert.deepEqual(Array.from(g.data), Array.from(w.data), `${what}: ${name} values`);
  }
}

for (const name of ['vit-tiny', 'vit-prelogits']) {
  test(`torchvision VisionTransformer exported by torch.onnx (${name}): weights and arch equal the HF folder`, async () => {
    const hf = path.join(FIX, name, 'hf');
    const { arch } = await archAndLabelsFromHfFolder(hf);
    const want = await loadHfWeights(path.join(hf, 'model.safetensors'), arch);
    const got = await loadOnnxWeights(path.join(FIX, name, 'model.onnx'));
    assert.equal(got.layout, 'torch.onnx export');
    assert.deepEqual(got.arch, arch);
    assertSameWeights(got.weights, want, name);
  });
}

test('our builder (cache builds, exported runs' + "' onnx/model.onnx): weights and arch round-trip", async () => {
  for (const name of ['vit-tiny', 'vit-prelogits']) {
    const hf = path.join(FIX, name, 'hf');
    const { arch } = await archAndLabelsFromHfFolder(hf);
    const want = await loadHfWeights(path.join(hf, 'model.safetensors'), arch);
    const file = path.join(tmp, `${name}-built.onnx`);
    fs.writeFileSync(file, buildVitOnnx(arch, want));
    const got = await loadOnnxWeights(file);
    assert.equal(got.layout, 'vit-lens builder');
    assert.deepEqual(got.arch, arch);
    assertSameWeights(got.weights, want, `${name} (builder)`);
  }
});

/** The stand-in modules' state dict (scripts/make_export_fixtures.py names) in canonical names. */
function canonicalFromState(state: Map<string, Tensor>, fused: boolean, layers: number): WeightMap {
  const s = (k: string) => {
    const t = state.get(k);
    assert.ok(t, `state dict has no ${k}`);
    return t;
  };
  const out: WeightMap = new Map([
    [W.clsToken, s('cls')],
    [W.posEmbed, s('pos')],
    [W.patchWeight, s('patch.weight')],
    [W.patchBias, s('patch.bias')],
    [W.finalNormWeight, s('norm.weight')],
    [W.finalNormBias, s('norm.bias')],
    [W.headWeight, s('head.weight')],
    [W.headBias, s('head.bias')],
  ]);
  for (let i = 0; i < layers; i++) {
    const l = W.layer(i);
    const p = `blocks.${i}.`;
    out.set(l.norm1Weight, s(p + 'norm1.weight')).set(l.norm1Bias, s(p + 'norm1.bias'));
    out.set(l.norm2Weight, s(p + 'norm2.weight')).set(l.norm2Bias, s(p + 'norm2.bias'));
    out.set(l.fc1Weight, s(p + 'mlp.0.weight')).set(l.fc1Bias, s(p + 'mlp.0.bias'));
    out.set(l.fc2Weight, s(p + 'mlp.2.weight')).set(l.fc2Bias, s(p + 'mlp.2.bias'));
    if (fused) {
      const w = s(p + 'attn.qkv.weight');
      const b = s(p + 'attn.qkv.bias');
      const D = w.shape[1];
      [
        [l.qWeight, l.qBias],
        [l.kWeight, l.kBias],
        [l.vWeight, l.vBias],
      ].forEach(([wn, bn], c) => {
        out.set(wn, { shape: [D, D], data: w.data.slice(c * D * D, (c + 1) * D * D) });
        out.set(bn, { shape: [D], data: b.data.slice(c * D, (c + 1) * D) });
      });
      out.set(l.projWeight, s(p + 'attn.proj.weight')).set(l.projBias, s(p + 'attn.proj.bias'));
    } else {
      out.set(l.qWeight, s(p + 'attn.query.weight')).set(l.qBias, s(p + 'attn.query.bias'));
      out.set(l.kWeight, s(p + 'attn.key.weight')).set(l.kBias, s(p + 'attn.key.bias'));
      out.set(l.vWeight, s(p + 'attn.value.weight')).set(l.vBias, s(p + 'attn.value.bias'));
      out.set(l.projWeight, s(p + 'attn.out.weight')).set(l.projBias, s(p + 'attn.out.bias'));
    }
  }
  return out;
}

const initManifest = JSON.parse(fs.readFileSync(path.join(FIX, 'onnx-init', 'manifest.json'), 'utf8'));
for (const [name, m] of Object.entries(initManifest.models) as [
  string,
  { onnx: string; state: string; layout: string },
][]) {
  test(`torch.onnx export of a ${name} ViT (${m.layout}): weights equal the PyTorch state dict, arch equals the config`, async () => {
    const state = await readNpz(path.join(FIX, 'onnx-init', m.state));
    const got = await loadOnnxWeights(path.join(FIX, 'onnx-init', m.onnx));
    assert.deepEqual(got.arch, initManifest.arch);
    assertSameWeights(
      got.weights,
      canonicalFromState(state, name.startsWith('timm'), initManifest.arch.numLayers),
      name,
    );
  });
}

test('attention-tap export fixtures (HF-style, timm-style, softmax head): arch read from the graph', async () => {
  const man = JSON.parse(fs.readFileSync(path.join(FIX, 'exports', 'manifest.json'), 'utf8'));
  for (const m of Object.values(man.models) as { onnx: string }[]) {
    const { arch } = await loadOnnxWeights(path.join(FIX, 'exports', m.onnx));
    assert.deepEqual(
      [
        arch.numHeads,
        arch.numLayers,
        arch.patchSize,
        arch.imageSize,
        arch.numClasses,
        arch.hiddenSize,
        arch.mlpSize,
        arch.layerNormEps,
      ],
      [man.heads, man.layers, man.patch, [man.image_size, man.image_size], man.classes, 16, 32, 1e-5],
      m.onnx,
    );
  }
});

test('initialWeights from an .onnx file: backbone kept, classifier replaced', async () => {
  const r = await initialWeights(path.join(FIX, 'vit-prelogits', 'model.onnx'), { numClasses: 3, seed: 1 });
  assert.equal(r.arch.numClasses, 3);
  assert.equal(r.arch.preLogitsSize, 24);
  assert.deepEqual(r.weights.get(W.headWeight)!.shape, [3, 24]);
  assert.equal(r.weightsFile, path.join(FIX, 'vit-prelogits', 'model.onnx'));
});

const NOT_RECOGNISED =
  /cannot recover ViT weights from this ONNX file: .*Use the Hugging Face folder \(config\.json \+ model\.safetensors\) or the \.npz/;

test('a non-ViT ONNX is refused with an error naming the file and what was not recognised', async () => {
  const file = path.join(FIX, 'bad', 'not-vit.onnx');
  await assert.rejects(loadOnnxWeights(file), (e: Error) => {
    assert.ok(e.message.startsWith(`${file}: `), e.message);
    assert.match(e.message, NOT_RECOGNISED);
    assert.match(e.message, /no patch-embedding Conv/);
    return true;
  });
  await assert.rejects(initialWeights(file, { numClasses: 3, seed: 1 }), NOT_RECOGNISED);
});

/** Rewrites a fixture's graph and loads the result. */
function mutated(name: string | Uint8Array, edit: (g: onnx.IGraphProto) => void): Promise<unknown> {
  const model = onnx.ModelProto.decode(typeof name === 'string' ? fs.readFileSync(path.join(FIX, name)) : name);
  edit(model.graph!);
  const file = path.join(tmp, `mutated-${Math.random().toString(36).slice(2)}.onnx`);
  fs.writeFileSync(file, onnx.ModelProto.encode(model).finish());
  return loadOnnxWeights(file);
}

test('ViT-like graphs whose weights cannot be placed with certainty are refused', async () => {
  // tanh-approximate GELU: the trainer implements only exact GELU.
  await assert.rejects(
    mutated('vit-tiny/model.onnx', g => {
      for (const n of g.node!) if (n.opType === 'Erf') n.opType = 'Tanh';
    }),
    /layer 0: the MLP activation/,
  );
  // q and k swapped inside the fused projection's split: not the q, k, v order.
  await assert.rejects(
    mutated('exports/timm-style.onnx', g => {
      const split = g.node!.find(n => n.opType === 'Split')!;
      [split.output![0], split.output![1]] = [split.output![1], split.output![0]];
    }),
    /layer 0: cannot tell which part of the fused qkv projection is q, k and v/,
  );
  // Mean pooling instead of the [CLS] token.
  await assert.rejects(
    mutated('exports/hf-style.onnx', g => {
      const gather = g.node!.filter(n => n.opType === 'Gather').pop()!;
      Object.assign(gather, {
        opType: 'ReduceMean',
        input: [gather.input![0]],
        attribute: [
          { name: 'axes', type: onnx.AttributeProto.AttributeType.INTS, ints: [1] },
          { name: 'keepdims', type: onnx.AttributeProto.AttributeType.INT, i: 0 },
        ],
      });
    }),
    /\[CLS\] token/,
  );
  // The attention residual taken from the normalised stream (not a pre-norm block).
  await assert.rejects(
    mutated('exports/hf-style.onnx', g => {
      const add = g.node!.find(n => n.output?.[0] === '/blocks.0/Add_output_0')!;
      add.input = add.input!.map(i => (i === '/Add_output_0' ? '/blocks.0/norm1/Add_1_output_0' : i));
    }),
    /layer 0: not a pre-norm residual block/,
  );
  // A builder graph that lost a weight.
  const hf = path.join(FIX, 'vit-tiny', 'hf');
  const { arch } = await archAndLabelsFromHfFolder(hf);
  const built = buildVitOnnx(arch, await loadHfWeights(path.join(hf, 'model.safetensors'), arch));
  await assert.rejects(
    mutated(built, g => {
      g.initializer = g.initializer!.filter(t => t.name !== `${W.layer(1).fc2Weight}.T`);
    }),
    /builder metadata but no initializer "vit\.encoder\.layer\.1\.output\.dense\.weight"/,
  );
});

test('external data that is missing is a clear error', async () => {
  const dir = path.join(tmp, 'ext');
  fs.mkdirSync(dir);
  fs.copyFileSync(path.join(FIX, 'onnx-init', 'timm-style-opset17.onnx'), path.join(dir, 'm.onnx'));
  await assert.rejects(
    loadOnnxWeights(path.join(dir, 'm.onnx')),
    /m\.onnx: its weights are in external data, but .*timm-style-opset17\.onnx\.data \(tensor "[^"]+"\) does not exist/,
  );
});
