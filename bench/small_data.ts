/**
 * `npm run bench:small-data`: a from-scratch ViT-Tiny (scratch:tiny, patch 7, 28×28) trained on the
 * first 960 Fashion-MNIST training images — the few-hundred-images case — by our trainer and by
 * torchvision's own VisionTransformer (bench/torch_small_data.py), same images, same recipe (15
 * epochs, batch 64, AdamW 1e-3, decay 0.05, 5% warmup + cosine, clip 1), both scored on the same
 * held-out test images. Prints accuracy and training time per seed, mean ± sample std, and ratios.
 * Ours and PyTorch run at the same time, one thread each (the machine has 2 cores).
 *
 *   npm run bench:small-data -- [--seeds 1] [--augment none|default|SCALE] [--epochs 15] [--limit 960]
 *                               [--test-limit 2000] [--torch-init torchvision|timm] [--skip-torch]
 * --seeds N runs seeds 0..N-1 (--first-seed S: S..S+N-1); --augment default is what `--augment` gives 28-px
 * images (imageLoader.ts: a flip only), SCALE a random-resized-crop area floor with flip (1: flip only), both sides.
 * Needs `apt-get install dataset-fashion-mnist python3-torch python3-torchvision`.
 */
import { spawn } from 'child_process';
import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseArgs } from 'util';
import * as tf from '@tensorflow/tfjs';
import { fashionMnistData, pixelsOf } from '../server/train/fashionMnist';
import { loadCheckpoint } from '../server/train/checkpoint';
import { AugmentConfig, DEFAULT_AUGMENT, defaultAugment } from '../server/train/imageLoader';
import { checkpointFile, readMetrics, TrainConfig } from '../server/train/runFiles';
import { train } from '../server/train/trainer';
import { logits, Params } from '../server/train/vitModel';
import { fixOpenBlasCore } from './openblasCore';

const { values: o } = parseArgs({
  options: {
    seeds: { type: 'string', default: '1' },
    'first-seed': { type: 'string', default: '0' },
    epochs: { type: 'string', default: '15' },
    limit: { type: 'string', default: '960' },
    'test-limit': { type: 'string', default: '2000' },
    augment: { type: 'string', default: 'none' },
    'torch-init': { type: 'string', default: 'torchvision' },
    'skip-torch': { type: 'boolean' },
    backend: { type: 'string', default: 'wasm' },
  },
});

const seeds = Array.from({ length: Number(o.seeds) }, (_, i) => Number(o['first-seed']) + i);
const epochs = Number(o.epochs);
const limit = Number(o.limit);
const testLimit = Number(o['test-limit']);
const SIZE: [number, number] = [28, 28];
const augment: AugmentConfig | undefined =
  o.augment === 'none'
    ? undefined
    : o.augment === 'default'
      ? defaultAugment(SIZE)
      : { ...DEFAULT_AUGMENT, scale: [Number(o.augment), 1] };
if (augment && !(augment.scale[0] > 0 && augment.scale[0] <= 1))
  throw new Error(`--augment must be none, default or an area floor in (0, 1], got "${o.augment}"`);

interface SeedResult {
  seed: number;
  testAcc: number;
  trainSeconds: number;
}

async function oursOne(seed: number): Promise<SeedResult> {
  const runDir = await fs.mkdtemp(path.join(os.tmpdir(), 'vit-lens-small-data-'));
  const { data, test } = fashionMnistData({ limit, augment });
  const config: TrainConfig = {
    dataset: 'fashion-mnist',
    model: 'scratch:tiny',
    mode: 'full',
    lastK: 0,
    epochs,
    batchSize: 64,
    accumulate: 1,
    lr: 1e-3,
    optimizer: 'adamw',
    weightDecay: 0.05,
    momentum: 0,
    warmupSteps: -1,
    clipNorm: 1,
    labelSmoothing: 0,
    augment: !!augment,
    imageSize: SIZE,
    patchSize: 7,
    valSplit: 0,
    seed,
  };
  const info = await train({
    runDir,
    config,
    data,
    backend: o.backend as 'wasm',
    exportAtEnd: false,
    logEvery: 1e9,
    log: l => console.error(`[ours seed ${seed}] ${l}`),
  });
  const trainSeconds = (await readMetrics(runDir)).reduce((a, m) => a + (m.type === 'epoch' ? m.seconds : 0), 0);
  // The final weights (the point PyTorch is scored at), on the first `testLimit` test images.
  const ck = await loadCheckpoint(checkpointFile(runDir, 'latest'));
  const arch = info.architecture!;
  const params: Params = new Map(
    [...ck.weights].map(([k, t]) => [k, tf.variable(tf.tensor(t.data, t.shape), false, `bench/${seed}/${k}`)]),
  );
  let correct = 0;
  for (let i = 0; i < testLimit; i += 250) {
    const n = Math.min(250, testLimit - i);
    const x = new Float32Array(n * 3 * 784);
    for (let j = 0; j < n; j++) x.set(pixelsOf(test, i + j), j * 3 * 784);
    const pred = tf.tidy(() =>
      logits(params, arch, { kind: 'pixels', x: tf.tensor4d(x, [n, 3, 28, 28]) })
        .argMax(1)
        .dataSync(),
    );
    for (let j = 0; j < n; j++) if (pred[j] === test.labels[i + j]) correct++;
  }
  for (const v of params.values()) v.dispose();
  await fs.rm(runDir, { recursive: true, force: true });
  return { seed, testAcc: correct / testLimit, trainSeconds };
}

