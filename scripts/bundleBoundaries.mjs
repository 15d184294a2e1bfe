// Which source folders each bundle may draw on; scripts/build.mjs fails the build when one crosses a
// line, and test/unit/bundleBoundaries.test.ts checks the same rules on the real entry points.
//
// - common/ is pure TypeScript shared by every layer: no 'vscode', no Node API, no JSON-RPC library and
//   no other layer's files; only pure-JavaScript packages (d3's colour scales) besides itself.
// - The extension and the webviews may use common/, never server/ (the engine) or a native/ML
//   module: activation must stay fast. vscode-languageclient belongs in dist/languageclient.js.
// - The webviews run in a browser: besides common/ they may use only webview/ and browser packages,
//   never extension/ (host code) or server/.
import { readdirSync } from 'fs';
import { join } from 'path';

const engineAndNative = 'server/|node_modules/(onnxruntime|sharp|@tensorflow|@img)\\b';

export const extensionForbidden = new RegExp(
  `^(${engineAndNative}|webview/|node_modules/(vscode-languageclient|vscode-jsonrpc)\\b)`,
);
export const webviewForbidden = new RegExp(
  `^(${engineAndNative}|extension/|node_modules/(vscode-languageclient|vscode-jsonrpc|vscode-languageserver)\\b)`,
);
export const commonForbidden = new RegExp(
  `^(server/|extension/|webview/|test/|node_modules/(vscode-|onnxruntime|sharp|@tensorflow|@img)\\b)`,
);

/** The bundle's source inputs that match `forbidden` (from an esbuild metafile). */
export function forbiddenInputs(metafile, forbidden) {
  return Object.keys(metafile.inputs).filter(f => forbidden.test(f));
}

/** Every .ts file under common/ (run from the repository root), as entry points for the purity check. */
export function commonFiles() {
  return readdirSync('common', { recursive: true })
    .filter(f => f.endsWith('.ts'))
    .map(f => join('common', f));
}

/** esbuild options that bundle all of common/ with nothing external: a Node built-in or 'vscode' fails to resolve there. */
export const commonPurityBuild = () => ({
  entryPoints: commonFiles(),
  bundle: true,
  write: false,
  outdir: 'out',
  platform: 'neutral',
  mainFields: ['module', 'main'],
  format: 'esm',
  metafile: true,
  logLevel: 'silent',
});

/** A message naming up to five offending inputs, or undefined when there are none. */
export function describeLeak(bundle, leaked, why) {
  if (!leaked.length) return undefined;
  return `${bundle} ${why}; it pulls in: ${leaked.slice(0, 5).join(', ')}${leaked.length > 5 ? ', …' : ''}`;
}
