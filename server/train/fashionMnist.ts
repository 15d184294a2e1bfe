/**
 * Fashion-MNIST (Xiao et al. 2017) from the IDX files Debian's dataset-fashion-mnist installs, as
 * in-memory training data: 28×28 grayscale, replicated to the 3 channels the engine feeds.
 * Used by the training benchmark and to train the built-in model.
 */
import { readFileSync } from 'fs';
import * as path from 'path';
import { gunzipSync } from 'zlib';
import { defaultPreprocess } from '../preprocess';
import type { Sample } from './datasetFolder';
import { augmentedPixels, AugmentConfig, flipChw } from './imageLoader';
import type { TrainData } from './trainer';

export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';
export const FASHION_MNIST_CLASSES = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
];

export interface IdxImages {
  count: number;
  rows: number;
  cols: number;
  pixels: Uint8Array;
  labels: Uint8Array;
}

export function readIdx(dir: string, split: 'train' | 't10k'): IdxImages {
  const read = (name: string) => {
    const file = path.join(dir, name);
    try {
      return gunzipSync(readFileSync(file));
    } catch (e) {
      throw new Error(
        `${file}: cannot read (${(e as Error).message}); install it with "apt-get install dataset-fashion-mnist"`,
      );
    }
  };
  const img = read(`${split}-images-idx3-ubyte.gz`);
  const lab = read(`${split}-labels-idx1-ubyte.gz`);
  if (img.readUInt32BE(0) !== 2051 || lab.readUInt32BE(0) !== 2049)
    throw new Error(`${dir}: ${split} files are not IDX images/labels`);
  const count = img.readUInt32BE(4);
  return {
    count,
    rows: img.readUInt32BE(8),
    cols: img.readUInt32BE(12),
    pixels: img.subarray(16),
    labels: lab.subarray(8, 8 + count),
  };
}

/** Normalised like the exported preprocessor (rescale 1/255, mean = std = 0.5), so training pixels equal inference pixels. */
export function pixelsOf(set: IdxImages, i: number): Float32Array {
  const n = set.rows * set.cols;
  const out = new Float32Array(3 * n);
  for (let j = 0; j < n; j++) {
    const v = (set.pixels[i * n + j] / 255 - 0.5) / 0.5;
    out[j] = v;
    out[n + j] = v;
    out[2 * n + j] = v;
  }
  return out;
}

/** One image as interleaved 8-bit RGB (grey replicated), the form decoded image files take. */
export function rgbOf(set: IdxImages, i: number): Buffer {
  const n = set.rows * set.cols;
  const out = Buffer.alloc(3 * n);
  for (let j = 0; j < n; j++) out[3 * j] = out[3 * j + 1] = out[3 * j + 2] = set.pixels[i * n + j];
  return out;
}

/**
 * Train split as TrainData (samples named "fashion-mnist/<split>/<index>"); `limit` takes the first N.
 * `augment`: random-resized-crop + flip as folder datasets get it (imageLoader.ts); `flip`: a flip only.
 */
export function fashionMnistData(
  opts: { dir?: string; limit?: number; val?: 'none' | 'test'; flip?: boolean; augment?: AugmentConfig } = {},
): { data: TrainData; train: IdxImages; test: IdxImages } {
  const dir = opts.dir ?? FASHION_MNIST_DIR;
  const train = readIdx(dir, 'train');
  const test = readIdx(dir, 't10k');
  const n = Math.min(train.count, opts.limit ?? train.count);
  const samples = (split: string, set: IdxImages, count: number): Sample[] =>
    Array.from({ length: count }, (_, i) => ({ file: `fashion-mnist/${split}/${i}`, label: set.labels[i] }));
  const data: TrainData = {
    classes: FASHION_MNIST_CLASSES,
    train: samples('train', train, n),
    val: opts.val === 'test' ? samples('test', test, test.count) : [],
    skipped: [],
    warnings: [],
    preprocess: { ...defaultPreprocess([train.rows, train.cols]) },
    loader: async (s, random) => {
      const [, split, idx] = s.file.split('/');
      const set = split === 'train' ? train : test;
      if (random && opts.augment)
        return augmentedPixels(rgbOf(set, Number(idx)), set.cols, set.rows, data.preprocess, opts.augment, random);
      const x = pixelsOf(set, Number(idx));
      if (random && opts.flip && random() < 0.5) flipChw(x, 3, train.rows, train.cols);
      return x;
    },
  };
  return { data, train, test };
}
