/**
 * The bad-input corpus: hostile or broken inputs against the built CLI (dist/cli.js; npm run build
 * first), one row each, every row checking the exit code, a phrase of the message, wall time and the
 * peak memory (RSS) of the CLI process.
 *
 * A row (type BadInput):
 *   name        what the input is
 *   make(dir)   builds the input inside `dir` (a fresh empty temp folder) and returns the CLI
 *               arguments; a name that is not UTF-8 is written with \udcXX escapes (nonUtf8())
 *   exit        the expected exit code
 *   stderr      a RegExp stderr must match (the phrase that names the file and the problem)
 *   stdout      optional RegExp stdout must match
 *   maxSeconds  wall-time limit; the process is killed at twice that and the row fails
 *   maxRssMb    limit on the CLI process's peak RSS, in MB (the built-in model alone takes ~110)
 *   env         optional extra environment
 * To add a case, append a row to ROWS; makers shared between rows are below the table.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import sharp from 'sharp';
import { fsPath } from '../../server/util/fileNames';
import type { BadInput as Row } from './badInput';
import { runCliMeasured } from './measuredCli';

interface BadInput extends Row {
  maxRssMb: number;
  env?: Record<string, string>;
}

const FIX = path.join(__dirname, '..', 'fixtures');
const PHOTO = path.join(FIX, 'photos', 'rocket.jpg');
const ONNX_WITH_DATA = path.join(FIX, 'onnx-init', 'timm-style-opset17.onnx'); // its initializers name this location:
const DATA_LOCATION = 'timm-style-opset17.onnx.data';

const ROWS: BadInput[] = [
  // ---- ONNX external data (server/formats/externalData.ts) ----
  {
    name: 'ONNX external data: a symlink to a file outside the model folder',
    make: dir => {
      fs.copyFileSync(`${ONNX_WITH_DATA}.data`, path.join(dir, 'secret.bin')); // the right bytes, in the wrong place
      return classifyWith(externalDataModel(dir, p => fs.symlinkSync(path.join(dir, 'secret.bin'), p)));
    },
    exit: 1,
    stderr:
      /external data .*model\/timm-style-opset17\.onnx\.data of tensor "[^"]+" is a link to .*secret\.bin, outside the model folder/,
    maxSeconds: 10,
    maxRssMb: 300,
  },
  {
    name: 'ONNX external data: a symlink to /etc/passwd',
    make: dir => classifyWith(externalDataModel(dir, p => fs.symlinkSync('/etc/passwd', p))),
    exit: 1,
    stderr: /of tensor "[^"]+" is a link to \/etc\/passwd, outside the model folder/,
    maxSeconds: 10,
    maxRssMb: 300,
  },
  {
    name: 'ONNX external data: a FIFO',
    make: dir => classifyWith(externalDataModel(dir, mkfifo)),
    exit: 1,
    stderr: /timm-style-opset17\.onnx\.data of tensor "[^"]+" is not a regular file \(a FIFO/,
    maxSeconds: 10,
    maxRssMb: 300,
  },

  // ---- image files (server/preprocess.ts readImageBytes) ----
  {
    name: 'image: a symlink zero.png to /dev/zero',
    make: dir => {
      fs.symlinkSync('/dev/zero', path.join(dir, 'zero.png'));
      return ['classify', path.join(dir, 'zero.png')];
    },
    exit: 1,
    stderr: /zero\.png: is a device, not a regular file; only regular files are read/,
    maxSeconds: 10,
    maxRssMb: 300,
  },
  {
    name: 'image: a FIFO named x.png',
    make: dir => ['classify', mkfifo(path.join(dir, 'x.png'))],
    exit: 1,
    stderr: /x\.png: is a FIFO \(named pipe\), not a regular file/,
    maxSeconds: 10,
    maxRssMb: 300,
  },
  {
    name: 'image: a 1.9 GB (sparse) file named huge.png',
    make: dir => {
      const fd = fs.openSync(path.join(dir, 'huge.png'), 'w');
      fs.ftruncateSync(fd, 1900 << 20);
      fs.closeSync(fd);
      return ['classify', path.join(dir, 'huge.png')];
    },
    exit: 1,
    stderr: /huge\.png: file is 1\.99 GB, more than any image within the 179-megapixel limit needs \(1\.50 GB/,
    maxSeconds: 10,
    maxRssMb: 300,
  },

  // ---- .npz zip bombs (server/formats/npz.ts) ----
  {
    name: '.npz zip bomb: 3 MB inflating to 3.2 GB (header says 3.2 GB too)',
    make: dir => classifyWith(zipBomb(path.join(dir, 'bomb.npz'), 'embedding/kernel.npy', [800, 1000, 1000], 3.2e9)),
    exit: 1,
    stderr:
      /bomb\.npz: array "embedding\/kernel" \(member "embedding\/kernel\.npy"\) declares 3\.20 GB uncompressed from 3\.1 MB, over the 1 GiB limit for one array; not inflated/,
    maxSeconds: 10,
    maxRssMb: 300,
  },
  {
    name: '.npz zip bomb: 600 KB inflating to 600 MB under a header for 6 floats',
    make: dir => classifyWith(zipBomb(path.join(dir, 'bomb.npz'), 'cls.npy', [2, 3], 600e6)),
    exit: 1,
    stderr:
      /bomb\.npz: array "cls": 600000000 data bytes but <f4 shape \(2, 3\) needs 24 \(sizes from the zip directory and the \.npy header; not inflated\)/,
    maxSeconds: 10,
    maxRssMb: 300,
  },

  // ---- file names that are not UTF-8 (server/util/fileNames.ts) ----
  {
    name: 'an image whose name is not UTF-8 (Latin-1 "café.jpg") is classified',
    make: dir => {
      const file = path.join(dir, nonUtf8('caf\xe9.jpg'));
      fs.copyFileSync(PHOTO, fsPath(file));
      return ['classify', file, '--json'];
    },
    exit: 0,
    stderr: /^$/,
    stdout: /"image":".*\/caf\\udce9\.jpg","predictions":\[\{"label"/,
    maxSeconds: 15,
    maxRssMb: 400,
  },
  {
    name: 'classify-folder: FIFO, /dev/zero link and a non-UTF-8 name among the images',
    make: dir => {
      const folder = path.join(dir, 'shirts');
      fs.mkdirSync(folder);
      fs.copyFileSync(PHOTO, path.join(folder, 'ok.jpg'));
      fs.copyFileSync(PHOTO, fsPath(path.join(folder, nonUtf8('\xfcber.jpg'))));
      mkfifo(path.join(folder, 'pipe.png'));
      fs.symlinkSync('/dev/zero', path.join(folder, 'zero.png'));
      return ['classify-folder', folder, '--out', path.join(dir, 'out')];
    },
    exit: 0,
    stderr: /classifying 2 \/ 2 images/,
    stdout: /classified 2 of 2 images/,
    maxSeconds: 15,
    maxRssMb: 400,
  },

  // ---- memory: decoding huge images (server/engine.ts decode budget) ----
  {
    name: 'classify-folder: 8 grey PNGs of 13000×13000 (190 KB each) decode within a megapixel budget',
    make: async dir => {
      await greyPngs(path.join(dir, 'big'), 8, 13000);
      return ['classify-folder', path.join(dir, 'big'), '--out', path.join(dir, 'out')];
    },
    exit: 0,
    stderr: /classifying 8 \/ 8 images/,
    stdout: /classified 8 of 8 images/,
    maxSeconds: 60,
    maxRssMb: 1400,
  },
  // ---- the model's own files (server/util/regularFile.ts readModelFile; hashFile; safetensors) ----
  ...(['model.safetensors', 'config.json', 'preprocessor_config.json'] as const).flatMap((name): BadInput[] => [
    {
      name: `model folder: ${name} is a FIFO`,
      make: dir => classifyWith(hfFolderWith(dir, name, mkfifo)),
      exit: 1,
      stderr: new RegExp(`hf/${name.replace('.', '\\.')}: is a FIFO \\(named pipe\\), not a regular file`),
      maxSeconds: 10,
      maxRssMb: 300,
    },
    {
      name: `model folder: ${name} is a link to /dev/zero`,
      make: dir => classifyWith(hfFolderWith(dir, name, p => fs.symlinkSync('/dev/zero', p))),
      exit: 1,
      stderr: new RegExp(`hf/${name.replace('.', '\\.')}: is a device, not a regular file`),
      maxSeconds: 10,
      maxRssMb: 300,
    },
  ]),
  {
    name: 'an .onnx model that is a FIFO',
    make: dir => classifyWith(mkfifo(path.join(dir, 'model.onnx'))),
    exit: 1,
    stderr: /model\.onnx: is a FIFO \(named pipe\), not a regular file/,
    maxSeconds: 10,
    maxRssMb: 300,
  },
  {
    name: '--labels naming a link to /dev/zero',
    make: dir => {
      fs.symlinkSync('/dev/zero', path.join(dir, 'labels.txt'));
      return [...classifyWith(path.join(FIX, 'vit-tiny', 'model.onnx')), '--labels', path.join(dir, 'labels.txt')];
    },
    exit: 1,
    stderr: /labels\.txt: is a device, not a regular file/,
    maxSeconds: 10,
    maxRssMb: 300,
  },
];

// ------------------------------------------------------------------------------------------------
// Makers
// ------------------------------------------------------------------------------------------------

const classifyWith = (model: string) => ['classify', PHOTO, '--model', model];

/** A named pipe at `file` (a read of it would block forever): its path. */
function mkfifo(file: string): string {
  execFileSync('mkfifo', [file]);
  return file;
}

