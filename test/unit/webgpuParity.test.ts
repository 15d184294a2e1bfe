/**
 * The same PyTorch/torchvision parity as parity.test.ts, on `--provider webgpu`: logits, attention
 * maps and rollout from every model kind within 1e-4 of the reference scripts/make_fixtures.py
 * computed. Without a GPU this runs on Mesa's software Vulkan device (lavapipe), which
 * scripts/install-lavapipe.sh installs and .ci/run calls; with no adapter at all these tests FAIL
 * (never skip): a session that quietly fell back to the CPU would otherwise pass them.
 * Small models only: lavapipe compiles each shader with LLVM on first use (seconds per graph).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Engine } from '../../server/engine';
import { probeWebGpuAdapter } from '../../server/webgpuAdapter';
import { readF32, maxAbsDiff } from './arrays';
import { FIXTURES, HEAD_FUSIONS, VIT_PRELOGITS, VIT_TINY } from './parityFixtures';

const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-webgpu-'));
after(() => fs.rmSync(cacheDir, { recursive: true, force: true }));

const HOW_TO_INSTALL =
  'The WebGPU tests need a WebGPU adapter. Without a GPU, install Mesa >= 25 lavapipe: `sudo bash scripts/install-lavapipe.sh` ' +
  '(Debian bookworm: mesa-vulkan-drivers + libvulkan1 from bookworm-backports), and make sure XDG_RUNTIME_DIR is set.';

before(async () => {
  process.env.XDG_RUNTIME_DIR ??= '/tmp';
  const p = await probeWebGpuAdapter();
  assert.ok('adapter' in p, `${'error' in p ? p.error : ''}\n${HOW_TO_INSTALL}`);
  console.log(`WebGPU adapter: ${p.adapter.name}${p.adapter.software ? ' (software)' : ''}`);
});

/** On WebGPU or failing: a CPU fallback would pass every comparison below without testing WebGPU. */
async function onWebGpu(model: string, labelsFile?: string, dtype?: 'fp16'): Promise<Engine> {
  const e = new Engine({ cacheDir, provider: 'webgpu', dtype });
  await e.load(model, { labelsFile });
  const info = e.info();
  assert.equal(info.provider, 'webgpu', `${model} did not start on WebGPU: ${info.providerNote}\n${HOW_TO_INSTALL}`);
  return e;
}

describe('WebGPU: vit-tiny (torchvision ViT, 224 px, patch 16, 2 layers, 4 heads)', () => {
  const { dir, T, H } = VIT_TINY;
  const input = VIT_TINY.input();
  const refLogits = readF32(path.join(dir, 'logits.bin'));
  const refLayer0 = readF32(path.join(dir, 'attn_layer0.bin')); // [1, head, 197, 197]
  for (const [kind, model, labels] of VIT_TINY.kinds) {
    test(`${kind}: logits, attention and rollout match PyTorch to 1e-4`, async () => {
      const engine = await onWebGpu(model, labels);
      try {
        const out = await engine.runPixels(input, 2, true);
        const dLogits = maxAbsDiff(out.logits, refLogits);
        assert.ok(dLogits <= 1e-4, `logits max abs diff ${dLogits}`);
        const atts = out.attentions!;
        const dLayer0 = maxAbsDiff((atts[0].data as Float32Array).subarray(0, H * T * T), refLayer0);
        assert.ok(dLayer0 <= 1e-4, `layer 0 attention diff ${dLayer0}`);
        for (const fusion of HEAD_FUSIONS) {
          for (const discard of [0, 0.9]) {
            VIT_TINY.rolloutDiffs(atts, fusion, discard).forEach((d, img) =>
              assert.ok(d <= 1e-4, `rollout ${fusion}/${discard} image ${img} diff ${d}`),
            );
          }
        }
        // The engine's own explain: on our built graphs it reads the head-fused maps reduced on the GPU.
        // Against the CPU provider, whose maps parity.test.ts holds to PyTorch's.
        const cpu = new Engine({ cacheDir, provider: 'cpu' });
        await cpu.load(model, { labelsFile: labels });
        try {
          for (const fusion of HEAD_FUSIONS) {
            const photo = path.join(FIXTURES, 'photos', 'chelsea.png');
            const ours = await engine.explain(photo, { headFusion: fusion, discardRatio: 0.9 });
            const ref = await cpu.explain(photo, { headFusion: fusion, discardRatio: 0.9 });
            const d = maxAbsDiff(ours.map.values, ref.map.values);
            assert.ok(d <= 1e-4, `explain ${fusion} rollout on WebGPU vs CPU diff ${d}`);
          }
        } finally {
          await cpu.dispose();
        }
      } finally {
        await engine.dispose();
      }
    });
  }
});

