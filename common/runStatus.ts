/**
 * The one rule for "is this run still running?", used by `vit-lens runs` (server/train/cli.ts), the
 * trainer's run-folder lock (server/train/runLock.ts: is the lock stale?), the Runs view and the
 * dashboard. Pure: what only the OS knows (is a pid alive, this host's name, when a run's files last
 * changed) comes from the caller, see extension/runs/runProbes.ts.
 *
 * A trainer records its pid and host (run.json, run.lock). On this host the pid decides. A pid of
 * another host means nothing here, so such a run counts as running while its files keep changing
 * (REMOTE_SILENCE_MS) and as interrupted after that. Runs written before the host was recorded are
 * treated like another host's when their pid is not alive here.
 */
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
  /** This machine's os.hostname(). */
  host: string;
}

export interface StatusFacts extends Here {
  now: number;
  /** Pids this window spawned and saw exit: dead for sure, whatever the file times say. */
  exited?: ReadonlySet<number>;
}

/** 'alive' and 'gone' are known on this host; 'unknown' for another host's process (or an unrecorded host whose pid is not alive here). */
export function ownerState(owner: Owner, here: Here): 'alive' | 'gone' | 'unknown' {
  if (owner.host !== undefined && owner.host !== here.host) return 'unknown';
  if (here.alive(owner.pid)) return 'alive';
  return owner.host === undefined ? 'unknown' : 'gone';
}

/** What to show for a run whose run.json says `info.status`; `lastActivity`: ms since the epoch of its newest write. */
export function shownStatus(
  info: Owner & { status: RecordedStatus },
  lastActivity: number,
  o: StatusFacts,
): { status: ShownStatus; elsewhere?: boolean } {
  if (info.status !== 'running') return { status: info.status };
  const state =
    o.exited?.has(info.pid) && (info.host === undefined || info.host === o.host) ? 'gone' : ownerState(info, o);
  if (state === 'alive') return { status: 'running' };
  if (state === 'gone') return { status: 'interrupted' };
  if (o.now - lastActivity < REMOTE_SILENCE_MS) return { status: 'running', elsewhere: true };
  return { status: 'interrupted' };
}
