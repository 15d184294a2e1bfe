/**
 * The training dashboard in headless Chromium (playwright-core + /usr/bin/chromium) around a fake
 * VS Code host, fed by the extension's own RunSource + SourceState: a run recorded with our CLI
 * (test/fixtures/dashboard, scripts/make_dashboard_fixture.sh) is replayed line by line into a
 * temporary run folder while the page watches. Checks that the curves grow, that smoothing and the
 * log scale change what is drawn, that a confusion cell lists exactly the held-out files with that
 * (label, predicted) pair, that two runs overlay, and TensorBoard scalars through the worker's
 * reader. Screenshots go to test-output/dashboard/ (look at them).
 *
 * Skipped without Chromium unless VIT_LENS_REQUIRE_CHROMIUM=1 (scripts/e2e.sh sets it).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Page } from 'playwright-core';
import { dashboardHtml } from '../../extension/dashboard/html';
import { HostMessage, parseDashboardMessage, type WebviewMessage } from '../../common/webviewMessages/dashboard';
import { RunSource } from '../../extension/dashboard/runSource';
import { SourceState } from '../../extension/dashboard/sourceState';
import { ScalarsReaders } from '../../server/scalarsReaders';
import { browserHarness, cspViolations, ROOT, skipBrowser, type ThemeVars } from './webviewHarness';
import type { RunReport } from '../../common/runFolder';
import type { ChartsWin, Win, El, Img, Canvas } from './browserShapes';

const OUT = path.join(ROOT, 'test-output', 'dashboard');
const FIX = path.join(ROOT, 'test', 'fixtures', 'dashboard');
const DATASET = path.join(FIX, 'dataset');

const fixture = (name: string) =>
  fs
    .readFileSync(path.join(FIX, 'run', name), 'utf8')
    .replaceAll('${DATASET}', DATASET)
    .replaceAll('${REPO}', ROOT);
const sleep = (ms: number) => new Promise(r => setTimeout(r, ms));

/** The theme variables VS Code sets (dark+, light+), chart colours included, for the fake host. */
const THEMES: ThemeVars = {
  dark: {
    foreground: '#cccccc',
    'editor-background': '#1f1f1f',
    descriptionForeground: '#9d9d9d',
    'button-background': '#0078d4',
    'button-foreground': '#ffffff',
    'button-secondaryBackground': '#313131',
    'button-secondaryForeground': '#cccccc',
    'charts-blue': '#3794ff',
    'charts-orange': '#d18616',
    'charts-green': '#89d185',
    'charts-purple': '#b180d7',
    'charts-red': '#f14c4c',
    'charts-yellow': '#cca700',
    'list-hoverBackground': '#2a2d2e',
    focusBorder: '#0078d4',
    'panel-border': '#2b2b2b',
    'dropdown-background': '#313131',
    'dropdown-foreground': '#cccccc',
    'dropdown-border': '#3c3c3c',
    'badge-background': '#616161',
    'badge-foreground': '#f8f8f8',
  },
  light: {
    foreground: '#3b3b3b',
    'editor-background': '#ffffff',
    descriptionForeground: '#717171',
    'button-background': '#005fb8',
    'button-foreground': '#ffffff',
    'button-secondaryBackground': '#e5e5e5',
    'button-secondaryForeground': '#3b3b3b',
    'charts-blue': '#1a85ff',
    'charts-orange': '#d18616',
    'charts-green': '#388a34',
    'charts-purple': '#652d90',
    'charts-red': '#e51400',
    'charts-yellow': '#bf8803',
    'list-hoverBackground': '#f2f2f2',
    focusBorder: '#005fb8',
    'panel-border': '#e5e5e5',
    'dropdown-background': '#ffffff',
    'dropdown-foreground': '#3b3b3b',
    'dropdown-border': '#cecece',
    'badge-background': '#cccccc',
    'badge-foreground': '#3b3b3b',
  },
};

