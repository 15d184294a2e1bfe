/**
 * Fused training kernels for TensorFlow.js's wasm backend, written in AssemblyScript
 * (server/train/wasm/assembly/, built into dist/train-kernels*.wasm by scripts/build.mjs).
 *
 * Why: the wasm backend runs a training step as ~2,900 small kernels. Its batched BatchMatMul is a
 * scalar loop, transposed operands cost a Transpose each, and LayerNorm, GELU, softmax and the
 * optimizer are 5–25 elementwise kernels apiece, each a pass over memory plus JS dispatch. The
 * kernels here do one pass per layer part, read transposed operands in place, and use fused
 * multiply-add where the engine has relaxed SIMD.
 *
 * How: the module imports the backend's own WebAssembly.Memory, so a kernel works directly on the
 * tensors' heap offsets — no copies in or out. Kernels register under their own names on the
 * 'wasm' backend and are called through the engine (tf.engine().runKernel), so outputs are ordinary
 * tensors with ordinary lifetimes; gradients come from tf.customGrad in the op files beside this one.
 *
 * Set VIT_LENS_FUSED_KERNELS=0 to train with TF.js's own kernels only, or =simd to skip the
 * relaxed-SIMD build (both for comparisons and tests).
 */
import * as fs from 'fs';
import * as path from 'path';
import * as v8 from 'v8';
import * as tf from '@tensorflow/tfjs-core';

/** The module's exports; pointers are byte offsets into the wasm backend's memory. */
export interface KernelExports {
  gemm(
    M: number,
    N: number,
    K: number,
    a: number,
    ars: number,
    aks: number,
    b: number,
    brs: number,
    bcs: number,
    c: number,
    ldc: number,
    bias: number,
    accumulate: number,
    scratch: number,
  ): void;
  colSum(M: number, N: number, x: number, ldx: number, out: number): void;
  [name: string]: (...args: number[]) => number | void;
}

// The project compiles without the DOM lib, where WebAssembly's types live; Node has the global.
declare namespace WebAssembly {
  class Memory {
    readonly buffer: ArrayBuffer;
  }
  class Module {
    constructor(bytes: Uint8Array);
  }
  class Instance {
    constructor(module: Module, imports: object);
    readonly exports: object;
  }
  function validate(bytes: Uint8Array): boolean;
}

/** The parts of the wasm backend (tfjs-backend-wasm's BackendWasm) the kernels use. */
interface WasmBackend {
  wasm: { asm: { memory: WebAssembly.Memory }; _malloc(bytes: number): number; _free(ptr: number): void };
  dataIdMap: { get(dataId: object): { memoryOffset: number } | undefined };
  makeOutput(shape: number[], dtype: 'float32'): tf.TensorInfo;
}

export type KernelVariant = 'relaxed-simd' | 'simd';

let loaded: { exports: KernelExports; variant: KernelVariant; backend: WasmBackend } | undefined;
let scratch = { ptr: 0, bytes: 0 };

/** The kernels, once loadFusedKernels succeeded and while the wasm backend is active. */
export function fusedKernels(): KernelExports | undefined {
  return loaded && tf.getBackend() === 'wasm' ? loaded.exports : undefined;
}

/**
 * Instantiates the kernels on the current (wasm) backend's memory. Returns a line for the run's
 * backend notes. The relaxed-SIMD build is used when the engine validates it; Node 20 has the
 * proposal behind a V8 flag (on by default from V8 11.4: Node 22, VS Code's Electron), which is set
 * here when the engine does not validate the module without it.
 */
export function loadFusedKernels(): string {
  if (loaded) return `fused kernels: ${loaded.variant}`;
  if (process.env.VIT_LENS_FUSED_KERNELS === '0') return 'fused kernels: off (VIT_LENS_FUSED_KERNELS=0)';
  const backend = tf.backend() as unknown as WasmBackend;
  const memory = backend.wasm?.asm?.memory;
  if (!(memory instanceof WebAssembly.Memory))
    return 'fused kernels: unavailable (the wasm backend does not expose its memory)';
  const dirs = [__dirname, path.join(__dirname, '..', '..', '..', 'dist')];
  const builds = [
    ['train-kernels-relaxed.wasm', 'relaxed-simd'],
    ['train-kernels.wasm', 'simd'],
  ] as const;
  for (const [file, variant] of builds.filter(
    ([, v]) => process.env.VIT_LENS_FUSED_KERNELS !== 'simd' || v === 'simd',
  )) {
    const found = dirs.map(d => path.join(d, file)).find(f => fs.existsSync(f));
    if (!found) continue;
    const bytes = fs.readFileSync(found);
    if (variant === 'relaxed-simd' && !WebAssembly.validate(bytes))
      v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
    if (!WebAssembly.validate(bytes)) continue;
    const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } });
    loaded = { exports: instance.exports as unknown as KernelExports, variant, backend };
    return `fused kernels: ${variant}`;
  }
  return 'fused kernels: not found (run `npm run build`); using TF.js kernels';
}

/** Which build is loaded, if any. */
export function fusedKernelVariant(): KernelVariant | undefined {
  return loaded?.variant;
}

/** The wasm backend's heap as it is now (it is replaced when the memory grows). */
export function heapBuffer(): ArrayBuffer {
  return loaded!.backend.wasm.asm.memory.buffer;
}

/** Heap offset of a tensor's data. */
export function ptr(t: tf.TensorInfo): number {
  const entry = loaded!.backend.dataIdMap.get(t.dataId);
  if (!entry) throw new Error('fused kernel: tensor is not on the wasm backend');
  return entry.memoryOffset;
}

/** A new float32 tensor on the wasm heap, contents undefined. */
export function output(shape: number[]): tf.TensorInfo {
  return loaded!.backend.makeOutput(shape, 'float32');
}

/** Scratch space of at least `bytes`, valid until the next call (kernels run one at a time). */
export function scratchSpace(bytes: number): number {
  if (bytes > scratch.bytes) {
    const w = loaded!.backend.wasm;
    if (scratch.ptr) w._free(scratch.ptr);
    const size = Math.max(bytes, 2 * scratch.bytes);
    scratch = { ptr: w._malloc(size) >>> 0, bytes: size };
  }
  return scratch.ptr;
}

const registered = new Set<(k: KernelExports) => void>();

/**
 * The kernels, with the TF.js kernels that `register` defines registered on the wasm backend the first
 * time (each op file passes its own register function), or undefined when the module is not loaded.
 */
export function kernelsWith(register: (k: KernelExports) => void): KernelExports | undefined {
  const k = fusedKernels();
  if (k && !registered.has(register)) {
    register(k);
    registered.add(register);
  }
  return k;
}

/** tf.customGrad typed for the op files: a forward over tensors (then `save`) and its gradient. */
export type GradFunc = (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => tf.Tensor[];
export const customGrad = tf.customGrad as unknown as <F>(
  f: (...args: never[]) => { value: tf.Tensor; gradFunc: GradFunc },
) => F;

/** Registers a kernel on the wasm backend under `name` (once). */
export function registerFused(name: string, kernelFunc: tf.KernelFunc): void {
  if (!tf.getKernel(name, 'wasm')) tf.registerKernel({ kernelName: name, backendName: 'wasm', kernelFunc });
}
