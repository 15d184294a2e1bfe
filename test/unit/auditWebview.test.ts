/**
 * The dataset audit panel in headless Chromium around a fake VS Code host (webviewHarness.ts): the
 * page the extension builds (auditHtml, dist/audit.js, media/audit.css) under the same CSP,
 * thumbnails from samples/. Checks the three tabs, the messages the row buttons post, the Undo
 * button, the saved tab, and the message validation. Screenshots (dark, light, high contrast) go
 * to test-output/audit/.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import type { Page } from 'playwright-core';
import { auditHtml } from '../../extension/audit/html';
import { parseViewState, parseWebviewMessage, type AuditViewData } from '../../common/webviewMessages/audit';
import { withoutFile } from '../../extension/audit/listEdits';
import { browserHarness, cspViolations, ROOT, sharedStyle, skipBrowser, type ThemeVars } from './webviewHarness';
import type { Win, Img } from './browserShapes';

const OUT = path.join(ROOT, 'test-output', 'audit');

describe('audit panel messages are validated', () => {
  const files = new Set(['Coat/a.png', 'Bag/b.png']);
  test('accepts well-formed messages about listed files', () => {
    assert.deepEqual(parseWebviewMessage({ type: 'move', file: 'Coat/a.png' }, files), {
      type: 'move',
      file: 'Coat/a.png',
    });
    assert.deepEqual(
      parseWebviewMessage({ type: 'ignore', kind: 'duplicate', files: ['Coat/a.png', 'Bag/b.png'] }, files),
      { type: 'ignore', kind: 'duplicate', files: ['Coat/a.png', 'Bag/b.png'] },
    );
    assert.deepEqual(parseWebviewMessage({ type: 'undo', extra: 1 }, files), { type: 'undo' });
  });
  test('rejects files the panel does not list, unknown kinds and malformed messages', () => {
    for (const m of [
      null,
      [],
      { type: 'delete', file: '../../etc/passwd' },
      { type: 'move', file: '/etc/passwd' },
      { type: 'open' },
      { type: 'ignore', kind: 'labelIssue', files: [] },
      { type: 'ignore', kind: 'evil', files: ['Coat/a.png'] },
      { type: 'ignore', kind: 'outlier', files: ['x.png'] },
      { type: 'rm' },
    ]) {
      assert.equal(parseWebviewMessage(m, files), undefined, JSON.stringify(m));
    }
    const worst = { labelIssues: 'worst', duplicates: 'worst', outliers: 'worst' };
    assert.deepEqual(parseViewState({ tab: 'constructor', sort: { labelIssues: 'toString' } }), {
      tab: 'labelIssues',
      sort: worst,
    });
    assert.deepEqual(parseViewState({ tab: 'outliers', sort: { outliers: 'file', duplicates: 'label' } }), {
      tab: 'outliers',
      sort: { ...worst, outliers: 'file' },
    });
  });
  test('after a move, a file leaves the label issues and outliers and keeps its place in its duplicate group', () => {
    const lists = {
      labelIssues: [{ file: 'a.png', label: 'A', suggested: 'B', score: 0.1 }],
      outliers: [
        { file: 'a.png', score: 0.9 },
        { file: 'c.png', score: 0.5 },
      ],
      duplicates: [
        { files: ['a.png', 'b.png'], similarity: 0.99, conflicting: true, exact: false, labels: ['A', 'B'] },
      ],
      decisions: [],
    };
    const moved = withoutFile(lists, 'a.png', 'B/a.png');
    assert.deepEqual(moved.labelIssues, []);
    assert.deepEqual(
      moved.outliers.map(o => o.file),
      ['c.png'],
    );
    assert.deepEqual(moved.duplicates[0].files, ['B/a.png', 'b.png']);
    assert.deepEqual(withoutFile(lists, 'a.png').duplicates, [], 'a deleted file leaves a group of one: no group');
  });
});

const THEMES: ThemeVars = {
  dark: {
    foreground: '#cccccc',
    'editor-background': '#1f1f1f',
    descriptionForeground: '#9d9d9d',
    'button-background': '#0078d4',
    'button-foreground': '#ffffff',
    'button-secondaryBackground': '#313131',
    'button-secondaryForeground': '#cccccc',
    'list-hoverBackground': '#2a2d2e',
    focusBorder: '#0078d4',
    errorForeground: '#f85149',
    'panel-border': '#2b2b2b',
    'editorWidget-background': '#252526',
    'badge-background': '#616161',
    'badge-foreground': '#f8f8f8',
    'editorWarning-foreground': '#cca700',
  },
  light: {
    foreground: '#3b3b3b',
    'editor-background': '#ffffff',
    descriptionForeground: '#717171',
    'button-background': '#005fb8',
    'button-foreground': '#ffffff',
    'button-secondaryBackground': '#e5e5e5',
    'button-secondaryForeground': '#3b3b3b',
    'list-hoverBackground': '#f2f2f2',
    focusBorder: '#005fb8',
    errorForeground: '#f85149',
    'panel-border': '#e5e5e5',
    'editorWidget-background': '#f3f3f3',
    'badge-background': '#cccccc',
    'badge-foreground': '#3b3b3b',
    'editorWarning-foreground': '#bf8803',
  },
  hc: {
    foreground: '#ffffff',
    'editor-background': '#000000',
    descriptionForeground: '#ffffff',
    'button-background': '#000000',
    'button-foreground': '#ffffff',
    'button-border': '#6fc3df',
    'button-secondaryBackground': '#000000',
    'button-secondaryForeground': '#ffffff',
    'list-hoverBackground': '#000000',
    focusBorder: '#f38518',
    errorForeground: '#f48771',
    'panel-border': '#6fc3df',
    'editorWidget-background': '#0c141f',
    contrastBorder: '#6fc3df',
    'badge-background': '#000000',
    'badge-foreground': '#ffffff',
    'editorWarning-foreground': '#fc0',
  },
};

function sampleData(origin: string, undo?: string): AuditViewData {
  return {
    folder: '/data/fashion-audit',
    file: '/data/fashion-audit/.vit-lens/audit.json',
    model: 'default',
    images: 321,
    classes: ['Ankle boot', 'Bag', 'Coat', 'Dress', 'Pullover', 'Sandal', 'Shirt', 'Sneaker', 'T-shirt_top', 'Trouser'],
    baseUri: `${origin}/samples`,
    labelIssues: [
      { file: 'fashion-mnist-test-6-coat.png', label: 'Ankle boot', suggested: 'Coat', score: 0.00002 },
      { file: 'fashion-mnist-test-4-shirt.png', label: 'Trouser', suggested: 'Shirt', score: 0.0021 },
      { file: 'fashion-mnist-test-18-bag.png', label: 'Dress', suggested: 'Bag', score: 0.0033 },
    ],
    duplicates: [
      {
        files: ['fashion-mnist-test-8-sandal.png', 'fashion-mnist-test-9-sneaker.png'],
        similarity: 0.9689,
        conflicting: true,
        exact: false,
        labels: ['Sandal', 'Sneaker'],
      },
      {
        files: ['fashion-mnist-test-2-trouser.png', 'fashion-mnist-test-13-dress.png'],
        similarity: 1,
        conflicting: false,
        exact: true,
        labels: ['Trouser'],
      },
    ],
    outliers: [{ file: 'fashion-mnist-test-0-ankle-boot.png', score: 0.892 }],
    undo,
    ignored: 0,
  };
}

describe('audit panel in headless Chromium', { skip: skipBrowser }, () => {
  const harness = browserHarness({
    bundle: 'dist/audit.js',
    style: 'media/audit.css',
    html: auditHtml,
    themes: THEMES,
    out: OUT,
  });

  const send = (page: Page, data: AuditViewData) =>
    page.evaluate(d => (globalThis as unknown as Win).postMessage({ type: 'data', data: d }, '*'), data);
  const imagesLoaded = (page: Page) =>
    page.waitForFunction(() =>
      [...(globalThis as unknown as Win).document.querySelectorAll<Img>('#list img')].every(
        i => i.complete && i.naturalWidth > 0,
      ),
    );

  test('tabs, row actions, undo and the saved tab; CSP holds', async () => {
    const { page, posted, errors } = await harness.open({ viewport: { width: 1000, height: 520 }, theme: 'dark' });
    assert.deepEqual(await posted(), [{ type: 'ready' }]);
    await send(page, sampleData(harness.origin));
    assert.deepEqual(await page.locator('[role="tab"] .count').allTextContents(), ['3', '2', '1']);
    assert.equal(await page.locator('#tab-labelIssues').getAttribute('aria-selected'), 'true');
    assert.equal(await page.locator('#list > li').count(), 3);
    assert.match(
      (await page.locator('#list > li').first().textContent()) ?? '',
      /labelled “Ankle boot”, looks like “Coat”/,
    );
    assert.equal(await page.locator('#undo').getAttribute('disabled'), '');
    assert.deepEqual(await sharedStyle(page), { background: 'rgb(31, 31, 31)', title: '600' });
    await imagesLoaded(page);
    await page.screenshot({ path: path.join(OUT, 'label-issues-dark.png') });

    // Sorting: by file name, then back to the audit's ranking; the choice is kept per tab.
    const files = () => page.locator('#list > li .file').allTextContents();
    await page.locator('#sort').selectOption('file');
    assert.deepEqual(await files(), [
      'fashion-mnist-test-18-bag.png',
      'fashion-mnist-test-4-shirt.png',
      'fashion-mnist-test-6-coat.png',
    ]);
    await page.locator('#sort').selectOption('suggested');
    assert.deepEqual(await files(), [
      'fashion-mnist-test-18-bag.png',
      'fashion-mnist-test-6-coat.png',
      'fashion-mnist-test-4-shirt.png',
    ]);
    await page.locator('#sort').selectOption('worst');
    assert.deepEqual(await files(), [
      'fashion-mnist-test-6-coat.png',
      'fashion-mnist-test-4-shirt.png',
      'fashion-mnist-test-18-bag.png',
    ]);

    const first = page.locator('#list > li').first();
    await first.locator('button.thumb').click();
    await first.locator('button.move').click();
    await first.locator('button.delete').click();
    await first.locator('button.ignore').click();
    assert.deepEqual((await posted()).slice(1), [
      { type: 'open', file: 'fashion-mnist-test-6-coat.png' },
      { type: 'move', file: 'fashion-mnist-test-6-coat.png' },
      { type: 'delete', file: 'fashion-mnist-test-6-coat.png' },
      { type: 'ignore', kind: 'labelIssue', files: ['fashion-mnist-test-6-coat.png'] },
    ]);

    await page.locator('#tab-duplicates').click();
    assert.equal(await page.locator('#list > li.group').count(), 2);
    assert.equal(await page.locator('#list > li.group.conflicting').count(), 1);
    assert.match(
      (await page.locator('#explain').textContent()) ?? '',
      /16×16 pixel thumbnails .*not by the model’s features/,
      'the panel says what duplicates are compared by',
    );
    assert.match(
      (await page.locator('#list > li.group').first().textContent()) ?? '',
      /conflicting labels: Sandal \/ Sneaker/,
    );
    assert.match((await page.locator('#list > li.group').nth(1).textContent()) ?? '', /identical files/);
    await page.locator('#list > li.group').first().locator('.group-head button.ignore').click();
    assert.deepEqual((await posted()).at(-1), {
      type: 'ignore',
      kind: 'duplicate',
      files: ['fashion-mnist-test-8-sandal.png', 'fashion-mnist-test-9-sneaker.png'],
    });
    await imagesLoaded(page);
    await page.screenshot({ path: path.join(OUT, 'duplicates-dark.png') });

    // Keyboard: ArrowRight moves to the outliers tab; the choice is saved with setState.
    await page.locator('#tab-duplicates').focus();
    await page.keyboard.press('ArrowRight');
    assert.equal(await page.locator('#tab-outliers').getAttribute('aria-selected'), 'true');
    // The audit file too: the serializer reopens it after a window reload.
    assert.deepEqual(await page.evaluate(() => (globalThis as unknown as Win).__state), {
      tab: 'outliers',
      sort: { labelIssues: 'worst', duplicates: 'worst', outliers: 'worst' },
      file: '/data/fashion-audit/.vit-lens/audit.json',
    });
    assert.match((await page.locator('#list').textContent()) ?? '', /fashion-mnist-test-0-ankle-boot\.png/);

    await send(page, sampleData(harness.origin, 'move fashion-mnist-test-6-coat.png back to “Ankle boot”'));
    assert.equal(await page.locator('#undo').getAttribute('disabled'), null);
    await page.locator('#undo').click();
    assert.deepEqual((await posted()).at(-1), { type: 'undo' });
    assert.deepEqual(errors, []);
    assert.deepEqual(await cspViolations(page), []);
  });

  for (const theme of ['light', 'hc'] as const) {
    test(`renders in the ${theme} theme`, async () => {
      const { page, errors } = await harness.open({
        viewport: { width: 1000, height: 520 },
        theme,
        saved: { tab: 'duplicates' },
      });
      await send(page, sampleData(harness.origin));
      assert.equal(
        await page.locator('#tab-duplicates').getAttribute('aria-selected'),
        'true',
        'the saved tab is restored',
      );
      await imagesLoaded(page);
      await page.screenshot({ path: path.join(OUT, `duplicates-${theme}.png`) });
      await page.locator('#tab-labelIssues').click();
      await imagesLoaded(page);
      await page.screenshot({ path: path.join(OUT, `label-issues-${theme}.png`) });
      assert.deepEqual(errors, []);
    });
  }
});
