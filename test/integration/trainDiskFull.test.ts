/**
 * A full disk in the middle of a run, for real: the run folder is on a 4 MB tmpfs that the test
 * fills after the first step. run.json must end as `failed` with the reason even though every write
 * after that fails too, and no temp file may be left. Mounting needs root; without it this test
 * fails (it does not skip).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeSync,
} from 'fs';
import * as os from 'os';
import * as path from 'path';
import { makeColorDataset } from '../fixtures/train/makeDataset';
import { train } from '../../server/train/trainer';
import { TrainConfig } from '../../server/train/runFiles';
import { writeFileAtomic } from '../../server/util/atomicFile';

const ROOT = path.join(__dirname, '..', '..');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'vit-lens-diskfull-'));
const disk = path.join(tmp, 'disk');
let mounted = false;

before(() => {
  mkdirSync(disk);
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', disk], { stdio: 'pipe' });
    mounted = true;
  } catch (e) {
    throw new Error(`this test needs a real full disk: "mount -t tmpfs" failed (run as root): ${(e as Error).message}`);
  }
});
after(() => {
  if (mounted) execFileSync('umount', [disk]);
  rmSync(tmp, { recursive: true, force: true });
});

/** Writes a filler file until the disk says ENOSPC. */
function fillDisk(): void {
  const fd = openSync(path.join(disk, 'filler'), 'w');
  try {
    const chunk = Buffer.alloc(4096, 1);
    for (;;) writeSync(fd, chunk);
  } catch (e) {
    assert.equal((e as NodeJS.ErrnoException).code, 'ENOSPC');
  } finally {
    closeSync(fd);
  }
}

const tempFiles = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap(e =>
    e.isDirectory() ? tempFiles(path.join(dir, e.name)) : e.name.endsWith('.tmp') ? [path.join(dir, e.name)] : [],
  );

test('disk full mid-run: run.json says failed with the reason, no temp files stay, the lock is released', async () => {
  const ds = path.join(tmp, 'ds');
  await makeColorDataset(ds, { perClass: 4, width: 28, height: 28 });
  const runDir = path.join(disk, 'run');
  const config: TrainConfig = {
    dataset: ds,
    model: path.join(ROOT, 'models', 'default'),
    mode: 'head',
    lastK: 2,
    epochs: 3,
    batchSize: 4,
    accumulate: 1,
    lr: 1e-3,
    optimizer: 'adamw',
    weightDecay: 0.05,
    momentum: 0,
    warmupSteps: 0,
    clipNorm: 1,
    labelSmoothing: 0,
    augment: false,
    valSplit: 0.25,
    seed: 0,
  };
  let filled = false;
  const log: string[] = [];
  const run = train({
    runDir,
    config,
    backend: 'wasm',
    cacheDir: path.join(tmp, 'cache'),
    logEvery: 1,
    log: l => log.push(l),
    shouldStop: () => {
      if (!filled) {
        fillDisk();
        filled = true;
      }
      return false;
    },
  });
  await assert.rejects(run, /ENOSPC|no space/i);
  assert.ok(filled, 'the disk was filled during the run');
  const info = JSON.parse(readFileSync(path.join(runDir, 'run.json'), 'utf8'));
  assert.equal(info.status, 'failed', `run.json says ${info.status}; log:\n${log.join('\n')}`);
  assert.match(info.reason, /ENOSPC|no space/i);
  assert.ok(info.finishedAt);
  assert.deepEqual(tempFiles(runDir), [], 'temp files left behind');
  assert.ok(!existsSync(path.join(runDir, 'run.lock')), 'lock released');
});

test('writeFileAtomic on a full disk removes its temp file', async () => {
  rmSync(path.join(disk, 'filler'), { force: true });
  fillDisk();
  const dir = path.join(disk, 'atomic');
  mkdirSync(dir, { recursive: true });
  await assert.rejects(writeFileAtomic(path.join(dir, 'big.json'), Buffer.alloc(256 * 1024, 7)), /ENOSPC/);
  assert.deepEqual(readdirSync(dir), []);
});
