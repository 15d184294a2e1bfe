/**
 * The results panel's webview, in headless Chromium (playwright-core + Debian's chromium) around a
 * fake VS Code host: the page is the one the extension builds (panelHtml, dist/webview.js,
 * media/panel.css) under the same CSP, served over a local HTTP origin that plays the role of
 * `webview.cspSource` (test/unit/webviewHarness.ts). Checks what the panel renders from a state
 * message, which messages its controls post, that it restores from getState, and that the CSP
 * holds. Screenshots go to test-output/webview/ (look at them).
 *
 * Without Chromium (a dev machine that has not run scripts/e2e-install.sh) the browser tests are
 * skipped; `npm run test:e2e` sets VIT_LENS_REQUIRE_CHROMIUM=1 so that there they fail instead.
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import type { Page } from 'playwright-core';
import { panelHtml } from '../../extension/panelHtml';
import {
  parseModelSummary,
  parseWebviewMessage,
  type Controls,
  type PanelState,
  type WebviewMessage,
} from '../../common/webviewMessages/resultsPanel';
import {
  browserHarness,
  cspViolations,
  ROOT,
  sharedStyle,
  skipBrowser,
  type OpenedPage,
  type Theme,
  type ThemeVars,
} from './webviewHarness';
import type { Win, El, Img, Canvas, Control } from './browserShapes';

const OUT = path.join(ROOT, 'test-output', 'webview');

const controls: Controls = {
  method: 'rollout',
  classIndex: null,
  headFusion: 'mean',
  discardRatio: 0.9,
  layer: 0,
  head: null,
  opacity: 0.5,
  colormap: 'turbo',
};

describe('parseWebviewMessage (every webview message is validated)', () => {
  test('accepts well-formed messages', () => {
    assert.deepEqual(parseWebviewMessage({ type: 'ready' }, 1), { type: 'ready' });
    assert.deepEqual(parseWebviewMessage({ type: 'select', index: 1 }, 2), { type: 'select', index: 1 });
    assert.deepEqual(parseWebviewMessage({ type: 'setControls', controls, reexplain: true }, 1), {
      type: 'setControls',
      controls,
      reexplain: true,
    });
    assert.deepEqual(parseWebviewMessage({ type: 'copyJson', extra: 'dropped' }, 1), { type: 'copyJson' });
    const relevance = { ...controls, method: 'relevance', classIndex: 9 } as const;
    assert.deepEqual(parseWebviewMessage({ type: 'setControls', controls: relevance, reexplain: true }, 1), {
      type: 'setControls',
      controls: relevance,
      reexplain: true,
    });
    // A state saved before relevance existed has no classIndex: the top-1 class.
    const { classIndex: _, ...old } = controls;
    assert.deepEqual(parseWebviewMessage({ type: 'setControls', controls: old, reexplain: false }, 1), {
      type: 'setControls',
      controls,
      reexplain: false,
    });
  });
  test('rejects malformed or out-of-range messages', () => {
    const bad: unknown[] = [
      null,
      'ready',
      [],
      { type: 'explainFile', image: '/etc/passwd' },
      { type: 'select', index: 2 },
      { type: 'select', index: -1 },
      { type: 'select', index: 0.5 },
      { type: 'setControls', controls, reexplain: 'yes' },
      { type: 'setControls', controls: { ...controls, discardRatio: 1 }, reexplain: true },
      { type: 'setControls', controls: { ...controls, discardRatio: Number.NaN }, reexplain: true },
      { type: 'setControls', controls: { ...controls, headFusion: 'median' }, reexplain: true },
      { type: 'setControls', controls: { ...controls, colormap: 'jet' }, reexplain: false },
      { type: 'setControls', controls: { ...controls, head: -1 }, reexplain: true },
      { type: 'setControls', controls: { ...controls, layer: '1' }, reexplain: true },
      { type: 'setControls', controls: { ...controls, opacity: 2 }, reexplain: false },
      { type: 'setControls', controls: { ...controls, method: 'gradcam' }, reexplain: true },
      { type: 'setControls', controls: { ...controls, method: 'relevance', classIndex: -1 }, reexplain: true },
      { type: 'setControls', controls: { ...controls, method: 'relevance', classIndex: '3' }, reexplain: true },
    ];
    for (const m of bad) assert.equal(parseWebviewMessage(m, 2), undefined, JSON.stringify(m));
  });
});

test('webview sources typecheck against the DOM (webview/tsconfig.json)', () => {
  execFileSync(
    process.execPath,
    [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', path.join(ROOT, 'webview')],
    { stdio: 'pipe' },
  );
});

/** The theme variables VS Code sets (dark+, light+, high contrast), for the fake host. */
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
    'list-hoverBackground': '#2a2d2e',
    'list-inactiveSelectionBackground': '#37373d',
    focusBorder: '#0078d4',
    errorForeground: '#f85149',
    'panel-border': '#2b2b2b',
    'dropdown-background': '#313131',
    'dropdown-foreground': '#cccccc',
    'dropdown-border': '#3c3c3c',
    'editorWidget-background': '#333333',
    'settings-dropdownListBorder': '#454545',
    'settings-dropdownBackground': '#313131',
    'settings-dropdownForeground': '#cccccc',
    'settings-dropdownBorder': '#3c3c3c',
    'settings-checkboxBackground': '#313131',
    'settings-checkboxBorder': '#3c3c3c',
    'settings-checkboxForeground': '#cccccc',
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
    'list-hoverBackground': '#f2f2f2',
    'list-inactiveSelectionBackground': '#e4e6f1',
    focusBorder: '#005fb8',
    errorForeground: '#f85149',
    'panel-border': '#e5e5e5',
    'dropdown-background': '#ffffff',
    'dropdown-foreground': '#3b3b3b',
    'dropdown-border': '#cecece',
    'editorWidget-background': '#e8e8e8',
    'settings-dropdownListBorder': '#cecece',
    'settings-dropdownBackground': '#ffffff',
    'settings-dropdownForeground': '#3b3b3b',
    'settings-dropdownBorder': '#cecece',
    'settings-checkboxBackground': '#f8f8f8',
    'settings-checkboxBorder': '#cecece',
    'settings-checkboxForeground': '#3b3b3b',
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
    'charts-blue': '#3794ff',
    'list-hoverBackground': '#000000',
    'list-inactiveSelectionBackground': '#000000',
    focusBorder: '#f38518',
    errorForeground: '#f48771',
    'panel-border': '#6fc3df',
    'dropdown-background': '#000000',
    'dropdown-foreground': '#ffffff',
    'dropdown-border': '#6fc3df',
    'editorWidget-background': '#0c141f',
    contrastBorder: '#6fc3df',
    contrastActiveBorder: '#f38518',
    'settings-dropdownBackground': '#000000',
    'settings-dropdownForeground': '#ffffff',
    'settings-dropdownBorder': '#6fc3df',
    'settings-checkboxBackground': '#000000',
    'settings-checkboxBorder': '#6fc3df',
    'settings-checkboxForeground': '#ffffff',
  },
};

