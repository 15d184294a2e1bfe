/**
 * The extension's full copy of what one dashboard source shows. Source events (RunSource,
 * TfEventsSource) update it and come out as deltas for the webview; a webview that was hidden or
 * reloaded gets the whole thing as a snapshot instead, so nothing is lost while it is not there.
 *
 * No `vscode` import: image URIs come from `toSrc`, deltas go to `emit`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { RunInfo, RunReport } from '../../common/workerRequests';
import type {
  DashboardSource,
  HeldOutView,
  HostMessage,
  ReportView,
  RunHeader,
  ScalarSeries,
  SourceView,
} from '../../common/webviewMessages/dashboard';
import { shownStatus } from '../../common/runStatus';
import { thisMachine } from '../runs/runProbes';
import type { RunSourceListener } from './runSource';
import type { TfEventsListener } from './tfeventsSource';

const MAX_PROBLEMS = 50;

export class SourceState {
  readonly view: SourceView;
  private report: RunReport | undefined;
  private reportError: string | undefined;
  private runError: string | undefined;
  private tfError: string | undefined;
  /** Images moved from this panel: original path → where it went. */
  private readonly moves = new Map<string, { to: string; cls: number }>();
  private readonly series = new Map<string, ScalarSeries>();

  constructor(
    id: number,
    source: DashboardSource,
    private readonly toSrc: (file: string) => string,
    private readonly emit: (m: HostMessage) => void,
  ) {
    this.view = {
      id,
      kind: source.kind,
      dir: source.dir,
      name: path.basename(source.dir) || source.dir,
      steps: [],
      epochs: [],
      scalars: [],
      problems: [],
    };
    if (source.kind === 'tfevents') this.view.notice = 'Reading event files…';
  }

  get source(): DashboardSource {
    return { kind: this.view.kind, dir: this.view.dir };
  }

  /** The dataset folder, where thumbnails come from and moves go. */
  get dataset(): string | undefined {
    return this.view.run?.dataset;
  }

  readonly runListener: RunSourceListener = {
    metrics: (steps, epochs, reset) => {
      if (reset) {
        this.view.steps = steps;
        this.view.epochs = epochs;
        this.emit({ type: 'reset', source: this.view });
      } else {
        this.view.steps.push(...steps);
        this.view.epochs.push(...epochs);
        this.emit({ type: 'append', id: this.view.id, steps, epochs });
      }
    },
    runInfo: (info, error) => {
      const lastStep = this.view.steps.at(-1)?.time;
      this.view.run = info
        ? runHeader(info, Math.max(Date.parse(info.updatedAt) || 0, lastStep ? Date.parse(lastStep) || 0 : 0))
        : undefined;
      this.runError = error;
      this.update();
    },
    report: (report, error) => {
      this.report = report;
      this.reportError = error;
      this.update();
    },
    problem: message => this.addProblems([message]),
  };

  readonly tfListener: TfEventsListener = {
    scalars: (scalars, reset) => {
      if (reset) {
        this.series.clear();
        this.view.scalars = [];
      }
      const delta: Extract<HostMessage, { type: 'scalars' }>['scalars'] = [];
      for (const s of scalars) {
        const key = `${s.run}\u0000${s.tag}`;
        let series = this.series.get(key);
        if (!series) {
          series = { run: s.run, tag: s.tag, step: [], value: [], wallTime: [] };
          this.series.set(key, series);
          this.view.scalars.push(series);
        }
        const d = {
          run: s.run,
          tag: s.tag,
          step: s.points.map(p => p.step),
          value: s.points.map(p => p.value),
          wallTime: s.points.map(p => p.wallTime),
        };
        series.step.push(...d.step);
        series.value.push(...d.value);
        series.wallTime.push(...d.wallTime);
        delta.push(d);
      }
      const notice = this.tfNotice();
      if (reset) {
        this.view.notice = notice;
        this.emit({ type: 'reset', source: this.view });
        return;
      }
      if (delta.length) this.emit({ type: 'scalars', id: this.view.id, scalars: delta });
      if (notice !== this.view.notice) this.update();
    },
    problems: problems => this.addProblems(problems),
    error: message => {
      this.tfError = message;
      this.update();
    },
  };

  private tfNotice(): string | undefined {
    if (this.tfError) return `Cannot read the event files: ${this.tfError}. Retrying every second.`;
    if (this.view.scalars.length) return undefined;
    if (!fs.existsSync(this.view.dir)) return `${this.view.dir} does not exist (yet). Watching for it.`;
    return `No TensorBoard event files with scalars in ${this.view.dir} yet (events.out.tfevents.*, searched recursively). Watching; new points appear within a second or two.`;
  }

  private addProblems(problems: string[]): void {
    this.view.problems = [...this.view.problems, ...problems].slice(-MAX_PROBLEMS);
    this.update();
  }

  /** Recompute the small fields and send them. */
  update(): void {
    const v = this.view;
    if (v.kind === 'run') {
      v.report = this.report ? this.reportView(this.report) : undefined;
      v.notice = this.runError ?? this.reportError;
    } else {
      v.notice = this.tfNotice();
    }
    this.emit({ type: 'meta', id: v.id, run: v.run, report: v.report, problems: v.problems, notice: v.notice });
  }

  private reportView(r: RunReport): ReportView {
    const classes = this.view.run?.classes.length ?? Infinity;
    const heldOut: HeldOutView[] = [];
    for (const h of Array.isArray(r.heldOut) ? r.heldOut : []) {
      if (
        typeof h?.file !== 'string' ||
        !Number.isInteger(h.label) ||
        !Number.isInteger(h.predicted) ||
        !Array.isArray(h.probabilities)
      )
        continue;
      if (h.label >= classes || h.predicted >= classes) continue;
      const move = this.moves.get(h.file);
      const file = move?.to ?? h.file;
      heldOut.push({
        file,
        src: this.toSrc(file),
        label: h.label,
        predicted: h.predicted,
        probabilities: h.probabilities.map(Number),
        movedTo: move?.cls,
      });
    }
    return {
      bestEpoch: r.bestEpoch,
      warnings: Array.isArray(r.warnings) ? r.warnings.map(String) : [],
      skipped: Array.isArray(r.skipped) ? r.skipped.length : 0,
      heldOut,
    };
  }

  heldOut(file: string): HeldOutView | undefined {
    return this.view.report?.heldOut.find(h => h.file === file);
  }

  /** Record a move done by the panel (`from` is where the image was); the list shows it at its new place. */
  moved(from: string, to: string, cls: number): void {
    const original = [...this.moves].find(([, m]) => m.to === from)?.[0] ?? from;
    this.moves.set(original, { to, cls });
    this.update();
  }

  /** Undo information for an image at `file`: where it came from. */
  moveOf(file: string): { original: string; cls: number } | undefined {
    for (const [original, m] of this.moves) if (m.to === file) return { original, cls: m.cls };
    return undefined;
  }

  unmoved(original: string): void {
    this.moves.delete(original);
    this.update();
  }

  /** Folders the webview may load images from. */
  imageRoots(): string[] {
    const roots = new Set<string>();
    if (this.dataset) roots.add(this.dataset);
    for (const h of this.view.report?.heldOut ?? [])
      if (!this.dataset || !isInside(h.file, this.dataset)) roots.add(path.dirname(h.file));
    return [...roots];
  }
}

function isInside(file: string, dir: string): boolean {
  const rel = path.relative(dir, file);
  return !!rel && !rel.startsWith('..') && !path.isAbsolute(rel);
}

/** `lastActivity`: ms since the epoch of the run's newest write (decides "on another machine" vs "interrupted", as in the Runs view). */
export function runHeader(info: RunInfo, lastActivity: number, now = Date.now()): RunHeader {
  return {
    status: shownStatus(info, lastActivity, { ...thisMachine(), now }).status,
    reason: info.reason,
    backend: String(info.backend ?? ''),
    mode: info.config?.mode,
    createdAt: info.createdAt,
    updatedAt: info.updatedAt,
    finishedAt: info.finishedAt,
    epoch: info.epoch,
    totalEpochs: info.totalEpochs,
    step: info.step,
    totalSteps: info.totalSteps,
    bestEpoch: info.bestEpoch,
    bestValAcc: info.bestValAcc,
    classes: info.classes.map(String),
    dataset: typeof info.config?.dataset === 'string' ? info.config.dataset : undefined,
  };
}
