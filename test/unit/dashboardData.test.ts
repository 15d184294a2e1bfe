/**
 * The dashboard's data side, without a browser: the numbers (smoothing against pandas, P/R/F1 and
 * mistakenness against numpy/scipy formulas run by /usr/bin/python3 — independent implementations),
 * tailing a run folder (partial lines, truncation, atomic rewrite), the worker's scalar readers,
 * and validation of what the webview sends.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  classReport,
  formatDuration,
  mistakenness,
  rankSuspects,
  selfConfidence,
  smoothEma,
  timing,
} from '../../webview/dashboard/analysis';
import {
  parseDashboardMessage,
  parseSavedSources,
  type HostMessage,
  type RunHeader,
} from '../../common/webviewMessages/dashboard';
import { RunSource } from '../../extension/dashboard/runSource';
import { SourceState } from '../../extension/dashboard/sourceState';
import type { EpochMetrics, StepMetrics } from '../../common/workerRequests';
import { ScalarsReaders } from '../../server/scalarsReaders';

const ROOT = path.resolve(__dirname, '../..');
const PY = '/usr/bin/python3';
/** Runs `code` with `input` as JSON on stdin; its stdout parsed as JSON (shaped as the caller says). */
const python = <T>(code: string, input: unknown): T =>
  JSON.parse(execFileSync(PY, ['-c', code], { input: JSON.stringify(input), encoding: 'utf8' }));
// The references: a machine without them fails here, loudly (.ci/run installs them).
function requirePandas(): void {
  try {
    execFileSync(PY, ['-c', 'import pandas, numpy, scipy'], { stdio: 'pipe' });
  } catch (e) {
    throw new Error(
      `${PY} with pandas, numpy and scipy is needed for the reference numbers (apt-get install python3-pandas python3-scipy): ${(e as Error).message}`,
    );
  }
}

const close = (a: number | null, b: number | null, tol = 1e-9) =>
  a === null || b === null ? a === b : Math.abs(a - b) <= tol * Math.max(1, Math.abs(b));

