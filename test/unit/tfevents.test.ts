/**
 * TensorBoard event-file reading, checked against files written by scripts/make_tfevents_fixtures.py
 * (google.protobuf messages with tensorboard's field numbers + its own TFRecord framing; the
 * `tensorboard` package is not installed, so torch's SummaryWriter could not be used). The expected
 * scalars come from the same script (expected.json), so the test needs no Python.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp, readFileSync } from 'fs';
import * as os from 'os';
import * as path from 'path';
import { crc32c, frameRecord, maskedCrc32c, scanRecords } from '../../server/tfevents/tfrecord';
import { EventDecoder } from '../../server/tfevents/events';
import { RunScalar, TfEventsFolder, TfEventsProblem, formatProblem } from '../../server/tfevents/watcher';

const FIX = path.join(__dirname, '..', 'fixtures', 'tfevents');
interface Expected {
  run: string;
  file: string;
  tag: string;
  step: number;
  wallTime: number;
  value: number;
}
const EXPECTED = JSON.parse(readFileSync(path.join(FIX, 'expected.json'), 'utf8')) as {
  truncated: { file: string; completeBytes: number; size: number; missingTailHex: string; missingScalar: Expected };
  scalars: Expected[];
};
const MAIN = 'run_a/events.out.tfevents.1700000000.host.1.0';
const LIVE = EXPECTED.truncated.file;

let tmp = '';
before(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'vitlens-tfevents-'));
});
after(async () => {
  await fsp.rm(tmp, { recursive: true, force: true });
});

const key = (s: { file: string; tag: string; step: number }) => `${s.file}|${s.tag}|${s.step}`;

function assertSameScalars(got: RunScalar[], want: Expected[]): void {
  assert.equal(got.length, want.length, `scalar count: got ${got.length}, want ${want.length}`);
  const byKey = new Map(got.map(s => [key(s), s]));
  assert.equal(byKey.size, got.length, 'duplicate scalars');
  for (const w of want) {
    const g = byKey.get(key(w));
    assert.ok(g, `missing ${key(w)}`);
    assert.equal(g.run, w.run, key(w));
    assert.equal(g.value, w.value, `${key(w)} value`); // exact: both sides are the same float32/float64
    assert.equal(g.wallTime, w.wallTime, `${key(w)} wall time`);
  }
}

test('crc32c matches the standard check value and TFRecord framing round-trips', () => {
  assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
  const a = frameRecord(Buffer.from('hello')),
    b = frameRecord(Buffer.alloc(0));
  const scan = scanRecords(Buffer.concat([a, b, a.subarray(0, 7)]), 100);
  assert.deepEqual(
    scan.records.map(r => [r.offset, r.data.toString()]),
    [
      [100, 'hello'],
      [100 + a.length, ''],
    ],
  );
  assert.equal(scan.nextOffset, 100 + a.length + b.length);
  assert.deepEqual(scan.problems, []);
});

test('the Python-written file frames the first record as file_version brain.Event:2', () => {
  const buf = readFileSync(path.join(FIX, MAIN));
  const scan = scanRecords(buf);
  assert.deepEqual(scan.problems, []);
  assert.equal(scan.nextOffset, buf.length);
  const first = new EventDecoder().decode(scan.records[0].data);
  assert.equal(first.fileVersion, 'brain.Event:2');
  assert.equal(first.wallTime, 1700000000);
  assert.deepEqual(first.scalars, []);
});

test('every scalar the script wrote is read back exactly: both styles, both runs, truncated tail', async () => {
  const folder = new TfEventsFolder(FIX);
  const r = await folder.poll();
  assert.deepEqual(r.problems, []);
  assertSameScalars(r.scalars, EXPECTED.scalars);
  assert.deepEqual(folder.runs, ['live', 'run_a', 'run_a/rank1']);
  // Spot checks of each encoding (so a regenerated expected.json cannot hide a lost style).
  const get = (tag: string, step: number, run = 'run_a') =>
    r.scalars.find(s => s.run === run && s.tag === tag && s.step === step)?.value;
  assert.equal(get('train/loss', 0), Math.fround(2.6)); // simple_value
  assert.equal(get('train/loss', 11), 0); // simple_value 0.0 is present, not dropped
  assert.equal(get('eval/accuracy', 0), Math.fround(0.1)); // tensor float_val with metadata
  assert.equal(get('eval/accuracy', 3), Math.fround(0.1 + 0.24)); // tensor float_val, metadata only on first value
  assert.equal(get('eval/loss_f64', 3), 1 / 6); // tensor double_val
  assert.equal(get('eval/accuracy', 10), 0.875); // tensor_content float32
  assert.equal(get('eval/top5', 10), 0.9876543210123); // tensor_content float64
  assert.equal(get('train/big_step', 2 ** 40), -1.5); // int64 step
  assert.equal(get('train/lr', 5, 'run_a/rank1'), Math.fround(5e-4));
  // Image and histogram summaries are ignored.
  assert.ok(!r.scalars.some(s => s.tag === 'samples/image' || s.tag === 'weights/hist'));
  const tags = new Set(r.scalars.filter(s => s.run === 'run_a').map(s => s.tag));
  for (const t of ['train/loss', 'train/lr', 'eval/accuracy']) assert.ok(tags.has(t), t);
  // Nothing new on a second poll.
  const again = await folder.poll();
  assert.deepEqual(again, { scalars: [], problems: [] });
});

test('live reading: a file written in two parts yields each scalar exactly once', async () => {
  const dir = path.join(tmp, 'live');
  const sub = path.join(dir, 'rank0');
  await fsp.mkdir(sub, { recursive: true });
  const full = readFileSync(path.join(FIX, MAIN));
  const records = scanRecords(full).records;
  // Cut in the middle of the 6th record's data.
  const cut = records[5].offset + 12 + Math.floor(records[5].data.length / 2);
  const file = path.join(sub, 'events.out.tfevents.1.host.9.0');
  await fsp.writeFile(file, full.subarray(0, cut));

  const folder = new TfEventsFolder(dir);
  const want = EXPECTED.scalars
    .filter(s => s.file === MAIN)
    .map(s => ({ ...s, run: 'rank0', file: 'rank0/events.out.tfevents.1.host.9.0' }));
  const decoder = new EventDecoder();
  const firstCount = records.slice(0, 5).reduce((n, r) => n + decoder.decode(r.data).scalars.length, 0);

  const p1 = await folder.poll();
  assert.deepEqual(p1.problems, []);
  assert.equal(p1.scalars.length, firstCount);
  assert.ok(firstCount > 0);
  assert.deepEqual((await folder.poll()).scalars, [], 'nothing new while the tail is incomplete');

  await fsp.appendFile(file, full.subarray(cut));
  const p2 = await folder.poll();
  assert.deepEqual(p2.problems, []);
  assertSameScalars([...p1.scalars, ...p2.scalars], want);
  assert.deepEqual(p2.scalars, (await new TfEventsFolder(dir).poll()).scalars.slice(firstCount));
});

test('the fixture with a truncated last record resumes when the writer finishes it', async () => {
  const dir = path.join(tmp, 'resume');
  await fsp.mkdir(dir);
  const file = path.join(dir, 'events.out.tfevents.1700000100.host.3.0');
  await fsp.copyFile(path.join(FIX, LIVE), file);
  const folder = new TfEventsFolder(dir);
  const p1 = await folder.poll();
  assert.deepEqual(p1.problems, []);
  assert.equal(p1.scalars.length, EXPECTED.scalars.filter(s => s.file === LIVE).length);
  assert.equal((await fsp.stat(file)).size, EXPECTED.truncated.size);
  // The writer finishes the cut record (the script saved the bytes it never wrote).
  await fsp.appendFile(file, Buffer.from(EXPECTED.truncated.missingTailHex, 'hex'));
  const p2 = await folder.poll();
  assert.deepEqual(p2.problems, []);
  // Copied to the root of the watched folder, so the run is '.' and the file is just its name.
  assertSameScalars(p2.scalars, [{ ...EXPECTED.truncated.missingScalar, run: '.', file: path.basename(file) }]);
  assert.deepEqual(await folder.poll(), { scalars: [], problems: [] });
});

test('a corrupted data byte is reported with file and offset; the other scalars still arrive', async () => {
  const dir = path.join(tmp, 'corrupt');
  await fsp.mkdir(path.join(dir, 'bad'), { recursive: true });
  await fsp.mkdir(path.join(dir, 'good'), { recursive: true });
  const full = Buffer.from(readFileSync(path.join(FIX, MAIN)));
  const records = scanRecords(full).records;
  const victim = records[3];
  const lostCount = new EventDecoder().decode(victim.data).scalars.length; // eval/accuracy step 0 (decoded before corrupting)
  assert.equal(lostCount, 1);
  full[victim.offset + 12 + 2] ^= 0xff;
  const badFile = path.join(dir, 'bad', 'events.out.tfevents.2.host.1.0');
  await fsp.writeFile(badFile, full);
  await fsp.copyFile(
    path.join(FIX, 'run_a/rank1/events.out.tfevents.1700000000.host.2.0'),
    path.join(dir, 'good', 'events.out.tfevents.3.host.2.0'),
  );

  const folder = new TfEventsFolder(dir);
  const r = await folder.poll(); // must not throw
  assert.equal(r.problems.length, 1);
  const p = r.problems[0];
  assert.equal(p.file, badFile);
  assert.equal(p.offset, victim.offset);
  assert.match(p.message, /CRC/);
  assert.match(
    formatProblem(p),
    new RegExp(`events\\.out\\.tfevents\\.2\\.host\\.1\\.0 at byte ${victim.offset}: .*CRC`),
  );
  const wantBad = EXPECTED.scalars.filter(s => s.file === MAIN).length - lostCount;
  assert.equal(r.scalars.filter(s => s.run === 'bad').length, wantBad);
  assert.equal(
    r.scalars.filter(s => s.run === 'good').length,
    EXPECTED.scalars.filter(s => s.run === 'run_a/rank1').length,
  );
  // eval/accuracy lost its only metadata-carrying record, yet its later tensor values are still read.
  assert.equal(r.scalars.filter(s => s.run === 'bad' && s.tag === 'eval/accuracy').length, 4);
  // Earlier scalars (before the bad record) are there, in order.
  assert.equal(r.scalars.find(s => s.run === 'bad')?.tag, 'train/loss');
  // The problem is reported once, not on every poll.
  assert.deepEqual(await folder.poll(), { scalars: [], problems: [] });
});

test('a corrupted length header stops that file only, naming it; a missing root is not an error', async () => {
  const dir = path.join(tmp, 'badheader');
  await fsp.mkdir(dir);
  const full = Buffer.from(readFileSync(path.join(FIX, MAIN)));
  const records = scanRecords(full).records;
  full[records[2].offset] ^= 0x01;
  const f = path.join(dir, 'events.out.tfevents.4.host.1.0');
  await fsp.writeFile(f, full);
  const r = await new TfEventsFolder(dir).poll();
  assert.equal(r.problems.length, 1);
  assert.equal(r.problems[0].file, f);
  assert.equal(r.problems[0].offset, records[2].offset);
  assert.match(r.problems[0].message, /length CRC/);
  assert.deepEqual(
    r.scalars.map(x => [x.tag, x.step]),
    [['train/loss', 0]],
  ); // record 0 is file_version
  assert.deepEqual(await new TfEventsFolder(path.join(tmp, 'nope')).poll(), { scalars: [], problems: [] });
});

test('watch() delivers batches and stops after dispose()', async () => {
  const dir = path.join(tmp, 'watch');
  await fsp.mkdir(dir);
  const src = readFileSync(path.join(FIX, 'run_a/rank1/events.out.tfevents.1700000000.host.2.0'));
  const file = path.join(dir, 'events.out.tfevents.5.host.1.0');
  const recs = scanRecords(src).records;
  const half = recs[4].offset;
  await fsp.writeFile(file, src.subarray(0, half));
  const got: RunScalar[] = [];
  const folder = new TfEventsFolder(dir);
  const w = folder.watch(s => got.push(...s), 20);
  const until = async (cond: () => boolean) => {
    for (let i = 0; i < 100 && !cond(); i++) await new Promise(r => setTimeout(r, 10));
  };
  await until(() => got.length > 0);
  const n1 = got.length;
  assert.ok(n1 > 0);
  await fsp.appendFile(file, src.subarray(half));
  const total = EXPECTED.scalars.filter(s => s.run === 'run_a/rank1').length;
  await until(() => got.length === total);
  assert.equal(got.length, total);
  w.dispose();
  await fsp.appendFile(file, src.subarray(recs[1].offset, recs[2].offset));
  await new Promise(r => setTimeout(r, 80));
  assert.equal(got.length, total, 'no delivery after dispose');
});

/** An Event whose file_version (field 3) is `n` bytes long: a valid record of any size. */
function bigEvent(n: number): Buffer {
  const len: number[] = [];
  for (let v = n; ; v = Math.floor(v / 128)) {
    if (v < 128) {
      len.push(v);
      break;
    }
    len.push((v % 128) | 0x80);
  }
  return Buffer.concat([Buffer.from([0x1a, ...len]), Buffer.alloc(n, 0x78)]);
}

