import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'fs';
import * as path from 'path';
import { readSafetensors, readSafetensorsHeader, writeSafetensors } from '../../server/formats/safetensors';
import { archAndLabelsFromHfFolder, loadHfWeights } from '../../server/formats/hfSafetensors';
import type { Tensor } from '../../server/model/tensor';
import { ViTArch, W } from '../../server/model/vitConfig';
import { tempDirs } from './tempDirs';

const tempDir = tempDirs('st');

/** A safetensors file from a raw header object and data bytes, with no padding (so data may be unaligned). */
function rawFile(header: unknown, data: Uint8Array, headerText = JSON.stringify(header)): Buffer {
  const json = Buffer.from(headerText, 'utf8');
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([length, json, data]);
}

function u16Bytes(values: number[]): Uint8Array {
  const b = Buffer.alloc(values.length * 2);
  values.forEach((v, i) => b.writeUInt16LE(v, i * 2));
  return b;
}

test('write/read round trip keeps names, shapes, values and metadata', async () => {
  const dir = await tempDir();
  const file = path.join(dir, 'model.safetensors');
  const big = new Float32Array([9, 9, 1.5, -2.25, 3e-8, 4e20, 9]);
  const tensors = new Map<string, Tensor>([
    ['a.weight', { shape: [2, 2], data: big.subarray(2, 6) }], // a view into a larger buffer
    ['b', { shape: [3], data: new Float32Array([0, -0.5, 7]) }],
    ['empty', { shape: [0, 4], data: new Float32Array(0) }],
  ]);
  await writeSafetensors(file, tensors, { format: 'pt', note: 'round trip' });

  const bytes = await fsp.readFile(file);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  assert.equal((8 + headerLength) % 8, 0, 'data section starts 8-byte aligned');
  assert.deepEqual(await fsp.readdir(dir), ['model.safetensors'], 'no temp file left behind');

  const { tensors: back, metadata, skipped } = await readSafetensors(file);
  assert.deepEqual(metadata, { format: 'pt', note: 'round trip' });
  assert.equal(skipped.size, 0);
  assert.deepEqual([...back.keys()], ['a.weight', 'b', 'empty']);
  for (const [name, t] of tensors) {
    assert.deepEqual(back.get(name)!.shape, t.shape, name);
    assert.deepEqual([...back.get(name)!.data], [...t.data], name);
  }

  const header = await readSafetensorsHeader(file);
  assert.deepEqual(header.entries.get('b'), { dtype: 'F32', shape: [3], dataOffsets: [16, 28] });
  assert.equal(header.dataStart, 8 + headerLength);
});

test('writeSafetensors replaces an existing file and rejects a data/shape mismatch', async () => {
  const dir = await tempDir();
  const file = path.join(dir, 'm.safetensors');
  await writeSafetensors(file, new Map([['x', { shape: [1], data: new Float32Array([1]) }]]));
  await writeSafetensors(file, new Map([['y', { shape: [2], data: new Float32Array([2, 3]) }]]));
  assert.deepEqual([...(await readSafetensors(file)).tensors.keys()], ['y']);
  await assert.rejects(
    writeSafetensors(file, new Map([['bad', { shape: [3], data: new Float32Array(2) }]])),
    (e: Error) => e.message.includes(file) && e.message.includes('"bad" has 2 values'),
  );
  assert.deepEqual([...(await readSafetensors(file)).tensors.keys()], ['y'], 'failed write left the old file intact');
});

