/**
 * `npm run bench:train-torch`: `vit-lens train --backend torch` (trainTorch, what the CLI runs, one
 * process) against a plain, idiomatic PyTorch loop (bench/train_torch_plain.py: torch.nn modules,
 * DataLoader, AdamW, autocast) on the same decoded images, model size, batch, optimizer and
 * schedule, on the same machine, in the same run. Prints images/s of both and the ratio: every
 * epoch but the first, from the end of its first step to the end of its last, on both sides.
 *
 *   npm run bench:train-torch -- [--arch small|vit-b16] [--device cpu|cuda] [--images 320]
 *                                [--epochs 3] [--batch-size 32] [--python /usr/bin/python3] [--threads N]
 * small: scratch:tiny's width (hidden 192, 12 layers, 3 heads) on 28×28 Fashion-MNIST, patch 7.
 * vit-b16: scratch:base (ViT-B/16, 224×224) on generated images (a colour and stripes per class).
 * Needs `apt-get install dataset-fashion-mnist python3-torch` for the small one.
 */
import { spawnSync } from 'child_process';
import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseArgs } from 'util';
import sharp from 'sharp';
import { FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, readIdx } from '../server/train/fashionMnist';
import { readMetrics, StepMetrics, TrainConfig } from '../server/train/runFiles';
import { trainTorch } from '../server/train/torchBackend';
import { fixOpenBlasCore } from './openblasCore';

const { values: o } = parseArgs({
  options: {
    arch: { type: 'string', default: 'small' },
    device: { type: 'string', default: 'cpu' },
    images: { type: 'string' },
    epochs: { type: 'string', default: '3' },
    'batch-size': { type: 'string' },
    python: { type: 'string', default: process.env.VIT_LENS_PYTHON ?? '/usr/bin/python3' },
    threads: { type: 'string' },
  },
});
// Both sides get the same CPU threads (OMP_NUM_THREADS; the launcher's default is every core for one
// process). On a loaded machine fewer threads than cores avoid OpenMP's spinning under contention.
process.env.OMP_NUM_THREADS = o.threads ?? process.env.OMP_NUM_THREADS ?? String(os.cpus().length);
if (!['small', 'vit-b16'].includes(o.arch!)) throw new Error(`--arch small|vit-b16, got ${o.arch}`);
if (!['cpu', 'cuda'].includes(o.device!)) throw new Error(`--device cpu|cuda, got ${o.device}`);
const big = o.arch === 'vit-b16';
const device = o.device as 'cpu' | 'cuda';
const count = Number(o.images ?? (big ? 2048 : 320));
const batchSize = Number(o['batch-size'] ?? (big ? 64 : 32));
const size = big ? 224 : 28;
const classes = 4;

/** Class folders of PNGs: Fashion-MNIST's first images of 4 classes, or generated 224×224 ones. */
async function writeDataset(dir: string): Promise<void> {
  const fashion = big ? undefined : readIdx(FASHION_MNIST_DIR, 'train');
  const seen = new Array<number>(classes).fill(0);
  for (let i = 0, written = 0; written < count; i++) {
    let label: number;
    let png: ReturnType<typeof sharp>;
    if (fashion) {
      label = fashion.labels[i];
      if (label >= classes || seen[label] >= count / classes) continue;
      const n = fashion.rows * fashion.cols;
      png = sharp(Buffer.from(fashion.pixels.subarray(i * n, (i + 1) * n)), {
        raw: { width: fashion.cols, height: fashion.rows, channels: 1 },
      });
    } else {
      label = i % classes;
      const px = Buffer.alloc(size * size * 3);
      for (let y = 0; y < size; y++)
        for (let x = 0; x < size; x++)
          for (let c = 0; c < 3; c++)
            px[(y * size + x) * 3 + c] =
              (c === label % 3 ? 160 : 40) + (((x + label * y) >> 3) % 2) * 60 + ((i * 7 + x * 13 + y * 29) % 31);
      png = sharp(px, { raw: { width: size, height: size, channels: 3 } });
    }
    const folder = path.join(dir, FASHION_MNIST_CLASSES[label].replace('/', '-'));
    await fs.mkdir(folder, { recursive: true });
    await png.png().toFile(path.join(folder, `${i}.png`));
    seen[label]++;
    written++;
  }
}

