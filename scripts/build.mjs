// Bundles the worker, the CLI, the VS Code extension and the results panel's webview script with esbuild.
// Native modules stay external: they ship their own binaries for each platform.
import { build } from 'esbuild';
import asc from 'assemblyscript/asc';
import { copyFileSync, mkdirSync, readFileSync } from 'fs';
import {
  commonForbidden,
  commonPurityBuild,
  describeLeak,
  extensionForbidden,
  forbiddenInputs,
  webviewForbidden,
} from './bundleBoundaries.mjs';

// Native modules, and all of TensorFlow.js: its backends register in the one tfjs-core instance they
// import, and tfjs-backend-wasm loads its .wasm files from its own folder, so a bundled copy of the
// core would be a second, backend-less registry.
const external = ['onnxruntime-node', 'sharp', 'vscode'];
// Except tfjs-core's gradient and chained-op registrations (ES sources, imported by server/tfjs.ts):
// those are bundled, as the @tensorflow/tfjs umbrella bundles them, so that the VSIX needs only
// tfjs-core's, tfjs-backend-cpu's and tfjs-backend-wasm's Node builds.
const tfjsExternal = {
  name: 'tfjs-external',
  setup(b) {
    b.onResolve({ filter: /^@tensorflow\// }, args =>
      /\/dist\/(register_all_gradients|public\/chained_ops\/register_all_chained_ops)$/.test(args.path)
        ? undefined
        : { path: args.path, external: true },
    );
  },
};
const common = {
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  sourcemap: true,
  external,
  plugins: [tfjsExternal],
  logLevel: 'warning',
};

const browser = {
  bundle: true,
  platform: 'browser',
  format: 'iife',
  target: 'chrome120',
  minify: true,
  sourcemap: true,
  metafile: true,
  logLevel: 'warning',
};

// The trainer's fused kernels for TensorFlow.js's wasm backend (server/train/fused/), AssemblyScript →
// wasm, in two builds: with relaxed SIMD (fused multiply-add) and plain SIMD for engines without it.
// No runtime, no data segments: the module imports the backend's memory and only reads and writes
// the tensors it is given.
function wasmSectionIds(bytes) {
  const ids = [];
  let i = 8;
  while (i < bytes.length) {
    ids.push(bytes[i++]);
    let size = 0;
    for (let shift = 0; ; shift += 7) {
      const b = bytes[i++];
      size |= (b & 0x7f) << shift;
      if (!(b & 0x80)) break;
    }
    i += size;
  }
  return ids;
}

async function buildKernels() {
  for (const [file, features] of [
    ['dist/train-kernels-relaxed.wasm', ['simd', 'relaxed-simd']],
    ['dist/train-kernels.wasm', ['simd']],
  ]) {
    const { error, stderr } = await asc.main([
      'server/train/wasm/assembly/index.ts',
      '-O3',
      '--runtime',
      'stub',
      '--importMemory',
      '--noExportMemory',
      '--noAssert',
      '--use',
      'abort=',
      ...features.flatMap(f => ['--enable', f]),
      '-o',
      file,
    ]);
    if (error) {
      console.error(stderr.toString());
      throw error;
    }
    // A data segment would be written over the backend's heap at instantiation (the memory is shared).
    if (wasmSectionIds(readFileSync(file)).includes(11))
      throw new Error(`${file}: has a data segment (lookup tables or strings in server/train/wasm/assembly)`);
  }
}

// --backend torch runs this one Python file (server/train/torchBackend.ts finds it beside dist/cli.js).
mkdirSync('dist', { recursive: true });
copyFileSync('server/train/torch/train.py', 'dist/torch-train.py');

const [, worker, webview, dashboard, predictions, extension, languageClient, audit, , commonOnly] = await Promise.all([
  build({ ...common, entryPoints: ['server/cli.ts'], outfile: 'dist/cli.js', banner: { js: '#!/usr/bin/env node' } }),
  build({ ...common, entryPoints: ['server/worker.ts'], outfile: 'dist/worker.js', metafile: true }),
  // The results panel runs in a browser (the webview); it shares only common/ with the extension.
  build({ ...browser, entryPoints: ['webview/main.ts'], outfile: 'dist/webview.js' }),
  // The training dashboard (uPlot) and the Classify Folder table: webviews of their own.
  build({ ...browser, entryPoints: ['webview/dashboard/main.ts'], outfile: 'dist/dashboard.js' }),
  build({ ...browser, entryPoints: ['webview/predictions/main.ts'], outfile: 'dist/predictions.js' }),
  build({
    ...common,
    entryPoints: ['extension/extension.ts'],
    outfile: 'dist/extension.js',
    minify: true,
    metafile: true,
  }),
  // vscode-languageclient is most of the extension's code; it loads when the worker first starts, not at activation.
  build({
    ...common,
    entryPoints: ['extension/languageclient.ts'],
    outfile: 'dist/languageclient.js',
    minify: true,
    metafile: true,
  }),
  // The dataset audit panel (after the named results above, so their positions stay).
  build({ ...browser, entryPoints: ['webview/audit/main.ts'], outfile: 'dist/audit.js' }),
  buildKernels(),
  // Not written: common/ bundled on its own, to prove it needs nothing outside itself (see bundleBoundaries.mjs).
  build(commonPurityBuild()),
  // A data-parallel training thread (server/train/threads.ts starts it from dist/cli.js's folder).
  build({ ...common, entryPoints: ['server/train/trainThread.ts'], outfile: 'dist/trainThread.js' }),
]);

// Activation must stay fast: the extension talks to the worker and must never bundle (or require)
// the engine or a native/ML module; the webviews run in a browser and share only common/ with the
// extension. Fail the build, not the user, if an import drags one in (rules: bundleBoundaries.mjs).
// vscode-languageclient belongs in dist/languageclient.js, loaded lazily.
const requires = [extension, languageClient]
  .flatMap(b => Object.values(b.metafile.outputs))
  .flatMap(o =>
    o.imports
      .filter(
        i =>
          i.external &&
          i.path !== 'vscode' &&
          !i.path.startsWith('node:') &&
          /onnxruntime|sharp|tensorflow/.test(i.path),
      )
      .map(i => i.path),
  );
const leaks = [
  describeLeak(
    'dist/extension.js',
    [...forbiddenInputs(extension.metafile, extensionForbidden), ...requires],
    'must not include the engine, native/ML modules, the webviews or the language client',
  ),
  ...Object.entries({ webview, dashboard, predictions, audit }).map(([name, b]) =>
    describeLeak(
      `dist/${name}.js`,
      forbiddenInputs(b.metafile, webviewForbidden),
      'runs in a browser and may share only common/ with the extension',
    ),
  ),
  describeLeak(
    'common/',
    forbiddenInputs(commonOnly.metafile, commonForbidden),
    'must be pure TypeScript that needs no other layer, no vscode and no JSON-RPC',
  ),
].filter(Boolean);
if (leaks.length) {
  for (const leak of leaks) console.error(leak);
  process.exit(1);
}

// The worker scans datasets with the trainer's folder reader; TensorFlow.js must stay out of it
// (it is CLI-only, and the VSIX ships only the parts the CLI needs).
const tfInWorker = Object.values(worker.metafile.outputs)
  .flatMap(o => o.imports)
  .filter(i => /tensorflow/.test(i.path))
  .map(i => i.path);
if (tfInWorker.length) {
  console.error(`dist/worker.js must not load TensorFlow.js; it imports ${[...new Set(tfInWorker)].join(', ')}`);
  process.exit(1);
}