function torchAll(): Promise<SeedResult[]> {
  const args = [
    'bench/torch_small_data.py',
    '--seeds',
    seeds.join(','),
    '--epochs',
    String(epochs),
    '--limit',
    String(limit),
    '--test-limit',
    String(testLimit),
    // Area floor 1 leaves torchvision's RandomResizedCrop the whole image: a flip only, as crop: false.
    '--crop-scale',
    String(!augment ? 0 : augment.crop === false ? 1 : augment.scale[0]),
    '--init',
    String(o['torch-init']),
    '--threads',
    '1',
  ];
  return new Promise((resolve, reject) => {
    const p = spawn('/usr/bin/python3', args, { stdio: ['ignore', 'pipe', 'inherit'] });
    const out: SeedResult[] = [];
    p.stdout.on('data', (d: Buffer) => {
      for (const line of d.toString().split('\n').filter(Boolean)) {
        const r = JSON.parse(line);
        console.error(
          `[torch seed ${r.seed}] test accuracy ${(r.test_acc * 100).toFixed(1)}%, ${r.train_seconds.toFixed(0)} s`,
        );
        out.push({ seed: r.seed, testAcc: r.test_acc, trainSeconds: r.train_seconds });
      }
    });
    p.on('error', reject);
    p.on('close', code =>
      code === 0 ? resolve(out) : reject(new Error(`bench/torch_small_data.py exited with ${code}`)),
    );
  });
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const sd = (xs: number[]) =>
  xs.length < 2 ? NaN : Math.sqrt(xs.reduce((a, x) => a + (x - mean(xs)) ** 2, 0) / (xs.length - 1));
const pct = (xs: number[]) =>
  `${(mean(xs) * 100).toFixed(1)}%${xs.length > 1 ? ` ± ${(sd(xs) * 100).toFixed(1)}` : ''} [${xs.map(x => (x * 100).toFixed(1)).join(', ')}]`;

(async () => {
  console.log(fixOpenBlasCore());
  const what = !augment
    ? 'no augmentation'
    : augment.crop === false
      ? 'horizontal flip'
      : `random-resized-crop scale [${augment.scale.join(', ')}] + flip`;
  console.error(
    `scratch:tiny (patch 7, 28×28) on the first ${limit} Fashion-MNIST training images, ${epochs} epochs, batch 64, AdamW 1e-3, ${what}; seeds ${seeds.join(', ')}; scored on the first ${testLimit} test images`,
  );
  const t0 = Date.now();
  const torchP = o['skip-torch'] ? Promise.resolve(undefined) : torchAll();
  const ours: SeedResult[] = [];
  for (const seed of seeds) ours.push(await oursOne(seed));
  const torch = await torchP;
  const lines = [
    `ours (TF.js ${o.backend}, 1 thread): test accuracy ${pct(ours.map(r => r.testAcc))}, training ${mean(ours.map(r => r.trainSeconds)).toFixed(0)} s per seed`,
  ];
  if (torch) {
    lines.push(
      `torchvision VisionTransformer (${o['torch-init']} init, PyTorch CPU, 1 thread): test accuracy ${pct(torch.map(r => r.testAcc))}, training ${mean(torch.map(r => r.trainSeconds)).toFixed(0)} s per seed`,
    );
    lines.push(
      `ratio ours/torchvision: accuracy ${(mean(ours.map(r => r.testAcc)) / mean(torch.map(r => r.testAcc))).toFixed(3)}×, training time ${(mean(ours.map(r => r.trainSeconds)) / mean(torch.map(r => r.trainSeconds))).toFixed(2)}× (both running at once; ${((Date.now() - t0) / 1000).toFixed(0)} s wall in all)`,
    );
  }
  console.log(lines.join('\n'));
})().catch(e => {
  console.error(e);
  process.exit(1);
});