/** A copy of the vit-tiny Hugging Face folder at DIR/hf whose `name` is replaced by what `place` makes. */
function hfFolderWith(dir: string, name: string, place: (p: string) => void): string {
  const folder = path.join(dir, 'hf');
  fs.cpSync(path.join(FIX, 'vit-tiny', 'hf'), folder, { recursive: true });
  fs.rmSync(path.join(folder, name));
  place(path.join(folder, name));
  return folder;
}

/** DIR/model/model.onnx whose initializers live in DATA_LOCATION, which `place` creates. */
function externalDataModel(dir: string, place: (dataPath: string) => void): string {
  const folder = path.join(dir, 'model');
  fs.mkdirSync(folder);
  fs.copyFileSync(ONNX_WITH_DATA, path.join(folder, 'model.onnx'));
  place(path.join(folder, DATA_LOCATION));
  return path.join(folder, 'model.onnx');
}

/** A name with the Latin-1 bytes of `latin1` (0x80–0xff are not UTF-8 on their own), in fileNames' escaping. */
function nonUtf8(latin1: string): string {
  return latin1.replace(/[\x80-\xff]/g, c => String.fromCharCode(0xdc00 + c.charCodeAt(0)));
}

/**
 * A one-member .npz whose member is a float32 .npy header for `shape` followed by `zeroBytes` zero
 * bytes, deflated. Built from one deflated 32 MiB block of zeros repeated (each block is flushed,
 * so copies can follow one another), so 3.2 GB takes a moment instead of half a minute of zlib. The
 * CRC is left 0: it can only be checked after inflating everything, which is what must not happen.
 */
