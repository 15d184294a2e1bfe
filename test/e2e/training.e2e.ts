/**
 * End to end in a real VS Code (code-server driven by Playwright in Debian's Chromium, see
 * harness.ts) for the dataset and training features, with the packaged VSIX and the built-in model
 * (`vitLens.model` empty = models/default, a Fashion-MNIST ViT).
 *
 * Workspace: `colors/` — a class-folder dataset from makeColorDataset (blue/green/red, 8 images
 * each); `fashion/` — the ten Fashion-MNIST samples in folders named after their classes, two of
 * them filed under a wrong class, so the built-in model agrees with some folder labels and not with
 * others.
 *
 * Classify Folder: explorer right-click → "Classify Folder" → progress notification → predictions
 * table (row count, summary), predictions.csv/.json in the folder, "Disagreements only" shows exactly
 * the rows predictions.json marks as disagreeing, a row click opens the results panel on that image.
 *
 * Fine-tuning: explorer right-click on colors/ → "Fine-tune ViT on Folder" → dataset summary modal →
 * the quick-pick form (defaults, head mode, 2 epochs) → the run in the Runs view reaches finished
 * (icon, description, run.json) → the dashboard it opened shows the finished run and uPlot curves
 * with data that are drawn and fit their boxes → the run's context menu "Use as Current Model" writes
 * vitLens.model → Classify Image on a dataset image shows the dataset's classes, as the CLI prints
 * them with the exported model.
 *
 * Screenshots: test-output/e2e-training/ (look at them). Run with `npm run test:e2e`, or after
 * `npm run package`: node --import tsx --test --test-reporter=spec --test-timeout=600000 test/e2e/training.e2e.ts
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Frame, Page } from 'playwright-core';
import { CodeServerSession, ROOT } from './harness';
import { makeColorDataset } from '../fixtures/train/makeDataset';

const OUT = path.join(ROOT, 'test-output', 'e2e-training');
/** makeColorDataset makes class i brightest in channel i % 3 (R, G, B): in this order the folder names match the colours. */
const CLASSES = ['red', 'green', 'blue'];
const PER_CLASS = 8;
/** Fashion-MNIST samples → the class folder they are filed under (two on purpose under a wrong one). */
const FASHION: Record<string, string> = {
  'fashion-mnist-test-0-ankle-boot.png': 'Ankle boot',
  'fashion-mnist-test-1-pullover.png': 'Pullover',
  'fashion-mnist-test-13-dress.png': 'Dress',
  'fashion-mnist-test-18-bag.png': 'Bag',
  'fashion-mnist-test-2-trouser.png': 'Trouser',
  'fashion-mnist-test-19-t-shirt-top.png': 'T-shirt_top',
  'fashion-mnist-test-6-coat.png': 'Coat',
  'fashion-mnist-test-8-sandal.png': 'Sandal',
  // Misfiled: a sneaker under Sandal, a shirt under T-shirt_top (folder names cannot hold '/').
  'fashion-mnist-test-9-sneaker.png': 'Sandal',
  'fashion-mnist-test-4-shirt.png': 'T-shirt_top',
};

let session: CodeServerSession;
let page: Page;
let workspace = '';
let datasetTmp = '';

const shot = (name: string) => session.shot(name);
const withFailureShot = (name: string, body: () => Promise<void>) => session.withFailureShot(name, body);
/** The results panel's document. */
const panelFrame = (timeoutMs = 60_000): Promise<Frame> => session.webviewFrame('#rows', 'the ViT Lens results panel', timeoutMs);

interface FolderPrediction {
  file: string;
  folderLabel?: string;
  predicted: string;
  confidence: number;
  agrees?: boolean;
  top: { label: string; score: number }[];
}

before(async () => {
  // makeColorDataset is async and setupWorkspace is not: generate first, copy in.
  datasetTmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-e2e-dataset-'));
  await makeColorDataset(path.join(datasetTmp, 'colors'), { classes: CLASSES, perClass: PER_CLASS });
  session = new CodeServerSession({
    outDir: OUT,
    setupWorkspace: (ws) => {
      fs.cpSync(path.join(datasetTmp, 'colors'), path.join(ws, 'colors'), { recursive: true });
      for (const [file, label] of Object.entries(FASHION)) {
        fs.mkdirSync(path.join(ws, 'fashion', label), { recursive: true });
        fs.copyFileSync(path.join(ROOT, 'samples', file), path.join(ws, 'fashion', label, file));
      }
      // The built-in model: vitLens.model left empty (its default).
      fs.writeFileSync(path.join(ws, '.vscode/settings.json'), '{}\n');
    },
  });
  await session.start();
  ({ page, workspace } = session);
});