describe('numbers, against independent references', () => {
  before(requirePandas);
  test('debiased EMA equals pandas ewm(alpha=1-w, adjust=True).mean()', () => {
    const values = [2.3, 2.1, 1.7, 1.9, 1.2, 1.25, 0.9, 1.4, 0.7, 0.65, 0.8, 0.5];
    for (const w of [0, 0.3, 0.6, 0.9, 0.99, 0.999]) {
      const ours = smoothEma(values, w);
      const ref = python<number[]>(
        'import sys, json, pandas as pd; d = json.load(sys.stdin); print(json.dumps(pd.Series(d["v"]).ewm(alpha=1 - d["w"], adjust=True).mean().tolist()))',
        { v: values, w: w === 0 ? 1e-12 : w },
      );
      ours.forEach((v, i) => assert.ok(close(v, ref[i], 1e-6), `w=${w} i=${i}: ${v} vs pandas ${ref[i]}`));
    }
    // The first smoothed point is the first value (debiasing), not pulled towards 0.
    assert.equal(smoothEma([5, 5, 5], 0.9)[0], 5);
    // A NaN (diverged step) passes through and is skipped by the average.
    const withNaN = smoothEma([1, NaN, 3], 0.5);
    assert.ok(Number.isNaN(withNaN[1]));
    assert.equal(withNaN[2], smoothEma([1, 3], 0.5)[1]);
  });

  test('precision, recall, F1 from a confusion matrix match numpy by formula', () => {
    const confusion = [
      [5, 1, 0, 0],
      [2, 4, 0, 0],
      [2, 1, 2, 1],
      [0, 0, 0, 0],
    ];
    const ours = classReport(confusion);
    const ref = python<{
      p: (number | null)[];
      r: (number | null)[];
      f: (number | null)[];
      acc: number;
      macro_p: number;
      weighted_r: number;
    }>(
      `import sys, json, numpy as np
c = np.array(json.load(sys.stdin), dtype=float)
tp = np.diag(c); pred = c.sum(0); true = c.sum(1)
with np.errstate(invalid='ignore', divide='ignore'):
    p = tp / pred; r = tp / true; f = 2 * p * r / (p + r)
nan = lambda a: [None if np.isnan(x) else float(x) for x in a]
print(json.dumps({'p': nan(p), 'r': nan(r), 'f': nan(f), 'acc': float(tp.sum() / c.sum()),
  'macro_p': float(np.nanmean(p)), 'weighted_r': float(np.nansum(r * true) / true[~np.isnan(r)].sum())}))`,
      confusion,
    );
    ours.perClass.forEach((c, i) => {
      assert.ok(close(c.precision, ref.p[i]), `precision ${i}`);
      assert.ok(close(c.recall, ref.r[i]), `recall ${i}`);
      assert.ok(close(c.f1, ref.f[i]), `f1 ${i}`);
    });
    assert.equal(ours.perClass[3].recall, null, 'no true images of class 3: recall undefined');
    assert.ok(close(ours.accuracy, ref.acc));
    assert.ok(close(ours.macro.precision, ref.macro_p));
    assert.ok(close(ours.weighted.recall, ref.weighted_r));
  });

  test('mistakenness equals FiftyOne’s formula on log-probabilities as logits (scipy entropy of softmax)', () => {
    const cases = [
      { p: [0.7, 0.2, 0.1], label: 0, predicted: 0 },
      { p: [0.7, 0.2, 0.1], label: 1, predicted: 0 },
      { p: [0.34, 0.33, 0.33], label: 2, predicted: 0 },
      { p: [0.999, 0.001, 0], label: 1, predicted: 0 },
    ];
    const ref = python<number[]>(
      `import sys, json, numpy as np
from math import exp
from scipy.stats import entropy
from scipy.special import softmax
out = []
for c in json.load(sys.stdin):
    logits = np.log(np.maximum(np.array(c['p']), 1e-300))
    m = float(c['label'] == c['predicted']) * -2.0 + 1.0
    out.append((m * exp(-entropy(softmax(logits))) + 1.0) / 2.0)
print(json.dumps(out))`,
      cases,
    );
    cases.forEach((c, i) =>
      assert.ok(
        close(mistakenness(c.p, c.label, c.predicted), ref[i], 1e-9),
        `case ${i}: ${mistakenness(c.p, c.label, c.predicted)} vs ${ref[i]}`,
      ),
    );
  });
});

test('suspects rank by self-confidence ascending and by mistakenness descending', () => {
  const items = [
    { id: 'a', label: 0, predicted: 0, probabilities: [0.9, 0.1] },
    { id: 'b', label: 0, predicted: 1, probabilities: [0.05, 0.95] },
    { id: 'c', label: 1, predicted: 0, probabilities: [0.6, 0.4] },
  ];
  assert.deepEqual(
    rankSuspects(items, 'selfConfidence').map(s => s.item.id),
    ['b', 'c', 'a'],
  );
  assert.deepEqual(
    rankSuspects(items, 'mistakenness').map(s => s.item.id),
    ['b', 'c', 'a'],
  );
  assert.equal(selfConfidence([0.2, 0.8], 1), 0.8);
  assert.ok(mistakenness([0.05, 0.95], 0, 1) > 0.5 && mistakenness([0.9, 0.1], 0, 0) < 0.5);
});

test('elapsed from run.json, ETA from the recent pace of logged steps', () => {
  const run: RunHeader = {
    status: 'running',
    backend: 'wasm',
    createdAt: '2024-01-01T00:00:00Z',
    updatedAt: '2024-01-01T00:01:00Z',
    epoch: 0,
    totalEpochs: 2,
    step: 20,
    totalSteps: 100,
    classes: [],
  };
  const steps = [
    { step: 10, time: '2024-01-01T00:00:50Z' },
    { step: 20, time: '2024-01-01T00:01:00Z' },
  ];
  const t = timing({ ...run }, steps, Date.parse('2024-01-01T00:01:00Z'));
  assert.equal(t.elapsed, 60);
  assert.equal(t.eta, 80, '80 steps left at 1 step/s');
  const done = timing(
    { ...run, status: 'finished', finishedAt: '2024-01-01T00:02:00Z' },
    steps,
    Date.parse('2030-01-01T00:00:00Z'),
  );
  assert.deepEqual(done, { elapsed: 120 });
});

