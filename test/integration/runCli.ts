/** Runs the built CLI (dist/cli.js) as its own process for the integration tests. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export const CLI_JS = path.join(__dirname, '..', '..', 'dist', 'cli.js');

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  /** Added to (or, when undefined, removed from) the environment. */
  env?: Record<string, string | undefined>;
  /** Called with all of stderr so far after each chunk, e.g. to signal the process at a given line. */
  onStderr?: (stderr: string, kill: (signal: NodeJS.Signals) => void) => void;
}

export function runCli(args: string[], opts: CliOptions = {}): Promise<CliRun> {
  assert.ok(fs.existsSync(CLI_JS), `${CLI_JS} is missing: run npm run build first`);
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [CLI_JS, ...args], {
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', d => (stdout += d));
    p.stderr.on('data', d => {
      stderr += d;
      opts.onStderr?.(stderr, s => p.kill(s));
    });
    p.on('error', reject);
    p.on('close', code => resolve({ code, stdout, stderr }));
  });
}
