/**
 * ONNX external data (weights kept in files beside the .onnx), read safely: a model folder comes
 * from a cloned repo or an archive, so `location` may be a symlink to any file on the machine or a
 * FIFO that never answers. Links are resolved and the target must stay inside the model folder, be a
 * regular file, and hold the byte range the tensor asks for; only that range is read.
 */
import * as fs from 'fs';
import * as path from 'path';
import { fileKind } from '../util/regularFile';

export interface ExternalDataRef {
  tensor: string;
  location: string | undefined;
  /** The `offset` and `length` entries as stored (decimal strings), when present. */
  offset?: string;
  length?: string;
}

export class ExternalDataReader {
  private folderReal: string | undefined;

  /**
   * @param modelDir the folder of the .onnx file.
   * @param where what every message starts with (the model file, or "ONNX model").
   */
  constructor(
    private readonly modelDir: string,
    private readonly where: string,
  ) {}

  read(ref: ExternalDataRef): Buffer {
    const { tensor, location } = ref;
    if (!location) throw this.error(`tensor "${tensor}" is marked as external data but names no file`);
    const file = path.resolve(this.modelDir, location);
    if (!inside(path.resolve(this.modelDir), file)) {
      throw this.error(
        `external data "${location}" of tensor "${tensor}" lies outside the model folder ${this.modelDir}`,
      );
    }
    let real: string;
    try {
      this.folderReal ??= fs.realpathSync(this.modelDir);
      real = fs.realpathSync(file);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const problem = code === 'ENOENT' ? 'does not exist' : `cannot be read (${code ?? (e as Error).message})`;
      throw this.error(`its weights are in external data, but ${file} (tensor "${tensor}") ${problem}`);
    }
    if (!inside(this.folderReal, real)) {
      throw this.error(
        `external data ${file} of tensor "${tensor}" is a link to ${real}, outside the model folder ${this.folderReal}; refusing to read it`,
      );
    }
    let fd: number;
    try {
      // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
      // O_NOFOLLOW: `real` has no links left; one put there since is not followed.
      fd = fs.openSync(real, fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0) | (fs.constants.O_NOFOLLOW ?? 0));
    } catch (e) {
      throw this.error(
        `external data ${file} (tensor "${tensor}") cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
      );
    }
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile())
        throw this.error(`external data ${file} of tensor "${tensor}" is not a regular file (${fileKind(st)})`);
      const offset = byteCount(ref.offset, 0);
      const length = offset === undefined ? undefined : byteCount(ref.length, st.size - offset);
      if (offset === undefined || length === undefined) {
        throw this.error(
          `tensor "${tensor}" has an invalid external data offset "${ref.offset}" or length "${ref.length}"`,
        );
      }
      if (length < 0 || offset + length > st.size) {
        throw this.error(
          `tensor "${tensor}" needs bytes ${offset}–${offset + Math.max(0, length)} of ${file}, but it has only ${st.size} bytes`,
        );
      }
      const out = Buffer.allocUnsafe(length);
      for (let done = 0; done < length;) {
        const n = fs.readSync(fd, out, done, length - done, offset + done);
        if (n === 0) throw this.error(`${file} (tensor "${tensor}") ended early while being read`);
        done += n;
      }
      return out;
    } finally {
      fs.closeSync(fd);
    }
  }

  private error(problem: string): Error {
    return new Error(`${this.where}: ${problem}`);
  }
}

function inside(folder: string, file: string): boolean {
  const rel = path.relative(folder, file);
  return !rel.startsWith('..') && !path.isAbsolute(rel);
}

/** A non-negative integer from an external data entry; `fallback` when absent, undefined when malformed. */
function byteCount(text: string | undefined, fallback: number): number | undefined {
  if (text === undefined) return fallback;
  const n = Number(text);
  return /^\d+$/.test(text.trim()) && Number.isSafeInteger(n) ? n : undefined;
}
