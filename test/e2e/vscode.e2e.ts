/**
 * End to end in a real VS Code: code-server (VS Code in the browser, installed by
 * scripts/e2e-install.sh outside the repo) driven by Playwright in Debian's Chromium.
 *
 * Installs the packaged VSIX, opens a workspace with real photos and the committed test model
 * configured (a workspace-relative `vitLens.model`), runs "ViT: Classify Image" from the explorer's
 * context menu, and checks the panel shows the labels and percentages the CLI prints for the same
 * image, draws an overlay with non-zero pixels, and redraws a different overlay when head fusion
 * changes (a worker round trip). Screenshots: test-output/e2e/ (look at them).
 *
 * Run with `npm run test:e2e` (scripts/e2e.sh builds the VSIX first).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Frame, Page } from 'playwright-core';
import { makeColorDataset } from '../fixtures/train/makeDataset';
import { CodeServerSession, ROOT } from './harness';
import type { Canvas, Img, Win } from '../unit/browserShapes';

const OUT = path.join(ROOT, 'test-output', 'e2e');
const MODEL = path.join(ROOT, 'test/fixtures/vit-tiny/hf');
const PHOTOS = ['chelsea.png', 'coffee.png', 'rocket.jpg'];

/** A slow local stand-in for the Hugging Face Hub (HF_ENDPOINT): serves the test model, weights in slow chunks. */
let hub: http.Server | undefined;
const hubRequests: string[] = [];
/** Weight downloads the client closed before the end (a cancelled load). */
const hubAborted: string[] = [];
let session: CodeServerSession;
let page: Page;
let workspace = '';
let tmp = '';
let extensionsDir = '';

const shot = (name: string) => session.shot(name);
const explorerMenu = (name: string, entry: string, screenshot?: string, keepSelection = false) =>
  session.explorerMenu(name, entry, screenshot, keepSelection);
const withFailureShot = (name: string, body: () => Promise<void>) => session.withFailureShot(name, body);
/** The results panel's document. */
const panelFrame = (timeoutMs = 60_000): Promise<Frame> =>
  session.webviewFrame('#rows', 'the ViT Lens results panel', timeoutMs);

/** A class-folder dataset (red/green/blue noise images) with one planted flip: a blue image filed under red. */
const DATASET_SOURCE = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-e2e-dataset-'));
const FLIP = 'img-from-blue.png';

before(async () => {
  await makeColorDataset(DATASET_SOURCE, { perClass: 8 });
  fs.renameSync(path.join(DATASET_SOURCE, 'blue', 'img7.png'), path.join(DATASET_SOURCE, 'red', FLIP));
  hub = http.createServer((req, res) => {
    hubRequests.push(`${req.method === 'HEAD' ? 'HEAD ' : ''}${req.url ?? ''}`);
    // The test model under its own id and under the standard model's id (the first-run prompt's Download).
    const m =
      /^\/(?:test-org\/vit-tiny|google\/vit-base-patch16-224)\/resolve\/main\/(config\.json|preprocessor_config\.json|model\.safetensors)$/.exec(
        req.url ?? '',
      );
    if (!m) return void res.writeHead(404).end();
    const body = fs.readFileSync(path.join(MODEL, m[1]));
    res.writeHead(200, { 'content-length': body.length, 'content-type': 'application/octet-stream' });
    if (req.method === 'HEAD') return void res.end();
    if (m[1] !== 'model.safetensors') return void res.end(body);
    // 40 chunks, 0.5 s apart: long enough to see the progress notification and cancel it.
    let i = 0;
    const step = Math.ceil(body.length / 40);
    const timer = setInterval(() => {
      if (res.destroyed || i * step >= body.length) {
        clearInterval(timer);
        return void res.end();
      }
      res.write(body.subarray(i * step, ++i * step));
    }, 500);
    res.on('close', () => {
      clearInterval(timer);
      if (i * step < body.length) hubAborted.push(req.url ?? '');
    });
  });
  await new Promise<void>(resolve => hub!.listen(0, '127.0.0.1', resolve));
  session = new CodeServerSession({
    outDir: OUT,
    env: { HF_ENDPOINT: `http://127.0.0.1:${(hub.address() as net.AddressInfo).port}` },
    setupWorkspace: ws => {
      for (const f of PHOTOS) fs.copyFileSync(path.join(ROOT, 'test/fixtures/photos', f), path.join(ws, f));
      fs.cpSync(MODEL, path.join(ws, 'models', 'vit-tiny'), { recursive: true });
      fs.cpSync(DATASET_SOURCE, path.join(ws, 'dataset'), { recursive: true });
      // Workspace settings: the model as a workspace-relative path (the workspace is trusted here).
      fs.writeFileSync(
        path.join(ws, '.vscode/settings.json'),
        JSON.stringify({ 'vitLens.model': 'models/vit-tiny', 'vitLens.topK': 5 }, null, 2),
      );
    },
  });
  await session.start();
  ({ page, workspace, tmp, extensionsDir } = session);
});

