/**
 * vitLens/readScalars: one incremental TensorBoard reader per cursor, so each poll of the
 * dashboard carries only new points. Readers nobody polled for a while are dropped (a closed
 * dashboard never says goodbye); asking with a dropped or unknown cursor starts over and says so
 * (`reset`). Reading files is independent of the model, so this never waits on the model queue.
 */
import { randomUUID } from 'crypto';
import * as path from 'path';
import type { ReadScalarsParams, ReadScalarsResult } from '../common/workerRequests';
import { formatProblem, TfEventsFolder } from './tfevents';

interface Reader {
  folder: string;
  events: TfEventsFolder;
  lastUsed: number;
}

export class ScalarsReaders {
  private readonly readers = new Map<string, Reader>();

  constructor(
    private readonly idleMs = 5 * 60_000,
    private readonly maxReaders = 32,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.readers.size;
  }

  async read(params: ReadScalarsParams): Promise<ReadScalarsResult> {
    if (typeof params?.folder !== 'string' || !params.folder)
      throw new Error('readScalars: "folder" must be a folder path');
    if (params.cursor !== undefined && typeof params.cursor !== 'string')
      throw new Error('readScalars: "cursor" must be a string');
    this.dropIdle();
    const folder = path.resolve(params.folder);
    let cursor = params.cursor;
    let reader = cursor === undefined ? undefined : this.readers.get(cursor);
    let reset = false;
    if (!reader || reader.folder !== folder) {
      reset = cursor !== undefined;
      cursor = randomUUID();
      reader = { folder, events: new TfEventsFolder(folder), lastUsed: this.now() };
      this.readers.set(cursor, reader);
      this.evict();
    }
    reader.lastUsed = this.now();
    const r = await reader.events.poll();
    // Group the points by (run, tag), keeping file order within each.
    const groups = new Map<string, ReadScalarsResult['scalars'][number]>();
    for (const s of r.scalars) {
      const key = `${s.run}\u0000${s.tag}`;
      let g = groups.get(key);
      if (!g) groups.set(key, (g = { run: s.run, tag: s.tag, points: [] }));
      g.points.push({ step: s.step, value: s.value, wallTime: s.wallTime });
    }
    return { cursor: cursor!, reset, scalars: [...groups.values()], problems: r.problems.map(formatProblem) };
  }

  private dropIdle(): void {
    const cutoff = this.now() - this.idleMs;
    for (const [cursor, r] of this.readers) if (r.lastUsed < cutoff) this.readers.delete(cursor);
  }

  /** Too many open dashboards (or a client leaking cursors): the least recently used goes. */
  private evict(): void {
    while (this.readers.size > this.maxReaders) {
      let oldest: string | undefined;
      let t = Infinity;
      for (const [cursor, r] of this.readers) {
        if (r.lastUsed < t) {
          t = r.lastUsed;
          oldest = cursor;
        }
      }
      if (oldest === undefined) return;
      this.readers.delete(oldest);
    }
  }
}
