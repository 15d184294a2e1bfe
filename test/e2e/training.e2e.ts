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
import { isDeepStrictEqual } from 'node:util';
import type { Frame, Page } from 'playwright-core';
import { CodeServerSession, ROOT } from './harness';
import type { Canvas, ChartsWin, Control, El, Img } from '../unit/browserShapes';
import { makeColorDataset } from '../fixtures/train/makeDataset';
import * as protobuf from 'protobufjs';
import { frameRecord } from '../../server/tfevents/tfrecord';

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

const TFEVENTS = path.join(ROOT, 'test/fixtures/tfevents');

let session: CodeServerSession;
let page: Page;
let workspace = '';
let datasetTmp = '';

const shot = (name: string) => session.shot(name);
const withFailureShot = (name: string, body: () => Promise<void>) => session.withFailureShot(name, body);
/** The results panel's document. */
const panelFrame = (timeoutMs = 60_000): Promise<Frame> =>
  session.webviewFrame('#rows', 'the ViT Lens results panel', timeoutMs);

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
    // The first-run model question (tested in vscode.e2e.ts) answered beforehand: the built-in model, no prompt.
    userSettings: { 'vitLens.askForModel': false },
    setupWorkspace: ws => {
      fs.cpSync(path.join(datasetTmp, 'colors'), path.join(ws, 'colors'), { recursive: true });
      for (const [file, label] of Object.entries(FASHION)) {
        fs.mkdirSync(path.join(ws, 'fashion', label), { recursive: true });
        fs.copyFileSync(path.join(ROOT, 'samples', file), path.join(ws, 'fashion', label, file));
      }
      // TensorBoard event files (scripts/make_tfevents_fixtures.py): run_a, run_a/rank1, live (its last record cut mid-write).
      fs.cpSync(TFEVENTS, path.join(ws, 'tfevents'), {
        recursive: true,
        filter: src => path.basename(src) !== 'expected.json',
      });
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
      const title = await f
        .locator('#title')
        .textContent({ timeout: 1000 })
        .catch(() => '');
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
  await scroller.evaluate((s: El) => void (s.scrollTop = 0));
  for (let step = 0; step < 1000; step++) {
    await page.waitForTimeout(100);
    const { rows, done } = await scroller.evaluate((s: El) => ({
      rows: [...s.querySelectorAll('#spacer .row[data-file]')].map(
        r => [Number(r.dataset.pos), r.dataset.file as string] as [number, string],
      ),
      done: s.scrollTop + s.clientHeight >= s.scrollHeight - 1,
    }));
    for (const [pos, file] of rows) seen.set(pos, file);
    if (done) break;
    await scroller.evaluate((s: El) => void (s.scrollTop += Math.max(44, s.clientHeight - 88)));
  }
  await scroller.evaluate((s: El) => void (s.scrollTop = 0));
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
    if (
      await toast
        .first()
        .waitFor({ timeout: 60_000 })
        .then(
          () => true,
          () => false,
        )
    ) {
      await shot(`${progressShot}-progress.png`).catch(() => undefined);
      assert.ok((await toast.locator('.monaco-button', { hasText: 'Cancel' }).count()) <= 1);
    }
  }
  for (let i = 0; i < 480 && !(fs.existsSync(json) && fs.statSync(json).mtimeMs > before); i++)
    await page.waitForTimeout(250);
  assert.ok(fs.existsSync(json), `${json} was not written`);
  const table = await tableFrame(folder);
  // The progress notification goes away once the table is up.
  await page
    .locator('.notifications-toasts .notification-toast', { hasText: `classifying ${folder}` })
    .first()
    .waitFor({ state: 'detached', timeout: 30_000 });
  return table;
}

function readPredictions(folder: string): {
  predictions: FolderPrediction[];
  csvFile: string;
  jsonFile: string;
  model: string;
  partial: boolean;
  failures: unknown[];
} {
  return JSON.parse(fs.readFileSync(path.join(workspace, folder, 'predictions.json'), 'utf8'));
}

/** RFC 4180 lines of predictions.csv → rows of fields (the test data has no quoted newlines). */
function readCsv(file: string): string[][] {
  const text = fs.readFileSync(file, 'utf8');
  assert.ok(text.endsWith('\r\n'), 'predictions.csv lines end with CRLF');
  return text
    .split('\r\n')
    .filter(Boolean)
    .map(line =>
      line
        .match(/("([^"]|"")*"|[^,]*)(,|$)/g)!
        .filter((f, i, a) => i < a.length - 1 || f !== '')
        .map(f =>
          f
            .replace(/,$/, '')
            .replace(/^"(.*)"$/, '$1')
            .replace(/""/g, '"'),
        ),
    );
}

