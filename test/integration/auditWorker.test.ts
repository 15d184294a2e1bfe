/**
 * vitLens/audit on the built worker (dist/worker.js) over JSON-RPC, as the extension sends it:
 * progress reported, the report returned and written, cancellation answered with RequestCancelled
 * and the worker still serving afterwards.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { fork } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {
  CancellationTokenSource,
  createMessageConnection,
  IPCMessageReader,
  IPCMessageWriter,
  ProgressType,
  ResponseError,
} from 'vscode-jsonrpc/node';
import { AuditRequest, ErrorCodes, LoadModelRequest, StatusRequest } from '../../common/workerRequests';
import { writePlantedDataset } from '../unit/auditData';

const root = path.join(__dirname, '..', '..');
const workerJs = path.join(root, 'dist', 'worker.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-audit-worker-'));
const dataset = path.join(tmp, 'data');
assert.ok(fs.existsSync(workerJs), `${workerJs} is missing: run npm run build first`);
const proc = fork(workerJs, ['--node-ipc'], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
const rpc = createMessageConnection(new IPCMessageReader(proc), new IPCMessageWriter(proc));

before(async () => {
  await writePlantedDataset(dataset, 8);
  rpc.listen();
  await rpc.sendRequest('initialize', {
    processId: process.pid,
    rootUri: null,
    capabilities: {},
    initializationOptions: { cacheDir: path.join(tmp, 'cache'), provider: 'cpu' },
  });
  rpc.sendNotification('initialized', {});
  await rpc.sendRequest(LoadModelRequest.method, { model: path.join(root, 'models', 'default') });
});

after(async () => {
  await rpc.sendRequest('shutdown').catch(() => undefined);
  rpc.dispose();
  proc.kill();
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('a cancelled audit answers RequestCancelled, writes nothing, and the worker goes on', async () => {
  const source = new CancellationTokenSource();
  const token = 'cancel-me';
  const sub = rpc.onProgress(new ProgressType<{ kind: string }>(), token, v => {
    if (v.kind === 'report') source.cancel();
  });
  const outcome = await rpc
    .sendRequest(AuditRequest.method, { folder: dataset, workDoneToken: token }, source.token)
    .then(
      () => 'finished',
      e => (e instanceof ResponseError ? e.code : String(e)),
    );
  sub.dispose();
  assert.equal(outcome, -32800);
  assert.ok(!fs.existsSync(path.join(dataset, '.vit-lens', 'audit.json')));
  assert.equal(((await rpc.sendRequest(StatusRequest.method, {})) as { state: string }).state, 'ready');
});

test('an audit reports progress and returns the report it wrote', async () => {
  const progress: { kind: string; message?: string }[] = [];
  const token = 'audit';
  const sub = rpc.onProgress(new ProgressType<{ kind: string; message?: string }>(), token, v => void progress.push(v));
  const r = (await rpc.sendRequest(AuditRequest.method, { folder: dataset, folds: 3, workDoneToken: token })) as {
    images: number;
    file: string;
    labelIssues: unknown[];
    folds: number;
  };
  sub.dispose();
  assert.equal(r.folds, 3);
  assert.equal(r.file, path.join(dataset, '.vit-lens', 'audit.json'));
  assert.deepEqual(JSON.parse(fs.readFileSync(r.file, 'utf8')).labelIssues, r.labelIssues);
  assert.equal(r.images, 8 * 10 + 21);
  assert.equal(progress[0].kind, 'begin');
  assert.equal(progress.at(-1)!.kind, 'end');
  assert.ok(
    progress.some(p => p.message?.startsWith('cross-validation')),
    JSON.stringify(progress),
  );
});

test('bad parameters are a clear error', async () => {
  const e = await rpc.sendRequest(AuditRequest.method, { folder: 42 }).catch(x => x);
  assert.ok(e instanceof ResponseError);
  assert.equal(e.code, ErrorCodes.InvalidParams);
  assert.match(e.message, /vitLens\/audit: folder must be a folder path, got 42/);
  const folds = (await rpc
    .sendRequest(AuditRequest.method, { folder: '/tmp', folds: 1 })
    .catch(x => x)) as ResponseError<unknown>;
  assert.equal(folds.code, ErrorCodes.InvalidParams);
  assert.match(folds.message, /folds must be an integer in \[2, 100\], got 1/);
});
