/**
 * Bad models against the built CLI (dist/cli.js; npm run build first): config.json fields that are
 * out of range or of the wrong type, files that are not ONNX, ONNX graphs that are not image models
 * or that ONNX Runtime refuses, and a cache folder that cannot be written. One row each; every row
 * checks the exit code, a phrase of stderr (naming the file and the problem) and wall time, and no
 * row may show ANSI codes, ONNX Runtime's C++ source paths, a JavaScript internal error or a stack.
 *
 * A row (type BadInput, badInput.ts):
 *   name        what the input is
 *   make(dir)   builds the input inside `dir` (a fresh empty temp folder) and returns the CLI arguments
 *   exit        the expected exit code
 *   stderr      a RegExp stderr must match
 *   stdout      optional RegExp stdout must match
 *   maxSeconds  wall-time limit
 * To add a case, append a row to ROWS; makers shared between rows are below the table.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { onnx } from 'onnx-proto';
import { archAndLabelsFromHfFolder, loadHfWeights } from '../../server/formats/hfSafetensors';
import { buildVitOnnx } from '../../server/model/onnxBuilder';
import { makeColorDataset } from '../fixtures/train/makeDataset';
import type { BadInput } from './badInput';
import { runCli } from './runCli';

const FIX = path.join(__dirname, '..', 'fixtures');
const TINY_HF = path.join(FIX, 'vit-tiny', 'hf');
const PHOTO = path.join(FIX, 'photos', 'chelsea.png');
const ONNX_WITH_DATA = path.join(FIX, 'onnx-init', 'timm-style-opset17.onnx');

const ROWS: BadInput[] = [
  // ---- config.json: one check per field we read (server/model/vitConfig.ts parseHfConfig, checkArch) ----
  configRow(
    'num_hidden_layers: -1',
    { num_hidden_layers: -1 },
    /config\.json: "num_hidden_layers" must be an integer in \[1, 1024\], got -1$/m,
  ),
  configRow(
    'num_hidden_layers: 2.5',
    { num_hidden_layers: 2.5 },
    /config\.json: "num_hidden_layers" must be an integer in \[1, 1024\], got 2\.5/,
  ),
  configRow(
    'num_hidden_layers: 1e9',
    { num_hidden_layers: 1e9 },
    /config\.json: "num_hidden_layers" must be an integer in \[1, 1024\], got 1000000000/,
  ),
  configRow(
    'hidden_size: "64" (a string)',
    { hidden_size: '64' },
    /config\.json: "hidden_size" must be an integer in \[1, 65536\], got "64"/,
  ),
  configRow(
    'num_attention_heads: 0',
    { num_attention_heads: 0 },
    /config\.json: "num_attention_heads" must be an integer in \[1, 1024\], got 0/,
  ),
  configRow(
    'num_attention_heads: 3 (64 is not divisible by 3)',
    { num_attention_heads: 3 },
    /config\.json: hidden_size 64 is not divisible by num_attention_heads 3/,
  ),
  configRow(
    'intermediate_size: null',
    { intermediate_size: null },
    /config\.json: "intermediate_size" must be an integer in \[1, 262144\], got null/,
  ),
  configRow(
    'layer_norm_eps: -1',
    { layer_norm_eps: -1 },
    /config\.json: "layer_norm_eps" must be a number > 0, got -1/,
  ),
  configRow('layer_norm_eps: 0', { layer_norm_eps: 0 }, /config\.json: "layer_norm_eps" must be a number > 0, got 0/),
  configRow(
    'image_size: 200 (not a multiple of the patch)',
    { image_size: 200 },
    /config\.json: image_size height 200 is not a multiple of patch_size 16/,
  ),
  configRow(
    'image_size: [224, 200]',
    { image_size: [224, 200] },
    /config\.json: image_size width 200 is not a multiple of patch_size 16/,
  ),
  configRow(
    'image_size: "224"',
    { image_size: '224' },
    /config\.json: "image_size" must be an integer or \[height, width\], got "224"/,
  ),
  configRow('patch_size: 0', { patch_size: 0 }, /config\.json: "patch_size" must be an integer in \[1, 16384\], got 0/),
  configRow('num_channels: 1', { num_channels: 1 }, /config\.json: "num_channels" must be 3 \(RGB\), got 1/),
  configRow('qkv_bias: "yes"', { qkv_bias: 'yes' }, /config\.json: "qkv_bias" must be true or false, got "yes"/),
  configRow(
    'hidden_act: "relu"',
    { hidden_act: 'relu' },
    /config\.json: "hidden_act" "relu" is not supported \(only exact "gelu"\)/,
  ),
  configRow(
    'id2label: a list',
    { id2label: ['a', 'b'] },
    /config\.json: "id2label" must be an object mapping class indices \("0", "1", …\) to labels, got a list/,
  ),
  configRow(
    'id2label: a key that is not an index',
    { id2label: { cat: 'cat' } },
    /config\.json: "id2label\.cat" is a key that is not a class index \("0", "1", …\)/,
  ),
  configRow(
    'id2label: a label that is not a string',
    { id2label: { 0: 5 } },
    /config\.json: "id2label\.0" must map each class index to a string label, got 5/,
  ),
  configRow(
    'num_labels: "ten"',
    { num_labels: 'ten', id2label: undefined },
    /config\.json: "num_labels" must be an integer in \[1, 1000000\], got "ten"/,
  ),
  configRow(
    'pre_logits_size: -5',
    { pre_logits_size: -5 },
    /config\.json: "pre_logits_size" must be an integer in \[1, 65536\], got -5/,
  ),
  {
    name: 'config.json: [1, 2, 3] (not an object)',
    make: dir => ['classify', PHOTO, '--model', hfFolder(dir, () => [1, 2, 3])],
    exit: 1,
    stderr: /model\/config\.json: must be a JSON object, got a list/,
    maxSeconds: 10,
  },
  {
    name: 'config.json: null',
    make: dir => ['classify', PHOTO, '--model', hfFolder(dir, () => null)],
    exit: 1,
    stderr: /model\/config\.json: must be a JSON object, got null/,
    maxSeconds: 10,
  },
  {
    name: 'config.json: num_hidden_layers -1, with info (said "-1 layers")',
    make: dir => ['info', '--model', hfFolder(dir, c => ({ ...c, num_hidden_layers: -1 }))],
    exit: 1,
    stderr: /config\.json: "num_hidden_layers" must be an integer/,
    maxSeconds: 10,
  },
  {
    name: 'config.json: num_hidden_layers -1, with explain (crashed on undefined)',
    make: dir => ['explain', PHOTO, '--model', hfFolder(dir, c => ({ ...c, num_hidden_layers: -1 }))],
    exit: 1,
    stderr: /config\.json: "num_hidden_layers" must be an integer/,
    maxSeconds: 10,
  },
  {
    name: 'config.json: num_hidden_layers -1, as train --model (exported -1)',
    make: async dir => {
      await makeColorDataset(path.join(dir, 'ds'), { perClass: 2 });
      const model = hfFolder(dir, c => ({ ...c, num_hidden_layers: -1 }));
      return [
        'train',
        path.join(dir, 'ds'),
        '--model',
        model,
        '--out',
        path.join(dir, 'run'),
        '--image-size',
        '32',
        '--epochs',
        '1',
        '--cache-dir',
        path.join(dir, 'cache'),
      ];
    },
    exit: 1,
    stderr: /config\.json: "num_hidden_layers" must be an integer in \[1, 1024\], got -1/,
    maxSeconds: 30,
  },

  // ---- .onnx files that are not ONNX models or not image models (server/model/modelSource.ts) ----
  {
    name: 'ONNX: an empty file',
    make: dir => classifyWith(writeFile(dir, 'empty.onnx', Buffer.alloc(0))),
    exit: 1,
    stderr: /empty\.onnx: the file is empty, not an ONNX model/,
    maxSeconds: 10,
  },
  {
    name: 'ONNX: bytes that are not a protobuf',
    make: dir => classifyWith(writeFile(dir, 'random.onnx', Buffer.from('0f4a6b3c2d1e00ff7f80', 'hex'))),
    exit: 1,
    stderr: /random\.onnx: not an ONNX model \(the file is not a valid ONNX protobuf: /,
    maxSeconds: 10,
  },
  {
    name: 'ONNX: a protobuf cut short',
    make: dir =>
      classifyWith(
        writeFile(dir, 'cut.onnx', fs.readFileSync(path.join(FIX, 'vit-tiny', 'model.onnx')).subarray(0, 1000)),
      ),
    exit: 1,
    stderr: /cut\.onnx: not an ONNX model \(the file is not a valid ONNX protobuf: index out of range/,
    maxSeconds: 10,
  },
  {
    name: 'ONNX: a model with no graph',
    make: dir =>
      classifyWith(
        writeFile(dir, 'nograph.onnx', onnx.ModelProto.encode({ irVersion: 8, producerName: 'x' }).finish()),
      ),
    exit: 1,
    stderr: /nograph\.onnx: not an ONNX model \(it holds no graph\)/,
    maxSeconds: 10,
  },
  {
    name: 'ONNX: a rank-2 input (not an image model)',
    make: dir => classifyWith(writeFile(dir, 'rank2.onnx', matMulModel([1, 10]))),
    exit: 1,
    stderr:
      /rank2\.onnx: input "x" has shape \[1, 10\], but an image model takes a batch of RGB images \[N, 3, height, width\]/,
    maxSeconds: 10,
  },
  {
    name: 'ONNX: a one-channel image input',
    make: dir => classifyWith(writeFile(dir, 'gray.onnx', matMulModel([1, 1, 224, 224]))),
    exit: 1,
    stderr: /gray\.onnx: input "x" has shape \[1, 1, 224, 224\], but an image model takes a batch of RGB images/,
    maxSeconds: 10,
  },
  {
    name: 'ONNX: external data location "." (the model folder itself)',
    make: dir => {
      const model = onnx.ModelProto.decode(fs.readFileSync(ONNX_WITH_DATA));
      for (const t of model.graph!.initializer!)
        for (const e of t.externalData ?? []) if (e.key === 'location') e.value = '.';
      return classifyWith(writeFile(dir, 'model.onnx', onnx.ModelProto.encode(model).finish()));
    },
    exit: 1,
    stderr: /model\.onnx: .*(folder|directory)/,
    maxSeconds: 10,
  },
  {
    name: 'ONNX: a graph ONNX Runtime refuses (LayerNorm epsilon -1)',
    make: async dir => {
      const { arch } = await archAndLabelsFromHfFolder(TINY_HF);
      const weights = await loadHfWeights(path.join(TINY_HF, 'model.safetensors'), arch);
      return classifyWith(writeFile(dir, 'eps.onnx', buildVitOnnx({ ...arch, layerNormEps: -1 }, weights)));
    },
    exit: 1,
    stderr: /eps\.onnx: ONNX Runtime cannot load this model: Exception during initialization: epsilon_ >= 0 was false/,
    maxSeconds: 15,
  },

  // ---- the model cache (server/model/modelSource.ts buildCached) ----
  {
    name: '--cache-dir is a file: the built-in model loads from memory with one warning',
    make: dir => ['classify', PHOTO, '--cache-dir', writeFile(dir, 'not-a-folder', Buffer.from('x'))],
    exit: 0,
    stderr:
      /^vit-lens: warning: cannot write the model cache in .*not-a-folder \(a file is in the way of the folder\); the model was built in memory and will be built again on every load\. Set --cache-dir to a writable folder$/m,
    stdout: /chelsea\.png\n\s+\d+\.\d%/,
    maxSeconds: 30,
  },
  {
    name: '--cache-dir is inside a file: a Hugging Face folder loads from memory with one warning',
    make: dir => [
      'classify',
      PHOTO,
      '--model',
      TINY_HF,
      '--cache-dir',
      path.join(writeFile(dir, 'file', Buffer.from('x')), 'cache'),
    ],
    exit: 0,
    stderr:
      /vit-lens: warning: cannot write the model cache in .*file\/cache \(a file is in the way of the folder\).*Set --cache-dir/,
    stdout: /tabby cat/,
    maxSeconds: 30,
  },
];

// ---- makers ----

/** A copy of the tiny Hugging Face model in `dir/model` whose config.json is `edit(config)`. */
function hfFolder(dir: string, edit: (config: Record<string, unknown>) => unknown): string {
  const folder = path.join(dir, 'model');
  fs.mkdirSync(folder);
  for (const f of ['model.safetensors', 'preprocessor_config.json'])
    fs.copyFileSync(path.join(TINY_HF, f), path.join(folder, f));
  const config = JSON.parse(fs.readFileSync(path.join(TINY_HF, 'config.json'), 'utf8'));
  fs.writeFileSync(path.join(folder, 'config.json'), JSON.stringify(edit(config)));
  return folder;
}

