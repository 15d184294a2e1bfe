/**
 * vitLens/classifyFolder over the built worker (dist/worker.js) with the built-in model, on an
 * ImageFolder made from samples/: every image once (upper-case extensions, nested folders; hidden
 * files and a symlink loop skipped), the same top-1 as vitLens/classify, a corrupt file in
 * `failures`, a CSV that Python's csv module reads back as the JSON, progress, explain
 * interleaving between batches, and cancellation leaving partial files. Also the CLI form.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  CancellationTokenSource,
  createMessageConnection,
  MessageConnection,
  ProgressType,
  StreamMessageReader,
  StreamMessageWriter,
} from 'vscode-jsonrpc/node';
import {
  ClassifyFolderRequest,
  ClassifyFolderResult,
  ClassifyRequest,
  ExplainRequest,
  LoadModelRequest,
} from '../../common/workerRequests';
import { requestType } from './requestType';

/** The $/progress values of a work-done progress (LSP's begin, report and end, in one shape). */
type WorkDoneProgress = { kind: string; message?: string; percentage?: number };

const root = path.join(__dirname, '..', '..');
const workerJs = path.join(root, 'dist', 'worker.js');
const cliJs = path.join(root, 'dist', 'cli.js');
const model = path.join(root, 'models', 'default');
const samples = path.join(root, 'samples');
const labels = JSON.parse(fs.readFileSync(path.join(samples, 'labels.json'), 'utf8')) as Record<string, string>;
const PYTHON = '/usr/bin/python3';

/** Build the dataset; returns the relative paths of the images that must be classified. */
function makeDataset(dir: string): { images: string[]; corrupt: string } {
  const images: string[] = [];
  const put = (rel: string, from: string) => {
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    fs.copyFileSync(from, path.join(dir, rel));
    images.push(rel);
  };
  for (const [file, label] of Object.entries(labels)) {
    // "T-shirt/top" cannot be a folder name; a comma tests CSV quoting.
    const folder = label === 'T-shirt/top' ? 'T-shirt, top' : label.toLowerCase().replace(/ /g, '_');
    put(`${folder}/${file}`, path.join(samples, file));
  }
  // Misfiled: a coat in the shirt folder (a disagreement whatever the model says about shirts).
  put('shirt/misfiled coat.png', path.join(samples, 'fashion-mnist-test-6-coat.png'));
  // Upper-case extension, a quote in a name, and an image nested deeper inside a class folder.
  put('sneaker/SHOE.PNG', path.join(samples, 'fashion-mnist-test-9-sneaker.png'));
  put('dress/my "best" dress.png', path.join(samples, 'fashion-mnist-test-13-dress.png'));
  put('bag/junk/deeper/bag copy.png', path.join(samples, 'fashion-mnist-test-18-bag.png'));
  // Nested junk: not images, hidden entries, and a symlink loop back to the root.
  fs.writeFileSync(path.join(dir, 'bag/junk/notes.txt'), 'not an image');
  fs.mkdirSync(path.join(dir, 'bag/junk/.thumbnails'));
  fs.copyFileSync(
    path.join(samples, 'fashion-mnist-test-18-bag.png'),
    path.join(dir, 'bag/junk/.thumbnails/hidden.png'),
  );
  fs.copyFileSync(path.join(samples, 'fashion-mnist-test-18-bag.png'), path.join(dir, 'bag/.hidden.png'));
  fs.symlinkSync(dir, path.join(dir, 'bag/junk/loop'));
  // A corrupt "image".
  fs.writeFileSync(path.join(dir, 'coat/broken.png'), 'this is not a PNG');
  images.push('coat/broken.png');
  return { images, corrupt: 'coat/broken.png' };
}

let rpc: MessageConnection;
let proc: ReturnType<typeof spawn>;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-folder-'));

before(async () => {
  assert.ok(fs.existsSync(workerJs), 'dist/worker.js is missing: run npm run build');
  proc = spawn(process.execPath, [workerJs, '--stdio'], { stdio: ['pipe', 'pipe', 'pipe'] });
  proc.stderr!.resume();
  rpc = createMessageConnection(new StreamMessageReader(proc.stdout!), new StreamMessageWriter(proc.stdin!));
  rpc.listen();
  await rpc.sendRequest('initialize', {
    processId: process.pid,
    rootUri: null,
    capabilities: {},
    initializationOptions: { cacheDir: path.join(tmp, 'cache'), provider: 'cpu', offline: true },
  });
  rpc.sendNotification('initialized', {});
  await rpc.sendRequest(requestType(LoadModelRequest), { model });
});

