/**
 * `npm run bench:gemm`: the three products of one ViT-B/16 linear layer's training step (batch 8 at
 * 224: 1576 tokens, 768 → 3072) as the trainer runs them (server/train/fused/linear.ts's gemm: ONNX
 * Runtime's MLAS on the wasm heap, server/train/fused/onnxRuntime.ts), on our AssemblyScript GEMM
 * (server/train/wasm/assembly/gemm.ts, the fallback) and on PyTorch's (torch.mm), one thread each, in
 * the same run: the forward y = x·Wᵀ and the backward dx = dy·W and dW = dyᵀ·x, best of 4, GFLOP/s
 * and ratios to PyTorch.
 *
 *   npm run bench:gemm -- [--m 1576] [--k 768] [--n 3072]
 */
import { spawnSync } from 'child_process';
import { parseArgs } from 'util';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../server/train/backend';
import { fusedKernels, output, ptr } from '../server/train/fused/kernels';
import { gemm } from '../server/train/fused/linear';
import { onnxRuntimeActive, setOnnxRuntimeEnabled } from '../server/train/fused/onnxRuntime';
import { fixOpenBlasCore } from './openblasCore';

const { values: o } = parseArgs({
  options: {
    m: { type: 'string', default: '1576' },
    k: { type: 'string', default: '768' },
    n: { type: 'string', default: '3072' },
  },
});
const [M, K, N] = [Number(o.m), Number(o.k), Number(o.n)];

const TORCH = `
import time, torch
torch.set_num_threads(1)
M, K, N = ${M}, ${K}, ${N}
dy, x, w = torch.randn(M, N), torch.randn(M, K), torch.randn(N, K)
def best(f):
    t = 1e9
    for _ in range(4):
        s = time.perf_counter(); f(); t = min(t, time.perf_counter() - s)
    return t * 1000
print(best(lambda: x @ w.t()), best(lambda: dy @ w), best(lambda: dy.t() @ x))
`;

(async () => {
  console.log(fixOpenBlasCore());
  await initBackend('wasm');
  const k = fusedKernels();
  if (!k) throw new Error('the fused kernels are not loaded: run npm run build');
  const dy = tf.randomNormal([M, N]);
  const x = tf.randomNormal([M, K]);
  const w = tf.randomNormal([N, K]);
  const [y, dx, dw] = [output([M, N]), output([M, K]), output([N, K])];
  const best = (f: () => void) => {
    let t = Infinity;
    for (let r = 0; r < 4; r++) {
      const s = performance.now();
      f();
      t = Math.min(t, performance.now() - s);
    }
    return t;
  };
  if (!onnxRuntimeActive()) throw new Error("ONNX Runtime's GEMM did not load (see the backend notes)");
  const products = () => [
    best(() => gemm(k, M, N, K, ptr(x), false, ptr(w), true, ptr(y))),
    best(() => gemm(k, M, K, N, ptr(dy), false, ptr(w), false, ptr(dx))),
    best(() => gemm(k, N, K, M, ptr(dy), true, ptr(x), false, ptr(dw))),
  ];
  const onOrt = products();
  setOnnxRuntimeEnabled(false);
  const ours = products();
  setOnnxRuntimeEnabled(true);
  const py = spawnSync('/usr/bin/python3', ['-c', TORCH], {
    encoding: 'utf8',
    env: { ...process.env, OMP_NUM_THREADS: '1', MKL_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: '1' },
  });
  if (py.status !== 0) throw new Error(`PyTorch side failed: ${py.stderr}`);
  const torch = py.stdout.trim().split(/\s+/).map(Number);
  const gflops = (ms: number) => ((2 * M * N * K) / ms / 1e6).toFixed(1);
  console.log(`M ${M}, K ${K}, N ${N}; one thread each; best of 4`);
  const side = (name: string, ms: number) => `${name} ${ms.toFixed(0)} ms (${gflops(ms)} GFLOP/s)`;
  ['forward y = x·Wᵀ', 'backward dx = dy·W', 'backward dW = dyᵀ·x'].forEach((name, i) =>
    console.log(
      `${name.padEnd(20)} ${side('ONNX Runtime', onOrt[i])}  ${side('our wasm', ours[i])}  ${side('PyTorch', torch[i])}  ` +
        `vs PyTorch: ONNX Runtime ${(torch[i] / onOrt[i]).toFixed(3)}×, our wasm ${(torch[i] / ours[i]).toFixed(3)}×`,
    ),
  );
})().catch(e => {
  console.error(e);
  process.exit(1);
});
