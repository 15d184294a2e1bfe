/**
 * End to end in a real VS Code (code-server, see harness.ts) with the packaged VSIX and a stand-in
 * for the Python extension (test/fixtures/python-extension-standin: publisher.name ms-python.python,
 * the API shape @vscode/python-extension declares) in the session's extensions folder. The Fine-tune
 * form's PyTorch row shows the interpreter that extension selects, where it came from and what it has;
 * a run started from the form with PyTorch on trains with that interpreter (run.json says so). An
 * interpreter without torch (Debian's Python without its site-packages) reads as "Not available"
 * with what to do; one whose activation never ends is given up on (python3 on PATH, saying why).
 * Screenshots in the light (torch missing), high-contrast (hanging extension) and dark themes:
 * test-output/e2e-torch-interpreter/<theme>/. Needs /usr/bin/python3 with torch ≥ 1.13 (fails, never
 * skips, without it).
 *
 *   npm run package && node --import tsx --test --test-reporter=spec --test-timeout=600000 test/e2e/torchInterpreter.e2e.ts
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Page } from 'playwright-core';
import { CodeServerSession, ROOT } from './harness';
import { makeColorDataset } from '../fixtures/train/makeDataset';

const OUT = path.join(ROOT, 'test-output', 'e2e-torch-interpreter');
const STANDIN = path.join(ROOT, 'test', 'fixtures', 'python-extension-standin');
const TORCH_PYTHON = '/usr/bin/python3';
let session: CodeServerSession;
let page: Page;
let tmp = '';
let torchVersion = '';
let noTorchPython = '';

before(async () => {
  torchVersion = execFileSync(TORCH_PYTHON, ['-c', 'import torch; print(torch.__version__)'], {
    encoding: 'utf8',
  }).trim();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-e2e-torch-'));
  await makeColorDataset(path.join(tmp, 'colors'), { perClass: 6 });
  // A real interpreter that cannot import torch: the same Python without its site-packages.
  noTorchPython = path.join(tmp, 'python-without-torch');
  fs.writeFileSync(noTorchPython, `#!/bin/sh\nexec ${TORCH_PYTHON} -S "$@"\n`, { mode: 0o755 });
});

after(async () => {
  await session?.close();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

/** A fresh VS Code in `theme` whose (stand-in) Python extension has `python` selected. */
async function startSession(theme: string, tag: string, python: string): Promise<void> {
  await session?.close();
  session = new CodeServerSession({
    outDir: path.join(OUT, tag),
    userSettings: { 'vitLens.askForModel': false, 'workbench.colorTheme': theme },
    env: { XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp', VIT_LENS_E2E_PYTHON: python },
    setupWorkspace: (ws, sessionTmp) => {
      fs.cpSync(path.join(tmp, 'colors'), path.join(ws, 'colors'), { recursive: true });
      fs.writeFileSync(path.join(ws, '.vscode/settings.json'), '{}\n');
      // Before the VSIX is installed there: VS Code then registers both.
      fs.cpSync(STANDIN, path.join(sessionTmp, 'extensions', 'ms-python.python-2099.0.0'), { recursive: true });
    },
  });
  await session.start();
  page = session.page;
}

const row = (label: string) =>
  page
    .locator('.quick-input-widget .quick-input-list .monaco-list-row', { hasText: new RegExp(`^\\s*${label}`) })
    .first();
const text = async (label: string) => ((await row(label).textContent()) ?? '').replace(/\s+/g, ' ');

/** Fine-tune on colors/ up to the form. */
async function openForm(): Promise<void> {
  await session.quickInputClosed();
  await session.explorerMenu('colors', 'Fine-tune ViT on Folder');
  const dialog = page.locator('.monaco-dialog-box');
  await dialog.waitFor({ timeout: 120_000 });
  await dialog.locator('.monaco-button', { hasText: 'Continue' }).click();
  await row('PyTorch').waitFor({ timeout: 90_000 });
}

test("the PyTorch row shows the Python extension's interpreter, and a torch run uses it", async () => {
  await startSession('Default Light Modern', 'light', noTorchPython);
  await session.withFailureShot('torch-missing', async () => {
    await openForm();
    const torch = await text('PyTorch');
    assert.match(torch, /Not available: torch is not installed/);
    assert.ok(torch.includes(`${noTorchPython} (the Python extension)`), torch);
    assert.doesNotMatch(torch, /--python/);
    await page.waitForTimeout(500);
    await session.shot('1-form-light.png');
    // Picking it says what to do, with the actions.
    await row('PyTorch').click();
    const toast = page.locator('.notifications-toasts .notification-toast', { hasText: 'cannot train with PyTorch' });
    await toast.waitFor({ timeout: 10_000 });
    assert.match(
      (await toast.textContent()) ?? '',
      /torch is not installed: .*Set vitLens\.pythonPath.*Python extension/,
    );
    await toast.locator('.monaco-button', { hasText: 'Select Interpreter' }).waitFor({ timeout: 5000 });
    await page.mouse.move(700, 600); // off the row, whose hover would cover the form
    await page.waitForTimeout(1000); // the toast slides in
    await session.shot('2-advice-light.png');
  });

  // A Python extension whose activation never ends: the form waits PYTHON_EXTENSION_TIMEOUT_MS, then python3 on PATH.
  await startSession('Default High Contrast', 'hc', 'hang');
  await session.withFailureShot('torch-hang', async () => {
    await openForm();
    const torch = await text('PyTorch');
    assert.ok(torch.includes('(python3 on PATH; Python extension: no answer in 15 s)'), torch);
    await page.mouse.move(700, 600);
    await page.waitForTimeout(500);
    await session.shot('1-form-hc.png');
  });

  await startSession('Default Dark Modern', 'dark', TORCH_PYTHON);
  await session.withFailureShot('torch-dark', async () => {
    await openForm();
    const torch = await text('PyTorch');
    assert.ok(torch.includes(`Off: the built-in trainer runs (PyTorch ${torchVersion} · CPU available)`), torch);
    assert.ok(torch.includes(`${TORCH_PYTHON} (the Python extension)`), torch);
    // This machine keeps one core for the editor: the run trains on the rest.
    const threads = Math.max(1, os.availableParallelism() - 1);
    assert.match(await text('Backend'), new RegExp(`Auto: CPU · ${threads} threads? \\(wasm`));
    await page.waitForTimeout(500);
    await session.shot('1-form-dark.png');
    await torchRun();
  });
});

/** PyTorch on, 1 epoch, start; the run trains with the Python extension's interpreter. */
async function torchRun(): Promise<void> {
  await row('PyTorch').click();
  await page.locator('.quick-input-widget', { hasText: 'Fine-tune ViT: Trainer' }).waitFor({ timeout: 10_000 });
  await page.waitForTimeout(500);
  await session.shot('2-trainer-picker-dark.png');
  await row(`PyTorch ${torchVersion.replace(/[.+]/g, '\\$&')}`).click();
  await row('PyTorch').locator('text=/On: PyTorch /').waitFor({ timeout: 10_000 });
  assert.match(await text('Backend'), /PyTorch trains this run/);
  await row('Epochs').click();
  await page.locator('.quick-input-widget', { hasText: 'Fine-tune ViT: Epochs' }).waitFor({ timeout: 10_000 });
  await page.locator('.quick-input-widget input').fill('1');
  await page.keyboard.press('Enter');
  const start = row('Start Training');
  await start.locator('text=/ · 1 epoch · /').waitFor({ timeout: 10_000 });
  assert.match(await text('Start Training'), new RegExp(`PyTorch ${torchVersion.replace(/[.+]/g, '\\$&')} · CPU`));
  await page.waitForTimeout(500);
  await session.shot('3-form-torch-on-dark.png');
  const runName = /(colors-\w+(?:-\w+)?-\d{8}-\d{6}(?:-\d+)?)/.exec(await text('Start Training'))?.[1];
  assert.ok(runName);
  await start.click();

  const runJson = path.join(session.workspace, '.vit-lens', 'runs', runName!, 'run.json');
  const until = Date.now() + 300_000;
  let run: { status?: string; backend?: string; torch?: { python?: string; version?: string } } = {};
  while (Date.now() < until) {
    if (fs.existsSync(runJson)) run = JSON.parse(fs.readFileSync(runJson, 'utf8'));
    if (run.status && run.status !== 'running') break;
    await page.waitForTimeout(1000);
  }
  const log = path.join(path.dirname(runJson), 'train.log');
  assert.equal(
    run.status,
    'finished',
    `run: ${JSON.stringify(run)}\n${fs.existsSync(log) ? fs.readFileSync(log, 'utf8').slice(-2000) : ''}`,
  );
  assert.equal(run.backend, 'torch');
  assert.equal(run.torch?.python, TORCH_PYTHON);
  assert.equal(run.torch?.version, torchVersion);
}
