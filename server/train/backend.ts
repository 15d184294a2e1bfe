/**
 * Picks the TensorFlow.js backend at run time, in this order under `auto`:
 * tfjs-node-gpu (CUDA) → WebGPU on a hardware adapter → tfjs-node → wasm (+ fused kernels) → cpu.
 * The native packages are optionalDependencies whose install downloads libtensorflow, so they are
 * often absent or broken; any failure to load one just moves on to the next.
 *
 * WebGPU runs through Dawn's Node bindings (the `webgpu` package, shared with inference's adapter
 * probe) and @tensorflow/tfjs-backend-webgpu's own kernels. `auto` skips it on a machine with no GPU
 * device node and on a software adapter (lavapipe, SwiftShader: a CPU emulation, slower than wasm);
 * `--backend webgpu` takes any adapter.
 */
import * as os from 'os';
import * as path from 'path';
import * as tf from '../tfjs';
import { AdapterProbe, dawnGpu, gpuDeviceNodesExist, probeWebGpuAdapter, WebGpuAdapter } from '../webgpuAdapter';
import { fusedKernelVariant, heapBuffer, loadFusedKernels } from './fused/kernels';
import { loadOnnxRuntime } from './fused/onnxRuntime';
import { registerWasmTrainingKernels } from './wasmKernels';
import { registerWebGpuTrainingKernels } from './webgpuKernels';

export type BackendName = 'tensorflow-gpu' | 'webgpu' | 'tensorflow' | 'wasm' | 'cpu';
/** The `auto` order, fastest first. */
export const BACKEND_NAMES: readonly BackendName[] = ['tensorflow-gpu', 'webgpu', 'tensorflow', 'wasm', 'cpu'];

export interface BackendChoice {
  name: BackendName;
  /** What runs the steps, for people: "WebGPU · NVIDIA H100 (Vulkan)", "CPU · 1 thread (wasm + fused kernels)". */
  device: string;
  /** Why a faster backend was not used (one line per skipped backend), then which adapter or kernels run. */
  notes: string[];
}

let chosen: BackendChoice | undefined;

/** `prefer` forces one backend (tests and the benchmark pin wasm for determinism; `--backend`). */
export async function initBackend(prefer?: BackendName): Promise<BackendChoice> {
  if (chosen && (!prefer || prefer === chosen.name)) return chosen;
  const notes: string[] = [];
  for (const name of prefer ? [prefer] : BACKEND_NAMES) {
    try {
      const started = await start(name, !!prefer);
      chosen = { name, device: started.device, notes: [...notes, ...started.notes] };
      return chosen;
    } catch (e) {
      notes.push(`${name}: ${firstLine(e)}`);
    }
  }
  throw new Error(`no TensorFlow.js backend could start:\n  ${notes.join('\n  ')}`);
}

async function start(name: BackendName, forced: boolean): Promise<{ device: string; notes: string[] }> {
  if (name === 'webgpu') return startWebGpu(forced);
  if (name === 'tensorflow-gpu') await import('@tensorflow/tfjs-node-gpu' as string);
  else if (name === 'tensorflow') await import('@tensorflow/tfjs-node' as string);
  else if (name === 'wasm') {
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    wasm.setWasmPaths(wasmDist() + path.sep);
  }
  if (!(await tf.setBackend(name))) throw new Error('backend failed to initialise');
  await tf.ready();
  if (name !== 'wasm') return { device: DEVICES[name], notes: [] };
  registerWasmTrainingKernels();
  const fused = loadFusedKernels();
  if (!fusedKernelVariant()) return { device: 'CPU · 1 thread (wasm)', notes: [fused] };
  return { device: 'CPU · 1 thread (wasm + fused kernels)', notes: [fused, loadOnnxRuntime(heapBuffer)] };
}

const DEVICES: Record<Exclude<BackendName, 'webgpu' | 'wasm'>, string> = {
  'tensorflow-gpu': 'CUDA · libtensorflow (tfjs-node-gpu)',
  tensorflow: 'CPU · libtensorflow (tfjs-node)',
  cpu: 'CPU · 1 thread (TF.js JavaScript kernels)',
};

/** In Node the wasm backend reads its .wasm binaries from the package's dist folder, not over fetch. */
function wasmDist(): string {
  return path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm'));
}

/** How the machine is asked; the tests pass other device-node answers. */
export interface WebGpuProbes {
  nodesExist: () => boolean;
  probe: () => Promise<AdapterProbe>;
}
const REAL_PROBES: WebGpuProbes = { nodesExist: gpuDeviceNodesExist, probe: probeWebGpuAdapter };