describe('RunSource tails a run folder', () => {
  const dirs: string[] = [];
  after(() => dirs.forEach(d => fs.rmSync(d, { recursive: true, force: true })));
  const tmp = () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-dash-'));
    dirs.push(d);
    return d;
  };
  const step = (s: number): StepMetrics => ({
    type: 'step',
    epoch: 0,
    step: s,
    loss: 1 / s,
    lr: 0.1,
    gradNorm: 1,
    imagesPerSec: 100,
    time: new Date(1e12 + s * 1000).toISOString(),
  });
  const epoch = (e: number, s: number): EpochMetrics => ({
    type: 'epoch',
    epoch: e,
    step: s,
    trainLoss: 0.5,
    trainAcc: 0.8,
    valLoss: 0.6,
    valAcc: 0.7,
    confusion: [
      [1, 0],
      [0, 1],
    ],
    seconds: 1,
    time: new Date().toISOString(),
  });

  function recorder(dir: string) {
    const events: { steps: number[]; epochs: number[]; reset: boolean }[] = [];
    const problems: string[] = [];
    const runs: (string | undefined)[] = [];
    const source = new RunSource(
      dir,
      {
        metrics: (s, e, reset) => events.push({ steps: s.map(x => x.step), epochs: e.map(x => x.epoch), reset }),
        runInfo: (info, err) => runs.push(info ? `ok:${info.status}` : `error:${err}`),
        report: () => undefined,
        problem: p => problems.push(p),
      },
      60_000,
    );
    return { source, events, problems, runs };
  }

  test('reads whole lines only; a half-written line (even mid UTF-8 character) waits for its newline', async () => {
    const dir = tmp();
    const file = path.join(dir, 'metrics.jsonl');
    const r = recorder(dir);
    fs.writeFileSync(file, JSON.stringify(step(10)) + '\n' + JSON.stringify(step(20)) + '\n');
    await r.source.poll();
    assert.deepEqual(r.events, [{ steps: [10, 20], epochs: [], reset: false }]);
    const line = Buffer.from(JSON.stringify({ ...step(30), note: 'é' }) + '\n');
    const cut = line.indexOf(Buffer.from('é')) + 1; // inside the two-byte character
    fs.appendFileSync(file, line.subarray(0, cut));
    await r.source.poll();
    assert.equal(r.events.length, 1, 'nothing new until the line is complete');
    fs.appendFileSync(file, Buffer.concat([line.subarray(cut), Buffer.from(JSON.stringify(epoch(0, 30)) + '\n')]));
    await r.source.poll();
    assert.deepEqual(r.events[1], { steps: [30], epochs: [0], reset: false });
    fs.appendFileSync(file, 'not json\n');
    await r.source.poll();
    assert.match(r.problems[0], /line 5: not a metrics line/);
    r.source.dispose();
  });

  test('a truncated or atomically rewritten file (resume) is read again from the start, as a reset', async () => {
    const dir = tmp();
    const file = path.join(dir, 'metrics.jsonl');
    const r = recorder(dir);
    fs.writeFileSync(file, [step(10), step(20), step(30)].map(m => JSON.stringify(m) + '\n').join(''));
    await r.source.poll();
    // truncateMetrics: temp file + rename (new inode), fewer lines.
    fs.writeFileSync(file + '.tmp', JSON.stringify(step(10)) + '\n');
    fs.renameSync(file + '.tmp', file);
    await r.source.poll();
    assert.deepEqual(r.events.at(-1), { steps: [10], epochs: [], reset: true });
    // Plain truncation in place, then growth.
    fs.truncateSync(file, 0);
    await r.source.poll();
    assert.deepEqual(r.events.at(-1), { steps: [], epochs: [], reset: true });
    fs.appendFileSync(file, JSON.stringify(step(11)) + '\n');
    await r.source.poll();
    assert.deepEqual(r.events.at(-1), { steps: [11], epochs: [], reset: false });
    r.source.dispose();
  });

  test('run.json: missing folder, missing file, corrupt file, then a good one', async () => {
    const dir = path.join(tmp(), 'later');
    const r = recorder(dir);
    await r.source.poll();
    assert.match(r.runs.at(-1)!, /does not exist/);
    fs.mkdirSync(dir);
    await r.source.poll();
    assert.match(r.runs.at(-1)!, /not a run folder/);
    fs.writeFileSync(path.join(dir, 'run.json'), '{"status": "runn');
    await r.source.poll();
    assert.match(r.runs.at(-1)!, /corrupt/);
    fs.writeFileSync(path.join(dir, 'run.json'), JSON.stringify({ status: 'running', classes: ['a'] }));
    await r.source.poll();
    assert.equal(r.runs.at(-1), 'ok:running');
    const n = r.runs.length;
    await r.source.poll();
    assert.equal(r.runs.length, n, 'an unchanged run.json is not read again');
    r.source.dispose();
  });

  test('fs.watch delivers a new line well within 2 s without waiting for the poll', async () => {
    const dir = tmp();
    const file = path.join(dir, 'metrics.jsonl');
    fs.writeFileSync(file, '');
    const r = recorder(dir);
    r.source.start();
    await new Promise(res => setTimeout(res, 100));
    const t0 = Date.now();
    fs.appendFileSync(file, JSON.stringify(step(10)) + '\n');
    while (!r.events.some(e => e.steps.includes(10)) && Date.now() - t0 < 2000)
      await new Promise(res => setTimeout(res, 10));
    r.source.dispose();
    assert.ok(
      r.events.some(e => e.steps.includes(10)),
      'the line arrived',
    );
    assert.ok(Date.now() - t0 < 2000);
  });
});

