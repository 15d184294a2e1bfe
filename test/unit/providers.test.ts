/**
 * Choosing and leaving execution providers, with fake GPUs (real CPU sessions behind a delay or a
 * failure) standing in for devices this machine does not have: auto's measured choice and its cache,
 * software adapters, an explicit provider that cannot start, and a GPU failing mid-session.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ort from 'onnxruntime-node';
import { gpuDeviceNodesExist, ProviderBackend, RunnableSession, VitSession } from '../../server/inference';
import { Engine } from '../../server/engine';
import { isSoftwareAdapter, probeWebGpuAdapter } from '../../server/webgpuAdapter';

const dir = path.join(__dirname, '..', 'fixtures', 'vit-prelogits');
const model = new Uint8Array(fs.readFileSync(path.join(dir, 'model.onnx')));
const input = (() => {
  const b = fs.readFileSync(path.join(dir, 'input.bin'));
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
})();
const names = { input: 'pixel_values', logits: 'logits' };
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-providers-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const sleep = (ms: number) => new Promise(r => setTimeout(r, ms));

/** A device that is a CPU session underneath: `delayMs` per run, and runs after `failAfter` throw. */
function fakeGpu(
  device: string,
  opts: { delayMs?: number; software?: boolean; failAfter?: number; startError?: string } = {},
) {
  const stats = { created: 0, runs: 0 };
  const backend: ProviderBackend = {
    probe: async () => ({ device, software: opts.software }),
    create: async (m, base) => {
      if (opts.startError) throw new Error(opts.startError);
      stats.created++;
      const opts2 = { ...base, executionProviders: ['cpu'] };
      const real = await (typeof m === 'string'
        ? ort.InferenceSession.create(m, opts2)
        : ort.InferenceSession.create(m, opts2));
      const session: RunnableSession = {
        outputNames: real.outputNames,
        release: () => real.release(),
        run: (async (feeds: ort.InferenceSession.FeedsType, fetches: string[]) => {
          stats.runs++;
          if (opts.failAfter !== undefined && stats.runs > opts.failAfter) throw new Error('WebGPU device lost');
          await sleep(opts.delayMs ?? 0);
          return real.run(feeds, fetches);
        }) as RunnableSession['run'],
      };
      return session;
    },
  };
  return { backend, stats };
}

const noCuda: ProviderBackend = {
  probe: async () => ({ unavailable: 'not installed' }),
  create: () => Promise.reject(new Error('unused')),
};
const dims: [number, number, number, number] = [2, 3, 32, 32];