describe('WebGPU: vit-prelogits (tanh pre-logits layer, no qkv bias, 32 px, patch 8)', () => {
  const { dir } = VIT_PRELOGITS;
  const input = readF32(path.join(dir, 'input.bin'));
  const refLogits = readF32(path.join(dir, 'logits.bin'));
  for (const [kind, model, labels] of VIT_PRELOGITS.kinds) {
    test(`${kind}: logits match PyTorch to 1e-4`, async () => {
      const engine = await onWebGpu(model, labels);
      try {
        const d = maxAbsDiff((await engine.runPixels(input, 2)).logits, refLogits);
        assert.ok(d <= 1e-4, `logits max abs diff ${d}`);
      } finally {
        await engine.dispose();
      }
    });
  }
});

describe('WebGPU fp16: vit-tiny built in half precision', () => {
  const { dir, T, H } = VIT_TINY;
  const input = VIT_TINY.input();
  // Half precision keeps ~3 significant digits (measured on lavapipe: logits 5.2e-3, attention 3.6e-3).
  // Rollout without discarding: a discard threshold turns tiny differences into entries kept or dropped
  // (1.2e-1 at discard 0.9), which says nothing about precision.
  test('logits within 2e-2, attention within 1e-2 and rollout (discard 0) within 2e-2 of PyTorch fp32; same top-1', async () => {
    const engine = await onWebGpu(path.join(dir, 'hf'), undefined, 'fp16');
    try {
      assert.equal(engine.info().dtype, 'fp16');
      const out = await engine.runPixels(input, 2, true);
      const refLogits = readF32(path.join(dir, 'logits.bin'));
      const dLogits = maxAbsDiff(out.logits, refLogits);
      const dLayer0 = maxAbsDiff(
        (out.attentions![0].data as Float32Array).subarray(0, H * T * T),
        readF32(path.join(dir, 'attn_layer0.bin')),
      );
      const dRollout = Math.max(...VIT_TINY.rolloutDiffs(out.attentions!, 'mean', 0));
      console.log(
        `fp16 on WebGPU vs PyTorch fp32: logits ${dLogits.toExponential(2)}, layer-0 attention ${dLayer0.toExponential(2)}, rollout ${dRollout.toExponential(2)}`,
      );
      assert.ok(dLogits > 0, 'identical to fp32: the graph did not compute in half precision');
      assert.ok(dLogits <= 2e-2, `logits max abs diff ${dLogits}`);
      assert.ok(dLayer0 <= 1e-2, `layer 0 attention diff ${dLayer0}`);
      assert.ok(dRollout <= 2e-2, `rollout diff ${dRollout}`);
      const top1 = (a: ArrayLike<number>, i: number, k: number) => {
        const r = Array.from(a).slice(i * k, (i + 1) * k);
        return r.indexOf(Math.max(...r));
      };
      const k = out.numClasses;
      for (let i = 0; i < 2; i++) assert.equal(top1(out.logits, i, k), top1(refLogits, i, k), `image ${i} top-1`);
    } finally {
      await engine.dispose();
    }
  });
});
