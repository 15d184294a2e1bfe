/**
 * The Select Model picker's precision variants (extension/modelVariants.ts): a transformers.js
 * folder lists the onnx/ variant files present with their sizes on disk; models built from weights
 * (a Hugging Face folder, a Google .npz) offer fp32/fp16/q8 with sizes estimated from the
 * parameter count, which must come within 2% of what the builder really writes.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { formatSize, listModelVariants } from '../../extension/modelVariants';
import { Engine } from '../../server/engine';

const fixtures = path.join(__dirname, '..', 'fixtures');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-variants-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function write(rel: string, bytes: number): void {
  fs.mkdirSync(path.dirname(path.join(tmp, rel)), { recursive: true });
  fs.writeFileSync(path.join(tmp, rel), Buffer.alloc(bytes));
}

test('a transformers.js folder: the onnx/ variants present, each with its size (external data included)', async () => {
  write('tjs/config.json', 2);
  write('tjs/onnx/model.onnx', 1000);
  write('tjs/onnx/model.onnx_data', 5000);
  write('tjs/onnx/model_quantized.onnx', 1500);
  write('tjs/onnx/model_int8.onnx', 1500); // not a variant the worker loads
  assert.deepEqual(await listModelVariants(path.join(tmp, 'tjs')), [
    { dtype: 'fp32', bytes: 6000, file: 'onnx/model.onnx', estimated: false },
    { dtype: 'q8', bytes: 1500, file: 'onnx/model_quantized.onnx', estimated: false },
  ]);
  // With model.safetensors beside them the worker builds from the weights, so those are offered instead.
  fs.copyFileSync(
    path.join(fixtures, 'vit-tiny', 'hf', 'model.safetensors'),
    path.join(tmp, 'tjs', 'model.safetensors'),
  );
  assert.deepEqual(
    (await listModelVariants(path.join(tmp, 'tjs'))).map(v => [v.dtype, v.estimated]),
    [
      ['fp32', true],
      ['fp16', true],
      ['q8', true],
    ],
  );
});

test('nothing to choose for one .onnx file, a hub id or a missing path', async () => {
  assert.deepEqual(await listModelVariants(path.join(fixtures, 'vit-tiny', 'model.onnx')), []);
  assert.deepEqual(await listModelVariants('google/vit-base-patch16-224'), []);
  assert.deepEqual(await listModelVariants(path.join(tmp, 'missing')), []);
});

for (const [kind, spec] of [
  ['Hugging Face folder', path.join(fixtures, 'vit-tiny', 'hf')],
  ['Google .npz', path.join(fixtures, 'vit-tiny', 'google.npz')],
] as const) {
  test(`${kind}: estimated sizes within 2% of the files the builder writes for each dtype`, async () => {
    const variants = await listModelVariants(spec);
    assert.deepEqual(
      variants.map(v => v.dtype),
      ['fp32', 'fp16', 'q8'],
    );
    for (const v of variants) {
      const engine = new Engine({ cacheDir: path.join(tmp, 'cache'), provider: 'cpu', dtype: v.dtype });
      try {
        const built = fs.statSync((await engine.load(spec)).builtFile!).size;
        const err = Math.abs(v.bytes - built) / built;
        console.log(`${kind} ${v.dtype}: estimated ${v.bytes} B, built ${built} B (${(err * 100).toFixed(1)}%)`);
        assert.ok(v.estimated);
        assert.ok(err < 0.02, `${v.dtype}: estimated ${v.bytes} B, built ${built} B`);
      } finally {
        await engine.dispose();
      }
    }
  });
}

test('sizes read the way file managers show them', () => {
  assert.equal(formatSize(346_000_000), '346 MB');
  assert.equal(formatSize(1_234_000_000), '1.2 GB');
  assert.equal(formatSize(880_736), '881 kB');
});
