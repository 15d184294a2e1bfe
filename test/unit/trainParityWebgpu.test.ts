// The PyTorch parity test again, on `--backend webgpu`: TF.js's WebGPU kernels and gradients. Without a
// GPU this runs on Mesa's software Vulkan device (lavapipe, scripts/install-lavapipe.sh; .ci/run
// installs it), as the inference WebGPU tests do. With no adapter at all it FAILS, never skips: a run
// that quietly fell back to wasm would pass every comparison without testing WebGPU.
import { before } from 'node:test';
import assert from 'node:assert/strict';
import { probeWebGpuAdapter } from '../../server/webgpuAdapter';

process.env.VIT_LENS_TEST_TRAIN_BACKEND = 'webgpu';

before(async () => {
  const p = await probeWebGpuAdapter();
  assert.ok(
    'adapter' in p,
    `${'error' in p ? p.error : ''}\nThe WebGPU training tests need a WebGPU adapter. Without a GPU, install Mesa >= 25 lavapipe: \`sudo bash scripts/install-lavapipe.sh\`.`,
  );
  console.log(`# WebGPU adapter: ${p.adapter.name}${p.adapter.software ? ' (software)' : ''}`);
});
void import('./trainParity.test');
