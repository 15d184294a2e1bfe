/**
 * Resume parity on `--backend webgpu` (lavapipe without a GPU; FAILS, never skips, with no adapter):
 * 2 uninterrupted epochs vs a run stopped mid-epoch and resumed end with bitwise the same weights,
 * and run.json names the backend and adapter. The wasm cases (kill -9, first epoch) are in
 * trainResume.test.ts; one backend is enough for those, the checkpoint code is the same.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'fs';
import * as os from 'os';
import * as path from 'path';
import { makeColorDataset } from '../fixtures/train/makeDataset';
import { SMALL_ARCH, smallRunConfig } from '../fixtures/train/smallRun';
import { loadCheckpoint } from '../../server/train/checkpoint';
import { checkpointFile, readRunInfo } from '../../server/train/runFiles';
import { train } from '../../server/train/trainer';
import { probeWebGpuAdapter } from '../../server/webgpuAdapter';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'vit-lens-resume-webgpu-'));
const ds = path.join(tmp, 'ds');
const config = smallRunConfig(ds);
const common = {
  backend: 'webgpu' as const,
  scratchArch: SMALL_ARCH,
  exportAtEnd: false,
  cacheDir: path.join(tmp, 'cache'),
};

let adapterName = '';
before(async () => {
  const p = await probeWebGpuAdapter();
  assert.ok(
    'adapter' in p,
    `${'error' in p ? p.error : ''}\nThe WebGPU training tests need a WebGPU adapter. Without a GPU, install Mesa >= 25 lavapipe: \`sudo bash scripts/install-lavapipe.sh\`.`,
  );
  adapterName = p.adapter.name;
  await makeColorDataset(ds, { perClass: 8 });
});

test('webgpu: stop mid-epoch + resume gives bitwise the weights of an uninterrupted run', async t => {
  t.after(() => rmSync(tmp, { recursive: true, force: true }));
  const a = path.join(tmp, 'a');
  const full = await train({ ...common, runDir: a, config });
  assert.equal(full.status, 'finished');
  const info = await readRunInfo(a);
  assert.equal(info.backend, 'webgpu');
  assert.equal(info.device, `WebGPU · ${adapterName}`);
  assert.ok(
    info.backendNotes.some(n => n.startsWith(`webgpu: adapter ${adapterName}`)),
    info.backendNotes.join('\n'),
  );

  const b = path.join(tmp, 'b');
  let steps = 0;
  // 18 training images, micro-batches of 4, 2 per step → 3 steps per epoch; stop after step 4 (mid-epoch 2).
  const first = await train({
    ...common,
    runDir: b,
    config,
    logEvery: 1,
    log: l => {
      if (/step \d+\//.test(l)) steps++;
    },
    shouldStop: () => steps >= 4,
  });
  assert.equal(first.status, 'stopped');
  assert.equal(first.step, 4);
  const mid = (await loadCheckpoint(checkpointFile(b, 'latest'))).weights;
  const resumed = await train({ ...common, runDir: b, config, resume: true });
  assert.equal(resumed.status, 'finished');
  assert.equal(resumed.step, full.step);

  const wa = (await loadCheckpoint(checkpointFile(a, 'latest'))).weights;
  const wb = (await loadCheckpoint(checkpointFile(b, 'latest'))).weights;
  let maxDiff = 0;
  let moved = false;
  for (const [name, w] of wa) {
    const u = wb.get(name)!;
    for (let i = 0; i < w.data.length; i++) maxDiff = Math.max(maxDiff, Math.abs(w.data[i] - u.data[i]));
    moved ||= w.data.some((v, i) => v !== mid.get(name)!.data[i]);
  }
  console.log(`# webgpu resume: max |Δweight| = ${maxDiff}`);
  assert.equal(maxDiff, 0, `resumed weights differ from the uninterrupted run by up to ${maxDiff}`);
  assert.ok(moved, 'the resumed steps changed no weight: equality would prove nothing');
});
