/**
 * Tails one run folder (README, "Run directory format") for the dashboard.
 *
 * metrics.jsonl is read incrementally (common/fileTail.ts, shared with the TensorBoard watcher); a
 * half-written last line is kept (as bytes, so a split UTF-8 character survives) until its newline
 * arrives. A file that shrank or was replaced (a resume rewrites it atomically, dropping lines after
 * the checkpoint) is read again from the start and reported as a reset. run.json and report.json
 * are re-read when their size, mtime or inode change. `fs.watch` on the folder makes updates
 * immediate; a poll every second covers file systems where it does not fire (network mounts,
 * containers), so new points show within the 2 s the dashboard promises.
 *
 * No `vscode` import: the unit tests drive it directly.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FileTail } from '../../common/fileTail';
import type { EpochMetrics, RunInfo, RunReport, StepMetrics } from '../../common/workerRequests';

export interface RunSourceListener {
  /** New metrics lines; `reset`: forget everything received before (the file started over). */
  metrics(steps: StepMetrics[], epochs: EpochMetrics[], reset: boolean): void;
  /** run.json changed (undefined with an error when missing or corrupt). */
  runInfo(info: RunInfo | undefined, error?: string): void;
  /** report.json changed (undefined when absent: no epoch finished yet; error when corrupt). */
  report(report: RunReport | undefined, error?: string): void;
  /** A corrupt metrics line and the like; the source keeps going. */
  problem(message: string): void;
}

interface FileKey {
  ino: number;
  size: number;
  mtimeMs: number;
}

const POLL_MS = 1000;
/** A burst of fs.watch events becomes one read. */
const WATCH_DEBOUNCE_MS = 50;

export class RunSource {
  private readonly metrics: FileTail;
  private partial: Buffer = Buffer.alloc(0);
  private lineNo = 0;
  private runKey: string | undefined;
  private reportKey: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private watcher: fs.FSWatcher | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;
  private again = false;
  private started = false;
  private disposed = false;

  constructor(
    readonly dir: string,
    private readonly listener: RunSourceListener,
    private readonly pollMs = POLL_MS,
  ) {
    this.metrics = new FileTail(() => fs.promises.open(path.join(dir, 'metrics.jsonl'), 'r'));
  }

  /** First read right away, then watch and poll. */
  start(): void {
    this.started = true;
    void this.poll();
    this.timer = setInterval(() => void this.poll(), this.pollMs);
    this.watch();
  }

  private watch(): void {
    if (this.watcher || this.disposed) return;
    try {
      this.watcher = fs.watch(this.dir, () => {
        clearTimeout(this.debounce);
        this.debounce = setTimeout(() => void this.poll(), WATCH_DEBOUNCE_MS);
      });
      // The folder was deleted or the watch broke: the poll carries on and re-arms it.
      this.watcher.on('error', () => {
        this.watcher?.close();
        this.watcher = undefined;
      });
    } catch {
      /* not there yet: the poll retries */
    }
  }

  /** One read of everything that changed. Concurrent calls coalesce into at most one more read. */
  poll(): Promise<void> {
    if (this.polling) {
      this.again = true;
      return this.polling;
    }
    this.polling = (async () => {
      do {
        this.again = false;
        await this.readRunJson();
        await this.readMetrics();
        await this.readReport();
      } while (this.again && !this.disposed);
    })().finally(() => {
      this.polling = undefined;
    });
    if (this.started && !this.watcher) this.watch();
    return this.polling;
  }

  private async readRunJson(): Promise<void> {
    const file = path.join(this.dir, 'run.json');
    const st = await stat(file);
    const dirExists = st ? true : !!(await stat(this.dir));
    const key = st ? keyOf(st) : dirExists ? 'no run.json' : 'no folder';
    if (key === this.runKey || this.disposed) return;
    this.runKey = key;
    if (!st) {
      this.listener.runInfo(
        undefined,
        dirExists
          ? `${this.dir} is not a run folder: it has no run.json (yet).`
          : `The run folder ${this.dir} does not exist.`,
      );
      return;
    }
    try {
      const info = JSON.parse(await fs.promises.readFile(file, 'utf8')) as RunInfo;
      if (typeof info !== 'object' || info === null || !Array.isArray(info.classes))
        throw new Error('not a run.json (no classes)');
      this.listener.runInfo(info);
    } catch (e) {
      this.listener.runInfo(undefined, `${file} is corrupt: ${(e as Error).message}`);
    }
  }