after(async () => {
  await session?.close();
  if (datasetTmp) fs.rmSync(datasetTmp, { recursive: true, force: true });
});

/** The predictions table of one folder (its title names the folder; another folder's table may be open too). */
async function tableFrame(folder: string, timeoutMs = 120_000): Promise<Frame> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    for (const f of page.frames()) {
      if (f.isDetached() || !(await f.$('#spacer').catch(() => null))) continue;
      const title = await f.locator('#title').textContent({ timeout: 1000 }).catch(() => '');
      if (title?.startsWith(`${folder} — `)) return f;
    }
    if (Date.now() > end) {
      await shot(`predictions-table-${folder}-not-found.png`);
      throw new Error(`no predictions table for ${folder}`);
    }
    await page.waitForTimeout(250);
  }
}

/** Every row the (virtualised) table shows, in order: scroll through it and collect data-file. */
async function tableFiles(table: Frame): Promise<string[]> {
  // (No named functions inside evaluate: tsx's keepNames would reference a __name the page lacks.)
  const scroller = table.locator('#scroller');
  const seen = new Map<number, string>();
  await scroller.evaluate((s: any) => void (s.scrollTop = 0));
  for (let step = 0; step < 1000; step++) {
    await page.waitForTimeout(100);
    const { rows, done } = await scroller.evaluate((s: any) => ({
      rows: [...s.querySelectorAll('#spacer .row[data-file]')].map((r: any) => [Number(r.dataset.pos), r.dataset.file as string] as [number, string]),
      done: s.scrollTop + s.clientHeight >= s.scrollHeight - 1,
    }));
    for (const [pos, file] of rows) seen.set(pos, file);
    if (done) break;
    await scroller.evaluate((s: any) => void (s.scrollTop += Math.max(44, s.clientHeight - 88)));
  }
  await scroller.evaluate((s: any) => void (s.scrollTop = 0));
  return [...seen.entries()].sort((x, y) => x[0] - y[0]).map(([, f]) => f);
}

/** Right-click a folder → Classify Folder; returns the table once it shows that folder's rows. */
async function classifyFolder(folder: string, progressShot?: string): Promise<Frame> {
  const json = path.join(workspace, folder, 'predictions.json');
  const before = fs.existsSync(json) ? fs.statSync(json).mtimeMs : 0;
  await session.explorerMenu(folder, 'Classify Folder', progressShot ? `${progressShot}-menu.png` : undefined);
  if (progressShot) {
    // The cancellable "classifying <folder>" notification (the model load comes first; small folders finish fast).
    const toast = page.locator('.notifications-toasts .notification-toast', { hasText: `classifying ${folder}` });
    if (await toast.first().waitFor({ timeout: 60_000 }).then(() => true, () => false)) {
      await shot(`${progressShot}-progress.png`).catch(() => undefined);
      assert.ok((await toast.locator('.monaco-button', { hasText: 'Cancel' }).count()) <= 1);
    }
  }
  for (let i = 0; i < 480 && !(fs.existsSync(json) && fs.statSync(json).mtimeMs > before); i++) await page.waitForTimeout(250);
  assert.ok(fs.existsSync(json), `${json} was not written`);
  const table = await tableFrame(folder);
  // The progress notification goes away once the table is up.
  await page.locator('.notifications-toasts .notification-toast', { hasText: `classifying ${folder}` }).first().waitFor({ state: 'detached', timeout: 30_000 });
  return table;
}

function readPredictions(folder: string): { predictions: FolderPrediction[]; csvFile: string; jsonFile: string; model: string; partial: boolean; failures: unknown[] } {
  return JSON.parse(fs.readFileSync(path.join(workspace, folder, 'predictions.json'), 'utf8'));
}

