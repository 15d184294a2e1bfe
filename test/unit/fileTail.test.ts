/**
 * The incremental file tail (common/fileTail.ts) that the dashboard's run source and the TensorBoard
 * event-file watcher share, on real files: appends arrive once, a capped read continues where it
 * stopped, a moved-back offset is read again, and a file that shrank or was replaced starts over.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FileTail } from '../../common/fileTail';

const text = (b: Uint8Array) => Buffer.from(b).toString('utf8');

test('appended bytes arrive once, in pieces of at most maxRead; a moved-back offset is read again; Infinity stops reading', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-tail-'));
  const file = path.join(dir, 'log');
  fs.writeFileSync(file, 'abcdef');
  const tail = new FileTail(() => fs.promises.open(file, 'r'), 4);
  assert.equal(tail.seen, false);
  let c = await tail.read();
  assert.deepEqual([text(c.bytes), c.position, c.restarted, tail.seen], ['abcd', 0, false, true]);
  c = await tail.read();
  assert.deepEqual([text(c.bytes), c.position], ['ef', 4]);
  assert.equal((await tail.read()).bytes.length, 0);

  fs.appendFileSync(file, 'gh');
  c = await tail.read();
  assert.deepEqual([text(c.bytes), c.position, c.restarted], ['gh', 6, false]);
  // An incomplete record: consume only part of it, the rest comes again.
  tail.offset = 7;
  assert.equal(text((await tail.read()).bytes), 'h');

  tail.offset = Number.POSITIVE_INFINITY;
  fs.appendFileSync(file, 'ij');
  assert.equal((await tail.read()).bytes.length, 0, 'stopped until the file starts over');
  fs.rmSync(dir, { recursive: true });
});

test('a file that shrank or was replaced (another inode) is read from the start and says so; forget() starts fresh', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-tail-'));
  const file = path.join(dir, 'log');
  fs.writeFileSync(file, 'first line\n');
  const tail = new FileTail(() => fs.promises.open(file, 'r'));
  await tail.read();

  fs.writeFileSync(file, 'short');
  let c = await tail.read();
  assert.deepEqual([text(c.bytes), c.position, c.restarted, c.previousSize, c.size], ['short', 0, true, 11, 5]);

  // An atomic rewrite, longer than before: same offset would land mid-record.
  fs.writeFileSync(path.join(dir, 'next'), 'replaced, and longer\n');
  fs.renameSync(path.join(dir, 'next'), file);
  c = await tail.read();
  assert.deepEqual([text(c.bytes), c.restarted], ['replaced, and longer\n', true]);

  fs.rmSync(file);
  await assert.rejects(tail.read(), /ENOENT/);
  tail.forget();
  fs.writeFileSync(file, 'again');
  c = await tail.read();
  assert.deepEqual([text(c.bytes), c.restarted], ['again', false]);
  fs.rmSync(dir, { recursive: true });
});
