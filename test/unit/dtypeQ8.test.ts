/**
 * --dtype q8 (int8 weights, dynamically quantized activations) against fp32 on real data: the
 * built-in model on the first 1000 Fashion-MNIST test images (Debian's dataset-fashion-mnist).
 * Top-1 must agree on ≥ 99% of the images and accuracy against the true labels drop by ≤ 0.5 point.
 * Attention maps stay fp32 graph outputs, so rollout works on q8 too.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Engine } from '../../server/engine';
import { FASHION_MNIST_DIR, pixelsOf, readIdx } from '../../server/train/fashionMnist';

const builtIn = path.join(__dirname, '..', '..', 'models', 'default');
const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-q8-'));
after(() => fs.rmSync(cacheDir, { recursive: true, force: true }));
const N = 1000;

async function top1s(dtype: 'fp32' | 'q8', pixels: Float32Array): Promise<{ top1: number[]; engine: Engine }> {
  const engine = new Engine({ cacheDir, provider: 'cpu', dtype });
  const info = await engine.load(builtIn);
  assert.equal(info.dtype, dtype);
  const { logits, numClasses } = await engine.runPixels(pixels, N);
  const top1 = Array.from({ length: N }, (_, i) => {
    const row = logits.subarray(i * numClasses, (i + 1) * numClasses);
    return row.indexOf(Math.max(...row));
  });
  return { top1, engine };
}

test('q8 agrees with fp32 on ≥ 99% of 1000 Fashion-MNIST test images, accuracy drop ≤ 0.5 point', async () => {
  const set = readIdx(FASHION_MNIST_DIR, 't10k');
  const per = 3 * set.rows * set.cols;
  const pixels = new Float32Array(per * N);
  for (let i = 0; i < N; i++) pixels.set(pixelsOf(set, i), i * per);

  const fp32 = await top1s('fp32', pixels);
  const q8 = await top1s('q8', pixels);
  try {
    // The q8 build really is another graph: int8 weights, not the fp32 file under another name.
    const q8File = q8.engine.info().builtFile!;
    assert.match(q8File, /\.q8\.onnx$/);
    assert.ok(
      fs.statSync(q8File).size < 0.6 * fs.statSync(fp32.engine.info().builtFile!).size,
      'q8 file should be well under fp32 size',
    );

    const agree = fp32.top1.filter((c, i) => c === q8.top1[i]).length / N;
    const acc = (t: number[]) => t.filter((c, i) => c === set.labels[i]).length / N;
    console.log(
      `q8 vs fp32 top-1 agreement ${(agree * 100).toFixed(1)}%; accuracy fp32 ${(acc(fp32.top1) * 100).toFixed(1)}%, q8 ${(acc(q8.top1) * 100).toFixed(1)}%`,
    );
    assert.ok(agree >= 0.99, `top-1 agreement ${agree}`);
    assert.ok(acc(fp32.top1) - acc(q8.top1) <= 0.005, `accuracy drop ${acc(fp32.top1) - acc(q8.top1)}`);

    // Rollout still works on q8 (fp32 attention outputs).
    const r = await q8.engine.explain(
      path.join(__dirname, '..', '..', 'samples', 'fashion-mnist-test-0-ankle-boot.png'),
    );
    assert.equal(r.map.values.length, 16);
    assert.ok(
      Math.abs(r.map.values.reduce((a, b) => Math.max(a, b), 0) - 1) < 1e-6,
      'rollout map is normalised to max 1',
    );
  } finally {
    await fp32.engine.dispose();
    await q8.engine.dispose();
  }
});
