/**
 * The worker process on WebGPU (lavapipe here; no adapter = FAIL, as in webgpuParity.test.ts) whose
 * device "fails" mid-session through the test-only VIT_LENS_TEST_FAIL_GPU_AFTER seam
 * (server/testSeams.ts): exactly one vitLens/providerFallback notification, the failing request
 * still answers (repeated on the CPU), and the worker keeps serving on the CPU. Before the failure,
 * a Classify Folder shows the GPU-sized batches (one batch of 40).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { MessageConnection, ProgressType } from 'vscode-jsonrpc/node';
import {
  ClassifyFolderRequest,
  ClassifyRequest,
  LoadModelRequest,
  ModelInfo,
  ProviderFallbackNotification,
  StatusRequest,
} from '../../common/workerRequests';
import { probeWebGpuAdapter } from '../../server/webgpuAdapter';
import { cat, coffee, reference, startWorker, stopWorker, tinyOnnx, type WorkerProcess } from './workerProcess';
import { requestType } from './requestType';

const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-gpu-fallback-'));

let worker: WorkerProcess;
let rpc: MessageConnection;
const fallbacks: ModelInfo[] = [];

before(async () => {
  process.env.XDG_RUNTIME_DIR ??= '/tmp';
  const p = await probeWebGpuAdapter();
  assert.ok(
    'adapter' in p,
    `no WebGPU adapter (${'error' in p ? p.error : ''}): install lavapipe with scripts/install-lavapipe.sh`,
  );
  // Two good GPU runs (a folder of 12 in one batch, then one classify), then every GPU run fails.
  // Its stderr keeps Dawn's limit warnings on lavapipe, and the worker's log.
  worker = await startWorker({
    init: { cacheDir, provider: 'webgpu' },
    env: { VIT_LENS_TEST_FAIL_GPU_AFTER: '2' },
    onConnection: c =>
      c.onNotification(ProviderFallbackNotification.method, (info: ModelInfo) => void fallbacks.push(info)),
  });
  rpc = worker.rpc;
});

after(async () => {
  await stopWorker(worker);
  fs.rmSync(cacheDir, { recursive: true, force: true });
});

function top1OfCat(r: { results: { predictions: { index: number }[] }[] }): number {
  return r.results[0].predictions[0].index;
}

test('WebGPU failing mid-session in the worker: one providerFallback, the request answers, later ones run on the CPU', async () => {
  const info = await rpc.sendRequest(requestType(LoadModelRequest), { model: tinyOnnx });
  assert.equal(info.provider, 'webgpu', `expected WebGPU, got ${info.provider} (${info.providerNote})`);
  assert.equal(info.batchSize, 64, 'GPU-sized batches (batchSize.test.ts works the number out)');

  // Classify Folder on the GPU: 40 images in one batch (CPU: 8 at a time; classifyFolder's own default: 32), so one progress step.
  const folder = path.join(cacheDir, 'folder');
  fs.mkdirSync(folder);
  for (let i = 0; i < 40; i++) fs.copyFileSync(cat, path.join(folder, `cat-${i}.png`));
  const progress: string[] = [];
  const sub = rpc.onProgress(
    new ProgressType<{ message?: string }>(),
    'folder',
    p => void (p.message && progress.push(p.message)),
  );
  const r = await rpc.sendRequest(requestType(ClassifyFolderRequest), { folder, workDoneToken: 'folder' }); // run 1: on the GPU
  sub.dispose();
  assert.equal(r.predictions.length, 40);
  assert.deepEqual(
    progress.filter(m => /^\d+ \/ 40 images$/.test(m)),
    ['0 / 40 images', '40 / 40 images'],
  );

  const first = await rpc.sendRequest(requestType(ClassifyRequest), { images: [cat] }); // run 2: on the GPU
  assert.equal(top1OfCat(first), reference.photos['chelsea.png'].top1);
  assert.equal((await rpc.sendRequest(requestType(StatusRequest), {})).model?.provider, 'webgpu');
  assert.equal(fallbacks.length, 0);

  const second = await rpc.sendRequest(requestType(ClassifyRequest), { images: [cat, coffee] }); // run 3: device lost → repeated on the CPU
  assert.equal(top1OfCat(second), reference.photos['chelsea.png'].top1);
  assert.equal(second.results[1].predictions[0].index, reference.photos['coffee.png'].top1);
  for (let i = 0; i < 3; i++) await rpc.sendRequest(requestType(ClassifyRequest), { images: [coffee] }); // stays on the CPU: no new failure, no new notice

  const status = await rpc.sendRequest(requestType(StatusRequest), {});
  assert.equal(status.state, 'ready');
  assert.equal(status.model?.provider, 'cpu');
  assert.equal(status.model?.batchSize, 8, "back to the CPU's batch size");
  assert.match(
    status.model?.providerNote ?? '',
    /^WebGPU failed during a run \(WebGPU device lost \(VIT_LENS_TEST_FAIL_GPU_AFTER=2\)\); switched to CPU$/,
  );
  assert.equal(fallbacks.length, 1, `expected one providerFallback notification, got ${fallbacks.length}`);
  assert.equal(fallbacks[0].provider, 'cpu');
  assert.equal(fallbacks[0].providerNote, status.model?.providerNote);
  assert.equal(worker.proc.exitCode, null, `the worker is still running; its stderr:\n${worker.stderr.join('')}`);
});