/** 14×14 map, hot in the top-left quadrant, cold elsewhere (so pixels can be checked by position). */
function quadrantMap(): number[] {
  const v: number[] = [];
  for (let r = 0; r < 14; r++) for (let c = 0; c < 14; c++) v.push(r < 7 && c < 7 ? 1 : 0);
  return v;
}

describe('results panel in headless Chromium', { skip: skipBrowser }, () => {
  const harness = browserHarness({
    bundle: 'dist/webview.js',
    style: 'media/panel.css',
    html: panelHtml,
    themes: THEMES,
    out: OUT,
  });
  let origin = '';
  let state: PanelState;

  before(() => {
    origin = harness.origin;
    const photo = (name: string) => ({ path: `/photos/${name}`, name, src: `${origin}/test/fixtures/photos/${name}` });
    state = {
      version: 1,
      mode: 'classify',
      model: { name: 'vit-tiny', provider: 'cpu', numLayers: 2, numHeads: 4, explainAvailable: true },
      rows: [
        {
          ...photo('chelsea.png'),
          predictions: [
            { label: 'tabby cat', index: 0, score: 0.8123 },
            { label: 'clock', index: 9, score: 0.1 },
            { label: 'coffee mug', index: 1, score: 0.05 },
          ],
        },
        { ...photo('coffee.png'), predictions: [{ label: 'coffee mug', index: 1, score: 0.6 }] },
        { ...photo('rocket.jpg'), error: '/photos/rocket.jpg: unsupported image' },
      ],
      selected: 0,
      controls,
      map: {
        image: '/photos/chelsea.png',
        width: 451,
        height: 300,
        method: 'rollout',
        grid: [14, 14],
        values: quadrantMap(),
        label: 'rollout · mean · discard 0.9',
      },
    };
  });

  /** A page with the fake host: acquireVsCodeApi records posted messages and keeps setState's value. */
  async function openPanel(opts: { saved?: PanelState; theme?: Theme } = {}): Promise<OpenedPage> {
    return harness.open({ viewport: { width: 1000, height: 720 }, ...opts });
  }

  const send = (page: Page, s: PanelState) =>
    page.evaluate(st => (globalThis as unknown as Win).postMessage({ type: 'state', state: st }, '*'), s);
  /** The last message posted; typed as setControls, which most checks read (the others are compared whole). */
  const lastPosted = async (posted: () => Promise<unknown[]>) =>
    (await posted()).at(-1) as Extract<WebviewMessage, { type: 'setControls' }>;

  /** RGBA at a fraction of the overlay canvas. */
  const pixel = (page: Page, fx: number, fy: number) =>
    page.evaluate(
      ([x, y]) => {
        const c = (globalThis as unknown as Win).document.getElementById<Canvas>('overlay');
        return Array.from(
          c.getContext('2d').getImageData(Math.floor(c.width * x), Math.floor(c.height * y), 1, 1).data,
        ) as number[];
      },
      [fx, fy],
    );

  test('renders predictions, errors and the overlay; controls post validated messages; CSP holds', async () => {
    const { page, posted, errors } = await openPanel();
    assert.deepEqual(await posted(), [{ type: 'ready' }], 'the page asks for its state once loaded');
    await send(page, state);

    // Top-k labels as bars with percentages, one row per image, the failed image with its error.
    const rows = page.locator('#rows > li');
    assert.equal(await rows.count(), 3);
    assert.deepEqual(await rows.nth(0).locator('.label').allTextContents(), ['tabby cat', 'clock', 'coffee mug']);
    assert.deepEqual(await rows.nth(0).locator('.score').allTextContents(), ['81.2%', '10.0%', '5.0%']);
    assert.equal(await rows.nth(0).locator('.bar').first().getAttribute('aria-valuenow'), '81.2');
    const [barW, fillW] = await rows
      .nth(0)
      .locator('.bar')
      .first()
      .evaluate((b: El) => [b.getBoundingClientRect().width, b.firstChild!.getBoundingClientRect().width]);
    assert.ok(Math.abs(fillW / barW - 0.812) < 0.02, `bar fill ${fillW}/${barW}`);
    assert.match((await rows.nth(2).locator('.error').textContent()) ?? '', /unsupported image/);
    assert.deepEqual(await sharedStyle(page), { background: 'rgb(31, 31, 31)' });

    // The overlay: canvas at the image's size; hot quadrant = turbo(1) = #900c00, cold = turbo(0) = #23171b.
    await page.locator('#image').evaluate((img: Img) => img.decode());
    assert.deepEqual(
      await page.evaluate(() => [
        (globalThis as unknown as Win).document.getElementById<Canvas>('overlay').width,
        (globalThis as unknown as Win).document.getElementById<Canvas>('overlay').height,
      ]),
      [451, 300],
    );
    const hot = await pixel(page, 0.1, 0.1);
    const cold = await pixel(page, 0.9, 0.9);
    const near = (a: number[], b: number[]) => a.every((v, i) => Math.abs(v - b[i]) <= 3);
    assert.ok(near(hot, [144, 12, 0, 255]), `hot pixel ${hot}`);
    assert.ok(near(cold, [35, 23, 27, 255]), `cold pixel ${cold}`);
    assert.equal(
      await page.locator('#overlay').evaluate(c => (globalThis as unknown as Win).getComputedStyle(c).opacity),
      '0.5',
    );
    await page.screenshot({ path: path.join(OUT, 'panel-dark.png'), fullPage: true });

    // Head fusion (a vscode-single-select): open it and pick "max" like a user.
    await page.locator('#head-fusion').click();
    await page.locator('#head-fusion').getByRole('option', { name: 'max', exact: true }).click();
    assert.deepEqual(await lastPosted(posted), {
      type: 'setControls',
      controls: { ...controls, headFusion: 'max' },
      reexplain: true,
    });

    // Discard ratio by keyboard: one step down, posted on change (not on every input).
    await page.locator('#discard-ratio').focus();
    await page.keyboard.press('ArrowLeft');
    const afterRatio = await lastPosted(posted);
    assert.equal(afterRatio.type, 'setControls');
    assert.equal(afterRatio.reexplain, true);
    assert.ok(
      Math.abs(afterRatio.controls.discardRatio - 0.89) < 1e-9,
      `discard ratio ${afterRatio.controls.discardRatio}`,
    );

    // Opacity: local (no worker round trip), the canvas follows at once.
    await page.locator('#opacity').focus();
    await page.keyboard.press('ArrowRight');
    const afterOpacity = await lastPosted(posted);
    assert.equal(afterOpacity.reexplain, false);
    assert.ok(Math.abs(afterOpacity.controls.opacity - 0.55) < 1e-9);
    assert.equal(
      await page.locator('#overlay').evaluate(c => (globalThis as unknown as Win).getComputedStyle(c).opacity),
      '0.55',
    );

    // Colormap: redrawn locally; gray's hot pixel is white.
    await page.locator('#colormap').click();
    await page.locator('#colormap').getByRole('option', { name: 'gray', exact: true }).click();
    const afterCmap = await lastPosted(posted);
    assert.deepEqual([afterCmap.controls.colormap, afterCmap.reexplain], ['gray', false]);
    assert.deepEqual((await pixel(page, 0.1, 0.1)).slice(0, 3), [255, 255, 255]);

    // Raw attention: layer and head pickers appear (2 layers, 4 heads + fused), discard ratio hides.
    await page.locator('vscode-radio[value="attention"]').click();
    const afterMethod = await lastPosted(posted);
    assert.deepEqual([afterMethod.controls.method, afterMethod.reexplain], ['attention', true]);
    assert.equal(await page.locator('#layer-group').isVisible(), true);
    assert.equal(await page.locator('#discard-group').isVisible(), false);
    assert.equal(await page.locator('#layer vscode-option').count(), 2);
    assert.equal(await page.locator('#head vscode-option').count(), 5);
    await page.locator('#layer').click();
    await page.locator('#layer').getByRole('option', { name: 'Layer 1', exact: true }).click();
    assert.equal((await lastPosted(posted)).controls.layer, 1, JSON.stringify((await posted()).slice(-3)));
    await page.locator('#head').click();
    await page.locator('#head').getByRole('option', { name: 'Head 2', exact: true }).click();
    const afterHead = await lastPosted(posted);
    assert.deepEqual([afterHead.controls.layer, afterHead.controls.head, afterHead.reexplain], [1, 2, true]);

    // Every control message the page posted passes the extension's validator.
    for (const m of await posted()) assert.ok(parseWebviewMessage(m, 3), `rejected: ${JSON.stringify(m)}`);

    // Buttons and row selection (keyboard: rows are buttons).
    await page.locator('#copy-json').click();
    assert.deepEqual(await lastPosted(posted), { type: 'copyJson' });
    await page.locator('#save-overlay').click();
    assert.deepEqual(await lastPosted(posted), { type: 'saveOverlay' });
    await page.locator('#rows > li').nth(1).locator('button').focus();
    await page.keyboard.press('Enter');
    assert.deepEqual(await lastPosted(posted), { type: 'select', index: 1 });
    assert.equal(
      await page.locator('#overlay').isVisible(),
      false,
      'the old map is not drawn over the newly selected image',
    );

    // The page keeps its state for hide/show and reload.
    const saved = await page.evaluate(() => (globalThis as unknown as Win).__state as PanelState);
    assert.equal(saved.selected, 1);
    assert.equal(saved.controls.method, 'attention');

    assert.deepEqual(await cspViolations(page), [], 'CSP violations');
    assert.deepEqual(errors, [], 'console errors');
    await page.close();
  });

  test("class relevance: the selected row's labels pick the class, the map says which (light, dark, high contrast)", async () => {
    for (const theme of ['dark', 'light', 'hc'] as const) {
      const { page, posted, errors } = await openPanel({ theme });
      await send(page, state);
      // Only the selected row's labels are buttons; clicking "clock" asks for its relevance.
      assert.equal(await page.locator('#rows > li').nth(0).locator('button.class-pick').count(), 3);
      assert.equal(await page.locator('#rows > li').nth(1).locator('button.class-pick').count(), 0);
      await page.locator('#rows > li').nth(0).getByRole('button', { name: 'clock' }).click();
      assert.deepEqual(await lastPosted(posted), {
        type: 'setControls',
        controls: { ...controls, method: 'relevance', classIndex: 9 },
        reexplain: true,
      });
      assert.equal(await page.locator('vscode-radio[value="relevance"]').evaluate((r: Control) => r.checked), true);
      assert.equal(await page.locator('#discard-group').isVisible(), false);
      assert.equal(await page.locator('#fusion-group').isVisible(), false);
      assert.equal(await page.locator('#relevance-hint').isVisible(), true);

      // The host answers with the map for "clock": caption and the pressed label follow it.
      const relevance: PanelState = {
        ...state,
        controls: { ...controls, method: 'relevance', classIndex: 9 },
        map: {
          ...state.map!,
          method: 'relevance',
          label: 'class clock',
          class: { index: 9, label: 'clock' },
          values: quadrantMap().reverse(),
        },
      };
      await send(page, relevance);
      assert.equal(await page.locator('#map-caption').textContent(), 'Class relevance: why “clock”');
      const pressed = page.locator('#rows > li').nth(0).locator('button.class-pick[aria-pressed="true"]');
      assert.deepEqual(await pressed.allTextContents(), ['clock']);
      await page.locator('#image').evaluate((img: Img) => img.decode());
      const hot = await pixel(page, 0.9, 0.9);
      assert.ok(
        Math.abs(hot[0] - 144) <= 3 && hot[1] <= 15,
        `the relevance map is drawn (hot bottom-right), got ${hot}`,
      );
      await page.screenshot({ path: path.join(OUT, `panel-relevance-${theme}.png`), fullPage: true });

      // Clicking the explained label again asks for nothing; another label asks for its class; Rollout goes back.
      const before = (await posted()).length;
      await pressed.click();
      assert.equal((await posted()).length, before);
      await page.locator('#rows > li').nth(0).getByRole('button', { name: 'tabby cat' }).click();
      assert.equal((await lastPosted(posted)).controls.classIndex, 0);
      await page.locator('vscode-radio[value="rollout"]').click();
      assert.deepEqual(await lastPosted(posted), { type: 'setControls', controls, reexplain: true });
      for (const m of await posted()) assert.ok(parseWebviewMessage(m, 3), `rejected: ${JSON.stringify(m)}`);
      assert.deepEqual(await cspViolations(page), [], 'CSP violations');
      assert.deepEqual(errors, [], 'console errors');
      await page.close();
    }
  });

  /** Bounding box of an element in the page. */
  const box = (page: Page, sel: string) =>
    page.locator(sel).evaluate((el: El) => {
      const r = el.getBoundingClientRect();
      return { x: r.x, y: r.y, w: r.width, h: r.height };
    });

  test('a 28×28 image is drawn 8× larger, pixelated, with the overlay exactly over it and a colour scale beside it (light, dark, high contrast)', async () => {
    const sample = 'fashion-mnist-test-0-ankle-boot.png';
    const small: PanelState = {
      ...state,
      rows: [
        {
          path: `/samples/${sample}`,
          name: sample,
          src: `${origin}/samples/${sample}`,
          predictions: [{ label: 'Ankle boot', index: 9, score: 0.9 }],
        },
      ],
      map: { ...state.map!, image: `/samples/${sample}`, width: 28, height: 28 },
    };
    for (const theme of ['dark', 'light', 'hc'] as const) {
      const { page, errors } = await openPanel({ theme });
      await send(page, small);
      await page.locator('#image').evaluate((img: Img) => img.decode());
      await page.waitForFunction(() =>
        (globalThis as unknown as Win).document.getElementById('image').classList.contains('pixelated'),
      );
      const img = await box(page, '#image');
      assert.deepEqual([img.w, img.h], [224, 224], 'drawn at 8× its 28 px');
      assert.equal(
        await page.locator('#image').evaluate(el => (globalThis as unknown as Win).getComputedStyle(el).imageRendering),
        'pixelated',
      );
      const overlay = await box(page, '#overlay');
      assert.deepEqual(overlay, img, 'the heatmap covers the image exactly');
      assert.match((await page.locator('#scale-note').textContent()) ?? '', /28×28 px, shown 8× larger/);
      // The thumbnail in the row is sharp too.
      await page.waitForFunction(() =>
        (globalThis as unknown as Win).document.querySelector('#rows img.thumb')?.classList.contains('pixelated'),
      );

      // Legend: visible beside the caption, low end = turbo(0) #23171b, high end = turbo(1) #900c00.
      assert.equal(await page.locator('#legend').isVisible(), true);
      assert.deepEqual(await page.locator('#legend > span').allTextContents(), ['low', 'high']);
      const ends = (): Promise<number[][]> =>
        page.locator('#legend-bar').evaluate((c: Canvas) => {
          const d = c.getContext('2d').getImageData(0, 0, c.width, 1).data;
          return [Array.from(d.slice(0, 3)), Array.from(d.slice(-4, -1))];
        });
      const near = (a: number[], b: number[]) => a.every((v, i) => Math.abs(v - b[i]) <= 3);
      const [lo, hi] = await ends();
      assert.ok(near(lo, [35, 23, 27]) && near(hi, [144, 12, 0]), `turbo legend ends ${lo} ${hi}`);
      const legend = await box(page, '#legend');
      assert.ok(
        legend.y >= img.y + img.h &&
          legend.x + legend.w <= (await box(page, '#detail')).x + (await box(page, '#detail')).w + 1,
        'the legend sits under the heatmap, inside its column',
      );
      // The legend follows the colormap: gray goes black → white.
      await page.locator('#colormap').click();
      await page.locator('#colormap').getByRole('option', { name: 'gray', exact: true }).click();
      assert.deepEqual(await ends(), [
        [0, 0, 0],
        [255, 255, 255],
      ]);
      await page.screenshot({ path: path.join(OUT, `panel-small-${theme}.png`), fullPage: true });
      // No map: no legend.
      await send(page, { ...small, map: undefined });
      assert.equal(await page.locator('#legend').isVisible(), false);
      // A large photo is drawn at its own size (capped by the column), not pixelated.
      await send(page, state);
      await page.locator('#image').evaluate((img: Img) => img.decode());
      await page.waitForFunction(
        () => !(globalThis as unknown as Win).document.getElementById('image').classList.contains('pixelated'),
      );
      assert.deepEqual(await box(page, '#overlay'), await box(page, '#image'));
      assert.equal(await page.locator('#scale-note').isVisible(), false);
      assert.deepEqual(errors, [], 'console errors');
      await page.close();
    }
  });

  test('an image that cannot be read: its message once, its short name, no broken-image glyph, attention controls disabled', async () => {
    const corrupt = '/tmp/vit-lens-abc123/not-an-image.jpg';
    const broken: PanelState = {
      ...state,
      rows: [
        state.rows[0],
        {
          path: corrupt,
          name: 'bad/not-an-image.jpg',
          src: `${origin}/test/fixtures/bad/not-an-image.jpg`,
          error: `${corrupt}: not a PNG, JPEG, GIF, WebP or BMP image`,
        },
      ],
      selected: 1,
      map: undefined,
      mapError: `${corrupt}: not a PNG, JPEG, GIF, WebP or BMP image`,
    };
    for (const theme of ['dark', 'light', 'hc'] as const) {
      const { page, posted } = await openPanel({ theme });
      await send(page, broken);
      const text = await page.locator('body').innerText();
      assert.equal(text.split('not a PNG, JPEG').length - 1, 1, `the message appears once:\n${text}`);
      assert.equal(text.includes('/tmp/'), false, 'no temp path');
      assert.match(
        (await page.locator('#rows > li').nth(1).locator('.error').textContent()) ?? '',
        /^bad\/not-an-image\.jpg: not a PNG/,
      );
      // Neither the stage nor the row shows the undecodable file as an <img> (no broken-image glyph).
      assert.equal(await page.locator('#stage').isVisible(), false);
      assert.equal(await page.locator('#rows > li').nth(1).locator('img').count(), 0);
      assert.equal(await page.locator('#rows > li').nth(1).locator('.thumb.missing').count(), 1);
      // The attention controls do nothing for this row: disabled, and clicking them posts nothing.
      for (const id of ['head-fusion', 'discard-ratio', 'opacity', 'colormap', 'save-overlay'])
        assert.equal(await page.locator(`#${id}`).getAttribute('disabled'), '', id);
      assert.equal(await page.locator('vscode-radio[value="attention"]').evaluate((r: Control) => r.disabled), true);
      const before = (await posted()).length;
      await page.locator('vscode-radio[value="attention"]').click({ force: true });
      assert.equal((await posted()).length, before, 'a disabled radio posts nothing');
      await page.screenshot({ path: path.join(OUT, `panel-error-row-${theme}.png`), fullPage: true });
      // Selecting the good row enables them again.
      await send(page, { ...state, selected: 0 });
      assert.equal(await page.locator('#colormap').getAttribute('disabled'), null);
      await page.close();
    }
  });

  test('the built-in demo model on a colour photo says its labels mean little; on its own kind of image (28×28 grey) it does not', async () => {
    const demo = {
      name: 'Fashion-MNIST demo (10 clothing classes)',
      provider: 'cpu' as const,
      numLayers: 6,
      numHeads: 4,
      explainAvailable: true,
      demo: true,
    };
    const sample = 'fashion-mnist-test-0-ankle-boot.png';
    const { page, errors } = await openPanel({ theme: 'light' });
    await send(page, { ...state, model: demo, map: undefined });
    await page.locator('#image').evaluate((img: Img) => img.decode());
    await page.locator('#demo-note').waitFor({ state: 'visible', timeout: 5000 });
    assert.match(
      (await page.locator('#demo-note').textContent()) ?? '',
      /This image is in colour and 451×300 px, unlike the 28×28 grey clothing images the built-in demo model learned from/,
    );
    assert.equal(await page.locator('#model').textContent(), 'Fashion-MNIST demo (10 clothing classes) · CPU');
    await page.screenshot({ path: path.join(OUT, 'panel-demo-note-light.png'), fullPage: true });
    // In a narrow panel the long name is cut with an ellipsis; the buttons stay on the header's one line.
    await page.setViewportSize({ width: 480, height: 720 });
    const [copyY, modelY] = await page.evaluate(() =>
      ['save-overlay', 'model'].map(
        id => (globalThis as unknown as Win).document.getElementById(id).getBoundingClientRect().top,
      ),
    );
    assert.ok(Math.abs(copyY - modelY) < 12, `one header line (model at ${modelY}, Save Overlay at ${copyY})`);
    assert.equal(await page.locator('#model').getAttribute('title'), 'Fashion-MNIST demo (10 clothing classes) · CPU');
    await page.screenshot({ path: path.join(OUT, 'panel-demo-narrow-light.png') });
    await page.setViewportSize({ width: 1000, height: 720 });
    for (const theme of ['dark', 'hc'] as const) {
      const other = await openPanel({ theme });
      await send(other.page, { ...state, model: demo, map: undefined });
      await other.page.locator('#demo-note').waitFor({ state: 'visible', timeout: 5000 });
      await other.page.screenshot({ path: path.join(OUT, `panel-demo-note-${theme}.png`), fullPage: true });
      await other.page.close();
    }
    // Its own kind of image: no note.
    const own: PanelState = {
      ...state,
      model: demo,
      map: undefined,
      rows: [
        {
          path: `/samples/${sample}`,
          name: sample,
          src: `${origin}/samples/${sample}`,
          predictions: [{ label: 'Ankle boot', index: 9, score: 0.9 }],
        },
      ],
    };
    await send(page, own);
    await page.locator('#image').evaluate((img: Img) => img.decode());
    await page.waitForFunction(() =>
      (globalThis as unknown as Win).document.getElementById('image').classList.contains('pixelated'),
    );
    assert.equal(await page.locator('#demo-note').isVisible(), false);
    // Another model on the colour photo: no note either.
    await send(page, { ...state, map: undefined });
    await page.locator('#image').evaluate((img: Img) => img.decode());
    await page.waitForTimeout(100);
    assert.equal(await page.locator('#demo-note').isVisible(), false);
    // A model that carries a training sample said (classify) that this image is unlike its training data.
    const far = {
      ...state,
      map: undefined,
      rows: state.rows.map((r, i) =>
        i === state.selected ? { ...r, unlikeTraining: { distance: 0.68, threshold: 0.42 } } : r,
      ),
    };
    await send(page, far);
    await page.locator('#demo-note').waitFor({ state: 'visible', timeout: 5000 });
    assert.match(
      (await page.locator('#demo-note').textContent()) ?? '',
      /This image is unlike the training data of this model \(distance 0\.68 to its nearest training images; 99% of them are within 0\.42\)/,
    );
    await page.screenshot({ path: path.join(OUT, 'panel-unlike-training-light.png'), fullPage: true });
    assert.deepEqual(errors, [], 'console errors');
    await page.close();
  });

  test('after a reload the header still names the model (the saved summary is kept when well-formed)', async () => {
    const model = {
      name: 'colors-2024-05-01-1200',
      provider: 'cpu',
      numLayers: 2,
      numHeads: 4,
      explainAvailable: true,
    };
    assert.deepEqual(parseModelSummary(model), model);
    assert.deepEqual(parseModelSummary({ ...model, demo: true, extra: 1 }), { ...model, demo: true });
    for (const bad of [
      undefined,
      null,
      'x',
      { ...model, name: '' },
      { ...model, provider: 'tpu' },
      { ...model, numLayers: -1 },
      { ...model, numHeads: 1.5 },
      { ...model, explainAvailable: 'yes' },
    ]) {
      assert.equal(parseModelSummary(bad), undefined, JSON.stringify(bad));
    }
    const { page } = await openPanel({ saved: { ...state, model: { ...model, provider: 'cpu' } } });
    assert.equal(await page.locator('#model').textContent(), 'colors-2024-05-01-1200 · CPU');
    await page.close();
  });

  test('restores from getState before the host answers (hide/show, reload)', async () => {
    const { page, posted } = await openPanel({
      saved: { ...state, controls: { ...controls, colormap: 'viridis' } },
      theme: 'light',
    });
    assert.deepEqual(await posted(), [{ type: 'ready' }]);
    assert.deepEqual(await page.locator('#rows > li').nth(0).locator('.label').allTextContents(), [
      'tabby cat',
      'clock',
      'coffee mug',
    ]);
    assert.equal(await page.locator('#colormap').evaluate((s: Control) => s.value), 'viridis');
    const hot = await pixel(page, 0.1, 0.1);
    assert.ok(hot[0] > 200 && hot[1] > 200 && hot[2] < 80, `viridis(1) is yellow, got ${hot}`);
    await page.locator('#image').evaluate((img: Img) => img.decode());
    await page.screenshot({ path: path.join(OUT, 'panel-light.png'), fullPage: true });
    await page.close();
  });

  test('a state with an error and no map shows the error, not a stale overlay (high-contrast theme)', async () => {
    const { page } = await openPanel({ theme: 'hc' });
    await send(page, {
      ...state,
      selected: 1,
      map: { ...state.map!, image: '/photos/coffee.png', width: 400, height: 400 },
    });
    await page.locator('#image').evaluate((img: Img) => img.decode());
    await page.screenshot({ path: path.join(OUT, 'panel-high-contrast.png'), fullPage: true });
    await send(page, { ...state, map: undefined, mapError: 'This model cannot be explained: no attention outputs' });
    assert.equal(await page.locator('#overlay').isVisible(), false);
    assert.match((await page.locator('#map-error').textContent()) ?? '', /cannot be explained/);
    assert.equal(await page.locator('#save-overlay').getAttribute('disabled'), '');
    await page.close();
  });
});