/** The adapter WebGPU would run on, or (throws) why `auto` (`forced`: `--backend webgpu`) cannot use it. */
export async function webGpuAdapter(forced: boolean, probes = REAL_PROBES): Promise<WebGpuAdapter> {
  // Without a device node only a software device can answer: do not pay for loading Dawn to learn that.
  if (!forced && !probes.nodesExist())
    throw new Error('no GPU device node (/dev/dri/renderD*, /dev/nvidia0, /dev/dxg)');
  const p = await probes.probe();
  if ('error' in p) throw new Error(p.error);
  if (p.adapter.software && !forced)
    throw new Error(
      `only a software adapter, ${p.adapter.name}: a CPU emulation, slower than wasm (--backend webgpu uses it anyway)`,
    );
  return p.adapter;
}

const webGpuDevice = (a: WebGpuAdapter) => `WebGPU · ${a.name}`;

async function startWebGpu(forced: boolean): Promise<{ device: string; notes: string[] }> {
  const adapter = await webGpuAdapter(forced);
  const { gpu, globals } = dawnGpu();
  // tfjs-backend-webgpu registers itself on import when navigator.gpu exists, and uses the WebGPU
  // globals (GPUBufferUsage …) a browser has. Node 21+ has a navigator without gpu; Node 20 none.
  Object.assign(globalThis, globals);
  const g = globalThis as { navigator?: object };
  if (g.navigator) Object.defineProperty(g.navigator, 'gpu', { value: gpu, configurable: true });
  else Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
  await import('@tensorflow/tfjs-backend-webgpu');
  if (!(await tf.setBackend('webgpu'))) throw new Error('the TF.js WebGPU backend failed to initialise');
  await tf.ready();
  registerWebGpuTrainingKernels();
  return {
    device: webGpuDevice(adapter),
    notes: [
      `webgpu: adapter ${adapter.name}, vendor "${adapter.vendor}", architecture "${adapter.architecture}"${adapter.software ? ' (software, forced by --backend webgpu)' : ''}`,
      "webgpu: TF.js's own WebGPU kernels (the fused kernels are wasm-only), AddN split to the device's storage-buffer limit",
    ],
  };
}

export interface BackendListing {
  /** What `auto` would start. */
  auto: BackendName;
  /** `software`: the WebGPU adapter is a CPU emulation (lavapipe, SwiftShader). */
  backends: { name: BackendName; device?: string; unavailable?: string; autoSkips?: string; software?: boolean }[];
}

/**
 * What each backend would run on, without training (`vit-lens train --list-backends`, which the
 * Fine-tune form asks so that the extension host never loads Dawn or TF.js). The native backends
 * are loaded to see whether they can; WebGPU only asks for its adapter. `threads`: what the run gets
 * (--threads), which only the wasm backend trains on.
 */
export async function listBackends(threads = 1): Promise<BackendListing> {
  const backends: BackendListing['backends'] = [];
  let auto: BackendName | undefined;
  for (const name of BACKEND_NAMES) {
    try {
      if (name === 'webgpu') {
        try {
          const a = await webGpuAdapter(false);
          backends.push({ name, device: webGpuDevice(a) });
        } catch (e) {
          // Forced: any adapter at all (a software one) can still be picked by hand.
          const p = await probeWebGpuAdapter();
          if ('error' in p) throw new Error(p.error);
          backends.push({
            name,
            device: webGpuDevice(p.adapter),
            autoSkips: firstLine(e),
            ...(p.adapter.software ? { software: true } : {}),
          });
          continue;
        }
      } else if (name === 'tensorflow-gpu' || name === 'tensorflow') {
        await import(name === 'tensorflow' ? '@tensorflow/tfjs-node' : ('@tensorflow/tfjs-node-gpu' as string));
        backends.push({ name, device: DEVICES[name] });
      } else if (name === 'wasm') {
        wasmDist();
        backends.push({ name, device: onThreads('CPU · 1 thread (wasm + fused kernels)', threads) });
      } else backends.push({ name, device: DEVICES.cpu });
      auto ??= name;
    } catch (e) {
      backends.push({ name, unavailable: firstLine(e) });
    }
  }
  return { auto: auto ?? 'cpu', backends };
}

/** A wasm device text as a data-parallel run on `threads` worker threads (server/train/threads.ts) says it. */
export function onThreads(device: string, threads: number): string {
  return threads > 1 ? device.replace(/\b1 thread\b/, `${threads} threads`) : device;
}

/** `--list-backends` as text, one line per backend, `auto` first. */
export function formatListing(l: BackendListing): string {
  const auto = l.backends.find(b => b.name === l.auto);
  const lines = [`auto: ${l.auto}${auto?.device ? ` (${auto.device})` : ''}  [${os.cpus().length} CPU cores]`];
  for (const b of l.backends)
    lines.push(
      `  ${b.name.padEnd(15)} ${b.unavailable ? `unavailable: ${b.unavailable}` : b.device}${b.autoSkips ? `; auto skips it: ${b.autoSkips}` : ''}`,
    );
  return lines.join('\n') + '\n';
}

function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0];
}
