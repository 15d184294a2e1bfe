/**
 * NumPy .npz reader (a zip of .npy files, as written by numpy.savez / savez_compressed), for
 * float arrays only. Format: https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html
 */
import { close, constants, fstat, open, read } from 'fs';
import * as os from 'os';
import { promisify } from 'util';
import yauzl, { Entry, ZipFile } from 'yauzl';
import { numel, permute, Tensor } from '../model/tensor';
import { fsPath } from '../util/fileNames';
import { fileKind, formatBytes } from '../util/regularFile';
import { decodeFloats, FloatKind } from './safetensors';

const DTYPE_KIND: Record<string, FloatKind> = { '<f4': 'f32', '<f8': 'f64', '<f2': 'f16' };
const ITEM_SIZE: Record<FloatKind, number> = { f32: 4, f64: 8, f16: 2, bf16: 2 };

/**
 * Zip bombs: sizes come from the zip's central directory and each array's .npy header, and are
 * checked before anything is inflated. One array may hold at most MAX_ARRAY_BYTES (the largest
 * array of ViT-e, the MLP kernel, is 110 MB; 1 GiB is ten times that), all arrays together at most
 * three quarters of the machine's memory; and an array inflates to exactly the size its header
 * needs or is refused (the inflating stream stops at the declared size).
 */
export const MAX_ARRAY_BYTES = 1 << 30;
const MAX_NPY_HEADER = 1 << 20; // numpy writes headers under 100 bytes; v2+ allows 4 GB of them

export interface ReadNpzOptions {
  /**
   * Decode only arrays whose name (without `.npy`) passes; others are not even decompressed. Lets a
   * loader skip optimizer state that can be twice the size of the weights.
   */
  include?: (name: string) => boolean;
}

export async function readNpz(file: string, opts: ReadNpzOptions = {}): Promise<Map<string, Tensor>> {
  const fd = await openRegular(file);
  let zip: ZipFile;
  try {
    if (!(await hasZipMagic(fd))) throw new Error(`${file}: not a zip archive, so not an .npz file`);
    zip = await yauzl.fromFdPromise(fd, { lazyEntries: true, autoClose: false });
  } catch (err) {
    close(fd, () => undefined);
    throw (err as Error).message.startsWith(file)
      ? err
      : new Error(`${file}: corrupt zip archive (${(err as Error).message})`);
  }
  try {
    const entries: Entry[] = [];
    try {
      for await (const entry of zip.eachEntry()) {
        if (!entry.fileName.endsWith('/') && (!opts.include || opts.include(stripNpy(entry.fileName))))
          entries.push(entry);
      }
    } catch (err) {
      throw new Error(`${file}: corrupt zip archive (${(err as Error).message})`);
    }
    checkDeclaredSizes(file, entries);
    const arrays = new Map<string, Tensor>();
    for (const entry of entries) {
      const where = `${file}: array "${stripNpy(entry.fileName)}"`;
      arrays.set(stripNpy(entry.fileName), parseNpy(where, await inflateNpy(zip, entry, where)));
    }
    return arrays;
  } finally {
    zip.close(); // closes fd
  }
}

/** Refuses, before inflating anything, members that are not arrays or whose declared sizes are too large. */
function checkDeclaredSizes(file: string, entries: Entry[]): void {
  let total = 0;
  for (const e of entries) {
    if (!e.fileName.endsWith('.npy')) throw new Error(`${file}: entry "${e.fileName}" is not a .npy array`);
    if (e.uncompressedSize > MAX_ARRAY_BYTES) {
      throw new Error(
        `${file}: array "${stripNpy(e.fileName)}" (member "${e.fileName}") declares ${formatBytes(e.uncompressedSize)} uncompressed from ` +
          `${formatBytes(e.compressedSize)}, over the ${MAX_ARRAY_BYTES / 2 ** 30} GiB limit for one array; not inflated (a zip bomb?)`,
      );
    }
    total += e.uncompressedSize;
  }
  const budget = 0.75 * os.totalmem();
  if (total > budget) {
    throw new Error(
      `${file}: its arrays declare ${formatBytes(total)} uncompressed, more than three quarters of this machine's memory (${formatBytes(os.totalmem())}); not inflated`,
    );
  }
}

/**
 * One member's bytes, inflated only after its .npy header (the first bytes out) has been checked
 * against the size the zip declares; the stream then stops at that size.
 */
async function inflateNpy(zip: ZipFile, entry: Entry, where: string): Promise<Uint8Array> {
  const declared = entry.uncompressedSize;
  let stream: NodeJS.ReadableStream & { destroy(): void };
  try {
    stream = await zip.openReadStreamPromise(entry);
  } catch (err) {
    throw new Error(`${where}: cannot read it from the zip (${(err as Error).message})`);
  }
  const head: Buffer[] = [];
  let out: Buffer | undefined;
  let filled = 0;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      if (out) {
        if (filled + chunk.length > declared)
          throw new Error(`${where}: inflates to more than the ${declared} bytes the zip declares`);
        chunk.copy(out, filled);
        filled += chunk.length;
        continue;
      }
      head.push(chunk);
      const bytes = Buffer.concat(head);
      const header = readNpyHeader(where, bytes);
      if (!header) continue; // not all of the header yet
      if (header.dataStart + header.byteLength !== declared) {
        throw new Error(
          `${where}: ${declared - header.dataStart} data bytes but ${header.descr} shape (${header.shape.join(', ')}) needs ${header.byteLength} (sizes from the zip directory and the .npy header; not inflated)`,
        );
      }
      out = Buffer.allocUnsafe(declared);
      filled = bytes.copy(out);
      head.length = 0;
    }
  } catch (err) {
    const message = (err as Error).message;
    throw message.startsWith(where) ? err : new Error(`${where}: corrupt zip member (${message})`);
  } finally {
    stream.destroy();
  }
  // A member too short for its header: parseNpy says what is missing.
  return out ? out.subarray(0, filled) : Buffer.concat(head);
}

