/**
 * Input files named by someone else: only regular files are read (FIFOs and devices are refused at
 * once, folder scans skip them with a reason), and names that are not UTF-8 survive as their bytes.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { decodeImageFile } from '../../server/preprocess';
import { headerProblem } from '../../server/datasetScan';
import { listImages, SkippedFile } from '../../server/train/datasetFolder';
import { decodeFileName, displayPath, fsPath } from '../../server/util/fileNames';

const PHOTO = path.join(__dirname, '..', 'fixtures', 'photos', 'rocket.jpg');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-inputs-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('file names that are not UTF-8', () => {
  test('decode to lone surrogates and back to the same bytes; valid UTF-8 is untouched', () => {
    const cases: Buffer[] = [
      Buffer.from('caf\xe9.jpg', 'latin1'), // Latin-1 é
      Buffer.from([0xff, 0xfe, 0x2e, 0x70, 0x6e, 0x67]),
      Buffer.from([0xe2, 0x82, 0x2e]), // a truncated 3-byte sequence
      Buffer.from([0xed, 0xa0, 0x80]), // an encoded surrogate, which UTF-8 forbids
      Buffer.from([0xc0, 0xaf]), // an overlong '/'
      Buffer.from('naïve 🐱 \uFFFD.png', 'utf8'), // valid, including a real U+FFFD
    ];
    for (const bytes of cases) {
      const name = decodeFileName(bytes);
      const back = fsPath(name);
      assert.deepEqual(Buffer.isBuffer(back) ? back : Buffer.from(back, 'utf8'), bytes, bytes.toString('hex'));
    }
    assert.equal(decodeFileName(Buffer.from('naïve 🐱.png')), 'naïve 🐱.png');
    assert.equal(typeof fsPath('naïve 🐱.png'), 'string');
    assert.equal(displayPath(decodeFileName(Buffer.from('caf\xe9.jpg', 'latin1'))), 'caf\\xe9.jpg');
  });

  test('command-line arguments that are not UTF-8 are recovered as their bytes (from /proc/self/cmdline)', () => {
    const script = path.join(tmp, 'args.ts');
    fs.writeFileSync(
      script,
      `import { commandLineArgs, fsPath } from ${JSON.stringify(path.join(__dirname, '..', '..', 'server', 'util', 'fileNames'))};\n` +
        `console.log(JSON.stringify(commandLineArgs().map((a) => Buffer.from(fsPath(a)).toString('hex'))));\n`,
    );
    // bash's $'\\xe9' passes the raw byte, which Node alone would turn into U+FFFD.
    const out = execFileSync(
      '/bin/bash',
      ['-c', `exec "${process.execPath}" --import tsx "${script}" plain $'caf\\xe9.jpg' $'\\xff'`],
      { encoding: 'utf8' },
    );
    assert.deepEqual(JSON.parse(out), [
      Buffer.from('plain').toString('hex'),
      Buffer.from('caf\xe9.jpg', 'latin1').toString('hex'),
      'ff',
    ]);
  });

  test('an image named with Latin-1 bytes decodes, and folder listings keep its exact name', async () => {
    const dir = path.join(tmp, 'latin1');
    fs.mkdirSync(dir);
    const name = decodeFileName(Buffer.from('caf\xe9.jpg', 'latin1'));
    fs.copyFileSync(PHOTO, fsPath(path.join(dir, name)));
    const listed = await listImages(dir, [], new Set());
    assert.deepEqual(listed, [path.join(dir, name)]);
    const img = await decodeImageFile(listed[0]);
    assert.ok(img.width > 0 && img.height > 0);
    assert.equal(await headerProblem(listed[0]), undefined);
  });
});

describe('special files', { timeout: 20_000 }, () => {
  const dir = path.join(tmp, 'special');
  fs.mkdirSync(dir);
  execFileSync('mkfifo', [path.join(dir, 'pipe.png')]);
  fs.symlinkSync('/dev/zero', path.join(dir, 'zero.jpg'));
  fs.copyFileSync(PHOTO, path.join(dir, 'ok.jpg'));

  test('decoding a FIFO or a link to a device is refused at once, naming the file', async () => {
    await assert.rejects(
      decodeImageFile(path.join(dir, 'pipe.png')),
      /pipe\.png: is a FIFO \(named pipe\), not a regular file/,
    );
    await assert.rejects(decodeImageFile(path.join(dir, 'zero.jpg')), /zero\.jpg: is a device, not a regular file/);
  });

  test("the Fine-tune scan's header check refuses them too", async () => {
    assert.match((await headerProblem(path.join(dir, 'pipe.png'))) ?? '', /is a FIFO/);
    assert.match((await headerProblem(path.join(dir, 'zero.jpg'))) ?? '', /is a device/);
  });

  test('folder listings skip them with a reason', async () => {
    const skipped: SkippedFile[] = [];
    assert.deepEqual(await listImages(dir, skipped, new Set()), [path.join(dir, 'ok.jpg')]);
    assert.deepEqual(
      skipped.map(s => [path.basename(s.file), s.reason]),
      [
        ['pipe.png', 'not a regular file (a FIFO, device or socket); skipped'],
        ['zero.jpg', 'not a regular file (a FIFO, device or socket); skipped'],
      ],
    );
  });
});
