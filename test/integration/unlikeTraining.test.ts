/**
 * "Unlike the training data" on real data: the built-in Fashion-MNIST model carries a sample of its
 * training images (models/default/training_sample.json), so classify says when a photo is unlike
 * them. Measured here: scikit-image photos (out of domain) and Fashion-MNIST *test* images, which
 * the model never trained on (in domain).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { Engine } from '../../server/engine';
import { FASHION_MNIST_DIR, readIdx } from '../../server/train/fashionMnist';
import { SKIMAGE_DATA } from '../unit/auditData';
import { runCli } from './runCli';

const model = path.join(__dirname, '..', '..', 'models', 'default');
const PHOTOS = [
  'astronaut.png',
  'chelsea.png',
  'coffee.png',
  'rocket.jpg',
  'motorcycle_left.png',
  'camera.png',
  'horse.png',
  'moon.png',
  'page.png',
  'coins.png',
  'brick.png',
  'grass.png',
  'text.png',
  'hubble_deep_field.jpg',
  'retina.jpg',
];
const TEST_IMAGES = 300;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-unlike-'));
const engine = new Engine({ cacheDir: path.join(tmp, 'cache') });
let fashion: string[] = [];

before(async () => {
  const t = readIdx(FASHION_MNIST_DIR, 't10k');
  fashion = await Promise.all(
    Array.from({ length: TEST_IMAGES }, async (_, i) => {
      const file = path.join(tmp, `test-${i}.png`);
      await sharp(Buffer.from(t.pixels.subarray(i * 784, (i + 1) * 784)), {
        raw: { width: 28, height: 28, channels: 1 },
      })
        .png()
        .toFile(file);
      return file;
    }),
  );
  await engine.load(model);
});
after(async () => {
  await engine.dispose();
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('photos are flagged, Fashion-MNIST test images are not', async () => {
  const photos = (await engine.classify(PHOTOS.map(p => path.join(SKIMAGE_DATA, p)))).results;
  const flagged = photos.filter(r => r.trainingData?.unlike).map(r => path.basename(r.image));
  // Measured: 13 of 15 (rocket.jpg and retina.jpg, dark centred shapes, pass for clothing).
  assert.ok(flagged.length >= 12, `photos flagged: ${flagged.length}/15 (${flagged.join(', ')})`);
  const test = (await engine.classify(fashion)).results;
  assert.equal(test.length, TEST_IMAGES);
  const wrong = test.filter(r => r.trainingData!.unlike).length;
  // The threshold is the 99th percentile of the training sample's own scores: ~1% of in-domain images exceed it.
  assert.ok(wrong <= TEST_IMAGES * 0.03, `Fashion-MNIST test images flagged: ${wrong}/${TEST_IMAGES}`);
});

test('vit-lens classify prints the note for a photo, and --json carries the distance', async () => {
  const astronaut = path.join(SKIMAGE_DATA, 'astronaut.png');
  const text = await runCli([
    'classify',
    astronaut,
    fashion[0],
    '--model',
    model,
    '--cache-dir',
    path.join(tmp, 'cache'),
  ]);
  assert.equal(text.code, 0, text.stderr);
  const [photo, clothing] = text.stdout.split(fashion[0]);
  assert.match(
    photo,
    /note: unlike the training data \(distance \d\.\d\d to its nearest training images; 99% of them are within \d\.\d\d\)/,
  );
  assert.doesNotMatch(clothing, /unlike/);
  const json = await runCli([
    'classify',
    astronaut,
    '--model',
    model,
    '--json',
    '--cache-dir',
    path.join(tmp, 'cache'),
  ]);
  const t = JSON.parse(json.stdout).results[0].trainingData;
  assert.equal(t.unlike, true);
  assert.ok(t.distance > t.threshold && t.threshold > 0);
});

test('a model without a training sample has no note', async () => {
  const tiny = path.join(__dirname, '..', 'fixtures', 'vit-tiny', 'hf');
  const e = new Engine({ cacheDir: path.join(tmp, 'cache') });
  await e.load(tiny);
  const r = (await e.classify([path.join(SKIMAGE_DATA, 'astronaut.png')])).results[0];
  assert.equal(r.trainingData, undefined);
  await e.dispose();
});
