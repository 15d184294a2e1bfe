/**
 * vitLens/scanDataset over the built worker (dist/worker.js), as the Fine-tune command calls it:
 * class counts and the split, unreadable files with checkImages, whole-dataset errors, progress and
 * cancellation.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {
  CancellationTokenSource,
  createMessageConnection,
  MessageConnection,
  ProgressType,
  ResponseError,
  StreamMessageReader,
  StreamMessageWriter,
} from 'vscode-jsonrpc/node';
import { ErrorCodes, ScanDatasetRequest } from '../../common/workerRequests';
import { requestType } from './requestType';
import { makeColorDataset } from '../fixtures/train/makeDataset';

const root = path.join(__dirname, '..', '..');
const bad = path.join(root, 'test', 'fixtures', 'bad');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-scan-'));
let rpc: MessageConnection;
let kill: () => void;

before(async () => {
  const proc = spawn(process.execPath, [path.join(root, 'dist', 'worker.js'), '--stdio'], {
    stdio: ['pipe', 'pipe', 'ignore'],
  });
  rpc = createMessageConnection(new StreamMessageReader(proc.stdout!), new StreamMessageWriter(proc.stdin!));
  rpc.listen();
  kill = () => proc.kill();
  await rpc.sendRequest('initialize', {
    processId: process.pid,
    rootUri: null,
    capabilities: {},
    initializationOptions: { provider: 'cpu' },
  });
  rpc.sendNotification('initialized', {});
});
after(() => {
  rpc.dispose();
  kill();
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function error(p: Promise<unknown>): Promise<ResponseError<unknown>> {
  const e = await p.then(
    () => undefined,
    x => x,
  );
  assert.ok(e instanceof ResponseError, `expected a JSON-RPC error, got ${e}`);
  return e;
}

test('counts per class, stratified split, imbalance; unreadable files only with checkImages', async () => {
  const ds = path.join(tmp, 'ds');
  await makeColorDataset(ds, { classes: ['cat', 'dog'], perClass: 10 });
  await makeColorDataset(path.join(tmp, 'extra'), { classes: ['bird'], perClass: 2 });
  fs.renameSync(path.join(tmp, 'extra', 'bird'), path.join(ds, 'bird'));
  fs.copyFileSync(path.join(bad, 'not-an-image.jpg'), path.join(ds, 'cat', 'broken.jpg'));
  fs.copyFileSync(path.join(bad, 'zero.png'), path.join(ds, 'dog', 'empty.png'));
  fs.writeFileSync(path.join(ds, 'dog', 'notes.txt'), 'hello');

  const quick = await rpc.sendRequest(requestType(ScanDatasetRequest), { folder: ds, valSplit: 0.2 });
  assert.equal(quick.layout, 'class-folders');
  assert.deepEqual(
    quick.classes.map(c => c.name),
    ['bird', 'cat', 'dog'],
  );
  assert.equal(quick.images, 2 + 11 + 11, 'without checkImages the broken files still count');
  assert.deepEqual(
    quick.skipped.map(s => path.basename(s.file)),
    ['notes.txt'],
  );

  const progress: { kind: string; percentage?: number }[] = [];
  const sub = rpc.onProgress(
    new ProgressType<{ kind: string; percentage?: number }>(),
    'scan-1',
    p => void progress.push(p),
  );
  const r = await rpc.sendRequest(requestType(ScanDatasetRequest), {
    folder: ds,
    checkImages: true,
    valSplit: 0.2,
    workDoneToken: 'scan-1',
  });
  sub.dispose();
  assert.deepEqual(
    r.classes.map(c => c.name),
    ['bird', 'cat', 'dog'],
  );
  assert.deepEqual(r.classes[0], { name: 'bird', train: 1, val: 1 });
  // Readable images only (a broken file may have been drawn into train or val).
  const total = (n: string) => r.classes.find(c => c.name === n)!;
  assert.equal(total('cat').train + total('cat').val, 10);
  assert.equal(total('dog').train + total('dog').val, 10);
  assert.equal(r.images, 22);
  assert.equal(r.imbalance, 5);
  const reasons = Object.fromEntries(r.skipped.map(s => [path.basename(s.file), s.reason]));
  assert.match(reasons['broken.jpg'], /not a readable image/);
  assert.match(reasons['empty.png'], /empty/);
  assert.match(reasons['notes.txt'], /not an image/);
  assert.ok(progress.some(p => p.kind === 'begin') && progress.some(p => p.kind === 'end'));
  assert.ok(
    progress.some(p => p.kind === 'report' && p.percentage === 100),
    'progress reaches 100%',
  );
});

test("classes the trainer cannot learn once unreadable images are left out are called out in the trainer's words", async () => {
  const ds = path.join(tmp, 'coverage');
  await makeColorDataset(path.join(ds, 'train'), { classes: ['cat', 'dog'], perClass: 3 });
  await makeColorDataset(path.join(ds, 'val'), { classes: ['cat', 'dog', 'fox'], perClass: 2 });
  // fox: training images all unreadable, validation images fine; bird: nothing readable at all.
  fs.mkdirSync(path.join(ds, 'train', 'fox'));
  fs.mkdirSync(path.join(ds, 'train', 'bird'));
  for (const d of ['fox', 'bird'])
    for (let i = 0; i < 3; i++)
      fs.copyFileSync(path.join(bad, 'not-an-image.jpg'), path.join(ds, 'train', d, `x${i}.jpg`));
  const r = await rpc.sendRequest(requestType(ScanDatasetRequest), { folder: ds, checkImages: true });
  assert.ok(
    r.warnings.some(
      w =>
        w === `${ds}: class "fox" has no readable training images (only 2 validation ones); the model cannot learn it`,
    ),
    r.warnings.join('\n'),
  );
  assert.ok(
    r.warnings.some(w =>
      w.startsWith(`${ds}: class "bird" has no readable images (all 3 skipped); the model cannot learn it`),
    ),
    r.warnings.join('\n'),
  );
});

test('one class, no classes, no images and a missing folder are errors naming the folder', async () => {
  const one = path.join(tmp, 'one');
  await makeColorDataset(one, { classes: ['only'], perClass: 2 });
  const none = path.join(tmp, 'none');
  fs.mkdirSync(none);
  const emptyClasses = path.join(tmp, 'empty-classes');
  fs.mkdirSync(path.join(emptyClasses, 'a'), { recursive: true });
  fs.mkdirSync(path.join(emptyClasses, 'b'));
  const cases: [string, RegExp][] = [
    [one, /only one class folder \("only"\)/],
    [none, /no class folders found/],
    [emptyClasses, /no images found/],
    [path.join(tmp, 'missing'), /does not exist/],
  ];
  for (const [folder, want] of cases) {
    const e = await error(rpc.sendRequest(requestType(ScanDatasetRequest), { folder }));
    assert.equal(e.code, ErrorCodes.BadInput);
    assert.match(e.message, want);
    assert.ok(e.message.includes(folder), `${e.message} names ${folder}`);
  }
});

test('a cancelled scan answers RequestCancelled and the worker goes on', async () => {
  const big = path.join(tmp, 'big');
  await makeColorDataset(big, { classes: ['a', 'b'], perClass: 400, width: 8, height: 8 });
  const source = new CancellationTokenSource();
  const pending = rpc.sendRequest(requestType(ScanDatasetRequest), { folder: big, checkImages: true }, source.token);
  setTimeout(() => source.cancel(), 5);
  const e = await error(pending);
  assert.equal(e.code, -32800);
  const r = await rpc.sendRequest(requestType(ScanDatasetRequest), { folder: big });
  assert.equal(r.images, 800);
});
