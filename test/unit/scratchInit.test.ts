/**
 * From-scratch initialisation follows the ViT paper's code (google-research/vision_transformer,
 * models_vit.py): each initialised tensor of scratch:tiny is compared, by a two-sample
 * Kolmogorov-Smirnov test, with a tensor PyTorch's own initialiser draws for the expected
 * distribution (scripts/init_ref.py): Xavier-uniform dense kernels, LeCun-normal patch kernel,
 * normal(0.02) positions, normal(1e-6) MLP biases; zeros and ones checked exactly.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'fs';
import * as os from 'os';
import * as path from 'path';
import { initialWeights } from '../../server/train/initWeights';
import { W } from '../../server/model/vitConfig';

type Expected = { init: 'xavier_uniform' } | { init: 'normal'; std: number } | { init: 'trunc_normal'; std: number };

test('scratch:tiny is initialised as the ViT paper code initialises it, tensor by tensor against PyTorch draws', async () => {
  const { arch, weights } = await initialWeights('scratch:tiny', {
    numClasses: 10,
    imageSize: [28, 28],
    patchSize: 7,
    seed: 3,
  });
  const D = arch.hiddenSize;
  const fanIn = 3 * 7 * 7;
  // lecun_normal: truncated at ±2σ with σ chosen so the kept values have variance 1/fan_in (std of N(0,1) cut at ±2 = 0.8796).
  const lecunSigma = Math.sqrt(1 / fanIn) / 0.87962566103423978;
  const last = W.layer(arch.numLayers - 1);
  const expected: [string, Expected][] = [
    [W.layer(0).qWeight, { init: 'xavier_uniform' }],
    [W.layer(0).projWeight, { init: 'xavier_uniform' }],
    [last.vWeight, { init: 'xavier_uniform' }],
    [W.layer(0).fc1Weight, { init: 'xavier_uniform' }],
    [last.fc2Weight, { init: 'xavier_uniform' }],
    [W.patchWeight, { init: 'trunc_normal', std: lecunSigma }],
    [W.posEmbed, { init: 'normal', std: 0.02 }],
    [W.layer(0).fc1Bias, { init: 'normal', std: 1e-6 }],
    [last.fc2Bias, { init: 'normal', std: 1e-6 }],
  ];
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vit-lens-init-'));
  try {
    const request = expected.map(([name, e], i) => {
      const t = weights.get(name)!;
      const file = path.join(dir, `${i}.f32`);
      writeFileSync(file, Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
      return { name, file, shape: t.shape, ...e };
    });
    const ref = JSON.parse(
      execFileSync('/usr/bin/python3', [path.join(__dirname, '..', '..', 'scripts', 'init_ref.py')], {
        input: JSON.stringify(request),
        encoding: 'utf8',
      }),
    );
    for (const [name, e] of expected) {
      const { ks, n, m, torch_std: torchStd, torch_absmax: torchMax } = ref[name];
      // Critical value of the two-sample KS statistic at α = 0.001 (both draws are seeded, so the outcome is fixed).
      const critical = 1.949 * Math.sqrt((n + m) / (n * m));
      assert.ok(
        ks < critical,
        `${name}: KS ${ks.toFixed(4)} ≥ ${critical.toFixed(4)} against PyTorch's ${e.init} (std ${torchStd.toExponential(3)})`,
      );
      const data = weights.get(name)!.data;
      const ours = Math.sqrt(data.reduce((a, v) => a + v * v, 0) / data.length);
      // Relative standard error of a sample std is about 1/sqrt(2n): allow 4 of them.
      assert.ok(
        Math.abs(ours / torchStd - 1) < 4 / Math.sqrt(2 * n),
        `${name}: std ${ours.toExponential(3)} vs PyTorch's ${torchStd.toExponential(3)}`,
      );
      if (e.init === 'xavier_uniform') {
        const [rows, cols] = weights.get(name)!.shape;
        const bound = Math.sqrt(6 / (rows + cols));
        const max = data.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
        assert.ok(
          max <= bound && max > 0.99 * bound && torchMax <= bound,
          `${name}: |w| max ${max} vs Xavier bound ${bound} (PyTorch ${torchMax})`,
        );
      }
    }
    // The patch kernel's defining property: variance 1/fan_in.
    const patch = weights.get(W.patchWeight)!.data;
    assert.ok(
      Math.abs(Math.sqrt(patch.reduce((a, v) => a + v * v, 0) / patch.length) * Math.sqrt(fanIn) - 1) < 0.03,
      'patch kernel variance is not 1/fan_in',
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const all = (name: string, v: number) =>
    assert.ok(
      weights.get(name)!.data.every(x => x === v),
      `${name} is not all ${v}`,
    );
  for (const name of [W.clsToken, W.patchBias, W.headWeight, W.headBias, W.finalNormBias]) all(name, 0);
  for (let i = 0; i < arch.numLayers; i++) {
    const l = W.layer(i);
    for (const name of [l.qBias, l.kBias, l.vBias, l.projBias, l.norm1Bias, l.norm2Bias]) all(name, 0);
    for (const name of [l.norm1Weight, l.norm2Weight]) all(name, 1);
    assert.equal(weights.get(l.kWeight)!.shape.join('x'), `${D}x${D}`);
  }
  all(W.finalNormWeight, 1);
});