  private async readReport(): Promise<void> {
    const file = path.join(this.dir, 'report.json');
    const st = await stat(file);
    const key = st ? keyOf(st) : 'missing';
    if (key === this.reportKey || this.disposed) return;
    this.reportKey = key;
    if (!st) return this.listener.report(undefined);
    try {
      const report = JSON.parse(await fs.promises.readFile(file, 'utf8')) as RunReport;
      if (typeof report !== 'object' || report === null) throw new Error('not an object');
      this.listener.report(report);
    } catch (e) {
      this.listener.report(undefined, `${file} is corrupt: ${(e as Error).message}`);
    }
  }

  private async readMetrics(): Promise<void> {
    const file = path.join(this.dir, 'metrics.jsonl');
    let chunk;
    try {
      chunk = await this.metrics.read();
    } catch {
      // Not written yet, or deleted: if we had read some, the run started over.
      if (this.metrics.seen) {
        this.metrics.forget();
        this.partial = Buffer.alloc(0);
        this.lineNo = 0;
        this.restart([], []);
      }
      return;
    }
    // An atomic rewrite (new inode) or a truncation.
    if (chunk.restarted) {
      this.partial = Buffer.alloc(0);
      this.lineNo = 0;
    }
    if (!chunk.bytes.length) {
      if (chunk.restarted) this.restart([], []);
      return;
    }
    const buf = Buffer.from(chunk.bytes.buffer, chunk.bytes.byteOffset, chunk.bytes.byteLength);
    const data = this.partial.length ? Buffer.concat([this.partial, buf]) : buf;
    const end = data.lastIndexOf(0x0a);
    // Keep a copy: `data` may be a view on the chunk's bytes.
    this.partial = Buffer.from(data.subarray(end + 1));
    const steps: StepMetrics[] = [];
    const epochs: EpochMetrics[] = [];
    if (end >= 0) {
      for (const line of data.subarray(0, end).toString('utf8').split('\n')) {
        this.lineNo++;
        if (!line.trim()) continue;
        const m = parseMetricsLine(line);
        if (m?.type === 'step') steps.push(m);
        else if (m?.type === 'epoch') epochs.push(m);
        else this.listener.problem(`${file}, line ${this.lineNo}: not a metrics line; skipped`);
      }
    }
    if (this.disposed) return;
    if (chunk.restarted) this.restart(steps, epochs);
    else if (steps.length || epochs.length) this.listener.metrics(steps, epochs, false);
  }

  private restart(steps: StepMetrics[], epochs: EpochMetrics[]): void {
    if (!this.disposed) this.listener.metrics(steps, epochs, true);
  }

  dispose(): void {
    this.disposed = true;
    clearInterval(this.timer);
    clearTimeout(this.debounce);
    this.watcher?.close();
    this.watcher = undefined;
  }
}

const isNum = (v: unknown) => typeof v === 'number' && Number.isFinite(v);

/** A step or epoch line with the fields the charts use checked; anything else is undefined. */
export function parseMetricsLine(line: string): StepMetrics | EpochMetrics | undefined {
  let m: unknown;
  try {
    m = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof m !== 'object' || m === null) return undefined;
  const r = m as Record<string, unknown>;
  if (!Number.isInteger(r.epoch) || !Number.isInteger(r.step) || typeof r.time !== 'string') return undefined;
  // A NaN loss is written as null by JSON.stringify: keep the line, the charts show a gap.
  const numOrNull = (v: unknown) => v === null || v === undefined || isNum(v);
  if (r.type === 'step' && numOrNull(r.loss) && numOrNull(r.lr)) return m as StepMetrics;
  if (r.type === 'epoch' && numOrNull(r.trainLoss)) {
    if (
      r.confusion !== undefined &&
      !(Array.isArray(r.confusion) && r.confusion.every(row => Array.isArray(row) && row.every(isNum)))
    )
      delete r.confusion;
    return m as EpochMetrics;
  }
  return undefined;
}

async function stat(file: string): Promise<fs.Stats | undefined> {
  try {
    return await fs.promises.stat(file);
  } catch {
    return undefined;
  }
}

function keyOf(st: FileKey): string {
  return `${st.ino}:${st.size}:${st.mtimeMs}`;
}