after(async () => {
  await rpc.sendRequest('shutdown').catch(() => undefined);
  rpc.dispose();
  proc.kill();
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('vitLens/classifyFolder', () => {
  const ds = path.join(tmp, 'ds');
  let expected: { images: string[]; corrupt: string };
  let r: ClassifyFolderResult;
  const progress: WorkDoneProgress[] = [];

  before(async () => {
    fs.mkdirSync(ds);
    expected = makeDataset(ds);
    const sub = rpc.onProgress(new ProgressType<WorkDoneProgress>(), 'folder-1', p => void progress.push(p));
    r = await rpc.sendRequest(requestType(ClassifyFolderRequest), { folder: ds, topK: 3, workDoneToken: 'folder-1' });
    sub.dispose();
  });

  test('every image once, nothing else; the corrupt file is a failure naming it', () => {
    const seen = [...r.predictions.map(p => p.file), ...r.failures.map(f => f.file)];
    assert.deepEqual([...seen].sort(), [...expected.images].sort());
    assert.equal(new Set(seen).size, seen.length, 'no image twice (the symlink loop is cut)');
    assert.equal(r.total, expected.images.length);
    assert.equal(r.partial, false);
    assert.equal(r.failures.length, 1);
    assert.equal(r.failures[0].file, expected.corrupt);
    assert.ok(r.failures[0].error.includes(path.join(ds, expected.corrupt)), r.failures[0].error);
    assert.equal(r.model, 'Fashion-MNIST demo (10 clothing classes)');
    assert.equal(r.csvFile, path.join(ds, 'predictions.csv'));
    assert.equal(r.jsonFile, path.join(ds, 'predictions.json'));
  });

  test('top-1 equals vitLens/classify on the same files', async () => {
    const c = await rpc.sendRequest(requestType(ClassifyRequest), {
      images: r.predictions.map(p => path.join(ds, p.file)),
      topK: 3,
    });
    assert.equal(c.results.length, r.predictions.length);
    c.results.forEach((x, i) => {
      assert.equal(r.predictions[i].predicted, x.predictions[0].label, r.predictions[i].file);
      assert.ok(Math.abs(r.predictions[i].confidence - x.predictions[0].score) < 1e-6);
      assert.deepEqual(
        r.predictions[i].top.map(t => t.label),
        x.predictions.map(t => t.label),
      );
    });
  });

  test('folder labels and agreement', () => {
    const byFile = new Map(r.predictions.map(p => [p.file, p]));
    assert.equal(
      byFile.get('bag/junk/deeper/bag copy.png')?.folderLabel,
      'bag',
      'nested images belong to their class folder',
    );
    assert.equal(
      byFile.get('shirt/misfiled coat.png')?.agrees,
      byFile.get('shirt/misfiled coat.png')?.predicted === 'Shirt',
    );
    for (const p of r.predictions) {
      assert.ok(p.folderLabel, p.file);
      const same =
        p.folderLabel!.toLowerCase().replace(/[^a-z0-9]/g, '') === p.predicted.toLowerCase().replace(/[^a-z0-9]/g, '');
      assert.equal(p.agrees, same, `${p.file}: ${p.folderLabel} vs ${p.predicted}`);
    }
    // The built-in model gets the ten samples right (README: 88.5% test accuracy; these are easy ones).
    const originals = r.predictions.filter(p => p.file.includes('fashion-mnist-test-'));
    assert.ok(originals.filter(p => p.agrees).length >= 9, JSON.stringify(originals.map(p => [p.file, p.predicted])));
  });

  test('progress reports n / N images, from begin to end', () => {
    assert.equal(progress[0]?.kind, 'begin');
    assert.equal(progress.at(-1)?.kind, 'end');
    assert.ok(
      progress.some(p => p.message === `${r.total} / ${r.total} images` && p.percentage === 100),
      JSON.stringify(progress),
    );
  });

  test("predictions.json is the result; Python's csv module reads predictions.csv back as the same table", () => {
    const json = JSON.parse(fs.readFileSync(r.jsonFile, 'utf8'));
    assert.deepEqual(json, JSON.parse(JSON.stringify(r)));
    const script =
      'import csv, json, sys\nwith open(sys.argv[1], newline="", encoding="utf-8") as f:\n    print(json.dumps(list(csv.reader(f, strict=True))))';
    const rows = JSON.parse(execFileSync(PYTHON, ['-c', script, r.csvFile], { encoding: 'utf8' })) as string[][];
    assert.deepEqual(rows[0], ['file', 'folder_label', 'predicted', 'confidence', 'agrees', 'top_k']);
    assert.equal(rows.length - 1, r.predictions.length);
    r.predictions.forEach((p, i) => {
      const [file, folderLabel, predicted, confidence, agrees, topK] = rows[i + 1];
      assert.deepEqual(
        [file, folderLabel, predicted, agrees],
        [p.file, p.folderLabel ?? '', p.predicted, p.agrees === undefined ? '' : String(p.agrees)],
      );
      assert.ok(Math.abs(Number(confidence) - p.confidence) < 1e-6);
      assert.deepEqual(
        topK.split(';').map(t => t.slice(0, t.lastIndexOf(':'))),
        p.top.map(t => t.label),
      );
    });
    assert.ok(
      rows.some(row => row[1] === 'T-shirt, top') && rows.some(row => row[0] === 'dress/my "best" dress.png'),
      'quoted fields survive',
    );
  });

  test('a folder of loose images has no folder labels; outDir is honoured', async () => {
    const loose = path.join(tmp, 'loose');
    fs.mkdirSync(loose);
    for (const f of Object.keys(labels).slice(0, 3)) fs.copyFileSync(path.join(samples, f), path.join(loose, f));
    const out = path.join(tmp, 'loose-out');
    const x = await rpc.sendRequest(requestType(ClassifyFolderRequest), { folder: loose, outDir: out });
    assert.equal(x.predictions.length, 3);
    assert.ok(x.predictions.every(p => p.folderLabel === undefined && p.agrees === undefined));
    assert.ok(fs.existsSync(path.join(out, 'predictions.csv')) && fs.existsSync(path.join(out, 'predictions.json')));
    assert.ok(!fs.existsSync(path.join(loose, 'predictions.json')));
  });

  test('an explain sent mid-way is answered between batches; cancelling writes partial files', async () => {
    const big = path.join(tmp, 'big');
    const files = Object.keys(labels);
    for (let i = 0; i < 3000; i++) {
      const f = files[i % files.length];
      const dir = path.join(big, labels[f].replace(/\W+/g, '_'));
      fs.mkdirSync(dir, { recursive: true });
      fs.copyFileSync(path.join(samples, f), path.join(dir, `${i}.png`));
    }
    const source = new CancellationTokenSource();
    let explained = -1;
    let done = 0;
    const sub = rpc.onProgress(new ProgressType<WorkDoneProgress>(), 'folder-2', p => {
      const m = /^(\d+) \/ \d+ images$/.exec(p.message ?? '');
      if (!m) return;
      done = Number(m[1]);
      if (done > 0 && explained === -1) {
        explained = 0;
        // Sent while the folder is far from done: must not wait for all 3000 images.
        void rpc
          .sendRequest(requestType(ExplainRequest), { image: path.join(samples, files[0]) })
          .then(() => (explained = done));
      }
      if (explained > 0) source.cancel();
    });
    const x = await rpc.sendRequest(
      requestType(ClassifyFolderRequest),
      { folder: big, workDoneToken: 'folder-2' },
      source.token,
    );
    sub.dispose();
    assert.ok(explained > 0 && explained < 3000, `explain answered after ${explained} of 3000 images`);
    assert.equal(x.partial, true);
    assert.equal(x.total, 3000);
    assert.ok(
      x.predictions.length > 0 && x.predictions.length < 3000,
      `${x.predictions.length} classified before the cancel took effect`,
    );
    const json = JSON.parse(fs.readFileSync(path.join(big, 'predictions.json'), 'utf8')) as ClassifyFolderResult;
    assert.equal(json.partial, true);
    assert.equal(json.predictions.length, x.predictions.length);
    const csvLines = fs.readFileSync(path.join(big, 'predictions.csv'), 'utf8').split('\r\n').filter(Boolean);
    assert.equal(csvLines.length - 1, x.predictions.length);
  });

  test('a missing folder is a clear error', async () => {
    await assert.rejects(
      rpc.sendRequest(requestType(ClassifyFolderRequest), { folder: path.join(tmp, 'nope') }),
      /nope: folder does not exist/,
    );
  });
});

describe('vit-lens classify-folder (CLI)', () => {
  test('writes the files to --out and prints a summary; exit 1 because one image failed', () => {
    const ds = path.join(tmp, 'cli-ds');
    fs.mkdirSync(ds);
    makeDataset(ds);
    const out = path.join(tmp, 'cli-out');
    const p = spawnSync(
      process.execPath,
      [
        cliJs,
        'classify-folder',
        ds,
        '--out',
        out,
        '--model',
        model,
        '--json',
        '--offline',
        '--cache-dir',
        path.join(tmp, 'cache'),
      ],
      { encoding: 'utf8' },
    );
    assert.equal(p.status, 1, p.stderr);
    const summary = JSON.parse(p.stdout);
    assert.equal(summary.images, 14);
    assert.equal(summary.failures.length, 1);
    assert.ok(summary.accuracy > 0.5 && summary.labelled === 14);
    assert.match(p.stderr, /broken\.png/);
    const json = JSON.parse(fs.readFileSync(path.join(out, 'predictions.json'), 'utf8'));
    assert.equal(json.predictions.length, 14);
    // `classify DIR` is the same command.
    const q = spawnSync(
      process.execPath,
      [cliJs, 'classify', ds, '--model', model, '--offline', '--cache-dir', path.join(tmp, 'cache')],
      { encoding: 'utf8' },
    );
    assert.match(
      q.stdout,
      /classified 14 of 15 images with Fashion-MNIST demo \(10 clothing classes\), 1 failed; \d+\.\d% agree with their folder labels \(\d+\/14\)/,
    );
    assert.ok(fs.existsSync(path.join(ds, 'predictions.csv')));
  });
});