test('SourceState: held-out images get webview URIs, moves are remembered, a corrupt report is a notice', () => {
  const posted: HostMessage[] = [];
  const s = new SourceState(
    0,
    { kind: 'run', dir: '/runs/a' },
    f => `https://res${f}`,
    m => posted.push(m),
  );
  s.runListener.runInfo({
    status: 'finished',
    classes: ['cat', 'dog'],
    config: { dataset: '/data' },
    epoch: 1,
    totalEpochs: 1,
    step: 1,
    totalSteps: 1,
  } as Parameters<typeof s.runListener.runInfo>[0]);
  s.runListener.report({
    skipped: [],
    warnings: [],
    bestEpoch: 0,
    heldOut: [
      { file: '/data/cat/1.png', label: 0, predicted: 1, probabilities: [0.2, 0.8] },
      { file: '/data/cat/x.png', label: 7, predicted: 0, probabilities: [1] },
    ],
  });
  assert.deepEqual(
    s.view.report!.heldOut.map(h => [h.file, h.src]),
    [['/data/cat/1.png', 'https://res/data/cat/1.png']],
  );
  assert.deepEqual(s.imageRoots(), ['/data']);
  s.moved('/data/cat/1.png', '/data/dog/1.png', 1);
  assert.equal(s.heldOut('/data/dog/1.png')?.movedTo, 1);
  assert.deepEqual(s.moveOf('/data/dog/1.png'), { original: '/data/cat/1.png', cls: 1 });
  s.unmoved('/data/cat/1.png');
  assert.equal(s.heldOut('/data/cat/1.png')?.movedTo, undefined);
  s.runListener.report(undefined, '/runs/a/report.json is corrupt: Unexpected end');
  assert.match(s.view.notice!, /corrupt/);
  assert.equal(s.view.report, undefined);
  assert.ok(posted.every(m => m.type === 'meta'));
});

