/**
 * The run-folder lock (server/train/runLock.ts): one holder at a time, refusals naming the pid and
 * host, stale locks of dead processes taken over, and release on every exit path that runs code.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { ChildProcess, spawn, spawnSync } from 'child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'fs';
import * as os from 'os';
import * as path from 'path';
import { lockFile, lockRun, RunLockedError } from '../../server/train/runLock';
import { removeOrphanTempFiles } from '../../server/util/atomicFile';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'vit-lens-lock-'));
const sleepers: ChildProcess[] = [];
after(() => {
  for (const s of sleepers) s.kill();
  rmSync(tmp, { recursive: true, force: true });
});

const folder = (name: string) => {
  const d = path.join(tmp, name);
  mkdirSync(d, { recursive: true });
  return d;
};
/** A process that is alive for the test's duration. */
const livePid = () => {
  const s = spawn('sleep', ['60']);
  sleepers.push(s);
  return s.pid!;
};
/** A pid that was used and is now free (its process exited). */
const deadPid = () => spawnSync('true').pid!;
const holder = (pid: number, host = os.hostname()) =>
  JSON.stringify({ pid, host, startedAt: '2026-01-01T00:00:00.000Z' }) + '\n';

test('the lock names pid, host and start time; release removes it', async () => {
  const dir = folder('basic');
  const lock = await lockRun(dir);
  const held = JSON.parse(readFileSync(lockFile(dir), 'utf8'));
  assert.equal(held.pid, process.pid);
  assert.equal(held.host, os.hostname());
  assert.ok(!Number.isNaN(Date.parse(held.startedAt)));
  // Our own pid in an existing lock can only be a reused pid, so a second lockRun in this process takes it over:
  // the refusal of a live holder is checked with another process below.
  await lock.release();
  assert.ok(!existsSync(lockFile(dir)));
  const again = await lockRun(dir);
  assert.equal(again.replaced, undefined);
  await again.release();
});

test('a lock held by a live process is refused with its pid and host; the file is left as it was', async () => {
  const dir = folder('live');
  const pid = livePid();
  writeFileSync(lockFile(dir), holder(pid));
  await assert.rejects(lockRun(dir), (e: Error) => {
    assert.ok(e instanceof RunLockedError);
    assert.match(
      e.message,
      new RegExp(
        `^${dir}: in use by vit-lens train, pid ${pid} on ${os.hostname()} \\(since 2026-01-01T00:00:00.000Z\\)`,
      ),
    );
    return true;
  });
  assert.equal(readFileSync(lockFile(dir), 'utf8'), holder(pid));
});

test('a lock of another host is never broken: its pid cannot be checked here', async () => {
  const dir = folder('remote');
  writeFileSync(lockFile(dir), holder(deadPid(), 'some-other-host'));
  await assert.rejects(lockRun(dir), /pid \d+ on host some-other-host .*cannot be checked from .*delete .*run\.lock/);
});

test('a stale lock (dead pid on this host) is taken over and reported', async () => {
  const dir = folder('stale');
  const pid = deadPid();
  writeFileSync(lockFile(dir), holder(pid));
  const lock = await lockRun(dir);
  assert.equal(lock.replaced?.pid, pid);
  assert.equal(JSON.parse(readFileSync(lockFile(dir), 'utf8')).pid, process.pid);
  await lock.release();
});

test('an unreadable lock: refused while it may be being written, taken over once old', async () => {
  const dir = folder('garbage');
  writeFileSync(lockFile(dir), '');
  await assert.rejects(lockRun(dir), /another vit-lens train is starting in this folder/);
  const old = new Date(Date.now() - 60_000);
  utimesSync(lockFile(dir), old, old);
  const lock = await lockRun(dir);
  await lock.release();
});

test('process.exit releases the lock (the second-signal path of vit-lens train); release leaves a lock that is not ours', async () => {
  const dir = folder('exit');
  const script = `require('tsx/cjs'); require(${JSON.stringify(path.join(__dirname, '..', '..', 'server', 'train', 'runLock.ts'))}).lockRun(${JSON.stringify(dir)}).then(() => { require('fs').writeFileSync(${JSON.stringify(path.join(dir, 'took'))}, ''); process.exit(3); });`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
  assert.equal(r.status, 3, r.stderr);
  assert.ok(existsSync(path.join(dir, 'took')), 'the child took the lock');
  assert.ok(!existsSync(lockFile(dir)), 'and its exit removed it');

  const lock = await lockRun(dir);
  writeFileSync(lockFile(dir), holder(livePid()));
  await lock.release();
  assert.ok(existsSync(lockFile(dir)), "someone else's lock stays");
});

test("temp-file cleanup removes only orphans of our name pattern: dead writers' and our own", async () => {
  const dir = folder('temps');
  const dead = deadPid();
  const live = livePid();
  const names = [
    `.latest.safetensors.${dead}.1733520000000.tmp`,
    `run.json.${dead}.m1abc.tmp`,
    `.report.json.${live}.m1abc0.tmp`,
    `notes.${dead}.tmp`,
    'mine.tmp',
    `.run.json.${process.pid}.zz.tmp`,
  ];
  for (const n of names) writeFileSync(path.join(dir, n), 'x');
  const removed = await removeOrphanTempFiles(dir);
  assert.deepEqual(
    removed.sort(),
    [
      `.latest.safetensors.${dead}.1733520000000.tmp`,
      `.run.json.${process.pid}.zz.tmp`,
      `run.json.${dead}.m1abc.tmp`,
    ].sort(),
  );
  for (const n of [`.report.json.${live}.m1abc0.tmp`, `notes.${dead}.tmp`, 'mine.tmp'])
    assert.ok(existsSync(path.join(dir, n)), `${n} is kept`);
});
