/**
 * Shared scaffolding for the webview tests (webview.test.ts, dashboard.test.ts,
 * predictionsWebview.test.ts): headless Chromium (playwright-core + Debian's chromium) around a
 * fake VS Code host. A local HTTP origin serves the page the extension builds and the repository's
 * files, playing the role of `webview.cspSource`; the fake host records what the page posts, keeps
 * setState's value, collects CSP violations and sets theme variables like VS Code does.
 *
 * Without Chromium (a dev machine that has not run scripts/e2e-install.sh) the browser tests are
 * skipped; VIT_LENS_REQUIRE_CHROMIUM=1 (npm run test:e2e, scripts/e2e.sh) makes them fail instead.
 * Not named *.test.ts: the runner does not run it on its own.
 */
import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { PageParts } from '../../extension/webviewPage';
import type { Win } from './browserShapes';

export const ROOT = path.resolve(__dirname, '../..');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
/** For `describe(..., { skip: skipBrowser })`. */
export const skipBrowser =
  !fs.existsSync(CHROMIUM) && process.env.VIT_LENS_REQUIRE_CHROMIUM !== '1'
    ? `no Chromium at ${CHROMIUM} (run scripts/e2e-install.sh)`
    : false;

export type Theme = 'dark' | 'light' | 'hc';
/** `--vscode-*` variables (without the prefix) per theme. */
export type ThemeVars = { dark: Record<string, string>; light: Record<string, string>; hc?: Record<string, string> };

/** The fake VS Code host, injected into the page before its script runs. */
const FAKE_HOST = String.raw`function (saved, theme, vars) {
  window.__posted = [];
  window.__state = saved === null ? undefined : saved;
  window.__cspViolations = [];
  document.addEventListener('securitypolicyviolation', function (e) { window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI); });
  window.acquireVsCodeApi = function () {
    return {
      postMessage: function (m) { window.__posted.push(m); },
      getState: function () { return window.__state; },
      setState: function (s) { window.__state = s; },
    };
  };
  // What VS Code injects into every webview: theme colour variables and a theme class on <body>.
  document.addEventListener('DOMContentLoaded', function () {
    for (var k in vars) document.documentElement.style.setProperty('--vscode-' + k, vars[k]);
    document.documentElement.style.setProperty('--vscode-font-family', 'system-ui, sans-serif');
    document.documentElement.style.setProperty('--vscode-font-size', '13px');
    document.body.classList.add(theme === 'light' ? 'vscode-light' : theme === 'hc' ? 'vscode-high-contrast' : 'vscode-dark');
  });
}`;

export interface OpenedPage {
  page: Page;
  /** What the page has posted to the host so far. */
  posted: () => Promise<unknown[]>;
  /** Console errors and uncaught exceptions. */
  errors: string[];
}

export interface Harness {
  /** The local origin standing in for `webview.cspSource`. */
  origin: string;
  /** A new page with the fake host (state from `saved`, the theme's variables), loaded. */
  open(opts: { viewport: { width: number; height: number }; saved?: unknown; theme?: Theme }): Promise<OpenedPage>;
  close(): Promise<void>;
}

const TYPES: Record<string, string> = {
  '.js': 'text/javascript',
  '.css': 'text/css',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
};

/**
 * Serves `page(origin)` at /page.html and the repository's files below it, and launches Chromium.
 * `bundle` (e.g. dist/webview.js) must have been built.
 */
export async function startHarness(opts: {
  bundle: string;
  page: (origin: string) => string;
  themes: ThemeVars;
}): Promise<Harness> {
  assert.ok(fs.existsSync(path.join(ROOT, opts.bundle)), `${opts.bundle} is missing: run npm run build`);
  let html = '';
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/favicon.ico') return void res.writeHead(204).end();
    if (url.pathname === '/page.html') return void res.writeHead(200, { 'content-type': 'text/html' }).end(html);
    const file = path.join(ROOT, decodeURIComponent(url.pathname));
    if (!file.startsWith(ROOT + path.sep) || !fs.existsSync(file)) return void res.writeHead(404).end();
    res
      .writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream' })
      .end(fs.readFileSync(file));
  });
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  html = opts.page(origin);
  let browser: Browser | undefined;
  try {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run'],
    });
  } catch (e) {
    await new Promise(resolve => server.close(resolve));
    throw e;
  }
  const b = browser;
  return {
    origin,
    async open({ viewport, saved, theme = 'dark' }) {
      const page = await b.newPage({ viewport });
      const errors: string[] = [];
      page.on('console', m => m.type() === 'error' && errors.push(m.text()));
      page.on('pageerror', e => errors.push(e.message));
      const vars = opts.themes[theme];
      assert.ok(vars, `no theme variables for ${theme}`);
      // A string, not a function: tsx compiles functions with esbuild's keepNames, whose __name helper does not exist in the page.
      await page.addInitScript(
        `(${FAKE_HOST})(${JSON.stringify(saved ?? null)}, ${JSON.stringify(theme)}, ${JSON.stringify(vars)})`,
      );
      await page.goto(`${origin}/page.html`);
      return { page, posted: () => page.evaluate(() => (globalThis as unknown as Win).__posted), errors };
    },
    async close() {
      await b.close();
      await new Promise(resolve => server.close(resolve));
    },
  };
}

/**
 * For a `describe` of browser tests: before them, the harness serving the page `html` builds (the
 * extension's own page function) around `bundle` and `style`; after them, closed. `out` (for
 * screenshots) is created. The result stands for the started harness.
 */
export function browserHarness(opts: {
  bundle: string;
  style: string;
  html: (parts: PageParts) => string;
  themes: ThemeVars;
  out: string;
}): Harness {
  let started: Harness | undefined;
  before(async () => {
    fs.mkdirSync(opts.out, { recursive: true });
    const page = (o: string) =>
      opts.html({
        cspSource: o,
        nonce: 'testnonce123',
        scriptUri: `${o}/${opts.bundle}`,
        styleUri: `${o}/${opts.style}`,
      });
    started = await startHarness({ bundle: opts.bundle, page, themes: opts.themes });
  });
  after(() => started?.close());
  const get = (): Harness => {
    assert.ok(started, 'the browser harness did not start');
    return started;
  };
  return {
    get origin() {
      return get().origin;
    },
    open: o => get().open(o),
    close: () => get().close(),
  };
}

/**
 * What media/page.css (imported by each panel's stylesheet) sets: the body's background from the
 * theme, and on the folder panels the header title's weight (600, not the browser's bold).
 */
export const sharedStyle = (page: Page): Promise<{ background: string; title?: string }> =>
  page.evaluate(() => {
    const g = globalThis as unknown as Win;
    const h1 = g.document.querySelector('.summary h1');
    return {
      background: g.getComputedStyle(g.document.body).backgroundColor,
      ...(h1 ? { title: g.getComputedStyle(h1).fontWeight } : {}),
    };
  });

/** The CSP violations the page has reported (directive and blocked URI). */
export const cspViolations = (page: Page): Promise<string[]> =>
  page.evaluate(() => (globalThis as unknown as Win).__cspViolations);
