/**
 * The training step's matrix products on ONNX Runtime's CPU kernels (MLAS), reading and writing the
 * wasm backend's heap in place: the linear layers' GEMMs (linear.ts) and multi-head attention
 * (attention.ts), forward and backward.
 *
 * Why: WebAssembly SIMD is 128 bits wide, so our AssemblyScript kernels (wasm/assembly/) peak at half
 * of what an AVX2 core does and a quarter of AVX-512; on one ViT-B/16 layer's three products our GEMM
 * ran at ~35 GFLOP/s and ONNX Runtime's Gemm at ~110 on the same core (`npm run bench:gemm`). Linear
 * layers and attention are ~85% of a ViT-B training step. onnxruntime-node is loaded for inference
 * anyway, and MLAS picks its kernels for the CPU at run time (AVX2, AVX-512, NEON).
 *
 * How: small ONNX graphs with symbolic sizes, created once per thread and kind with one intra-op
 * thread (training threads are data-parallel already: threads.ts). They run through the native
 * binding's synchronous `run` (the package's InferenceSession only wraps that call in a promise),
 * because TF.js kernels return synchronously. Inputs and preallocated outputs are Float32Array views
 * of the wasm memory: ONNX Runtime reads and writes there, and nothing is copied.
 *
 * One thread's results are the same on every run (resume stays exact); another thread count changes
 * them by float32 summation order only (trainThreads: 1 vs 2 threads within 1e-7 relative). Set
 * VIT_LENS_GEMM=wasm to run our own kernels instead (comparisons and their tests).
 */
import * as path from 'path';
import * as ort from 'onnxruntime-node';
import { onnx } from 'onnx-proto';
import { attribute, IR_VERSION, OPSET, valueInfo } from '../../model/onnxBuilder';
import type { GemmOperands } from './linear';

/** The parts of onnxruntime-node's native binding used here (dist/binding.js; not part of its typed API). */
export interface NativeSession {
  loadModel(buffer: ArrayBuffer, byteOffset: number, byteLength: number, options: object): void;
  run(feeds: Record<string, ort.Tensor>, fetches: Record<string, ort.Tensor>): unknown;
}
export interface NativeBinding {
  binding: { InferenceSession: new () => NativeSession };
  initOrt(): void;
}

/** Which summand a product gets: none, a bias row [N], a residual [M, N], or both. */
type Addends = '' | 'b' | 'r' | 'br';

/**
 * Below this many multiply-adds a call's fixed cost (~10 µs) is more than the product: a classifier
 * head on a few images.
 */
export const MIN_MACS = 1 << 15;

/**
 * Attention of shorter sequences stays on our kernel: at 17 tokens (the bench model) ours is faster
 * than the graph's transposes and batched products; at 197 (ViT-B/16) the graphs take 31 ms forward
 * and 74 ms backward per layer (batch 8, one thread) against our kernel's 46 and 115.
 */
export const MIN_ATTENTION_TOKENS = 32;

let native: NativeBinding | undefined;
let memory: () => ArrayBuffer;
const sessions = new Map<string, NativeSession>();
let disabled = false;

/** Calls ONNX Runtime has run in this thread, by kind (tests check the route; profiles count). */
export const ortStats = { gemm: 0, attention: 0 };

/**
 * Loads the binding for the wasm backend whose memory `heap` returns. Returns a line for the run's
 * backend notes.
 */
export function loadOnnxRuntime(heap: () => ArrayBuffer): string {
  if (process.env.VIT_LENS_GEMM === 'wasm') return 'matrix products: ours (VIT_LENS_GEMM=wasm)';
  if (native) return ORT_NOTE;
  try {
    const file = path.join(path.dirname(require.resolve('onnxruntime-node')), 'binding.js');
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- computed path to the package's own binding module
    const b = require(file) as NativeBinding;
    b.initOrt();
    checkBinding(b);
    native = b;
    memory = heap;
    return ORT_NOTE;
  } catch (e) {
    return `matrix products: ours (ONNX Runtime's binding did not load or failed its check: ${(e as Error).message.split('\n')[0]})`;
  }
}

/**
 * One small product through the same calls the trainer makes, its result checked. The binding's API
 * used here is internal to onnxruntime-node, so a version that changed it (an asynchronous `run`, a
 * different `loadModel`) must be caught here, not show up as wrong gradients. Throws saying what failed.
 */
