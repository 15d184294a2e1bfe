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
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '../..');

/** A `vscode` where every member is a callable, constructible no-op; `overrides` replaces parts of it. */
function fakeVscode(overrides: Record<string, unknown>): unknown {
  const handler: ProxyHandler<() => void> = {
    get: (_t, k) => (k === 'then' ? undefined : k === Symbol.toPrimitive ? () => '' : fake),
    apply: () => fake,
    construct: () => fake,
  };
  const fake: object = new Proxy(function () {}, handler);
  // A plain object: the bundle copies the module's own properties (esbuild's ESM interop).
  const names = [
    'window',
    'workspace',
    'commands',
    'env',
    'Uri',
    'EventEmitter',
    'StatusBarAlignment',
    'ProgressLocation',
    'ViewColumn',
    'ConfigurationTarget',
    'CancellationTokenSource',
    'CancellationError',
    'MarkdownString',
    'QuickPickItemKind',
    'TabInputCustom',
    'TabInputText',
    'Disposable',
    'RelativePattern',
    'TreeItem',
    'TreeItemCollapsibleState',
    'ThemeIcon',
    'ThemeColor',
  ];
  return { ...Object.fromEntries(names.map(n => [n, fake])), ...overrides };
}

/** What the tests use of dist/extension.js. */
interface ExtensionModule {
  activate(context: unknown): void;
  deactivate(): Promise<void> | void;
}

/** What the Runs view's tree data provider gives the tests. */
interface RunsTreeProvider {
  getChildren(): unknown[];
  getTreeItem(node: unknown): { label: string; description: string; contextValue: string; iconPath: { id: string } };
}

/** A CommonJS load: it must go through Module._load (patched by withFakeVscode) and require.cache (cleared for a fresh copy). */
// eslint-disable-next-line @typescript-eslint/no-require-imports -- a runtime load under the patched Module._load, which an import cannot be
const load = (file: string): unknown => require(file);

const memento = () => ({ get: () => undefined, update: async () => undefined });
const fakeContext = () => ({
  extensionPath: ROOT,
  extensionUri: { fsPath: ROOT },
  globalStorageUri: { fsPath: path.join(os.tmpdir(), 'vit-lens-e2e-no-storage') },
  globalState: memento(),
  workspaceState: memento(),
  subscriptions: [],
});

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
        createOutputChannel: () => ({
          info: (m: string) => logged.push(m),
          warn() {},
          error() {},
          show() {},
          dispose() {},
        }),
      },
      {
        get: (t, k) =>
          (t as Record<string | symbol, unknown>)[k] ?? (() => new Proxy({}, { get: () => () => undefined })),
      },
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
  const ext = withFakeVscode(vscode, () => load(path.join(ROOT, 'dist/extension.js'))) as ExtensionModule;
  ext.activate(fakeContext());
  const ms = performance.now() - t0;
  const loaded = Object.keys(require.cache).filter(f => !before.has(f));
  const heavy = loaded.filter(f =>
    /onnxruntime|sharp|@img|tensorflow|vscode-languageclient|languageclient\.js|worker\.js/.test(f),
  );
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
    get: (key: string, dflt?: unknown) =>
      values[key]?.workspaceValue ?? values[key]?.globalValue ?? values[key]?.defaultValue ?? dflt,
    inspect: (key: string) => values[key],
  };
  let trusted = false;
  const vscode = fakeVscode({
    workspace: {
      getConfiguration: () => configuration,
      get isTrusted() {
        return trusted;
      },
    },
  });
  const config = withFakeVscode(vscode, () =>
    load(path.join(ROOT, 'extension/config.ts')),
  ) as typeof import('../../extension/config');
  const untrusted = config.readSettings();
  assert.equal(untrusted.modelSetting, '/home/me/models/vit.onnx');
  assert.equal(untrusted.cacheDir, undefined);
  assert.equal(untrusted.topK, 3, 'other settings still follow the workspace');
  trusted = true;
  const t = config.readSettings();
  assert.equal(t.modelSetting, './evil.onnx');
  assert.equal(t.cacheDir, '/tmp/evil-cache');
});

