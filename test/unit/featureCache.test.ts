/**
 * FeatureCache finds an image's entry without re-reading it when its path, size and mtime are
 * unchanged (the hash index), and hashes it again when they change.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { Sample } from '../../server/train/datasetFolder';
import { FeatureCache, INDEX_FILE } from '../../server/train/featureCache';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-feature-cache-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A "backbone" whose one feature is the file's first byte, so a stale entry is visible. */
async function build(samples: Sample[]) {
  const built = await FeatureCache.build(samples, {
    cacheDir: path.join(tmp, 'cache'),
    key: 'k',
    size: 1,
    batchSize: 4,
    pixelsPerSample: 1,
    loader: async s => Float32Array.of(fs.readFileSync(s.file)[0]),
    produce: async pixels => pixels.slice(),
  });
  const values = await Promise.all(built.kept.map(async s => (await built.cache.load(s))[0]));
  return { ...built, values };
}

test('unchanged path, size and mtime: the indexed hash is used; a new mtime or size hashes again', async () => {
  const a = path.join(tmp, 'a.bin');
  const b = path.join(tmp, 'b.bin');
  fs.writeFileSync(a, Buffer.of(1, 9));
  fs.writeFileSync(b, Buffer.of(2, 9));
  // Whole seconds: utimes takes a double and would round a nanosecond mtime.
  const mtime = 1_700_000_000;
  fs.utimesSync(a, mtime, mtime);
  const samples = [a, b].map(file => ({ file, label: 0 }));
  const first = await build(samples);
  assert.deepEqual([first.computed, ...first.values], [2, 1, 2]);
  assert.ok(fs.existsSync(path.join(tmp, 'cache', 'k', INDEX_FILE)));
  assert.deepEqual([(await build(samples)).computed], [0]);

  // Same size and mtime, new content: the documented limit — the old entry is kept, so the file was not read.
  fs.writeFileSync(a, Buffer.of(7, 9));
  fs.utimesSync(a, mtime, mtime);
  const stale = await build(samples);
  assert.deepEqual([stale.computed, ...stale.values], [0, 1, 2]);

  // A new mtime: hashed again, new content → new entry.
  fs.utimesSync(a, mtime, mtime + 5);
  const fresh = await build(samples);
  assert.deepEqual([fresh.computed, ...fresh.values], [1, 7, 2]);

  // A new size: hashed again; content equal to b's → b's entry (same hash), nothing computed.
  fs.writeFileSync(a, Buffer.of(2, 9));
  const same = await build(samples);
  assert.deepEqual([same.computed, ...same.values], [0, 2, 2]);
  assert.equal(same.cache.contentHash(same.kept[0]), same.cache.contentHash(same.kept[1]));
});

test('a torn index file is ignored and rewritten', async () => {
  const c = path.join(tmp, 'c.bin');
  fs.writeFileSync(c, Buffer.of(3));
  const index = path.join(tmp, 'cache', 'k', INDEX_FILE);
  fs.mkdirSync(path.dirname(index), { recursive: true });
  fs.writeFileSync(index, '{"');
  const r = await build([{ file: c, label: 0 }]);
  assert.deepEqual(r.values, [3]);
  assert.equal(JSON.parse(fs.readFileSync(index, 'utf8'))[c][1], r.cache.contentHash(r.kept[0]));
});
