/**
 * The linear layers' matrix products on ONNX Runtime's CPU GEMM (MLAS), reading and writing the wasm
 * backend's heap in place.
 *
 * Why: WebAssembly SIMD is 128 bits wide, so our AssemblyScript GEMM (wasm/assembly/gemm.ts) peaks at
 * half of what an AVX2 core does and a quarter of AVX-512; on one ViT-B/16 layer's three products it
 * ran at ~25 GFLOP/s where ONNX Runtime's Gemm ran at ~100 on the same core (`npm run bench:gemm`).
 * The linear layers are ~90% of a ViT-B training step. onnxruntime-node is already loaded for
 * inference, and MLAS picks its kernels for the CPU at run time (AVX2, AVX-512, NEON).
 *
 * How: one small ONNX graph per operand layout (a single Gemm, plus an Add when both a bias and a
 * residual are added), created once per thread with one intra-op thread (training threads are
 * data-parallel already: threads.ts). It runs through the native binding's synchronous `run` (the
 * package's InferenceSession only wraps that call in a promise), because TF.js kernels return
 * synchronously. Inputs and the preallocated output are Float32Array views of the wasm memory:
 * ONNX Runtime reads and writes there, nothing is copied.
 *
 * A single thread's results are the same on every run (resume stays exact). Set VIT_LENS_GEMM=wasm to
 * use our own GEMM instead (comparisons and its tests).
 */
import * as path from 'path';
import * as ort from 'onnxruntime-node';
import { onnx } from 'onnx-proto';

/** The parts of onnxruntime-node's native binding used here (dist/binding.js; not part of its typed API). */
interface NativeSession {
  loadModel(buffer: ArrayBuffer, byteOffset: number, byteLength: number, options: object): void;
  run(feeds: Record<string, ort.Tensor>, fetches: Record<string, ort.Tensor>): unknown;
}
interface NativeBinding {
  binding: { InferenceSession: new () => NativeSession };
  initOrt(): void;
}

/** Which summand the product gets: none, a bias row [N], a residual [M, N], or both. */
type Addends = '' | 'b' | 'r' | 'br';

/**
 * Below this many multiply-adds the call's fixed cost (~10 µs) is more than the product: a
 * classifier head on a few images.
 */
export const MIN_MACS = 1 << 15;

let native: NativeBinding | undefined;
let memory: () => ArrayBuffer;
const sessions = new Map<string, NativeSession>();
let disabled = false;

/**
 * Loads the binding for the wasm backend whose memory `heap` returns. Returns a line for the run's
 * backend notes.
 */
export function loadOrtGemm(heap: () => ArrayBuffer): string {
  if (process.env.VIT_LENS_GEMM === 'wasm') return 'GEMM: ours (VIT_LENS_GEMM=wasm)';
  if (native) return ORT_NOTE;
  try {
    const file = path.join(path.dirname(require.resolve('onnxruntime-node')), 'binding.js');
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- computed path to the package's own binding module
    const b = require(file) as NativeBinding;
    b.initOrt();
    if (typeof b.binding?.InferenceSession !== 'function') throw new Error('no InferenceSession in the binding');
    native = b;
    memory = heap;
    return ORT_NOTE;
  } catch (e) {
    return `GEMM: ours (ONNX Runtime's binding did not load: ${(e as Error).message.split('\n')[0]})`;
  }
}

const ORT_NOTE = `GEMM: ONNX Runtime ${ort.env.versions.common} (MLAS), one thread per training thread`;

/** Products ONNX Runtime has computed in this thread (tests check the route; profiles count). */
export const ortGemmStats = { calls: 0 };

/** Whether products go to ONNX Runtime; tests switch it off to check our own GEMM. */
export function ortGemmActive(): boolean {
  return !!native && !disabled;
}

/** Tests only: route products to our GEMM (false) or back to ONNX Runtime (true). */
export function setOrtGemmEnabled(on: boolean): void {
  disabled = !on;
}

/**
 * C[M,N] = A·B (+ bias[N]) (+ addend[M,N]) on ONNX Runtime, A [M,K] (or [K,M] read transposed), B
 * [K,N] (or [N,K] transposed); arguments are byte offsets into the wasm heap as in linear.ts's gemm.
 * Returns false (and does nothing) when the product is too small to be worth the call.
 */
export function ortGemm(
  M: number,
  N: number,
  K: number,
  a: number,
  ta: boolean,
  b: number,
  tb: boolean,
  c: number,
  bias: number,
  addend: number,
): boolean {
  if (!ortGemmActive() || M * N * K < MIN_MACS) return false;
  const addends = `${bias ? 'b' : ''}${addend ? 'r' : ''}` as Addends;
  const heap = memory();
  const view = (offset: number, dims: number[]) =>
    new ort.Tensor('float32', new Float32Array(heap, offset, dims[0] * (dims[1] ?? 1)), dims);
  const feeds: Record<string, ort.Tensor> = {
    a: view(a, ta ? [K, M] : [M, K]),
    b: view(b, tb ? [N, K] : [K, N]),
  };
  if (bias) feeds.bias = view(bias, [N]);
  if (addend) feeds.addend = view(addend, [M, N]);
  session(ta, tb, addends).run(feeds, { y: view(c, [M, N]) });
  ortGemmStats.calls++;
  return true;
}

function session(ta: boolean, tb: boolean, addends: Addends): NativeSession {
  const key = `${+ta}${+tb}${addends}`;
  let s = sessions.get(key);
  if (!s) {
    s = new native!.binding.InferenceSession();
    const bytes = gemmModel(ta, tb, addends);
    s.loadModel(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength, {
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      // One node (two with both addends): nothing to optimise, and the arena would keep a copy of the largest Y.
      graphOptimizationLevel: 'disabled',
      enableCpuMemArena: false,
    });
    sessions.set(key, s);
  }
  return s;
}

/** y = Gemm(a, b, addend or bias) (+ bias), shapes symbolic so one graph serves every layer. */
function gemmModel(ta: boolean, tb: boolean, addends: Addends): Uint8Array {
  const FLOAT = onnx.TensorProto.DataType.FLOAT;
  const INT = onnx.AttributeProto.AttributeType.INT;
  const info = (name: string, dims: string[]): onnx.IValueInfoProto => ({
    name,
    type: { tensorType: { elemType: FLOAT, shape: { dim: dims.map(d => ({ dimParam: d })) } } },
  });
  const input = [info('a', ta ? ['k', 'm'] : ['m', 'k']), info('b', tb ? ['n', 'k'] : ['k', 'n'])];
  if (addends.includes('b')) input.push(info('bias', ['n']));
  if (addends.includes('r')) input.push(info('addend', ['m', 'n']));
  const c = addends === '' ? [] : [addends.includes('r') ? 'addend' : 'bias'];
  const both = addends === 'br';
  const node: onnx.INodeProto[] = [
    {
      opType: 'Gemm',
      input: ['a', 'b', ...c],
      output: [both ? 'product' : 'y'],
      attribute: [
        { name: 'transA', type: INT, i: +ta },
        { name: 'transB', type: INT, i: +tb },
      ],
    },
  ];
  if (both) node.push({ opType: 'Add', input: ['product', 'bias'], output: ['y'] });
  return onnx.ModelProto.encode({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    producerName: 'vit-lens',
    graph: { name: `gemm_${+ta}${+tb}${addends}`, input, output: [info('y', ['m', 'n'])], node },
  }).finish();
}
