/**
 * The CLI's --provider and --dtype as a user runs them: info --json names the provider, device,
 * dtype and, when a provider could not start, why; bad values are usage errors. WebGPU runs on the
 * machine's adapter (lavapipe without a GPU) and fails here without one, like webgpuParity.test.ts.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { onnx } from 'onnx-proto';
import { runCli } from './runCli';

const fixtures = path.join(__dirname, '..', 'fixtures');
const hf = path.join(fixtures, 'vit-prelogits', 'hf');
const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-cli-provider-'));
after(() => fs.rmSync(cacheDir, { recursive: true, force: true }));
const cli = (args: string[]) =>
  runCli(args, {
    env: {
      VIT_LENS_CACHE: cacheDir,
      VIT_LENS_MODEL: undefined,
      XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp',
    },
  });

test('info --json --provider webgpu: provider, adapter, dtype', async () => {
  const r = await cli(['info', '--json', '--model', hf, '--provider', 'webgpu']);
  assert.equal(r.code, 0, r.stderr);
  const info = JSON.parse(r.stdout);
  assert.equal(
    info.provider,
    'webgpu',
    `no WebGPU (install lavapipe: scripts/install-lavapipe.sh): ${info.providerNote}`,
  );
  assert.match(info.device, / \((Vulkan|D3D12|Metal)\)$/);
  assert.equal(info.dtype, 'fp32');
  assert.equal(info.providerNote, undefined);
});

test('info --provider cuda without the CUDA provider: CPU, with the reason; the text form says it too', async () => {
  const r = await cli(['info', '--json', '--model', hf, '--provider', 'cuda']);
  assert.equal(r.code, 0, r.stderr);
  const info = JSON.parse(r.stdout);
  assert.equal(info.provider, 'cpu');
  assert.match(info.device, /\(\d+ threads?\)$/);
  assert.match(info.providerNote, /^CUDA was requested but onnxruntime-node was installed without its CUDA provider/);
  const text = await cli(['info', '--model', hf, '--provider', 'cuda', '--threads', '1']);
  assert.match(text.stdout, /provider\s+CPU · .*\(1 thread\) \(CUDA was requested/);
});

test('--dtype q8 builds and reports the int8 graph', async () => {
  const q8 = await cli(['info', '--json', '--model', hf, '--dtype', 'q8', '--provider', 'cpu']);
  assert.equal(q8.code, 0, q8.stderr);
  const info = JSON.parse(q8.stdout);
  assert.equal(info.dtype, 'q8');
  assert.match(info.builtFile, /\.q8\.onnx$/);
});

test('bad --provider and --dtype values are usage errors; --dtype on a single .onnx file names the file', async () => {
  const p = await cli(['info', '--model', hf, '--provider', 'opencl']);
  assert.equal(p.code, 2);
  assert.match(p.stderr, /--provider must be one of auto, webgpu, cuda, cpu, got "opencl"/);
  const d = await cli(['info', '--model', hf, '--dtype', 'int4']);
  assert.equal(d.code, 2);
  assert.match(d.stderr, /--dtype must be one of fp32, fp16, q8, got "int4"/);
  const onnxFile = path.join(fixtures, 'vit-prelogits', 'model.onnx');
  const o = await cli(['info', '--model', onnxFile, '--dtype', 'q8']);
  assert.equal(o.code, 1);
  assert.ok(o.stderr.includes(`${onnxFile}: --dtype q8 applies to models built from weights`), o.stderr);
});

test('a transformers.js folder (onnx/ only): --dtype picks model_quantized.onnx / model_fp16.onnx; float16 pixels are refused by name', async () => {
  const dir = path.join(cacheDir, 'tjs');
  fs.mkdirSync(path.join(dir, 'onnx'), { recursive: true });
  fs.copyFileSync(path.join(hf, 'config.json'), path.join(dir, 'config.json'));
  const fp32 = fs.readFileSync(path.join(fixtures, 'vit-prelogits', 'model.onnx'));
  fs.writeFileSync(path.join(dir, 'onnx', 'model_quantized.onnx'), fp32); // selection is what is tested here
  const half = onnx.ModelProto.decode(fp32);
  half.graph!.input![0].type!.tensorType!.elemType = onnx.TensorProto.DataType.FLOAT16;
  fs.writeFileSync(path.join(dir, 'onnx', 'model_fp16.onnx'), onnx.ModelProto.encode(half).finish());

  const q8 = await cli(['info', '--json', '--model', dir, '--dtype', 'q8', '--provider', 'cpu']);
  assert.equal(q8.code, 0, q8.stderr);
  // Loaded at all means model_quantized.onnx was taken: the folder's only other graph takes float16 pixels (refused below).
  assert.equal(JSON.parse(q8.stdout).name, 'tjs', 'a folder is named after the folder');
  assert.equal(JSON.parse(q8.stdout).dtype, 'q8');
  const none = await cli(['info', '--model', dir]);
  assert.equal(none.code, 1);
  assert.ok(
    none.stderr.includes(`${dir}: has config.json but neither model.safetensors nor onnx/model.onnx`),
    none.stderr,
  );
  const f16 = await cli(['info', '--model', dir, '--dtype', 'fp16']);
  assert.equal(f16.code, 1);
  assert.ok(
    f16.stderr.includes(
      `${path.join(dir, 'onnx', 'model_fp16.onnx')}: input "pixel_values" is float16; ViT Lens feeds float32`,
    ),
    f16.stderr,
  );
});
