/**
 * Hub downloads against a local server that speaks the hub's URL layout, with Range support and
 * switchable misbehaviour (dropped connections, ignored ranges, slow bodies).
 */
import { after, afterEach, before, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'crypto';
import { existsSync, promises as fsp } from 'fs';
import * as http from 'http';
import type { AddressInfo } from 'net';
import * as os from 'os';
import * as path from 'path';
import {
  defaultCacheDir,
  downloadHubModel,
  hubCacheFolder,
  hubEndpoint,
  HubProgress,
  isHubId,
} from '../../server/model/hub';
import { formatSize, hubWeightsSize } from '../../extension/hubSize';

interface Served {
  files: Map<string, Buffer>;
  requests: { file: string; range?: string; authorization?: string }[];
  /** Send this many bytes of the file, then drop the connection (once). */
  dropAfter?: { file: string; bytes: number };
  /** Answer 200 with the whole file even to a Range request. */
  ignoreRange?: boolean;
  /** Send bodies in chunks of this size with a pause between them. */
  slow?: { chunk: number; intervalMs: number };
}

const ID = 'org/name';
const config = Buffer.from(JSON.stringify({ model_type: 'vit', hidden_size: 8 }));
const preprocessor = Buffer.from(JSON.stringify({ image_mean: [0.5, 0.5, 0.5] }));
const weights = randomBytes(300_000);

let server: http.Server;
let endpoint = '';
let served: Served;
let cacheDir = '';
const savedEnv = { ...process.env };

function serve(files: Record<string, Buffer>, extra: Partial<Served> = {}): void {
  served = { files: new Map(Object.entries(files)), requests: [], ...extra };
}

function handle(req: http.IncomingMessage, res: http.ServerResponse): void {
  const m = /^\/org\/name\/resolve\/main\/(.+)$/.exec(req.url ?? '');
  const file = m ? decodeURIComponent(m[1]) : '';
  served.requests.push({ file, range: req.headers.range, authorization: req.headers.authorization });
  const body = served.files.get(file);
  if (!body) {
    res.writeHead(404, { 'content-type': 'text/plain' }).end('Entry not found');
    return;
  }
  let start = 0;
  const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  if (range && !served.ignoreRange) {
    start = Number(range[1]);
    if (start >= body.length) {
      res.writeHead(416, { 'content-range': `bytes */${body.length}` }).end();
      return;
    }
    res.writeHead(206, {
      'content-length': body.length - start,
      'content-range': `bytes ${start}-${body.length - 1}/${body.length}`,
    });
  } else {
    res.writeHead(200, { 'content-length': body.length });
  }
  const rest = body.subarray(start);
  if (served.dropAfter?.file === file) {
    const { bytes } = served.dropAfter;
    served.dropAfter = undefined;
    res.write(rest.subarray(0, bytes), () => setTimeout(() => res.socket?.destroy(), 20));
    return;
  }
  if (served.slow) {
    const { chunk, intervalMs } = served.slow;
    let at = 0;
    const timer = setInterval(() => {
      if (res.destroyed) return clearInterval(timer);
      res.write(rest.subarray(at, at + chunk));
      at += chunk;
      if (at >= rest.length) {
        clearInterval(timer);
        res.end();
      }
    }, intervalMs);
    res.on('close', () => clearInterval(timer));
    return;
  }
  res.end(rest);
}

before(async () => {
  server = http.createServer(handle);
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise(resolve => server.close(resolve));
});

beforeEach(async () => {
  cacheDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'vit-lens-hub-'));
  serve({ 'config.json': config, 'preprocessor_config.json': preprocessor, 'model.safetensors': weights });
  delete process.env.HF_HUB_OFFLINE;
  delete process.env.HF_TOKEN;
  delete process.env.HUGGING_FACE_HUB_TOKEN;
});

afterEach(async () => {
  process.env = { ...savedEnv };
  await fsp.rm(cacheDir, { recursive: true, force: true });
});

const download = (opts: Parameters<typeof downloadHubModel>[1] = {}) =>
  downloadHubModel(ID, { cacheDir, endpoint, ...opts });

async function assertComplete(folder: string, files: Record<string, Buffer>): Promise<void> {
  for (const [name, body] of Object.entries(files)) {
    assert.ok((await fsp.readFile(path.join(folder, name))).equals(body), `${name} is byte-identical`);
    assert.equal(existsSync(path.join(folder, `${name}.incomplete`)), false, `${name}.incomplete is gone`);
  }
}

const requested = () => served.requests.map(r => r.file);