function zipBomb(file: string, member: string, shape: number[], zeroBytes: number): string {
  const dict = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  const padded = dict.padEnd(Math.ceil((dict.length + 11) / 64) * 64 - 11, ' ') + '\n';
  const npyHeader = Buffer.concat([
    Buffer.from('\x93NUMPY\x01\x00', 'latin1'),
    Buffer.from(Uint16Array.of(padded.length).buffer),
    Buffer.from(padded, 'latin1'),
  ]);
  const flush = { level: 9, finishFlush: zlib.constants.Z_SYNC_FLUSH };
  const block = 32 << 20;
  const parts = [zlib.deflateRawSync(npyHeader, flush)];
  const full = zlib.deflateRawSync(Buffer.alloc(block), flush);
  for (let left = zeroBytes; left > 0; left -= block)
    parts.push(left >= block ? full : zlib.deflateRawSync(Buffer.alloc(left), flush));
  parts.push(Buffer.from([0x03, 0x00])); // final empty block
  const data = Buffer.concat(parts);
  const size = npyHeader.length + zeroBytes;
  assert.ok(size < 2 ** 32, 'no zip64 needed');
  const name = Buffer.from(member);
  const local = Buffer.alloc(30);
  local.writeUInt32LE(0x04034b50, 0);
  local.writeUInt16LE(20, 4);
  local.writeUInt16LE(8, 8); // deflate
  local.writeUInt32LE(data.length, 18);
  local.writeUInt32LE(size, 22);
  local.writeUInt16LE(name.length, 26);
  const central = Buffer.alloc(46);
  central.writeUInt32LE(0x02014b50, 0);
  central.writeUInt16LE(20, 4);
  central.writeUInt16LE(20, 6);
  central.writeUInt16LE(8, 10);
  central.writeUInt32LE(data.length, 20);
  central.writeUInt32LE(size, 24);
  central.writeUInt16LE(name.length, 28);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(1, 8);
  end.writeUInt16LE(1, 10);
  end.writeUInt32LE(central.length + name.length, 12);
  end.writeUInt32LE(local.length + name.length + data.length, 16);
  fs.writeFileSync(file, Buffer.concat([local, name, data, central, name, end]));
  return file;
}

