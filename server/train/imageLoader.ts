/**
 * Turns one dataset sample into model input (CHW float32, normalised like the engine's preprocessing),
 * with optional random-resized-crop + horizontal flip. Decoding is sharp's (server/preprocess.ts),
 * so training sees exactly the pixels classify/explain will see.
 */
import sharp from 'sharp';
import { decodeImageFile, PreprocessConfig, resizeForModel, toPixelValues } from '../preprocess';
import type { Sample } from './datasetFolder';

export interface AugmentConfig {
  /** Area fraction range of random-resized-crop (torchvision's default is [0.08, 1]). */
  scale: [number, number];
  ratio: [number, number];
  flip: boolean;
  /** false: no random-resized-crop, the whole image (flip only). */
  crop?: boolean;
}

export const DEFAULT_AUGMENT: AugmentConfig = { scale: [0.25, 1], ratio: [3 / 4, 4 / 3], flip: true };
/**
 * For model inputs of at most SMALL_IMAGE_SIDE pixels a side, a flip only: on 28-px Fashion-MNIST,
 * random-resized-crop cost torchvision's ViT about 11 points at area floor 0.25 and as much at 0.64,
 * while a flip alone cost nothing (README, "Training from scratch").
 */
export const SMALL_IMAGE_AUGMENT: AugmentConfig = { ...DEFAULT_AUGMENT, crop: false };
export const SMALL_IMAGE_SIDE = 64;

/** The augmentation `--augment` means for this model input size: no crops for small images. */
export function defaultAugment(size: [number, number]): AugmentConfig {
  return Math.max(size[0], size[1]) <= SMALL_IMAGE_SIDE ? SMALL_IMAGE_AUGMENT : DEFAULT_AUGMENT;
}

/** Loads one sample; `random` present means augment. Throws (ImageError) for unreadable files. */
export type PixelLoader = (sample: Sample, random?: () => number) => Promise<Float32Array>;

/** torchvision RandomResizedCrop.get_params: 10 tries at a random box, then a centre crop. */
export function randomCropBox(
  width: number,
  height: number,
  aug: AugmentConfig,
  random: () => number,
): { left: number; top: number; width: number; height: number } {
  const area = width * height;
  const [lr0, lr1] = [Math.log(aug.ratio[0]), Math.log(aug.ratio[1])];
  for (let i = 0; i < 10; i++) {
    const target = area * (aug.scale[0] + random() * (aug.scale[1] - aug.scale[0]));
    const ratio = Math.exp(lr0 + random() * (lr1 - lr0));
    const w = Math.round(Math.sqrt(target * ratio));
    const h = Math.round(Math.sqrt(target / ratio));
    if (w > 0 && h > 0 && w <= width && h <= height) {
      return {
        left: Math.floor(random() * (width - w + 1)),
        top: Math.floor(random() * (height - h + 1)),
        width: w,
        height: h,
      };
    }
  }
  const s = Math.min(width, height);
  return { left: Math.floor((width - s) / 2), top: Math.floor((height - s) / 2), width: s, height: s };
}

/** Flip a CHW plane set left-right in place. */
export function flipChw(x: Float32Array, c: number, h: number, w: number): void {
  for (let ch = 0; ch < c; ch++) {
    for (let r = 0; r < h; r++) {
      const base = (ch * h + r) * w;
      for (let i = 0, j = w - 1; i < j; i++, j--) {
        const t = x[base + i];
        x[base + i] = x[base + j];
        x[base + j] = t;
      }
    }
  }
}

/** Random-resized-crop of decoded RGB to the model size, then maybe a flip: one augmented sample. */
export async function augmentedPixels(
  rgb: Buffer,
  width: number,
  height: number,
  pre: PreprocessConfig,
  aug: AugmentConfig,
  random: () => number,
): Promise<Float32Array> {
  const [h, w] = pre.size;
  const box = aug.crop === false ? { left: 0, top: 0, width, height } : randomCropBox(width, height, aug, random);
  const out = await sharp(rgb, { raw: { width, height, channels: 3 } })
    .extract(box)
    .resize(w, h, { fit: 'fill', kernel: 'linear' })
    .raw()
    .toBuffer();
  const x = toPixelValues(out, pre);
  if (aug.flip && random() < 0.5) flipChw(x, 3, h, w);
  return x;
}

export function folderLoader(pre: PreprocessConfig, aug: AugmentConfig = defaultAugment(pre.size)): PixelLoader {
  return async (sample, random) => {
    const img = await decodeImageFile(sample.file);
    if (!random) return toPixelValues(await resizeForModel(img, pre), pre);
    return augmentedPixels(img.rgb, img.width, img.height, pre, aug, random);
  };
}
