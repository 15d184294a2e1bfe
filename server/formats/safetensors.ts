/**
 * safetensors reader/writer (https://github.com/huggingface/safetensors): an 8-byte little-endian
 * header length, a JSON header {name: {dtype, shape, data_offsets}}, then the raw tensor bytes.
 *
 * Float dtypes are widened to float32 (the engine's only dtype). Assumes a little-endian host
 * (x64, arm64), as onnxruntime does.
 */
import { promises as fsp } from 'fs';
import { numel, Tensor } from '../model/tensor';
import { tempPathFor } from '../util/atomicFile';
import { openRegularFile, UnreadableFileError } from '../util/regularFile';

/** Bytes per element of every dtype the format defines, so that non-float tensors can still be validated. */
const ITEM_SIZE: Record<string, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
};

/** A real header is a few hundred KB; a bigger one means a corrupt or hostile file. */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;
/** Per read() call: Linux returns at most ~2 GiB per call anyway, and smaller calls keep the event loop responsive. */
const MAX_READ_BYTES = 64 * 1024 * 1024;

export type FloatKind = 'f64' | 'f32' | 'f16' | 'bf16';

const FLOAT_KIND: Record<string, FloatKind | undefined> = { F64: 'f64', F32: 'f32', F16: 'f16', BF16: 'bf16' };
const FLOAT_ITEM_SIZE: Record<FloatKind, number> = { f64: 8, f32: 4, f16: 2, bf16: 2 };

export interface SafetensorsEntry {
  dtype: string;
  shape: number[];
  /** [begin, end) relative to the start of the data section. */
  dataOffsets: [number, number];
}

export interface SafetensorsHeader {
  entries: Map<string, SafetensorsEntry>;
  metadata: Record<string, string>;
  /** File offset of the data section. */
  dataStart: number;
}

export interface SafetensorsFile {
  tensors: Map<string, Tensor>;
  metadata: Record<string, string>;
  /** Tensors left out because their dtype is not a float (name → dtype); loaders name these when one is needed. */
  skipped: Map<string, string>;
}

/**
 * Reads the header, then each float tensor by its own byte range: no Buffer ever holds the whole file,
 * so checkpoints over 2 GiB (Node's Buffer limit; ViT-H/14 is 2.5 GB) load, and aligned F32 data lands
 * directly in the tensor's own memory.
 */
export async function readSafetensors(file: string): Promise<SafetensorsFile> {
  return withFile(file, async (handle, size) => {
    const header = await readHeader(file, handle, size);
    const tensors = new Map<string, Tensor>();
    const skipped = new Map<string, string>();
    for (const [name, e] of header.entries) {
      const kind = FLOAT_KIND[e.dtype];
      if (!kind) {
        skipped.set(name, e.dtype);
        continue;
      }
      const [begin, end] = e.dataOffsets;
      // Allocated as float32 so an F32 tensor needs no second copy; narrower dtypes use its first bytes.
      const raw = new Uint8Array(new Float32Array(Math.ceil((end - begin) / 4)).buffer, 0, end - begin);
      await readRange(file, handle, raw, header.dataStart + begin);
      tensors.set(name, { shape: e.shape, data: decodeFloats(raw, kind, numel(e.shape)) });
    }
    return { tensors, metadata: header.metadata, skipped };
  });
}

/** Only the header (names, dtypes, shapes): cheap even for a 350 MB file. */
export async function readSafetensorsHeader(file: string): Promise<SafetensorsHeader> {
  return withFile(file, (handle, size) => readHeader(file, handle, size));
}

async function withFile<T>(file: string, use: (handle: fsp.FileHandle, size: number) => Promise<T>): Promise<T> {
  let opened: { handle: fsp.FileHandle; size: number };
  try {
    opened = await openRegularFile(file);
  } catch (err) {
    throw new Error(
      `${file}: ${err instanceof UnreadableFileError ? err.problem : `cannot read the file (${(err as Error).message})`}`,
    );
  }
  const { handle, size } = opened;
  try {
    return await use(handle, size);
  } finally {
    await handle.close();
  }
}