/** A row classifying a photo with the tiny model whose config.json has `fields` changed (undefined removes a field). */
function configRow(what: string, fields: Record<string, unknown>, stderr: RegExp): BadInput {
  return {
    name: `config.json: ${what}`,
    make: dir => ['classify', PHOTO, '--model', hfFolder(dir, c => ({ ...c, ...fields }))],
    exit: 1,
    stderr,
    maxSeconds: 10,
  };
}

function writeFile(dir: string, name: string, bytes: Uint8Array): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, bytes);
  return file;
}

const classifyWith = (model: string) => ['classify', PHOTO, '--model', model];

/** y = x · W with x of static shape `inputShape` (a graph ONNX Runtime runs, but no image classifier). */
function matMulModel(inputShape: number[]): Uint8Array {
  const last = inputShape[inputShape.length - 1];
  const dim = (dims: number[]) => ({ dim: dims.map(d => ({ dimValue: d })) });
  return onnx.ModelProto.encode({
    irVersion: 8,
    opsetImport: [{ version: 17 }],
    graph: {
      name: 'not-an-image-model',
      node: [{ opType: 'MatMul', input: ['x', 'W'], output: ['y'] }],
      initializer: [
        {
          name: 'W',
          dims: [last, 5],
          dataType: 1,
          rawData: new Uint8Array(new Float32Array(last * 5).fill(0.1).buffer),
        },
      ],
      input: [{ name: 'x', type: { tensorType: { elemType: 1, shape: dim(inputShape) } } }],
      output: [{ name: 'y', type: { tensorType: { elemType: 1, shape: dim([...inputShape.slice(0, -1), 5]) } } }],
    },
  }).finish();
}

