/**
 * BMP support. libvips (and so sharp) has no BMP loader in its prebuilt binaries, so BMP files are
 * decoded with bmp-ts into raw RGB and join the normal pipeline from there.
 */
import { decode } from 'bmp-ts';

export function isBmp(bytes: Buffer): boolean {
  return bytes.length >= 26 && bytes[0] === 0x42 && bytes[1] === 0x4d; // "BM"
}

/**
 * `checkSize` runs on the header's dimensions before any pixel buffer is allocated, so a header
 * that claims a huge image is refused without allocating it.
 */
export function decodeBmp(bytes: Buffer, checkSize: (width: number, height: number) => void): { width: number; height: number; rgb: Buffer } {
  const width = bytes.readInt32LE(18);
  const height = Math.abs(bytes.readInt32LE(22)); // negative height = rows stored top-down
  checkSize(width, height);
  const img = decode(bytes, { toRGBA: true });
  const rgba = img.data;
  if (rgba.length < width * height * 4) throw new Error('pixel data is shorter than the header says');
  const rgb = Buffer.alloc(width * height * 3);
  for (let i = 0, j = 0; j < rgb.length; i += 4, j += 3) {
    rgb[j] = rgba[i];
    rgb[j + 1] = rgba[i + 1];
    rgb[j + 2] = rgba[i + 2];
  }
  return { width, height, rgb };
}
