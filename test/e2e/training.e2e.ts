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
 * Screenshots: test-output/e2e-training/ (look at them). Run with `npm run test:e2e`, or after
 * `npm run package`: node --import tsx --test --test-reporter=spec --test-timeout=600000 test/e2e/training.e2e.ts
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
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
