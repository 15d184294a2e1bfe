/**
 * The runs under `vitLens.runsDir`, kept current. File events (run.json is rewritten at every epoch
 * and at the end) trigger a debounced re-read; a timer catches what events cannot: a trainer that
 * dies without a last write (→ interrupted), steps within an epoch (metrics.jsonl on a network
 * share whose events never arrive), and a runs folder that does not exist yet.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { expandHome } from '../config';
import { discoverRuns, RunEntry } from './runFolders';
import { thisMachine } from './runProbes';
import type { Started } from './trainerProcess';

const DEBOUNCE_MS = 250;
const TICK_MS = 3000;
/** With nothing running, the timer only re-reads every this many ticks. */
const IDLE_TICKS = 10;

export function resolveRunsDir(fallback: vscode.Uri): string {
  const setting =
    vscode.workspace.getConfiguration('vitLens').get<string>('runsDir', '.vit-lens/runs').trim() || '.vit-lens/runs';
  const expanded = expandHome(setting);
  if (path.isAbsolute(expanded)) return expanded;
  const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
  // No folder open: runs go to the extension's global storage rather than the process's cwd.
  return path.join(folder ?? path.join(fallback.fsPath, 'runs'), expanded);
}

export class RunStore implements vscode.Disposable {
  private runs: RunEntry[] = [];
  private error: string | undefined;
  private readonly changed = new vscode.EventEmitter<void>();
  readonly onDidChange = this.changed.event;
  private watchers: vscode.Disposable[] = [];
  /** False while the runs folder does not exist (nothing to watch yet). */
  private watching = false;
  private readonly timer: NodeJS.Timeout;
  private ticks = 0;
  private debounce: NodeJS.Timeout | undefined;
  private reading: Promise<void> | undefined;
  private again = false;
  private readonly starting = new Map<string, number>();
  private readonly exited = new Set<number>();
  private dir: string;

  constructor(
    private readonly storage: vscode.Uri,
    private readonly log: vscode.LogOutputChannel,
  ) {
    this.dir = resolveRunsDir(storage);
    this.watch();
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.timer.unref?.();
    this.refresh();
  }

  get runsDir(): string {
    return this.dir;
  }

  get entries(): readonly RunEntry[] {
    return this.runs;
  }

  /** Why the runs folder could not be listed, if it could not. */
  get listError(): string | undefined {
    return this.error;
  }

  find(dir: string): RunEntry | undefined {
    return this.runs.find(r => r.dir === dir);
  }

  /** The setting changed: look somewhere else. */
  reconfigure(): void {
    const dir = resolveRunsDir(this.storage);
    if (dir === this.dir) return;
    this.dir = dir;
    this.watch();
    this.refresh(true);
  }

  startingPid(dir: string): number | undefined {
    return this.starting.get(dir);
  }

  /** A trainer this window started: shown as "starting" until its run.json appears, and known dead as soon as it exits. */
  track(dir: string, started: Started): void {
    this.starting.set(dir, started.pid);
    if (!this.watching) this.watch();
    void started.exit.then(() => {
      this.exited.add(started.pid);
      this.refresh(true);
    });
    this.refresh(true);
  }

  /** Re-read soon (debounced), or now. */
  refresh(now = false): void {
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = setTimeout(() => void this.read(), now ? 0 : DEBOUNCE_MS);
  }

  /** Resolves after a re-read that started after this call. */
  async reload(): Promise<void> {
    if (this.reading) {
      this.again = true;
      await this.reading;
    }
    await this.read();
  }

  private async read(): Promise<void> {
    if (this.reading) {
      this.again = true;
      return this.reading;
    }
    this.reading = (async () => {
      try {
        this.runs = await discoverRuns(this.dir, {
          ...thisMachine(),
          now: Date.now(),
          exited: this.exited,
          starting: this.starting,
        });
        this.error = undefined;
      } catch (e) {
        this.runs = [];
        this.error = (e as Error).message;
        this.log.warn(`Runs view: ${this.error}`);
      }
      for (const [dir] of this.starting) if (this.runs.some(r => r.dir === dir && r.info)) this.starting.delete(dir);
      this.changed.fire();
    })().finally(() => (this.reading = undefined));
    await this.reading;
    if (this.again) {
      this.again = false;
      await this.read();
    }
  }

  private tick(): void {
    if (!this.watching && fs.existsSync(this.dir)) {
      this.watch();
      return this.refresh(true);
    }
    const busy = this.runs.some(r => r.status === 'running' || r.status === 'starting');
    if (busy || ++this.ticks % IDLE_TICKS === 0) this.refresh(true);
  }

  private watch(): void {
    for (const w of this.watchers.splice(0)) w.dispose();
    this.watching = fs.existsSync(this.dir);
    // Until the folder exists the timer looks for it. A RelativePattern on a folder outside the
    // workspace gets its own watcher from VS Code.
    if (!this.watching) return;
    const w = vscode.workspace.createFileSystemWatcher(
      new vscode.RelativePattern(vscode.Uri.file(this.dir), '{*,*/run.json,*/metrics.jsonl}'),
    );
    const on = () => this.refresh();
    this.watchers.push(w, w.onDidCreate(on), w.onDidChange(on), w.onDidDelete(on));
  }

  dispose(): void {
    clearInterval(this.timer);
    if (this.debounce) clearTimeout(this.debounce);
    for (const w of this.watchers.splice(0)) w.dispose();
    this.changed.dispose();
  }
}