after(async () => {
  fs.rmSync(DATASET_SOURCE, { recursive: true, force: true });
  hub?.closeAllConnections();
  hub?.close();
  await session?.close();
});

/** A hash of the overlay canvas's pixels and whether any is non-zero. */
async function overlayPixels(): Promise<{
  hash: number;
  nonZero: number;
  width: number;
  height: number;
  drawn: string;
}> {
  return (await panelFrame()).locator('#overlay').evaluate((c: Canvas) => {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let hash = 0;
    let nonZero = 0;
    for (let i = 0; i < d.length; i++) {
      if (d[i] !== 0) nonZero++;
      hash = (hash * 31 + d[i]) | 0;
    }
    return { hash, nonZero, width: c.width, height: c.height, drawn: c.dataset.drawn ?? '' };
  });
}

test('Classify Image from the explorer shows the CLI labels and an attention overlay that follows head fusion', async () => {
  // The CLI's answer for the same image and model (the panel must agree with it).
  const cli = JSON.parse(
    execFileSync(
      process.execPath,
      [
        path.join(ROOT, 'dist/cli.js'),
        'classify',
        path.join(workspace, 'chelsea.png'),
        '--model',
        MODEL,
        '--top-k',
        '5',
        '--json',
        '--cache-dir',
        path.join(tmp, 'cli-cache'),
      ],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
    ),
  );
  const expected = cli.results[0].predictions as { label: string; score: number }[];
  assert.equal(expected.length, 5);

  // Explorer → right-click chelsea.png → "Classify Image".
  await explorerMenu('chelsea.png', 'Classify Image', '1-explorer-context-menu.png');
  const panel = await panelFrame();

  // The panel: top-k labels with percentages, as the CLI printed them.
  const labels = panel.locator('#rows > li').first().locator('.label');
  await labels.first().waitFor({ timeout: 120_000 });
  assert.deepEqual(
    await labels.allTextContents(),
    expected.map(p => p.label),
  );
  const scores = await panel.locator('#rows > li').first().locator('.score').allTextContents();
  assert.deepEqual(
    scores,
    expected.map(p => `${(p.score * 100).toFixed(1)}%`),
  );

  // The overlay: drawn, non-zero, at the image's size (chelsea.png is 451×300).
  await panel.locator('#overlay[data-drawn]').waitFor({ timeout: 60_000 });
  const first = await overlayPixels();
  assert.ok(first.nonZero > 0, 'overlay canvas is all zero');
  assert.deepEqual([first.width, first.height], [451, 300]);
  assert.match(first.drawn, /rollout · mean/);
  // The model and provider in the status bar.
  await page.locator('.statusbar-item', { hasText: 'CPU' }).first().waitFor({ timeout: 10_000 });
  await shot('2-panel-classify.png');

  // Head fusion → max: the worker recomputes the rollout and the overlay changes.
  await panel.locator('#head-fusion').click();
  await panel.locator('#head-fusion').getByRole('option', { name: 'max', exact: true }).click();
  await panel.locator('#overlay[data-drawn*="rollout · max"]').waitFor({ timeout: 60_000 });
  const second = await overlayPixels();
  assert.ok(second.nonZero > 0);
  assert.notEqual(second.hash, first.hash, 'overlay did not change with head fusion');
  await shot('3-panel-head-fusion-max.png');

  // Raw attention of one layer and head also comes back from the worker.
  await panel.locator('vscode-radio[value="attention"]').click();
  await panel.locator('#overlay[data-drawn*="layer 0"]').waitFor({ timeout: 60_000 });
  const third = await overlayPixels();
  assert.notEqual(third.hash, second.hash, 'raw attention overlay equals the rollout one');
  await shot('4-panel-raw-attention.png');
});

