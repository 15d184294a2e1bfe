/**
 * Reading a file named by someone else (an image in a downloaded folder, a checkpoint) without
 * trusting what it is: links are followed, but only a regular file is read, never a FIFO (which
 * would block forever), a device such as /dev/zero (endless) or a folder, and never more than the
 * caller's byte cap. The file is opened non-blocking and checked through its descriptor, so it
 * cannot be swapped for something else between the check and the read.
 */
import { constants, promises as fs, Stats } from 'fs';
import { fsPath } from './fileNames';

/** Why a file was not read; `problem` does not repeat the file name (callers prefix it). */
export class UnreadableFileError extends Error {
  constructor(
    readonly problem: string,
    readonly code?: string,
  ) {
    super(problem);
  }
}

export interface ReadLimit {
  maxBytes: number;
  /** The sentence for a file over `maxBytes`, given its size. */
  tooLarge: (size: number) => string;
}

/** Opens `file` for reading if it is a regular file (after links); the handle is the caller's to close. */
export async function openRegularFile(file: string): Promise<{ handle: fs.FileHandle; size: number }> {
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(fsPath(file), constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UnreadableFileError(
      code === 'ENOENT'
        ? 'file not found'
        : code === 'EISDIR'
          ? 'is a folder, not a file'
          : `cannot read file (${code ?? (e as Error).message})`,
      code,
    );
  }
  const st = await handle.stat().catch(async (e: Error) => {
    await handle.close();
    throw new UnreadableFileError(`cannot read file (${e.message})`);
  });
  if (!st.isFile()) {
    await handle.close();
    throw new UnreadableFileError(
      st.isDirectory()
        ? 'is a folder, not a file'
        : `is ${fileKind(st)}, not a regular file; only regular files are read`,
      'ENOTREG',
    );
  }
  return { handle, size: st.size };
}

/** The whole of a regular file, refused unread when it is larger than `limit.maxBytes`. */
export async function readRegularFile(file: string, limit: ReadLimit): Promise<Buffer> {
  const { handle, size } = await openRegularFile(file);
  try {
    if (size > limit.maxBytes) throw new UnreadableFileError(limit.tooLarge(size), 'ETOOBIG');
    return await readRange(handle, 0, size);
  } finally {
    await handle.close();
  }
}

/** Config and label files are a few kB; anything past this is not one. */
export const MAX_CONFIG_FILE_BYTES = 16 << 20;

/**
 * A model's own file (ONNX graph, config.json, labels) as a regular file of at most `maxBytes`; the
 * error names the file. ENOENT is passed through as the error's `code` for callers with a default.
 */
export async function readModelFile(file: string, maxBytes: number, what: string): Promise<Buffer> {
  try {
    return await readRegularFile(file, {
      maxBytes,
      tooLarge: size => `${formatBytes(size)}, more than ${what} can be (at most ${formatBytes(maxBytes)}); not read`,
    });
  } catch (e) {
    if (e instanceof UnreadableFileError) throw Object.assign(new Error(`${file}: ${e.problem}`), { code: e.code });
    throw e;
  }
}

/** Up to `length` bytes from `position` (fewer at the end of the file). */
export async function readRange(handle: fs.FileHandle, position: number, length: number): Promise<Buffer> {
  const out = Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await handle.read(out, done, length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done === length ? out : out.subarray(0, done);
}

/** What a file that is not a regular file is, for messages. */
export function fileKind(st: Stats): string {
  if (st.isDirectory()) return 'a folder';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  if (st.isSocket()) return 'a socket';
  return 'a special file';
}

/** Bytes in a human unit, for messages. */
export function formatBytes(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} kB`;
  return `${n} bytes`;
}
