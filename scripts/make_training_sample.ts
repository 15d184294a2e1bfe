/**
 * Writes models/default/training_sample.json: thumbnails of 200 Fashion-MNIST *train* images per
 * class (the split the built-in model was trained on; the first ones in file order), so that classify
 * can say when an image is unlike them (server/model/trainingSample.ts).
 *   node --import tsx scripts/make_training_sample.ts [MODEL_DIR]
 */
import * as path from 'path';
import { THUMB, thumbnail } from '../server/audit/thumbnail';
import { Engine } from '../server/engine';
import { buildTrainingSample, writeTrainingSample } from '../server/model/trainingSample';
import { toPixelValues } from '../server/preprocess';
import { FASHION_MNIST_DIR, readIdx } from '../server/train/fashionMnist';

const PER_CLASS = 200;

async function main(): Promise<void> {
  const dir = path.resolve(process.argv[2] ?? path.join(__dirname, '..', 'models', 'default'));
  const engine = new Engine({});
  await engine.load(dir);
  const pre = engine.featureIdentity().preprocess;
  await engine.dispose();
  const [h, w] = pre.size;
  const train = readIdx(FASHION_MNIST_DIR, 'train');
  const picked: number[] = [];
  const per = new Array(10).fill(0);
  for (let i = 0; i < train.count && picked.length < 10 * PER_CLASS; i++)
    if (per[train.labels[i]]++ < PER_CLASS) picked.push(i);
  const thumbs = new Float32Array(picked.length * THUMB * THUMB);
  picked.forEach((i, r) => {
    // The grey image as the RGB the engine decodes a grey PNG to (28×28: no resize).
    const rgb = Buffer.alloc(784 * 3);
    train.pixels.subarray(i * 784, (i + 1) * 784).forEach((v, p) => rgb.fill(v, p * 3, p * 3 + 3));
    thumbs.set(thumbnail(toPixelValues(rgb, pre), 0, h, w), r * THUMB * THUMB);
  });
  const sample = buildTrainingSample(thumbs, picked.length);
  await writeTrainingSample(dir, sample);
  console.log(`${dir}: ${picked.length} training images; threshold (99th percentile) ${sample.threshold.toFixed(3)}`);
}

main().catch(e => {
  console.error(e);
  process.exit(1);
});
