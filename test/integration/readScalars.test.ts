/**
 * vitLens/readScalars over the built worker (dist/worker.js), as the dashboard's TfEventsSource
 * polls it: a first read returns every scalar of the fixture folder, the cursor then returns only
 * what was appended (a half-written record completes), and an unknown cursor (a restarted worker)
 * starts over with `reset`. No model is loaded: scalars never wait for one.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { ChildProcess, fork } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { createMessageConnection, IPCMessageReader, IPCMessageWriter, MessageConnection } from 'vscode-jsonrpc/node';
import { ReadScalarsRequest } from '../../common/workerRequests';
import { requestType } from './requestType';

const root = path.join(__dirname, '..', '..');
const FIX = path.join(root, 'test', 'fixtures', 'tfevents');
const expected = JSON.parse(fs.readFileSync(path.join(FIX, 'expected.json'), 'utf8'));

let proc: ChildProcess;
let rpc: MessageConnection;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-scalars-'));

before(async () => {
  const workerJs = path.join(root, 'dist', 'worker.js');
  assert.ok(fs.existsSync(workerJs), `${workerJs} is missing: run npm run build first`);
  proc = fork(workerJs, ['--node-ipc'], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
  rpc = createMessageConnection(new IPCMessageReader(proc), new IPCMessageWriter(proc));
  rpc.listen();
  await rpc.sendRequest('initialize', { processId: process.pid, rootUri: null, capabilities: {}, initializationOptions: { cacheDir: tmp, provider: 'cpu' } });
  rpc.sendNotification('initialized', {});
});

after(async () => {
  await rpc.sendRequest('shutdown').catch(() => undefined);
  await rpc.sendNotification('exit').catch(() => undefined);
  rpc.dispose();
  if (proc.exitCode === null) proc.kill();
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('readScalars: everything first, then only new points; an unknown cursor resets', async () => {
  const folder = path.join(tmp, 'logs');
  fs.cpSync(FIX, folder, { recursive: true });
  fs.rmSync(path.join(folder, 'expected.json'));
  const first = await rpc.sendRequest(requestType(ReadScalarsRequest), { folder });
  assert.equal(first.reset, false);
  const count = (r: typeof first) => r.scalars.reduce((n, s) => n + s.points.length, 0);
  assert.equal(count(first), expected.scalars.length);
  const loss = first.scalars.find((s) => s.run === 'run_a' && s.tag === 'train/loss')!;
  const want = expected.scalars.filter((s: any) => s.run === 'run_a' && s.tag === 'train/loss');
  assert.deepEqual(loss.points.map((p) => p.step), want.map((s: any) => s.step));
  assert.ok(Math.abs(loss.points[0].value - want[0].value) < 1e-6);

  const none = await rpc.sendRequest(requestType(ReadScalarsRequest), { folder, cursor: first.cursor });
  assert.deepEqual([none.reset, count(none)], [false, 0]);

  // The live file's last record was half-written; its tail arrives.
  fs.appendFileSync(path.join(folder, expected.truncated.file), Buffer.from(expected.truncated.missingTailHex, 'hex'));
  const more = await rpc.sendRequest(requestType(ReadScalarsRequest), { folder, cursor: first.cursor });
  assert.equal(count(more), 1);
  assert.deepEqual([more.scalars[0].run, more.scalars[0].tag, more.scalars[0].points[0].step], ['live', 'train/loss', expected.truncated.missingScalar.step]);

  const reset = await rpc.sendRequest(requestType(ReadScalarsRequest), { folder, cursor: 'from-a-previous-worker' });
  assert.equal(reset.reset, true);
  assert.equal(count(reset), expected.scalars.length + 1);
  assert.notEqual(reset.cursor, 'from-a-previous-worker');

  const missing = await rpc.sendRequest(requestType(ReadScalarsRequest), { folder: path.join(tmp, 'not-yet') });
  assert.deepEqual([missing.scalars, missing.problems], [[], []], 'a folder that does not exist yet is not an error');
});