test('F16 and BF16 decode to known float32 values; F64 narrows; unaligned data works', async () => {
  const dir = await tempDir();
  const file = path.join(dir, 'half.safetensors');
  const f16 = [0x3c00, 0xc000, 0x7bff, 0x0001, 0x0400, 0x3555, 0x7c00, 0xfc00, 0x8000, 0x7e00];
  const f16Want = [1, -2, 65504, 2 ** -24, 2 ** -14, 0.333251953125, Infinity, -Infinity, -0, NaN];
  const bf16 = [0x3f80, 0xc040, 0x4049, 0x3e80, 0xbf00, 0x7f80, 0x0000];
  const bf16Want = [1, -3, 3.140625, 0.25, -0.5, Infinity, 0];
  const f64 = Buffer.alloc(16);
  f64.writeDoubleLE(0.1, 0);
  f64.writeDoubleLE(-1e10, 8);
  const i32 = Buffer.alloc(8);
  i32.writeInt32LE(7, 0);
  const f32 = Buffer.alloc(8);
  f32.writeFloatLE(1.25, 0);
  f32.writeFloatLE(-8, 4);

  // One padding byte first so every tensor starts at an odd offset: forces the aligned-copy path.
  const parts = [Buffer.alloc(1), u16Bytes(f16), u16Bytes(bf16), f64, i32, f32];
  const offsets: [number, number][] = [];
  let at = 0;
  for (const p of parts) {
    offsets.push([at, at + p.length]);
    at += p.length;
  }
  const header = {
    pad: { dtype: 'U8', shape: [1], data_offsets: offsets[0] },
    h: { dtype: 'F16', shape: [f16.length], data_offsets: offsets[1] },
    b: { dtype: 'BF16', shape: [bf16.length], data_offsets: offsets[2] },
    d: { dtype: 'F64', shape: [2], data_offsets: offsets[3] },
    i: { dtype: 'I32', shape: [2], data_offsets: offsets[4] },
    f: { dtype: 'F32', shape: [1, 2], data_offsets: offsets[5] },
  };
  await fsp.writeFile(file, rawFile(header, Buffer.concat(parts)));
  const { tensors, skipped } = await readSafetensors(file);

  assert.deepEqual(
    [...tensors.get('h')!.data],
    f16Want.map(v => Math.fround(v)),
  );
  assert.ok(Object.is(tensors.get('h')!.data[8], -0), 'F16 negative zero keeps its sign');
  assert.deepEqual([...tensors.get('b')!.data], bf16Want);
  assert.deepEqual([...tensors.get('d')!.data], [Math.fround(0.1), Math.fround(-1e10)]);
  assert.deepEqual(tensors.get('f'), { shape: [1, 2], data: new Float32Array([1.25, -8]) });
  assert.deepEqual(
    [...skipped],
    [
      ['pad', 'U8'],
      ['i', 'I32'],
    ],
    'non-float tensors are reported, not decoded',
  );
  assert.equal(tensors.has('i'), false);
});