test('Audit Dataset from the explorer: the planted flip is listed, Move to class… moves it to the suggested class, Undo puts it back; a reload restores the panel', () =>
  withFailureShot('audit', async () => {
    const flipped = path.join(workspace, 'dataset', 'red', FLIP);
    const moved = path.join(workspace, 'dataset', 'blue', FLIP);
    await explorerMenu('dataset', 'Audit Dataset');
    const audit = await session.webviewFrame('#tab-labelIssues', 'the audit panel', 180_000);
    const row = audit.locator('#list > li.row', { hasText: `red/${FLIP}` });
    await row.waitFor({ timeout: 180_000 });
    assert.match((await row.textContent()) ?? '', /labelled “red”, looks like “blue”/);
    await shot('audit-1-panel.png');

    // Move to class… → the quick pick offers the suggested class first.
    await row.locator('button', { hasText: 'Move to class…' }).click();
    const first = page.locator('.quick-input-list .monaco-list-row').first();
    await first.waitFor({ timeout: 30_000 });
    assert.match((await first.textContent()) ?? '', /blue.*suggested by the audit/);
    await shot('audit-2-move-pick.png');
    await first.click();
    for (const until = Date.now() + 30_000; !fs.existsSync(moved);) {
      assert.ok(Date.now() < until, `${moved} did not appear`);
      await page.waitForTimeout(200);
    }
    assert.equal(fs.existsSync(flipped), false, 'moved, not copied');
    await row.waitFor({ state: 'detached', timeout: 30_000 });

    // Undo: the file is back in red/ and listed again.
    await audit.locator('#undo').click();
    for (const until = Date.now() + 30_000; !fs.existsSync(flipped);) {
      assert.ok(Date.now() < until, `${flipped} was not restored`);
      await page.waitForTimeout(200);
    }
    assert.equal(fs.existsSync(moved), false);
    await row.waitFor({ timeout: 30_000 });
    await shot('audit-3-after-undo.png');

    // A window reload restores the panel from its audit.json (the serializer), with the row. The
    // pause lets the webview's last setState reach the workbench (a message, asynchronous).
    await page.waitForTimeout(1000);
    await session.reloadWindow();
    await page.locator('.tabs-container .tab', { hasText: 'Audit: dataset' }).first().click({ timeout: 30_000 });
    const restored = await session.webviewFrame('#tab-labelIssues', 'the restored audit panel', 60_000);
    await restored.locator('#list > li.row', { hasText: `red/${FLIP}` }).waitFor({ timeout: 30_000 });
    await shot('audit-4-after-reload.png');
    // Close it: a late-loading webview takes focus (and closes a quick pick), and its tab's hover, left
    // under the pointer, covers the next panels' buttons.
    await session.runCommand('View: Close Editor');
    await page
      .locator('.tabs-container .tab', { hasText: 'Audit: dataset' })
      .waitFor({ state: 'detached', timeout: 30_000 });
    await page.mouse.move(0, 0);
  }));

test('Selecting several images in the explorer classifies them all in one panel', () =>
  withFailureShot('multi-select', async () => {
    await page.keyboard.press('Escape');
    const row = (name: string) => page.locator('.explorer-folders-view .monaco-list-row', { hasText: name });
    const selected = page.locator('.explorer-folders-view .monaco-list-row[aria-selected="true"]');
    for (let attempt = 0; attempt < 5 && (await selected.count()) !== 3; attempt++) {
      await row('chelsea.png').click();
      await row('coffee.png').click({ modifiers: ['Control'] });
      await row('rocket.jpg').click({ modifiers: ['Control'] });
      await page.waitForTimeout(300);
    }
    assert.equal(await selected.count(), 3, 'could not select the three images in the explorer');
    await explorerMenu('rocket.jpg', 'Classify Image', undefined, true);
    const panel = await panelFrame();
    const rows = panel.locator('#rows > li');
    await panel.locator('#rows > li:nth-child(3) .label').first().waitFor({ timeout: 60_000 });
    assert.equal(await rows.count(), 3);
    const names = await panel.locator('#rows .name').allTextContents();
    assert.deepEqual([...names].sort(), [...PHOTOS].sort());
    await shot('5-panel-three-images.png');
  }));

test('After a window reload the panel is restored from its saved state (WebviewPanelSerializer)', () =>
  withFailureShot('reload', async () => {
    // The webview's setState reaches the workbench asynchronously (a message). A page reload
    // persisted whatever the browser managed to write at unload (seen: a restored panel with no rows,
    // rows still "Waiting for the model…", an audit panel not restored at all); Reload Window awaits
    // the workbench's flush first.
    await page.waitForTimeout(1000);
    await session.reloadWindow();
    // The restored panel may be a background tab; webviews render when shown.
    await page.locator('.tabs-container .tab', { hasText: 'ViT Lens' }).first().click({ timeout: 30_000 });
    const panel = await panelFrame();
    // Restored from the state the webview saved (which snapshot depends on when the browser flushed
    // it): rows with labels and a drawn overlay, before any worker exists to recompute them.
    await panel.locator('#rows > li .label').first().waitFor({ timeout: 30_000 });
    await panel.locator('#overlay[data-drawn]').waitFor({ timeout: 30_000 });
    assert.ok((await overlayPixels()).nonZero > 0);
    assert.deepEqual(workerPids(), [], 'the restored panel should not need the worker');
    await panel.locator('#image').evaluate((img: Img) => img.decode());
    await shot('6-panel-after-reload.png');
  }));

