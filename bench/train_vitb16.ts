/**
 * `npm run bench:train -- --arch vit-b16 [--threads 2] [--steps 2] [--batch-size 8] [--skip-torch]`:
 * ViT-B/16 at 224 on random data, a few optimizer steps of full fine-tuning and of last-k (k=2, on
 * cached tokens, as our trainer does), ours vs PyTorch CPU (bench/torch_train.py --arch vit-b16) at
 * the same thread count, in the same run. Our step is the trainer's: loss and gradients (split over
 * `--threads` worker_threads, server/train/threads.ts), the size-weighted sum, clipping, AdamW.
 * The first step of each is a warm-up and not timed.
 */
import { spawn } from 'child_process';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../server/train/backend';
import { sumParts } from '../server/train/epoch';
import { initialWeights } from '../server/train/initWeights';
import { clipGradients, Optimizer } from '../server/train/optimizer';
import { lossAndGrads } from '../server/train/step';
import { DataParallel } from '../server/train/threads';
import { ForwardInput, Params, tokensBefore, trainableNames } from '../server/train/vitModel';

export interface VitB16Options {
  threads: number;
  steps: number;
  batchSize: number;
  lastK: number;
  skipTorch: boolean;
}

type Mode = 'full' | 'last-k';

async function ours(mode: Mode, o: VitB16Options): Promise<number> {
  await initBackend('wasm');
  const init = await initialWeights('scratch:base', { numClasses: 10, imageSize: [224, 224], patchSize: 16, seed: 0 });
  const arch = init.arch;
  const trainable = trainableNames(arch, mode, o.lastK);
  const trainableSet = new Set(trainable);
  const params: Params = new Map();
  for (const [k, t] of init.weights)
    params.set(k, tf.variable(tf.tensor(t.data, t.shape), trainableSet.has(k), `vitb/${mode}/${k}`));
  init.weights.clear();
  const opt = new Optimizer({ name: 'adamw', weightDecay: 0.05, beta1: 0.9, beta2: 0.999, eps: 1e-8, momentum: 0 });
  const B = o.batchSize;
  const pixels = () => tf.randomUniform([B, 3, 224, 224], -1, 1, 'float32', 1) as tf.Tensor4D;
  const fromBlock = arch.numLayers - o.lastK;
  // last-k trains on the tokens after block L−k, which the trainer computes once per image into its cache.
  const tokens = mode === 'last-k' ? tf.tidy(() => tokensBefore(params, arch, pixels(), fromBlock)) : undefined;
  const labels = Int32Array.from({ length: B }, (_, i) => i % 10);
  const pool = o.threads > 1 ? await DataParallel.start(o.threads, params, trainable, arch, 0) : undefined;
  const times: number[] = [];
  try {
    for (let s = 0; s <= o.steps; s++) {
      const input: ForwardInput = tokens
        ? { kind: 'tokens', x: tokens.clone() as tf.Tensor3D, fromBlock }
        : { kind: 'pixels', x: pixels() };
      const t0 = performance.now();
      const parts = pool
        ? await pool.gradients(input, labels)
        : [{ ...(await lossAndGrads(params, arch, trainable, input, labels, 0)), n: B }];
      input.x.dispose();
      const { accumulated } = sumParts(parts, B);
      const { scale } = await clipGradients(accumulated!, 1);
      opt.apply(params, accumulated!, 1e-4, scale);
      for (const g of accumulated!.values()) g.dispose();
      const ms = performance.now() - t0;
      console.error(
        `[ours] ViT-B/16 ${mode}, ${o.threads} thread${o.threads > 1 ? 's' : ''}: step ${s}${s ? '' : ' (warm-up)'} ${(ms / 1000).toFixed(2)} s, loss ${parts.map(p => p.loss.toFixed(3)).join('/')}`,
      );
      if (s) times.push(ms);
    }
  } finally {
    await pool?.close();
    tokens?.dispose();
    for (const v of params.values()) v.dispose();
    opt.dispose();
  }
  return (B * 1000 * times.length) / times.reduce((a, b) => a + b, 0);
}

function torch(mode: Mode, o: VitB16Options): Promise<number> {
  return new Promise((resolve, reject) => {
    const args = [
      'bench/torch_train.py',
      '--arch',
      'vit-b16',
      '--mode',
      mode,
      '--last-k',
      String(o.lastK),
      '--steps',
      String(o.steps),
      '--batch-size',
      String(o.batchSize),
      '--threads',
      String(o.threads),
    ];
    const p = spawn('/usr/bin/python3', args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let last = '';
    p.stdout.on('data', (d: Buffer) => {
      for (const line of d.toString().split('\n').filter(Boolean)) {
        console.error(`[torch] ${line}`);
        last = line;
      }
    });
    p.on('error', reject);
    p.on('close', code =>
      code === 0
        ? resolve(JSON.parse(last).images_per_sec)
        : reject(new Error(`bench/torch_train.py exited with ${code}`)),
    );
  });
}

export async function benchVitB16(o: VitB16Options): Promise<void> {
  const lines: string[] = [
    `ViT-B/16 at 224, batch ${o.batchSize}, AdamW, clip 1.0, random data, ${o.steps} timed steps after 1 warm-up, ${o.threads} thread${o.threads > 1 ? 's' : ''} each`,
  ];
  for (const mode of ['full', 'last-k'] as const) {
    const a = await ours(mode, o);
    const b = o.skipTorch ? undefined : await torch(mode, o);
    lines.push(
      `${mode === 'full' ? 'full fine-tune' : `last-${o.lastK} (cached tokens)`}: ours ${a.toFixed(2)} images/s${b ? `, PyTorch ${b.toFixed(2)} images/s, ratio ours/PyTorch ${(a / b).toFixed(3)}×` : ''}`,
    );
  }
  console.log(lines.join('\n'));
}
