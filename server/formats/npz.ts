/**
 * NumPy .npz reader (a zip of .npy files, as written by numpy.savez / savez_compressed), for
 * float arrays only. Format: https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html
 */
import { promises as fsp } from 'fs';
import { unzipSync } from 'fflate';
import { numel, permute, Tensor } from '../model/tensor';
import { decodeFloats, FloatKind } from './safetensors';

const DTYPE_KIND: Record<string, FloatKind> = { '<f4': 'f32', '<f8': 'f64', '<f2': 'f16' };
const ITEM_SIZE: Record<FloatKind, number> = { f32: 4, f64: 8, f16: 2, bf16: 2 };

export interface ReadNpzOptions {
  /**
   * Decode only arrays whose name (without `.npy`) passes; others are not even decompressed. Lets a
   * loader skip optimizer state that can be twice the size of the weights.
   */
  include?: (name: string) => boolean;
}

export async function readNpz(file: string, opts: ReadNpzOptions = {}): Promise<Map<string, Tensor>> {
  let bytes: Buffer;
  try {
    bytes = await fsp.readFile(file);
  } catch (err) {
    throw new Error(`${file}: cannot read the file (${(err as Error).message})`);
  }
  // Local file header "PK\3\4", or "PK\5\6" for an empty archive.
  const isZip = bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b &&
    ((bytes[2] === 3 && bytes[3] === 4) || (bytes[2] === 5 && bytes[3] === 6));
  if (!isZip) {
    throw new Error(`${file}: not a zip archive, so not an .npz file`);
  }
  let entries: Record<string, Uint8Array>;
  try {
    entries = unzipSync(bytes, {
      filter: (f) => !f.name.endsWith('/') && (!opts.include || opts.include(stripNpy(f.name))),
    });
  } catch (err) {
    throw new Error(`${file}: corrupt zip archive (${(err as Error).message})`);
  }
  const arrays = new Map<string, Tensor>();
  for (const [entryName, data] of Object.entries(entries)) {
    if (!entryName.endsWith('.npy')) throw new Error(`${file}: entry "${entryName}" is not a .npy array`);
    arrays.set(stripNpy(entryName), parseNpy(`${file}: array "${stripNpy(entryName)}"`, data));
  }
  return arrays;
}

function stripNpy(name: string): string {
  return name.endsWith('.npy') ? name.slice(0, -4) : name;
}

/** Parse one .npy file (v1, v2 or v3). `where` prefixes every error message. */
export function parseNpy(where: string, bytes: Uint8Array): Tensor {
  const magic = '\x93NUMPY';
  for (let i = 0; i < magic.length; i++) {
    if (bytes[i] !== magic.charCodeAt(i)) throw new Error(`${where}: not a .npy file (bad magic bytes)`);
  }
  const major = bytes[6];
  if (major < 1 || major > 3) throw new Error(`${where}: unsupported .npy version ${major}.${bytes[7]}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // v1 has a u16 header length; v2 widened it to u32; v3 only changed the header encoding to UTF-8.
  const lengthSize = major === 1 ? 2 : 4;
  if (bytes.length < 8 + lengthSize) throw new Error(`${where}: .npy header is truncated`);
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const dataStart = 8 + lengthSize + headerLength;
  if (dataStart > bytes.length) {
    throw new Error(`${where}: .npy header length ${headerLength} is beyond the end of the array (${bytes.length} bytes)`);
  }
  const header = Buffer.from(bytes.buffer, bytes.byteOffset + 8 + lengthSize, headerLength).toString(major === 3 ? 'utf8' : 'latin1');
  const { descr, fortranOrder, shape } = parseNpyHeader(where, header);

  const kind = DTYPE_KIND[descr];
  if (!kind) throw new Error(`${where}: dtype '${descr}' is not supported (only '<f4', '<f8', '<f2')`);
  const count = numel(shape);
  const byteLength = count * ITEM_SIZE[kind];
  if (bytes.length - dataStart !== byteLength) {
    throw new Error(`${where}: ${bytes.length - dataStart} data bytes but ${descr} shape (${shape.join(', ')}) needs ${byteLength}`);
  }
  const data = decodeFloats(bytes.subarray(dataStart), kind, count);
  return { shape, data: fortranOrder ? fortranToC(data, shape) : data };
}

/** The header is a Python dict literal, e.g. `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`. */
function parseNpyHeader(where: string, header: string): { descr: string; fortranOrder: boolean; shape: number[] } {
  const descr = /['"]descr['"]\s*:\s*['"]([^'"]*)['"]/.exec(header)?.[1];
  const fortran = /['"]fortran_order['"]\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /['"]shape['"]\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    throw new Error(`${where}: corrupt .npy header ${JSON.stringify(header.trim())}`);
  }
  const parts = shapeText.split(',').map((s) => s.trim()).filter((s) => s !== '');
  const shape = parts.map(Number);
  if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new Error(`${where}: corrupt .npy header: shape (${shapeText})`);
  }
  return { descr, fortranOrder: fortran === 'True', shape };
}

/**
 * Column-major data of shape S is the row-major array of shape reverse(S) with its axes reversed.
 */
function fortranToC(src: Float32Array, shape: number[]): Float32Array {
  if (shape.length < 2) return src;
  const reversed = shape.map((_, i) => shape.length - 1 - i);
  return permute({ shape: reversed.map((a) => shape[a]), data: src }, reversed).data;
}
