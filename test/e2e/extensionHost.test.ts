/**
 * The extension against a stand-in `vscode` module, in plain Node (fast, no browser):
 * - activating dist/extension.js loads no engine, native or ML module and not even the language
 *   client, and takes milliseconds;
 * - in an untrusted workspace `vitLens.model` / `vitLens.cacheDir` come from user settings only.
 * Run by `npm run test:e2e` (scripts/e2e.sh) after the build.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import Module from 'node:module';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '../..');

/** A `vscode` where every member is a callable, constructible no-op; `overrides` replaces parts of it. */
function fakeVscode(overrides: Record<string, unknown>): unknown {
  const handler: ProxyHandler<any> = {
    get: (_t, k) => (k === 'then' ? undefined : k === Symbol.toPrimitive ? () => '' : fake),
    apply: () => fake,
    construct: () => fake,
  };
  const fake: any = new Proxy(function () {}, handler);
  // A plain object: the bundle copies the module's own properties (esbuild's ESM interop).
  const names = ['window', 'workspace', 'commands', 'env', 'Uri', 'EventEmitter', 'StatusBarAlignment', 'ProgressLocation', 'ViewColumn', 'ConfigurationTarget', 'CancellationTokenSource', 'CancellationError', 'MarkdownString', 'QuickPickItemKind', 'TabInputCustom', 'TabInputText', 'Disposable'];
  return { ...Object.fromEntries(names.map((n) => [n, fake])), ...overrides };
}

function withFakeVscode<T>(vscode: unknown, body: () => T): T {
  const mod = Module as unknown as { _load: (request: string, ...rest: unknown[]) => unknown };
  const original = mod._load;
  mod._load = function (request: string, ...rest: unknown[]) {
    return request === 'vscode' ? vscode : original.call(this, request, ...rest);
  };
  try {
    return body();
  } finally {
    mod._load = original;
  }
}

test('activation loads no engine, native or ML module (nor the language client) and is fast', () => {
  const before = new Set(Object.keys(require.cache));
  const logged: string[] = [];
  const vscode = fakeVscode({
    window: new Proxy(
      {
        createOutputChannel: () => ({ info: (m: string) => logged.push(m), warn() {}, error() {}, show() {}, dispose() {} }),
      },
      { get: (t: any, k) => t[k] ?? (() => new Proxy({}, { get: () => () => undefined })) },
    ),
    workspace: {
      isTrusted: true,
      workspaceFolders: undefined,
      getConfiguration: () => ({ get: (_k: string, dflt: unknown) => dflt, inspect: () => undefined }),
      onDidChangeConfiguration: () => ({ dispose() {} }),
      onDidGrantWorkspaceTrust: () => ({ dispose() {} }),
    },
  });
  const t0 = performance.now();
  const ext = withFakeVscode(vscode, () => require(path.join(ROOT, 'dist/extension.js')));
  ext.activate({ extensionPath: ROOT, extensionUri: { fsPath: ROOT }, globalState: { get: () => undefined, update: async () => undefined }, subscriptions: [] });
  const ms = performance.now() - t0;
  const loaded = Object.keys(require.cache).filter((f) => !before.has(f));
  const heavy = loaded.filter((f) => /onnxruntime|sharp|@img|tensorflow|vscode-languageclient|languageclient\.js|worker\.js/.test(f));
  assert.deepEqual(heavy, [], 'activation loaded heavy modules');
  assert.match(logged.join('\n'), /activated in [\d.]+ ms/);
  // Generous for a loaded CI machine; measured 2–5 ms here.
  assert.ok(ms < 250, `require + activate took ${ms.toFixed(1)} ms`);
  console.log(`require(dist/extension.js) + activate(): ${ms.toFixed(1)} ms; ${logged.join('; ')}`);
});

test('untrusted workspace: vitLens.model and vitLens.cacheDir from workspace settings are ignored', async () => {
  const values: Record<string, { globalValue?: unknown; workspaceValue?: unknown; defaultValue?: unknown }> = {
    model: { globalValue: '/home/me/models/vit.onnx', workspaceValue: './evil.onnx', defaultValue: '' },
    cacheDir: { workspaceValue: '/tmp/evil-cache', defaultValue: '' },
    topK: { workspaceValue: 3, defaultValue: 5 },
  };
  const configuration = {
    get: (key: string, dflt?: unknown) => values[key]?.workspaceValue ?? values[key]?.globalValue ?? values[key]?.defaultValue ?? dflt,
    inspect: (key: string) => values[key],
  };
  let trusted = false;
  const vscode = fakeVscode({ workspace: { getConfiguration: () => configuration, get isTrusted() { return trusted; } } });
  const config = withFakeVscode(vscode, () => require(path.join(ROOT, 'extension/config.ts'))) as typeof import('../../extension/config');
  const untrusted = config.readSettings();
  assert.equal(untrusted.modelSetting, '/home/me/models/vit.onnx');
  assert.equal(untrusted.cacheDir, undefined);
  assert.equal(untrusted.topK, 3, 'other settings still follow the workspace');
  trusted = true;
  const t = config.readSettings();
  assert.equal(t.modelSetting, './evil.onnx');
  assert.equal(t.cacheDir, '/tmp/evil-cache');
});
