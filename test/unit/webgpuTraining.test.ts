/**
 * The trainer's WebGPU backend on a real adapter (lavapipe without a GPU; FAILS, never skips, with
 * none): `auto` never trains on a software adapter while `--backend webgpu` does, AddN over more
 * inputs than WebGPU's storage-buffer limit adds up, and a device error stops the step.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend, webGpuAdapter } from '../../server/train/backend';
import { throwIfWebGpuFailed } from '../../server/train/webgpuKernels';
import { probeWebGpuAdapter, type AdapterProbe } from '../../server/webgpuAdapter';

let probe: AdapterProbe;
before(async () => {
  probe = await probeWebGpuAdapter();
  assert.ok(
    'adapter' in probe,
    `${'error' in probe ? probe.error : ''}\nThe WebGPU training tests need a WebGPU adapter. Without a GPU, install Mesa >= 25 lavapipe: \`sudo bash scripts/install-lavapipe.sh\`.`,
  );
});

test('auto skips a software adapter and a machine without GPU device nodes; --backend webgpu takes either', async () => {
  assert.ok('adapter' in probe);
  const software = { ...probe, adapter: { ...probe.adapter, software: true } };
  const hardware = { ...probe, adapter: { ...probe.adapter, software: false } };
  const probes = (p: AdapterProbe, nodes: boolean) => ({ nodesExist: () => nodes, probe: async () => p });
  await assert.rejects(
    webGpuAdapter(false, probes(software, true)),
    /only a software adapter, .*\(--backend webgpu uses it anyway\)/,
  );
  await assert.rejects(webGpuAdapter(false, probes(hardware, false)), /no GPU device node/);
  assert.equal((await webGpuAdapter(false, probes(hardware, true))).name, probe.adapter.name);
  assert.equal((await webGpuAdapter(true, probes(software, false))).software, true);
  await assert.rejects(
    webGpuAdapter(true, probes({ error: 'no WebGPU adapter found' }, true)),
    /no WebGPU adapter found/,
  );
});

test('--backend webgpu starts on the adapter and names it', async () => {
  assert.ok('adapter' in probe);
  const { adapter } = probe;
  const b = await initBackend('webgpu');
  assert.equal(tf.getBackend(), 'webgpu');
  assert.equal(b.device, `WebGPU · ${adapter.name}`);
  assert.ok(
    b.notes.some(n => n.includes(adapter.name) && n.includes(`vendor "${adapter.vendor}"`)),
    b.notes.join('\n'),
  );
});

test('addN of 40 tensors (over the 8 storage buffers a WebGPU shader may bind) adds up', async () => {
  await initBackend('webgpu');
  const xs = Array.from({ length: 40 }, (_, i) => tf.fill([3], i + 1));
  const sum = tf.addN(xs);
  assert.deepEqual(Array.from(await sum.data()), [820, 820, 820]);
  tf.dispose([...xs, sum]);
  throwIfWebGpuFailed();
});

// Last: the error it provokes stays recorded for the rest of this process.
test('a WebGPU device error stops the next step instead of training on garbage', async () => {
  await initBackend('webgpu');
  throwIfWebGpuFailed();
  const device = (tf.backend() as unknown as { device: { createBuffer(d: { size: number; usage: number }): unknown } })
    .device;
  device.createBuffer({ size: 4, usage: 0 }); // invalid: a buffer needs a usage
  await tf.scalar(1).data(); // a round trip to the device, after which the error has been reported
  assert.throws(() => throwIfWebGpuFailed(), /WebGPU device error: .*usage/i);
});
