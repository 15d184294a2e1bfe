/**
 * A class-folder dataset of Fashion-MNIST *test* images (the built-in model never trained on them)
 * written as PNGs, with planted faults whose positions the audit tests and benchmark know:
 * label flips (an image moved into another class's folder), near-duplicates (resized copies, one
 * byte-identical copy, one copy filed under another class) and out-of-domain photos (scikit-image's
 * sample pictures).
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import { FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, readIdx } from '../../server/train/fashionMnist';

export const SKIMAGE_DATA = '/usr/lib/python3/dist-packages/skimage/data';
export const OOD_PHOTOS = ['astronaut.png', 'chelsea.png', 'coffee.png', 'rocket.jpg', 'motorcycle_left.png'];

/** Folder names of the classes ('T-shirt/top' cannot be a folder name). */
export const classFolder = (c: number): string => FASHION_MNIST_CLASSES[c].replace(/\//g, '_');

export interface PlantedDataset {
  dir: string;
  images: number;
  /** Relative paths with '/'. */
  flips: { file: string; trueClass: string }[];
  /** Each planted group: the original and its copy. */
  duplicates: { files: string[]; conflicting: boolean; exact: boolean }[];
  outliers: string[];
}

function png(pixels: Uint8Array, offset: number, size = 28): Promise<Buffer> {
  return sharp(Buffer.from(pixels.subarray(offset, offset + 784)), { raw: { width: 28, height: 28, channels: 1 } })
    .resize(size, size, { kernel: 'lanczos3' })
    .png()
    .toBuffer();
}

/**
 * `perClass` test images of each class (the first ones in file order), then the planted faults:
 * 10 flips (one per class, moved to class c+5), 6 duplicate pairs, 5 photos.
 */
export async function writePlantedDataset(dir: string, perClass: number): Promise<PlantedDataset> {
  const test = readIdx(FASHION_MNIST_DIR, 't10k');
  const taken: number[][] = Array.from({ length: 10 }, () => []);
  for (let i = 0; i < test.count && taken.some(t => t.length < perClass + 2); i++) {
    if (taken[test.labels[i]].length < perClass + 2) taken[test.labels[i]].push(i);
  }
  for (let c = 0; c < 10; c++) await fs.mkdir(path.join(dir, classFolder(c)), { recursive: true });
  const name = (c: number, i: number) => `${classFolder(c)}/test-${String(i).padStart(5, '0')}.png`;
  let images = 0;
  const write = async (rel: string, data: Buffer) => {
    await fs.writeFile(path.join(dir, ...rel.split('/')), data);
    images++;
  };
  const flips: PlantedDataset['flips'] = [];
  for (let c = 0; c < 10; c++) {
    for (const i of taken[c].slice(0, perClass)) await write(name(c, i), await png(test.pixels, i * 784));
    // The image after this class's perClass goes into the folder of class c+5.
    const i = taken[c][perClass];
    const file = name((c + 5) % 10, i);
    await write(file, await png(test.pixels, i * 784));
    flips.push({ file, trueClass: classFolder(c) });
  }
  const duplicates: PlantedDataset['duplicates'] = [];
  for (let d = 0; d < 6; d++) {
    const c = d; // classes 0–5
    const i = taken[c][d + 1];
    const original = name(c, i);
    const exact = d === 4;
    const conflicting = d === 5;
    const copy = `${classFolder(conflicting ? 9 : c)}/copy-${String(i).padStart(5, '0')}.png`;
    const bytes = exact ? await fs.readFile(path.join(dir, original)) : await png(test.pixels, i * 784, 40 + 4 * d);
    await write(copy, bytes);
    duplicates.push({ files: [original, copy].sort(), conflicting, exact });
  }
  const outliers: string[] = [];
  for (let p = 0; p < OOD_PHOTOS.length; p++) {
    const file = `${classFolder((p * 3) % 10)}/photo-${OOD_PHOTOS[p].replace(/\.\w+$/, '')}.png`;
    await write(file, await sharp(path.join(SKIMAGE_DATA, OOD_PHOTOS[p])).png().toBuffer());
    outliers.push(file);
  }
  return { dir, images, flips, duplicates, outliers };
}
