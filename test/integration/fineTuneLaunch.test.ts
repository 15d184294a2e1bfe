/**
 * What the Fine-tune command and the Runs view's Stop/Resume do, without VS Code: arguments built
 * from answers start dist/cli.js as a detached process writing train.log and a run folder; SIGTERM
 * stops it (status stopped), the resume arguments finish it, a killed trainer shows as interrupted.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { discoverRuns } from '../../extension/runs/runFolders';
import { REMOTE_SILENCE_MS } from '../../common/runStatus';
import { DEFAULT_ANSWERS, resumeArgs, trainArgs } from '../../extension/runs/trainArgs';
import { logFile, spawnTrainer, Started } from '../../extension/runs/trainerProcess';
import { makeColorDataset } from '../fixtures/train/makeDataset';

const root = path.join(__dirname, '..', '..');
const cliJs = path.join(root, 'dist', 'cli.js');
const tinyHf = path.join(root, 'test', 'fixtures', 'vit-tiny', 'hf');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-launch-'));
const dataset = path.join(tmp, 'colors');
const runs = path.join(tmp, 'runs');
const cache = path.join(tmp, 'cache');
const readJson = (f: string) => JSON.parse(fs.readFileSync(f, 'utf8'));
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

before(async () => {
  assert.ok(fs.existsSync(cliJs), `${cliJs} is missing: run npm run build first`);
  await makeColorDataset(dataset, { perClass: 6 });
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** The trainer is unref'd (it must not keep VS Code's extension host alive); here a timer keeps the test alive meanwhile. */
async function exited(s: Started): Promise<{ code: number | null }> {
  const keepAlive = setInterval(() => undefined, 1000);
  try {
    return await s.exit;
  } finally {
    clearInterval(keepAlive);
  }
}

async function until(what: string, cond: () => boolean, ms = 60_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) assert.fail(`timed out waiting for ${what}`);
    await new Promise(r => setTimeout(r, 50));
  }
}

test('answers → a detached trainer that writes the run folder the view reads', async () => {
  const runDir = path.join(runs, 'colors-head');
  const answers = { ...DEFAULT_ANSWERS, model: tinyHf, epochs: 1, imageSize: 32, batchSize: 8, seed: 3 };
  const started = await spawnTrainer(cliJs, trainArgs(dataset, runDir, answers, cache), runDir);
  const { code } = await exited(started);
  const log = fs.readFileSync(logFile(runDir), 'utf8');
  assert.equal(code, 0, log);
  assert.match(log, /^# .* vit-lens train .*--mode head --epochs 1/m, 'the command line heads the log');
  const info = readJson(path.join(runDir, 'run.json'));
  assert.equal(info.status, 'finished');
  assert.equal(info.pid, started.pid);
  assert.deepEqual(
    {
      mode: info.config.mode,
      epochs: info.config.epochs,
      lr: info.config.lr,
      imageSize: info.config.imageSize,
      batchSize: info.config.batchSize,
      seed: info.config.seed,
      valSplit: info.config.valSplit,
      augment: info.config.augment,
    },
    { mode: 'head', epochs: 1, lr: 1e-3, imageSize: [32, 32], batchSize: 8, seed: 3, valSplit: 0.2, augment: false },
  );
  const [r] = await discoverRuns(runs, { alive, host: os.hostname(), now: Date.now() });
  assert.equal(r.status, 'finished');
  assert.ok(fs.existsSync(path.join(runDir, 'export', 'config.json')), 'export/ for Use as Current Model');
});

test('Stop (SIGTERM) → stopped; Resume → finished; a killed trainer → interrupted', async () => {
  const runDir = path.join(runs, 'colors-full');
  // Full mode on the tiny model: slow enough per step to be stopped part way.
  const answers = { ...DEFAULT_ANSWERS, model: tinyHf, mode: 'full' as const, epochs: 4, imageSize: 32, batchSize: 2 };
  const first = await spawnTrainer(cliJs, trainArgs(dataset, runDir, answers, cache), runDir);
  await until('run.json', () => fs.existsSync(path.join(runDir, 'run.json')));
  process.kill(first.pid, 'SIGTERM');
  const stopped = await exited(first);
  assert.equal(stopped.code, 130, fs.readFileSync(logFile(runDir), 'utf8'));
  let [r] = (await discoverRuns(runs, { alive, host: os.hostname(), now: Date.now() })).filter(
    x => x.name === 'colors-full',
  );
  assert.equal(r.status, 'stopped');
  assert.ok(r.info!.epoch < 4);

  const second = await spawnTrainer(cliJs, resumeArgs(runDir, cache), runDir);
  await until('the resumed run to report running', () => readJson(path.join(runDir, 'run.json')).pid === second.pid);
  process.kill(second.pid, 'SIGKILL');
  await exited(second);
  [r] = (
    await discoverRuns(runs, { alive, host: os.hostname(), now: Date.now(), exited: new Set([second.pid]) })
  ).filter(x => x.name === 'colors-full');
  assert.equal(r.status, 'interrupted', 'a trainer this window saw die');
  [r] = (await discoverRuns(runs, { alive, host: os.hostname(), now: Date.now() + REMOTE_SILENCE_MS + 1000 })).filter(
    x => x.name === 'colors-full',
  );
  assert.equal(r.status, 'interrupted', 'a dead pid whose files went quiet');

  const third = await spawnTrainer(cliJs, resumeArgs(runDir, cache), runDir);
  assert.equal((await exited(third)).code, 0, fs.readFileSync(logFile(runDir), 'utf8'));
  const info = readJson(path.join(runDir, 'run.json'));
  assert.equal(info.status, 'finished');
  assert.equal(info.epoch, 4);
  assert.equal(fs.readFileSync(logFile(runDir), 'utf8').match(/^# /gm)!.length, 3, 'one log, appended per start');
});