/** The worker processes of this test's extension (found by their command line, killed by pid). */
function workerPids(): number[] {
  const worker = path.join(extensionsDir, 'vit-lens.vit-lens-0.1.0', 'dist', 'worker.js');
  return fs
    .readdirSync('/proc')
    .filter(d => /^\d+$/.test(d))
    .flatMap(d => {
      try {
        return fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(worker) ? [Number(d)] : [];
      } catch {
        return [];
      }
    });
}

test('A crashed worker is restarted with one notification and the next request works', () =>
  withFailureShot('crash', async () => {
    // The worker starts lazily: after the reload it runs once something is classified.
    await explorerMenu('rocket.jpg', 'Classify Image');
    // Wait until it has answered (the panel may show the restored rows before): a crash mid-session.
    const rocket = await panelFrame();
    for (let i = 0; ; i++) {
      const names = await rocket.locator('#rows .name').allTextContents();
      const drawn = await rocket.locator('#overlay[data-drawn]').count();
      if (names.join() === 'rocket.jpg' && drawn === 1 && workerPids().length === 1) break;
      if (i > 240)
        throw new Error(
          `rocket.jpg was not classified and explained: rows ${names}, drawn ${drawn}, workers ${workerPids()}`,
        );
      await page.waitForTimeout(250);
    }
    const before = workerPids();
    assert.equal(before.length, 1, `expected one worker process, found ${before.length}`);
    process.kill(before[0], 'SIGKILL');
    const toast = page.locator('.notifications-toasts .notification-toast', { hasText: 'worker stopped unexpectedly' });
    await toast.first().waitFor({ timeout: 30_000 });
    await page.waitForTimeout(1000);
    await shot('7-worker-crash-notification.png');
    assert.equal(await toast.count(), 1);
    // One notification, not a stream: no other ViT Lens toast (e.g. the language client's own).
    assert.equal(await page.locator('.notifications-toasts .notification-toast', { hasText: 'ViT Lens' }).count(), 1);
    // Restarted by the client: a new process, and classification works again (the model reloads).
    for (let i = 0; i < 40 && !(workerPids().length === 1 && workerPids()[0] !== before[0]); i++)
      await page.waitForTimeout(250);
    assert.notEqual(workerPids()[0], before[0]);
    await explorerMenu('coffee.png', 'Classify Image');
    const panel = await panelFrame();
    await panel.locator('#rows .name', { hasText: 'coffee.png' }).waitFor({ timeout: 30_000 });
    await panel.locator('#rows > li').first().locator('.label').first().waitFor({ timeout: 60_000 });
    assert.equal(await panel.locator('#rows > li').count(), 1);
    assert.ok((await toast.count()) <= 1, 'more than one crash notification');
  }));

const BUILT_IN = path.join(ROOT, 'models/default');
test('The command palette finds ViT Lens commands by their category; Get Started opens the walkthrough', () =>
  withFailureShot('palette', async () => {
    await page.keyboard.press('Escape');
    await session.quickInputClosed();
    await page.keyboard.press('F1');
    const input = page.locator('.quick-input-widget input');
    await input.waitFor({ state: 'visible', timeout: 10_000 });
    const rows = page.locator('.quick-input-list .monaco-list-row');
    const labels = async () =>
      (await rows.evaluateAll(els => els.map(e => e.getAttribute('aria-label') ?? e.textContent ?? ''))).slice(0, 8);
    // VS Code lists the matches of a filter alphabetically (after recently used ones), so ">ViT" alone
    // puts "Help: Video Tutorials" and every "View: …" first; the category is what finds ours.
    await input.fill('>ViT Lens');
    await rows.first().waitFor({ timeout: 10_000 });
    await page.waitForTimeout(500);
    const ours = await labels();
    await shot('10-palette-vit.png');
    assert.ok(ours.length >= 8, `palette rows for "ViT Lens": ${ours.join(' | ')}`);
    // Ours, or VS Code's own entry for our activity-bar container ("View: Show ViT Lens").
    for (const label of ours)
      assert.match(label, /^ViT Lens: |^View: Show ViT Lens$/, `palette rows for "ViT Lens": ${ours.join(' | ')}`);
    await page.keyboard.press('Escape');

    await session.runCommand('ViT Lens: Get Started');
    await page
      .locator('.gettingStartedContainer', { hasText: 'Get Started with ViT Lens' })
      .first()
      .waitFor({ timeout: 30_000 });
    for (const step of [
      'Pick a model',
      'Classify an image',
      'Show attention',
      'Fine-tune on a folder',
      'Open the dashboard',
      'Audit a dataset',
    ]) {
      await page
        .locator('.gettingStartedContainer .getting-started-step', { hasText: step })
        .first()
        .waitFor({ timeout: 10_000 });
    }
    await shot('11-walkthrough.png');
    await page.keyboard.press('Control+W');
  }));

