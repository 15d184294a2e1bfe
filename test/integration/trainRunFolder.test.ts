/**
 * The run folder's safety through the built CLI (dist/cli.js), on the built-in model in head mode
 * with a few 28×28 images: a foreign --out is refused, the lock refuses a second trainer and is
 * released on every exit, unreadable classes and a missing validation set are said plainly, and
 * `vit-lens runs` shows the same status as the Runs view.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { ChildProcess, spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { makeColorDataset } from '../fixtures/train/makeDataset';
import { discoverRuns } from '../../extension/runs/runFolders';
import { thisMachine } from '../../extension/runs/runProbes';
import { CliOptions, runCli } from './runCli';

const ROOT = path.join(__dirname, '..', '..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-run-folder-'));
const dataset = path.join(tmp, 'ds');
const cacheDir = path.join(tmp, 'cache');
const sleepers: ChildProcess[] = [];
before(async () => {
  await makeColorDataset(dataset, { perClass: 4, width: 28, height: 28 });
});
after(() => {
  for (const s of sleepers) s.kill();
  fs.rmSync(tmp, { recursive: true, force: true });
});

const cli = (args: string[], opts: Pick<CliOptions, 'onStderr'> = {}) =>
  runCli(args, { ...opts, env: { VIT_LENS_CACHE: cacheDir } });
const train = (out: string, more: string[] = [], opts: Pick<CliOptions, 'onStderr'> = {}, data = dataset) =>
  cli(
    [
      'train',
      data,
      '--model',
      path.join(ROOT, 'models', 'default'),
      '--out',
      out,
      '--epochs',
      '2',
      '--batch-size',
      '4',
      '--cache-dir',
      cacheDir,
      ...more,
    ],
    opts,
  );
const readJson = (f: string) => JSON.parse(fs.readFileSync(f, 'utf8'));
const livePid = () => {
  const s = spawn('sleep', ['60']);
  sleepers.push(s);
  return s.pid!;
};

test('a non-empty folder that is not a run is refused, naming it and what it holds; nothing in it changes', async () => {
  const out = path.join(tmp, 'someones');
  fs.mkdirSync(path.join(out, 'notes'), { recursive: true });
  fs.writeFileSync(path.join(out, 'report.json'), '{"mine":true}\n');
  fs.writeFileSync(path.join(out, 'metrics.jsonl'), 'my line\n');
  const r = await train(out);
  assert.equal(r.code, 1, r.stderr);
  assert.match(
    r.stderr,
    new RegExp(
      `${out}: not empty and not a vit-lens run \\(no run.json\\); it holds metrics.jsonl, notes/, report.json`,
    ),
  );
  assert.deepEqual(fs.readdirSync(out).sort(), ['metrics.jsonl', 'notes', 'report.json']);
  assert.equal(fs.readFileSync(path.join(out, 'report.json'), 'utf8'), '{"mine":true}\n');
  assert.equal(fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8'), 'my line\n');
  // A checkpoints/ folder with someone's file in it is not ours either.
  const ck = path.join(tmp, 'with-checkpoint');
  fs.mkdirSync(path.join(ck, 'checkpoints'), { recursive: true });
  fs.writeFileSync(path.join(ck, 'checkpoints', 'latest.safetensors'), 'theirs');
  assert.equal((await train(ck)).code, 1);
  assert.equal(fs.readFileSync(path.join(ck, 'checkpoints', 'latest.safetensors'), 'utf8'), 'theirs');
});

test('a folder holding only what the editor writes first (train.log) and a stale lock becomes a run; the lock is gone at the end', async () => {
  const out = path.join(tmp, 'from-editor');
  fs.mkdirSync(out);
  fs.writeFileSync(path.join(out, 'train.log'), '# started\n');
  fs.writeFileSync(
    path.join(out, 'run.lock'),
    JSON.stringify({ pid: spawnSync('true').pid, host: os.hostname(), startedAt: new Date().toISOString() }),
  );
  const r = await train(out, ['--epochs', '1']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /took over the lock of pid \d+/);
  assert.equal(readJson(path.join(out, 'run.json')).status, 'finished');
  assert.equal(readJson(path.join(out, 'run.json')).host, os.hostname());
  assert.ok(!fs.existsSync(path.join(out, 'run.lock')));
});

test('a run folder in use is refused (new run and --resume), naming the pid and host; nothing is written', async () => {
  const out = path.join(tmp, 'busy');
  const first = await train(out, ['--epochs', '1']);
  assert.equal(first.code, 0, first.stderr);
  const pid = livePid();
  fs.writeFileSync(
    path.join(out, 'run.lock'),
    JSON.stringify({ pid, host: os.hostname(), startedAt: '2026-12-06T10:00:00.000Z' }) + '\n',
  );
  // What the other trainer would have left mid-run: resume would be accepted without the lock.
  const run = readJson(path.join(out, 'run.json'));
  fs.writeFileSync(path.join(out, 'run.json'), JSON.stringify({ ...run, status: 'running', pid }));
  const before = fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8');
  const r = await train(out, ['--resume']);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`${out}: in use by vit-lens train, pid ${pid} on ${os.hostname()}`));
  assert.equal(fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8'), before);
  assert.equal(readJson(path.join(out, 'run.lock')).pid, pid, 'the holder keeps its lock');

  const empty = path.join(tmp, 'busy-new');
  fs.mkdirSync(empty);
  fs.writeFileSync(
    path.join(empty, 'run.lock'),
    JSON.stringify({ pid, host: os.hostname(), startedAt: '2026-12-06T10:00:00.000Z' }) + '\n',
  );
  const n = await train(empty);
  assert.equal(n.code, 1);
  assert.match(n.stderr, new RegExp(`pid ${pid} on ${os.hostname()}`));
  assert.deepEqual(fs.readdirSync(empty), ['run.lock']);
});

test('two real trainers on one folder: --resume while the first runs is refused with its pid; the first is undisturbed', async () => {
  const out = path.join(tmp, 'two');
  let second: Promise<Awaited<ReturnType<typeof cli>>> | undefined;
  let firstPid = 0;
  const first = train(out, ['--epochs', '300'], {
    onStderr: (s, kill) => {
      if (!second && /training \d+ images/.test(s)) {
        firstPid = readJson(path.join(out, 'run.json')).pid;
        second = train(out, ['--resume']).then(r => (kill('SIGTERM'), r));
      }
    },
  });
  const a = await first;
  const b = await second!;
  assert.equal(b.code, 1, b.stderr);
  assert.match(b.stderr, new RegExp(`in use by vit-lens train, pid ${firstPid} on ${os.hostname()}`));
  assert.equal(a.code, 130, a.stderr);
  // One run's lines only: steps strictly increasing, no step written twice.
  const steps = fs
    .readFileSync(path.join(out, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map(l => JSON.parse(l))
    .filter(m => m.type === 'step')
    .map(m => m.step);
  assert.deepEqual(
    steps,
    [...steps].sort((x, y) => x - y),
  );
  assert.equal(new Set(steps).size, steps.length);
});

test('the lock is released on SIGTERM (stopped), on a second signal (abort) and on failure', async () => {
  const once = path.join(tmp, 'sigterm');
  let sent = false;
  const r = await train(once, ['--epochs', '50', '--checkpoint-every', '0'], {
    onStderr: (s, kill) => {
      if (!sent && /training \d+ images/.test(s)) {
        sent = true;
        kill('SIGTERM');
      }
    },
  });
  assert.equal(r.code, 130, r.stderr);
  assert.equal(readJson(path.join(once, 'run.json')).status, 'stopped');
  assert.ok(!fs.existsSync(path.join(once, 'run.lock')), 'lock left after SIGTERM');

  const twice = path.join(tmp, 'sigterm-twice');
  let signals = 0;
  // The second signal only after the first was seen (signals sent together merge into one).
  const t = await train(twice, ['--epochs', '50'], {
    onStderr: (s, kill) => {
      if (signals === 0 && /training \d+ images/.test(s)) {
        signals++;
        kill('SIGTERM');
      }
      if (signals === 1 && /SIGTERM: stopping after the current step/.test(s)) {
        signals++;
        kill('SIGTERM');
      }
    },
  });
  assert.equal(t.code, 130, t.stderr);
  assert.doesNotMatch(t.stdout, /^stopped:/, 'the second signal aborted before the stop finished');
  assert.ok(!fs.existsSync(path.join(twice, 'run.lock')), 'lock left after a second signal');

  // Resume after the dataset lost a class: fails, and the lock goes with it.
  const ds2 = path.join(tmp, 'ds-shrinks');
  fs.cpSync(dataset, ds2, { recursive: true });
  const out = path.join(tmp, 'fails');
  assert.equal((await train(out, ['--epochs', '1'], {}, ds2)).code, 0);
  fs.rmSync(path.join(ds2, 'blue'), { recursive: true });
  const info = readJson(path.join(out, 'run.json'));
  fs.writeFileSync(
    path.join(out, 'run.json'),
    JSON.stringify({ ...info, totalEpochs: 2, config: { ...info.config, epochs: 2 } }),
  );
  const f = await train(out, ['--resume']);
  assert.equal(f.code, 1);
  assert.match(f.stderr, /classes changed/);
  assert.ok(!fs.existsSync(path.join(out, 'run.lock')), 'lock left after a failure');
});

test('--checkpoint-every takes steps, seconds or minutes and refuses anything else', async () => {
  const out = path.join(tmp, 'every');
  const r = await train(out, ['--epochs', '1', '--batch-size', '2', '--checkpoint-every', '2']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /checkpoint at epoch 1, step 2/);
  assert.equal((await train(path.join(tmp, 'every-bad'), ['--checkpoint-every', '-1'])).code, 2);
  for (const bad of ['often', '5h', '1.5']) {
    const u = await train(path.join(tmp, 'every-bad'), ['--checkpoint-every', bad]);
    assert.equal(u.code, 2, bad);
    assert.match(u.stderr, /--checkpoint-every must be a number of steps/);
  }
});

test('a class whose images are all unreadable is warned about on stderr and in report.json', async () => {
  const ds = path.join(tmp, 'ds-unreadable');
  fs.cpSync(dataset, ds, { recursive: true });
  fs.mkdirSync(path.join(ds, 'broken'));
  for (let i = 0; i < 4; i++) fs.writeFileSync(path.join(ds, 'broken', `x${i}.png`), 'not a png');
  const out = path.join(tmp, 'unreadable');
  const r = await train(out, ['--epochs', '1'], {}, ds);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /warning: 4 images could not be read and are left out/);
  assert.match(
    r.stderr,
    /warning: .*class "broken" has no readable images \(all 4 skipped\); the model cannot learn it, and validation accuracy covers only the other classes/,
  );
  assert.ok(
    readJson(path.join(out, 'report.json')).warnings.some((w: string) =>
      /class "broken" has no readable images/.test(w),
    ),
  );
});

test('without validation images nothing is called validation accuracy: log, run.json, vit-lens runs', async () => {
  const ds = path.join(tmp, 'ds-tiny');
  fs.mkdirSync(path.join(ds, 'a'), { recursive: true });
  fs.mkdirSync(path.join(ds, 'b'));
  fs.copyFileSync(path.join(dataset, 'red', 'img0.png'), path.join(ds, 'a', 'one.png'));
  const out = path.join(tmp, 'runs-noval', 'noval');
  const r = await train(out, ['--epochs', '1'], {}, ds);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /no validation images: the best epoch is chosen by training accuracy/);
  assert.doesNotMatch(r.stdout, /val acc/);
  assert.match(r.stdout, /no validation set: best train acc 100\.00% at epoch 1/);
  const info = readJson(path.join(out, 'run.json'));
  assert.equal(info.bestValAcc, undefined);
  assert.equal(info.bestTrainAcc, 1);
  const ls = await cli(['runs', path.dirname(out)]);
  assert.match(ls.stdout, /finished\s+1\/1\s+none \(no validation set; best train acc 100\.00%\)/);
  const json = JSON.parse((await cli(['runs', path.dirname(out), '--json'])).stdout).runs[0];
  assert.deepEqual([json.validation, json.bestValAcc, json.bestTrainAcc], [false, null, 1]);
});

test('vit-lens runs and the Runs view give every run the same status (one rule: pid on this host, file activity for other hosts)', async () => {
  const dir = path.join(tmp, 'shared-disk');
  const base = readJson(path.join(tmp, 'from-editor', 'run.json'));
  const dead = spawnSync('true').pid!;
  const old = new Date(Date.now() - 3_600_000);
  const runs: [string, Record<string, unknown>, boolean][] = [
    ['here-alive', { status: 'running', pid: process.pid, host: os.hostname() }, false],
    ['here-dead-recent', { status: 'running', pid: dead, host: os.hostname() }, false],
    ['remote-recent', { status: 'running', pid: dead, host: 'other-box' }, false],
    ['remote-silent', { status: 'running', pid: dead, host: 'other-box' }, true],
    ['old-format-recent', { status: 'running', pid: dead, host: undefined }, false],
    ['finished', { status: 'finished', pid: dead, host: 'other-box' }, true],
  ];
  for (const [name, fields, silent] of runs) {
    fs.mkdirSync(path.join(dir, name), { recursive: true });
    const file = path.join(dir, name, 'run.json');
    fs.writeFileSync(file, JSON.stringify({ ...base, ...fields }));
    if (silent) fs.utimesSync(file, old, old);
  }
  const ls = await cli(['runs', dir, '--json']);
  assert.equal(ls.code, 0, ls.stderr);
  const fromCli = Object.fromEntries(
    JSON.parse(ls.stdout).runs.map((r: { run: string; status: string }) => [path.basename(r.run), r.status]),
  );
  const fromView = Object.fromEntries(
    (await discoverRuns(dir, { ...thisMachine(), now: Date.now() })).map(r => [r.name, r.status]),
  );
  assert.deepEqual(fromCli, fromView);
  assert.deepEqual(fromCli, {
    'here-alive': 'running',
    'here-dead-recent': 'interrupted',
    'remote-recent': 'running',
    'remote-silent': 'interrupted',
    'old-format-recent': 'running',
    finished: 'finished',
  });
});
