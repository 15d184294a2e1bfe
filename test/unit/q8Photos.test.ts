/**
 * --dtype q8 on real photos (the skimage photos in test/fixtures/photos) with a ViT built from
 * torchvision weights (test/fixtures/vit-tiny/hf, written by scripts/make_fixtures.py): the mean
 * |Δp| between the fp32 and q8 builds' class probabilities, printed, and bounded. The weights are
 * random, so the bound is about quantisation error, not about recognising cats.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Engine } from '../../server/engine';

const fixtures = path.join(__dirname, '..', 'fixtures');
const model = path.join(fixtures, 'vit-tiny', 'hf');
const photos = ['chelsea.png', 'coffee.png', 'rocket.jpg'].map(f => path.join(fixtures, 'photos', f));
const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-q8-photos-'));
after(() => fs.rmSync(cacheDir, { recursive: true, force: true }));

/**
 * Mean |Δp| over every class of every photo. Measured 9.8e-3 (max 6.0e-2) on this 64-wide model,
 * where int8 rounding weighs more than on a ViT-B; the bound leaves 2× headroom.
 */
const MEAN_ABS_DP_BOUND = 0.02;

async function probabilities(dtype: 'fp32' | 'q8'): Promise<number[][]> {
  const engine = new Engine({ cacheDir, provider: 'cpu', dtype });
  try {
    assert.equal((await engine.load(model)).dtype, dtype);
    const { results, failures } = await engine.classify(photos, 10);
    assert.deepEqual(failures, []);
    // Predictions are sorted by score: put them back in class order.
    const labels = engine.info().labels;
    return results.map(r => labels.map(l => r.predictions.find(p => p.label === l)!.score));
  } finally {
    await engine.dispose();
  }
}

test('q8 vs fp32 on real photos (ViT from torchvision weights): mean |Δp| within the bound', async () => {
  const fp32 = await probabilities('fp32');
  const q8 = await probabilities('q8');
  let sum = 0;
  let max = 0;
  let n = 0;
  fp32.forEach((row, i) =>
    row.forEach((p, c) => {
      const d = Math.abs(p - q8[i][c]);
      sum += d;
      max = Math.max(max, d);
      n++;
    }),
  );
  const mean = sum / n;
  const top = (r: number[]) => r.indexOf(Math.max(...r));
  console.log(
    `q8 vs fp32 on ${photos.length} photos × ${fp32[0].length} classes: mean |Δp| ${mean.toExponential(2)}, max |Δp| ${max.toExponential(2)}; top-1 p (fp32) ${fp32.map(r => r[top(r)].toFixed(3)).join(', ')}`,
  );
  // The probabilities are not flat (a flat softmax would make any Δp small and the check empty).
  assert.ok(
    fp32.every(r => Math.max(...r) > 2 / r.length),
    'fp32 probabilities are too flat for the comparison to mean anything',
  );
  assert.ok(mean > 0, 'q8 gave exactly fp32 probabilities: the q8 build is not quantised');
  assert.ok(mean <= MEAN_ABS_DP_BOUND, `mean |Δp| ${mean} > ${MEAN_ABS_DP_BOUND}`);
  assert.deepEqual(q8.map(top), fp32.map(top), 'top-1 class per photo');
});