async function readHeader(file: string, handle: fsp.FileHandle, size: number): Promise<SafetensorsHeader> {
  const lengthBytes = Buffer.alloc(Math.min(size, 8));
  await readRange(file, handle, lengthBytes, 0);
  const headerLength = parseHeaderLength(file, lengthBytes, size);
  const json = Buffer.alloc(headerLength);
  await readRange(file, handle, json, 8);
  return parseHeaderJson(file, json, size);
}

/** Fill `into` from `position`: one read() may return less than asked (and at most 2 GiB). */
async function readRange(file: string, handle: fsp.FileHandle, into: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < into.byteLength) {
    const want = Math.min(into.byteLength - done, MAX_READ_BYTES);
    const { bytesRead } = await handle.read(into, done, want, position + done);
    if (bytesRead === 0)
      throw new Error(`${file}: file ended at byte ${position + done} while reading (was it truncated?)`);
    done += bytesRead;
  }
}

/** Validate the leading u64 (from the file's first bytes) before anything trusts it. */
function parseHeaderLength(file: string, firstBytes: Buffer, fileSize: number): number {
  if (fileSize < 8) {
    throw new Error(`${file}: file is ${fileSize} bytes, too short to be safetensors (needs an 8-byte header length)`);
  }
  const declared = firstBytes.readBigUInt64LE(0);
  if (declared > BigInt(fileSize - 8)) {
    throw new Error(`${file}: header length ${declared} is beyond the end of the file (${fileSize} bytes)`);
  }
  const headerLength = Number(declared);
  if (headerLength > MAX_HEADER_BYTES) {
    throw new Error(`${file}: header length ${headerLength} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  }
  if (headerLength < 2) throw new Error(`${file}: header length ${headerLength} is too small for a JSON object`);
  return headerLength;
}

function parseHeaderJson(file: string, json: Buffer, fileSize: number): SafetensorsHeader {
  const dataStart = 8 + json.length;
  const dataLength = fileSize - dataStart;
  let parsed: unknown;
  try {
    parsed = JSON.parse(json.toString('utf8'));
  } catch (err) {
    throw new Error(`${file}: header is not valid JSON (${(err as Error).message})`);
  }
  if (!isPlainObject(parsed)) throw new Error(`${file}: header is not a JSON object`);

  const metadata: Record<string, string> = {};
  const entries = new Map<string, SafetensorsEntry>();
  for (const [name, value] of Object.entries(parsed)) {
    if (name === '__metadata__') {
      if (!isPlainObject(value)) throw new Error(`${file}: __metadata__ is not an object`);
      for (const [k, v] of Object.entries(value)) {
        if (typeof v !== 'string') throw new Error(`${file}: __metadata__ value "${k}" is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    entries.set(name, parseEntry(file, name, value, dataLength));
  }
  checkNoOverlap(file, entries);
  return { entries, metadata, dataStart };
}

function parseEntry(file: string, name: string, value: unknown, dataLength: number): SafetensorsEntry {
  const where = `${file}: tensor "${name}"`;
  if (!isPlainObject(value)) throw new Error(`${where}: header entry is not an object`);
  const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
  if (typeof dtype !== 'string' || !(dtype in ITEM_SIZE)) {
    throw new Error(`${where}: unknown dtype ${JSON.stringify(dtype)}`);
  }
  if (!Array.isArray(shape) || !shape.every(isNonNegativeInt)) {
    throw new Error(`${where}: shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegativeInt)) {
    throw new Error(`${where}: data_offsets ${JSON.stringify(offsets)} is not a pair of non-negative integers`);
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end || end > dataLength) {
    throw new Error(`${where}: data_offsets [${begin}, ${end}] are outside the data section (${dataLength} bytes)`);
  }
  const expected = numel(shape) * ITEM_SIZE[dtype];
  if (end - begin !== expected) {
    throw new Error(
      `${where}: data_offsets span ${end - begin} bytes but ${dtype} shape [${shape.join(', ')}] needs ${expected}`,
    );
  }
  return { dtype, shape: shape as number[], dataOffsets: [begin, end] };
}

function checkNoOverlap(file: string, entries: Map<string, SafetensorsEntry>): void {
  const sorted = [...entries].filter(([, e]) => e.dataOffsets[1] > e.dataOffsets[0]);
  sorted.sort((a, b) => a[1].dataOffsets[0] - b[1].dataOffsets[0]);
  for (let i = 1; i < sorted.length; i++) {
    const [prevName, prev] = sorted[i - 1];
    const [name, cur] = sorted[i];
    if (cur.dataOffsets[0] < prev.dataOffsets[1]) {
      throw new Error(`${file}: tensors "${prevName}" and "${name}" overlap in the data section`);
    }
  }
}

/**
 * Write float32 tensors. The header is padded with spaces so the data section starts 8-byte aligned
 * (readers can then view it without copying). Written to a temp file in the same folder and renamed,
 * so a crash never leaves a truncated model where a good one was.
 */
export async function writeSafetensors(
  file: string,
  tensors: Map<string, Tensor>,
  metadata?: Record<string, string>,
): Promise<void> {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of tensors) {
    if (name === '__metadata__') throw new Error(`${file}: "__metadata__" cannot be used as a tensor name`);
    if (t.data.length !== numel(t.shape)) {
      throw new Error(
        `${file}: tensor "${name}" has ${t.data.length} values but shape [${t.shape.join(', ')}] needs ${numel(t.shape)}`,
      );
    }
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  const jsonBytes = Buffer.byteLength(json, 'utf8');
  json += ' '.repeat((8 - (jsonBytes % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const lengthBytes = Buffer.alloc(8);
  lengthBytes.writeBigUInt64LE(BigInt(headerBytes.length));

  const temp = tempPathFor(file);
  const handle = await fsp.open(temp, 'w');
  try {
    await handle.write(lengthBytes);
    await handle.write(headerBytes);
    for (const t of tensors.values()) {
      await handle.write(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    }
    await handle.sync();
    await handle.close();
    await fsp.rename(temp, file);
  } catch (err) {
    await handle.close().catch(() => undefined);
    await fsp.rm(temp, { force: true });
    throw new Error(`${file}: writing failed (${(err as Error).message})`);
  }
}

let halfTable: Float32Array | undefined;

/** All 65536 half-precision values: a table lookup beats per-element bit twiddling. */
function halfToFloatTable(): Float32Array {
  if (halfTable) return halfTable;
  halfTable = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0) halfTable[h] = sign * mant * 2 ** -24;
    else if (exp === 31) halfTable[h] = mant ? NaN : sign * Infinity;
    else halfTable[h] = sign * (1 + mant / 1024) * 2 ** (exp - 15);
  }
  return halfTable;
}

/** The bytes as a typed-array-ready range: themselves when aligned, else an aligned copy (views cannot start unaligned). */
function aligned(bytes: Uint8Array, itemSize: number): { buffer: ArrayBufferLike; offset: number } {
  if (bytes.byteOffset % itemSize === 0) return { buffer: bytes.buffer, offset: bytes.byteOffset };
  return { buffer: bytes.slice().buffer, offset: 0 };
}

/**
 * Widen `count` little-endian floats to float32 (shared with the npy reader). Aligned F32 input is
 * returned as a view sharing memory with `bytes`: copying a 350 MB checkpoint would double its footprint.
 */
export function decodeFloats(bytes: Uint8Array, kind: FloatKind, count: number): Float32Array {
  const size = FLOAT_ITEM_SIZE[kind];
  if (bytes.byteLength !== count * size) {
    throw new Error(`decodeFloats: ${bytes.byteLength} bytes for ${count} ${kind} values (needs ${count * size})`);
  }
  const { buffer, offset } = aligned(bytes, size);
  switch (kind) {
    case 'f32':
      return new Float32Array(buffer, offset, count);
    case 'f64': {
      const out = new Float32Array(count);
      out.set(new Float64Array(buffer, offset, count));
      return out;
    }
    case 'f16': {
      const table = halfToFloatTable();
      const src = new Uint16Array(buffer, offset, count);
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = table[src[i]];
      return out;
    }
    case 'bf16': {
      // bfloat16 is the top half of a float32's bit pattern.
      const src = new Uint16Array(buffer, offset, count);
      const out = new Float32Array(count);
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < count; i++) bits[i] = src[i] << 16;
      return out;
    }
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isNonNegativeInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}