/** Images/s over every epoch but the first, from its first step's end to its last's (step records' times). */
function steadyRate(steps: StepMetrics[], trainImages: number): number {
  let images = 0;
  let ms = 0;
  for (const e of new Set(steps.map(s => s.epoch))) {
    if (e === 0) continue;
    const inEpoch = steps.filter(s => s.epoch === e);
    const perEpoch = Math.ceil(trainImages / batchSize);
    for (const s of inEpoch.slice(1))
      images += Math.min(batchSize, trainImages - (s.step - 1 - e * perEpoch) * batchSize);
    ms += Date.parse(inEpoch[inEpoch.length - 1].time) - Date.parse(inEpoch[0].time);
  }
  return images / (ms / 1000);
}

async function main() {
  console.log(fixOpenBlasCore());
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'vit-lens-bench-torch-'));
  try {
    const dataset = path.join(tmp, 'data');
    await writeDataset(dataset);
    const config: TrainConfig = {
      dataset,
      model: big ? 'scratch:base' : 'scratch:tiny',
      mode: 'full',
      lastK: 2,
      epochs: Number(o.epochs),
      batchSize,
      accumulate: 1,
      lr: 1e-3,
      optimizer: 'adamw',
      weightDecay: 0.05,
      momentum: 0.9,
      warmupSteps: 3,
      clipNorm: 1,
      labelSmoothing: 0.1,
      augment: false,
      imageSize: [size, size],
      patchSize: big ? 16 : 7,
      valSplit: 0.05,
      seed: 0,
    };
    const runDir = path.join(tmp, 'run');
    const started = Date.now();
    const info = await trainTorch({
      runDir,
      config,
      resume: false,
      torch: { python: o.python, device, nproc: 1 },
      logEvery: 1,
      log: l => {
        if (/^(training|epoch \d+\/\d+:)/.test(l)) console.log(`  ours: ${l}`);
      },
    });
    if (info.status !== 'finished') throw new Error(`our run ended ${info.status}: ${info.reason}`);
    const steps = (await readMetrics(runDir)).filter((m): m is StepMetrics => m.type === 'step');
    const ours = steadyRate(steps, info.trainImages);
    console.log(`  ours: whole run ${((Date.now() - started) / 1000).toFixed(1)} s (decoding, export included)`);

    const plain = spawnSync(o.python!, [path.join(__dirname, 'train_torch_plain.py'), runDir, '--device', device], {
      encoding: 'utf8',
    });
    if (plain.status !== 0) throw new Error(`plain PyTorch loop failed: ${plain.stderr}`);
    const peer = JSON.parse(plain.stdout.trim().split('\n').pop()!) as {
      imagesPerSec: number;
      torch: string;
      workers: number;
      threads: number;
    };
    const t = (info as unknown as { devices: string[] }).devices.join(', ');
    console.log(
      `${o.arch} (${info.trainImages} training images ${size}×${size}, batch ${batchSize}, ${config.epochs} epochs, AdamW, full mode) on ${t}, PyTorch ${peer.torch}, ${peer.threads} threads`,
    );
    console.log(`  vit-lens --backend torch: ${ours.toFixed(1)} images/s`);
    console.log(
      `  plain PyTorch loop:       ${peer.imagesPerSec.toFixed(1)} images/s (${peer.workers} loader workers)`,
    );
    console.log(`  ratio ours/plain:         ${(ours / peer.imagesPerSec).toFixed(3)}`);
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
}

main().catch(e => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
