/**
 * The Runs view's data: run folders under `vitLens.runsDir`, read from the run directory format
 * (README, "Run directory format"). No `vscode` here, so the unit tests run it in plain Node.
 *
 * A run's own run.json is the truth, with one correction: a `running` run whose process is gone was
 * killed (crash, reboot, closed terminal) and shows as `interrupted`. The rule, shared with
 * `vit-lens runs` and the trainer's lock, is common/runStatus.ts's.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { RunInfo } from '../../common/workerRequests';
import { shownStatus, ShownStatus, StatusFacts } from '../../common/runStatus';
import { lastActivity as runActivity } from './runProbes';

export interface LastStep {
  epoch: number;
  step: number;
  loss: number;
  imagesPerSec: number;
}

export interface RunEntry {
  dir: string;
  /** The run folder's name. */
  name: string;
  /** Absent when run.json could not be read (see `error`) or does not exist yet (`starting`). */
  info?: RunInfo;
  error?: string;
  status: ShownStatus | 'unreadable' | 'starting';
  /** A running run whose process cannot be checked here (another host) but whose files changed within REMOTE_SILENCE_MS. */
  elsewhere?: boolean;
  lastStep?: LastStep;
  /** Newest mtime of run.json / metrics.jsonl / the latest checkpoint, ms since the epoch. */
  lastActivity: number;
}

export interface DiscoverOptions extends StatusFacts {
  /** Run folders this window just spawned a trainer for, which may not have written run.json yet. */
  starting?: ReadonlyMap<string, number>;
}

/** Every sub-folder of `runsDir` that is a run (has run.json) or is being started; newest first. */
export async function discoverRuns(runsDir: string, o: DiscoverOptions): Promise<RunEntry[]> {
  const entries = await fs.readdir(runsDir, { withFileTypes: true }).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return [];
    throw new Error(`${runsDir}: cannot list the runs folder (${e.code ?? e.message})`);
  });
  const dirs = entries.filter(e => e.isDirectory() || e.isSymbolicLink()).map(e => path.join(runsDir, e.name));
  const runs = (await Promise.all(dirs.map(d => readRun(d, o)))).filter((r): r is RunEntry => !!r);
  const key = (r: RunEntry) => r.info?.createdAt ?? new Date(r.lastActivity).toISOString();
  return runs.sort((a, b) => (key(a) < key(b) ? 1 : key(a) > key(b) ? -1 : a.name.localeCompare(b.name)));
}

/** One run folder; undefined when it is not a run at all (no run.json and not being started). */
export async function readRun(dir: string, o: DiscoverOptions): Promise<RunEntry | undefined> {
  const name = path.basename(dir);
  const file = path.join(dir, 'run.json');
  const st = await fs.stat(file).catch(() => undefined);
  if (!st) {
    const pid = o.starting?.get(dir);
    if (pid === undefined) return undefined;
    if (o.exited?.has(pid))
      return {
        dir,
        name,
        status: 'unreadable',
        error: `the trainer exited before writing run.json; see ${path.join(dir, 'train.log')}`,
        lastActivity: o.now,
      };
    return { dir, name, status: 'starting', lastActivity: o.now };
  }
  const lastActivity = await runActivity(dir);
  let info: RunInfo;
  try {
    info = parseRunInfo(await fs.readFile(file, 'utf8'), file);
  } catch (e) {
    return { dir, name, status: 'unreadable', error: (e as Error).message, lastActivity };
  }
  const { status, elsewhere } = shownStatus(info, lastActivity, o);
  const lastStep = status === 'running' ? await readLastStep(path.join(dir, 'metrics.jsonl')) : undefined;
  return { dir, name, info, status, elsewhere, lastStep, lastActivity };
}

/** run.json, checked enough that the view can rely on the fields it shows; the error names the file and the field. */
export function parseRunInfo(text: string, file: string): RunInfo {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
  const o = v as Partial<RunInfo> | null;
  if (!o || typeof o !== 'object' || Array.isArray(o)) throw new Error(`${file}: expected a JSON object`);
  if (!['running', 'finished', 'failed', 'stopped'].includes(o.status as string))
    throw new Error(`${file}: "status" must be running, finished, failed or stopped, got ${JSON.stringify(o.status)}`);
  if (!o.config || typeof o.config !== 'object') throw new Error(`${file}: "config" is missing`);
  for (const k of ['pid', 'epoch', 'totalEpochs'] as const) {
    if (typeof o[k] !== 'number') throw new Error(`${file}: "${k}" must be a number, got ${JSON.stringify(o[k])}`);
  }
  return o as RunInfo;
}

/** The newest step line of metrics.jsonl, from its last few KB only (the file grows for the whole run). */
export async function readLastStep(file: string): Promise<LastStep | undefined> {
  let tail: string;
  try {
    const h = await fs.open(file, 'r');
    try {
      const size = (await h.stat()).size;
      const len = Math.min(size, 8192);
      const { buffer } = await h.read(Buffer.alloc(len), 0, len, size - len);
      tail = buffer.toString('utf8');
    } finally {
      await h.close();
    }
  } catch {
    return undefined;
  }
  const lines = tail.split('\n');
  for (let i = lines.length - 1; i >= 0; i--) {
    if (!lines[i].includes('"type":"step"')) continue;
    try {
      const m = JSON.parse(lines[i]);
      return { epoch: m.epoch, step: m.step, loss: m.loss, imagesPerSec: m.imagesPerSec };
    } catch {
      /* the first line of the tail is usually cut; a torn last line is possible too */
    }
  }
  return undefined;
}
