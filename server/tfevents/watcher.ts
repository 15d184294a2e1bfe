/**
 * Incremental reader for a folder of TensorBoard event files (PyTorch SummaryWriter, timm, HF Trainer,
 * torchrun ranks, tf.summary ...). Every `events.out.tfevents.*` file under the root is found
 * recursively; a file's folder relative to the root is its run name ("." for the root itself).
 * `poll()` returns only the scalars that appeared since the previous poll: each file is re-read from
 * the first byte not yet consumed, so growing files and half-written tail records are handled.
 */
import { promises as fsp } from 'fs';
import * as path from 'path';
import { FileTail } from '../../common/fileTail';
import { EventDecoder, Scalar } from './events';
import { scanRecords } from './tfrecord';

export interface RunScalar extends Scalar {
  /** Folder of the events file relative to the root, with '/' separators; '.' for the root. */
  run: string;
  /** Path of the events file relative to the root, with '/' separators. */
  file: string;
}

export interface TfEventsProblem {
  /** Absolute path of the file. */
  file: string;
  /** Byte offset of the bad record, when the problem is about one record. */
  offset?: number;
  message: string;
}

export interface PollResult {
  scalars: RunScalar[];
  /** New problems found by this poll (each is reported once). */
  problems: TfEventsProblem[];
}

export interface Disposable {
  dispose(): void;
}

const EVENTS_FILE = /^events\.out\.tfevents\./;
/** Read at most this much of a file per poll, so a huge backlog does not block the editor for long. */
const MAX_READ = 64 << 20;
/** A TFRecord's length, length CRC and data CRC. */
const RECORD_FRAMING = 16;

interface FileState {
  abs: string;
  rel: string;
  run: string;
  /**
   * Its offset is a record boundary: the first byte not yet consumed; past the end while a too-large
   * record is being skipped; Infinity once the framing is broken (not read further unless the file starts over).
   */
  tail: FileTail;
  decoder: EventDecoder;
  fileVersion?: string;
}

export function formatProblem(p: TfEventsProblem): string {
  return p.offset === undefined ? `${p.file}: ${p.message}` : `${p.file} at byte ${p.offset}: ${p.message}`;
}

export class TfEventsFolder {
  readonly root: string;
  private readonly files = new Map<string, FileState>();
  private polling: Promise<PollResult> | undefined;

  constructor(root: string) {
    this.root = path.resolve(root);
  }

  /** Run names seen so far, sorted. */
  get runs(): string[] {
    return [...new Set([...this.files.values()].map(f => f.run))].sort();
  }

  /**
   * New scalars since the last poll, in file order per file (files sorted by path). Never throws:
   * unreadable files and corrupt records are returned as problems naming the file and offset.
   * Concurrent calls share one read.
   */
  poll(): Promise<PollResult> {
    if (!this.polling) {
      this.polling = this.pollOnce().finally(() => {
        this.polling = undefined;
      });
    }
    return this.polling;
  }

  private async pollOnce(): Promise<PollResult> {
    const scalars: RunScalar[] = [];
    const problems: TfEventsProblem[] = [];
    for (const abs of await this.findFiles(this.root, problems)) {
      let st = this.files.get(abs);
      if (!st) {
        const rel = path.relative(this.root, abs).split(path.sep).join('/');
        const dir = path.posix.dirname(rel);
        st = {
          abs,
          rel,
          run: dir,
          tail: new FileTail(() => fsp.open(abs, 'r'), MAX_READ),
          decoder: new EventDecoder(),
        };
        this.files.set(abs, st);
      }
      try {
        await this.readFile(st, scalars, problems);
      } catch (e) {
        problems.push({ file: abs, message: `cannot read: ${(e as Error).message}` });
      }
    }
    return { scalars, problems };
  }

  private async readFile(st: FileState, out: RunScalar[], problems: TfEventsProblem[]): Promise<void> {
    const chunk = await st.tail.read();
    if (chunk.restarted) {
      // Truncated or replaced by a new writer: start over with fresh state.
      const what =
        chunk.size < chunk.previousSize
          ? `file shrank from ${chunk.previousSize} to ${chunk.size} bytes`
          : 'file was replaced';
      problems.push({ file: st.abs, message: `${what}; reading it again from the start` });
      st.decoder = new EventDecoder();
    }
    if (!chunk.bytes.length) return;
    // A record that cannot fit in one read is skipped (and reported) instead of waited for forever.
    const scan = scanRecords(
      Buffer.from(chunk.bytes.buffer, chunk.bytes.byteOffset, chunk.bytes.byteLength),
      chunk.position,
      MAX_READ - RECORD_FRAMING,
    );
    for (const rec of scan.records) {
      try {
        const ev = st.decoder.decode(rec.data);
        if (ev.fileVersion) st.fileVersion = ev.fileVersion;
        for (const s of ev.scalars) out.push({ ...s, run: st.run, file: st.rel });
      } catch (e) {
        problems.push({
          file: st.abs,
          offset: rec.offset,
          message: `undecodable Event record: ${(e as Error).message}`,
        });
      }
    }
    for (const p of scan.problems) {
      problems.push({
        file: st.abs,
        offset: p.offset,
        message: p.fatal ? `${p.message}; the rest of the file is skipped` : p.message,
      });
    }
    st.tail.offset = scan.stopped ? Number.POSITIVE_INFINITY : scan.nextOffset;
  }

  private async findFiles(dir: string, problems: TfEventsProblem[]): Promise<string[]> {
    let entries;
    try {
      entries = await fsp.readdir(dir, { withFileTypes: true });
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      // A missing root is normal before training starts writing; anything else is worth saying.
      if (!(dir === this.root && err.code === 'ENOENT'))
        problems.push({ file: dir, message: `cannot list folder: ${err.message}` });
      return [];
    }
    const found: string[] = [];
    for (const ent of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      const abs = path.join(dir, ent.name);
      if (ent.isDirectory()) found.push(...(await this.findFiles(abs, problems)));
      else if (ent.isFile() && EVENTS_FILE.test(ent.name)) found.push(abs);
    }
    return found;
  }

  /**
   * Polls every `intervalMs` (and once right away) and calls `onScalars` with each non-empty batch;
   * problems go to `onProblems` (default: ignored). Dispose to stop.
   */
  watch(
    onScalars: (scalars: RunScalar[]) => void,
    intervalMs = 1000,
    onProblems?: (problems: TfEventsProblem[]) => void,
  ): Disposable {
    let disposed = false;
    const tick = async () => {
      const r = await this.poll();
      if (disposed) return;
      if (r.scalars.length) onScalars(r.scalars);
      if (r.problems.length && onProblems) onProblems(r.problems);
    };
    const run = () => {
      tick().catch(e => onProblems?.([{ file: this.root, message: String(e) }]));
    };
    run();
    const timer = setInterval(run, intervalMs);
    return {
      dispose() {
        disposed = true;
        clearInterval(timer);
      },
    };
  }
}
