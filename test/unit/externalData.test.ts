/**
 * ONNX external data is read only from regular files inside the model folder, after resolving
 * links, and only when they hold the tensor's byte range: for both readers of external data, the
 * engine (attention tap, which inlines it for ONNX Runtime) and the trainer's ONNX INIT.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { tapAttention } from '../../server/model/attentionTap';
import { loadOnnxWeights } from '../../server/formats/onnxWeights';

const FIX = path.join(__dirname, '..', 'fixtures', 'onnx-init');
const MODEL = 'timm-style-opset17.onnx';
const DATA = `${MODEL}.data`; // the location its initializers name
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-extdata-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

let n = 0;
/** A model folder holding the .onnx and, as its data file, whatever `place` puts at the given path. */
function modelFolder(place: (dataPath: string) => void): { dir: string; file: string } {
  const dir = path.join(tmp, `m${n++}`);
  fs.mkdirSync(dir);
  fs.copyFileSync(path.join(FIX, MODEL), path.join(dir, MODEL));
  place(path.join(dir, DATA));
  return { dir, file: path.join(dir, MODEL) };
}

const readers: [string, (m: { dir: string; file: string }) => Promise<unknown>][] = [
  ['attention tap (classify/explain)', async m => tapAttention(fs.readFileSync(m.file), m.dir)],
  ['ONNX INIT weights (train)', m => loadOnnxWeights(m.file)],
];

for (const [what, read] of readers) {
  describe(what, { timeout: 20_000 }, () => {
    test('a regular data file, and a link to one inside the folder, are read', async () => {
      await read(modelFolder(p => fs.copyFileSync(path.join(FIX, DATA), p)));
      await read(
        modelFolder(p => {
          fs.mkdirSync(path.join(path.dirname(p), 'weights'));
          fs.copyFileSync(path.join(FIX, DATA), path.join(path.dirname(p), 'weights', 'real.bin'));
          fs.symlinkSync(path.join('weights', 'real.bin'), p);
        }),
      );
    });

    test('a symlink to a file outside the model folder is refused, naming the tensor, the link and its target', async () => {
      const outside = path.join(tmp, `outside-${n}.bin`);
      fs.copyFileSync(path.join(FIX, DATA), outside); // the right bytes: only the location is wrong
      const m = modelFolder(p => fs.symlinkSync(outside, p));
      await assert.rejects(read(m), (e: Error) => {
        assert.match(e.message, /tensor "[^"]+"/);
        assert.ok(
          e.message.includes(path.join(m.dir, DATA)) && e.message.includes(fs.realpathSync(outside)),
          e.message,
        );
        assert.match(e.message, /outside the model folder/);
        return true;
      });
      await assert.rejects(
        read(modelFolder(p => fs.symlinkSync('/etc/passwd', p))),
        /is a link to \/etc\/passwd, outside the model folder/,
      );
    });

    test('a FIFO, a device and a folder are refused at once, not read', async () => {
      const fifo = modelFolder(p => execFileSync('mkfifo', [p]));
      await assert.rejects(
        read(fifo),
        /timm-style-opset17\.onnx\.data of tensor "[^"]+" is not a regular file \(a FIFO/,
      );
      // /dev/zero is outside the folder; a device inside it is refused for its kind.
      await assert.rejects(read(modelFolder(p => fs.symlinkSync('/dev/zero', p))), /outside the model folder/);
      await assert.rejects(read(modelFolder(p => fs.mkdirSync(p))), /is not a regular file \(a folder\)/);
    });

    test('a data file too short for the tensor is refused with the byte range and the file size', async () => {
      const m = modelFolder(p => fs.writeFileSync(p, fs.readFileSync(path.join(FIX, DATA)).subarray(0, 1000)));
      await assert.rejects(
        read(m),
        /tensor "[^"]+" needs bytes \d+–\d+ of .*timm-style-opset17\.onnx\.data, but it has only 1000 bytes/,
      );
    });
  });
}
