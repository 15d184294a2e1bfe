/**
 * `vit-lens train --list-backends` through the built CLI, read as the Fine-tune form reads it
 * (extension/runs/trainBackends.ts): every backend in the `auto` order, the WebGPU adapter named
 * (lavapipe without a GPU: this FAILS, never skips, without an adapter), `auto` never on a software
 * adapter, and what the form's Backend row and picker then say.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { backendChoices, backendSummary, parseListing, probeTrainBackends } from '../../extension/runs/trainBackends';
import { runCli } from '../../extension/runs/trainerProcess';
import { probeWebGpuAdapter } from '../../server/webgpuAdapter';

const cliJs = path.join(__dirname, '..', '..', 'dist', 'cli.js');

test('the form learns what each backend runs on, from a separate process', async () => {
  assert.ok(fs.existsSync(cliJs), `${cliJs} is missing: run npm run build first`);
  const p = await probeWebGpuAdapter();
  assert.ok(
    'adapter' in p,
    `${'error' in p ? p.error : ''}\nInstall Mesa >= 25 lavapipe: \`sudo bash scripts/install-lavapipe.sh\`.`,
  );
  const probe = await probeTrainBackends(args => runCli(cliJs, args), 1);
  assert.ok('listing' in probe, 'error' in probe ? probe.error : '');
  const { listing } = probe;
  assert.deepEqual(
    listing.backends.map(b => b.name),
    ['tensorflow-gpu', 'webgpu', 'tensorflow', 'wasm', 'cpu'],
  );
  const webgpu = listing.backends.find(b => b.name === 'webgpu')!;
  assert.equal(webgpu.device, `WebGPU · ${p.adapter.name}`);
  const wasm = listing.backends.find(b => b.name === 'wasm')!;
  assert.match(wasm.device!, /^CPU · \d+ threads? \(wasm/);
  assert.equal(!!webgpu.software, p.adapter.software);
  if (p.adapter.software) {
    assert.match(webgpu.autoSkips!, /software adapter|no GPU device node/);
    assert.notEqual(listing.auto, 'webgpu');
    assert.match(backendChoices(probe).find(c => c.key === 'webgpu')!.detail, /Emulates a GPU on the CPU/);
  }
  // No native TensorFlow here: auto is the first backend that is available.
  assert.equal(listing.auto, listing.backends.find(b => !b.unavailable && !b.autoSkips)!.name);
  assert.equal(backendSummary('webgpu', probe), `WebGPU · ${p.adapter.name}`);
  assert.equal(backendSummary('wasm', probe), wasm.device);
  if (listing.auto === 'wasm') assert.equal(backendSummary('auto', probe), `Auto: ${wasm.device}`);
});

test('a broken answer or a failing CLI reads as unknown, not as a crash', async () => {
  assert.throws(() => parseListing('{"auto": 3}'), /unexpected answer/);
  const failed = await probeTrainBackends(
    async () => ({
      code: 2,
      stdout: '',
      stderr: 'vit-lens train: unknown option\n',
    }),
    1,
  );
  assert.deepEqual(failed, { error: 'vit-lens train: unknown option' });
  assert.match(backendSummary('auto', failed), /^Auto: unknown \(vit-lens train: unknown option\)$/);
  assert.match(backendSummary('webgpu', failed), /^WebGPU: unknown/);
});

test("--resume keeps the run's backend unless --backend is given", async () => {
  const { execFile } = await import('child_process');
  const os = await import('os');
  const { makeColorDataset } = await import('../fixtures/train/makeDataset');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-resume-backend-'));
  const cli = (args: string[]) =>
    new Promise<string>((resolve, reject) =>
      execFile(process.execPath, [cliJs, ...args], (e, _out, err) =>
        e ? reject(new Error(`${e.message}\n${err}`)) : resolve(err),
      ),
    );
  try {
    await makeColorDataset(path.join(tmp, 'ds'), { perClass: 4 });
    const run = path.join(tmp, 'run');
    const common = ['--out', run, '--cache-dir', path.join(tmp, 'cache')];
    await cli([
      'train',
      path.join(tmp, 'ds'),
      ...common,
      '--model',
      path.join(__dirname, '..', 'fixtures', 'vit-tiny', 'hf'),
      '--mode',
      'head',
      '--epochs',
      '1',
      '--image-size',
      '32',
      '--batch-size',
      '8',
      '--backend',
      'cpu',
    ]);
    assert.match(
      await cli(['train', ...common, '--resume']),
      /backend cpu \(CPU · 1 thread \(TF\.js JavaScript kernels\)\)/,
    );
    assert.match(await cli(['train', ...common, '--resume', '--backend', 'auto']), /backend wasm \(CPU/);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
