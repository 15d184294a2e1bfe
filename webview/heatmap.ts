/**
 * Draws an attention map (values on the patch grid, max = 1) as a coloured heatmap on a canvas the
 * size of the image. The colormaps are the worker's own (common/colormaps.ts), so the
 * panel matches the PNG that "Save Overlay" writes. Opacity is the canvas's CSS opacity: changing it costs nothing.
 */
import type { ColormapName } from '../common/workerRequests';
import { colormapLut } from '../common/colormaps';

/** The canvas is sized like the image (capped, it is only ever displayed scaled). */
const MAX_SIDE = 1024;

export function drawHeatmap(
  canvas: HTMLCanvasElement,
  grid: [number, number],
  values: number[],
  width: number,
  height: number,
  colormap: ColormapName,
): void {
  const scale = Math.min(1, MAX_SIDE / Math.max(width, height));
  canvas.width = Math.max(1, Math.round(width * scale));
  canvas.height = Math.max(1, Math.round(height * scale));
  const [rows, cols] = grid;
  const lut = colormapLut(colormap);
  const cells = new ImageData(cols, rows);
  for (let i = 0; i < rows * cols; i++) {
    const level = Math.round(Math.min(1, Math.max(0, values[i] ?? 0)) * 255);
    cells.data[i * 4] = lut[level * 3];
    cells.data[i * 4 + 1] = lut[level * 3 + 1];
    cells.data[i * 4 + 2] = lut[level * 3 + 2];
    cells.data[i * 4 + 3] = 255;
  }
  const small = document.createElement('canvas');
  small.width = cols;
  small.height = rows;
  small.getContext('2d')!.putImageData(cells, 0, 0);
  const g = canvas.getContext('2d')!;
  // Bilinear upsampling of the patch grid, like the worker's overlay.
  g.imageSmoothingEnabled = true;
  g.imageSmoothingQuality = 'high';
  g.clearRect(0, 0, canvas.width, canvas.height);
  g.drawImage(small, 0, 0, canvas.width, canvas.height);
}

/** The colour scale of a colormap, low (left) to high (right), for the legend beside the heatmap. */
export function drawColorScale(canvas: HTMLCanvasElement, colormap: ColormapName): void {
  const lut = colormapLut(colormap);
  const w = canvas.width;
  const strip = new ImageData(w, 1);
  for (let x = 0; x < w; x++) {
    const level = Math.round((x / (w - 1)) * 255);
    strip.data.set([lut[level * 3], lut[level * 3 + 1], lut[level * 3 + 2], 255], x * 4);
  }
  canvas.getContext('2d')!.putImageData(strip, 0, 0);
}
