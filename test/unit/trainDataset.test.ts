/** Bad datasets: clear errors for unusable ones, warnings and skipped-file entries otherwise; nothing crashes. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import { makeColorDataset } from '../fixtures/train/makeDataset';
import { DatasetError, scanDataset, stratifiedSplit } from '../../server/train/datasetFolder';
import { readRunInfo, TrainConfig } from '../../server/train/runFiles';
import { train, TrainingError } from '../../server/train/trainer';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'vit-lens-ds-'));
const opts = { valSplit: 0.2, seed: 0 };

test('missing, empty and single-class folders are clear errors naming the folder', async () => {
  await assert.rejects(
    scanDataset(path.join(tmp, 'nope'), opts),
    (e: Error) => e instanceof DatasetError && /nope: dataset folder does not exist/.test(e.message),
  );
  const empty = path.join(tmp, 'empty');
  await fs.mkdir(empty);
  await assert.rejects(
    scanDataset(empty, opts),
    (e: Error) => e instanceof DatasetError && e.message.includes(empty) && /no class folders/.test(e.message),
  );
  const one = path.join(tmp, 'one');
  await makeColorDataset(one, { classes: ['only'], perClass: 3 });
  await assert.rejects(scanDataset(one, opts), /only one class folder \("only"\)/);
  const noImages = path.join(tmp, 'noimages');
  await fs.mkdir(path.join(noImages, 'a'), { recursive: true });
  await fs.mkdir(path.join(noImages, 'b'), { recursive: true });
  await fs.writeFile(path.join(noImages, 'a', 'notes.txt'), 'hi');
  await assert.rejects(scanDataset(noImages, opts), /no images found/);
});

test('corrupt files, nested junk, a symlink loop, an empty class and a one-image class are skipped or warned about', async () => {
  const root = path.join(tmp, 'messy');
  await makeColorDataset(root, { classes: ['cat', 'dog'], perClass: 5 });
  await fs.writeFile(path.join(root, 'cat', 'broken.JPG'), 'not a jpeg at all');
  await fs.writeFile(path.join(root, 'cat', 'README.md'), '# junk');
  await fs.mkdir(path.join(root, 'dog', 'nested', 'deeper'), { recursive: true });
  await fs.copyFile(path.join(root, 'dog', 'img0.png'), path.join(root, 'dog', 'nested', 'deeper', 'UPPER.PNG'));
  await fs.symlink(path.join(root, 'dog'), path.join(root, 'dog', 'nested', 'loop'));
  await fs.symlink(path.join(root, 'missing-target'), path.join(root, 'cat', 'dangling.png'));
  await fs.mkdir(path.join(root, 'empty-class'));
  await makeColorDataset(path.join(tmp, 'single'), { classes: ['lonely'], perClass: 1 });
  await fs.rename(path.join(tmp, 'single', 'lonely'), path.join(root, 'lonely'));
  await fs.writeFile(path.join(root, '.DS_Store'), 'junk');

  const ds = await scanDataset(root, opts);
  assert.deepEqual(ds.classes, ['cat', 'dog', 'empty-class', 'lonely']);
  const files = [...ds.train, ...ds.val].map(s => path.relative(root, s.file)).sort();
  assert.ok(
    files.includes(path.join('dog', 'nested', 'deeper', 'UPPER.PNG')),
    'upper-case extension in a nested folder is an image of its class',
  );
  assert.ok(files.includes(path.join('cat', 'broken.JPG')), 'corrupt files are only found out when decoded');
  assert.equal(files.filter(f => f.includes('loop')).length, 0, 'the symlink loop is not followed');
  const reasons = ds.skipped.map(s => `${path.relative(root, s.file)}: ${s.reason}`).join('\n');
  assert.match(reasons, /README\.md: not an image/);
  assert.match(reasons, /dangling\.png: broken symbolic link/);
  assert.match(reasons, /loop: folder already visited/);
  assert.ok(ds.warnings.some(w => /"empty-class" has no images/.test(w)));
  assert.ok(ds.warnings.some(w => /"lonely" has only one image/.test(w)));

  // Training on it works; the corrupt file ends up in the report, not in a crash.
  const config: TrainConfig = {
    dataset: root,
    model: 'scratch:tiny',
    mode: 'full',
    lastK: 1,
    epochs: 1,
    batchSize: 4,
    accumulate: 1,
    lr: 1e-3,
    optimizer: 'sgd',
    weightDecay: 0,
    momentum: 0.9,
    warmupSteps: 1,
    clipNorm: 1,
    labelSmoothing: 0,
    augment: false,
    imageSize: [16, 16],
    patchSize: 8,
    valSplit: 0.2,
    seed: 0,
  };
  const run = path.join(tmp, 'messy-run');
  const info = await train({
    runDir: run,
    config,
    backend: 'wasm',
    scratchArch: { hiddenSize: 16, numLayers: 1, numHeads: 2, mlpSize: 32 },
  });
  assert.equal(info.status, 'finished');
  const report = JSON.parse(await fs.readFile(path.join(run, 'report.json'), 'utf8'));
  const broken = report.skipped.find((s: { file: string }) => s.file.endsWith('broken.JPG'));
  assert.ok(broken, 'broken.JPG is listed as skipped');
  assert.match(broken.reason, /broken\.JPG: not a readable image/);
  assert.ok(report.warnings.length >= 2);
});

test('stratified split keeps every class in training and is reproducible from the seed', () => {
  const samples = Array.from({ length: 30 }, (_, i) => ({ file: `f${String(i).padStart(2, '0')}`, label: i % 3 }));
  const a = stratifiedSplit(samples, 3, 0.2, 1);
  const b = stratifiedSplit(samples, 3, 0.2, 1);
  const c = stratifiedSplit(samples, 3, 0.2, 2);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a.val, c.val);
  for (let k = 0; k < 3; k++) assert.equal(a.val.filter(s => s.label === k).length, 2);
  assert.equal(a.train.length + a.val.length, 30);
});

test('a NaN/Inf loss stops the run with status "failed" and a reason', async () => {
  const root = path.join(tmp, 'nan');
  await makeColorDataset(root, { perClass: 4 });
  const config: TrainConfig = {
    dataset: root,
    model: 'scratch:tiny',
    mode: 'full',
    lastK: 1,
    epochs: 30,
    batchSize: 4,
    accumulate: 1,
    lr: 1e12,
    optimizer: 'sgd',
    weightDecay: 0,
    momentum: 0.9,
    warmupSteps: 0,
    clipNorm: 0,
    labelSmoothing: 0.1,
    augment: false,
    imageSize: [16, 16],
    patchSize: 8,
    valSplit: 0,
    seed: 0,
  };
  // Smoothing: the scratch head starts at zero (the paper's init), and without it the huge first step
  // separates these colours perfectly (loss 0, no gradient) before any weight overflows.
  const run = path.join(tmp, 'nan-run');
  await assert.rejects(
    train({
      runDir: run,
      config,
      backend: 'wasm',
      scratchArch: { hiddenSize: 16, numLayers: 1, numHeads: 2, mlpSize: 32 },
    }),
    (e: Error) => e instanceof TrainingError && /loss became (NaN|Infinity)/.test(e.message),
  );
  const info = await readRunInfo(run);
  assert.equal(info.status, 'failed');
  assert.match(info.reason ?? '', /loss became/);
});