test("a valid 70 MB record (over the reader's per-read limit) is reported with file and offset and skipped; later scalars arrive", async () => {
  const dir = path.join(tmp, 'huge');
  await fsp.mkdir(dir);
  const full = readFileSync(path.join(FIX, MAIN));
  const records = scanRecords(full).records;
  const at = records[3].offset;
  const huge = frameRecord(bigEvent(70 << 20));
  assert.equal(scanRecords(huge).records.length, 1, 'the big record is well framed');
  const file = path.join(dir, 'events.out.tfevents.6.host.1.0');
  await fsp.writeFile(file, Buffer.concat([full.subarray(0, at), huge, full.subarray(at)]));
  const folder = new TfEventsFolder(dir);
  const got: RunScalar[] = [];
  const problems: TfEventsProblem[] = [];
  // Each poll reads at most 64 MB; a few polls must get through the whole file.
  for (let i = 0; i < 4; i++) {
    const r = await folder.poll();
    got.push(...r.scalars);
    problems.push(...r.problems);
  }
  assert.equal(problems.length, 1, JSON.stringify(problems));
  assert.equal(problems[0].file, file);
  assert.equal(problems[0].offset, at);
  assert.match(
    formatProblem(problems[0]),
    new RegExp(`at byte ${at}: record of ${huge.length - 16} bytes is larger than the reader's limit`),
  );
  assertSameScalars(
    got,
    EXPECTED.scalars.filter(s => s.file === MAIN).map(s => ({ ...s, run: '.', file: path.basename(file) })),
  );
});

test('a record declaring 900 MB is reported with file and offset at once, not waited for silently', async () => {
  const dir = path.join(tmp, 'declared');
  await fsp.mkdir(dir);
  const full = readFileSync(path.join(FIX, MAIN));
  const header = Buffer.alloc(12);
  header.writeBigUInt64LE(900_000_000n, 0);
  header.writeUInt32LE(maskedCrc32c(header, 0, 8), 8);
  const file = path.join(dir, 'events.out.tfevents.7.host.1.0');
  await fsp.writeFile(file, Buffer.concat([full, header, Buffer.alloc(1000, 7)]));
  const folder = new TfEventsFolder(dir);
  const r = await folder.poll();
  assert.equal(r.problems.length, 1, JSON.stringify(r.problems));
  assert.equal(r.problems[0].file, file);
  assert.equal(r.problems[0].offset, full.length);
  assert.match(r.problems[0].message, /record of 900000000 bytes is larger than the reader's limit/);
  assert.equal(r.scalars.length, EXPECTED.scalars.filter(s => s.file === MAIN).length);
  assert.deepEqual(await folder.poll(), { scalars: [], problems: [] }, 'reported once');
});
