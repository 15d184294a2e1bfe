/**
 * Checkpoints over 2 GiB: Node's Buffer limit (one readFile of the whole file) and protobuf's 2 GB
 * message limit (one .onnx holding every weight) both stood in the way of ViT-H/14 (2.5 GB).
 * The first test hashes, reads and writes 2.5 GB (the cache's data file, with fsync): ~1.5–2 min and
 * ~2.6 GiB peak RSS on two cores shared with other work, and 2.5 GB of disk while it runs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'crypto';
import { promises as fsp } from 'fs';
import * as path from 'path';
import * as ort from 'onnxruntime-node';
import { Engine } from '../../server/engine';
import { buildVitOnnx, externalDataSize } from '../../server/model/onnxBuilder';
import { resolveModel } from '../../server/model/modelSource';
import { hashFileRemembered } from '../../server/util/hashFile';
import { randomWeights, TINY } from './tinyVit';
import { VIT_H14, writeSparseVitFolder } from './sparseCheckpoint';
import { tempDirs } from './tempDirs';

const IMAGE = path.join(__dirname, '..', '..', 'samples', 'fashion-mnist-test-0-ankle-boot.png');
const tempDir = tempDirs('large');

test(
  'a ViT-H/14-sized checkpoint (2.5 GB of zeros) loads, builds with external data and gives equal finite logits',
  { timeout: 240_000 },
  async () => {
    const dir = await tempDir();
    const modelDir = path.join(dir, 'vit-h14');
    await fsp.mkdir(modelDir);
    // ViT-H/14's every weight at 28 px instead of 224 (the position table is the only smaller tensor):
    // the >2 GiB path is the same, and a 224-px forward pass costs ~20 s on two shared cores.
    const size = await writeSparseVitFolder(modelDir, { ...VIT_H14, imageSize: 28 });
    assert.ok(size > 2 ** 31, `checkpoint is ${size} bytes, not over 2 GiB`);
    // A file changed in the last 2 s is hashed but its hash not remembered; let it settle so the second load skips hashing.
    await new Promise(r => setTimeout(r, 2100));
    const cacheDir = path.join(dir, 'cache');
    // What a build killed midway leaves (its pid is beyond any pid_max, so not running): the build removes it.
    const orphan = path.join(cacheDir, 'built', `0123abcd.onnx.data.${2 ** 30}.m0.tmp`);
    await fsp.mkdir(path.dirname(orphan), { recursive: true });
    await fsp.writeFile(orphan, 'partial weights');
    await fsp.utimes(orphan, new Date(Date.now() - 3_600_000), new Date(Date.now() - 3_600_000));

    const started = Date.now();
    const engine = new Engine({ cacheDir, provider: 'cpu' });
    const info = await engine.load(modelDir);
    const { results, failures } = await engine.classify([IMAGE], 3);
    const seconds = (Date.now() - started) / 1000;
    const peakRssGiB = process.resourceUsage().maxRSS / 2 ** 20;
    console.log(
      `ViT-H/14 (${(size / 1e9).toFixed(2)} GB): load + classify ${seconds.toFixed(1)} s, peak RSS ${peakRssGiB.toFixed(2)} GiB`,
    );
    assert.deepEqual(failures, []);
    const logits = results[0].logits;
    assert.equal(logits.length, 1000);
    assert.ok(logits.every(Number.isFinite), 'logits are finite');
    assert.ok(
      logits.every(v => v === logits[0]),
      `all-zero weights give equal logits, got ${logits.slice(0, 5).join(', ')}…`,
    );
    // The weights (2.5 GB) are held once while building; holding a second full copy would pass 5 GiB.
    assert.ok(peakRssGiB < 4.5, `peak RSS ${peakRssGiB.toFixed(2)} GiB`);

    // The cached graph is small, its weights sit beside it, and the next load reuses both without re-reading the checkpoint.
    const graph = (await fsp.stat(info.builtFile!)).size;
    assert.ok(graph < 2 ** 21, `built graph is ${graph} bytes`);
    assert.equal(
      (await fsp.stat(`${info.builtFile}.data`)).size,
      externalDataSize(await fsp.readFile(info.builtFile!)),
    );
    assert.equal((await fsp.readdir(path.join(cacheDir, 'hashes'))).length, 1, "the checkpoint's hash is remembered");
    const again = await resolveModel(modelDir, { cacheDir });
    assert.deepEqual([again.build?.reused, again.onnxFile], [true, info.builtFile]);
    assert.deepEqual(
      (await fsp.readdir(path.join(cacheDir, 'built'))).sort(),
      [path.basename(info.builtFile!), `${path.basename(info.builtFile!)}.data`],
      'graph and data only: no temp file, the orphan removed',
    );
  },
);

test('a graph built with external data gives the same outputs as the one-file build', async () => {
  const dir = await tempDir();
  const weights = randomWeights(TINY, 7);
  const file = path.join(dir, 'tiny.onnx');
  const graph = buildVitOnnx(TINY, weights, { externalData: { file: `${file}.data`, location: 'tiny.onnx.data' } });
  await fsp.writeFile(file, graph);
  // Every matrix goes out (aligned, so offsets are not back to back); only the small tensors stay inside.
  assert.ok(
    graph.byteLength < buildVitOnnx(TINY, weights).byteLength / 4,
    `graph with external data is ${graph.byteLength} bytes`,
  );
  assert.ok(externalDataSize(graph) > 64 * 1024 * 10);

  const pixels = new Float32Array(2 * 3 * 32 * 32).map((_, i) => Math.sin(i * 0.37));
  const input = { pixel_values: new ort.Tensor('float32', pixels, [2, 3, 32, 32]) };
  const fromFile = await ort.InferenceSession.create(file);
  const oneFile = await ort.InferenceSession.create(buildVitOnnx(TINY, weights));
  const [a, b] = [await fromFile.run(input, ['logits', 'features']), await oneFile.run(input, ['logits', 'features'])];
  for (const name of ['logits', 'features'])
    assert.deepEqual([...(a[name].data as Float32Array)], [...(b[name].data as Float32Array)], name);
  await Promise.all([fromFile.release(), oneFile.release()]);
});

test('the remembered hash is the content hash, and a file rewritten with its old size and mtime is hashed again', async () => {
  const dir = await tempDir();
  const file = path.join(dir, 'weights.bin');
  const memo = path.join(dir, 'memo');
  await fsp.writeFile(file, Buffer.alloc(1 << 20, 1));
  const sha = async () =>
    createHash('sha256')
      .update(await fsp.readFile(file))
      .digest('hex');
  // Whole seconds, so that setting it again restores the nanoseconds exactly.
  const mtime = Math.floor(Date.now() / 1000) - 3600;
  await fsp.utimes(file, mtime, mtime);

  // Just written: not remembered, since a change within the clock's tick would keep the same identity.
  assert.equal(await hashFileRemembered(file, memo), await sha());
  assert.deepEqual(await fsp.readdir(memo).catch(() => []), []);
  await new Promise(r => setTimeout(r, 2200));
  assert.equal(await hashFileRemembered(file, memo), await sha());
  assert.equal((await fsp.readdir(memo)).length, 1, 'a settled file is remembered');

  // Same size, mtime put back (as tar, rsync -t or cp -p would): only ctime says it changed.
  await fsp.writeFile(file, Buffer.alloc(1 << 20, 2));
  await fsp.utimes(file, mtime, mtime);
  const rewritten = await fsp.stat(file, { bigint: true });
  assert.deepEqual([rewritten.size, rewritten.mtimeNs], [BigInt(1 << 20), BigInt(mtime) * 1_000_000_000n]);
  assert.equal(await hashFileRemembered(file, memo), await sha(), 'the new content is hashed');
});