test('downloads config, preprocessor config and weights, reporting progress', { timeout: 10_000 }, async () => {
  const events: HubProgress[] = [];
  const folder = await download({ onProgress: p => events.push({ ...p }) });
  assert.equal(folder, path.join(cacheDir, 'hub', 'org--name', 'main'));
  assert.equal(folder, hubCacheFolder(ID, cacheDir));
  await assertComplete(folder, {
    'config.json': config,
    'preprocessor_config.json': preprocessor,
    'model.safetensors': weights,
  });
  assert.deepEqual(requested(), ['config.json', 'preprocessor_config.json', 'model.safetensors']);
  assert.ok(served.requests.every(r => r.range === undefined && r.authorization === undefined));
  const last = events.filter(e => e.file === 'model.safetensors').at(-1);
  assert.deepEqual(last, { file: 'model.safetensors', received: weights.length, total: weights.length });
});

test('a second call is served from the cache without any request', { timeout: 10_000 }, async () => {
  serve({ 'config.json': config, 'model.safetensors': weights }); // no preprocessor_config.json: optional
  const first = await download();
  assert.deepEqual(requested(), ['config.json', 'preprocessor_config.json', 'model.safetensors']);
  served.requests = [];
  assert.equal(await download(), first);
  assert.deepEqual(served.requests, [], 'neither complete files nor the known-missing optional file are asked for');
});

test(
  'two downloads of one model at once: one fetches, the other waits and uses the cache',
  { timeout: 10_000 },
  async () => {
    serve({ 'config.json': config, 'model.safetensors': weights }, { slow: { chunk: 50_000, intervalMs: 20 } });
    const [a, b] = await Promise.all([download(), download()]);
    assert.equal(a, b);
    await assertComplete(a, { 'config.json': config, 'model.safetensors': weights });
    assert.equal(requested().filter(f => f === 'model.safetensors').length, 1, 'the weights were fetched once');
    assert.ok(!existsSync(path.join(a, '.download.lock')), 'the lock is released');
  },
);

test('a lock left by a dead process is taken over', { timeout: 10_000 }, async () => {
  serve({ 'config.json': config, 'model.safetensors': weights });
  const folder = hubCacheFolder(ID, cacheDir);
  await fsp.mkdir(folder, { recursive: true });
  await fsp.writeFile(path.join(folder, '.download.lock'), '2147483646'); // no such pid
  await assertComplete(await download(), { 'config.json': config, 'model.safetensors': weights });
});

test('progress callbacks come at most every ~100 ms', { timeout: 10_000 }, async () => {
  served.slow = { chunk: 15_000, intervalMs: 20 }; // 20 chunks over ~400 ms
  const times: number[] = [];
  const events: HubProgress[] = [];
  const started = Date.now();
  await download({ files: ['model.safetensors'], onProgress: p => (events.push(p), times.push(Date.now())) });
  const elapsed = Date.now() - started;
  // One per 100 ms plus the first and the final one; 20 chunks means 20 events without throttling.
  assert.ok(
    events.length >= 2 && events.length <= Math.floor(elapsed / 100) + 2,
    `${events.length} events in ${elapsed} ms`,
  );
  for (let i = 1; i < times.length - 1; i++)
    assert.ok(times[i] - times[i - 1] >= 95, `gap ${times[i] - times[i - 1]} ms`);
  assert.equal(events.at(-1)!.received, weights.length);
});

test('resumes an existing .incomplete file with a Range request', { timeout: 10_000 }, async () => {
  const folder = hubCacheFolder(ID, cacheDir);
  await fsp.mkdir(folder, { recursive: true });
  await fsp.writeFile(path.join(folder, 'config.json'), config);
  await fsp.writeFile(path.join(folder, 'model.safetensors.incomplete'), weights.subarray(0, 1000));
  const events: HubProgress[] = [];
  await download({ onProgress: p => events.push(p) });
  assert.deepEqual(
    requested(),
    ['preprocessor_config.json', 'model.safetensors'],
    'complete config.json is not fetched again',
  );
  assert.equal(served.requests[1].range, 'bytes=1000-');
  await assertComplete(folder, { 'model.safetensors': weights });
  assert.ok(
    events.every(e => e.file !== 'model.safetensors' || e.received > 1000),
    'progress counts the resumed prefix',
  );
});

