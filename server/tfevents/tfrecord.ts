/**
 * TFRecord framing, as written by TensorFlow / tensorboardX / torch.utils.tensorboard:
 *   uint64 length (LE) | uint32 masked CRC32C(length bytes) | data[length] | uint32 masked CRC32C(data)
 * The reader is incremental: it returns every complete record in a buffer and the offset of the first
 * incomplete one, so a file that a live writer is still appending to can be re-read from there.
 */

const HEADER = 12; // length + length CRC
const FOOTER = 4; // data CRC
/** Records longer than this are skipped unread unless the caller allows more (see scanRecords' maxRecord). */
const MAX_RECORD = 1 << 30;

const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

/** CRC32C (Castagnoli), the checksum TFRecord uses. crc32c("123456789") = 0xe3069283. */
export function crc32c(data: Uint8Array, start = 0, end = data.length): number {
  let c = 0xffffffff;
  for (let i = start; i < end; i++) c = TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** TFRecord's masked CRC: rotate right by 15 and add a constant. */
export function maskedCrc32c(data: Uint8Array, start = 0, end = data.length): number {
  const c = crc32c(data, start, end);
  return ((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

/** Frames one record (used by tests and by anything that wants to write event files). */
export function frameRecord(data: Uint8Array): Buffer {
  const out = Buffer.alloc(HEADER + data.length + FOOTER);
  out.writeBigUInt64LE(BigInt(data.length), 0);
  out.writeUInt32LE(maskedCrc32c(out, 0, 8), 8);
  out.set(data, HEADER);
  out.writeUInt32LE(maskedCrc32c(data), HEADER + data.length);
  return out;
}

export interface TfRecord {
  /** Absolute offset of the record's header in the file (base + position in the buffer). */
  offset: number;
  /** The record's payload (a view into the input buffer, not a copy). */
  data: Buffer;
}

export interface TfRecordProblem {
  /** Absolute offset of the bad record's header. */
  offset: number;
  message: string;
  /** True when the framing itself is broken (bad length CRC): nothing after it can be trusted. */
  fatal: boolean;
}

export interface TfRecordScan {
  records: TfRecord[];
  /** Corrupt records that were skipped (data CRC mismatch) or where reading had to stop (length CRC mismatch). */
  problems: TfRecordProblem[];
  /**
   * Absolute offset at which to resume: the first byte not consumed. Equal to base + buf.length when the
   * buffer ended on a record boundary; the start of a partial record when the tail is still being written;
   * the start of the bad header after a fatal problem (so callers can notice it stays stuck there); the
   * end of a record too large to read, which can lie beyond the buffer and beyond the file's end so far.
   */
  nextOffset: number;
  /** True when reading stopped at a header whose length CRC failed (the rest of the buffer was not read). */
  stopped: boolean;
}

/**
 * Splits `buf` (which starts at absolute file offset `base`, a record boundary) into records.
 * Never throws on bad data: a record whose data CRC fails is reported and skipped (its length was
 * verified, so the following records are still aligned); so is a record longer than `maxRecord` bytes
 * (a reader with a memory budget cannot wait for it to fit: it would wait forever), whose bytes are
 * not read at all. A header whose length CRC fails stops reading.
 */
export function scanRecords(buf: Buffer, base = 0, maxRecord = MAX_RECORD): TfRecordScan {
  const records: TfRecord[] = [];
  const problems: TfRecordProblem[] = [];
  let pos = 0;
  while (buf.length - pos >= HEADER) {
    const lenCrc = buf.readUInt32LE(pos + 8);
    if (maskedCrc32c(buf, pos, pos + 8) !== lenCrc) {
      problems.push({ offset: base + pos, message: 'length CRC mismatch (corrupt record header)', fatal: true });
      return { records, problems, nextOffset: base + pos, stopped: true };
    }
    const len = buf.readBigUInt64LE(pos);
    if (len > BigInt(Number.MAX_SAFE_INTEGER)) {
      problems.push({ offset: base + pos, message: `record length ${len} is implausible`, fatal: true });
      return { records, problems, nextOffset: base + pos, stopped: true };
    }
    const n = Number(len);
    if (n > maxRecord) {
      problems.push({
        offset: base + pos,
        message: `record of ${n} bytes is larger than the reader's limit of ${maxRecord} bytes (record skipped)`,
        fatal: false,
      });
      return { records, problems, nextOffset: base + pos + HEADER + n + FOOTER, stopped: false };
    }
    if (buf.length - pos < HEADER + n + FOOTER) break; // partial record: wait for more bytes
    const start = pos + HEADER;
    const dataCrc = buf.readUInt32LE(start + n);
    if (maskedCrc32c(buf, start, start + n) !== dataCrc) {
      problems.push({
        offset: base + pos,
        message: `data CRC mismatch in a ${n}-byte record (record skipped)`,
        fatal: false,
      });
    } else {
      records.push({ offset: base + pos, data: buf.subarray(start, start + n) });
    }
    pos = start + n + FOOTER;
  }
  return { records, problems, nextOffset: base + pos, stopped: false };
}