/** Malformed files: each must fail with the file path and a description of the problem. */
const malformed: [string, () => Buffer, RegExp][] = [
  ['zero-byte file', () => Buffer.alloc(0), /file is 0 bytes, too short/],
  [
    'header length beyond the file',
    () => {
      const b = Buffer.alloc(100);
      b.writeBigUInt64LE(123456n);
      return b;
    },
    /header length 123456 is beyond the end of the file \(100 bytes\)/,
  ],
  [
    'header length near 2^64',
    () => {
      const b = Buffer.alloc(16);
      b.writeBigUInt64LE(2n ** 64n - 1n);
      return b;
    },
    /header length 18446744073709551615 is beyond the end of the file/,
  ],
  ['bad JSON', () => rawFile(null, Buffer.alloc(0), '{"a": {"dtype": "F32",'), /header is not valid JSON/],
  ['JSON that is not an object', () => rawFile([1, 2], Buffer.alloc(0)), /header is not a JSON object/],
  [
    'offsets out of range',
    () => rawFile({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, Buffer.alloc(8)),
    /tensor "w": data_offsets \[0, 16\] are outside the data section \(8 bytes\)/,
  ],
  [
    'reversed offsets',
    () => rawFile({ w: { dtype: 'F32', shape: [0], data_offsets: [8, 4] } }, Buffer.alloc(8)),
    /tensor "w": data_offsets \[8, 4\] are outside/,
  ],
  [
    'byte length / shape mismatch',
    () => rawFile({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, Buffer.alloc(8)),
    /tensor "w": data_offsets span 8 bytes but F32 shape \[3\] needs 12/,
  ],
  [
    'unknown dtype',
    () => rawFile({ w: { dtype: 'F128', shape: [1], data_offsets: [0, 16] } }, Buffer.alloc(16)),
    /tensor "w": unknown dtype "F128"/,
  ],
  [
    'bad shape',
    () => rawFile({ w: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, Buffer.alloc(4)),
    /tensor "w": shape \[-1\] is not a list of non-negative integers/,
  ],
  [
    'missing offsets',
    () => rawFile({ w: { dtype: 'F32', shape: [1] } }, Buffer.alloc(4)),
    /tensor "w": data_offsets undefined is not a pair/,
  ],
  [
    'overlapping tensors',
    () =>
      rawFile(
        {
          a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
          b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
        },
        Buffer.alloc(12),
      ),
    /tensors "a" and "b" overlap/,
  ],
  [
    'non-string metadata',
    () => rawFile({ __metadata__: { n: 1 } }, Buffer.alloc(0)),
    /__metadata__ value "n" is not a string/,
  ],
];

for (const [name, build, problem] of malformed) {
  test(`malformed: ${name}`, async () => {
    const file = path.join(await tempDir(), 'model.safetensors');
    await fsp.writeFile(file, build());
    for (const read of [readSafetensors, readSafetensorsHeader]) {
      await assert.rejects(read(file), (e: Error) => {
        assert.ok(e.message.startsWith(`${file}: `), `message names the file: ${e.message}`);
        assert.match(e.message, problem);
        return true;
      });
    }
  });
}

test('a header over the 100 MB limit is rejected before it is read', async () => {
  const file = path.join(await tempDir(), 'huge.safetensors');
  const declared = 100 * 1024 * 1024 + 1;
  const handle = await fsp.open(file, 'w');
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(declared));
  await handle.write(length);
  await handle.truncate(8 + declared); // sparse: costs no disk
  await handle.close();
  await assert.rejects(readSafetensorsHeader(file), (e: Error) => {
    assert.equal(e.message, `${file}: header length ${declared} exceeds the 104857600-byte limit`);
    return true;
  });
});

test('a missing file gives an error naming it', async () => {
  const file = path.join(await tempDir(), 'nope.safetensors');
  await assert.rejects(readSafetensors(file), (e: Error) => e.message === `${file}: file not found`);
});

/** Every tensor a tiny ViT needs, in Hugging Face naming, filled with distinct values. */
function tinyVitTensors(arch: ViTArch): Map<string, Tensor> {
  const { hiddenSize: D, mlpSize: M, patchSize: P, numChannels: C, numClasses: K } = arch;
  const tokens = 1 + (arch.imageSize[0] / P) * (arch.imageSize[1] / P);
  const shapes: [string, number[]][] = [
    [W.clsToken, [1, 1, D]],
    [W.posEmbed, [1, tokens, D]],
    [W.patchWeight, [D, C, P, P]],
    [W.patchBias, [D]],
    [W.finalNormWeight, [D]],
    [W.finalNormBias, [D]],
    [W.headWeight, [K, D]],
    [W.headBias, [K]],
  ];
  for (let i = 0; i < arch.numLayers; i++) {
    const l = W.layer(i);
    shapes.push(
      [l.norm1Weight, [D]],
      [l.norm1Bias, [D]],
      [l.qWeight, [D, D]],
      [l.qBias, [D]],
      [l.kWeight, [D, D]],
      [l.kBias, [D]],
      [l.vWeight, [D, D]],
      [l.vBias, [D]],
      [l.projWeight, [D, D]],
      [l.projBias, [D]],
      [l.norm2Weight, [D]],
      [l.norm2Bias, [D]],
      [l.fc1Weight, [M, D]],
      [l.fc1Bias, [M]],
      [l.fc2Weight, [D, M]],
      [l.fc2Bias, [D]],
    );
  }
  let next = 0;
  return new Map(
    shapes.map(([name, shape]) => {
      const data = new Float32Array(shape.reduce((a, b) => a * b, 1)).map(() => next++ / 100);
      return [name, { shape, data }];
    }),
  );
}

const tinyConfig = {
  model_type: 'vit',
  hidden_size: 4,
  num_hidden_layers: 1,
  num_attention_heads: 2,
  intermediate_size: 8,
  image_size: 4,
  patch_size: 2,
  num_channels: 3,
  id2label: { '1': 'dog', '0': 'cat', '2': 'bird' },
};

test('Hugging Face folder: arch and ordered labels from config.json; weights with or without the vit. prefix', async () => {
  const dir = await tempDir();
  await fsp.writeFile(path.join(dir, 'config.json'), JSON.stringify(tinyConfig));
  const { arch, labels } = await archAndLabelsFromHfFolder(dir);
  assert.deepEqual(labels, ['cat', 'dog', 'bird']);
  assert.equal(arch.numClasses, 3);
  assert.equal(arch.hiddenSize, 4);
  const tensors = tinyVitTensors(arch);

  const file = path.join(dir, 'model.safetensors');
  await writeSafetensors(file, tensors);
  const loaded = await loadHfWeights(file, arch);
  assert.deepEqual([...loaded.keys()].sort(), [...tensors.keys()].sort());
  assert.deepEqual([...loaded.get(W.layer(0).fc1Weight)!.data], [...tensors.get(W.layer(0).fc1Weight)!.data]);

  // A bare ViTModel's keys lack "vit."; its pooler is not ours to use.
  const bare = new Map([...tensors].map(([k, t]) => [k.replace(/^vit\./, ''), t] as [string, Tensor]));
  bare.set('pooler.dense.weight', { shape: [4, 4], data: new Float32Array(16) });
  await writeSafetensors(file, bare);
  const fromBare = await loadHfWeights(file, arch);
  assert.deepEqual([...fromBare.keys()].sort(), [...tensors.keys()].sort());

  // Without id2label/num_labels the class count comes from the classifier's shape.
  await fsp.writeFile(path.join(dir, 'config.json'), JSON.stringify({ ...tinyConfig, id2label: undefined }));
  assert.deepEqual(await archAndLabelsFromHfFolder(dir), { arch, labels: [] });
});

test('Hugging Face folder errors name the file and the tensor', async () => {
  const dir = await tempDir();
  const configPath = path.join(dir, 'config.json');
  await fsp.writeFile(configPath, JSON.stringify(tinyConfig));
  const { arch } = await archAndLabelsFromHfFolder(dir);
  const tensors = tinyVitTensors(arch);
  const file = path.join(dir, 'model.safetensors');

  tensors.set(W.layer(0).fc2Weight, { shape: [8, 4], data: new Float32Array(32) });
  await writeSafetensors(file, tensors);
  await assert.rejects(loadHfWeights(file, arch), {
    message: `${file}: tensor "vit.encoder.layer.0.output.dense.weight" has shape [8, 4], expected [4, 8]`,
  });

  // An integer-typed tensor is reported by dtype rather than as missing.
  tensors.delete(W.headBias);
  tensors.set(W.layer(0).fc2Weight, { shape: [4, 8], data: new Float32Array(32) });
  await writeSafetensors(file, tensors);
  const bytes = await fsp.readFile(file);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString());
  const end = bytes.length - 8 - headerLength;
  header[W.headBias] = { dtype: 'I64', shape: [3], data_offsets: [end, end + 24] };
  await fsp.writeFile(file, rawFile(header, Buffer.concat([bytes.subarray(8 + headerLength), Buffer.alloc(24)])));
  await assert.rejects(loadHfWeights(file, arch), {
    message: `${file}: tensor "classifier.bias" has dtype I64; only F32, F16, BF16 and F64 are supported`,
  });

  await fsp.writeFile(configPath, JSON.stringify({ ...tinyConfig, model_type: 'dinov2' }));
  await assert.rejects(archAndLabelsFromHfFolder(dir), {
    message: `${configPath}: model_type "dinov2" is not supported (only "vit")`,
  });
  await fsp.writeFile(configPath, '{ not json');
  await assert.rejects(archAndLabelsFromHfFolder(dir), (e: Error) =>
    e.message.startsWith(`${configPath}: cannot read the model config`),
  );
});