test('a server that ignores Range (200) restarts the file from zero', { timeout: 10_000 }, async () => {
  served.ignoreRange = true;
  const folder = hubCacheFolder(ID, cacheDir);
  await fsp.mkdir(folder, { recursive: true });
  await fsp.writeFile(
    path.join(folder, 'model.safetensors.incomplete'),
    Buffer.from('stale prefix, not the real bytes'),
  );
  await download({ files: ['model.safetensors'] });
  assert.ok(served.requests[0].range);
  await assertComplete(folder, { 'model.safetensors': weights });
});

test('an .incomplete file longer than the remote file (416) is restarted', { timeout: 10_000 }, async () => {
  const folder = hubCacheFolder(ID, cacheDir);
  await fsp.mkdir(folder, { recursive: true });
  await fsp.writeFile(path.join(folder, 'config.json.incomplete'), Buffer.alloc(config.length + 10));
  await download({ files: ['config.json'] });
  assert.deepEqual(
    served.requests.map(r => r.range),
    [`bytes=${config.length + 10}-`, undefined],
  );
  await assertComplete(folder, { 'config.json': config });
});

test('a dropped connection leaves .incomplete and the next call completes it', { timeout: 10_000 }, async () => {
  served.dropAfter = { file: 'model.safetensors', bytes: 100_000 };
  const folder = hubCacheFolder(ID, cacheDir);
  const partial = path.join(folder, 'model.safetensors.incomplete');
  await assert.rejects(download(), (e: Error) => {
    assert.match(e.message, /download of .*model\.safetensors was interrupted after \d+ bytes/);
    assert.ok(e.message.includes(`${partial} is kept`), e.message);
    return true;
  });
  const size = (await fsp.stat(partial)).size;
  assert.ok(size > 0 && size <= 100_000, `partial size ${size}`);
  assert.equal(existsSync(path.join(folder, 'model.safetensors')), false);

  served.requests = [];
  await download();
  assert.deepEqual(served.requests, [{ file: 'model.safetensors', range: `bytes=${size}-`, authorization: undefined }]);
  await assertComplete(folder, { 'config.json': config, 'model.safetensors': weights });
});

test('aborting via the signal keeps .incomplete for the next call', { timeout: 10_000 }, async () => {
  served.slow = { chunk: 10_000, intervalMs: 10 };
  const controller = new AbortController();
  const folder = hubCacheFolder(ID, cacheDir);
  const partial = path.join(folder, 'model.safetensors.incomplete');
  await assert.rejects(
    download({
      signal: controller.signal,
      onProgress: p => p.file === 'model.safetensors' && p.received >= 50_000 && controller.abort(),
    }),
    { name: 'AbortError' },
  );
  const size = (await fsp.stat(partial)).size;
  assert.ok(size >= 50_000 && size < weights.length, `partial size ${size}`);
  served.slow = undefined;
  served.requests = [];
  await download();
  assert.deepEqual(
    served.requests.map(r => r.range),
    [`bytes=${size}-`],
  );
  await assertComplete(folder, { 'model.safetensors': weights });
});

test('offline with an empty cache fails naming the cache path, without requests', { timeout: 10_000 }, async () => {
  const folder = hubCacheFolder(ID, cacheDir);
  const message = `Model "${ID}" is not in the cache (${folder}) and offline mode is on`;
  await assert.rejects(download({ offline: true }), { message });
  process.env.HF_HUB_OFFLINE = '1';
  await assert.rejects(download(), { message });
  assert.deepEqual(served.requests, []);
});

test('offline with a full cache works without requests', { timeout: 10_000 }, async () => {
  const folder = await download();
  served.requests = [];
  await fsp.rm(path.join(folder, 'preprocessor_config.json')); // optional: not needed offline
  assert.equal(await download({ offline: true }), folder);
  process.env.HF_HUB_OFFLINE = '1';
  assert.equal(await download(), folder);
  assert.deepEqual(served.requests, []);
});

test('falls back to onnx/model.onnx when the repo has no model.safetensors', { timeout: 10_000 }, async () => {
  const onnx = randomBytes(5000);
  serve({ 'config.json': config, 'onnx/model.onnx': onnx });
  const folder = await download();
  assert.deepEqual(requested(), ['config.json', 'preprocessor_config.json', 'model.safetensors', 'onnx/model.onnx']);
  await assertComplete(folder, { 'onnx/model.onnx': onnx });
  served.requests = [];
  await download({ offline: true });
  await download();
  assert.deepEqual(served.requests, []);
});

