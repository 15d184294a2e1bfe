/**
 * The lines between the layers (scripts/bundleBoundaries.mjs), checked on the real entry points as
 * scripts/build.mjs checks them: the extension and the webviews draw on common/ but never on the
 * engine, the webviews never on extension/ (not even for types), and common/ on no other layer.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { build, type Metafile } from 'esbuild';
// @ts-expect-error: plain JavaScript (the build script's own module), no type declarations.
import * as boundaries from '../../scripts/bundleBoundaries.mjs';

const { commonForbidden, commonPurityBuild, extensionForbidden, forbiddenInputs, webviewForbidden } = boundaries as {
  commonForbidden: RegExp;
  extensionForbidden: RegExp;
  webviewForbidden: RegExp;
  commonPurityBuild: () => Parameters<typeof build>[0];
  forbiddenInputs: (metafile: Metafile, forbidden: RegExp) => string[];
};

const WEBVIEWS = [
  'webview/main.ts',
  'webview/dashboard/main.ts',
  'webview/predictions/main.ts',
  'webview/audit/main.ts',
];

async function inputsOf(entry: string, platform: 'node' | 'browser'): Promise<Metafile> {
  const r = await build({
    entryPoints: [entry],
    bundle: true,
    write: false,
    outdir: 'out',
    platform,
    metafile: true,
    logLevel: 'silent',
    external: ['vscode', 'onnxruntime-node', 'sharp'],
  });
  return r.metafile;
}

test('the extension bundle takes common/ but no engine, webview or language-client file', async () => {
  const metafile = await inputsOf('extension/extension.ts', 'node');
  assert.ok(
    Object.keys(metafile.inputs).some(f => f.startsWith('common/')),
    'the extension uses common/',
  );
  assert.deepEqual(forbiddenInputs(metafile, extensionForbidden), []);
});

test('each webview bundle takes common/ and webview/ only, never extension/ or server/', async () => {
  for (const entry of WEBVIEWS)
    assert.deepEqual(forbiddenInputs(await inputsOf(entry, 'browser'), webviewForbidden), [], entry);
});

test('no webview file imports from extension/ or server/, not even a type', () => {
  const specifier = /(?:from|import)\s*\(?\s*['"](\.{1,2}\/[^'"]+)['"]/g;
  const crossings: string[] = [];
  for (const file of fs.readdirSync('webview', { recursive: true, encoding: 'utf8' }).filter(f => f.endsWith('.ts'))) {
    const full = path.join('webview', file);
    for (const m of fs.readFileSync(full, 'utf8').matchAll(specifier)) {
      const target = path.relative('.', path.resolve(path.dirname(full), m[1]));
      if (/^(extension|server)\//.test(target)) crossings.push(`${full} → ${m[1]}`);
    }
  }
  assert.deepEqual(crossings, []);
});

test('common/ bundles on its own, with no Node API, vscode, JSON-RPC or other layer', async () => {
  const r = await build(commonPurityBuild());
  assert.ok(Object.keys(r.metafile!.inputs).filter(f => f.startsWith('common/')).length >= 5);
  assert.deepEqual(forbiddenInputs(r.metafile!, commonForbidden), []);
});

test('the rules name what they forbid', () => {
  assert.ok(
    extensionForbidden.test('server/engine.ts') &&
      extensionForbidden.test('node_modules/vscode-languageclient/lib/node/main.js'),
  );
  assert.ok(!extensionForbidden.test('common/workerRequests.ts'));
  assert.ok(webviewForbidden.test('extension/resultsPanel.ts') && webviewForbidden.test('server/explain/overlay.ts'));
  assert.ok(
    !webviewForbidden.test('common/colormaps.ts') && !webviewForbidden.test('node_modules/d3-color/src/index.js'),
  );
  assert.ok(
    commonForbidden.test('node_modules/vscode-jsonrpc/lib/common/api.js') &&
      commonForbidden.test('server/train/runFiles.ts'),
  );
});
