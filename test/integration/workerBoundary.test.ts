/**
 * The worker's boundary as a hostile or broken client sees it, over raw JSON-RPC (no vscode-jsonrpc
 * client smoothing things over): params that break a request's schema are answered InvalidParams
 * naming the field, long values are not echoed back, and a corrupt frame ends the worker with a
 * reason on stderr and a non-zero exit instead of wedging it.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ChildProcess, fork, spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const root = path.join(__dirname, '..', '..');
const workerJs = path.join(root, 'dist', 'worker.js');
const cat = path.join(root, 'test', 'fixtures', 'photos', 'chelsea.png');
const tinyHf = path.join(root, 'test', 'fixtures', 'vit-tiny', 'hf');
const INVALID_PARAMS = -32602;

interface Reply {
  id: number;
  result?: unknown;
  error?: { code: number; message: string };
}

/** A worker driven with hand-written messages; `write` sends raw bytes (stdio only). */
interface RawWorker {
  proc: ChildProcess;
  stderr: () => string;
  /** Notifications the worker sent (window/logMessage and the like), in order. */
  notifications: { method: string; params: unknown }[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  send: (message: unknown) => void;
  write: (bytes: string) => void;
  request: (method: string, params?: unknown) => Promise<Reply>;
}

function startRaw(transport: 'stdio' | 'ipc'): RawWorker {
  assert.ok(fs.existsSync(workerJs), `${workerJs} is missing: run npm run build first`);
  const proc =
    transport === 'stdio'
      ? spawn(process.execPath, [workerJs, '--stdio'], { stdio: ['pipe', 'pipe', 'pipe'] })
      : fork(workerJs, ['--node-ipc'], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
  let stderr = '';
  proc.stderr!.on('data', d => (stderr += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(resolve =>
    proc.on('exit', (code, signal) => resolve({ code, signal })),
  );
  const pending = new Map<number, (r: Reply) => void>();
  const notifications: RawWorker['notifications'] = [];
  const onMessage = (m: Reply & { method?: string; params?: unknown }) => {
    if (m?.method && m.id === undefined) notifications.push({ method: m.method, params: m.params });
    if (typeof m?.id === 'number' && pending.has(m.id)) {
      pending.get(m.id)!(m);
      pending.delete(m.id);
    }
  };
  const write = (bytes: string) => void proc.stdin!.write(bytes);
  let send: (message: unknown) => void;
  if (transport === 'stdio') {
    let buffer = Buffer.alloc(0);
    proc.stdout!.on('data', (d: Buffer) => {
      buffer = Buffer.concat([buffer, d]);
      for (;;) {
        const end = buffer.indexOf('\r\n\r\n');
        if (end < 0) return;
        const length = Number(/Content-Length: (\d+)/i.exec(buffer.subarray(0, end).toString())?.[1]);
        if (buffer.length < end + 4 + length) return;
        onMessage(JSON.parse(buffer.subarray(end + 4, end + 4 + length).toString()));
        buffer = buffer.subarray(end + 4 + length);
      }
    });
    send = message => {
      const body = Buffer.from(JSON.stringify(message));
      proc.stdin!.write(`Content-Length: ${body.length}\r\n\r\n`);
      proc.stdin!.write(body);
    };
  } else {
    proc.on('message', onMessage);
    send = message => void proc.send(message as object);
  }
  let nextId = 1;
  const request = (method: string, ...params: unknown[]) =>
    new Promise<Reply>(resolve => {
      const id = nextId++;
      pending.set(id, resolve);
      send({ jsonrpc: '2.0', id, method, ...(params.length ? { params: params[0] } : {}) });
    });
  return { proc, stderr: () => stderr, notifications, exited, send, write, request };
}

async function initialize(
  w: RawWorker,
  cacheDir: string,
  options: unknown = { cacheDir, provider: 'cpu' },
): Promise<void> {
  const r = await w.request('initialize', {
    processId: process.pid,
    rootUri: null,
    capabilities: {},
    initializationOptions: options,
  });
  assert.ok(r.result, `initialize failed: ${JSON.stringify(r.error)}`);
  w.send({ jsonrpc: '2.0', method: 'initialized', params: {} });
}

async function stop(w: RawWorker): Promise<void> {
  if (w.proc.exitCode !== null || w.proc.signalCode !== null) return;
  await w.request('shutdown');
  w.send({ jsonrpc: '2.0', method: 'exit' });
  await Promise.race([w.exited, new Promise(r => setTimeout(r, 5000))]);
  if (w.proc.exitCode === null) w.proc.kill();
}

const huge = path.join(os.tmpdir(), 'a'.repeat(50_000_000));

/** [method, params, expected message]: every request's schema, including params that are no object at all. */
const BAD_PARAMS: [string, unknown, RegExp][] = [
  ['vitLens/classify', null, /^vitLens\/classify: params must be an object, got null$/],
  ['vitLens/classify', [1, 2, 3], /params must be an object, got a list/],
  ['vitLens/classify', {}, /^vitLens\/classify: images is missing$/],
  ['vitLens/classify', { images: 'cat.png' }, /images must be a list, got "cat\.png"/],
  ['vitLens/classify', { images: [cat, 7] }, /images\[1\] must be an image file path, got 7/],
  ['vitLens/classify', { images: [''] }, /images\[0\] must be an image file path, got an empty string/],
  ['vitLens/classify', { images: [cat], topK: 0 }, /topK must be an integer in \[1, 1000\], got 0/],
  ['vitLens/classify', { images: [cat], topK: 2.5 }, /topK must be an integer/],
  ['vitLens/explain', {}, /^vitLens\/explain: image is missing$/],
  ['vitLens/explain', null, /params must be an object, got null/],
  ['vitLens/explain', { image: cat, headFusion: 'avg' }, /headFusion must be one of mean, max, min, got "avg"/],
  ['vitLens/explain', { image: cat, discardRatio: 1.5 }, /discardRatio must be a number in \[0, 1\), got 1\.5/],
  ['vitLens/explain', { image: cat, layer: -1 }, /layer must be an integer ≥ 0, got -1/],
  [
    'vitLens/explain',
    { image: cat, overlay: { colormap: 'rainbow', opacity: 0.5 } },
    /overlay\.colormap must be one of turbo/,
  ],
  [
    'vitLens/explain',
    { image: cat, overlay: { colormap: 'turbo', opacity: '1' } },
    /overlay\.opacity must be a number in \[0, 1\], got "1"/,
  ],
  ['vitLens/loadModel', {}, /^vitLens\/loadModel: model is missing$/],
  ['vitLens/loadModel', null, /params must be an object, got null/],
  [
    'vitLens/loadModel',
    { model: tinyHf, provider: 'tpu' },
    /provider must be one of auto, webgpu, cuda, cpu, got "tpu"/,
  ],
  ['vitLens/loadModel', { model: tinyHf, labelsFile: {} }, /labelsFile must be a file path, got an object/],
  ['vitLens/classifyFolder', { folder: 7 }, /folder must be a folder path, got 7/],
  ['vitLens/classifyFolder', { folder: 'x', outDir: false }, /outDir must be a folder path, got false/],
  ['vitLens/scanDataset', { folder: 'x', valSplit: 2 }, /valSplit must be a number in \[0, 0\.9\], got 2/],
  ['vitLens/scanDataset', { folder: 'x', checkImages: 'yes' }, /checkImages must be true or false/],
  ['vitLens/readScalars', { folder: 'x', cursor: 5 }, /cursor must be a cursor from an earlier answer, got 5/],
  ['vitLens/readScalars', null, /params must be an object, got null/],
  ['vitLens/status', 'now', /params must be an object, got "now"/],
];

for (const transport of ['stdio', 'ipc'] as const) {
  describe(`worker boundary over ${transport}`, () => {
    const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-boundary-'));
    let w: RawWorker;
    before(async () => {
      w = startRaw(transport);
      await initialize(w, cacheDir);
    });
    after(async () => {
      await stop(w);
      fs.rmSync(cacheDir, { recursive: true, force: true });
    });

    test('params that break a request schema are answered InvalidParams naming the field, never an internal error', async () => {
      for (const [method, params, want] of BAD_PARAMS) {
        const r = await w.request(method, params);
        const what = `${method} ${JSON.stringify(params)}`;
        assert.ok(r.error, `${what} was accepted`);
        assert.equal(r.error.code, INVALID_PARAMS, `${what}: ${r.error.message}`);
        assert.match(r.error.message, want, what);
        assert.doesNotMatch(r.error.message, /Cannot read propert|is not a function|TypeError|undefined/, what);
      }
      const s = await w.request('vitLens/status', {});
      assert.equal((s.result as { state: string }).state, 'idle', 'the worker still serves');
    });

    test('a 50 MB path is refused by its length, not echoed back', { timeout: 60_000 }, async () => {
      // With a model loaded, as when the path used to reach the engine and come back twice (image and error).
      assert.equal((await w.request('vitLens/loadModel', { model: tinyHf })).error, undefined);
      for (const [method, params, field] of [
        ['vitLens/classify', { images: [cat, huge] }, 'images[1]'],
        ['vitLens/explain', { image: huge }, 'image'],
        ['vitLens/loadModel', { model: huge }, 'model'],
      ] as const) {
        const r = await w.request(method, params);
        assert.equal(r.error?.code, INVALID_PARAMS, method);
        assert.ok(
          r.error.message.startsWith(
            `${method}: ${field} is ${huge.length} characters long; at most 4096 are accepted`,
          ),
          r.error.message.slice(0, 300),
        );
        assert.ok(JSON.stringify(r).length < 500, `${method}: the reply is ${JSON.stringify(r).length} characters`);
      }
    });
  });
}

describe('corrupt frames over stdio', () => {
  const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-frames-'));
  after(() => fs.rmSync(cacheDir, { recursive: true, force: true }));
  const FRAMES: [string, string, RegExp][] = [
    [
      'a Content-Length that is not a number',
      'Content-Length: abc\r\n\r\n{"jsonrpc":"2.0","id":9,"method":"vitLens/status","params":{}}',
      /Content-Length value must be a number\. Got abc/,
    ],
    ['no Content-Length', 'Content-Type: application/json\r\n\r\n{}', /must provide a Content-Length/],
    ['a body that is not JSON', 'Content-Length: 9\r\n\r\n{"jsonrpc', /JSON|Unexpected end/],
  ];
  for (const [name, frame, reason] of FRAMES) {
    test(`${name}: the worker exits non-zero, saying why`, { timeout: 30_000 }, async () => {
      const w = startRaw('stdio');
      try {
        await initialize(w, cacheDir);
        assert.equal((await w.request('vitLens/status', {})).error, undefined);
        w.write(frame);
        const timeout = new Promise<'wedged'>(r => setTimeout(() => r('wedged'), 10_000).unref());
        const end = await Promise.race([w.exited, timeout]);
        assert.notEqual(end, 'wedged', `the worker neither answered nor exited within 10 s; stderr: ${w.stderr()}`);
        const { code, signal } = end as { code: number | null; signal: NodeJS.Signals | null };
        assert.equal(signal, null, `the worker died of ${signal}`);
        assert.equal(code, 1);
        assert.match(w.stderr(), /vit-lens worker: corrupt message from the client/);
        assert.match(w.stderr(), reason);
      } finally {
        if (w.proc.exitCode === null && w.proc.signalCode === null) w.proc.kill();
      }
    });
  }

  test('a clean shutdown still exits 0, and closing stdin without one exits 1', { timeout: 30_000 }, async () => {
    const clean = startRaw('stdio');
    await initialize(clean, cacheDir);
    await clean.request('shutdown');
    clean.send({ jsonrpc: '2.0', method: 'exit' });
    assert.deepEqual(await clean.exited, { code: 0, signal: null });
    const dropped = startRaw('stdio');
    await initialize(dropped, cacheDir);
    dropped.proc.stdin!.end();
    assert.deepEqual(await dropped.exited, { code: 1, signal: null });
  });
});

test(
  'over IPC, a message that is not JSON-RPC is ignored and the worker goes on serving',
  { timeout: 30_000 },
  async () => {
    const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-ipc-'));
    const w = startRaw('ipc');
    try {
      await initialize(w, cacheDir);
      for (const junk of ['garbage', 42, {}, { jsonrpc: '2.0', id: 'x' }, [1, 2]]) w.send(junk);
      const s = await w.request('vitLens/status', {});
      assert.equal((s.result as { pid: number }).pid, w.proc.pid);
    } finally {
      await stop(w);
      fs.rmSync(cacheDir, { recursive: true, force: true });
    }
  },
);

test('initializationOptions are checked like request params', { timeout: 30_000 }, async () => {
  const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-init-'));
  const w = startRaw('ipc');
  try {
    for (const [options, want] of [
      [{ cacheDir: 5 }, /^initialize: initializationOptions\.cacheDir must be a folder path, got 5$/],
      [{ provider: 'tpu' }, /initializationOptions\.provider must be one of auto, webgpu, cuda, cpu, got "tpu"/],
      [{ threads: 0 }, /initializationOptions\.threads must be an integer in \[1, 1024\], got 0/],
      ['fast', /initialize: initializationOptions must be an object, got "fast"/],
    ] as const) {
      const r = await w.request('initialize', {
        processId: process.pid,
        rootUri: null,
        capabilities: {},
        initializationOptions: options,
      });
      assert.equal(r.error?.code, INVALID_PARAMS, JSON.stringify(r));
      assert.match(r.error.message, want);
    }
  } finally {
    w.proc.kill();
    fs.rmSync(cacheDir, { recursive: true, force: true });
  }
});

test(
  'a cache folder that cannot be written: the model loads from memory, with one warning naming vitLens.cacheDir in the worker log',
  { timeout: 60_000 },
  async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-cache-file-'));
    const notAFolder = path.join(tmp, 'cache');
    fs.writeFileSync(notAFolder, 'a file where the cache folder should be');
    const w = startRaw('ipc');
    try {
      await initialize(w, notAFolder);
      const load = await w.request('vitLens/loadModel', { model: tinyHf });
      assert.equal(load.error, undefined, JSON.stringify(load.error));
      assert.equal((load.result as { builtFile?: string }).builtFile, undefined, 'no cached file is claimed');
      const r = await w.request('vitLens/classify', { images: [cat] });
      assert.equal((r.result as { results: unknown[] }).results.length, 1);
      const warnings = w.notifications.filter(
        n => n.method === 'window/logMessage' && (n.params as { type: number }).type === 2,
      );
      assert.equal(warnings.length, 1, JSON.stringify(w.notifications));
      assert.match(
        (warnings[0].params as { message: string }).message,
        /^cannot write the model cache in .*cache \(a file is in the way of the folder\); the model was built in memory .* Set the vitLens\.cacheDir setting to a writable folder$/,
      );
    } finally {
      await stop(w);
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  },
);