/** `count` solid grey PNGs of side×side pixels in `folder` (one encoded, then copied). */
async function greyPngs(folder: string, count: number, side: number): Promise<void> {
  fs.mkdirSync(folder, { recursive: true });
  const first = path.join(folder, 'grey-0.png');
  await sharp({
    create: { width: side, height: side, channels: 3, background: { r: 128, g: 128, b: 128 } },
    limitInputPixels: false,
  })
    .toColourspace('b-w')
    .png({ compressionLevel: 9 })
    .toFile(first);
  for (let i = 1; i < count; i++) fs.copyFileSync(first, path.join(folder, `grey-${i}.png`));
}

// ------------------------------------------------------------------------------------------------

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-bad-'));
const cache = path.join(tmp, 'cache');
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

for (const [i, row] of ROWS.entries()) {
  test(row.name, { timeout: (4 * row.maxSeconds + 60) * 1000 }, async () => {
    const dir = path.join(tmp, `case-${i}`);
    fs.mkdirSync(dir);
    try {
      const args = await row.make(dir);
      const r = await runCliMeasured(args, {
        env: {
          VIT_LENS_CACHE: cache,
          VIT_LENS_MODEL: undefined,
          HF_HUB_OFFLINE: '1',
          VIT_LENS_DECODE_BUDGET_MP: undefined,
          ...row.env,
        },
        killAfterS: 2 * row.maxSeconds,
      });
      const seen = `exit ${r.code} after ${r.seconds.toFixed(1)} s, peak RSS ${r.maxRssMb.toFixed(0)} MB${r.timedOut ? ' (killed: timed out)' : ''}\nstderr: ${r.stderr.slice(0, 2000)}\nstdout: ${r.stdout.slice(0, 500)}`;
      assert.ok(!r.timedOut, seen);
      assert.equal(r.code, row.exit, seen);
      assert.match(r.stderr, row.stderr, seen);
      if (row.stdout) assert.match(r.stdout, row.stdout, seen);
      assert.doesNotMatch(r.stderr, /\n\s+at .*:\d+:\d+\)?\n/, `no stack trace\n${seen}`);
      assert.ok(r.seconds <= row.maxSeconds, `took ${r.seconds.toFixed(1)} s, limit ${row.maxSeconds} s\n${seen}`);
      assert.ok(r.maxRssMb <= row.maxRssMb, `peak RSS ${r.maxRssMb.toFixed(0)} MB, limit ${row.maxRssMb} MB\n${seen}`);
      console.log(`  ${row.name}: ${seen.split('\n')[0]}`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
}
