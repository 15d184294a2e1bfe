/**
 * Image decoding and the Hugging Face ViTImageProcessor pipeline (convert to RGB → resize → rescale →
 * normalise, optional centre crop), driven by `preprocessor_config.json`.
 *
 * Decoding is sharp's (libvips). We decode to 8-bit sRGB at full size first and resize in a second
 * step, because HF converts to RGB (dropping alpha, never compositing) *before* resizing, and
 * libvips would otherwise premultiply alpha or use shrink-on-load, both of which move pixels away
 * from what PIL produces.
 */
import * as path from 'path';
import sharp, { type KernelEnum, type Metadata } from 'sharp';
import { decodeBmp, isBmp } from './formats/bmp';
import type { PreprocessInfo } from '../common/workerRequests';
import { displayPath } from './util/fileNames';
import {
  formatBytes,
  MAX_CONFIG_FILE_BYTES,
  openRegularFile,
  readModelFile,
  readRange,
  readRegularFile,
  ReadLimit,
  UnreadableFileError,
} from './util/regularFile';

/** PIL's resampling filter codes, as stored in `preprocessor_config.json` ("resample"). */
const PIL_FILTERS: Record<number, keyof KernelEnum> = {
  0: 'nearest',
  1: 'lanczos3',
  2: 'linear', // PIL BILINEAR: triangle filter widened by the scale factor when shrinking, as libvips' reduce does
  3: 'cubic', // PIL BICUBIC is Keys a = -0.5, the same as libvips' Catmull-Rom "cubic"
  4: 'linear', // BOX: libvips has no box kernel for reduce; linear is the nearest well-behaved choice
  5: 'linear', // HAMMING: likewise
};

export interface PreprocessConfig extends PreprocessInfo {
  /** How to resize before a centre crop to `size`: to an exact [h, w], or so the shortest edge has this length (aspect kept). */
  resizeTo?: { hw: [number, number] } | { shortestEdge: number };
}

/** Hugging Face ViTImageProcessor defaults (google/vit-base-patch16-224). */
export function defaultPreprocess(size: [number, number] = [224, 224]): PreprocessConfig {
  return {
    size,
    resample: 2,
    doResize: true,
    doRescale: true,
    rescaleFactor: 1 / 255,
    doNormalize: true,
    mean: [0.5, 0.5, 0.5],
    std: [0.5, 0.5, 0.5],
  };
}

type SizeField = number | { height?: number; width?: number; shortest_edge?: number };

/** Read a `preprocessor_config.json` object; missing fields fall back to HF ViT defaults. */
export function preprocessFromHf(raw: Record<string, unknown>, fallbackSize: [number, number]): PreprocessConfig {
  const cfg = defaultPreprocess(fallbackSize);
  const num = (k: string) => (typeof raw[k] === 'number' ? (raw[k] as number) : undefined);
  const bool = (k: string) => (typeof raw[k] === 'boolean' ? (raw[k] as boolean) : undefined);
  const triple = (k: string): [number, number, number] | undefined => {
    const v = raw[k];
    if (typeof v === 'number') return [v, v, v];
    if (Array.isArray(v) && v.length === 3 && v.every(x => typeof x === 'number')) return v as [number, number, number];
    return undefined;
  };
  const size = sizeOf(raw.size as SizeField | undefined);
  const crop = bool('do_center_crop') ? sizeOf(raw.crop_size as SizeField | undefined) : undefined;
  if (size?.shortestEdge !== undefined) {
    cfg.resizeTo = { shortestEdge: size.shortestEdge };
    cfg.size = crop?.hw ?? [size.shortestEdge, size.shortestEdge];
  } else if (size?.hw) {
    cfg.size = crop?.hw ?? size.hw;
    if (crop?.hw) cfg.resizeTo = { hw: size.hw };
  }
  cfg.resample = num('resample') ?? cfg.resample;
  cfg.doResize = bool('do_resize') ?? cfg.doResize;
  cfg.doRescale = bool('do_rescale') ?? cfg.doRescale;
  cfg.rescaleFactor = num('rescale_factor') ?? cfg.rescaleFactor;
  cfg.doNormalize = bool('do_normalize') ?? cfg.doNormalize;
  cfg.mean = triple('image_mean') ?? cfg.mean;
  cfg.std = triple('image_std') ?? cfg.std;
  return cfg;
}

