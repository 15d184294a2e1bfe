/**
 * Batches sized to the device (server/batchSize.ts): 8 on the CPU; on a GPU, the 1 GiB activation
 * budget divided by one image's activations, as a power of two within 1…64. The expected sizes
 * are worked out by hand below from the published ViT shapes, not by calling the rule twice. Then
 * the engine on a fake GPU (a CPU session underneath) runs GPU-sized batches, and the CPU's after
 * the GPU fails.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ort from 'onnxruntime-node';
import { activationBytesPerImage, classifyBatchSize } from '../../server/batchSize';
import { Engine } from '../../server/engine';
import type { ProviderBackend } from '../../server/inference';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-batch-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const vitB16 = {
  imageSize: [224, 224] as [number, number],
  patchSize: 16,
  numLayers: 12,
  numHeads: 12,
  hiddenSize: 768,
  mlpSize: 3072,
};

test('per-image activations of ViT-B/16: 12 layers × 12 heads × 197² attention + 197 × (3072 + 4 × 768), in fp32', () => {
  assert.equal(activationBytesPerImage(vitB16), 4 * (12 * 12 * 197 * 197 + 197 * (3072 + 3072))); // 27.2 MB
});

test('the CPU keeps 8; a GPU gets what fits 1 GiB, rounded down to a power of two, within 1…64', () => {
  for (const shape of [vitB16, { imageSize: [28, 28] as [number, number], patchSize: 7, numLayers: 2 }])
    assert.equal(classifyBatchSize('cpu', shape), 8);
  // ViT-B/16: 2^30 / 27.2 MB = 39 → 32.
  assert.equal(classifyBatchSize('webgpu', vitB16), 32);
  assert.equal(classifyBatchSize('cuda', vitB16), 32);
  // ViT-L/16: 24 × 16 × 197² + 197 × (4096 + 4096) floats = 66.0 MB → 16.
  assert.equal(
    classifyBatchSize('webgpu', {
      imageSize: [224, 224],
      patchSize: 16,
      numLayers: 24,
      numHeads: 16,
      hiddenSize: 1024,
      mlpSize: 4096,
    }),
    16,
  );
  // ViT-H/14: 257 tokens, 32 × 16 × 257² + 257 × (5120 + 5120) floats = 145.8 MB → 7 → 4.
  assert.equal(
    classifyBatchSize('webgpu', {
      imageSize: [224, 224],
      patchSize: 14,
      numLayers: 32,
      numHeads: 16,
      hiddenSize: 1280,
      mlpSize: 5120,
    }),
    4,
  );
  // ViT-g/14 at 518: 1370 tokens, 40 layers × 16 heads of 1370² attention alone = 4.8 GB → 1 image per run.
  assert.equal(
    classifyBatchSize('webgpu', {
      imageSize: [518, 518],
      patchSize: 14,
      numLayers: 40,
      numHeads: 16,
      hiddenSize: 1408,
      mlpSize: 6144,
    }),
    1,
  );
  // The built-in 28×28 model: tiny activations, capped at 64.
  assert.equal(
    classifyBatchSize('webgpu', {
      imageSize: [28, 28],
      patchSize: 7,
      numLayers: 2,
      numHeads: 4,
      hiddenSize: 64,
      mlpSize: 128,
    }),
    64,
  );
  // An .onnx file with nothing known but its input and layers: ViT-B's patch and widths are assumed.
  assert.equal(classifyBatchSize('webgpu', { imageSize: [224, 224], numLayers: 12 }), 32);
});

/** A CPU session underneath that records each run's batch size into `batches`; throws while `failing()`. */
function recording(device: string, batches: number[], failing = () => false): ProviderBackend {
  return {
    probe: async () => ({ device }),
    create: async (m, base) => {
      const opts = { ...base, executionProviders: ['cpu'] };
      const real = await (typeof m === 'string'
        ? ort.InferenceSession.create(m, opts)
        : ort.InferenceSession.create(m, opts));
      return {
        outputNames: real.outputNames,
        release: () => real.release(),
        run: (async (feeds: ort.InferenceSession.FeedsType, fetches: string[]) => {
          if (failing()) throw new Error('WebGPU device lost');
          batches.push(Number(Object.values(feeds)[0].dims[0]));
          return real.run(feeds, fetches);
        }) as ort.InferenceSession['run'],
      };
    },
  };
}

test('the engine classifies in GPU-sized batches on a GPU, and in 8s after the GPU failed', async () => {
  const gpuBatches: number[] = [];
  const cpuBatches: number[] = [];
  let gpuLost = false;
  const engine = new Engine({
    provider: 'webgpu',
    cacheDir: tmp,
    backends: {
      webgpu: recording('Fake GPU (Vulkan)', gpuBatches, () => gpuLost),
      cpu: recording('Fake CPU', cpuBatches),
    },
  });
  try {
    // vit-tiny: 224/16 → 197 tokens, 2 layers × 4 heads, width 64, MLP 128 → 1.5 MB per image → 64.
    const info = await engine.load(path.join(__dirname, '..', 'fixtures', 'vit-tiny', 'hf'));
    assert.equal(info.provider, 'webgpu');
    assert.equal(info.batchSize, 64);
    const photos = fs.readdirSync(path.join(__dirname, '..', 'fixtures', 'photos')).filter(f => /\.(png|jpg)$/.test(f));
    const files = Array.from({ length: 20 }, (_, i) =>
      path.join(__dirname, '..', 'fixtures', 'photos', photos[i % photos.length]),
    );
    assert.equal((await engine.classify(files)).results.length, 20);
    assert.deepEqual(gpuBatches, [20], 'one run for 20 images on the GPU');

    gpuLost = true;
    assert.equal((await engine.classify(files)).results.length, 20); // the failed run of 20 is repeated on the CPU as it was
    assert.equal(engine.info().provider, 'cpu');
    assert.equal(engine.info().batchSize, 8);
    cpuBatches.length = 0;
    assert.equal((await engine.classify(files)).results.length, 20);
    assert.deepEqual(cpuBatches, [8, 8, 4], 'the CPU runs 8 at a time');
  } finally {
    await engine.dispose();
  }
});
