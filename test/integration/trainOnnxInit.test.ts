/**
 * `vit-lens train --model FILE.onnx` end to end through the built CLI (dist/cli.js): a torchvision
 * ViT exported by torch.onnx as INIT, head mode, one epoch; and a non-ViT ONNX refused clearly.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { trainingSetup } from './trainingSetup';

const root = path.join(__dirname, '..', '..');
const { tmp, dataset, cacheDir, cli } = trainingSetup('train-onnx', { perClass: 4 });

test('train --model model.onnx (torch.onnx export of torchvision ViT) --mode head --epochs 1', async () => {
  const model = path.join(root, 'test', 'fixtures', 'vit-prelogits', 'model.onnx');
  const run = path.join(tmp, 'run');
  const r = await cli([
    'train',
    dataset,
    '--model',
    model,
    '--out',
    run,
    '--mode',
    'head',
    '--epochs',
    '1',
    '--batch-size',
    '4',
    '--cache-dir',
    cacheDir,
  ]);
  assert.equal(r.code, 0, r.stderr);
  const info = JSON.parse(fs.readFileSync(path.join(run, 'run.json'), 'utf8'));
  assert.equal(info.status, 'finished');
  assert.equal(info.epoch, 1);
  assert.deepEqual(info.classes, ['blue', 'green', 'red']);
  const config = JSON.parse(fs.readFileSync(path.join(run, 'export', 'config.json'), 'utf8'));
  assert.deepEqual(
    [config.hidden_size, config.num_hidden_layers, config.num_attention_heads, config.pre_logits_size, config.qkv_bias],
    [32, 2, 2, 24, false],
  );
  assert.ok(fs.existsSync(path.join(run, 'export', 'onnx', 'model.onnx')));

  // The run's own exported ONNX (our builder's graph) is itself a valid INIT, and it takes the
  // export folder's preprocessing with it (made non-default here, so that taking defaults shows).
  const preFile = path.join(run, 'export', 'preprocessor_config.json');
  const pre = JSON.parse(fs.readFileSync(preFile, 'utf8'));
  fs.writeFileSync(preFile, JSON.stringify({ ...pre, image_mean: [0.4, 0.45, 0.5], image_std: [0.2, 0.25, 0.3] }));
  const again = await cli([
    'train',
    dataset,
    '--model',
    path.join(run, 'export', 'onnx', 'model.onnx'),
    '--out',
    path.join(tmp, 'run2'),
    '--mode',
    'head',
    '--epochs',
    '1',
    '--batch-size',
    '4',
    '--cache-dir',
    cacheDir,
  ]);
  assert.equal(again.code, 0, again.stderr);
  const info2 = JSON.parse(fs.readFileSync(path.join(tmp, 'run2', 'run.json'), 'utf8'));
  assert.deepEqual(
    [info2.preprocess.mean, info2.preprocess.std],
    [
      [0.4, 0.45, 0.5],
      [0.2, 0.25, 0.3],
    ],
  );
});

test('train --model not-vit.onnx: a clear error naming the file', async () => {
  const model = path.join(root, 'test', 'fixtures', 'bad', 'not-vit.onnx');
  const r = await cli([
    'train',
    dataset,
    '--model',
    model,
    '--out',
    path.join(tmp, 'bad'),
    '--mode',
    'head',
    '--epochs',
    '1',
    '--cache-dir',
    cacheDir,
  ]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(
    r.stderr,
    /not-vit\.onnx: cannot recover ViT weights from this ONNX file: no patch-embedding Conv on the image input\. Use the Hugging Face folder/,
  );
});
