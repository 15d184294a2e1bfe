/**
 * vitLens/readScalars over the built worker (dist/worker.js), as the dashboard's TfEventsSource
 * polls it: a first read returns every scalar of the fixture folder, the cursor then returns only
 * what was appended (a half-written record completes), and an unknown cursor (a restarted worker)
 * starts over with `reset`. No model is loaded: scalars never wait for one.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { MessageConnection } from 'vscode-jsonrpc/node';
import { ReadScalarsRequest } from '../../common/workerRequests';
import { fixtures, startWorker, stopWorker, type WorkerProcess } from './workerProcess';
import { requestType } from './requestType';

const FIX = path.join(fixtures, 'tfevents');
/** One scalar of test/fixtures/tfevents/expected.json (scripts/make_tfevents_fixtures.py). */
interface ExpectedScalar {
  run: string;
  file: string;
  tag: string;
  step: number;
  wallTime: number;
  value: number;
}
const expected: {
  scalars: ExpectedScalar[];
  truncated: {
    file: string;
    completeBytes: number;
    size: number;
    missingTailHex: string;
    missingScalar: ExpectedScalar;
  };
} = JSON.parse(fs.readFileSync(path.join(FIX, 'expected.json'), 'utf8'));

let worker: WorkerProcess;
let rpc: MessageConnection;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-scalars-'));

before(async () => {
  worker = await startWorker({ transport: 'ipc', init: { cacheDir: tmp, provider: 'cpu' } });
  rpc = worker.rpc;
});

after(async () => {
  await stopWorker(worker);
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
  const loss = first.scalars.find(s => s.run === 'run_a' && s.tag === 'train/loss')!;
  const want = expected.scalars.filter(s => s.run === 'run_a' && s.tag === 'train/loss');
  assert.deepEqual(
    loss.points.map(p => p.step),
    want.map(s => s.step),
  );
  assert.ok(Math.abs(loss.points[0].value - want[0].value) < 1e-6);

  const none = await rpc.sendRequest(requestType(ReadScalarsRequest), { folder, cursor: first.cursor });
  assert.deepEqual([none.reset, count(none)], [false, 0]);

  // The live file's last record was half-written; its tail arrives.
  fs.appendFileSync(path.join(folder, expected.truncated.file), Buffer.from(expected.truncated.missingTailHex, 'hex'));
  const more = await rpc.sendRequest(requestType(ReadScalarsRequest), { folder, cursor: first.cursor });
  assert.equal(count(more), 1);
  assert.deepEqual(
    [more.scalars[0].run, more.scalars[0].tag, more.scalars[0].points[0].step],
    ['live', 'train/loss', expected.truncated.missingScalar.step],
  );

  const reset = await rpc.sendRequest(requestType(ReadScalarsRequest), { folder, cursor: 'from-a-previous-worker' });
  assert.equal(reset.reset, true);
  assert.equal(count(reset), expected.scalars.length + 1);
  assert.notEqual(reset.cursor, 'from-a-previous-worker');

  const missing = await rpc.sendRequest(requestType(ReadScalarsRequest), { folder: path.join(tmp, 'not-yet') });
  assert.deepEqual([missing.scalars, missing.problems], [[], []], 'a folder that does not exist yet is not an error');
});
