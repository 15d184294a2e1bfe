// Bundles the worker and the CLI (and, later, the extension and webview) with esbuild.
// Native modules stay external: they ship their own binaries for each platform.
import { build } from 'esbuild';

// Native modules, and tfjs-backend-wasm which loads its .wasm files from its own folder at run time.
const external = ['onnxruntime-node', 'sharp', 'vscode', '@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-backend-wasm'];
const common = { bundle: true, platform: 'node', format: 'cjs', target: 'node20', sourcemap: true, external, logLevel: 'warning' };

await Promise.all([
  build({ ...common, entryPoints: ['server/cli.ts'], outfile: 'dist/cli.js', banner: { js: '#!/usr/bin/env node' } }),
  build({ ...common, entryPoints: ['server/worker.ts'], outfile: 'dist/worker.js' }),
]);