/** A raw descriptor, not a FileHandle: yauzl closes it when the zip is closed. */
async function openRegular(file: string): Promise<number> {
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO would otherwise block the open until a writer appears.
    fd = await promisify(open)(fsPath(file), constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
  } catch (err) {
    throw new Error(`${file}: cannot read the file (${(err as Error).message})`);
  }
  const st = await promisify(fstat)(fd);
  if (!st.isFile()) {
    close(fd, () => undefined);
    throw new Error(`${file}: cannot read the file (it is ${fileKind(st)}, not a regular file)`);
  }
  return fd;
}

async function hasZipMagic(fd: number): Promise<boolean> {
  const b = Buffer.alloc(4);
  const { bytesRead } = await promisify(read)(fd, b, 0, 4, 0);
  // Local file header "PK\3\4", or "PK\5\6" for an empty archive.
  return (
    bytesRead === 4 && b[0] === 0x50 && b[1] === 0x4b && ((b[2] === 3 && b[3] === 4) || (b[2] === 5 && b[3] === 6))
  );
}

function stripNpy(name: string): string {
  return name.endsWith('.npy') ? name.slice(0, -4) : name;
}

interface NpyHeader {
  descr: string;
  kind: FloatKind;
  fortranOrder: boolean;
  shape: number[];
  dataStart: number;
  byteLength: number;
}

/** The .npy header (v1, v2 or v3) at the start of `bytes`; undefined while `bytes` is too short to hold it. `where` prefixes every error. */
function readNpyHeader(where: string, bytes: Uint8Array): NpyHeader | undefined {
  const magic = '\x93NUMPY';
  for (let i = 0; i < Math.min(magic.length, bytes.length); i++) {
    if (bytes[i] !== magic.charCodeAt(i)) throw new Error(`${where}: not a .npy file (bad magic bytes)`);
  }
  if (bytes.length < 8) return undefined;
  const major = bytes[6];
  if (major < 1 || major > 3) throw new Error(`${where}: unsupported .npy version ${major}.${bytes[7]}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // v1 has a u16 header length; v2 widened it to u32; v3 only changed the header encoding to UTF-8.
  const lengthSize = major === 1 ? 2 : 4;
  if (bytes.length < 8 + lengthSize) return undefined;
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  if (headerLength > MAX_NPY_HEADER) throw new Error(`${where}: corrupt .npy header (it claims ${headerLength} bytes)`);
  const dataStart = 8 + lengthSize + headerLength;
  if (dataStart > bytes.length) return undefined;
  const header = Buffer.from(bytes.buffer, bytes.byteOffset + 8 + lengthSize, headerLength).toString(
    major === 3 ? 'utf8' : 'latin1',
  );
  const { descr, fortranOrder, shape } = parseNpyHeader(where, header);
  const kind = DTYPE_KIND[descr];
  if (!kind) throw new Error(`${where}: dtype '${descr}' is not supported (only '<f4', '<f8', '<f2')`);
  return { descr, kind, fortranOrder, shape, dataStart, byteLength: numel(shape) * ITEM_SIZE[kind] };
}

/** Parse one .npy file (v1, v2 or v3). `where` prefixes every error message. */
export function parseNpy(where: string, bytes: Uint8Array): Tensor {
  if (bytes.length < 8) {
    readNpyHeader(where, bytes); // bad magic bytes
    throw new Error(`${where}: .npy header is truncated`);
  }
  const h = readNpyHeader(where, bytes);
  if (!h) {
    const lengthSize = bytes[6] === 1 ? 2 : 4;
    if (bytes.length < 8 + lengthSize) throw new Error(`${where}: .npy header is truncated`);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const headerLength = lengthSize === 2 ? view.getUint16(8, true) : view.getUint32(8, true);
    throw new Error(
      `${where}: .npy header length ${headerLength} is beyond the end of the array (${bytes.length} bytes)`,
    );
  }
  if (bytes.length - h.dataStart !== h.byteLength) {
    throw new Error(
      `${where}: ${bytes.length - h.dataStart} data bytes but ${h.descr} shape (${h.shape.join(', ')}) needs ${h.byteLength}`,
    );
  }
  const count = numel(h.shape);
  const data = decodeFloats(bytes.subarray(h.dataStart), h.kind, count);
  return { shape: h.shape, data: h.fortranOrder ? fortranToC(data, h.shape) : data };
}

/** The header is a Python dict literal, e.g. `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`. */
function parseNpyHeader(where: string, header: string): { descr: string; fortranOrder: boolean; shape: number[] } {
  const descr = /['"]descr['"]\s*:\s*['"]([^'"]*)['"]/.exec(header)?.[1];
  const fortran = /['"]fortran_order['"]\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /['"]shape['"]\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    throw new Error(`${where}: corrupt .npy header ${JSON.stringify(header.trim())}`);
  }
  const parts = shapeText
    .split(',')
    .map(s => s.trim())
    .filter(s => s !== '');
  const shape = parts.map(Number);
  if (!shape.every(d => Number.isSafeInteger(d) && d >= 0)) {
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
  return permute({ shape: reversed.map(a => shape[a]), data: src }, reversed).data;
}
