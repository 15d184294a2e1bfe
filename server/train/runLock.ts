/**
 * One trainer per run folder. RUN_DIR/run.lock is created with O_EXCL and holds the owner's pid,
 * host and start time. A lock whose owner is gone (same host, pid not alive: the rule of
 * common/runStatus.ts, which `vit-lens runs` and the Runs view use too) was left by a killed
 * trainer and is taken over; one held by a live process, or by another host (whose pid cannot be
 * checked from here), is refused with a message naming the pid and host.
 *
 * The lock is released on every way out of the process that runs code: a normal end, a failure,
 * SIGINT/SIGTERM (the trainer stops and returns), a second signal or any process.exit (the 'exit'
 * hook). Only kill -9 or a power cut leave it, and then it is stale.
 */
import { promises as fs, readFileSync, unlinkSync } from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ownerState } from '../../common/runStatus';
import { processAlive } from '../../extension/runs/runProbes';

export const lockFile = (runDir: string) => path.join(runDir, 'run.lock');

export interface LockOwner {
  pid: number;
  host: string;
  startedAt: string;
}

export class RunLockedError extends Error {}

/** A lock file younger than this that does not parse is being written by its owner right now. */
const UNPARSED_GRACE_MS = 10_000;

export class RunLock {
  private held = true;
  private readonly onExit = () => this.releaseSync();

  constructor(
    readonly file: string,
    private readonly text: string,
    readonly replaced?: LockOwner,
  ) {
    process.on('exit', this.onExit);
  }

  /** Removes the lock file if it is still ours. */
  async release(): Promise<void> {
    if (!this.held) return;
    this.held = false;
    process.off('exit', this.onExit);
    if ((await fs.readFile(this.file, 'utf8').catch(() => undefined)) === this.text)
      await fs.rm(this.file, { force: true });
  }

  /** release() for the 'exit' event, where only synchronous code runs. */
  releaseSync(): void {
    if (!this.held) return;
    this.held = false;
    process.off('exit', this.onExit);
    try {
      if (readFileSync(this.file, 'utf8') === this.text) unlinkSync(this.file);
    } catch {
      /* already gone */
    }
  }
}

function parseOwner(text: string): LockOwner | undefined {
  try {
    const o = JSON.parse(text) as LockOwner;
    return Number.isInteger(o.pid) && typeof o.host === 'string' ? o : undefined;
  } catch {
    return undefined;
  }
}

/** Takes RUN_DIR's lock (the folder must exist) or throws RunLockedError naming the holder. */
export async function lockRun(runDir: string): Promise<RunLock> {
  const file = lockFile(runDir);
  const host = os.hostname();
  const text =
    JSON.stringify({ pid: process.pid, host, startedAt: new Date().toISOString() } satisfies LockOwner) + '\n';
  let replaced: LockOwner | undefined;
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      await fs.writeFile(file, text, { flag: 'wx' });
      return new RunLock(file, text, replaced);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST')
        throw new Error(`${file}: cannot create the run lock (${(e as Error).message})`);
    }
    const held = await fs.readFile(file, 'utf8').catch(() => undefined);
    if (held === undefined) continue; // released in between
    const owner = parseOwner(held);
    if (!owner) {
      const age = Date.now() - ((await fs.stat(file).catch(() => undefined))?.mtimeMs ?? 0);
      if (age < UNPARSED_GRACE_MS)
        throw new RunLockedError(
          `${runDir}: another vit-lens train is starting in this folder (${file} is being written)`,
        );
    } else if (!(owner.host === host && owner.pid === process.pid)) {
      // (Our own pid on our host cannot be a live owner: this process holds no lock yet, so the pid was reused.)
      const state = ownerState(owner, { alive: processAlive, host });
      if (state === 'alive')
        throw new RunLockedError(
          `${runDir}: in use by vit-lens train, pid ${owner.pid} on ${owner.host} (since ${owner.startedAt}); wait for it to end or stop it first`,
        );
      if (state === 'unknown') {
        throw new RunLockedError(
          `${runDir}: in use by vit-lens train, pid ${owner.pid} on host ${owner.host} (since ${owner.startedAt}), which cannot be checked from ${host}; if that process is gone, delete ${file}`,
        );
      }
    }
    if (await breakStale(file, held)) replaced = owner;
  }
  throw new RunLockedError(`${file}: could not take the run lock (it keeps changing hands)`);
}

/**
 * Removes a stale lock, unless it changed since it was read as `stale`: it is renamed aside first
 * (of several processes doing this at once only one rename succeeds) and put back if it was not
 * the stale one after all.
 */
async function breakStale(file: string, stale: string): Promise<boolean> {
  const aside = `${file}.${process.pid}.stale`;
  try {
    await fs.rename(file, aside);
  } catch {
    return false;
  }
  const text = await fs.readFile(aside, 'utf8').catch(() => undefined);
  if (text !== stale) await fs.link(aside, file).catch(() => undefined);
  await fs.rm(aside, { force: true });
  return text === stale;
}
