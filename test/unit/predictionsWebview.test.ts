/**
 * The Classify Folder table in headless Chromium around a fake VS Code host (as webview.test.ts
 * does for the results panel): the page the extension builds (predictionsHtml, dist/predictions.js,
 * media/predictions.css) under the same CSP, thumbnails from samples/. Checks sorting, the
 * disagreement and text filters, the messages rows and buttons post, virtual rendering of 100k
 * rows, and restoring the view from getState. Screenshots go to test-output/predictions/.
 *
 * Skipped without Chromium unless VIT_LENS_REQUIRE_CHROMIUM=1 (npm run test:e2e), which fails instead.
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Page } from 'playwright-core';
import { predictionsHtml } from '../../extension/classifyFolder/html';
import {
  parseViewState,
  parseWebviewMessage,
  type TableData,
  type TableRow,
} from '../../common/webviewMessages/predictions';
import {
  browserHarness,
  cspViolations,
  ROOT,
  sharedStyle,
  skipBrowser,
  type OpenedPage,
  type ThemeVars,
} from './webviewHarness';
import type { Win, El, Img, Control } from './browserShapes';

const OUT = path.join(ROOT, 'test-output', 'predictions');

describe('predictions table messages are validated', () => {
  const files = new Set(['coat/a.png']);
  test('accepts well-formed messages', () => {
    assert.deepEqual(parseWebviewMessage({ type: 'ready' }, files), { type: 'ready' });
    assert.deepEqual(parseWebviewMessage({ type: 'explain', file: 'coat/a.png' }, files), {
      type: 'explain',
      file: 'coat/a.png',
    });
    assert.deepEqual(parseWebviewMessage({ type: 'openFile', which: 'csv', x: 1 }, files), {
      type: 'openFile',
      which: 'csv',
    });
    assert.deepEqual(parseWebviewMessage({ type: 'rerun' }, files), { type: 'rerun' });
  });
  test('rejects anything else, and files the table does not show', () => {
    for (const m of [
      null,
      'ready',
      [],
      { type: 'explain', file: '../../etc/passwd' },
      { type: 'explain', file: '/etc/passwd' },
      { type: 'explain' },
      { type: 'openFile', which: 'exe' },
      { type: 'delete' },
    ]) {
      assert.equal(parseWebviewMessage(m, files), undefined, JSON.stringify(m));
    }
  });
  test('the saved view state is checked field by field', () => {
    assert.deepEqual(
      parseViewState({
        sort: 'confidence',
        descending: true,
        disagreementsOnly: 1,
        filter: 7,
        jsonFile: '/x/predictions.json',
      }),
      {
        sort: 'confidence',
        descending: true,
        disagreementsOnly: false,
        filter: '',
        jsonFile: '/x/predictions.json',
      },
    );
    assert.equal(parseViewState({ sort: 'constructor' }).sort, 'file');
  });
});

/** The theme variables VS Code sets (dark+, light+), for the fake host. */
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
    'charts-green': '#89d185',
    'list-hoverBackground': '#2a2d2e',
    'list-inactiveSelectionBackground': '#37373d',
    focusBorder: '#0078d4',
    errorForeground: '#f85149',
    'panel-border': '#2b2b2b',
    'editorWidget-background': '#252526',
    'editorGroup-border': '#2b2b2b',
    'input-background': '#313131',
    'input-foreground': '#cccccc',
    'input-border': '#3c3c3c',
    'settings-checkboxBackground': '#313131',
    'settings-checkboxBorder': '#3c3c3c',
    'settings-checkboxForeground': '#cccccc',
    'editorWarning-foreground': '#cca700',
    'settings-textInputBackground': '#313131',
    'settings-textInputForeground': '#cccccc',
    'settings-textInputBorder': '#3c3c3c',
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
    'charts-green': '#388a34',
    'list-hoverBackground': '#f2f2f2',
    'list-inactiveSelectionBackground': '#e4e6f1',
    focusBorder: '#005fb8',
    errorForeground: '#f85149',
    'panel-border': '#e5e5e5',
    'editorWidget-background': '#f3f3f3',
    'editorGroup-border': '#e5e5e5',
    'input-background': '#ffffff',
    'input-foreground': '#3b3b3b',
    'input-border': '#cecece',
    'settings-checkboxBackground': '#f8f8f8',
    'settings-checkboxBorder': '#cecece',
    'settings-checkboxForeground': '#3b3b3b',
    'editorWarning-foreground': '#bf8803',
    'settings-textInputBackground': '#ffffff',
    'settings-textInputForeground': '#3b3b3b',
    'settings-textInputBorder': '#cecece',
  },
};