test('With no model set, the first Classify asks once (standard model with its size / demo / another); Download fetches it from the hub and classifies', () =>
  withFailureShot('first-run', async () => {
    await page.keyboard.press('Escape');
    const settingsFile = path.join(workspace, '.vscode/settings.json');
    const saved = fs.readFileSync(settingsFile, 'utf8');
    // vitLens.model unset, as on a fresh install.
    fs.writeFileSync(settingsFile, JSON.stringify({ 'vitLens.topK': 5 }, null, 2));
    await page.waitForTimeout(1500);
    const cli = JSON.parse(
      execFileSync(
        process.execPath,
        [
          path.join(ROOT, 'dist/cli.js'),
          'classify',
          path.join(workspace, 'coffee.png'),
          '--model',
          MODEL,
          '--top-k',
          '5',
          '--json',
          '--cache-dir',
          path.join(tmp, 'cli-cache'),
        ],
        { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
      ),
    );
    const expected = (cli.results[0].predictions as { label: string }[]).map(p => p.label);

    await explorerMenu('coffee.png', 'Classify Image');
    const dialog = page.locator('.monaco-dialog-box', { hasText: 'google/vit-base-patch16-224' });
    await dialog.waitFor({ timeout: 30_000 });
    const size = fs.statSync(path.join(MODEL, 'model.safetensors')).size;
    assert.match(
      (await dialog.textContent()) ?? '',
      new RegExp(`ImageNet, 1000 classes; ${(size / 1e3).toFixed(1)} kB, downloaded once, cached`),
    );
    assert.ok(
      hubRequests.includes('HEAD /google/vit-base-patch16-224/resolve/main/model.safetensors'),
      `the size came from a HEAD request: ${hubRequests.join(', ')}`,
    );
    for (const b of ['Download', 'Use the offline demo model (10 clothing classes)', 'Choose another…'])
      await dialog.getByRole('button', { name: b, exact: true }).waitFor({ timeout: 5000 });
    await shot('8a-first-run-prompt.png');
    await dialog.getByRole('button', { name: 'Download', exact: true }).click();

    // The download runs behind its progress notification: file, size and percent, the model id only in the title.
    const progress = page.locator('.notifications-toasts .notification-toast', {
      hasText: 'loading google/vit-base-patch16-224',
    });
    await progress.first().waitFor({ timeout: 30_000 });
    await page
      .locator('.notifications-toasts .notification-toast', {
        hasText: /model\.safetensors: [\d.]+ kB of [\d.]+ kB \(\d+%\)/,
      })
      .first()
      .waitFor({ timeout: 30_000 });
    assert.equal(
      await progress.filter({ hasText: 'Downloading google' }).count(),
      0,
      'the message does not repeat the title',
    );
    await shot('8b-first-run-download.png');
    const panel = await panelFrame();
    const labels = panel.locator('#rows > li').first().locator('.label');
    await labels.first().waitFor({ timeout: 120_000 });
    assert.deepEqual(await labels.allTextContents(), expected);
    assert.equal(await panel.locator('#model').textContent(), 'google/vit-base-patch16-224 · CPU');
    await shot('8c-first-run-classified.png');

    // Answered once: the next Classify with the demo model (setting empty again) does not ask.
    fs.writeFileSync(settingsFile, saved);
    await page.waitForTimeout(1000);
  }));

test(
  'ViT: Select Model… → Built-in model switches the model (status bar, panel labels)',
  { skip: fs.existsSync(BUILT_IN) ? false : 'no built-in model in models/default yet' },
  () =>
    withFailureShot('built-in', async () => {
      await page.keyboard.press('Escape');
      // Rows are clicked, not typed + Enter, and the pick is tried again when its answer got lost: under
      // load a key sent while a quick pick (re)renders can vanish (seen twice in CI-like runs).
      for (let attempt = 0; ; attempt++) {
        await session.runCommand('ViT Lens: Select Model');
        await page.locator('.quick-input-widget', { hasText: 'ViT Lens: Select Model' }).waitFor({ timeout: 10_000 });
        const builtIn = page.locator('.quick-input-list .monaco-list-row', { hasText: 'Built-in model' }).first();
        await builtIn.waitFor({ timeout: 10_000 });
        if (attempt === 0) await shot('8-select-model-quick-pick.png');
        await builtIn.click({ timeout: 10_000 });
        // The built-in model is built from its weights: a second pick offers fp32/fp16/q8 with estimated sizes.
        const shown = await page
          .locator('.quick-input-widget', { hasText: 'precision' })
          .waitFor({ timeout: 10_000 })
          .then(
            () => true,
            () => false,
          );
        if (shown) break;
        if (attempt >= 2) throw new Error('Select Model → Built-in model never showed the precision pick');
        await page.keyboard.press('Escape');
      }
      const fp32Row = page.locator('.quick-input-list .monaco-list-row', { hasText: 'fp32' }).first();
      await page.locator('.quick-input-list .monaco-list-row', { hasText: 'q8' }).first().waitFor({ timeout: 10_000 });
      assert.match((await fp32Row.textContent()) ?? '', /≈ \d+ kB/);
      await shot('8b-select-model-precision.png');
      // A click, not typed text + Enter: the second pick replaces the first, and keys sent while it does
      // can be lost (seen once: the pick stayed open and nothing loaded). Retried until the pick closes.
      // Under load the pick can take longer than one wait to close after an accepted click: a retry
      // then finds it hidden (seen in CI), which is the success it waited for.
      const precisionPick = page.locator('.quick-input-widget', { hasText: 'precision' });
      for (let attempt = 0; ; attempt++) {
        if (!(await precisionPick.isVisible())) break;
        await fp32Row.click({ timeout: 10_000 }).catch(() => undefined);
        const closed = await precisionPick.waitFor({ state: 'hidden', timeout: 5_000 }).then(
          () => true,
          () => false,
        );
        if (closed) break;
        if (attempt >= 3) throw new Error('the precision pick does not close');
      }
      const cli = JSON.parse(
        execFileSync(
          process.execPath,
          [
            path.join(ROOT, 'dist/cli.js'),
            'classify',
            path.join(workspace, 'coffee.png'),
            '--model',
            BUILT_IN,
            '--top-k',
            '5',
            '--json',
            '--cache-dir',
            path.join(tmp, 'cli-cache'),
          ],
          { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
        ),
      );
      const expected = (cli.results[0].predictions as { label: string }[]).map(p => p.label);
      // The pick is loaded at once. Wait on the event itself (the extension logs "loaded <name>" when the
      // worker answers), however long a loaded machine takes, then the status bar names it and its provider.
      await session.waitForLog(/loaded Fashion-MNIST demo \(10 clothing classes\) \(hf-folder, CPU/, 180_000);
      await page
        .locator('.statusbar-item', { hasText: 'Fashion-MNIST demo · CPU' })
        .first()
        .waitFor({ timeout: 10_000 });
      // The setting is written where it takes effect (here the workspace value shadowed the user one).
      assert.equal(
        JSON.parse(fs.readFileSync(path.join(workspace, '.vscode/settings.json'), 'utf8'))['vitLens.model'],
        '',
      );
      await explorerMenu('coffee.png', 'Classify Image');
      const panel = await panelFrame();
      const labels = panel.locator('#rows > li').first().locator('.label');
      for (let i = 0; i < 120; i++) {
        const got = await labels.allTextContents();
        if (got.join() === expected.join()) break;
        await page.waitForTimeout(250);
      }
      assert.deepEqual(await labels.allTextContents(), expected);
      // coffee.png is a colour photo: the panel says the demo's labels mean little here (no prompt first: answered above).
      await panel
        .locator('#demo-note', { hasText: 'unlike the 28×28 grey clothing images' })
        .waitFor({ timeout: 10_000 });
      assert.equal(await page.locator('.monaco-dialog-box').count(), 0, 'the first-run question is asked only once');
      await shot('9-panel-built-in-model.png');
    }),
);

test("The image preview's title bar button opens the panel in explain mode", () =>
  withFailureShot('editor-title', async () => {
    await page.keyboard.press('Escape');
    await page.locator('.explorer-folders-view .monaco-list-row', { hasText: 'chelsea.png' }).dblclick();
    const button = page.locator('.editor-actions .action-label[aria-label*="Show Attention Overlay"]').first();
    await button.waitFor({ timeout: 30_000 });
    await shot('10-image-preview-title-buttons.png');
    await button.click();
    const panel = await panelFrame();
    await panel.locator('#rows .name', { hasText: 'chelsea.png' }).waitFor({ timeout: 30_000 });
    await panel.locator('#overlay[data-drawn]').waitFor({ timeout: 60_000 });
    assert.equal(await panel.locator('#rows > li').count(), 1);
    assert.equal(await panel.locator('body').getAttribute('data-mode'), 'explain');
    assert.ok((await overlayPixels()).nonZero > 0);
    await shot('11-panel-explain-mode.png');
  }));

test('Save Overlay… writes a PNG next to the image by default', () =>
  withFailureShot('save-overlay', async () => {
    // Away from the tabs: a tab's hover left under the pointer would cover the button.
    await page.mouse.move(0, 0);
    const panel = await panelFrame();
    await panel.locator('#save-overlay').click();
    // code-server's save dialog is VS Code's simple file dialog: the proposed path is prefilled.
    const input = page.locator('.quick-input-widget input');
    await input.waitFor({ timeout: 15_000 });
    for (let i = 0; i < 40 && !(await input.inputValue()).endsWith('.png'); i++) await page.waitForTimeout(250);
    const proposed = await input.inputValue();
    // <stem>.<rollout|attention>.png in the image's folder (the method is whatever the panel shows).
    assert.match(
      proposed,
      new RegExp(`^${workspace.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/chelsea\\.(rollout|attention)\\.png$`),
    );
    await shot('12-save-overlay-dialog.png');
    await page.keyboard.press('Enter');
    const saved = proposed;
    for (let i = 0; i < 120 && !fs.existsSync(saved); i++) await page.waitForTimeout(250);
    assert.ok(fs.existsSync(saved), `${saved} was not written`);
    await page.waitForTimeout(500);
    const png = fs.readFileSync(saved);
    assert.equal(png.subarray(1, 4).toString(), 'PNG');
    // PNG IHDR: width and height at bytes 16..24 — the image's own size (451×300).
    assert.deepEqual([png.readUInt32BE(16), png.readUInt32BE(20)], [451, 300]);
  }));

test("Copy JSON puts the panel's results on the clipboard", () =>
  withFailureShot('copy-json', async () => {
    const panel = await panelFrame();
    const labels = await panel.locator('#rows > li').first().locator('.label').allTextContents();
    await panel.locator('#copy-json').click();
    /** The panel's results as Copy JSON writes them (the fields checked here). */
    let copied:
      | {
          results: { image: string; predictions: { label: string }[] }[];
          attention?: { values: number[]; grid: number[] };
        }
      | undefined;
    for (let i = 0; i < 40 && !copied; i++) {
      const text = await page
        .evaluate(() => (globalThis as unknown as Win).navigator.clipboard.readText() as Promise<string>)
        .catch(() => '');
      try {
        copied = JSON.parse(text);
      } catch {
        await page.waitForTimeout(250);
      }
    }
    assert.ok(copied, 'nothing JSON on the clipboard');
    assert.equal(copied.results[0].image, path.join(workspace, 'chelsea.png'));
    assert.deepEqual(
      copied.results[0].predictions.map((p: { label: string }) => p.label),
      labels,
    );
    assert.ok(
      Array.isArray(copied.attention?.values) &&
        copied.attention.values.length === copied.attention.grid[0] * copied.attention.grid[1],
    );
  }));

test('Class relevance: clicking a label in the panel shows why that class', () =>
  withFailureShot('relevance', async () => {
    const panel = await panelFrame();
    const before = await overlayPixels();
    const labels = panel.locator('#rows > li').first().locator('button.class-pick');
    const second = (await labels.allTextContents())[1];
    await labels.nth(1).click();
    await panel.locator('#map-caption', { hasText: `why “${second}”` }).waitFor({ timeout: 60_000 });
    await panel.locator('button.class-pick[aria-pressed="true"]', { hasText: second }).waitFor({ timeout: 10_000 });
    const after = await overlayPixels();
    assert.ok(after.nonZero > 0);
    assert.notEqual(after.hash, before.hash, 'the relevance map differs from the rollout map');
    await shot('12b-panel-class-relevance.png');
    // Back to rollout, as the tests after this expect.
    await panel.locator('vscode-radio[value="rollout"]').click();
    await panel.locator('#map-caption', { hasText: 'Attention rollout' }).waitFor({ timeout: 60_000 });
  }));

test('A hub model loads behind a cancellable progress notification; Cancel stops it quietly', () =>
  withFailureShot('hub-cancel', async () => {
    // Keyboard focus back in the workbench (the last click was inside the webview).
    await page.locator('.explorer-folders-view .monaco-list-row', { hasText: 'coffee.png' }).click();
    await session.runCommand('ViT Lens: Select Model');
    await page
      .locator('.quick-input-list .monaco-list-row', { hasText: 'Hugging Face Hub model' })
      .first()
      .waitFor({ timeout: 10_000 });
    await page.keyboard.type('Hugging Face Hub');
    await page.waitForTimeout(300);
    await page.keyboard.press('Enter');
    await page.locator('.quick-input-widget', { hasText: 'org/name' }).waitFor({ timeout: 10_000 });
    await page.keyboard.type('test-org/vit-tiny');
    await page.keyboard.press('Enter');
    const progress = page.locator('.notifications-toasts .notification-toast', {
      hasText: 'loading test-org/vit-tiny',
    });
    await progress
      .first()
      .waitFor({ timeout: 30_000 })
      .catch(e => {
        throw new Error(`no progress notification; hub requests: ${hubRequests.join(', ')}; ${e.message}`);
      });
    // The download reports progress (the worker's work-done progress, shown in the notification).
    for (let i = 0; i < 40 && !hubRequests.some(u => u.endsWith('model.safetensors')); i++)
      await page.waitForTimeout(250);
    await page.waitForTimeout(1500);
    await shot('13-hub-download-progress.png');
    // Clicked again while the toast stays: a click that lands while a progress update re-renders the
    // toast can be lost under load (seen once: still downloading 15 s after the click).
    for (let attempt = 0; ; attempt++) {
      await progress
        .locator('.monaco-button', { hasText: 'Cancel' })
        .click({ timeout: 5_000 })
        .catch(() => undefined);
      const gone = await progress
        .first()
        .waitFor({ state: 'detached', timeout: 5_000 })
        .then(
          () => true,
          () => false,
        );
      if (gone) break;
      assert.ok(attempt < 3, 'the loading notification stayed after Cancel');
    }
    await page.waitForTimeout(1500);
    assert.deepEqual(hubAborted, ['/test-org/vit-tiny/resolve/main/model.safetensors'], 'Cancel stopped the download');
    assert.equal(
      await page.locator('.notifications-toasts .notification-toast', { hasText: 'could not' }).count(),
      0,
      'a cancelled load must not be reported as an error',
    );
    await shot('14-hub-download-cancelled.png');
  }));

test('vitLens.executionProvider: webgpu runs the model on WebGPU (lavapipe here) and the status bar says so', () =>
  withFailureShot('webgpu', async () => {
    // Settings written as a user would edit settings.json; the extension reloads the model on the change.
    fs.writeFileSync(
      path.join(workspace, '.vscode/settings.json'),
      JSON.stringify(
        { 'vitLens.model': 'models/vit-tiny', 'vitLens.topK': 5, 'vitLens.executionProvider': 'webgpu' },
        null,
        2,
      ),
    );
    await page.locator('.explorer-folders-view .monaco-list-row', { hasText: 'coffee.png' }).click();
    await explorerMenu('chelsea.png', 'Classify Image');
    const panel = await panelFrame();
    await panel.locator('#rows > li').first().locator('.label').first().waitFor({ timeout: 180_000 });
    // The adapter's name, cut at 40 characters in the bar (lavapipe's is long).
    const bar = page.locator('.statusbar-item', { hasText: /vit-tiny · WebGPU · llvmpipe/ }).first();
    await bar.waitFor({ timeout: 120_000 }).catch(async e => {
      throw new Error(
        `status bar: ${(await page.locator('.statusbar-item').allTextContents()).filter(t => /vit-tiny|default/.test(t)).join(' | ')}; ${e.message}`,
      );
    });
    // The labels equal the CPU's (the CLI on the CPU provider).
    const cli = JSON.parse(
      execFileSync(
        process.execPath,
        [
          path.join(ROOT, 'dist/cli.js'),
          'classify',
          path.join(workspace, 'chelsea.png'),
          '--model',
          MODEL,
          '--provider',
          'cpu',
          '--top-k',
          '5',
          '--json',
          '--cache-dir',
          path.join(tmp, 'cli-cache'),
        ],
        { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
      ),
    );
    assert.deepEqual(
      await panel.locator('#rows > li').first().locator('.label').allTextContents(),
      cli.results[0].predictions.map((p: { label: string }) => p.label),
    );
    assert.equal(await panel.locator('#model').textContent(), 'vit-tiny · WebGPU');
    await shot('15-webgpu-status-bar.png');
  }));
