/**
 * The one rule for "is this run still running?", used by `vit-lens runs` (server/train/cli.ts), the
 * trainer's run-folder lock (server/train/runLock.ts: is the lock stale?), the Runs view and the
 * dashboard. Pure apart from asking the OS about a pid, so it lives here: scripts/build.mjs keeps
 * every server/ module out of the extension bundle, while the CLI bundle may import from anywhere.
 *
 * A trainer records its pid and host (run.json, run.lock). On this host the pid decides. A pid of
 * another host means nothing here, so such a run counts as running while its files keep changing
 * (REMOTE_SILENCE_MS) and as interrupted after that. Runs written before the host was recorded are
 * treated like another host's when their pid is not alive here.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export type RecordedStatus = 'running' | 'finished' | 'failed' | 'stopped';
export type ShownStatus = RecordedStatus | 'interrupted';

/** How long a `running` run whose process cannot be checked here may stay silent before it counts as interrupted. */
export const REMOTE_SILENCE_MS = 5 * 60_000;

/** The process that owns a run or its lock. */
export interface Owner {
  pid: number;
  /** os.hostname() of the machine it runs on; absent in runs written before it was recorded. */
  host?: string;
}

export interface Here {
  alive: (pid: number) => boolean;
  /** This machine's os.hostname() (default: asked of the OS). */
  host?: string;
}

export interface StatusFacts extends Here {
  now: number;
  /** Pids this window spawned and saw exit: dead for sure, whatever the file times say. */
  exited?: ReadonlySet<number>;
}

/** Is `pid` alive on this machine? (EPERM: it exists but belongs to another user.) */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** 'alive' and 'gone' are known on this host; 'unknown' for another host's process (or an unrecorded host whose pid is not alive here). */
export function ownerState(owner: Owner, here: Here): 'alive' | 'gone' | 'unknown' {
  const host = here.host ?? os.hostname();
  if (owner.host !== undefined && owner.host !== host) return 'unknown';
  if (here.alive(owner.pid)) return 'alive';
  return owner.host === undefined ? 'unknown' : 'gone';
}

/** What to show for a run whose run.json says `info.status`; `lastActivity`: ms since the epoch of its newest write. */
export function shownStatus(info: Owner & { status: RecordedStatus }, lastActivity: number, o: StatusFacts): { status: ShownStatus; elsewhere?: boolean } {
  if (info.status !== 'running') return { status: info.status };
  const state = o.exited?.has(info.pid) && (info.host === undefined || info.host === (o.host ?? os.hostname())) ? 'gone' : ownerState(info, o);
  if (state === 'alive') return { status: 'running' };
  if (state === 'gone') return { status: 'interrupted' };
  if (o.now - lastActivity < REMOTE_SILENCE_MS) return { status: 'running', elsewhere: true };
  return { status: 'interrupted' };
}

/** Newest mtime (ms since the epoch) of the files a live trainer keeps writing: run.json, metrics.jsonl, the latest checkpoint. */
export async function lastActivity(runDir: string): Promise<number> {
  const files = ['run.json', 'metrics.jsonl', path.join('checkpoints', 'latest.safetensors')];
  const times = await Promise.all(files.map((f) => fs.stat(path.join(runDir, f)).then((s) => s.mtimeMs, () => 0)));
  return Math.max(...times);
}
