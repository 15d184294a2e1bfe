/**
 * Runs the built CLI (dist/cli.js) and measures it: wall time and peak RSS of the CLI process, with
 * a hard time limit. Peak RSS comes from the process itself at exit (process.resourceUsage, through
 * a preloaded reportMaxRss.cjs); when it is killed, from /proc/PID/status VmHWM polled meanwhile.
 * Arguments go through bash's $'\xNN' quoting, so names that are not UTF-8 (written with \udcXX
 * escapes, see server/util/fileNames.ts) reach the CLI as their raw bytes.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fsPath } from '../../server/util/fileNames';
import { CLI_JS } from './runCli';

export interface MeasuredRun {
  code: number | null;
  stdout: string;
  stderr: string;
  seconds: number;
  maxRssMb: number;
  /** Killed at the time limit. */
  timedOut: boolean;
}

const REPORTER = path.join(__dirname, 'reportMaxRss.cjs');

/** bash ANSI-C quoting of every byte: any argument, including bytes that are not UTF-8, survives exactly. */
function bashBytes(arg: string): string {
  const bytes = fsPath(arg);
  return `$'${[...(typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes)].map(b => `\\x${b.toString(16).padStart(2, '0')}`).join('')}'`;
}

export function runCliMeasured(
  args: string[],
  opts: { env?: Record<string, string | undefined>; killAfterS: number },
): Promise<MeasuredRun> {
  assert.ok(fs.existsSync(CLI_JS), `${CLI_JS} is missing: run npm run build first`);
  const rssFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-rss-')), 'maxrss');
  const command = ['exec', ...[process.execPath, '--require', REPORTER, CLI_JS, ...args].map(bashBytes)].join(' ');
  const started = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const p = spawn('/bin/bash', ['-c', command], {
      env: { ...process.env, ...opts.env, VIT_LENS_TEST_MAXRSS_FILE: rssFile },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let polledKb = 0;
    let timedOut = false;
    p.stdout.on('data', d => (stdout += d));
    p.stderr.on('data', d => (stderr += d));
    const poll = setInterval(() => {
      const m = /VmHWM:\s*(\d+) kB/.exec(safeRead(`/proc/${p.pid}/status`));
      if (m) polledKb = Math.max(polledKb, Number(m[1]));
    }, 25);
    const killer = setTimeout(() => {
      timedOut = true;
      p.kill('SIGKILL');
    }, opts.killAfterS * 1000);
    p.on('error', reject);
    p.on('close', code => {
      clearInterval(poll);
      clearTimeout(killer);
      const reportedKb = Number(safeRead(rssFile)) || 0;
      fs.rmSync(path.dirname(rssFile), { recursive: true, force: true });
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      resolve({ code, stdout, stderr, seconds, maxRssMb: Math.max(reportedKb, polledKb) / 1024, timedOut });
    });
  });
}

function safeRead(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}