describe('auto', () => {
  test('keeps the CPU when the GPU is slower on this model, and remembers it per model and machine', async () => {
    const file = path.join(tmp, 'slow-gpu.json');
    const gpu = fakeGpu('Fake GPU (Vulkan)', { delayMs: 300 });
    const s = await VitSession.create(model, names, {
      provider: 'auto',
      backends: { webgpu: gpu.backend, cuda: noCuda },
      choiceCacheFile: file,
      timingInput: [1, 3, 32, 32],
    });
    assert.equal(s.provider, 'cpu');
    assert.match(s.providerNote ?? '', /auto chose CPU: .*WebGPU \d/);
    assert.equal(gpu.stats.runs, 2, 'one warm-up and one timed run on the GPU');
    await s.release();
    // Second load: the remembered choice, no GPU started.
    const again = await VitSession.create(model, names, {
      provider: 'auto',
      backends: { webgpu: gpu.backend, cuda: noCuda },
      choiceCacheFile: file,
      timingInput: [1, 3, 32, 32],
    });
    assert.equal(again.provider, 'cpu');
    assert.equal(gpu.stats.created, 1, 'the cached choice must not start the GPU again');
    await again.release();
    // Another device is another machine: measured again.
    const other = fakeGpu('Other GPU (Vulkan)', { delayMs: 300 });
    await (
      await VitSession.create(model, names, {
        provider: 'auto',
        backends: { webgpu: other.backend, cuda: noCuda },
        choiceCacheFile: file,
        timingInput: [1, 3, 32, 32],
      })
    ).release();
    assert.equal(other.stats.created, 1);
  });

  test('takes the GPU when it is faster than the CPU', async () => {
    const gpu = fakeGpu('Fast GPU (Vulkan)');
    const slowCpu = fakeGpu('Slow CPU', { delayMs: 300 });
    const s = await VitSession.create(model, names, {
      provider: 'auto',
      backends: { webgpu: gpu.backend, cuda: noCuda, cpu: slowCpu.backend },
      choiceCacheFile: path.join(tmp, 'fast-gpu.json'),
      timingInput: [1, 3, 32, 32],
    });
    assert.equal(s.provider, 'webgpu');
    assert.equal(s.device, 'Fast GPU (Vulkan)');
    assert.match(s.providerNote ?? '', /auto chose WebGPU/);
    await s.release();
  });

  test('never takes a software adapter (no timing either), but an explicit webgpu does', async () => {
    const gpu = fakeGpu('llvmpipe (Vulkan)', { software: true });
    const s = await VitSession.create(model, names, {
      provider: 'auto',
      backends: { webgpu: gpu.backend, cuda: noCuda },
    });
    assert.equal(s.provider, 'cpu');
    assert.equal(gpu.stats.created, 0);
    await s.release();
    const explicit = await VitSession.create(model, names, {
      provider: 'webgpu',
      backends: { webgpu: gpu.backend, cuda: noCuda },
    });
    assert.equal(explicit.provider, 'webgpu');
    assert.equal(explicit.device, 'llvmpipe (Vulkan)');
    await explicit.release();
  });
});

test('auto does not even probe WebGPU on a machine without GPU device nodes (Dawn would print warnings)', async () => {
  let probes = 0;
  const gpu = fakeGpu('Fake GPU (Vulkan)');
  const unprobed: ProviderBackend = {
    ...gpu.backend,
    hardwareMayExist: () => false,
    probe: async () => (probes++, gpu.backend.probe()),
  };
  const s = await VitSession.create(model, names, { provider: 'auto', backends: { webgpu: unprobed, cuda: noCuda } });
  assert.equal(s.provider, 'cpu');
  assert.equal(probes, 0);
  await s.release();
  const explicit = await VitSession.create(model, names, {
    provider: 'webgpu',
    backends: { webgpu: unprobed, cuda: noCuda },
  });
  assert.equal(explicit.provider, 'webgpu', 'an explicit webgpu still probes');
  await explicit.release();

  const dev = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-dev-'));
  if (process.platform === 'linux') {
    assert.equal(gpuDeviceNodesExist(dev), false, 'no nodes');
    fs.mkdirSync(path.join(dev, 'dri'));
    fs.writeFileSync(path.join(dev, 'dri', 'card0'), '');
    assert.equal(gpuDeviceNodesExist(dev), false, 'a display-only card has no render node');
    fs.writeFileSync(path.join(dev, 'dri', 'renderD128'), '');
    assert.equal(gpuDeviceNodesExist(dev), true, 'render node');
    fs.rmSync(path.join(dev, 'dri'), { recursive: true });
    fs.writeFileSync(path.join(dev, 'nvidia0'), '');
    assert.equal(gpuDeviceNodesExist(dev), true, 'NVIDIA');
  }
  fs.rmSync(dev, { recursive: true });
});

test('an explicit provider that cannot start runs on the CPU and says why', async () => {
  const broken = fakeGpu('Fake GPU (Vulkan)', { startError: 'out of memory\nstack' });
  const s = await VitSession.create(model, names, { provider: 'webgpu', backends: { webgpu: broken.backend } });
  assert.equal(s.provider, 'cpu');
  assert.equal(s.providerNote, 'WebGPU provider failed to start on Fake GPU (Vulkan) (out of memory); using CPU');
  await s.release();
  const none = await VitSession.create(model, names, { provider: 'cuda', backends: { cuda: noCuda } });
  assert.equal(none.providerNote, 'CUDA was requested but not installed; using CPU');
  await none.release();
});