export function checkBinding(b: NativeBinding): void {
  if (typeof b.binding?.InferenceSession !== 'function') throw new Error('no InferenceSession in the binding');
  const s = new b.binding.InferenceSession();
  const bytes = gemmModel(false, false, '');
  s.loadModel(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength, SESSION_OPTIONS);
  const y = new Float32Array(4);
  s.run(
    {
      a: new ort.Tensor('float32', Float32Array.of(1, 2, 3, 4, 5, 6), [2, 3]),
      b: new ort.Tensor('float32', Float32Array.of(1, 0, 0, 1, 1, 1), [3, 2]),
    },
    { y: new ort.Tensor('float32', y, [2, 2]) },
  );
  if (y.join() !== '4,5,10,11') throw new Error(`its test product came back as [${y.join(', ')}], not [4, 5, 10, 11]`);
}

const ORT_NOTE = `matrix products (linear layers; attention from ${MIN_ATTENTION_TOKENS} tokens): ONNX Runtime ${ort.env.versions.common} (MLAS), one thread per training thread`;

/** Whether products go to ONNX Runtime; tests switch it off to check our own kernels. */
export function onnxRuntimeActive(): boolean {
  return !!native && !disabled;
}

/** Tests and benches only: route products to our kernels (false) or back to ONNX Runtime (true). */
export function setOnnxRuntimeEnabled(on: boolean): void {
  disabled = !on;
}

const heapTensor = (heap: ArrayBuffer, offset: number, dims: number[]) =>
  new ort.Tensor(
    'float32',
    new Float32Array(
      heap,
      offset,
      dims.reduce((a, b) => a * b, 1),
    ),
    dims,
  );

/**
 * linear.ts's gemm on ONNX Runtime. Returns false (and does nothing) when ONNX Runtime is off or the
 * product too small to be worth it.
 */
export function ortGemm(...[M, N, K, a, ta, b, tb, c, bias = 0, addend = 0]: GemmOperands): boolean {
  if (!onnxRuntimeActive() || M * N * K < MIN_MACS) return false;
  const addends = `${bias ? 'b' : ''}${addend ? 'r' : ''}` as Addends;
  const heap = memory();
  const feeds: Record<string, ort.Tensor> = {
    a: heapTensor(heap, a, ta ? [K, M] : [M, K]),
    b: heapTensor(heap, b, tb ? [N, K] : [K, N]),
  };
  if (bias) feeds.bias = heapTensor(heap, bias, [N]);
  if (addend) feeds.addend = heapTensor(heap, addend, [M, N]);
  session(`gemm${+ta}${+tb}${addends}`, () => gemmModel(ta, tb, addends)).run(feeds, {
    y: heapTensor(heap, c, [M, N]),
  });
  ortStats.gemm++;
  return true;
}

/** Sizes of one attention call: `batch` sequences of `tokens` tokens, `heads` heads of `dh` columns. */
export interface AttentionShape {
  batch: number;
  tokens: number;
  heads: number;
  dh: number;
}

const ortAttention = (s: AttentionShape) => onnxRuntimeActive() && s.tokens >= MIN_ATTENTION_TOKENS;

/**
 * Forward: qkv [B·T, 3D] → ctx [B·T, D] and probs [B, H, T, T], as attention.ts's kernel lays them
 * out. False (nothing done) when ONNX Runtime is off or the sequence short.
 */
export function ortAttentionForward(s: AttentionShape, qkv: number, ctx: number, probs: number): boolean {
  if (!ortAttention(s)) return false;
  const { batch, tokens, heads, dh } = s;
  const heap = memory();
  const rows = batch * tokens;
  session(`attention${tokens}/${heads}/${dh}`, () => attentionForwardModel(s)).run(
    { qkv: heapTensor(heap, qkv, [rows, 3 * heads * dh]) },
    { ctx: heapTensor(heap, ctx, [rows, heads * dh]), probs: heapTensor(heap, probs, [batch, heads, tokens, tokens]) },
  );
  ortStats.attention++;
  return true;
}