/** The ten samples as a class-folder dataset, three of them filed under the wrong class. */
function sampleData(origin: string): TableData {
  const labels = JSON.parse(fs.readFileSync(path.join(ROOT, 'samples', 'labels.json'), 'utf8')) as Record<
    string,
    string
  >;
  const wrong: Record<string, string> = {
    'fashion-mnist-test-4-shirt.png': 'T-shirt/top',
    'fashion-mnist-test-6-coat.png': 'Pullover',
    'fashion-mnist-test-19-t-shirt-top.png': 'Shirt',
  };
  const rows: TableRow[] = Object.keys(labels)
    .sort()
    .map((file, i) => {
      const truth = labels[file];
      const predicted = wrong[file] ?? truth;
      return {
        file,
        folderLabel: truth,
        predicted,
        confidence: [0.91, 0.42, 0.77, 0.63, 0.35, 0.88, 0.58, 0.97, 0.71, 0.84][i],
        agrees: predicted === truth,
        runnerUp: { label: 'Bag', score: 0.05 },
      };
    });
  return {
    folder: '/data/fashion-mnist/test',
    model: 'default',
    createdAt: '2024-05-01T12:00:00.000Z',
    partial: false,
    total: 11,
    baseUri: `${origin}/samples`,
    csvFile: '/data/fashion-mnist/test/predictions.csv',
    jsonFile: '/data/fashion-mnist/test/predictions.json',
    rows,
    failures: [
      {
        file: 'broken.png',
        error: '/data/fashion-mnist/test/broken.png: cannot decode image (unsupported image format)',
      },
    ],
  };
}