describe('webview messages are validated', () => {
  const has = (id: number, file: string) => id === 0 && file === '/data/cat/1.png';
  test('accepts well-formed messages', () => {
    assert.deepEqual(parseDashboardMessage({ type: 'ready' }, 1, has), { type: 'ready' });
    assert.deepEqual(parseDashboardMessage({ type: 'openImage', id: 0, file: '/data/cat/1.png', extra: 1 }, 1, has), {
      type: 'openImage',
      id: 0,
      file: '/data/cat/1.png',
    });
    assert.deepEqual(parseDashboardMessage({ type: 'moveImage', id: 0, file: '/data/cat/1.png' }, 1, has), {
      type: 'moveImage',
      id: 0,
      file: '/data/cat/1.png',
    });
    assert.deepEqual(parseDashboardMessage({ type: 'revealRun', id: 0 }, 1, has), { type: 'revealRun', id: 0 });
    assert.deepEqual(parseDashboardMessage({ type: 'auditDataset', id: 0, dir: '/etc' }, 1, has), {
      type: 'auditDataset',
      id: 0,
    });
  });
  test('rejects malformed messages and files that are not held-out images of the source', () => {
    for (const m of [
      null,
      [],
      'ready',
      { type: 'openImage', id: 0, file: '/etc/passwd' },
      { type: 'openImage', id: 1, file: '/data/cat/1.png' },
      { type: 'moveImage', id: -1, file: '/data/cat/1.png' },
      { type: 'undoMove', id: 0.5, file: '/data/cat/1.png' },
      { type: 'openImage', id: 0 },
      { type: 'revealRun', id: 3 },
      { type: 'auditDataset', id: 1 },
      { type: 'deleteRun', id: 0 },
    ]) {
      assert.equal(parseDashboardMessage(m, 1, has), undefined, JSON.stringify(m));
    }
  });
  test('saved sources for the serializer: only well-formed absolute ones', () => {
    const saved = {
      sources: [
        { kind: 'run', dir: '/a' },
        { kind: 'tfevents', dir: '/b' },
        { kind: 'run', dir: 'relative' },
        { kind: 'shell', dir: '/c' },
        { dir: '/d' },
        'x',
      ],
    };
    assert.deepEqual(parseSavedSources(saved, path.isAbsolute), [
      { kind: 'run', dir: '/a' },
      { kind: 'tfevents', dir: '/b' },
    ]);
    assert.deepEqual(parseSavedSources(undefined, path.isAbsolute), []);
    assert.deepEqual(parseSavedSources({ sources: 'x' }, path.isAbsolute), []);
  });
});

describe('ScalarsReaders (vitLens/readScalars)', () => {
  const FIX = path.join(ROOT, 'test/fixtures/tfevents');
  test('first read returns everything grouped by run and tag; the cursor then returns only new points', async () => {
    const readers = new ScalarsReaders();
    const first = await readers.read({ folder: FIX });
    assert.equal(first.reset, false);
    const expected = JSON.parse(fs.readFileSync(path.join(FIX, 'expected.json'), 'utf8')).scalars as {
      run: string;
      tag: string;
    }[];
    assert.equal(
      first.scalars.reduce((n, s) => n + s.points.length, 0),
      expected.length,
    );
    assert.ok(first.scalars.some(s => s.run === 'run_a/rank1' && s.tag === 'train/lr'));
    const again = await readers.read({ folder: FIX, cursor: first.cursor });
    assert.deepEqual([again.reset, again.cursor, again.scalars.length], [false, first.cursor, 0]);
  });
  test('an unknown cursor (worker restarted) starts over with reset; idle readers are dropped', async () => {
    let now = 0;
    const readers = new ScalarsReaders(1000, 2, () => now);
    const r = await readers.read({ folder: FIX, cursor: 'gone' });
    assert.equal(r.reset, true);
    assert.ok(r.scalars.length > 0);
    now = 5000;
    await readers.read({ folder: FIX });
    assert.equal(readers.size, 1, 'the idle reader was dropped');
    await readers.read({ folder: FIX });
    await readers.read({ folder: FIX });
    assert.equal(readers.size, 2, 'at most maxReaders');
    await assert.rejects(readers.read({ folder: 42 } as unknown as Parameters<typeof readers.read>[0]), /folder/);
  });
});

test('durations: a sub-second run is not "0s"; minutes and hours as clocks', () => {
  assert.deepEqual([0, 0.02, 0.4, 2.04, 9.9, 12.4, 65, 3723, 90_000].map(formatDuration), [
    '0s',
    '<0.1s',
    '0.4s',
    '2.0s',
    '9.9s',
    '12s',
    '1:05',
    '1:02:03',
    '1d 1h',
  ]);
});