describe('training dashboard in headless Chromium', { skip: skipBrowser }, () => {
  const harness = browserHarness({
    bundle: 'dist/dashboard.js',
    style: 'dist/dashboard.css',
    html: dashboardHtml,
    themes: THEMES,
    out: OUT,
  });
  let origin = '';
  const tmpDirs: string[] = [];

  before(() => {
    origin = harness.origin;
  });

  after(() => {
    for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
  });

  /** The page plus the extension-side pipeline: RunSource → SourceState → postMessage, snapshot on `ready`. */
  async function openDashboard(
    sources: SourceState[],
    opts: { theme?: 'dark' | 'light'; saved?: unknown; width?: number } = {},
  ) {
    const { page, errors, posted } = await harness.open({
      viewport: { width: opts.width ?? 1200, height: 900 },
      saved: opts.saved,
      theme: opts.theme,
    });
    await page.waitForFunction(() =>
      (globalThis as unknown as Win).__posted.some(m => (m as { type: string }).type === 'ready'),
    );
    await send(page, { type: 'snapshot', sources: sources.map(s => s.view) });
    return { page, errors, posted };
  }

  const send = (page: Page, m: HostMessage) =>
    page.evaluate(msg => (globalThis as unknown as Win).postMessage(msg, '*'), JSON.parse(JSON.stringify(m)));

  /** A SourceState whose deltas go to whichever page is attached (buffering: none before the snapshot). */
  function runState(id: number, dir: string) {
    const box: { page?: Page } = {};
    const state = new SourceState(
      id,
      { kind: 'run', dir },
      f => `${origin}/${path.relative(ROOT, f).split(path.sep).join('/')}`,
      m => {
        if (box.page) void send(box.page, m);
      },
    );
    return { state, box };
  }

  const chartInfo = (page: Page, id: string) =>
    page.evaluate(chartId => {
      const c = (globalThis as unknown as ChartsWin).__vitLensCharts.get(chartId);
      if (!c) return undefined;
      const u = c.plot;
      return {
        points: u.data[0].length as number,
        labels: u.series.slice(1).map(s => s.label as string) as string[],
        nonNull: u.data.slice(1).map(d => d.filter(v => v !== null && v !== undefined).length as number),
        data: u.data.map(d => Array.from(d)) as (number | null)[][],
        distr: u.scales.y.distr as number,
        pixels: (c.el.querySelector('canvas') as Canvas).toDataURL() as string,
      };
    }, id);

  async function waitFor<T>(what: string, get: () => Promise<T>, ok: (v: T) => boolean, ms = 2000): Promise<T> {
    const t0 = Date.now();
    let v = await get();
    while (!ok(v)) {
      if (Date.now() - t0 > ms) assert.fail(`${what}: not within ${ms} ms (last: ${JSON.stringify(v)?.slice(0, 300)})`);
      await sleep(25);
      v = await get();
    }
    return v;
  }

  test('a recorded run replayed live: curves grow, smoothing and log scale redraw, confusion cell → its files', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-dash-run-'));
    tmpDirs.push(dir);
    const lines = fixture('metrics.jsonl').trimEnd().split('\n');
    const finalRun = JSON.parse(fixture('run.json'));
    // While it runs: our own pid (so it is not shown as interrupted), and the start a minute ago.
    const running = {
      ...finalRun,
      status: 'running',
      pid: process.pid,
      finishedAt: undefined,
      epoch: 0,
      step: 0,
      createdAt: new Date(Date.now() - 60_000).toISOString(),
    };
    fs.writeFileSync(path.join(dir, 'run.json'), JSON.stringify(running));
    fs.writeFileSync(path.join(dir, 'metrics.jsonl'), '');
    const { state, box } = runState(0, dir);
    const source = new RunSource(dir, state.runListener, 1000);
    source.start();
    await source.poll();
    const { page, errors, posted } = await openDashboard([state]);
    box.page = page;
    try {
      // Replay: the first two lines, then the rest one at a time; one line is written in two halves.
      const metrics = path.join(dir, 'metrics.jsonl');
      fs.appendFileSync(metrics, lines.slice(0, 2).join('\n') + '\n');
      const first = await waitFor(
        'first points',
        () => chartInfo(page, 'run:loss'),
        c => !!c && c.points >= 2,
      );
      const growth: number[] = [first!.points];
      for (let i = 2; i < lines.length; i++) {
        const t0 = Date.now();
        if (i === 5) {
          fs.appendFileSync(metrics, lines[i].slice(0, 40));
          await sleep(150);
          fs.appendFileSync(metrics, lines[i].slice(40) + '\n');
        } else fs.appendFileSync(metrics, lines[i] + '\n');
        if (JSON.parse(lines[i]).type === 'step') {
          const c = await waitFor(
            `line ${i + 1} drawn`,
            () => chartInfo(page, 'run:loss'),
            c => !!c && c.points > growth[growth.length - 1],
          );
          assert.ok(Date.now() - t0 < 2000, 'a new point shows within 2 s');
          growth.push(c!.points);
        } else await sleep(30);
      }
      const stepLines = lines.map((l: string) => JSON.parse(l)).filter(m => m.type === 'step');
      const loss = await waitFor(
        'last epoch line',
        () => chartInfo(page, 'run:loss'),
        c => c!.nonNull[3] === 8,
      );
      assert.ok(
        growth.length > 10 && growth.every((n, i) => i === 0 || n > growth[i - 1]),
        `the loss curve grew point by point: ${growth}`,
      );
      // Raw + smoothed train loss (every step line) and raw + smoothed val loss (8 epochs).
      assert.deepEqual(loss!.labels, ['train loss (raw)', 'train loss', 'val loss (raw)', 'val loss']);
      assert.deepEqual(loss!.nonNull, [stepLines.length, stepLines.length, 8, 8]);
      const acc = await chartInfo(page, 'run:accuracy');
      assert.equal(acc!.nonNull[acc!.nonNull.length - 1], 8, 'val accuracy per epoch');

      // The run ends: report.json and the final run.json arrive; the header follows.
      fs.writeFileSync(path.join(dir, 'report.json'), fixture('report.json'));
      fs.writeFileSync(
        path.join(dir, 'run.json'),
        JSON.stringify({ ...finalRun, createdAt: running.createdAt, finishedAt: new Date().toISOString() }),
      );
      await waitFor(
        'finished status',
        () => page.locator('.status').first().textContent(),
        t => t === 'finished',
      );
      const header = await page.locator('#runs').textContent();
      assert.match(header!, /backend\s*wasm/);
      assert.match(header!, /epoch\s*8\/8/);
      assert.match(header!, /step\s*144\/144/);
      assert.match(header!, /elapsed\s*1:0\d/);
      assert.match(header!, /best\s*epoch 1 · 70\.8%/);

      // Smoothing: the smoothed line (series 2) and the pixels change with the slider.
      const before = await chartInfo(page, 'run:loss');
      await page.locator('#smoothing').fill('0.95');
      const after = await waitFor(
        'smoothing redraw',
        () => chartInfo(page, 'run:loss'),
        c => c!.pixels !== before!.pixels,
      );
      assert.notDeepEqual(after!.data[2], before!.data[2], 'the smoothed series changed');
      assert.deepEqual(after!.data[1], before!.data[1], 'the raw series did not');
      await page.locator('#smoothing').fill('0');
      const raw = await waitFor(
        'no smoothing',
        () => chartInfo(page, 'run:loss'),
        c => c!.labels.length === 2,
      );
      assert.deepEqual(raw!.labels, ['train loss', 'val loss'], 'smoothing 0: no faint raw copy');
      await page.locator('#smoothing').fill('0.6');

      // Log scale: the y scale becomes logarithmic and the drawing changes.
      const lin = await waitFor(
        'smoothing back',
        () => chartInfo(page, 'run:loss'),
        c => c!.labels.length === 4,
      );
      await page.locator('#log-y').check();
      const log = await waitFor(
        'log redraw',
        () => chartInfo(page, 'run:loss'),
        c => c!.distr === 3,
      );
      assert.notEqual(log!.pixels, lin!.pixels);
      await page.locator('#log-y').uncheck();

      // Epoch axis: the last step is at epoch 8.
      await page.locator('#axis-epoch').click();
      const byEpoch = await waitFor(
        'epoch axis',
        () => chartInfo(page, 'run:loss'),
        c => Math.abs((c!.data[0].at(-1) as number) - 8) < 1e-9,
      );
      assert.ok(byEpoch!.data[0].every(x => (x as number) > 0 && (x as number) <= 8));
      await page.locator('#axis-step').click();

      // Confusion matrix of the best epoch (report.json's predictions are that epoch's).
      const report: RunReport = JSON.parse(fixture('report.json'));
      const best = lines
        .map((l: string) => JSON.parse(l))
        .find(m => m.type === 'epoch' && m.epoch === report.bestEpoch);
      const cells = page.locator('#confusion button.cell');
      assert.equal(await cells.count(), 16);
      assert.deepEqual(await cells.allTextContents(), best.confusion.flat().map(String));
      const classes: string[] = finalRun.classes;
      const pairs: [number, number][] = [
        [0, 1],
        [2, 0],
        [1, 1],
      ];
      for (const [t, p] of pairs) {
        await page.locator(`#confusion button.cell[data-row="${t}"][data-col="${p}"]`).click();
        const expected = report.heldOut
          .filter(h => h.label === t && h.predicted === p)
          .map(h => h.file)
          .sort();
        assert.equal(
          expected.length,
          best.confusion[t][p],
          'the fixture is consistent: the cell counts the held-out images',
        );
        await waitFor(
          'cell images',
          () => page.locator('#cell-images .thumb').count(),
          n => n === expected.length,
        );
        const listed = (
          await page.locator('#cell-images .thumb').evaluateAll(els => els.map((e: El) => e.dataset.file as string))
        ).sort();
        assert.deepEqual(listed, expected, `cell ${classes[t]} → ${classes[p]}`);
        assert.match(
          (await page.locator('#cell-images h3').textContent())!,
          new RegExp(`${classes[t]} → ${classes[p]}: ${expected.length} held-out`),
        );
      }
      // P/R/F1 table: one row per class plus three summary rows.
      assert.equal(await page.locator('#prf tr').count(), 1 + classes.length + 3);

      // Clicking a thumbnail asks the extension to open it (validated like every message).
      await page.locator('#cell-images .thumb').first().click();
      const open = (await posted()).at(-1) as WebviewMessage;
      assert.equal(open.type, 'openImage');
      assert.ok(
        parseDashboardMessage(open, 1, (id, f) => !!state.heldOut(f)),
        'the message passes the extension’s validator',
      );
      // No caption is cut (each shows its whole text), and "Move to class…" stays on one line.
      const cut = await page
        .locator('.thumb-caption')
        .evaluateAll(els =>
          els
            .filter((e: El) => e.scrollWidth > e.clientWidth || e.scrollHeight > e.clientHeight + 1)
            .map((e: El) => e.textContent),
        );
      assert.deepEqual(cut, [], 'clipped captions');
      const move = page.locator('#suspect-table button', { hasText: 'Move to class…' }).first();
      // Also in a narrow editor, where the table's columns squeeze.
      const viewport = page.viewportSize()!;
      await page.setViewportSize({ width: 560, height: viewport.height });
      const [moveH, lineH] = await move.evaluate((b: El) => [
        b.getBoundingClientRect().height,
        parseFloat((globalThis as unknown as Win).getComputedStyle(b).lineHeight) || 16,
      ]);
      assert.ok(moveH < lineH * 2, `"Move to class…" wraps (${moveH}px tall)`);
      await page.setViewportSize(viewport);
      await move.click();
      assert.equal(((await posted()).at(-1) as WebviewMessage).type, 'moveImage');
      // The run's dataset gets an audit link (the held-out suspects above cover only the validation split).
      await page.locator('.run button.audit-dataset', { hasText: 'Audit this dataset' }).click();
      assert.deepEqual((await posted()).at(-1), { type: 'auditDataset', id: 0 });
      for (const m of await posted())
        assert.ok(
          parseDashboardMessage(m, 1, (id, f) => !!state.heldOut(f)),
          `rejected: ${JSON.stringify(m)}`,
        );

      // Suspects: most suspect first (lowest probability of the folder's label).
      const firstSuspect = await page.locator('#suspect-table tr').nth(1).getAttribute('data-file');
      const lowest = [...report.heldOut].sort((a, b) => a.probabilities[a.label] - b.probabilities[b.label])[0].file;
      assert.equal(firstSuspect, lowest);

      await page
        .locator('#cell-images .thumb img')
        .first()
        .evaluate((img: Img) => img.decode());
      // The controls bar is sticky: from the top it sits under the header, as a user sees it.
      await page.evaluate(() => (globalThis as unknown as Win).scrollTo(0, 0));
      await page.screenshot({ path: path.join(OUT, 'dashboard-dark.png'), fullPage: true });
      assert.deepEqual(await cspViolations(page), [], 'CSP violations');
      assert.deepEqual(errors, [], 'console errors');

      // Reload (hidden and shown again): the page keeps its settings and asks for a snapshot.
      const saved = (await page.evaluate(() => (globalThis as unknown as Win).__state)) as { sources: unknown };
      assert.deepEqual(saved.sources, [{ kind: 'run', dir }]);
      await page.close();
      box.page = undefined;
      const again = await openDashboard([state], { saved: { ...saved, smoothing: 0.8 } });
      assert.equal(await again.page.locator('#smoothing-value').textContent(), '0.800');
      assert.equal(
        (await chartInfo(again.page, 'run:loss'))!.nonNull[0],
        stepLines.length,
        'the snapshot carries every point',
      );
      await again.page.close();
    } finally {
      source.dispose();
      box.page = undefined;
    }
  });

  test('two runs overlay in the same charts, one colour per run (light theme)', async () => {
    const lines = fixture('metrics.jsonl').trimEnd().split('\n');
    const run = JSON.parse(fixture('run.json'));
    const make = (name: string, upto: number, scale: number) => {
      const dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-dash-')), name);
      tmpDirs.push(path.dirname(dir));
      fs.mkdirSync(dir);
      fs.writeFileSync(path.join(dir, 'run.json'), JSON.stringify(run));
      fs.writeFileSync(path.join(dir, 'report.json'), fixture('report.json'));
      const scaled = lines.slice(0, upto).map((l: string) => {
        const m = JSON.parse(l);
        if (m.type === 'step') m.loss *= scale;
        return JSON.stringify(m);
      });
      fs.writeFileSync(path.join(dir, 'metrics.jsonl'), scaled.join('\n') + '\n');
      return dir;
    };
    const a = runState(0, make('lr-1e-2', lines.length, 1));
    const b = runState(1, make('lr-3e-3', 18, 1.6));
    const sources = [
      new RunSource(a.state.view.dir, a.state.runListener, 60_000),
      new RunSource(b.state.view.dir, b.state.runListener, 60_000),
    ];
    await Promise.all(sources.map(s => s.poll()));
    const { page, errors } = await openDashboard([a.state, b.state], { theme: 'light' });
    const loss = await waitFor(
      'overlay',
      () => chartInfo(page, 'run:loss'),
      c => !!c && c.labels.length === 8,
    );
    assert.deepEqual(
      loss!.labels.filter(l => !l.endsWith('(raw)')),
      ['lr-1e-2 train loss', 'lr-1e-2 val loss', 'lr-3e-3 train loss', 'lr-3e-3 val loss'],
    );
    const strokes = await page.evaluate(() =>
      (globalThis as unknown as ChartsWin).__vitLensCharts
        .get('run:loss')!
        .plot.series.slice(1)
        .map(s => s._stroke ?? s.stroke),
    );
    assert.equal(new Set(strokes.slice(0, 4)).size, 1, 'run A in one colour');
    assert.notEqual(strokes[0], strokes[4], 'run B in another');
    assert.deepEqual(await page.locator('#legend .legend-item').allTextContents(), ['lr-1e-2', 'lr-3e-3']);
    assert.equal(await page.locator('#eval-run-label').isVisible(), true, 'a run picker for the evaluation sections');
    await page.screenshot({ path: path.join(OUT, 'dashboard-overlay-light.png'), fullPage: false });
    assert.deepEqual(errors, []);
    await page.close();
  });

  test('TensorBoard scalars through the worker’s reader: one chart per tag, grouped by prefix; empty folder says so', async () => {
    const readers = new ScalarsReaders();
    const box: { page?: Page } = {};
    const tf = new SourceState(
      0,
      { kind: 'tfevents', dir: path.join(ROOT, 'test/fixtures/tfevents') },
      f => f,
      m => box.page && void send(box.page, m),
    );
    const empty = new SourceState(
      1,
      { kind: 'tfevents', dir: fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-tf-empty-')) },
      f => f,
      m => box.page && void send(box.page, m),
    );
    tmpDirs.push(empty.view.dir);
    for (const s of [tf, empty]) {
      const r = await readers.read({ folder: s.view.dir });
      s.tfListener.scalars(r.scalars, false);
    }
    const { page, errors } = await openDashboard([tf, empty]);
    box.page = page;
    const loss = await waitFor(
      'tf chart',
      () => chartInfo(page, 'tf:train/loss'),
      c => !!c,
    );
    // run_a, run_a/rank1 and live write train/loss.
    assert.deepEqual(loss!.labels.filter(l => !l.endsWith('(raw)')).sort(), [
      'tfevents / live',
      'tfevents / run_a',
      'tfevents / run_a/rank1',
    ]);
    assert.deepEqual(await page.locator('.chart-group').allTextContents(), ['eval', 'train']);
    // Every TensorBoard run has a legend entry whose swatch has its line's colour.
    const legend = await page.locator('#legend .legend-item').evaluateAll(items =>
      items.map(i => ({
        label: i.textContent ?? '',
        color: (globalThis as unknown as Win).getComputedStyle(i.querySelector('i')).backgroundColor as string,
      })),
    );
    // A string, not a function: tsx would wrap inner helpers in __name, which the page lacks.
    const lineColors: Record<string, string> = await page.evaluate(`(() => {
      const probe = document.body.appendChild(document.createElement('i'));
      const u = globalThis.__vitLensCharts.get('tf:train/loss').plot;
      const out = {};
      u.series.slice(1).forEach((s, i) => {
        if (String(s.label).endsWith('(raw)')) return;
        probe.style.background = typeof s.stroke === 'function' ? s.stroke(u, i + 1) : s.stroke;
        out[s.label] = getComputedStyle(probe).backgroundColor;
      });
      probe.remove();
      return out;
    })()`);
    assert.deepEqual(legend.map(l => l.label).sort(), [
      'tfevents / live',
      'tfevents / run_a',
      'tfevents / run_a/rank1',
    ]);
    assert.equal(new Set(legend.map(l => l.color)).size, 3, `legend colours: ${JSON.stringify(legend)}`);
    for (const l of legend) assert.equal(l.color, lineColors[l.label], `${l.label}: ${JSON.stringify(lineColors)}`);
    assert.match(
      (await page.locator('#notices').textContent())!,
      /No TensorBoard event files with scalars in .*vit-lens-tf-empty-.* yet/,
    );
    assert.equal(await page.locator('#axis-epoch').isDisabled(), true);
    await page.screenshot({ path: path.join(OUT, 'dashboard-tfevents.png'), fullPage: true });
    assert.deepEqual(errors, []);
    await page.close();
  });
});