function sizeOf(s: SizeField | undefined): { hw?: [number, number]; shortestEdge?: number } | undefined {
  if (s === undefined) return undefined;
  if (typeof s === 'number') return { hw: [s, s] };
  if (s.shortest_edge !== undefined) return { shortestEdge: s.shortest_edge };
  if (s.height !== undefined && s.width !== undefined) return { hw: [s.height, s.width] };
  return undefined;
}

/** Images above this many pixels are refused before decoding (PIL's DecompressionBombError threshold). */
export const MAX_IMAGE_PIXELS = 178_956_970;

export interface DecodedImage {
  file: string;
  width: number;
  height: number;
  /** 8-bit sRGB, HWC, 3 channels, EXIF orientation applied. */
  rgb: Buffer;
}

/** An error about one input file; the message always starts with the file name. */
export class ImageError extends Error {
  constructor(
    readonly file: string,
    readonly problem: string,
  ) {
    super(`${displayPath(file)}: ${problem}`);
    this.name = 'ImageError';
  }
}

/**
 * The most bytes an image file within MAX_IMAGE_PIXELS can need: 16-bit RGBA stored uncompressed
 * (8 bytes a pixel, as TIFF allows) plus 64 MiB of metadata. A larger file is refused unread.
 */
export const MAX_IMAGE_FILE_BYTES = MAX_IMAGE_PIXELS * 8 + (64 << 20);

const IMAGE_READ_LIMIT: ReadLimit = {
  maxBytes: MAX_IMAGE_FILE_BYTES,
  tooLarge: size =>
    `file is ${formatBytes(size)}, more than any image within the ${(MAX_IMAGE_PIXELS / 1e6).toFixed(0)}-megapixel limit needs ` +
    `(${formatBytes(MAX_IMAGE_FILE_BYTES)}: 16-bit RGBA uncompressed, plus metadata); not read`,
};

/** An image file's bytes: a regular file (after links) no larger than MAX_IMAGE_FILE_BYTES. */
export async function readImageBytes(file: string): Promise<Buffer> {
  try {
    return await readRegularFile(file, IMAGE_READ_LIMIT);
  } catch (e) {
    throw imageReadError(file, e);
  }
}

export async function decodeImageFile(file: string): Promise<DecodedImage> {
  return decodeImage(await readImageBytes(file), file);
}

/**
 * Width and height from the start of the file only (the first 256 KB, where every format we read
 * keeps them, unless a JPEG carries huge metadata), without decoding; undefined when they cannot be
 * told that way. For budgeting memory before a decode, which does the real checks.
 */
export async function peekImageSize(file: string): Promise<{ width: number; height: number } | undefined> {
  try {
    const { handle, size } = await openRegularFile(file);
    let head: Buffer;
    try {
      head = await readRange(handle, 0, Math.min(size, 256 << 10));
    } finally {
      await handle.close();
    }
    if (isBmp(head)) return { width: Math.abs(head.readInt32LE(18)), height: Math.abs(head.readInt32LE(22)) };
    const meta = await sharp(head, { limitInputPixels: false }).metadata();
    return meta.width && meta.height ? { width: meta.width, height: meta.height } : undefined;
  } catch {
    return undefined;
  }
}

function imageReadError(file: string, e: unknown): ImageError {
  if (!(e instanceof UnreadableFileError)) return new ImageError(file, `cannot read file (${(e as Error).message})`);
  if (e.code === 'ENOENT' && file.includes('\uFFFD')) {
    // What Node makes of a name that is not UTF-8 where the raw bytes could not be recovered.
    return new ImageError(
      file,
      'file not found (the name contains U+FFFD, the replacement for bytes that are not valid UTF-8)',
    );
  }
  return new ImageError(
    file,
    e.code === 'EISDIR' || e.problem.startsWith('is a folder') ? 'is a folder, not an image' : e.problem,
  );
}