/** RFC 4180 lines of predictions.csv → rows of fields (the test data has no quoted newlines). */
function readCsv(file: string): string[][] {
  const text = fs.readFileSync(file, 'utf8');
  assert.ok(text.endsWith('\r\n'), 'predictions.csv lines end with CRLF');
  return text
    .split('\r\n')
    .filter(Boolean)
    .map((line) => line.match(/("([^"]|"")*"|[^,]*)(,|$)/g)!.filter((f, i, a) => i < a.length - 1 || f !== '').map((f) => f.replace(/,$/, '').replace(/^"(.*)"$/, '$1').replace(/""/g, '"')));
}

async function setDisagreementsOnly(table: Frame, on: boolean): Promise<void> {
  const box = table.locator('#disagreements');
  for (let i = 0; i < 5 && (await box.evaluate((b: any) => !!b.checked)) !== on; i++) {
    await box.click();
    await page.waitForTimeout(300);
  }
  assert.equal(await box.evaluate((b: any) => !!b.checked), on, 'could not toggle "Disagreements only"');
}

test('Classify Folder on a class-folder dataset: 24-row table, predictions.csv/.json, disagreements, row → results panel', () => withFailureShot('classify-colors', async () => {
  const table = await classifyFolder('colors', '1-classify-folder');
  const total = CLASSES.length * PER_CLASS;

  // The files in the folder.
  const result = readPredictions('colors');
  assert.equal(result.predictions.length, total);
  assert.equal(result.partial, false);
  assert.deepEqual(result.failures, []);
  assert.equal(result.csvFile, path.join(workspace, 'colors', 'predictions.csv'));
  assert.deepEqual(new Set(result.predictions.map((p) => p.folderLabel)), new Set(CLASSES));
  for (const p of result.predictions) assert.equal(p.folderLabel, p.file.split('/')[0]);
  const csv = readCsv(result.csvFile);
  assert.deepEqual(csv[0], ['file', 'folder_label', 'predicted', 'confidence', 'agrees', 'top_k']);
  assert.equal(csv.length - 1, total, 'predictions.csv data rows');
  const byFile = new Map(result.predictions.map((p) => [p.file, p]));
  for (const row of csv.slice(1)) {
    const p = byFile.get(row[0]);
    assert.ok(p, `${row[0]} in the CSV but not in the JSON`);
    assert.deepEqual([row[1], row[2], row[4]], [p.folderLabel, p.predicted, String(p.agrees)]);
  }

  // The table: every image, the summary, the model.
  await table.locator('#summary', { hasText: `${total} images` }).waitFor({ timeout: 30_000 });
  assert.equal(await table.locator('#scroller').getAttribute('aria-rowcount'), String(total + 1));
  const files = await tableFiles(table);
  assert.equal(files.length, total);
  assert.deepEqual([...files].sort(), result.predictions.map((p) => p.file).sort());
  assert.match((await table.locator('#title').textContent()) ?? '', /^colors — /);
  // The built-in model knows clothes, not colours: no folder label can agree.
  const disagreeing = result.predictions.filter((p) => p.agrees === false).map((p) => p.file);
  assert.equal(disagreeing.length, total);
  assert.match((await table.locator('#summary').textContent()) ?? '', new RegExp(`0\\.0% agree with folder labels \\(0/${total}\\) · ${total} disagreements`));
  // A visible row shows the JSON's prediction and confidence.
  const first = table.locator('#spacer .row[data-file="blue/img0.png"]');
  const p0 = byFile.get('blue/img0.png')!;
  assert.equal(await first.locator('.cell.predicted').textContent(), p0.predicted);
  assert.equal(await first.locator('.pct').textContent(), `${(p0.confidence * 100).toFixed(1)}%`);
  assert.equal(await first.locator('.badge').textContent(), 'disagree');
  await first.locator('.thumb img').evaluate((img: any) => img.decode());
  await shot('2-predictions-table-colors.png');

  // Disagreements only: here every row (the count line stays empty when all rows show).
  await setDisagreementsOnly(table, true);
  assert.deepEqual([...(await tableFiles(table))].sort(), [...disagreeing].sort());
  assert.equal(((await table.locator('#shown').textContent()) ?? '').trim(), '');
  await setDisagreementsOnly(table, false);

  // A row click → the results panel (explain mode) on that image, with the labels of predictions.json.
  const file = 'green/img3.png';
  await table.locator(`#spacer .row[data-file="${file}"]`).click();
  const panel = await panelFrame();
  await panel.locator('#rows .name', { hasText: 'img3.png' }).waitFor({ timeout: 60_000 });
  assert.equal(await panel.locator('#rows > li').count(), 1);
  assert.equal(await panel.locator('body').getAttribute('data-mode'), 'explain');
  const labels = panel.locator('#rows > li').first().locator('.label');
  await labels.first().waitFor({ timeout: 60_000 });
  assert.deepEqual(await labels.allTextContents(), byFile.get(file)!.top.map((t) => t.label));
  await panel.locator('#overlay[data-drawn]').waitFor({ timeout: 60_000 });
  await panel.locator('#image').evaluate((img: any) => img.decode());
  await shot('3-row-click-results-panel.png');
}));

test('"Disagreements only" shows exactly the rows whose folder label differs from the prediction', () => withFailureShot('classify-fashion', async () => {
  // Back to the explorer (the last click was in a webview).
  await page.keyboard.press('Escape');
  const table = await classifyFolder('fashion');
  const result = readPredictions('fashion');
  const total = Object.keys(FASHION).length;
  assert.equal(result.predictions.length, total);
  const disagreeing = result.predictions.filter((p) => p.agrees === false).map((p) => p.file).sort();
  // The JSON's agrees is the folder-label rule ("T-shirt_top" = "T-shirt/top", case and punctuation ignored).
  const norm = (s: string) => s.toLowerCase().replace(/[^a-z0-9]+/g, '');
  for (const p of result.predictions) assert.equal(p.agrees, norm(p.folderLabel!) === norm(p.predicted), p.file);
  // The two misfiled images disagree (the built-in model gets all ten samples right), some rows agree.
  for (const f of ['Sandal/fashion-mnist-test-9-sneaker.png', 'T-shirt_top/fashion-mnist-test-4-shirt.png']) assert.ok(disagreeing.includes(f), `${f} should disagree`);
  assert.ok(disagreeing.length >= 1 && disagreeing.length < total, `expected some but not all rows to disagree: ${disagreeing}`);

  await table.locator('#summary', { hasText: `${total} images` }).waitFor({ timeout: 30_000 });
  assert.equal((await tableFiles(table)).length, total);
  await setDisagreementsOnly(table, true);
  await table.locator('#shown', { hasText: `showing ${disagreeing.length} of ${total}` }).waitFor({ timeout: 10_000 });
  const shown = await tableFiles(table);
  assert.deepEqual([...shown].sort(), disagreeing);
  assert.equal(await table.locator('#spacer .row .badge.yes').count(), 0, 'an agreeing row is shown with "Disagreements only"');
  assert.equal(await table.locator('#spacer .row .badge.no').count(), disagreeing.length);
  await shot('4-predictions-disagreements-only.png');
  await setDisagreementsOnly(table, false);
  await table.locator('#shown', { hasText: 'showing' }).waitFor({ state: 'hidden', timeout: 10_000 }).catch(() => undefined);
  assert.equal((await tableFiles(table)).length, total);
}));

// ---- Fine-tune ViT on Folder → Runs view → dashboard → Use as Current Model → Classify Image ----

let runName = '';
let runDir = '';

/** Drag the side bar's edge to the right (the Runs view's descriptions are cut at the default width). */
async function widenSideBar(): Promise<void> {
  const bar = await page.locator('.part.sidebar').boundingBox();
  if (!bar) return;
  const edge = bar.x + bar.width;
  // The sash on the side bar's right edge (there is one per split: pick by position).
  for (const sash of await page.locator('.monaco-sash.vertical').all()) {
    const b = await sash.boundingBox();
    if (!b || Math.abs(b.x + b.width / 2 - edge) > 6 || b.height < bar.height / 2) continue;
    const y = b.y + b.height / 2;
    await page.mouse.move(b.x + b.width / 2, y);
    await page.mouse.down();
    await page.mouse.move(b.x + 150, y, { steps: 4 });
    await page.mouse.move(620, y, { steps: 4 });
    await page.mouse.up();
    return;
  }
}


const runCommand = (title: string) => session.runCommand(title);

/** Expand an explorer folder (a click toggles, so look at aria-expanded first). */
async function expandFolder(name: string): Promise<void> {
  const row = page.locator('.explorer-folders-view .monaco-list-row', { hasText: name });
  await row.waitFor({ timeout: 30_000 });
  for (let i = 0; i < 10 && (await row.getAttribute('aria-expanded')) !== 'true'; i++) {
    await row.click();
    await page.waitForTimeout(500);
  }
  assert.equal(await row.getAttribute('aria-expanded'), 'true', `could not expand ${name} in the explorer`);
}

/** The Runs view's row of a run (activity bar → ViT Lens → Runs). */
const runRow = (name: string) => page.locator('.pane-body .monaco-list-row', { hasText: name });

/** The row of the open quick pick whose label starts with `label` (case-sensitive: "Mode" is not "Base model"). */
const quickPickRow = (label: string) => page.locator('.quick-input-widget .quick-input-list .monaco-list-row', { hasText: new RegExp(`^\\s*${label}`) }).first();

test('Fine-tune ViT on Folder from the explorer (head mode, 2 epochs): the run appears in the Runs view and finishes', () => withFailureShot('fine-tune', async () => {
  await page.keyboard.press('Escape');
  await session.explorerMenu('colors', 'Fine-tune ViT on Folder', '5-fine-tune-menu.png');

  // The worker scans the folder, then a modal summary: 24 images in 3 classes.
  const dialog = page.locator('.monaco-dialog-box');
  await dialog.waitFor({ timeout: 120_000 });
  await dialog.locator('.dialog-message-text', { hasText: `colors: ${CLASSES.length * PER_CLASS} images in ${CLASSES.length} classes` }).waitFor({ timeout: 10_000 });
  const detail = (await dialog.locator('.dialog-message-detail').textContent()) ?? '';
  for (const c of CLASSES) assert.match(detail, new RegExp(`${c}\\s+${PER_CLASS} images`), `summary detail: ${detail}`);
  await shot('6-fine-tune-dataset-summary.png');
  await dialog.locator('.monaco-button', { hasText: 'Continue' }).click();

  // The form: defaults accepted, except 2 epochs and head mode (picked explicitly).
  const form = page.locator('.quick-input-widget', { hasText: 'Start Training' });
  await form.waitFor({ timeout: 30_000 });
  await quickPickRow('Base model').waitFor({ timeout: 10_000 });
  assert.match((await quickPickRow('Base model').textContent()) ?? '', /models[\\/]default/, 'the built-in model is the default base model');
  await quickPickRow('Mode').click();
  await page.locator('.quick-input-widget', { hasText: 'Fine-tune ViT: Mode' }).waitFor({ timeout: 10_000 });
  await quickPickRow('Head only').click();
  await quickPickRow('Epochs').waitFor({ timeout: 10_000 });
  await quickPickRow('Epochs').click();
  const input = page.locator('.quick-input-widget input');
  await page.locator('.quick-input-widget', { hasText: 'Fine-tune ViT: Epochs' }).waitFor({ timeout: 10_000 });
  await input.fill('2');
  await page.keyboard.press('Enter');
  const start = quickPickRow('Start Training');
  await start.locator('text=/ · head · 2 epochs · /').waitFor({ timeout: 10_000 });
  const startText = (await start.textContent()) ?? '';
  runName = /(colors-head-\d{8}-\d{6}(?:-\d+)?)/.exec(startText)?.[1] ?? '';
  assert.ok(runName, `no run name in "${startText}"`);
  assert.match((await quickPickRow('Mode').textContent()) ?? '', /Head only/);
  await page.waitForTimeout(500); // the quick pick fades in
  await shot('7-fine-tune-form.png');
  await start.click();
  runDir = path.join(workspace, '.vit-lens', 'runs', runName);

  // The Runs view shows the run; it reaches finished (icon and description) as run.json says.
  const row = runRow(runName);
  await row.waitFor({ timeout: 60_000 });
  await row.locator('.codicon-pass').waitFor({ timeout: 300_000 });
  await row.locator('.label-description', { hasText: 'colors · epoch 2/2' }).waitFor({ timeout: 30_000 });
  const run = JSON.parse(fs.readFileSync(path.join(runDir, 'run.json'), 'utf8'));
  assert.equal(run.status, 'finished');
  assert.deepEqual([run.epoch, run.totalEpochs, run.config.epochs, run.config.mode], [2, 2, 2, 'head']);
  assert.equal(run.config.dataset, path.join(workspace, 'colors'));
  assert.deepEqual([...run.classes].sort(), [...CLASSES].sort());
  assert.ok(fs.existsSync(path.join(runDir, 'export', 'config.json')), 'the finished run has no export/');
  const description = (await row.locator('.label-description').textContent()) ?? '';
  if (typeof run.bestValAcc === 'number') assert.match(description, new RegExp(`best ${(run.bestValAcc * 100).toFixed(1)}%`));
  // A wider side bar, so the screenshot shows the run's description.
  await widenSideBar();
  await shot('8-runs-view-finished.png');
}));

test('The dashboard opened by Fine-tune shows the finished run and its curves (uPlot, drawn, with data)', () => withFailureShot('dashboard', async () => {
  assert.ok(runName, 'no run from the fine-tune test');
  // Fine-tune opens the dashboard on the new run; bring its tab to the front if another covers it.
  const tab = page.locator('.tabs-container .tab', { hasText: `Dashboard: ${runName}` }).first();
  await tab.waitFor({ timeout: 60_000 });
  await tab.click();
  const dash = await session.webviewFrame('#charts', 'the training dashboard');
  const header = dash.locator('#runs .run', { hasText: runName });
  await header.locator('.status.finished').waitFor({ timeout: 120_000 });
  // Header facts from run.json: 2/2 epochs, all steps.
  const run = JSON.parse(fs.readFileSync(path.join(runDir, 'run.json'), 'utf8'));
  const facts = (await header.textContent()) ?? '';
  assert.match(facts, /epoch\s*2\/2/);
  assert.match(facts, new RegExp(`step\\s*${run.totalSteps}/${run.totalSteps}`));

  // The curves: every run chart has lines with data (metrics.jsonl's steps and epochs).
  const steps = fs.readFileSync(path.join(runDir, 'metrics.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
  const read = () =>
    dash.evaluate(() =>
      [...((globalThis as any).__vitLensCharts as Map<string, any>).entries()].map(([id, c]) => ({
        id,
        labels: c.plot.series.slice(1).map((s: any) => String(s.label)),
        plotWidth: c.plot.width as number,
        boxWidth: c.el.clientWidth as number,
        shown: c.plot.series.slice(1).map((s: any) => s.show !== false),
        values: c.plot.data.slice(1).map((ys: (number | null)[]) => ys.filter((v) => v !== null && v !== undefined && Number.isFinite(v)).length),
        painted: ((cv: any) => {
          const d = cv.getContext('2d').getImageData(0, 0, cv.width, cv.height).data;
          let n = 0;
          for (let i = 3; i < d.length; i += 4) if (d[i] !== 0) n++;
          return n;
        })(c.plot.ctx.canvas),
      })),
    );
  let charts = await read();
  for (let i = 0; i < 120 && !charts.some((c) => c.id === 'run:accuracy' && c.values.some((v: number) => v >= 2)); i++) {
    await page.waitForTimeout(250);
    charts = await read();
  }
  const byId = new Map(charts.map((c) => [c.id, c]));
  for (const id of ['run:loss', 'run:accuracy', 'run:lr']) {
    const c = byId.get(id);
    assert.ok(c, `no ${id} chart (charts: ${[...byId.keys()]})`);
    assert.ok(c.values.some((v: number) => v >= 2), `${id}: no line with two points: ${JSON.stringify(c)}`);
    assert.ok(c.painted > 0, `${id}: nothing drawn`);
  }
  assert.ok(byId.get('run:loss')!.labels.some((l: string) => /train loss/.test(l)));
  assert.ok(byId.get('run:accuracy')!.labels.some((l: string) => /val acc/.test(l)));
  assert.ok(steps.length > 0, 'metrics.jsonl is empty');

  // The lines are drawn, not only the axes: hiding the series removes painted pixels.
  const before = byId.get('run:loss')!.painted;
  await dash.evaluate(() => {
    const c = ((globalThis as any).__vitLensCharts as Map<string, any>).get('run:loss');
    for (let i = 1; i < c.plot.series.length; i++) c.plot.setSeries(i, { show: false });
  });
  await page.waitForTimeout(300);
  const hidden = (await read()).find((c) => c.id === 'run:loss')!;
  await dash.evaluate(() => {
    const c = ((globalThis as any).__vitLensCharts as Map<string, any>).get('run:loss');
    for (let i = 1; i < c.plot.series.length; i++) c.plot.setSeries(i, { show: true });
  });
  await page.waitForTimeout(300);
  assert.ok(hidden.painted < before, `hiding the loss lines changed no pixel (${before} → ${hidden.painted})`);
  // Every chart fits its box (the curves are not cut off at the right).
  const fits = async (when: string) => {
    for (const c of await read()) assert.ok(c.plotWidth <= c.boxWidth + 1, `${when}: chart ${c.id} is ${c.plotWidth}px wide in a ${c.boxWidth}px box`);
  };
  await fits('side by side');
  // The dashboard's group maximised for the screenshot: the charts re-layout to the new width.
  await tab.click();
  await runCommand('View: Toggle Maximize Editor Group');
  await page.waitForTimeout(1500);
  await shot('9-dashboard-curves.png');
  await fits('maximised');
  await runCommand('View: Toggle Maximize Editor Group');
}));

test('Use as Current Model from the run\'s context menu, then Classify Image uses the fine-tuned model', () => withFailureShot('use-as-model', async () => {
  assert.ok(runName, 'no run from the fine-tune test');
  const row = runRow(runName);
  const menuItem = page.locator('.context-view .monaco-menu .action-item', { hasText: 'Use as Current Model' });
  for (let attempt = 0; ; attempt++) {
    await row.click({ button: 'right' });
    try {
      await menuItem.waitFor({ timeout: 3000 });
      break;
    } catch (e) {
      await page.keyboard.press('Escape');
      if (attempt >= 10) throw e;
    }
  }
  await shot('10-run-context-menu.png');
  await page.waitForTimeout(400);
  await menuItem.click();
  await page.locator('.notifications-toasts .notification-toast', { hasText: `now using ${runName}` }).first().waitFor({ timeout: 60_000 });

  // vitLens.model in the workspace settings: the run's export folder, relative to the workspace.
  const exportDir = path.join(runDir, 'export');
  const settingsFile = path.join(workspace, '.vscode/settings.json');
  let model = '';
  for (let i = 0; i < 40 && !model; i++) {
    model = JSON.parse(fs.readFileSync(settingsFile, 'utf8'))['vitLens.model'] ?? '';
    if (!model) await page.waitForTimeout(250);
  }
  assert.equal(model, `.vit-lens/runs/${runName}/export`);
  assert.equal(path.resolve(workspace, model), exportDir);

  // The CLI's answer with the exported model: the dataset's classes.
  const image = path.join(workspace, 'colors', 'blue', 'img0.png');
  const cli = JSON.parse(execFileSync(process.execPath, [path.join(ROOT, 'dist/cli.js'), 'classify', image, '--model', exportDir, '--json', '--cache-dir', path.join(session.tmp, 'cli-cache')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }));
  const expected = (cli.results[0].predictions as { label: string; score: number }[]);
  assert.deepEqual(expected.map((p) => p.label).sort(), [...CLASSES].sort());

  // Explorer → colors/blue/img0.png → Classify Image.
  await runCommand('View: Show Explorer');
  await expandFolder('colors');
  await expandFolder('blue');
  await session.explorerMenu('img0.png', 'Classify Image');
  const panel = await panelFrame();
  await panel.locator('#rows .name', { hasText: 'img0.png' }).waitFor({ timeout: 60_000 });
  const labels = panel.locator('#rows > li').first().locator('.label');
  for (let i = 0; i < 240; i++) {
    if ((await labels.allTextContents()).join() === expected.map((p) => p.label).join()) break;
    await page.waitForTimeout(250);
  }
  assert.deepEqual(await labels.allTextContents(), expected.map((p) => p.label));
  const scores = await panel.locator('#rows > li').first().locator('.score').allTextContents();
  assert.deepEqual(scores, expected.map((p) => `${(p.score * 100).toFixed(1)}%`));
  // The status bar names the model in use (its folder: export).
  await page.locator('.statusbar-item', { hasText: /export · CPU/ }).first().waitFor({ timeout: 30_000 });
  await panel.locator('#overlay[data-drawn]').waitFor({ timeout: 60_000 });
  await panel.locator('#image').evaluate((img: any) => img.decode());
  // The model-load progress notification closes once the model is loaded.
  await page.locator('.notifications-toasts .notification-toast', { hasText: `loading ${runName}/export` }).first().waitFor({ state: 'detached', timeout: 30_000 });
  await shot('11-classify-image-fine-tuned-model.png');
}));
