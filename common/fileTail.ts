/**
 * Reading a file that grows at its end (metrics.jsonl of a run, TensorBoard event files), a piece
 * per poll: the dashboard's run source (extension/dashboard/runSource.ts) and the event-file watcher
 * (server/tfevents/watcher.ts). The file system comes in as `open` (Node's `fs.promises.open(file, 'r')`
 * fits), so this stays pure.
 */

/** What the tail needs of an open file: Node's `FileHandle`. */
export interface TailHandle {
  stat(): Promise<{ size: number; ino: number }>;
  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  close(): Promise<void>;
}

export interface TailChunk {
  /** The bytes from `position` (the offset before this read) on. */
  bytes: Uint8Array;
  position: number;
  /** The file shrank or was replaced (another inode) since the last read: it is read again from the start. */
  restarted: boolean;
  /** The file's size at the last read, and now. */
  previousSize: number;
  size: number;
}

export class FileTail {
  /**
   * The first byte not consumed. A read moves it to the end of what it returned; the caller may set
   * it back (an incomplete record is read again next time) or past the end (a record being skipped;
   * Infinity: read nothing more until the file starts over).
   */
  offset = 0;
  private size = 0;
  private ino = -1;

  /** @param maxRead most bytes per read, so a huge backlog does not block the caller for long. */
  constructor(
    private readonly open: () => Promise<TailHandle>,
    private readonly maxRead = Number.POSITIVE_INFINITY,
  ) {}

  /** Whether the file has been read since the start (or the last `forget`). */
  get seen(): boolean {
    return this.ino !== -1;
  }

  /** Start over, as if the file had never been read (it was deleted). */
  forget(): void {
    this.offset = 0;
    this.size = 0;
    this.ino = -1;
  }

  /** The bytes added since the last read (empty when none). Errors from `open` and the reads propagate. */
  async read(): Promise<TailChunk> {
    const fh = await this.open();
    try {
      const st = await fh.stat();
      const previousSize = this.size;
      const restarted = this.seen && (st.ino !== this.ino || st.size < this.size);
      if (restarted) this.offset = 0;
      this.ino = st.ino;
      this.size = st.size;
      const position = this.offset;
      if (st.size <= position) return { bytes: new Uint8Array(0), position, restarted, previousSize, size: st.size };
      const len = Math.min(st.size - position, this.maxRead);
      const bytes = new Uint8Array(len);
      let got = 0;
      while (got < len) {
        const { bytesRead } = await fh.read(bytes, got, len - got, position + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      this.offset = position + got;
      return { bytes: bytes.subarray(0, got), position, restarted, previousSize, size: st.size };
    } finally {
      await fh.close();
    }
  }
}
