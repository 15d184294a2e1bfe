/**
 * What only this machine's OS can tell about a run, for the pure status rule in common/runStatus.ts:
 * is a pid alive, this host's name, when the run's files last changed. Node, no `vscode`: the CLI,
 * the trainer's lock and the worker's caches use it too (scripts/build.mjs keeps server/ out of the
 * extension bundle, while the CLI bundle may import from anywhere).
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Here } from '../../common/runStatus';

/** Is `pid` alive on this machine? (EPERM: it exists but belongs to another user.) */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** This machine, as the status rule asks about it. */
export function thisMachine(): Here {
  return { alive: processAlive, host: os.hostname() };
}

/** Newest mtime (ms since the epoch) of the files a live trainer keeps writing: run.json, metrics.jsonl, the latest checkpoint. */
export async function lastActivity(runDir: string): Promise<number> {
  const files = ['run.json', 'metrics.jsonl', path.join('checkpoints', 'latest.safetensors')];
  const times = await Promise.all(
    files.map(f =>
      fs.stat(path.join(runDir, f)).then(
        s => s.mtimeMs,
        () => 0,
      ),
    ),
  );
  return Math.max(...times);
}
