/**
 * ONNX files we did not build: torch.onnx exports whose attention is written the way Hugging Face's
 * ViTSelfAttention and timm's Attention write it (scripts/make_export_fixtures.py). The attention tap
 * must find each layer's Softmax — and only those — and what ONNX Runtime then returns must equal the
 * probabilities torch computed.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Engine } from '../../server/engine';
import { maxAbsDiff } from './arrays';

const dir = path.join(__dirname, '..', 'fixtures', 'exports');
const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
const photo = path.join(__dirname, '..', 'fixtures', 'photos', 'chelsea.png');
const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-exports-'));
after(() => fs.rmSync(cacheDir, { recursive: true, force: true }));

function readF32(file: string): Float32Array {
  const b = fs.readFileSync(path.join(dir, file));
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

for (const [name, model] of Object.entries(manifest.models) as [
  string,
  { onnx: string; logits: string; attention: string },
][]) {
  test(`${name} export: attention found, equal to torch's, explain works`, async () => {
    const engine = new Engine({ cacheDir, provider: 'cpu' });
    try {
      const info = await engine.load(path.join(dir, model.onnx));
      assert.ok(info.explainAvailable, info.explainUnavailableReason);
      assert.equal(info.numLayers, manifest.layers, 'one attention output per layer, no other Softmax');
      assert.equal(info.patchSize, manifest.patch);
      assert.deepEqual(info.imageSize, [manifest.image_size, manifest.image_size]);

      const out = await engine.runPixels(readF32(manifest.input.file), 2, true);
      assert.ok(maxAbsDiff(out.logits, readF32(model.logits)) <= 1e-5, 'logits');
      const ref = readF32(model.attention); // [L, N, H, T, T]
      const perLayer = ref.length / manifest.layers;
      out.attentions!.forEach((t, l) => {
        const d = maxAbsDiff(t.data as Float32Array, ref.subarray(l * perLayer, (l + 1) * perLayer));
        assert.ok(d <= 1e-5, `layer ${l} attention differs from torch by ${d}`);
      });

      const grid = manifest.image_size / manifest.patch;
      const r = await engine.explain(photo, { headFusion: 'max', discardRatio: 0.5 });
      assert.deepEqual(r.map.grid, [grid, grid]);
      assert.equal(Math.max(...r.map.values), 1);
    } finally {
      await engine.dispose();
    }
  });
}
