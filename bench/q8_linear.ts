/**
 * Which int8 linear layer is fastest on ONNX Runtime's CPU provider, for the q8 build
 * (server/model/onnxBuilder.ts): one ViT-B MLP layer, [8·197, 768] × [768, 3072], as
 *   fp32 MatMul | DynamicQuantizeMatMul (contrib) | DynamicQuantizeLinear + MatMulInteger + Cast + Mul
 *   (standard ops; ORT may fuse them) | DynamicQuantizeLinear + MatMulIntegerToFloat (contrib),
 * timed interleaved so machine noise hits all alike. `node --import tsx bench/q8_linear.ts`.
 */
import * as os from 'os';
import * as ort from 'onnxruntime-node';
import { onnx } from 'onnx-proto';

const [M, K, N] = [8 * 197, 768, 3072];
const runs = Number(process.env.BENCH_RUNS ?? 10);
const T = onnx.TensorProto.DataType;
const vi = (name: string, elemType: number, dims: number[]) => ({
  name,
  type: { tensorType: { elemType, shape: { dim: dims.map(d => ({ dimValue: d })) } } },
});
const init = (name: string, dataType: number, dims: number[], bytes: Uint8Array) => ({
  name,
  dataType,
  dims,
  rawData: bytes,
});

const w = Float32Array.from({ length: K * N }, (_, i) => Math.sin(i * 0.37) * 0.05);
const scale = new Float32Array(N);
const q = new Int8Array(K * N);
for (let n = 0; n < N; n++) {
  let max = 0;
  for (let k = 0; k < K; k++) max = Math.max(max, Math.abs(w[k * N + n]));
  scale[n] = max / 127;
  for (let k = 0; k < K; k++) q[k * N + n] = Math.round(w[k * N + n] / scale[n]);
}
const bytes = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const W = init('W', T.FLOAT, [K, N], bytes(w));
const Q = [
  init('Wq', T.INT8, [K, N], bytes(q)),
  init('Ws', T.FLOAT, [N], bytes(scale)),
  init('Wz', T.INT8, [N], new Uint8Array(N)),
];

function model(nodes: onnx.INodeProto[], inits: onnx.ITensorProto[]): Uint8Array {
  return onnx.ModelProto.encode({
    irVersion: 8,
    opsetImport: [
      { domain: '', version: 17 },
      { domain: 'com.microsoft', version: 1 },
    ],
    graph: {
      name: 'linear',
      input: [vi('x', T.FLOAT, [M, K])],
      output: [vi('y', T.FLOAT, [M, N])],
      node: nodes,
      initializer: inits,
    },
  }).finish();
}

const variants: Record<string, Uint8Array> = {
  'fp32 MatMul': model([{ opType: 'MatMul', input: ['x', 'W'], output: ['y'] }], [W]),
  DynamicQuantizeMatMul: model(
    [{ opType: 'DynamicQuantizeMatMul', domain: 'com.microsoft', input: ['x', 'Wq', 'Ws', 'Wz'], output: ['y'] }],
    Q,
  ),
  'DQL + MatMulInteger + Cast + Mul': model(
    [
      { opType: 'DynamicQuantizeLinear', input: ['x'], output: ['xq', 'xs', 'xz'] },
      { opType: 'MatMulInteger', input: ['xq', 'Wq', 'xz', 'Wz'], output: ['acc'] },
      {
        opType: 'Cast',
        input: ['acc'],
        output: ['accf'],
        attribute: [{ name: 'to', type: onnx.AttributeProto.AttributeType.INT, i: T.FLOAT }],
      },
      { opType: 'Mul', input: ['xs', 'Ws'], output: ['s'] },
      { opType: 'Mul', input: ['accf', 's'], output: ['y'] },
    ],
    Q,
  ),
  'DQL + MatMulIntegerToFloat': model(
    [
      { opType: 'DynamicQuantizeLinear', input: ['x'], output: ['xq', 'xs', 'xz'] },
      {
        opType: 'MatMulIntegerToFloat',
        domain: 'com.microsoft',
        input: ['xq', 'Wq', 'xs', 'Ws', 'xz', 'Wz'],
        output: ['y'],
      },
    ],
    Q,
  ),
};

async function main(): Promise<void> {
  const threads = Number(process.env.BENCH_THREADS ?? os.availableParallelism());
  const x = new ort.Tensor(
    'float32',
    Float32Array.from({ length: M * K }, (_, i) => Math.cos(i * 0.11)),
    [M, K],
  );
  const sessions: [string, ort.InferenceSession][] = [];
  for (const [name, bytes] of Object.entries(variants)) {
    sessions.push([
      name,
      await ort.InferenceSession.create(bytes, {
        graphOptimizationLevel: 'all',
        intraOpNumThreads: threads,
        executionProviders: ['cpu'],
      }),
    ]);
  }
  const ref = (await sessions[0][1].run({ x })).y.data as Float32Array;
  const times = new Map<string, number[]>(sessions.map(([n]) => [n, []]));
  const errors = new Map<string, number>();
  for (const [name, s] of sessions) {
    const y = (await s.run({ x })).y.data as Float32Array;
    let e = 0;
    for (let i = 0; i < y.length; i++) e = Math.max(e, Math.abs(y[i] - ref[i]));
    errors.set(name, e);
  }
  for (let r = 0; r < runs; r++) {
    for (const [name, s] of sessions) {
      const t0 = performance.now();
      await s.run({ x });
      times.get(name)!.push(performance.now() - t0);
    }
  }
  const flop = 2 * M * K * N;
  console.log(`[${M}, ${K}] × [${K}, ${N}], ${threads} threads, ${runs} interleaved runs, ${os.cpus()[0]?.model}`);
  const base = median(times.get('fp32 MatMul')!);
  for (const [name] of sessions) {
    const ms = median(times.get(name)!);
    console.log(
      `${name.padEnd(36)}${ms.toFixed(1).padStart(9)} ms ${(flop / ms / 1e6).toFixed(1).padStart(7)} GFLOP/s ${(base / ms).toFixed(2).padStart(6)}× fp32   max |Δ| vs fp32 ${errors.get(name)!.toExponential(1)}`,
    );
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

main().catch(e => {
  console.error(e);
  process.exit(1);
});