test('no weights on the hub (404) gives a clear error', { timeout: 10_000 }, async () => {
  serve({ 'config.json': config });
  await assert.rejects(download(), (e: Error) => {
    assert.match(
      e.message,
      /^Model "org\/name": none of model\.safetensors, onnx\/model\.onnx exist on the hub \(HTTP 404 for /,
    );
    assert.ok(e.message.includes(`${endpoint}/org/name/resolve/main/model.safetensors`), e.message);
    return true;
  });
  serve({});
  await fsp.rm(hubCacheFolder(ID, cacheDir), { recursive: true }); // drop the config.json the first call cached
  await assert.rejects(download(), /^Error: Model "org\/name": config\.json does not exist on the hub \(HTTP 404/);
});

test(
  'an unreachable endpoint names the URL and the cache, and suggests --offline / HF_ENDPOINT',
  { timeout: 10_000 },
  async () => {
    const closed = http.createServer();
    await new Promise<void>(resolve => closed.listen(0, '127.0.0.1', resolve));
    const deadEndpoint = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`;
    await new Promise(resolve => closed.close(resolve));
    await assert.rejects(downloadHubModel(ID, { cacheDir, endpoint: deadEndpoint }), (e: Error) => {
      assert.ok(
        e.message.includes(`cannot reach ${deadEndpoint}/org/name/resolve/main/config.json (ECONNREFUSED)`),
        e.message,
      );
      assert.ok(e.message.includes(hubCacheFolder(ID, cacheDir)), e.message);
      assert.match(e.message, /--offline/);
      assert.match(e.message, /HF_ENDPOINT/);
      return true;
    });
  },
);

test('HF_ENDPOINT and HF_TOKEN are honoured', { timeout: 10_000 }, async () => {
  process.env.HF_ENDPOINT = `${endpoint}/`;
  process.env.HF_TOKEN = 'hf_secret';
  assert.equal(hubEndpoint(), endpoint);
  await downloadHubModel(ID, { cacheDir, files: ['config.json'] });
  assert.deepEqual(served.requests, [{ file: 'config.json', range: undefined, authorization: 'Bearer hf_secret' }]);
});

test('isHubId and defaultCacheDir', () => {
  assert.equal(isHubId('google/vit-base-patch16-224'), true);
  assert.equal(isHubId('google/vit-base-patch16-224@refs/pr/3'), true);
  assert.equal(isHubId('Xenova/vit-base-patch16-224@main'), true);
  for (const s of ['vit.onnx', 'a/b/c', '../x', 'models/vit.npz', 'org/', '/abs/path', 'org/na me'])
    assert.equal(isHubId(s), false, s);
  assert.equal(isHubId(path.relative(process.cwd(), __dirname)), false, 'an existing local folder is not a hub id');

  process.env.VIT_LENS_CACHE = '/somewhere/cache';
  assert.equal(defaultCacheDir(), '/somewhere/cache');
  delete process.env.VIT_LENS_CACHE;
  process.env.XDG_CACHE_HOME = '/xdg';
  assert.equal(defaultCacheDir(), path.join('/xdg', 'vit-lens'));
  delete process.env.XDG_CACHE_HOME;
  assert.equal(defaultCacheDir(), path.join(os.homedir(), '.cache', 'vit-lens'));
  assert.equal(hubCacheFolder('a/b@refs/pr/1', '/c'), path.join('/c', 'hub', 'a--b', 'refs--pr--1'));
});

test(
  "hubWeightsSize (the extension's first-run question): the weights file the worker's download would fetch and its size, by HEAD",
  { timeout: 10_000 },
  async () => {
    assert.deepEqual(await hubWeightsSize(ID, { endpoint }), { file: 'model.safetensors', bytes: weights.length });
    assert.equal(formatSize(weights.length), '300.0 kB');
    // HEAD only: nothing lands in a cache, and a 404 for the safetensors falls back to the ONNX file.
    serve({ 'config.json': config, 'onnx/model.onnx': Buffer.alloc(1234) });
    assert.deepEqual(await hubWeightsSize(ID, { endpoint }), { file: 'onnx/model.onnx', bytes: 1234 });
    serve({ 'config.json': config });
    assert.equal(await hubWeightsSize(ID, { endpoint }), undefined);
    // No network: an error naming the URL, for the caller to say it is offline.
    const closed = http.createServer();
    await new Promise<void>(resolve => closed.listen(0, '127.0.0.1', resolve));
    const dead = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`;
    await new Promise(resolve => closed.close(resolve));
    await assert.rejects(
      hubWeightsSize(ID, { endpoint: dead }),
      /cannot reach http:\/\/127\.0\.0\.1:\d+\/org\/name\/resolve\/main\/model\.safetensors \(ECONNREFUSED\)/,
    );
  },
);
