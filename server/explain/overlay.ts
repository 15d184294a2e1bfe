/**
 * Heatmap overlays: an attention map on its patch grid, upsampled to the original image size,
 * coloured and alpha-blended over the image, encoded as PNG.
 */
import sharp from 'sharp';
import type { AttentionMap } from './rollout';
import type { DecodedImage } from '../preprocess';
import { Colormap, colormapLut } from '../../common/colormaps';

/** Bilinearly upsample a [0, 1] map on its grid to width × height, as 8-bit levels. */
export async function upsampleMap(map: AttentionMap, width: number, height: number): Promise<Buffer> {
  const [rows, cols] = map.grid;
  const levels = Buffer.alloc(rows * cols);
  for (let i = 0; i < levels.length; i++) levels[i] = Math.round(Math.min(1, Math.max(0, map.values[i])) * 255);
  return sharp(levels, { raw: { width: cols, height: rows, channels: 1 } })
    .resize(width, height, { fit: 'fill', kernel: 'linear' })
    .raw()
    .toBuffer();
}

export interface OverlayOptions {
  colormap: Colormap;
  /** Heatmap opacity in [0, 1]. */
  opacity: number;
}

/** The image with the map blended over it, at the image's own size, as PNG bytes. */
export async function renderOverlayPng(image: DecodedImage, map: AttentionMap, opts: OverlayOptions): Promise<Buffer> {
  const { width, height, rgb } = image;
  const levels = await upsampleMap(map, width, height);
  const lut = colormapLut(opts.colormap);
  const alpha = Math.min(1, Math.max(0, opts.opacity));
  const out = Buffer.alloc(width * height * 3);
  for (let p = 0, q = 0; p < levels.length; p++, q += 3) {
    const l = levels[p] * 3;
    out[q] = Math.round((1 - alpha) * rgb[q] + alpha * lut[l]);
    out[q + 1] = Math.round((1 - alpha) * rgb[q + 1] + alpha * lut[l + 1]);
    out[q + 2] = Math.round((1 - alpha) * rgb[q + 2] + alpha * lut[l + 2]);
  }
  return sharp(out, { raw: { width, height, channels: 3 } })
    .png()
    .toBuffer();
}