async function setDisagreementsOnly(table: Frame, on: boolean): Promise<void> {
  const box = table.locator('#disagreements');
  for (let i = 0; i < 5 && (await box.evaluate((b: Control) => !!b.checked)) !== on; i++) {
    await box.click();
    await page.waitForTimeout(300);
  }
  assert.equal(await box.evaluate((b: Control) => !!b.checked), on, 'could not toggle "Disagreements only"');
}

test('Classify Folder on a class-folder dataset: 24-row table, predictions.csv/.json, disagreements, row → results panel', () =>
  withFailureShot('classify-colors', async () => {
    const table = await classifyFolder('colors', '1-classify-folder');
    const total = CLASSES.length * PER_CLASS;

    // The files in the folder.
    const result = readPredictions('colors');
    assert.equal(result.predictions.length, total);
    assert.equal(result.partial, false);
    assert.deepEqual(result.failures, []);
    assert.equal(result.csvFile, path.join(workspace, 'colors', 'predictions.csv'));
    assert.deepEqual(new Set(result.predictions.map(p => p.folderLabel)), new Set(CLASSES));
    for (const p of result.predictions) assert.equal(p.folderLabel, p.file.split('/')[0]);
    const csv = readCsv(result.csvFile);
    assert.deepEqual(csv[0], ['file', 'folder_label', 'predicted', 'confidence', 'agrees', 'top_k']);
    assert.equal(csv.length - 1, total, 'predictions.csv data rows');
    const byFile = new Map(result.predictions.map(p => [p.file, p]));
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
    assert.deepEqual([...files].sort(), result.predictions.map(p => p.file).sort());
    assert.match((await table.locator('#title').textContent()) ?? '', /^colors — /);
    // The built-in model knows clothes, not colours: no folder label can agree.
    const disagreeing = result.predictions.filter(p => p.agrees === false).map(p => p.file);
    assert.equal(disagreeing.length, total);
    assert.match(
      (await table.locator('#summary').textContent()) ?? '',
      new RegExp(`0\\.0% agree with folder labels \\(0/${total}\\) · ${total} disagreements`),
    );
    // A visible row shows the JSON's prediction and confidence.
    const first = table.locator('#spacer .row[data-file="blue/img0.png"]');
    const p0 = byFile.get('blue/img0.png')!;
    assert.equal(await first.locator('.cell.predicted').textContent(), p0.predicted);
    assert.equal(await first.locator('.pct').textContent(), `${(p0.confidence * 100).toFixed(1)}%`);
    assert.equal(await first.locator('.badge').textContent(), 'disagree');
    await first.locator('.thumb img').evaluate((img: Img) => img.decode());
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
    assert.deepEqual(
      await labels.allTextContents(),
      byFile.get(file)!.top.map(t => t.label),
    );
    await panel.locator('#overlay[data-drawn]').waitFor({ timeout: 60_000 });
    await panel.locator('#image').evaluate((img: Img) => img.decode());
    await shot('3-row-click-results-panel.png');
  }));

