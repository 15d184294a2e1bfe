/**
 * Starting the `vit-lens` CLI (dist/cli.js) from the extension host.
 *
 * A training run is its own detached process writing train.log in its run folder: it survives a
 * window reload or the worker restarting, and the Runs view finds it again from the run folder
 * alone, like a run started in a terminal. VS Code's own executable runs it as plain Node with
 * ELECTRON_RUN_AS_NODE, so no separate Node install is needed.
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface Started {
  pid: number;
  /** Resolves when the process exits (while this window lives). */
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const nodeEnv = () => ({ ...process.env, ELECTRON_RUN_AS_NODE: '1' });

export const logFile = (runDir: string) => path.join(runDir, 'train.log');

export function spawnTrainer(cliJs: string, args: string[], runDir: string): Promise<Started> {
  fs.mkdirSync(runDir, { recursive: true });
  // Appended, so a resumed run keeps the earlier log above its own.
  const log = fs.openSync(logFile(runDir), 'a');
  let child: ChildProcess;
  try {
    fs.writeSync(log, `\n# ${new Date().toISOString()} vit-lens ${args.map(quote).join(' ')}\n`);
    child = spawn(process.execPath, [cliJs, ...args], {
      detached: true,
      stdio: ['ignore', log, log],
      env: nodeEnv(),
      windowsHide: true,
    });
  } finally {
    // The child holds its own copy of the descriptor.
    fs.closeSync(log);
  }
  return new Promise((resolve, reject) => {
    child.once('error', e => reject(new Error(`could not start ${cliJs}: ${e.message}`)));
    child.once('spawn', () => {
      const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(res =>
        child.once('exit', (code, signal) => res({ code, signal })),
      );
      child.unref();
      resolve({ pid: child.pid!, exit });
    });
  });
}

/** A short CLI command (export) with its output collected; killed when `signal` aborts. */
export function runCli(
  cliJs: string,
  args: string[],
  signal?: AbortSignal,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliJs, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: nodeEnv(),
      signal,
      windowsHide: true,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', d => (stdout += d));
    child.stderr.on('data', d => (stderr += d));
    child.once('error', reject);
    child.once('close', code => resolve({ code, stdout, stderr }));
  });
}

/** The last `n` non-empty lines of a text file ('' when unreadable). */
export function tailLines(file: string, n: number): string {
  try {
    const fd = fs.openSync(file, 'r');
    try {
      const size = fs.fstatSync(fd).size;
      const len = Math.min(size, 16384);
      const buf = Buffer.alloc(len);
      fs.readSync(fd, buf, 0, len, size - len);
      return buf
        .toString('utf8')
        .split('\n')
        .filter(l => l.trim())
        .slice(-n)
        .join('\n');
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return '';
  }
}

function quote(a: string): string {
  return /^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`;
}