/** Backward: dctx [B·T, D], qkv and probs from the forward pass → dqkv [B·T, 3D]. */
export function ortAttentionBackward(
  s: AttentionShape,
  dctx: number,
  qkv: number,
  probs: number,
  dqkv: number,
): boolean {
  if (!ortAttention(s)) return false;
  const { batch, tokens, heads, dh } = s;
  const heap = memory();
  const rows = batch * tokens;
  session(`attentionGrad${tokens}/${heads}/${dh}`, () => attentionBackwardModel(s)).run(
    {
      dctx: heapTensor(heap, dctx, [rows, heads * dh]),
      qkv: heapTensor(heap, qkv, [rows, 3 * heads * dh]),
      probs: heapTensor(heap, probs, [batch, heads, tokens, tokens]),
    },
    { dqkv: heapTensor(heap, dqkv, [rows, 3 * heads * dh]) },
  );
  ortStats.attention++;
  return true;
}

const SESSION_OPTIONS = {
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
  executionMode: 'sequential',
  // Fuses the attention graphs' transposes into their products (FusedMatMul).
  graphOptimizationLevel: 'all',
  // The attention graphs' intermediates (~11 MB an image at ViT-B/16) are freed after each call
  // instead of staying in an arena per thread and graph beside TF.js's own memory.
  enableCpuMemArena: false,
};

