/**
 * Picks the TensorFlow.js backend at run time: tfjs-node-gpu (CUDA) → tfjs-node → wasm → cpu.
 * The native packages are optionalDependencies whose install downloads libtensorflow, so they are
 * often absent or broken; any failure to load one just moves on to the next.
 */
import * as path from 'path';
import * as tf from '../tfjs';
import { loadFusedKernels } from './fused/kernels';
import { registerWasmTrainingKernels } from './wasmKernels';

export type BackendName = 'tensorflow-gpu' | 'tensorflow' | 'wasm' | 'cpu';

export interface BackendChoice {
  name: BackendName;
  /** Why a faster backend was not used (one line per skipped backend), then, on wasm, which kernels run (fused or TF.js's). */
  notes: string[];
}

let chosen: BackendChoice | undefined;

/** `prefer` forces one backend (tests and the benchmark pin wasm for determinism). */
export async function initBackend(prefer?: BackendName): Promise<BackendChoice> {
  if (chosen && (!prefer || prefer === chosen.name)) return chosen;
  const notes: string[] = [];
  const order: BackendName[] = prefer ? [prefer] : ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'];
  for (const name of order) {
    try {
      if (name === 'tensorflow-gpu') await import('@tensorflow/tfjs-node-gpu' as string);
      else if (name === 'tensorflow') await import('@tensorflow/tfjs-node' as string);
      else if (name === 'wasm') {
        const wasm = await import('@tensorflow/tfjs-backend-wasm');
        // In Node the .wasm binaries are read from the package's dist folder, not fetched.
        const dist = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm'));
        wasm.setWasmPaths(dist + path.sep);
      }
      if (!(await tf.setBackend(name))) throw new Error('backend failed to initialise');
      await tf.ready();
      if (name === 'wasm') {
        registerWasmTrainingKernels();
        notes.push(loadFusedKernels());
      }
      chosen = { name, notes };
      return chosen;
    } catch (e) {
      notes.push(`${name}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  throw new Error(`no TensorFlow.js backend could start:\n  ${notes.join('\n  ')}`);
}