describe('predictions table in headless Chromium', { skip: skipBrowser }, () => {
  const harness = browserHarness({
    bundle: 'dist/predictions.js',
    style: 'media/predictions.css',
    html: predictionsHtml,
    themes: THEMES,
    out: OUT,
  });
  let origin = '';
  before(() => {
    origin = harness.origin;
  });

  const open = (opts: { saved?: unknown; theme?: 'dark' | 'light'; height?: number } = {}): Promise<OpenedPage> =>
    harness.open({ viewport: { width: 1100, height: opts.height ?? 640 }, saved: opts.saved, theme: opts.theme });
  const send = (page: Page, data: TableData) =>
    page.evaluate(d => (globalThis as unknown as Win).postMessage({ type: 'data', data: d }, '*'), data);
  const column = (page: Page, cls: string) => page.locator(`#spacer .row .cell.${cls}`).allTextContents();
  /** Rows in screen order (they are absolutely positioned, so DOM order is not screen order). */
  const visibleFiles = (page: Page) =>
    page.evaluate(() =>
      [...(globalThis as unknown as Win).document.querySelectorAll('#spacer .row')]
        .sort((a: El, b: El) => Number(a.dataset.pos) - Number(b.dataset.pos))
        .map((r: El) => r.dataset.file as string),
    );

  test('sorts, filters, posts validated messages; CSP holds', async () => {
    const { page, posted, errors } = await open();
    assert.deepEqual(await posted(), [{ type: 'ready' }]);
    const data = sampleData(origin);
    await send(page, data);

    assert.equal(await page.locator('#spacer .row').count(), 10);
    assert.match(
      (await page.locator('#summary').textContent()) ?? '',
      /^10 images · 70\.0% agree with folder labels \(7\/10\) · 3 disagreements · 1 failed$/,
    );
    assert.match((await page.locator('#failures-list').textContent()) ?? '', /broken\.png.*cannot decode/);
    assert.deepEqual(await sharedStyle(page), { background: 'rgb(31, 31, 31)', title: '600' });
    await page.waitForFunction(() =>
      [...(globalThis as unknown as Win).document.querySelectorAll<Img>('#spacer img')].every(
        i => i.complete && i.naturalWidth > 0,
      ),
    );
    await page.screenshot({ path: path.join(OUT, 'table-dark.png') });

    // Confidence: ascending on the first click, descending on the second.
    const confHeader = page.locator('[role="columnheader"][data-key="confidence"]');
    await confHeader.locator('button').click();
    assert.equal(await confHeader.getAttribute('aria-sort'), 'ascending');
    const byFile = new Map(data.rows.map(r => [r.file, r]));
    const asc = (await visibleFiles(page)).map(f => byFile.get(f)!.confidence);
    assert.deepEqual(
      asc,
      [...data.rows.map(r => r.confidence)].sort((a, b) => a - b),
    );
    await confHeader.locator('button').click();
    assert.equal(await confHeader.getAttribute('aria-sort'), 'descending');
    const desc = (await visibleFiles(page)).map(f => byFile.get(f)!.confidence);
    assert.deepEqual(desc, [...asc].reverse());
    assert.equal((await column(page, 'pct')).length, 0, 'pct is not a cell');
    const pcts = await page.locator('#spacer .row .pct').allTextContents();
    assert.equal(pcts.length, 10);

    // Disagreements only: exactly the three misfiled images.
    await page.locator('#disagreements').click();
    const shown = await visibleFiles(page);
    assert.deepEqual(
      shown.sort(),
      data.rows
        .filter(r => r.agrees === false)
        .map(r => r.file)
        .sort(),
    );
    assert.deepEqual(await page.locator('#spacer .badge').allTextContents(), ['disagree', 'disagree', 'disagree']);
    assert.match((await page.locator('#shown').textContent()) ?? '', /showing 3 of 10/);
    await page.screenshot({ path: path.join(OUT, 'table-disagreements.png') });

    // Text filter narrows within the disagreements; clearing both brings all rows back.
    await page.locator('#filter').click();
    await page.keyboard.type('coat');
    assert.deepEqual(await visibleFiles(page), ['fashion-mnist-test-6-coat.png']);
    await page.keyboard.press('Control+A');
    await page.keyboard.press('Backspace');
    await page.locator('#disagreements').click();
    assert.equal(await page.locator('#spacer .row').count(), 10);

    // A row click (and Enter on a focused row) asks for that image's attention map.
    const target = page.locator('#spacer .row[data-file="fashion-mnist-test-18-bag.png"]');
    await target.click();
    assert.deepEqual((await posted()).at(-1), { type: 'explain', file: 'fashion-mnist-test-18-bag.png' });
    await page.locator('#spacer .row[data-file="fashion-mnist-test-2-trouser.png"]').focus();
    await page.keyboard.press('Enter');
    assert.deepEqual((await posted()).at(-1), { type: 'explain', file: 'fashion-mnist-test-2-trouser.png' });
    await page.locator('#open-csv').click();
    await page.locator('#open-json').click();
    await page.locator('#rerun').click();
    assert.deepEqual((await posted()).slice(-3), [
      { type: 'openFile', which: 'csv' },
      { type: 'openFile', which: 'json' },
      { type: 'rerun' },
    ]);
    const files = new Set(data.rows.map(r => r.file));
    for (const m of await posted()) assert.ok(parseWebviewMessage(m, files), `rejected: ${JSON.stringify(m)}`);

    // The view settings (not the rows) are kept for hide/show and reload.
    const saved = await page.evaluate(() => (globalThis as unknown as Win).__state);
    assert.deepEqual(parseViewState(saved), {
      sort: 'confidence',
      descending: true,
      disagreementsOnly: false,
      filter: '',
      jsonFile: data.jsonFile,
    });

    assert.deepEqual(await cspViolations(page), [], 'CSP violations');
    assert.deepEqual(errors, [], 'console errors');
    await page.close();
  });

  test('28×28 thumbnails are drawn 2× larger and pixelated; a failure is named once, relative; a split editor scrolls instead of cutting columns', async () => {
    for (const theme of ['dark', 'light'] as const) {
      const { page, errors } = await open({ theme });
      await send(page, sampleData(origin));
      await page.waitForFunction(() =>
        [...(globalThis as unknown as Win).document.querySelectorAll<Img>('#spacer img')].every(
          i => i.complete && i.naturalWidth > 0,
        ),
      );
      const thumbs = await page
        .locator('#spacer img')
        .evaluateAll((imgs: Img[]) =>
          imgs.map(i => [
            i.getBoundingClientRect().width,
            i.getBoundingClientRect().height,
            (globalThis as unknown as Win).getComputedStyle(i).imageRendering,
          ]),
        );
      assert.equal(thumbs.length, 10);
      for (const t of thumbs) assert.deepEqual(t, [56, 56, 'pixelated']);
      const rowH = await page
        .locator('#spacer .row')
        .first()
        .evaluate((r: El) => r.getBoundingClientRect().height);
      assert.ok(rowH >= 56, `the row (${rowH}px) holds the thumbnail`);
      // The failure: its relative name once, then the problem; no absolute path.
      await page.locator('#failures summary').click();
      assert.equal(
        await page.locator('#failures-list li').first().textContent(),
        'broken.png — cannot decode image (unsupported image format)',
      );
      await page.screenshot({ path: path.join(OUT, `table-thumbs-${theme}.png`) });

      // Split editor: no header is cut ("Confid…"), the table scrolls sideways.
      await page.setViewportSize({ width: 520, height: 640 });
      const cut = await page
        .locator('.row.head button')
        .evaluateAll((bs: El[]) =>
          bs.filter(b => b.parentElement!.scrollWidth > b.parentElement!.clientWidth).map(b => b.textContent),
        );
      assert.deepEqual(cut, [], 'header cells cut');
      const [scrollW, clientW] = await page.locator('#scroller').evaluate((s: El) => [s.scrollWidth, s.clientWidth]);
      assert.ok(scrollW > clientW, `the table scrolls sideways (${scrollW} > ${clientW})`);
      await page.screenshot({ path: path.join(OUT, `table-narrow-${theme}.png`) });
      assert.deepEqual(errors, [], 'console errors');
      await page.close();
    }
  });

  test('100k rows: only the rows in view are in the DOM; scrolling to the end shows the last row', async () => {
    const { page, errors } = await open({ theme: 'light' });
    // Built in the page: shipping 100k objects through the test driver alone takes seconds.
    const base = { ...sampleData(origin), failures: [], total: 100_000, baseUri: `${origin}/nowhere` };
    const ms = await page.evaluate(async b => {
      const rows = Array.from({ length: 100_000 }, (_, i) => ({
        file: `class${i % 7}/img${i}.png`,
        folderLabel: `class${i % 7}`,
        predicted: `class${(i * 3) % 7}`,
        confidence: ((i * 7919) % 1000) / 1000,
        agrees: i % 7 === (i * 3) % 7,
      }));
      const g = globalThis as unknown as Win;
      const t0 = performance.now();
      g.postMessage({ type: 'data', data: { ...b, rows } }, '*');
      while (!g.document.querySelector('#spacer .row')) await new Promise(r => setTimeout(r, 5));
      return performance.now() - t0;
    }, base);
    assert.ok(ms < 3000, `rendering 100k rows took ${ms.toFixed(0)} ms`);
    const domRows = await page.locator('#spacer .row').count();
    assert.ok(domRows > 5 && domRows < 80, `${domRows} rows in the DOM`);
    const t0 = Date.now();
    await page.locator('[data-key="confidence"] button').click();
    assert.ok(Date.now() - t0 < 3000, `sorting 100k rows took ${Date.now() - t0} ms`);
    await page.locator('#scroller').evaluate((s: El) => (s.scrollTop = s.scrollHeight));
    await page.waitForFunction(() =>
      [...(globalThis as unknown as Win).document.querySelectorAll('#spacer .row')].some(
        (r: El) => r.dataset.pos === '99999',
      ),
    );
    const last = await page.locator('#spacer .row[data-pos="99999"] .pct').textContent();
    assert.equal(last, '99.9%');
    assert.deepEqual(
      errors.filter(e => !/404/.test(e)),
      [],
      'console errors (missing thumbnails aside)',
    );
    await page.close();
  });

  test('restores its view from getState; shows a partial run and an error', async () => {
    const { page } = await open({
      saved: { sort: 'confidence', descending: false, disagreementsOnly: true, filter: '', jsonFile: '/x' },
      theme: 'light',
    });
    await send(page, { ...sampleData(origin), partial: true, total: 40 });
    assert.equal(await page.locator('#spacer .row').count(), 3);
    assert.equal(await page.locator('#disagreements').evaluate((c: Control) => c.checked), true);
    assert.match((await page.locator('#partial').textContent()) ?? '', /Stopped early after 11 of 40 images/);
    await page.waitForFunction(() =>
      [...(globalThis as unknown as Win).document.querySelectorAll<Img>('#spacer img')].every(
        i => i.complete && i.naturalWidth > 0,
      ),
    );
    await page.screenshot({ path: path.join(OUT, 'table-light-partial.png') });
    await page.evaluate(() =>
      (globalThis as unknown as Win).postMessage({ type: 'error', message: 'predictions.json cannot be read' }, '*'),
    );
    assert.equal(await page.locator('#error').isVisible(), true);
    await page.close();
  });
});