export async function decodeImage(bytes: Buffer, file: string): Promise<DecodedImage> {
  if (bytes.length === 0) throw new ImageError(file, 'file is empty (0 bytes)');
  if (isBmp(bytes)) {
    // libvips (and so sharp) cannot read BMP; decode it ourselves into raw RGB and continue from there.
    const bmp = decodeBmpChecked(bytes, file);
    return { file, width: bmp.width, height: bmp.height, rgb: bmp.rgb };
  }
  let meta: Metadata;
  try {
    meta = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch (e) {
    throw new ImageError(
      file,
      `not a readable image (${shortSharpMessage(e)}); supported: png, jpeg, webp, gif, bmp, tiff`,
    );
  }
  const width = meta.width ?? 0;
  const height = meta.height ?? 0;
  checkPixelCount(file, width, height);
  try {
    if (meta.space === 'cmyk') {
      // libvips converts CMYK through an ICC profile (its built-in
      // one when the file has none), which was 9.4 levels mean / 28 max away from PIL. PIL's
      // convert("RGB") uses the naive formula R = (255-C)(255-K)/255 (Convert.c cmyk2rgb), so keep
      // the decoded CMYK as it is and apply that formula, with PIL's rounding.
      const { data, info } = await sharp(bytes, {
        limitInputPixels: MAX_IMAGE_PIXELS,
        failOn: 'error',
        pages: 1,
        ignoreIcc: true,
      })
        .rotate()
        .pipelineColourspace('cmyk')
        .toColourspace('cmyk')
        .raw({ depth: 'uchar' })
        .toBuffer({ resolveWithObject: true });
      if (info.channels < 4) throw new Error(`CMYK image decoded to ${info.channels} channels`);
      const rgb = Buffer.alloc(info.width * info.height * 3);
      for (let p = 0, q = 0; q < rgb.length; p += info.channels, q += 3) {
        const nk = 255 - data[p + 3];
        for (let c = 0; c < 3; c++) {
          const t = data[p + c] * nk + 128; // PIL's MULDIV255
          rgb[q + c] = nk - (((t >> 8) + t) >> 8);
        }
      }
      return { file, width: info.width, height: info.height, rgb };
    }
    // ignoreIcc: PIL's convert("RGB") ignores embedded colour profiles, and models were trained on
    // what PIL gives; applying the profile moved a real photo's pixels by ~6 levels on average.
    const { data, info } = await sharp(bytes, {
      limitInputPixels: MAX_IMAGE_PIXELS,
      failOn: 'error',
      pages: 1,
      ignoreIcc: true,
    })
      .rotate() // apply EXIF orientation, as HF's load_image (ImageOps.exif_transpose) does
      .toColourspace('srgb') // grayscale and 16-bit end as 8-bit sRGB (CMYK is handled above)
      .removeAlpha()
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels`);
    return { file, width: info.width, height: info.height, rgb: data };
  } catch (e) {
    throw new ImageError(file, `cannot decode image, it may be corrupt or truncated (${shortSharpMessage(e)})`);
  }
}

function decodeBmpChecked(bytes: Buffer, file: string): { width: number; height: number; rgb: Buffer } {
  try {
    return decodeBmp(bytes, (w, h) => checkPixelCount(file, w, h));
  } catch (e) {
    if (e instanceof ImageError) throw e;
    throw new ImageError(file, `cannot decode BMP image (${(e as Error).message})`);
  }
}

function checkPixelCount(file: string, width: number, height: number): void {
  if (width <= 0 || height <= 0) throw new ImageError(file, 'image has no size in its header');
  if (width * height > MAX_IMAGE_PIXELS) {
    const mp = ((width * height) / 1e6).toFixed(0);
    throw new ImageError(
      file,
      `image is ${width}×${height} (${mp} megapixels), over the ${(MAX_IMAGE_PIXELS / 1e6).toFixed(0)}-megapixel limit; refusing to decode a possible decompression bomb`,
    );
  }
}

function shortSharpMessage(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg
    .split('\n')[0]
    .replace(/^Input (buffer|file) /, '')
    .trim();
}

/** Resize (and centre-crop) decoded RGB to the model's input size. Returns HWC uint8 RGB. */
export async function resizeForModel(img: DecodedImage, cfg: PreprocessConfig): Promise<Buffer> {
  const [outH, outW] = cfg.size;
  if (!cfg.doResize) {
    if (img.width !== outW || img.height !== outH) {
      throw new ImageError(
        img.file,
        `is ${img.width}×${img.height} but the model needs ${outW}×${outH} and its processor does not resize`,
      );
    }
    return img.rgb;
  }
  const kernel = PIL_FILTERS[cfg.resample] ?? 'linear';
  let [resizeH, resizeW] = cfg.resizeTo && 'hw' in cfg.resizeTo ? cfg.resizeTo.hw : [outH, outW];
  if (cfg.resizeTo && 'shortestEdge' in cfg.resizeTo) {
    // transformers' get_resize_output_image_size: short side = shortest_edge, long side int(s * long / short)
    const s = cfg.resizeTo.shortestEdge;
    if (img.width <= img.height) {
      resizeW = s;
      resizeH = Math.floor((s * img.height) / img.width);
    } else {
      resizeH = s;
      resizeW = Math.floor((s * img.width) / img.height);
    }
  }
  let pipeline = sharp(img.rgb, { raw: { width: img.width, height: img.height, channels: 3 } });
  if (resizeW !== img.width || resizeH !== img.height) {
    pipeline = pipeline.resize(resizeW, resizeH, { fit: 'fill', kernel });
  }
  if (resizeW !== outW || resizeH !== outH) {
    if (resizeW < outW || resizeH < outH) {
      throw new ImageError(img.file, `resized to ${resizeW}×${resizeH}, smaller than the ${outW}×${outH} crop`);
    }
    // transformers' center_crop: top = (h - crop_h) // 2, left = (w - crop_w) // 2
    pipeline = sharp(await pipeline.raw().toBuffer(), {
      raw: { width: resizeW, height: resizeH, channels: 3 },
    }).extract({
      left: Math.floor((resizeW - outW) / 2),
      top: Math.floor((resizeH - outH) / 2),
      width: outW,
      height: outH,
    });
  }
  return pipeline.raw().toBuffer();
}

/** HWC uint8 RGB → CHW float32, rescaled and normalised; written into `out` at `offset` (for batching). */
export function toPixelValues(rgb: Buffer, cfg: PreprocessConfig, out?: Float32Array, offset = 0): Float32Array {
  const [h, w] = cfg.size;
  const plane = h * w;
  const dst = out ?? new Float32Array(3 * plane);
  const scale = cfg.doRescale ? cfg.rescaleFactor : 1;
  for (let c = 0; c < 3; c++) {
    const mean = cfg.doNormalize ? cfg.mean[c] : 0;
    const invStd = cfg.doNormalize ? 1 / cfg.std[c] : 1;
    const base = offset + c * plane;
    for (let i = 0; i < plane; i++) dst[base + i] = (rgb[i * 3 + c] * scale - mean) * invStd;
  }
  return dst;
}

export async function readPreprocessorConfig(dir: string, fallbackSize: [number, number]): Promise<PreprocessConfig> {
  const file = path.join(dir, 'preprocessor_config.json');
  let text: string;
  try {
    text = (await readModelFile(file, MAX_CONFIG_FILE_BYTES, 'a preprocessor_config.json')).toString('utf8');
  } catch (e) {
    // Absent: the Hugging Face defaults. Present but a FIFO, a device or huge: say so.
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return defaultPreprocess(fallbackSize);
    throw e;
  }
  try {
    return preprocessFromHf(JSON.parse(text), fallbackSize);
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
}
