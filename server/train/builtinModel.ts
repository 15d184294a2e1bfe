/** Copies a Fashion-MNIST run's exported model to models/default (the built-in model) with its metrics, and writes samples/. */
import { promises as fs } from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import { FASHION_MNIST_CLASSES, readIdx, FASHION_MNIST_DIR } from './fashionMnist';
import { readMetrics, readRunInfo } from './runFiles';

const ROOT = path.join(__dirname, '..', '..');

export async function saveBuiltIn(exported: string, runDir: string, bench: Record<string, unknown>): Promise<void> {
  const dest = path.join(ROOT, 'models', 'default');
  await fs.rm(dest, { recursive: true, force: true });
  await fs.mkdir(path.join(dest, 'onnx'), { recursive: true });
  for (const f of ['config.json', 'preprocessor_config.json', 'model.safetensors', path.join('onnx', 'model.onnx')]) {
    await fs.copyFile(path.join(exported, f), path.join(dest, f));
  }
  const info = await readRunInfo(runDir);
  const metrics = await readMetrics(runDir);
  await fs.writeFile(
    path.join(dest, 'metrics.json'),
    JSON.stringify(
      {
        trainedOn:
          'Fashion-MNIST (60,000 training images, 28×28 grayscale, 10 classes); tested on its 10,000 test images',
        trainer: 'vit-lens TF.js trainer (server/train), from scratch, full mode',
        run: {
          config: info.config,
          backend: info.backend,
          architecture: info.architecture,
          createdAt: info.createdAt,
          finishedAt: info.finishedAt,
        },
        bench,
        epochs: metrics.filter(m => m.type === 'epoch'),
      },
      null,
      2,
    ) + '\n',
  );
  // Test images (never trained on), one per class, named by their true label.
  const test = readIdx(FASHION_MNIST_DIR, 't10k');
  const samples = path.join(ROOT, 'samples');
  await fs.mkdir(samples, { recursive: true });
  const labels: Record<string, string> = {};
  for (let c = 0; c < 10; c++) {
    let i = 0;
    while (test.labels[i] !== c) i++;
    const name = `fashion-mnist-test-${i}-${FASHION_MNIST_CLASSES[c].toLowerCase().replace(/[^a-z]+/g, '-')}.png`;
    await sharp(Buffer.from(test.pixels.subarray(i * 784, (i + 1) * 784)), {
      raw: { width: 28, height: 28, channels: 1 },
    })
      .png()
      .toFile(path.join(samples, name));
    labels[name] = FASHION_MNIST_CLASSES[c];
  }
  await fs.writeFile(path.join(samples, 'labels.json'), JSON.stringify(labels, null, 2) + '\n');
  console.error(`built-in model written to ${dest}; samples to ${samples}`);
}
