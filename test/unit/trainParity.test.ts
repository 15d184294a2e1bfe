/**
 * Gradient/optimizer parity with PyTorch: the same small ViT, initial weights and fixed batches
 * (no augmentation, no dropout), 20 steps of AdamW and of SGD-momentum with warmup + cosine,
 * global-norm clipping and label smoothing. Reference losses: scripts/make_train_fixtures.py.
 *
 * Runs on the fused wasm kernels (server/train/fused), relaxed-SIMD build, with the linear layers'
 * products on ONNX Runtime's GEMM; trainParityTfjsKernels and trainParityPlainSimd run it again on
 * TF.js's own kernels (the fallback when the fused ones are missing or switched off) and on the fused
 * kernels' plain-SIMD build with our own GEMM (engines without relaxed SIMD; VIT_LENS_GEMM=wasm);
 * trainParityWebgpu runs it on `--backend webgpu` (TF.js's WebGPU kernels; lavapipe without a GPU).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'path';
import { readFileSync } from 'fs';
import * as tf from '@tensorflow/tfjs';
import { readNpz } from '../../server/formats/npz';
import { BackendName, initBackend } from '../../server/train/backend';
import { fusedKernelVariant } from '../../server/train/fused/kernels';
import { ortStats } from '../../server/train/fused/onnxRuntime';
import { Optimizer, OPTIMIZER_DEFAULTS, OptimizerName, clipGradients } from '../../server/train/optimizer';
import { learningRate } from '../../server/train/schedule';
import { lossAndGrads } from '../../server/train/step';
import type { Params } from '../../server/train/vitModel';
import type { ViTArch } from '../../server/model/vitConfig';

const DIR = path.join(__dirname, '..', 'fixtures', 'train');
const meta = JSON.parse(readFileSync(path.join(DIR, 'parity.json'), 'utf8'));
/** Set by trainParityWebgpu.test.ts before it imports this file. */
const BACKEND = (process.env.VIT_LENS_TEST_TRAIN_BACKEND ?? 'wasm') as BackendName;
const KERNELS =
  BACKEND !== 'wasm'
    ? `${BACKEND} TF.js`
    : ({ '0': 'TF.js', simd: 'fused plain-SIMD' }[process.env.VIT_LENS_FUSED_KERNELS ?? ''] ?? 'fused');
/** Whether the linear layers' products should go to ONNX Runtime (server/train/fused/onnxRuntime.ts). */
const ON_ORT = KERNELS.startsWith('fused') && process.env.VIT_LENS_GEMM !== 'wasm';
const GEMM = KERNELS.startsWith('fused') ? (ON_ORT ? ', ONNX Runtime GEMM' : ', our GEMM') : '';

async function run(name: OptimizerName): Promise<{
  losses: number[];
  final: Map<string, Float32Array>;
  ref: Map<string, import('../../server/model/tensor').Tensor>;
}> {
  const backend = await initBackend(BACKEND);
  assert.equal(tf.getBackend(), BACKEND, backend.notes.join('\n'));
  assert.equal(
    fusedKernelVariant(),
    KERNELS === 'fused' ? 'relaxed-simd' : KERNELS === 'fused plain-SIMD' ? 'simd' : undefined,
    `expected the ${KERNELS} kernels`,
  );
  const npz = await readNpz(path.join(DIR, 'parity.npz'));
  const a = meta.arch;
  const arch: ViTArch = {
    hiddenSize: a.hidden,
    numLayers: a.layers,
    numHeads: a.heads,
    mlpSize: a.mlp,
    patchSize: a.patch,
    imageSize: [a.image, a.image],
    numChannels: a.channels,
    layerNormEps: a.eps,
    qkvBias: true,
    numClasses: a.classes,
  };
  const params: Params = new Map();
  for (const [k, t] of npz)
    if (k.startsWith('init/')) params.set(k.slice(5), tf.variable(tf.tensor(t.data, t.shape), true, `${name}/${k}`));
  const xs = npz.get('batches/x')!;
  const ys = npz.get('batches/y')!;
  const per = meta.batch * a.channels * a.image * a.image;
  const cfg = meta.runs[name];
  const opt = new Optimizer({
    ...OPTIMIZER_DEFAULTS[name],
    name,
    weightDecay: cfg.weight_decay,
    ...(name === 'sgd' ? { momentum: cfg.momentum } : {}),
  });
  const trainable = [...params.keys()];
  const losses: number[] = [];
  const ortCalls = ortStats.gemm;
  for (let step = 0; step < meta.steps; step++) {
    const b = step % meta.num_batches;
    const x = tf.tensor4d(xs.data.subarray(b * per, (b + 1) * per), [meta.batch, a.channels, a.image, a.image]);
    const y = Int32Array.from(ys.data.subarray(b * meta.batch, (b + 1) * meta.batch));
    const r = await lossAndGrads(params, arch, trainable, { kind: 'pixels', x }, y, meta.common.smoothing);
    const { scale } = await clipGradients(r.grads, meta.common.clip);
    opt.apply(params, r.grads, learningRate(step, cfg.lr, meta.common.warmup, meta.common.total), scale);
    for (const g of r.grads.values()) g.dispose();
    x.dispose();
    losses.push(r.loss);
  }
  assert.equal(ortStats.gemm > ortCalls, ON_ORT, `expected ${ON_ORT ? '' : 'no '}products on ONNX Runtime`);
  const final = new Map<string, Float32Array>();
  for (const [k, v] of params) final.set(k, (await v.data()) as Float32Array);
  for (const v of params.values()) v.dispose();
  opt.dispose();
  return { losses, final, ref: npz };
}

for (const name of ['adamw', 'sgd'] as const) {
  test(`${name} (${KERNELS} kernels${GEMM}): 20 steps match PyTorch within 1e-3 relative`, async () => {
    const { losses, final, ref } = await run(name);
    const want: number[] = meta.runs[name].losses;
    assert.equal(losses.length, want.length);
    let maxRel = 0;
    for (let i = 0; i < want.length; i++) maxRel = Math.max(maxRel, Math.abs(losses[i] - want[i]) / Math.abs(want[i]));
    console.log(
      `# ${name} (${KERNELS} kernels${GEMM}) max relative loss difference vs PyTorch: ${maxRel.toExponential(2)}`,
    );
    assert.ok(
      maxRel < 1e-3,
      `${name}: max relative loss difference ${maxRel} ≥ 1e-3 (ours ${losses.map(l => l.toFixed(5))}, torch ${want.map(l => l.toFixed(5))})`,
    );
    // Training must actually have moved the loss, or the comparison proves nothing.
    assert.ok(want[want.length - 1] < want[0] * 0.8);
    for (const [key, t] of ref) {
      const m = new RegExp(`^final/${name}/(.+)$`).exec(key);
      if (!m) continue;
      const got = final.get(m[1])!;
      let maxAbs = 0;
      for (let i = 0; i < got.length; i++) maxAbs = Math.max(maxAbs, Math.abs(got[i] - t.data[i]));
      assert.ok(maxAbs < 1e-3, `${name}: final ${m[1]} differs from PyTorch by ${maxAbs}`);
    }
  });
}