test('Runs view at activation: lists the runs under vitLens.runsDir and watches that folder', async () => {
  const ws = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-e2e-ws-'));
  const runDir = path.join(ws, 'out', 'runs', 'flowers-head-1');
  fs.mkdirSync(runDir, { recursive: true });
  const info = {
    format: 1,
    status: 'finished',
    pid: 1,
    epoch: 2,
    totalEpochs: 2,
    step: 4,
    totalSteps: 4,
    bestValAcc: 0.875,
    bestEpoch: 1,
    classes: ['a', 'b'],
    config: { dataset: '/data/flowers', mode: 'head' },
    createdAt: '2024-01-01T00:00:00Z',
  };
  fs.writeFileSync(path.join(runDir, 'run.json'), JSON.stringify(info));
  const views: { id: string; provider: RunsTreeProvider }[] = [];
  const watched: { base: string; pattern: string }[] = [];
  const noop = () => ({ dispose() {} });
  const vscode = fakeVscode({
    window: new Proxy(
      {
        createOutputChannel: () => ({ info() {}, warn() {}, error() {}, show() {}, dispose() {} }),
        createTreeView: (id: string, o: { treeDataProvider: RunsTreeProvider }) => (
          views.push({ id, provider: o.treeDataProvider }),
          { dispose() {}, selection: [] }
        ),
      },
      {
        get: (t, k) =>
          (t as Record<string | symbol, unknown>)[k] ?? (() => new Proxy({}, { get: () => () => undefined })),
      },
    ),
    workspace: {
      isTrusted: true,
      workspaceFolders: [{ uri: { fsPath: ws } }],
      getConfiguration: () => ({
        get: (k: string, dflt: unknown) => (k === 'runsDir' ? 'out/runs' : dflt),
        inspect: () => undefined,
      }),
      createFileSystemWatcher: (p: { base: { fsPath: string }; pattern: string }) => (
        watched.push({ base: p.base.fsPath, pattern: p.pattern }),
        { onDidCreate: noop, onDidChange: noop, onDidDelete: noop, dispose() {} }
      ),
      onDidChangeConfiguration: noop,
      onDidGrantWorkspaceTrust: noop,
    },
    Uri: {
      file: (f: string) => ({ fsPath: f, scheme: 'file' }),
      joinPath: (u: { fsPath: string }, ...p: string[]) => ({ fsPath: path.join(u.fsPath, ...p) }),
    },
    RelativePattern: class {
      constructor(
        readonly base: unknown,
        readonly pattern: string,
      ) {}
    },
    EventEmitter: class {
      private listeners: ((v: unknown) => void)[] = [];
      event = (l: (v: unknown) => void) => (this.listeners.push(l), { dispose() {} });
      fire(v: unknown) {
        for (const l of this.listeners) l(v);
      }
      dispose() {}
    },
    TreeItem: class {
      constructor(readonly label: string) {}
    },
    ThemeIcon: class {
      constructor(readonly id: string) {}
    },
    TreeItemCollapsibleState: { None: 0, Collapsed: 1 },
  });
  const ext = withFakeVscode(vscode, () => {
    // A fresh copy of the bundle, bound to this test's stand-in.
    delete require.cache[path.join(ROOT, 'dist/extension.js')];
    return load(path.join(ROOT, 'dist/extension.js')) as ExtensionModule;
  });
  ext.activate(fakeContext());
  try {
    assert.deepEqual(
      views.map(v => v.id),
      ['vitLens.runs'],
    );
    assert.deepEqual(watched, [{ base: path.join(ws, 'out', 'runs'), pattern: '{*,*/run.json,*/metrics.jsonl}' }]);
    let nodes: unknown[] = [];
    for (let i = 0; i < 50 && nodes.length === 0; i++) {
      await new Promise(r => setTimeout(r, 10));
      nodes = views[0].provider.getChildren();
    }
    assert.equal(nodes.length, 1);
    const item = views[0].provider.getTreeItem(nodes[0]);
    assert.equal(item.label, 'flowers-head-1');
    assert.equal(item.description, 'flowers · epoch 2/2 · best 87.5%');
    assert.equal(item.contextValue, 'run.finished');
    assert.equal(item.iconPath.id, 'pass');
  } finally {
    await ext.deactivate();
    fs.rmSync(ws, { recursive: true, force: true });
  }
});