// ---- the table, run ----

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-bad-models-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

for (const [i, row] of ROWS.entries()) {
  test(row.name, { timeout: row.maxSeconds * 2000 + 30_000 }, async () => {
    const dir = path.join(tmp, String(i));
    fs.mkdirSync(dir);
    const args = await row.make(dir);
    const started = Date.now();
    const r = await runCli(args, {
      env: { VIT_LENS_CACHE: path.join(dir, 'default-cache'), VIT_LENS_MODEL: undefined, VIT_LENS_DEBUG: undefined },
    });
    const seconds = (Date.now() - started) / 1000;
    const what = `${row.name}\nexit ${r.code}\nstderr: ${r.stderr}`;
    assert.equal(r.code, row.exit, what);
    assert.match(r.stderr, row.stderr, what);
    if (row.stdout) assert.match(r.stdout, row.stdout, `${what}\nstdout: ${r.stdout}`);
    assert.ok(seconds <= row.maxSeconds, `${row.name}: took ${seconds.toFixed(1)} s (limit ${row.maxSeconds} s)`);
    // Our words only: no terminal colours, no ONNX Runtime internals, no JavaScript internals.
    assert.ok(!r.stderr.includes('\u001b['), `${row.name}: ANSI codes in stderr`);
    assert.doesNotMatch(
      r.stderr,
      /onnxruntime_src|\.cc:\d+|onnxruntime::/,
      `${row.name}: ONNX Runtime internals in stderr`,
    );
    assert.doesNotMatch(
      r.stderr,
      /Cannot read propert|is not a function|TypeError|ENOTDIR|EISDIR|\n\s+at /,
      `${row.name}: an internal error in stderr`,
    );
    if (row.exit !== 0)
      assert.equal(r.stderr.match(/warning:/g)?.length ?? 0, 0, `${row.name}: a warning besides the error`);
    else assert.ok((r.stderr.match(/warning:/g)?.length ?? 0) <= 1, `${row.name}: more than one warning`);
  });
}
