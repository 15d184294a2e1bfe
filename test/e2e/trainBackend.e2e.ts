/**
 * End to end in a real VS Code (code-server, see harness.ts) with the packaged VSIX: the Fine-tune
 * form's Backend row shows what will run (asked of `vit-lens train --list-backends` in its own
 * process), the picker names the WebGPU adapter (lavapipe without a GPU: required, never skipped),
 * and a run started on WebGPU from the form trains there (run.json says so). Screenshots of the form
 * and the picker in the light, high-contrast and dark themes (a VS Code session each):
 * test-output/e2e-train-backend/<theme>/.
 *
 *   npm run package && node --import tsx --test --test-reporter=spec --test-timeout=600000 test/e2e/trainBackend.e2e.ts
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Page } from 'playwright-core';
import { CodeServerSession, ROOT } from './harness';
import { makeColorDataset } from '../fixtures/train/makeDataset';
import { probeWebGpuAdapter } from '../../server/webgpuAdapter';

const OUT = path.join(ROOT, 'test-output', 'e2e-train-backend');
let session: CodeServerSession;
let page: Page;
let datasetTmp = '';
let adapterName = '';

before(async () => {
  const p = await probeWebGpuAdapter();
  assert.ok(
    'adapter' in p,
    `${'error' in p ? p.error : ''}\nInstall Mesa >= 25 lavapipe: \`sudo bash scripts/install-lavapipe.sh\`.`,
  );
  adapterName = p.adapter.name;
  datasetTmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-e2e-backend-'));
  await makeColorDataset(path.join(datasetTmp, 'colors'), { perClass: 6 });
});

after(async () => {
  await session?.close();
  if (datasetTmp) fs.rmSync(datasetTmp, { recursive: true, force: true });
});

/** A fresh VS Code in `theme` (set before start: VS Code here did not apply a theme changed later through the settings file). */
async function startSession(theme: string, tag: string): Promise<void> {
  await session?.close();
  session = new CodeServerSession({
    outDir: path.join(OUT, tag),
    userSettings: { 'vitLens.askForModel': false, 'workbench.colorTheme': theme },
    env: { XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' },
    setupWorkspace: ws => {
      fs.cpSync(path.join(datasetTmp, 'colors'), path.join(ws, 'colors'), { recursive: true });
      fs.writeFileSync(path.join(ws, '.vscode/settings.json'), '{}\n');
    },
  });
  await session.start();
  page = session.page;
}

const row = (label: string) =>
  page
    .locator('.quick-input-widget .quick-input-list .monaco-list-row', { hasText: new RegExp(`^\\s*${label}`) })
    .first();

/** Fine-tune on colors/ up to the form. */
async function openForm(): Promise<void> {
  await session.quickInputClosed();
  await session.explorerMenu('colors', 'Fine-tune ViT on Folder');
  const dialog = page.locator('.monaco-dialog-box');
  await dialog.waitFor({ timeout: 120_000 });
  await dialog.locator('.monaco-button', { hasText: 'Continue' }).click();
  await row('Backend').waitFor({ timeout: 60_000 });
}

const THEMES: [string, string][] = [
  ['light', 'Default Light Modern'],
  ['hc', 'Default High Contrast'],
  ['dark', 'Default Dark Modern'],
];

test('the Fine-tune form shows and picks the backend; a WebGPU run trains on the adapter', async () => {
  // The form and the picker in each theme; dark last, where the run starts.
  for (const [tag, name] of THEMES) {
    await startSession(name, tag);
    await session.withFailureShot(`train-backend-${tag}`, () => formAndPicker(tag));
    if (tag === 'dark') await session.withFailureShot('train-backend-run', webgpuRun);
  }
});

/** The form and the backend picker, screenshotted; left open on the picker. */
async function formAndPicker(tag: string): Promise<void> {
  await openForm();
  const backendRow = (await row('Backend').textContent()) ?? '';
  // No GPU device node and only a software adapter here: auto trains on the CPU and says so.
  assert.match(backendRow, /Auto: CPU · \d+ threads? \(wasm/);
  // The Start row names the device without its parenthesis (the row is one line).
  assert.match((await row('Start Training').textContent()) ?? '', /· CPU · \d+ threads?$/);
  await page.waitForTimeout(500);
  await session.shot(`1-form-${tag}.png`);
  await row('Backend').click();
  await page.locator('.quick-input-widget', { hasText: 'Fine-tune ViT: Backend' }).waitFor({ timeout: 10_000 });
  const webgpu = (await row('WebGPU').textContent()) ?? '';
  assert.ok(webgpu.includes(adapterName), `WebGPU row: ${webgpu}`);
  await page.waitForTimeout(500);
  await session.shot(`2-picker-${tag}.png`);
}

/** Picks WebGPU in the open picker, 1 epoch, starts the run and waits for it to finish on WebGPU. */
async function webgpuRun(): Promise<void> {
  await row('WebGPU').click();
  await row('Backend').locator(`text=/WebGPU · /`).waitFor({ timeout: 10_000 });
  await row('Epochs').click();
  await page.locator('.quick-input-widget', { hasText: 'Fine-tune ViT: Epochs' }).waitFor({ timeout: 10_000 });
  await page.locator('.quick-input-widget input').fill('1');
  await page.keyboard.press('Enter');
  const start = row('Start Training');
  await start.locator('text=/ · 1 epoch · /').waitFor({ timeout: 10_000 });
  await session.shot('3-form-webgpu.png');
  const runName = /(colors-\w+(?:-\w+)?-\d{8}-\d{6}(?:-\d+)?)/.exec((await start.textContent()) ?? '')?.[1];
  assert.ok(runName);
  await start.click();

  const runJson = path.join(session.workspace, '.vit-lens', 'runs', runName!, 'run.json');
  const until = Date.now() + 480_000;
  let run: { status?: string; backend?: string; device?: string; backendNotes?: string[]; reason?: string } = {};
  while (Date.now() < until) {
    if (fs.existsSync(runJson)) run = JSON.parse(fs.readFileSync(runJson, 'utf8'));
    if (run.status && run.status !== 'running') break;
    await page.waitForTimeout(1000);
  }
  assert.equal(
    run.status,
    'finished',
    `run: ${JSON.stringify(run)}\n${fs.readFileSync(path.join(path.dirname(runJson), 'train.log'), 'utf8').slice(-2000)}`,
  );
  assert.equal(run.backend, 'webgpu');
  assert.equal(run.device, `WebGPU · ${adapterName}`);
}
