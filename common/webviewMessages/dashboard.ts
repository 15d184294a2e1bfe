/**
 * What the training dashboard shows, and the messages between its webview and the extension.
 *
 * Shared by both sides and free of `vscode` and Node imports, so the webview bundle uses the same
 * types and the extension validates with the same code. Everything the webview sends (messages,
 * and the state VS Code hands back after a reload) is untrusted: `parseDashboardMessage` and
 * `parseSavedSources` check every field before the extension acts on it.
 */
import type { EpochMetrics, RunInfo, StepMetrics } from '../runFolder';
import type { ShownStatus } from '../runStatus';
import type { Mode } from '../training';

/** What a dashboard shows: one of our run folders, or a folder of TensorBoard event files. */
export type DashboardSource = { kind: 'run'; dir: string } | { kind: 'tfevents'; dir: string };

/** The part of run.json the header needs (the rest stays in the extension), with the status as shown (common/runStatus.ts). */
export type RunHeader = Pick<
  RunInfo,
  | 'reason'
  | 'createdAt'
  | 'updatedAt'
  | 'finishedAt'
  | 'epoch'
  | 'totalEpochs'
  | 'step'
  | 'totalSteps'
  | 'bestEpoch'
  | 'bestValAcc'
  | 'classes'
> & {
  status: ShownStatus;
  backend: string;
  mode?: Mode;
  dataset?: string;
};

/** A held-out prediction from report.json, with its image as a webview resource. */
export interface HeldOutView {
  /** Where the image is now (after a move, its new place). */
  file: string;
  src: string;
  label: number;
  predicted: number;
  probabilities: number[];
  /** Class index the user moved the image to from this panel (undo moves it back). */
  movedTo?: number;
}

export interface ReportView {
  /** The epoch whose predictions `heldOut` holds (the best one). */
  bestEpoch?: number;
  warnings: string[];
  skipped: number;
  heldOut: HeldOutView[];
}

export interface ScalarSeries {
  /** Event file folder relative to the monitored folder ('.' for the folder itself). */
  run: string;
  tag: string;
  step: number[];
  value: number[];
  /** Seconds since the epoch. */
  wallTime: number[];
}

export interface SourceView {
  /** Index in the panel's source list; messages name sources by it. */
  id: number;
  kind: DashboardSource['kind'];
  dir: string;
  /** Short name for legends: the folder's base name. */
  name: string;
  run?: RunHeader;
  steps: StepMetrics[];
  epochs: EpochMetrics[];
  report?: ReportView;
  scalars: ScalarSeries[];
  /** Non-fatal problems (a corrupt line, an unreadable event file), newest last. */
  problems: string[];
  /** Why there is nothing (yet) to show: missing or corrupt folder, no event files yet. */
  notice?: string;
}

/** Extension → webview. A snapshot after every `ready`, deltas after that. */
export type HostMessage =
  | { type: 'snapshot'; sources: SourceView[] }
  /** New metrics lines (appended to the source's lists). */
  | { type: 'append'; id: number; steps: StepMetrics[]; epochs: EpochMetrics[] }
  /** New TensorBoard points, merged into series by (run, tag). */
  | {
      type: 'scalars';
      id: number;
      scalars: { run: string; tag: string; step: number[]; value: number[]; wallTime: number[] }[];
    }
  /** Replaces the small fields of a source. */
  | { type: 'meta'; id: number; run?: RunHeader; report?: ReportView; problems: string[]; notice?: string }
  /** The source started over (metrics.jsonl truncated by a resume, the worker restarted). */
  | { type: 'reset'; source: SourceView };

/** Webview → extension. Images are named by path and must be held-out images of that source. */
export type WebviewMessage =
  | { type: 'ready' }
  | { type: 'openImage'; id: number; file: string }
  | { type: 'moveImage'; id: number; file: string }
  | { type: 'undoMove'; id: number; file: string }
  | { type: 'revealRun'; id: number }
  /** ViT: Audit Dataset on the run's dataset folder. */
  | { type: 'auditDataset'; id: number };

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isId = (v: unknown, count: number): v is number =>
  Number.isInteger(v) && (v as number) >= 0 && (v as number) < count;

/**
 * A message from the webview if it is well-formed, else undefined. `hasImage` says whether a path
 * is one of that source's held-out images (so a webview cannot open or move any other file).
 */
export function parseDashboardMessage(
  v: unknown,
  sourceCount: number,
  hasImage: (id: number, file: string) => boolean,
): WebviewMessage | undefined {
  if (!isObject(v)) return undefined;
  switch (v.type) {
    case 'ready':
      return { type: 'ready' };
    case 'revealRun':
    case 'auditDataset':
      return isId(v.id, sourceCount) ? { type: v.type, id: v.id } : undefined;
    case 'openImage':
    case 'moveImage':
    case 'undoMove':
      if (!isId(v.id, sourceCount) || typeof v.file !== 'string' || v.file.length > 4096 || !hasImage(v.id, v.file))
        return undefined;
      return { type: v.type, id: v.id, file: v.file };
    default:
      return undefined;
  }
}

/** The sources saved in the webview state (for the serializer); malformed entries are dropped. */
export function parseSavedSources(saved: unknown, isAbsolute: (p: string) => boolean): DashboardSource[] {
  if (!isObject(saved) || !Array.isArray(saved.sources)) return [];
  const out: DashboardSource[] = [];
  for (const s of saved.sources.slice(0, 16)) {
    if (!isObject(s) || (s.kind !== 'run' && s.kind !== 'tfevents') || typeof s.dir !== 'string' || !isAbsolute(s.dir))
      continue;
    out.push({ kind: s.kind, dir: s.dir });
  }
  return out;
}
