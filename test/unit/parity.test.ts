/**
 * Parity with PyTorch/torchvision: logits, attention and rollout maps from every model kind agree with
 * the reference outputs that scripts/make_fixtures.py computed with torchvision's VisionTransformer
 * (a peer implementation), and our image preprocessing agrees with PIL's bilinear resize.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Engine } from '../../server/engine';
import { decodeImageFile, defaultPreprocess, resizeForModel, toPixelValues } from '../../server/preprocess';
import { readF32, maxAbsDiff } from './arrays';
import { FIXTURES, HEAD_FUSIONS, VIT_PRELOGITS, VIT_TINY } from './parityFixtures';

const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-parity-'));
after(() => fs.rmSync(cacheDir, { recursive: true, force: true }));

async function loaded(model: string, labelsFile?: string): Promise<Engine> {
  const e = new Engine({ cacheDir, provider: 'cpu' });
  await e.load(model, { labelsFile });
  return e;
}

describe('vit-tiny (torchvision ViT, 224 px, patch 16, 2 layers, 4 heads)', () => {
  const { dir, T, H } = VIT_TINY;
  const ref = JSON.parse(fs.readFileSync(path.join(dir, 'reference.json'), 'utf8'));
  const photos = path.join(FIXTURES, 'photos');
  const input = VIT_TINY.input();
  const refLogits = readF32(path.join(dir, 'logits.bin'));
  const refCls = readF32(path.join(dir, 'attn_cls.bin')); // [layer, image, head, 197]
  const refLayer0 = readF32(path.join(dir, 'attn_layer0.bin')); // [1, head, 197, 197]

  for (const [kind, model, labels] of VIT_TINY.kinds) {
    test(`${kind}: logits, attention and rollout match PyTorch to 1e-4`, async () => {
      const engine = await loaded(model, labels);
      try {
        assert.deepEqual(engine.info().labels, ref.labels);
        const out = await engine.runPixels(input, 2, true);
        const dLogits = maxAbsDiff(out.logits, refLogits);
        assert.ok(dLogits <= 1e-4, `logits max abs diff ${dLogits}`);

        const atts = out.attentions!;
        assert.equal(atts.length, 2);
        for (let l = 0; l < 2; l++) {
          const data = atts[l].data as Float32Array;
          for (let img = 0; img < 2; img++) {
            for (let h = 0; h < H; h++) {
              const ours = data.subarray((img * H + h) * T * T, (img * H + h) * T * T + T);
              const theirs = refCls.subarray(((l * 2 + img) * H + h) * T, ((l * 2 + img) * H + h) * T + T);
              const d = maxAbsDiff(ours, theirs);
              assert.ok(d <= 1e-4, `layer ${l} image ${img} head ${h} [CLS] row diff ${d}`);
            }
          }
        }
        const dFull = maxAbsDiff((atts[0].data as Float32Array).subarray(0, H * T * T), refLayer0);
        assert.ok(dFull <= 1e-4, `layer 0 full attention diff ${dFull}`);

        for (const fusion of HEAD_FUSIONS) {
          for (const discard of [0, 0.9]) {
            VIT_TINY.rolloutDiffs(atts, fusion, discard).forEach((d, img) =>
              assert.ok(d <= 1e-4, `rollout ${fusion}/${discard} image ${img} diff ${d}`),
            );
          }
        }
      } finally {
        await engine.dispose();
      }
    });
  }

  test('our decoding + resize agrees with PIL bilinear on off-size real photos (same top-1)', async () => {
    const engine = await loaded(path.join(dir, 'hf'));
    try {
      const cfg = defaultPreprocess([224, 224]);
      for (const [name, entry] of Object.entries(ref.photos) as [
        string,
        { top1: number; source_size: { width: number; height: number }; pil224: { file: string } },
      ][]) {
        const img = await decodeImageFile(path.join(photos, name));
        assert.deepEqual([img.width, img.height], [entry.source_size.width, entry.source_size.height], `${name} size`);
        const ours = await resizeForModel(img, cfg);
        const pil = fs.readFileSync(path.join(dir, entry.pil224.file));
        let sum = 0;
        for (let i = 0; i < pil.length; i++) sum += Math.abs(ours[i] - pil[i]);
        const meanAbs = sum / pil.length;
        // Measured 0.14–0.22 levels: libvips and PIL round their fixed-point bilinear filters differently.
        assert.ok(meanAbs < 0.5, `${name}: mean abs difference to PIL is ${meanAbs.toFixed(3)} levels`);
        console.log(`${name}: mean abs difference to PIL ${meanAbs.toFixed(3)} levels`);
        const out = await engine.runPixels(toPixelValues(ours, cfg), 1);
        const top1 = out.logits.indexOf(Math.max(...out.logits));
        assert.equal(top1, entry.top1, `${name}: our top-1 ${top1}, PIL+PyTorch top-1 ${entry.top1}`);
      }
    } finally {
      await engine.dispose();
    }
  });
});

describe('vit-prelogits (tanh pre-logits layer, no qkv bias, 32 px, patch 8)', () => {
  const { dir } = VIT_PRELOGITS;
  const input = readF32(path.join(dir, 'input.bin'));
  const refLogits = readF32(path.join(dir, 'logits.bin'));
  for (const [kind, model, labels] of VIT_PRELOGITS.kinds) {
    test(`${kind}: logits match PyTorch to 1e-4`, async () => {
      const engine = await loaded(model, labels);
      try {
        const info = engine.info();
        if (info.architecture) {
          assert.equal(info.architecture.preLogitsSize, 24);
          assert.equal(info.architecture.qkvBias, false);
        }
        const out = await engine.runPixels(input, 2);
        const d = maxAbsDiff(out.logits, refLogits);
        assert.ok(d <= 1e-4, `logits max abs diff ${d}`);
      } finally {
        await engine.dispose();
      }
    });
  }
});