test('a GPU failing mid-session: the run is repeated on the CPU, one notice, the engine keeps serving', async () => {
  const reference = await VitSession.create(model, names, { provider: 'cpu' });
  const expected = (await reference.run(input, dims)).logits;
  await reference.release();

  const gpu = fakeGpu('Fake GPU (Vulkan)', { failAfter: 1 });
  const notes: string[] = [];
  const engine = new Engine({
    provider: 'webgpu',
    cacheDir: tmp,
    backends: { webgpu: gpu.backend },
    onProviderFallback: n => notes.push(n),
  });
  await engine.load(path.join(dir, 'model.onnx'));
  assert.equal(engine.info().provider, 'webgpu');
  await engine.runPixels(input, 2); // run 1 works on the "GPU"
  const out = await engine.runPixels(input, 2); // run 2: device lost → CPU
  assert.deepEqual(Array.from(out.logits), Array.from(expected));
  assert.equal(engine.info().provider, 'cpu');
  assert.match(
    engine.info().providerNote ?? '',
    /^WebGPU failed during a run \(WebGPU device lost\); switched to CPU$/,
  );
  await engine.runPixels(input, 2);
  assert.deepEqual(notes, [engine.info().providerNote], 'exactly one notice');
  await engine.dispose();
});

test('a run that fails on the CPU too is bad input, not a bad device: the GPU session stays', async () => {
  const gpu = fakeGpu('Fake GPU (Vulkan)');
  const s = await VitSession.create(model, names, { provider: 'webgpu', backends: { webgpu: gpu.backend } });
  await assert.rejects(s.run(new Float32Array(5), [1, 5, 1, 1]));
  assert.equal(s.provider, 'webgpu');
  await s.release();
});

test("software adapters are told from GPUs (and this machine's lavapipe is one, so auto leaves it alone)", async () => {
  // adapter.info as Dawn reports it (lavapipe: measured here; the others as their drivers name themselves).
  assert.ok(
    isSoftwareAdapter({
      vendor: 'mesa',
      architecture: 'software',
      device: 'llvmpipe-llvm-15-0-6-256-bits-',
      description: 'llvmpipe: Mesa 25.0.7 (LLVM 15.0.6)',
    }),
  );
  assert.ok(
    isSoftwareAdapter({ vendor: 'google', architecture: '', device: '', description: 'SwiftShader Device (Subzero)' }),
  );
  assert.ok(
    isSoftwareAdapter({
      vendor: 'microsoft',
      architecture: '',
      device: '',
      description: 'Microsoft Basic Render Driver',
    }),
  );
  assert.ok(
    isSoftwareAdapter({ vendor: 'x', architecture: '', device: '', description: 'y', isFallbackAdapter: true }),
  );
  assert.ok(
    !isSoftwareAdapter({ vendor: 'nvidia', architecture: 'hopper', device: '', description: 'NVIDIA H100 80GB HBM3' }),
  );
  assert.ok(
    !isSoftwareAdapter({
      vendor: 'amd',
      architecture: 'rdna-3',
      device: '',
      description: 'AMD Radeon RX 7900 XTX (RADV NAVI31)',
    }),
  );
  assert.ok(
    !isSoftwareAdapter({
      vendor: 'intel',
      architecture: 'gen-12lp',
      device: '',
      description: 'Intel(R) UHD Graphics 770 (ADL-S GT1)',
    }),
  );

  const p = await probeWebGpuAdapter();
  assert.ok(
    'adapter' in p,
    `no WebGPU adapter (install lavapipe: scripts/install-lavapipe.sh): ${'error' in p ? p.error : ''}`,
  );
  if (/llvmpipe|lavapipe/.test(p.adapter.description)) {
    assert.equal(p.adapter.software, true);
    const s = await VitSession.create(model, names, { provider: 'auto', choiceCacheFile: path.join(tmp, 'real.json') });
    assert.equal(s.provider, 'cpu');
    assert.equal(s.providerNote, undefined, 'auto must not even time a software adapter');
    await s.release();
  }
});