function session(key: string, model: () => Uint8Array): NativeSession {
  let s = sessions.get(key);
  if (!s) {
    s = new native!.binding.InferenceSession();
    const bytes = model();
    s.loadModel(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength, SESSION_OPTIONS);
    sessions.set(key, s);
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// The graphs.

const node = (opType: string, input: string[], output: string[], attrs: Record<string, number | number[]> = {}) => ({
  opType,
  input,
  output,
  attribute: Object.entries(attrs).map(([name, value]) => attribute(name, value)),
});
const int64s = (name: string, values: number[]): onnx.ITensorProto => ({
  name,
  dataType: onnx.TensorProto.DataType.INT64,
  dims: [values.length],
  int64Data: values,
});
const scalar = (name: string, value: number): onnx.ITensorProto => ({
  name,
  dataType: onnx.TensorProto.DataType.FLOAT,
  dims: [],
  floatData: [value],
});

function encode(name: string, graph: Omit<onnx.IGraphProto, 'name'>): Uint8Array {
  return onnx.ModelProto.encode({
    irVersion: IR_VERSION,
    opsetImport: [{ domain: '', version: OPSET }],
    producerName: 'vit-lens',
    graph: { name, ...graph },
  }).finish();
}

/** y = Gemm(a, b, addend or bias) (+ bias). */
function gemmModel(ta: boolean, tb: boolean, addends: Addends): Uint8Array {
  const input = [valueInfo('a', ta ? ['k', 'm'] : ['m', 'k']), valueInfo('b', tb ? ['n', 'k'] : ['k', 'n'])];
  if (addends.includes('b')) input.push(valueInfo('bias', ['n']));
  if (addends.includes('r')) input.push(valueInfo('addend', ['m', 'n']));
  const c = addends === '' ? [] : [addends.includes('r') ? 'addend' : 'bias'];
  const both = addends === 'br';
  const nodes = [node('Gemm', ['a', 'b', ...c], [both ? 'product' : 'y'], { transA: +ta, transB: +tb })];
  if (both) nodes.push(node('Add', ['product', 'bias'], ['y']));
  return encode(`gemm_${+ta}${+tb}${addends}`, { input, output: [valueInfo('y', ['m', 'n'])], node: nodes });
}

/**
 * Nodes splitting qkv [B·T, 3D] into q, k, v [B, H, T, dh] (Hugging Face's column order: q | k | v,
 * each head's dh columns contiguous).
 */
const SPLIT_HEADS: onnx.INodeProto[] = [
  node('Reshape', ['qkv', 'qkv_shape'], ['qkv5']),
  node('Transpose', ['qkv5'], ['qkv_t'], { perm: [2, 0, 3, 1, 4] }),
  node('Split', ['qkv_t'], ['q1', 'k1', 'v1'], { axis: 0 }),
  node('Squeeze', ['q1', 'axis0'], ['q']),
  node('Squeeze', ['k1', 'axis0'], ['k']),
  node('Squeeze', ['v1', 'axis0'], ['v']),
];

/** The constants the attention graphs use (only those a graph uses: ONNX Runtime warns of the others). */
const attentionInitializers = (s: AttentionShape, pass: 'forward' | 'backward') => [
  int64s('qkv_shape', [-1, s.tokens, 3, s.heads, s.dh]),
  int64s('axis0', [0]),
  scalar('scale', 1 / Math.sqrt(s.dh)),
  ...(pass === 'forward'
    ? [int64s('rows_shape', [-1, s.heads * s.dh])]
    : [
        int64s('ctx_shape', [-1, s.tokens, s.heads, s.dh]),
        int64s('qkv_rows_shape', [-1, 3 * s.heads * s.dh]),
        int64s('last_axis', [-1]),
      ]),
];

/** ctx = softmax(q·kᵀ/√dh)·v with heads merged back, and the probabilities. */
function attentionForwardModel(s: AttentionShape): Uint8Array {
  const { tokens: t, heads: h, dh } = s;
  return encode('attention', {
    input: [valueInfo('qkv', ['rows', 3 * h * dh])],
    output: [valueInfo('ctx', ['rows', h * dh]), valueInfo('probs', ['batch', h, t, t])],
    initializer: attentionInitializers(s, 'forward'),
    node: [
      ...SPLIT_HEADS,
      node('Transpose', ['k'], ['kt'], { perm: [0, 1, 3, 2] }),
      node('MatMul', ['q', 'kt'], ['scores_raw']),
      node('Mul', ['scores_raw', 'scale'], ['scores']),
      node('Softmax', ['scores'], ['probs'], { axis: -1 }),
      node('MatMul', ['probs', 'v'], ['ctx_heads']),
      node('Transpose', ['ctx_heads'], ['ctx_t'], { perm: [0, 2, 1, 3] }),
      node('Reshape', ['ctx_t', 'rows_shape'], ['ctx']),
    ],
  });
}

/**
 * With P the probabilities and dC the context's gradient per head: dV = Pᵀ·dC, dP = dC·vᵀ,
 * dS = P ⊙ (dP − Σ_row dP ⊙ P) / √dh, dQ = dS·k, dK = dSᵀ·q; stacked back into qkv's layout.
 */
function attentionBackwardModel(s: AttentionShape): Uint8Array {
  const { tokens: t, heads: h, dh } = s;
  return encode('attention_grad', {
    input: [
      valueInfo('dctx', ['rows', h * dh]),
      valueInfo('qkv', ['rows', 3 * h * dh]),
      valueInfo('probs', ['batch', h, t, t]),
    ],
    output: [valueInfo('dqkv', ['rows', 3 * h * dh])],
    initializer: attentionInitializers(s, 'backward'),
    node: [
      ...SPLIT_HEADS,
      node('Reshape', ['dctx', 'ctx_shape'], ['dctx4']),
      node('Transpose', ['dctx4'], ['dc'], { perm: [0, 2, 1, 3] }),
      node('Transpose', ['probs'], ['probs_t'], { perm: [0, 1, 3, 2] }),
      node('MatMul', ['probs_t', 'dc'], ['dv']),
      node('Transpose', ['v'], ['vt'], { perm: [0, 1, 3, 2] }),
      node('MatMul', ['dc', 'vt'], ['dp']),
      node('Mul', ['dp', 'probs'], ['dp_p']),
      node('ReduceSum', ['dp_p', 'last_axis'], ['row_sum'], { keepdims: 1 }),
      node('Sub', ['dp', 'row_sum'], ['dp_centred']),
      node('Mul', ['dp_centred', 'probs'], ['ds_raw']),
      node('Mul', ['ds_raw', 'scale'], ['ds']),
      node('MatMul', ['ds', 'k'], ['dq']),
      node('Transpose', ['ds'], ['ds_t'], { perm: [0, 1, 3, 2] }),
      node('MatMul', ['ds_t', 'q'], ['dk']),
      node('Unsqueeze', ['dq', 'axis0'], ['dq1']),
      node('Unsqueeze', ['dk', 'axis0'], ['dk1']),
      node('Unsqueeze', ['dv', 'axis0'], ['dv1']),
      node('Concat', ['dq1', 'dk1', 'dv1'], ['dqkv_t'], { axis: 0 }),
      // [3, B, H, T, dh] → [B, T, 3, H, dh] → rows.
      node('Transpose', ['dqkv_t'], ['dqkv5'], { perm: [1, 3, 0, 2, 4] }),
      node('Reshape', ['dqkv5', 'qkv_rows_shape'], ['dqkv']),
    ],
  });
}
