/**
 * Watches a folder of TensorBoard event files through the worker (vitLens/readScalars): the worker
 * owns the protobuf/TFRecord reader and keeps one incremental reader per cursor, so each poll only
 * carries new points. Polls once a second, one request at a time; a failed poll (worker restarting)
 * is reported and retried on the next tick.
 *
 * No `vscode` import: `read` is `ctx.worker.request(ReadScalarsRequest, …)` in the extension and a
 * stub in tests.
 */
import type { ReadScalarsParams, ReadScalarsResult } from '../../common/workerRequests';

export interface TfEventsListener {
  /** New points; `reset`: the reader started over, forget what came before. */
  scalars(scalars: ReadScalarsResult['scalars'], reset: boolean): void;
  problems(problems: string[]): void;
  /** A poll failed (undefined once polls work again). */
  error(message: string | undefined): void;
}

export class TfEventsSource {
  private cursor: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private busy = false;
  private failing = false;
  private disposed = false;

  constructor(
    readonly dir: string,
    private readonly read: (params: ReadScalarsParams) => Promise<ReadScalarsResult>,
    private readonly listener: TfEventsListener,
    private readonly pollMs = 1000,
  ) {}

  start(): void {
    void this.poll();
    this.timer = setInterval(() => void this.poll(), this.pollMs);
  }

  async poll(): Promise<void> {
    if (this.busy || this.disposed) return;
    this.busy = true;
    try {
      const r = await this.read(
        this.cursor === undefined ? { folder: this.dir } : { folder: this.dir, cursor: this.cursor },
      );
      if (this.disposed) return;
      this.cursor = r.cursor;
      if (this.failing) {
        this.failing = false;
        this.listener.error(undefined);
      }
      if (r.scalars.length || r.reset) this.listener.scalars(r.scalars, r.reset);
      if (r.problems.length) this.listener.problems(r.problems);
    } catch (e) {
      if (this.disposed) return;
      this.failing = true;
      this.listener.error(e instanceof Error ? e.message : String(e));
    } finally {
      this.busy = false;
    }
  }

  dispose(): void {
    this.disposed = true;
    clearInterval(this.timer);
  }
}
