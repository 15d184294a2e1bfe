/**
 * BMP support. libvips (and so sharp) has no BMP loader in its prebuilt binaries, so BMP files are
 * decoded with bmp-ts into raw RGB and join the normal pipeline from there.
 *
 * bmp-ts 1.0.9 quirks worked around here (found by test/unit/decode.test.ts against Pillow; it is used as is, the
 * header is checked and, where needed, a patched copy is handed to it):
 *  - 1/4/8-bit palette rows are written A,B,G,R even with `toRGBA: true`, so palette BMPs came out
 *    as (0, B, G): we now ask for bmp-ts's native A,B,G,R layout everywhere and reorder ourselves.
 *  - it ignores bfOffBits and reads pixels right after the palette: a gap before the pixels is cut.
 *  - 4-bit rows of odd width stop the whole decode after the first row: decoded one pixel wider
 *    (same row stride) and cropped.
 *  - 16/32-bit BI_RGB with a V4/V5 header takes the header's (legally zero) masks: defaults put in.
 *  - 16-bit channels were expanded by shifting (31 → 248); now scaled as Pillow does (31 → 255).
 *  - RLE4/RLE8 write pixels at wrong offsets: refused with a clear message instead.
 *  - short pixel data was only noticed after allocating the full image: checked first.
 */
import { decode } from 'bmp-ts';

export function isBmp(bytes: Buffer): boolean {
  return bytes.length >= 26 && bytes[0] === 0x42 && bytes[1] === 0x4d; // "BM"
}

/**
 * `checkSize` runs on the header's dimensions before any pixel buffer is allocated, so a header
 * that claims a huge image is refused without allocating it.
 */
export function decodeBmp(
  bytes: Buffer,
  checkSize: (width: number, height: number) => void,
): { width: number; height: number; rgb: Buffer } {
  const headerSize = bytes.readUInt32LE(14);
  if (headerSize < 40) throw new Error(`unsupported BMP header (${headerSize} bytes, OS/2 format)`);
  const width = bytes.readInt32LE(18);
  const height = Math.abs(bytes.readInt32LE(22)); // negative height = rows stored top-down
  checkSize(width, height);
  if (bytes.length < 54) throw new Error('file is truncated inside the BMP header');
  const offset = bytes.readUInt32LE(10);
  const bpp = bytes.readUInt16LE(28);
  const compression = bytes.readUInt32LE(30);
  const colors = bytes.readUInt32LE(46);
  if (![1, 4, 8, 16, 24, 32].includes(bpp)) throw new Error(`unsupported BMP bit depth ${bpp}`);
  if (compression === 1 || compression === 2)
    throw new Error(`RLE${compression === 1 ? 8 : 4}-compressed BMP is not supported`);
  if (![0, 3, 6].includes(compression)) throw new Error(`unsupported BMP compression ${compression}`);
  const stride = Math.floor((width * bpp + 31) / 32) * 4;
  if (bytes.length < offset + stride * height) {
    throw new Error(`file is truncated: ${offset + stride * height - bytes.length} bytes of pixel data missing`);
  }
  // Where bmp-ts will start reading pixels: after the header, bitfield masks and palette.
  const masks = headerSize === 40 ? (compression === 3 ? 12 : compression === 6 ? 16 : 0) : 0;
  const paletteBytes = bpp <= 8 || colors > 0 ? (colors || 1 << bpp) * 4 : 0;
  const start = 14 + headerSize + masks + paletteBytes;
  if (offset < start) throw new Error('pixel data offset points inside the header');
  const input = offset > start ? Buffer.concat([bytes.subarray(0, start), bytes.subarray(offset)]) : Buffer.from(bytes);
  const decodeWidth = bpp === 4 && width % 2 === 1 ? width + 1 : width;
  input.writeInt32LE(decodeWidth, 18);
  if (compression === 0 && headerSize > 40 && (bpp === 16 || bpp === 32)) {
    const [r, g, b] = bpp === 32 ? [0xff0000, 0xff00, 0xff] : [0x7c00, 0x3e0, 0x1f];
    input.writeUInt32LE(r, 54);
    input.writeUInt32LE(g, 58);
    input.writeUInt32LE(b, 62);
    input.writeUInt32LE(0, 66);
  }
  const abgr = decode(input, { toRGBA: false }).data;
  if (abgr.length < decodeWidth * height * 4) throw new Error('pixel data is shorter than the header says');
  // 16-bit: bmp-ts expands a k-bit channel as v << (8 - k); Pillow as v * 255 / (2^k - 1).
  const [lr, lg, lb] = bpp === 16 ? expand16Luts(bytes, compression) : [IDENTITY, IDENTITY, IDENTITY];
  const rgb = Buffer.alloc(width * height * 3);
  for (let y = 0, j = 0; y < height; y++) {
    for (let x = 0, i = y * decodeWidth * 4; x < width; x++, i += 4, j += 3) {
      rgb[j] = lr[abgr[i + 3]];
      rgb[j + 1] = lg[abgr[i + 2]];
      rgb[j + 2] = lb[abgr[i + 1]];
    }
  }
  return { width, height, rgb };
}

const IDENTITY = Uint8Array.from({ length: 256 }, (_, v) => v);

function expand16Luts(bytes: Buffer, compression: number): Uint8Array[] {
  const masks =
    compression === 0
      ? [0x7c00, 0x3e0, 0x1f]
      : [bytes.readUInt32LE(54), bytes.readUInt32LE(58), bytes.readUInt32LE(62)];
  return masks.map(mask => {
    let k = 0;
    for (let m = mask; m; m >>>= 1) k += m & 1;
    if (k < 1 || k > 8) return IDENTITY;
    return Uint8Array.from({ length: 256 }, (_, out) => Math.floor(((out >> (8 - k)) * 255) / ((1 << k) - 1)));
  });
}
