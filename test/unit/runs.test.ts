/**
 * The Runs view's pure parts: run discovery and status (interrupted, a foreign pid), the view's
 * description/tooltip/icon, Fine-tune answers → `vit-lens train` arguments and run names, input
 * checks, the dataset summary, and which base models the trainer can start from.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { modelFacts } from '../../extension/runs/baseModel';
import { contextValue, describeRun, escapeMd, statusIcon, tooltipMarkdown } from '../../extension/runs/format';
import { discoverRuns, readLastStep, RunEntry } from '../../extension/runs/runFolders';
import { REMOTE_SILENCE_MS, shownStatus } from '../../common/runStatus';
import { summarizeScan } from '../../extension/runs/scanSummary';
import {
  check,
  DEFAULT_ANSWERS,
  defaultLr,
  defaultRunName,
  editorTrainThreads,
  effectiveLr,
  resumeArgs,
  trainArgs,
} from '../../extension/runs/trainArgs';
import type { RunInfo } from '../../common/workerRequests';
import { configFromArgs, TrainUsageError } from '../../server/train/cli';

const root = path.join(__dirname, '..', '..');
const tinyHf = path.join(root, 'test', 'fixtures', 'vit-tiny', 'hf');

function info(over: Partial<RunInfo> = {}): RunInfo {
  return {
    format: 1,
    config: {
      dataset: '/data/fmnist',
      model: '/models/vit',
      mode: 'head',
      lastK: 2,
      epochs: 10,
      batchSize: 32,
      accumulate: 1,
      lr: 0.001,
      optimizer: 'adamw',
      weightDecay: 0.05,
      momentum: 0.9,
      warmupSteps: -1,
      clipNorm: 1,
      labelSmoothing: 0,
      augment: false,
      valSplit: 0.2,
      seed: 0,
    },
    classes: ['a', 'b', 'c'],
    backend: 'wasm',
    backendNotes: [],
    status: 'running',
    pid: 4242,
    createdAt: '2024-05-01T10:00:00.000Z',
    updatedAt: '2024-05-01T10:05:00.000Z',
    epoch: 3,
    totalEpochs: 10,
    step: 30,
    totalSteps: 100,
    bestValAcc: 0.9123,
    bestEpoch: 2,
    trainImages: 800,
    valImages: 200,
    initNotes: [],
    ...over,
  };
}

test('status: a running run whose pid is gone is interrupted, unless its files changed recently (another machine)', () => {
  const now = 1_000_000_000;
  const dead = () => false;
  const alive = () => true;
  assert.deepEqual(shownStatus(info(), now, { alive, host: os.hostname(), now }), { status: 'running' });
  assert.deepEqual(shownStatus(info(), now - REMOTE_SILENCE_MS - 1, { alive: dead, host: os.hostname(), now }), {
    status: 'interrupted',
  });
  assert.deepEqual(shownStatus(info(), now - 1000, { alive: dead, host: os.hostname(), now }), {
    status: 'running',
    elsewhere: true,
  });
  // A pid this window saw exit is dead however fresh the files are.
  assert.deepEqual(shownStatus(info(), now, { alive: dead, host: os.hostname(), now, exited: new Set([4242]) }), {
    status: 'interrupted',
  });
  for (const s of ['finished', 'failed', 'stopped'] as const)
    assert.deepEqual(shownStatus(info({ status: s }), now, { alive: dead, host: os.hostname(), now }), { status: s });
});

test("status with the host recorded: on this host the pid decides at once; another host's pid is never checked here", () => {
  const now = 1_000_000_000;
  const here = 'box-a';
  const dead = () => false;
  const alive = () => true;
  // Same host, pid gone: interrupted even though the files changed a second ago (the old rule said "another machine?").
  assert.deepEqual(shownStatus(info({ host: here }), now - 1000, { alive: dead, now, host: here }), {
    status: 'interrupted',
  });
  assert.deepEqual(shownStatus(info({ host: here }), now - 1000, { alive, now, host: here }), { status: 'running' });
  // Another host: a pid that happens to be alive here means nothing; recent files mean running there.
  assert.deepEqual(shownStatus(info({ host: 'box-b' }), now - 1000, { alive, now, host: here }), {
    status: 'running',
    elsewhere: true,
  });
  assert.deepEqual(shownStatus(info({ host: 'box-b' }), now - REMOTE_SILENCE_MS - 1, { alive, now, host: here }), {
    status: 'interrupted',
  });
  // A pid this window saw exit is only known dead when it ran here.
  assert.deepEqual(
    shownStatus(info({ host: 'box-b' }), now - 1000, { alive: dead, now, host: here, exited: new Set([4242]) }),
    { status: 'running', elsewhere: true },
  );
});

test('discovery: runs newest first, unreadable run.json shown with the file and problem, other folders ignored, starting runs', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-runs-'));
  try {
    const write = (name: string, text: string) => {
      fs.mkdirSync(path.join(dir, name), { recursive: true });
      fs.writeFileSync(path.join(dir, name, 'run.json'), text);
    };
    write('old', JSON.stringify(info({ status: 'finished', createdAt: '2024-01-01T00:00:00Z' })));
    write('new', JSON.stringify(info({ createdAt: '2024-06-01T00:00:00Z', pid: 999999 })));
    write('broken', '{"status": "running", ');
    write('odd', JSON.stringify({ status: 'paused', config: {}, pid: 1, epoch: 0, totalEpochs: 1 }));
    fs.mkdirSync(path.join(dir, 'not-a-run'));
    fs.mkdirSync(path.join(dir, 'launching'));
    fs.appendFileSync(
      path.join(dir, 'new', 'metrics.jsonl'),
      '{"type":"step","epoch":3,"step":40,"loss":0.5,"lr":0.001,"gradNorm":1,"imagesPerSec":12.5}\n{"type":"epo',
    );
    const runs = await discoverRuns(dir, {
      alive: () => false,
      host: os.hostname(),
      now: Date.now() + REMOTE_SILENCE_MS * 2,
      starting: new Map([[path.join(dir, 'launching'), 7]]),
    });
    const byName = Object.fromEntries(runs.map(r => [r.name, r]));
    assert.deepEqual(Object.keys(byName).sort(), ['broken', 'launching', 'new', 'odd', 'old']);
    assert.deepEqual(
      runs.filter(r => r.info).map(r => r.name),
      ['new', 'old'],
      'newest first',
    );
    assert.equal(byName.new.status, 'interrupted');
    assert.equal(byName.old.status, 'finished');
    assert.equal(byName.broken.status, 'unreadable');
    assert.match(byName.broken.error!, /broken[\\/]run\.json: not valid JSON/);
    assert.match(byName.odd.error!, /"status" must be running, finished, failed or stopped, got "paused"/);
    assert.equal(byName.launching.status, 'starting');
    const exited = await discoverRuns(dir, {
      alive: () => false,
      host: os.hostname(),
      now: Date.now(),
      starting: new Map([[path.join(dir, 'launching'), 7]]),
      exited: new Set([7]),
    });
    assert.match(exited.find(r => r.name === 'launching')!.error!, /exited before writing run\.json; see .*train\.log/);
    assert.deepEqual(await readLastStep(path.join(dir, 'new', 'metrics.jsonl')), {
      epoch: 3,
      step: 40,
      loss: 0.5,
      imagesPerSec: 12.5,
    });
    assert.deepEqual(
      await discoverRuns(path.join(dir, 'missing'), { alive: () => true, host: os.hostname(), now: 0 }),
      [],
      'a runs folder that does not exist yet is empty',
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

const entry = (over: Partial<RunEntry> & { info?: RunInfo }): RunEntry => ({
  dir: '/runs/r1',
  name: 'r1',
  status: 'finished',
  lastActivity: 0,
  ...over,
});

test('description, icon and context value per status', () => {
  assert.equal(
    describeRun(entry({ info: info({ status: 'finished', epoch: 10 }) })),
    'fmnist · epoch 10/10 · best 91.2%',
  );
  assert.equal(
    describeRun(entry({ status: 'running', info: info(), lastStep: { epoch: 3, step: 45, loss: 1, imagesPerSec: 3 } })),
    'fmnist · epoch 4/10 · 45% · best 91.2%',
  );
  assert.equal(
    describeRun(entry({ status: 'interrupted', info: info({ bestValAcc: undefined }) })),
    'fmnist · epoch 3/10 · interrupted',
  );
  assert.equal(
    describeRun(entry({ status: 'running', elsewhere: true, info: info() })),
    'fmnist · epoch 4/10 · 30% · best 91.2% · not on this machine?',
  );
  assert.equal(
    describeRun(entry({ status: 'running', elsewhere: true, info: info({ host: 'gpu-box' }) })),
    'fmnist · epoch 4/10 · 30% · best 91.2% · on gpu-box',
  );
  assert.equal(describeRun(entry({ status: 'starting' })), 'starting…');
  assert.equal(
    describeRun(entry({ status: 'unreadable', error: '/r/run.json: not valid JSON' })),
    '/r/run.json: not valid JSON',
  );
  const icons = (['running', 'finished', 'failed', 'stopped', 'interrupted', 'unreadable', 'starting'] as const).map(
    status => statusIcon(entry({ status })).id,
  );
  assert.deepEqual(icons, ['sync~spin', 'pass', 'error', 'debug-pause', 'warning', 'warning', 'sync~spin']);
  assert.equal(statusIcon(entry({ status: 'failed' })).color, 'testing.iconFailed');
  assert.equal(contextValue(entry({ status: 'interrupted' })), 'run.interrupted');
  assert.equal(contextValue(entry({ status: 'starting' })), 'run.running', 'a starting run can be stopped');
  assert.equal(contextValue(entry({ status: 'unreadable' })), 'runUnreadable');
});

test('tooltip: the run as a table, reason when failed, paths escaped', () => {
  const md = tooltipMarkdown(
    entry({
      name: 'my_run',
      status: 'failed',
      info: info({
        status: 'failed',
        reason: 'loss is NaN at step 12',
        config: { ...info().config, dataset: '/data/[x]_y', mode: 'last-k', lastK: 3 },
      }),
    }),
  );
  assert.match(md, /^\*\*my\\_run\*\* — failed/);
  assert.ok(md.includes('| Dataset | /data/\\[x\\]\\_y |'), md);
  assert.match(md, /\| Mode \| last-k \(k = 3\) \|/);
  assert.match(md, /\| Backend \| wasm \|/);
  assert.match(md, /\| Optimizer \| adamw, lr 0\.001, batch 32 \|/);
  assert.match(md, /\| Best val acc \| 91\.2% \(epoch 3\) \|/);
  assert.match(md, /\| Reason \| loss is NaN at step 12 \|/);
  assert.doesNotMatch(md, /\| Pid \|/, 'no pid for a run that is not running');
  assert.match(
    tooltipMarkdown(entry({ status: 'interrupted', info: info() })),
    /Resume\*\* continues from the last checkpoint/,
  );
  assert.equal(escapeMd('a|b*c'), 'a\\|b\\*c');
});

test('answers → vit-lens train arguments', () => {
  const a = { ...DEFAULT_ANSWERS, model: '/m/vit' };
  assert.deepEqual(trainArgs('/data/ds', '/runs/r', a), [
    'train',
    '/data/ds',
    '--out',
    '/runs/r',
    '--model',
    '/m/vit',
    '--mode',
    'head',
    '--epochs',
    '10',
    '--batch-size',
    '32',
    '--optimizer',
    'adamw',
    '--val-split',
    '0.2',
    '--seed',
    '0',
  ]);
  const b = {
    ...a,
    mode: 'last-k' as const,
    lastK: 3,
    lr: 5e-4,
    imageSize: 384,
    augment: false,
    labelSmoothing: 0.1,
    weightDecay: 0.01,
    optimizer: 'sgd' as const,
  };
  assert.deepEqual(trainArgs('/d', '/r', b, '/cache'), [
    'train',
    '/d',
    '--out',
    '/r',
    '--model',
    '/m/vit',
    '--mode',
    'last-k',
    '--epochs',
    '10',
    '--last-k',
    '3',
    '--lr',
    '0.0005',
    '--image-size',
    '384',
    '--batch-size',
    '32',
    '--optimizer',
    'sgd',
    '--val-split',
    '0.2',
    '--seed',
    '0',
    '--no-augment',
    '--label-smoothing',
    '0.1',
    '--weight-decay',
    '0.01',
    '--cache-dir',
    '/cache',
  ]);
  assert.deepEqual(trainArgs('/d', '/r', { ...a, torchPython: '/usr/bin/python3' }).slice(-4), [
    '--backend',
    'torch',
    '--python',
    '/usr/bin/python3',
  ]);
  assert.deepEqual(resumeArgs('/r'), ['train', '--out', '/r', '--resume']);
  // The editor keeps one core: a run started or resumed from it trains on the others.
  assert.deepEqual(trainArgs('/d', '/r', { ...a, threads: 3 }).slice(-2), ['--threads', '3']);
  assert.deepEqual(resumeArgs('/r', '/c', 3), [
    'train',
    '--out',
    '/r',
    '--resume',
    '--cache-dir',
    '/c',
    '--threads',
    '3',
  ]);
  assert.deepEqual([editorTrainThreads(8), editorTrainThreads(2), editorTrainThreads(1)], [7, 1, 1]);
  assert.deepEqual(trainArgs('/d', '/r', { ...a, backend: 'webgpu' }).slice(-2), ['--backend', 'webgpu']);
  assert.deepEqual(trainArgs('/d', '/r', { ...a, backend: 'wasm' }).slice(-2), ['--backend', 'wasm']);
  assert.ok(!trainArgs('/d', '/r', { ...a, backend: 'auto' }).includes('--backend'));
  assert.equal(defaultLr('adamw', 'head', false), 1e-3);
  assert.equal(defaultLr('adamw', 'last-k', false), 3e-4);
  assert.equal(defaultLr('adamw', 'full', false), 1e-4);
  assert.equal(defaultLr('adamw', 'full', true), 1e-3);
  assert.equal(defaultLr('sgd', 'head', false), 0.1);
  assert.equal(effectiveLr({ ...a, model: 'scratch:tiny', mode: 'full' }), 1e-3);
});

test('run names: <dataset>-<mode>-<yyyymmdd-HHMMSS>, unique, and checked as folder names', () => {
  const at = new Date(2024, 2, 5, 7, 8, 9);
  assert.equal(
    defaultRunName('/data/my flowers/', 'head', at, () => false),
    'my_flowers-head-20240305-070809',
  );
  const taken = new Set(['ds-full-20240305-070809', 'ds-full-20240305-070809-2']);
  assert.equal(
    defaultRunName('/x/ds', 'full', at, n => taken.has(n)),
    'ds-full-20240305-070809-3',
  );
  assert.equal(
    check.runName('ok-name_1.2', () => false),
    undefined,
  );
  assert.match(
    check.runName('a/b', () => false)!,
    /becomes a folder/,
  );
  assert.match(
    check.runName('  ', () => false)!,
    /needs a name/,
  );
  assert.match(
    check.runName('x', () => true)!,
    /already exists/,
  );
});

test('input checks match the trainer', () => {
  assert.equal(check.epochs('10'), undefined);
  assert.match(check.epochs('0')!, /between 1 and/);
  assert.match(check.epochs('2.5')!, /whole number/);
  assert.match(check.epochs('ten')!, /must be a number/);
  assert.equal(check.lr('3e-4'), undefined);
  assert.match(check.lr('0')!, /trains nothing/);
  assert.match(check.valSplit('0.95')!, /between 0 and 0.9/);
  assert.equal(check.imageSize('384', 16), undefined);
  assert.match(check.imageSize('100', 16)!, /multiple of the patch size \(16\)/);
  assert.match(check.lastK('7', 6)!, /between 1 and 6/);
  assert.equal(check.weightDecay(''), undefined);
});

test('dataset summary: counts, skipped files, imbalance warning, one usable class blocks', () => {
  const scan = {
    root: '/data/pets',
    layout: 'class-folders' as const,
    classes: [
      { name: 'cat', train: 80, val: 20 },
      { name: 'dog', train: 16, val: 4 },
    ],
    images: 120,
    skipped: [{ file: '/data/pets/cat/bad.jpg', reason: 'not a readable image (unsupported format)' }],
    warnings: [],
    imbalance: 5,
  };
  const s = summarizeScan(scan);
  assert.equal(s.message, 'pets: 120 images in 2 classes');
  assert.match(s.detail, /cat\s+100 images\s+\(80 train, 20 val\)/);
  assert.match(s.detail, /1 file will be skipped .*cat[\\/]bad\.jpg: not a readable image/);
  assert.match(s.detail, /Imbalanced: the largest class has 5\.0×/);
  assert.equal(s.blocking, undefined);
  assert.doesNotMatch(summarizeScan({ ...scan, imbalance: 2.5 }).detail, /Imbalanced/);
  const one = summarizeScan({ ...scan, classes: [scan.classes[0], { name: 'dog', train: 0, val: 0 }] });
  assert.match(one.blocking!, /only class "cat" has readable images/);
});

test('base models: HF folders, scratch and .onnx files are usable; hub ids are explained; an onnx/model.onnx in a HF folder points to the folder', () => {
  assert.deepEqual(modelFacts(tinyHf), { spec: tinyHf, imageSize: 224, patchSize: 16, layers: 2 });
  assert.equal(modelFacts('scratch:small').unusable, undefined);
  assert.match(modelFacts('scratch:huge').unusable!, /unknown scratch size/);
  assert.match(modelFacts('google/vit-base-patch16-224').unusable!, /Hub id; the trainer needs the model on disk/);
  const onnx = modelFacts(path.join(root, 'test', 'fixtures', 'vit-tiny', 'model.onnx'));
  assert.deepEqual(onnx, { spec: path.join(root, 'test', 'fixtures', 'vit-tiny', 'model.onnx') });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-base-'));
  try {
    fs.mkdirSync(path.join(dir, 'onnx'));
    for (const f of ['config.json', 'model.safetensors']) fs.copyFileSync(path.join(tinyHf, f), path.join(dir, f));
    fs.writeFileSync(path.join(dir, 'onnx', 'model.onnx'), '');
    assert.equal(
      modelFacts(path.join(dir, 'onnx', 'model.onnx')).alternative,
      dir,
      'the transformers.js layout offers its folder',
    );
    fs.rmSync(path.join(dir, 'model.safetensors'));
    assert.match(modelFacts(dir).unusable!, /no model\.safetensors/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the form and the CLI refuse the same values (one table of ranges, common/training.ts)', () => {
  const cliRefuses = (flag: string, v: string) =>
    assert.throws(
      () => configFromArgs(['/d'], { model: 'scratch:tiny', [flag]: v }),
      TrainUsageError,
      `--${flag} ${v}`,
    );
  const cases: [keyof typeof check, string, string, string][] = [
    ['epochs', 'epochs', '0', '100001'],
    ['batchSize', 'batch-size', '0', '65537'],
    ['valSplit', 'val-split', '-0.1', '0.95'],
    ['seed', 'seed', '-1', String(2 ** 31 + 1)],
    ['labelSmoothing', 'label-smoothing', '-1', '1'],
    ['imageSize', 'image-size', '4', '8192'],
  ];
  for (const [key, flag, low, high] of cases) {
    for (const v of [low, high]) {
      assert.ok((check[key] as (v: string) => string | undefined)(v), `form accepts ${key} ${v}`);
      cliRefuses(flag, v);
    }
  }
  // And the defaults the form shows are the trainer's.
  const cli = configFromArgs(['/d'], { model: 'scratch:tiny' });
  for (const k of ['epochs', 'batchSize', 'valSplit', 'seed', 'lastK', 'labelSmoothing'] as const)
    assert.equal(cli[k], DEFAULT_ANSWERS[k], k);
});