test('"Disagreements only" shows exactly the rows whose folder label differs from the prediction', () =>
  withFailureShot('classify-fashion', async () => {
    // Back to the explorer (the last click was in a webview).
    await page.keyboard.press('Escape');
    const table = await classifyFolder('fashion');
    const result = readPredictions('fashion');
    const total = Object.keys(FASHION).length;
    assert.equal(result.predictions.length, total);
    const disagreeing = result.predictions
      .filter(p => p.agrees === false)
      .map(p => p.file)
      .sort();
    // The JSON's agrees is the folder-label rule ("T-shirt_top" = "T-shirt/top", case and punctuation ignored).
    const norm = (s: string) => s.toLowerCase().replace(/[^a-z0-9]+/g, '');
    for (const p of result.predictions) assert.equal(p.agrees, norm(p.folderLabel!) === norm(p.predicted), p.file);
    // The two misfiled images disagree (the built-in model gets all ten samples right), some rows agree.
    for (const f of ['Sandal/fashion-mnist-test-9-sneaker.png', 'T-shirt_top/fashion-mnist-test-4-shirt.png'])
      assert.ok(disagreeing.includes(f), `${f} should disagree`);
    assert.ok(
      disagreeing.length >= 1 && disagreeing.length < total,
      `expected some but not all rows to disagree: ${disagreeing}`,
    );

    await table.locator('#summary', { hasText: `${total} images` }).waitFor({ timeout: 30_000 });
    assert.equal((await tableFiles(table)).length, total);
    await setDisagreementsOnly(table, true);
    await table
      .locator('#shown', { hasText: `showing ${disagreeing.length} of ${total}` })
      .waitFor({ timeout: 10_000 });
    const shown = await tableFiles(table);
    assert.deepEqual([...shown].sort(), disagreeing);
    assert.equal(
      await table.locator('#spacer .row .badge.yes').count(),
      0,
      'an agreeing row is shown with "Disagreements only"',
    );
    assert.equal(await table.locator('#spacer .row .badge.no').count(), disagreeing.length);
    await shot('4-predictions-disagreements-only.png');
    await setDisagreementsOnly(table, false);
    await table
      .locator('#shown', { hasText: 'showing' })
      .waitFor({ state: 'hidden', timeout: 10_000 })
      .catch(() => undefined);
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
const dismissHover = () => session.dismissHover();
const quickInputClosed = () => session.quickInputClosed();

/** Expand an explorer folder (a click toggles, so look at aria-expanded first). */
async function expandFolder(name: string): Promise<void> {
  const row = page.locator('.explorer-folders-view .monaco-list-row', { hasText: name });
  await row.waitFor({ timeout: 30_000 });
  for (let i = 0; i < 10 && (await row.getAttribute('aria-expanded')) !== 'true'; i++) {
    // A path hover of the row under the mouse (left there by an earlier click, e.g. in the Runs view) can cover this row.
    await dismissHover();
    await row.click();
    await page.waitForTimeout(500);
  }
  assert.equal(await row.getAttribute('aria-expanded'), 'true', `could not expand ${name} in the explorer`);
}

/** The Runs view's row of a run (activity bar → ViT Lens → Runs). */
const runRow = (name: string) => page.locator('.pane-body .monaco-list-row', { hasText: name });

/** The row of the open quick pick whose label starts with `label` (case-sensitive: "Mode" is not "Base model"). */
const quickPickRow = (label: string) =>
  page
    .locator('.quick-input-widget .quick-input-list .monaco-list-row', { hasText: new RegExp(`^\\s*${label}`) })
    .first();

test('Fine-tune ViT on Folder from the explorer (head mode, 2 epochs): the run appears in the Runs view and finishes', () =>
  withFailureShot('fine-tune', async () => {
    await page.keyboard.press('Escape');
    await session.explorerMenu('colors', 'Fine-tune ViT on Folder', '5-fine-tune-menu.png');

    // The worker scans the folder, then a modal summary: 24 images in 3 classes.
    const dialog = page.locator('.monaco-dialog-box');
    await dialog.waitFor({ timeout: 120_000 });
    await dialog
      .locator('.dialog-message-text', {
        hasText: `colors: ${CLASSES.length * PER_CLASS} images in ${CLASSES.length} classes`,
      })
      .waitFor({ timeout: 10_000 });
    const detail = (await dialog.locator('.dialog-message-detail').textContent()) ?? '';
    for (const c of CLASSES)
      assert.match(detail, new RegExp(`${c}\\s+${PER_CLASS} images`), `summary detail: ${detail}`);
    await shot('6-fine-tune-dataset-summary.png');
    await dialog.locator('.monaco-button', { hasText: 'Continue' }).click();

    // The form: defaults accepted, except 2 epochs and head mode (picked explicitly).
    const form = page.locator('.quick-input-widget', { hasText: 'Start Training' });
    await form.waitFor({ timeout: 30_000 });
    await quickPickRow('Base model').waitFor({ timeout: 10_000 });
    assert.match(
      (await quickPickRow('Base model').textContent()) ?? '',
      /models[\\/]default/,
      'the built-in model is the default base model',
    );
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
    // The trainer ran from the installed VSIX with VS Code's Node: the fused kernels shipped with it
    // and loaded (that Node has relaxed SIMD without a flag).
    assert.equal(run.backend, 'wasm');
    assert.ok(
      run.backendNotes.includes('fused kernels: relaxed-simd'),
      `backend notes: ${JSON.stringify(run.backendNotes)}`,
    );
    assert.ok(fs.existsSync(path.join(runDir, 'export', 'config.json')), 'the finished run has no export/');
    const description = (await row.locator('.label-description').textContent()) ?? '';
    if (typeof run.bestValAcc === 'number')
      assert.match(description, new RegExp(`best ${(run.bestValAcc * 100).toFixed(1)}%`));
    // A wider side bar, so the screenshot shows the run's description.
    await widenSideBar();
    await shot('8-runs-view-finished.png');
  }));

test('The dashboard opened by Fine-tune shows the finished run and its curves (uPlot, drawn, with data)', () =>
  withFailureShot('dashboard', async () => {
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
    const steps = fs
      .readFileSync(path.join(runDir, 'metrics.jsonl'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map(l => JSON.parse(l));
    const read = () =>
      dash.evaluate(() =>
        [...(globalThis as unknown as ChartsWin).__vitLensCharts.entries()].map(([id, c]) => ({
          id,
          labels: c.plot.series.slice(1).map(s => String(s.label)),
          plotWidth: c.plot.width as number,
          boxWidth: c.el.clientWidth as number,
          shown: c.plot.series.slice(1).map(s => s.show !== false),
          values: c.plot.data
            .slice(1)
            .map((ys: (number | null)[]) => ys.filter(v => v !== null && v !== undefined && Number.isFinite(v)).length),
          painted: ((cv: Canvas) => {
            const d = cv.getContext('2d').getImageData(0, 0, cv.width, cv.height).data;
            let n = 0;
            for (let i = 3; i < d.length; i += 4) if (d[i] !== 0) n++;
            return n;
          })(c.plot.ctx.canvas),
        })),
      );
    let charts = await read();
    for (
      let i = 0;
      i < 120 && !charts.some(c => c.id === 'run:accuracy' && c.values.some((v: number) => v >= 2));
      i++
    ) {
      await page.waitForTimeout(250);
      charts = await read();
    }
    const byId = new Map(charts.map(c => [c.id, c]));
    for (const id of ['run:loss', 'run:accuracy', 'run:lr']) {
      const c = byId.get(id);
      assert.ok(c, `no ${id} chart (charts: ${[...byId.keys()]})`);
      assert.ok(
        c.values.some((v: number) => v >= 2),
        `${id}: no line with two points: ${JSON.stringify(c)}`,
      );
      assert.ok(c.painted > 0, `${id}: nothing drawn`);
    }
    assert.ok(byId.get('run:loss')!.labels.some((l: string) => /train loss/.test(l)));
    assert.ok(byId.get('run:accuracy')!.labels.some((l: string) => /val acc/.test(l)));
    assert.ok(steps.length > 0, 'metrics.jsonl is empty');

    // The lines are drawn, not only the axes: hiding the series removes painted pixels.
    const before = byId.get('run:loss')!.painted;
    await dash.evaluate(() => {
      const c = (globalThis as unknown as ChartsWin).__vitLensCharts.get('run:loss')!;
      for (let i = 1; i < c.plot.series.length; i++) c.plot.setSeries(i, { show: false });
    });
    await page.waitForTimeout(300);
    const hidden = (await read()).find(c => c.id === 'run:loss')!;
    await dash.evaluate(() => {
      const c = (globalThis as unknown as ChartsWin).__vitLensCharts.get('run:loss')!;
      for (let i = 1; i < c.plot.series.length; i++) c.plot.setSeries(i, { show: true });
    });
    await page.waitForTimeout(300);
    assert.ok(hidden.painted < before, `hiding the loss lines changed no pixel (${before} → ${hidden.painted})`);
    // Every chart fits its box (the curves are not cut off at the right).
    const fits = async (when: string) => {
      for (const c of await read())
        assert.ok(
          c.plotWidth <= c.boxWidth + 1,
          `${when}: chart ${c.id} is ${c.plotWidth}px wide in a ${c.boxWidth}px box`,
        );
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

test("Use as Current Model from the run's context menu, then Classify Image uses the fine-tuned model", () =>
  withFailureShot('use-as-model', async () => {
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
    await page
      .locator('.notifications-toasts .notification-toast', { hasText: `now using ${runName}` })
      .first()
      .waitFor({ timeout: 60_000 });

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
    const cli = JSON.parse(
      execFileSync(
        process.execPath,
        [
          path.join(ROOT, 'dist/cli.js'),
          'classify',
          image,
          '--model',
          exportDir,
          '--json',
          '--cache-dir',
          path.join(session.tmp, 'cli-cache'),
        ],
        { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
      ),
    );
    const expected = cli.results[0].predictions as { label: string; score: number }[];
    assert.deepEqual(expected.map(p => p.label).sort(), [...CLASSES].sort());

    // Explorer → colors/blue/img0.png → Classify Image.
    await runCommand('View: Show Explorer');
    await expandFolder('colors');
    await expandFolder('blue');
    await session.explorerMenu('img0.png', 'Classify Image');
    const panel = await panelFrame();
    await panel.locator('#rows .name', { hasText: 'img0.png' }).waitFor({ timeout: 60_000 });
    const labels = panel.locator('#rows > li').first().locator('.label');
    for (let i = 0; i < 240; i++) {
      if ((await labels.allTextContents()).join() === expected.map(p => p.label).join()) break;
      await page.waitForTimeout(250);
    }
    assert.deepEqual(
      await labels.allTextContents(),
      expected.map(p => p.label),
    );
    const scores = await panel.locator('#rows > li').first().locator('.score').allTextContents();
    assert.deepEqual(
      scores,
      expected.map(p => `${(p.score * 100).toFixed(1)}%`),
    );
    // The status bar and the panel header name the model in use by its run (not "export").
    await page
      .locator('.statusbar-item', { hasText: `${runName} · CPU` })
      .first()
      .waitFor({ timeout: 30_000 });
    assert.equal(await panel.locator('#model').textContent(), `${runName} · CPU`);
    await panel.locator('#overlay[data-drawn]').waitFor({ timeout: 60_000 });
    await panel.locator('#image').evaluate((img: Img) => img.decode());
    // The model-load progress notification closes once the model is loaded.
    await page
      .locator('.notifications-toasts .notification-toast', { hasText: `loading ${runName}/export` })
      .first()
      .waitFor({ state: 'detached', timeout: 30_000 });
    await shot('11-classify-image-fine-tuned-model.png');
  }));

// ---- Suspect labels in the run's dashboard: Move to class… and Undo (last of the dataset tests: it moves files in colors/) ----

/** The run dashboard's document (there may be a TensorBoard one too). */
async function runDashboardFrame(name: string, timeoutMs = 60_000): Promise<Frame> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    for (const f of page.frames()) {
      if (f.isDetached() || !(await f.$('#suspect-table').catch(() => null))) continue;
      if (
        (
          await f
            .locator('#runs')
            .textContent({ timeout: 1000 })
            .catch(() => '')
        )?.includes(name)
      )
        return f;
    }
    if (Date.now() > end) {
      await shot(`dashboard-${name}-not-found.png`);
      throw new Error(`no dashboard for ${name}`);
    }
    await page.waitForTimeout(250);
  }
}

/** Poll the file system until `check` holds (renames go through the extension host). */
async function waitForFs(what: string, check: () => boolean, timeoutMs = 15_000): Promise<void> {
  for (const end = Date.now() + timeoutMs; !check();) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await page.waitForTimeout(100);
  }
}

/** A suspect row's Move to class… → the quick pick → `cls`; returns the target path (the move may be refused). */
async function pickMoveTarget(
  dash: Frame,
  file: string,
  current: string,
  cls: string,
  screenshot?: string,
): Promise<string> {
  const name = path.basename(file);
  await dash.locator(`#suspect-table tr[data-file="${file}"] button`, { hasText: 'Move to class…' }).click();
  const pick = page.locator('.quick-input-widget', { hasText: `Move ${name} to class…` });
  await pick.waitFor({ timeout: 15_000 });
  // Every class but the image's own folder is offered; the model's pick first.
  // (Only the visible rows: the list keeps hidden rows of earlier quick picks.)
  const offered: string[] = [];
  for (const row of await page
    .locator('.quick-input-widget .quick-input-list .monaco-list-row')
    .filter({ visible: true })
    .all())
    offered.push(((await row.locator('.label-name').first().textContent()) ?? '').trim());
  assert.deepEqual([...offered].sort(), CLASSES.filter(c => c !== current).sort(), `quick pick items: ${offered}`);
  assert.match(
    (await page.locator('.quick-input-widget input').getAttribute('placeholder')) ?? '',
    new RegExp(`Now in “${current}”`),
  );
  await page.waitForTimeout(400); // the quick pick fades in
  if (screenshot) await shot(screenshot);
  await page
    .locator('.quick-input-widget .quick-input-list .monaco-list-row', { hasText: new RegExp(`^\\s*${cls}`) })
    .filter({ visible: true })
    .first()
    .click();
  return path.join(path.dirname(path.dirname(file)), cls, name);
}

/** pickMoveTarget, then wait until the file is there and gone from its folder. */
async function moveSuspect(
  dash: Frame,
  file: string,
  current: string,
  cls: string,
  screenshot?: string,
): Promise<string> {
  const target = await pickMoveTarget(dash, file, current, cls, screenshot);
  await waitForFs(`${path.basename(file)} to move to ${cls}/`, () => fs.existsSync(target) && !fs.existsSync(file));
  return target;
}

test('Suspect labels in the run dashboard: Move to class… moves the file into another class folder, Undo (list button, then notification) moves it back', () =>
  withFailureShot('suspect-move', async () => {
    assert.ok(runName, 'no run from the fine-tune test');
    await page.keyboard.press('Escape');
    await runCommand('Notifications: Clear All Notifications');
    await quickInputClosed();
    const tab = page.locator('.tabs-container .tab', { hasText: `Dashboard: ${runName}` }).first();
    await tab.waitFor({ timeout: 60_000 });
    await tab.click();
    // Maximised: the table's buttons and badges in full (the dashboard shares the window with the predictions table).
    await runCommand('View: Toggle Maximize Editor Group');
    await quickInputClosed();
    const dash = await runDashboardFrame(runName);
    const rows = dash.locator('#suspect-table tr[data-file]');
    await rows.first().waitFor({ timeout: 60_000 });

    // The held-out images are the run's val split of colors/: absolute paths in a class folder.
    const dataset = path.join(workspace, 'colors');
    const file = (await rows.first().getAttribute('data-file'))!;
    const current = path.basename(path.dirname(file));
    assert.equal(path.dirname(path.dirname(file)), dataset, `suspect not in the dataset: ${file}`);
    assert.ok(CLASSES.includes(current) && fs.existsSync(file), `first suspect ${file}`);
    const rowCount = await rows.count();
    const bytes = fs.readFileSync(file);
    // The first suspect's folder-label cell shows its folder.
    assert.equal(((await rows.first().locator('td').nth(3).textContent()) ?? '').trim(), current);
    const [cls, cls2] = CLASSES.filter(c => c !== current);

    // colors/ has img0…img7 in every class folder: the move would overwrite colors/<cls>/<same name>, so it is refused
    // with an error and nothing changes on disk.
    const name = path.basename(file);
    const namesake = path.join(dataset, cls, name);
    const namesakeBytes = fs.readFileSync(namesake);
    await pickMoveTarget(dash, file, current, cls);
    await page
      .locator('.notifications-toasts .notification-toast', { hasText: `Not moved: ${namesake} already exists.` })
      .first()
      .waitFor({ timeout: 15_000 });
    assert.deepEqual([fs.readFileSync(file), fs.readFileSync(namesake)], [bytes, namesakeBytes]);
    assert.equal(
      await dash.locator(`#suspect-table tr[data-file="${file}"] button`, { hasText: 'Move to class…' }).count(),
      1,
    );
    await runCommand('Notifications: Clear All Notifications');
    await quickInputClosed();

    // Set the namesakes in both other class folders aside (put back at the end) so that the moves can go through.
    const aside = path.join(session.tmp, 'aside');
    fs.mkdirSync(aside, { recursive: true });
    for (const c of [cls, cls2]) fs.renameSync(path.join(dataset, c, name), path.join(aside, c));
    try {
      await moveAndUndo();
    } finally {
      for (const c of [cls, cls2])
        if (fs.existsSync(path.join(aside, c)) && !fs.existsSync(path.join(dataset, c, name)))
          fs.renameSync(path.join(aside, c), path.join(dataset, c, name));
    }
    // The dataset is as it was: PER_CLASS images in each class folder, the namesakes back in place.
    for (const c of CLASSES)
      assert.equal(fs.readdirSync(path.join(dataset, c)).filter(f => f.endsWith('.png')).length, PER_CLASS, c);
    assert.deepEqual(fs.readFileSync(namesake), namesakeBytes);
    await quickInputClosed();
    await runCommand('View: Toggle Maximize Editor Group');
    await quickInputClosed();

    async function moveAndUndo(): Promise<void> {
      // Move → quick pick → cls: the file is in colors/<cls>/ with the same name and bytes, gone from its folder.
      await rows.first().scrollIntoViewIfNeeded();
      const target = await moveSuspect(dash, file, current, cls, '12-suspect-move-quick-pick.png');
      assert.deepEqual(fs.readFileSync(target), bytes);
      assert.ok(!fs.readdirSync(path.join(dataset, current)).includes(path.basename(file)));
      // The row now points at the new place, marked moved, with Undo instead of Move.
      const moved = dash.locator(`#suspect-table tr[data-file="${target}"]`);
      await moved.locator('.badge', { hasText: `moved → ${cls}` }).waitFor({ timeout: 15_000 });
      assert.equal(await moved.getAttribute('class'), 'moved');
      assert.equal(await moved.locator('button', { hasText: 'Move to class…' }).count(), 0);
      assert.equal(await dash.locator(`#suspect-table tr[data-file="${file}"]`).count(), 0);
      assert.equal(await rows.count(), rowCount);
      const toast = page.locator('.notifications-toasts .notification-toast', {
        hasText: `Moved ${path.basename(file)} from “${current}” to “${cls}”.`,
      });
      await toast.first().waitFor({ timeout: 15_000 });
      await moved.scrollIntoViewIfNeeded();
      await shot('13-suspect-moved.png');

      // Undo in the list: back in its folder, the row as before.
      await moved.locator('button', { hasText: 'Undo' }).click();
      await waitForFs(
        `${path.basename(file)} to move back to ${current}/`,
        () => fs.existsSync(file) && !fs.existsSync(target),
      );
      assert.deepEqual(fs.readFileSync(file), bytes);
      const back = dash.locator(`#suspect-table tr[data-file="${file}"]`);
      await back.locator('button', { hasText: 'Move to class…' }).waitFor({ timeout: 15_000 });
      assert.notEqual(await back.getAttribute('class'), 'moved');
      assert.equal(await back.locator('.badge').count(), 0);
      await page
        .locator('.statusbar-item', { hasText: `Moved ${path.basename(file)} back to “${current}”` })
        .first()
        .waitFor({ timeout: 5_000 })
        .catch(() => undefined);
      await back.scrollIntoViewIfNeeded();
      await shot('14-suspect-undone-from-list.png');

      // The same image again, to the other class; this time Undo from the notification's action.
      await quickInputClosed();
      await runCommand('Notifications: Clear All Notifications');
      await quickInputClosed();
      const target2 = await moveSuspect(dash, file, current, cls2);
      await dash
        .locator(`#suspect-table tr[data-file="${target2}"] .badge`, { hasText: `moved → ${cls2}` })
        .waitFor({ timeout: 15_000 });
      const toast2 = page
        .locator('.notifications-toasts .notification-toast', {
          hasText: `Moved ${path.basename(file)} from “${current}” to “${cls2}”.`,
        })
        .first();
      await toast2.waitFor({ timeout: 15_000 });
      await page.waitForTimeout(500); // the toast fades in
      await shot('15-suspect-moved-notification.png');
      await toast2.locator('.monaco-button', { hasText: 'Undo' }).click();
      await waitForFs(
        `${path.basename(file)} to move back to ${current}/ (notification)`,
        () => fs.existsSync(file) && !fs.existsSync(target2),
      );
      assert.deepEqual(fs.readFileSync(file), bytes);
      await dash
        .locator(`#suspect-table tr[data-file="${file}"] button`, { hasText: 'Move to class…' })
        .waitFor({ timeout: 15_000 });
    }
  }));

// ---- ViT: Monitor Training Logs… on a folder of TensorBoard event files, live ----

interface TfExpected {
  truncated: { file: string; missingTailHex: string; missingScalar: TfScalar };
  scalars: TfScalar[];
}
interface TfScalar {
  run: string;
  file: string;
  tag: string;
  step: number;
  wallTime: number;
  value: number;
}

/** tensorboard's Event with a simple_value summary (the field numbers of event.proto / summary.proto), as torch's add_scalar writes it. */
const TfEvent = protobuf
  .parse(
    `syntax = "proto3"; package tb;
     message Value { string tag = 1; oneof value { float simple_value = 2; } }
     message Summary { repeated Value value = 1; }
     message Event { double wall_time = 1; int64 step = 2; oneof what { string file_version = 3; Summary summary = 5; } }`,
    { keepCase: true },
  )
  .root.lookupType('tb.Event');
const scalarRecord = (wallTime: number, step: number, tag: string, value: number): Buffer =>
  frameRecord(
    TfEvent.encode(
      TfEvent.create({ wall_time: wallTime, step, summary: { value: [{ tag, simple_value: value }] } }),
    ).finish(),
  );

/** What the TensorBoard dashboard draws: per chart its title and each line's label and points. */
type TfChart = {
  id: string;
  title: string;
  group: string;
  points: number;
  painted: number;
  lines: { label: string; x: number[]; y: (number | null)[] }[];
};
const readTfCharts = (dash: Frame): Promise<TfChart[]> =>
  dash.evaluate(() =>
    [...(globalThis as unknown as ChartsWin).__vitLensCharts.entries()].map(([id, c]) => ({
      id,
      title: c.el.querySelector('.chart-title')?.textContent ?? '',
      group: c.spec.group ?? '',
      points: Number(c.el.dataset.points),
      painted: ((cv: Canvas) => {
        const d = cv.getContext('2d').getImageData(0, 0, cv.width, cv.height).data;
        let n = 0;
        for (let i = 3; i < d.length; i += 4) if (d[i] !== 0) n++;
        return n;
      })(c.plot.ctx.canvas),
      lines: c.spec.lines.map(l => ({
        label: l.label as string,
        x: [...l.x] as number[],
        y: [...l.y] as (number | null)[],
      })),
    })),
  );

/** tag → run → [step, value] sorted by step, from the fixture's list or from the charts. */
function byTagRun(
  points: { tag: string; run: string; step: number; value: number | null }[],
): Record<string, Record<string, [number, number | null][]>> {
  const out: Record<string, Record<string, [number, number | null][]>> = {};
  for (const p of points) ((out[p.tag] ??= {})[p.run] ??= []).push([p.step, p.value]);
  for (const runs of Object.values(out)) for (const pts of Object.values(runs)) pts.sort((a, b) => a[0] - b[0]);
  return out;
}
const chartPoints = (charts: TfChart[]) =>
  byTagRun(
    charts.flatMap(c =>
      c.lines.flatMap(l => l.x.map((step, i) => ({ tag: c.title, run: l.label, step, value: l.y[i] }))),
    ),
  );

test("Monitor Training Logs… on a folder of TensorBoard event files: one chart per tag with the files' points, and a point appended while the panel is open appears live", () =>
  withFailureShot('monitor-logs', async () => {
    const expected: TfExpected = JSON.parse(fs.readFileSync(path.join(TFEVENTS, 'expected.json'), 'utf8'));
    const tags = [...new Set(expected.scalars.map(s => s.tag))].sort();
    const runs = [...new Set(expected.scalars.map(s => s.run))].sort();

    // Explorer → right-click tfevents/ → Monitor Training Logs…
    await quickInputClosed();
    await page.keyboard.press('Escape');
    await runCommand('View: Show Explorer');
    await quickInputClosed();
    await runCommand('Collapse Folders in Explorer');
    await quickInputClosed();
    await dismissHover();
    await session.explorerMenu('tfevents', 'Monitor Training Logs…', '16-monitor-logs-menu.png');
    await page.locator('.tabs-container .tab', { hasText: 'Dashboard: tfevents' }).first().waitFor({ timeout: 30_000 });
    const dash = await session.webviewFrame('#runs .status.tensorboard', 'the TensorBoard dashboard');

    // One chart per tag, titled with the tag, grouped by its prefix, in tag order within the groups.
    const want = byTagRun(expected.scalars);
    let charts: TfChart[] = [];
    for (let i = 0; i < 120; i++) {
      charts = await readTfCharts(dash);
      if (isDeepStrictEqual(chartPoints(charts), want)) break;
      await page.waitForTimeout(250);
    }
    assert.deepEqual(charts.map(c => c.title).sort(), tags);
    assert.deepEqual(
      charts.map(c => c.id),
      charts.map(c => `tf:${c.title}`),
    );
    for (const c of charts) assert.equal(c.group, c.title.split('/')[0], c.id);
    assert.deepEqual(
      await dash.locator('#charts figure.chart .chart-title').allTextContents(),
      charts.map(c => c.title),
    );
    assert.deepEqual([...new Set(await dash.locator('#charts h3.chart-group').allTextContents())], ['eval', 'train']);
    // Each chart: one line per run that logged the tag, labelled with the run's folder, holding exactly the fixture's points
    // (float32 simple_value / float_val / tensor_content, float64 double_val, an int64 step of 2^40, a 0 that must not vanish);
    // the cut last record of live/ is not shown.
    assert.deepEqual(chartPoints(charts), want);
    const loss = charts.find(c => c.id === 'tf:train/loss')!;
    assert.deepEqual(loss.lines.map(l => l.label).sort(), ['live', 'run_a', 'run_a/rank1']);
    assert.ok(
      !loss.lines.find(l => l.label === 'live')!.x.includes(expected.truncated.missingScalar.step),
      'the truncated record was drawn',
    );
    for (const c of charts) {
      assert.equal(c.points, new Set(c.lines.flatMap(l => l.x)).size, `${c.id}: data-points`);
      assert.ok(c.painted > 0, `${c.id}: nothing drawn`);
    }
    // The header: a TensorBoard source with 3 runs and 6 tags.
    const header = (await dash.locator('#runs').textContent()) ?? '';
    assert.match(header, new RegExp(`runs\\s*${runs.length}`));
    assert.match(header, new RegExp(`tags\\s*${tags.length}`));
    // Maximised for the screenshots (the panel shares the window with the predictions table); put back at the end.
    await runCommand('View: Toggle Maximize Editor Group');
    await page.waitForTimeout(1500);
    await shot('17-monitor-logs-dashboard.png');

    // Live: while the panel is open, (1) the killed writer's cut record is finished, (2) a new record is appended to
    // run_a/rank1's file. Each point shows up within a few seconds (the panel polls once a second).
    const waitForPoint = async (tag: string, run: string, step: number, value: number, what: string) => {
      const t0 = Date.now();
      for (;;) {
        const c = (await readTfCharts(dash)).find(x => x.id === `tf:${tag}`);
        const l = c?.lines.find(x => x.label === run);
        const i = l?.x.indexOf(step) ?? -1;
        if (l && i >= 0) {
          assert.equal(l.y[i], value, `${what}: value`);
          return Date.now() - t0;
        }
        if (Date.now() - t0 > 8_000)
          throw new Error(`${what}: ${run} ${tag} step ${step} not in the chart after 8 s: ${JSON.stringify(l)}`);
        await page.waitForTimeout(100);
      }
    };
    const m = expected.truncated.missingScalar;
    fs.appendFileSync(
      path.join(workspace, 'tfevents', expected.truncated.file),
      Buffer.from(expected.truncated.missingTailHex, 'hex'),
    );
    const ms1 = await waitForPoint(m.tag, m.run, m.step, m.value, 'the finished record');
    const rank1 = path.join(workspace, 'tfevents', 'run_a/rank1/events.out.tfevents.1700000000.host.2.0');
    const lastWall = Math.max(...expected.scalars.filter(s => s.run === 'run_a/rank1').map(s => s.wallTime));
    fs.appendFileSync(rank1, scalarRecord(lastWall + 1, 6, 'train/loss', 0.25));
    const ms2 = await waitForPoint('train/loss', 'run_a/rank1', 6, 0.25, 'the appended record');
    console.log(`live points appeared after ${ms1} ms and ${ms2} ms`);
    // Nothing else changed; the header's last step follows the new points only where they are the largest.
    const after = chartPoints(await readTfCharts(dash));
    want['train/loss']['live'].push([m.step, m.value]);
    want['train/loss']['run_a/rank1'].push([6, 0.25]);
    assert.deepEqual(after, want);
    assert.equal(await dash.locator('#problems').isHidden(), true, 'problems shown for valid event files');
    await dash.locator('#charts figure[data-chart="tf:train/loss"]').scrollIntoViewIfNeeded();
    await page.waitForTimeout(500);
    await shot('18-monitor-logs-live-point.png');
    await runCommand('View: Toggle Maximize Editor Group');
  }));
