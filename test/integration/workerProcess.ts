/**
 * The built worker (dist/worker.js) started the way the extension's language client starts it —
 * over stdio or Node IPC, then `initialize` / `initialized` — and stopped the same way, for the
 * integration tests; plus the fixtures they send it. Not named *.test.ts: the runner does not run it.
 */
import assert from 'node:assert/strict';
import { ChildProcess, fork, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  createMessageConnection,
  IPCMessageReader,
  IPCMessageWriter,
  MessageConnection,
  StreamMessageReader,
  StreamMessageWriter,
} from 'vscode-jsonrpc/node';

const root = path.join(__dirname, '..', '..');
export const workerJs = path.join(root, 'dist', 'worker.js');
export const fixtures = path.join(root, 'test', 'fixtures');
export const tinyHf = path.join(fixtures, 'vit-tiny', 'hf');
export const tinyOnnx = path.join(fixtures, 'vit-tiny', 'model.onnx');
export const cat = path.join(fixtures, 'photos', 'chelsea.png');
export const coffee = path.join(fixtures, 'photos', 'coffee.png');
/** What PyTorch said about the vit-tiny fixture: labels, and each photo's top-1. */
export const reference = JSON.parse(fs.readFileSync(path.join(fixtures, 'vit-tiny', 'reference.json'), 'utf8'));

export interface WorkerProcess {
  proc: ChildProcess;
  rpc: MessageConnection;
  /** Everything the worker wrote to stderr (its log). */
  stderr: string[];
}

export interface WorkerStart {
  /** The worker's initializationOptions (cacheDir, provider, …). */
  init: Record<string, unknown>;
  transport?: 'stdio' | 'ipc';
  /** Added to the environment. */
  env?: Record<string, string>;
  /** Registers handlers before the connection listens, so nothing sent during start-up is missed. */
  onConnection?: (rpc: MessageConnection) => void;
}

export async function startWorker({
  init,
  transport = 'stdio',
  env,
  onConnection,
}: WorkerStart): Promise<WorkerProcess> {
  assert.ok(fs.existsSync(workerJs), `${workerJs} is missing: run npm run build first`);
  const stderr: string[] = [];
  const processEnv = env && { ...process.env, ...env };
  let proc: ChildProcess;
  let rpc: MessageConnection;
  if (transport === 'stdio') {
    proc = spawn(process.execPath, [workerJs, '--stdio'], { stdio: ['pipe', 'pipe', 'pipe'], env: processEnv });
    rpc = createMessageConnection(new StreamMessageReader(proc.stdout!), new StreamMessageWriter(proc.stdin!));
  } else {
    proc = fork(workerJs, ['--node-ipc'], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], env: processEnv });
    rpc = createMessageConnection(new IPCMessageReader(proc), new IPCMessageWriter(proc));
  }
  proc.stderr!.on('data', d => stderr.push(String(d)));
  onConnection?.(rpc);
  rpc.listen();
  await rpc.sendRequest('initialize', {
    processId: process.pid,
    rootUri: null,
    capabilities: {},
    initializationOptions: init,
  });
  rpc.sendNotification('initialized', {});
  return { proc, rpc, stderr };
}

/** shutdown + exit as the client sends them, then the process is killed if it is still there. */
export async function stopWorker(w: WorkerProcess | undefined): Promise<void> {
  if (!w) return;
  await w.rpc.sendRequest('shutdown').catch(() => undefined);
  await w.rpc.sendNotification('exit').catch(() => undefined);
  w.rpc.dispose();
  if (w.proc.exitCode === null) w.proc.kill();
}
