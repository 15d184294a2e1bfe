/**
 * Messages between the audit panel (webview) and the extension, and the checks on what the webview
 * sends. Free of `vscode` imports: the webview bundle and the tests use it too.
 */
import type { AuditKind, AuditResult } from '../workerRequests';

export type AuditTab = 'labelIssues' | 'duplicates' | 'outliers';
export const AUDIT_TABS: readonly AuditTab[] = ['labelIssues', 'duplicates', 'outliers'];

export interface AuditViewData {
  folder: string;
  /** The audit.json shown (kept in the webview state, so a window reload reopens it). */
  file: string;
  model: string;
  images: number;
  classes: string[];
  /** The dataset folder as a webview resource URI; a thumbnail is base + '/' + the encoded relative path. */
  baseUri: string;
  labelIssues: AuditResult['labelIssues'];
  duplicates: AuditResult['duplicates'];
  outliers: AuditResult['outliers'];
  /** What Undo would undo, when there is something. */
  undo?: string;
  /** Ignored items (they stay hidden on re-runs). */
  ignored: number;
}

/** Extension → webview. */
export type HostMessage = { type: 'data'; data: AuditViewData } | { type: 'error'; message: string };

/** Webview → extension. Files are relative to the dataset, '/' separators. */
export type WebviewMessage =
  | { type: 'ready' }
  | { type: 'open'; file: string }
  | { type: 'move'; file: string }
  | { type: 'delete'; file: string }
  | { type: 'ignore'; kind: AuditKind; files: string[] }
  | { type: 'undo' }
  | { type: 'rerun' };

/** Orders each tab offers; the first is the audit's own ranking (worst first). */
export const SORTS: Record<AuditTab, readonly string[]> = {
  labelIssues: ['worst', 'file', 'label', 'suggested'],
  duplicates: ['worst', 'size', 'file'],
  outliers: ['worst', 'file'],
};

export interface ViewState {
  tab: AuditTab;
  sort: Record<AuditTab, string>;
  /** The audit.json shown, for the panel serializer. */
  file?: string;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const KINDS: readonly AuditKind[] = ['labelIssue', 'duplicate', 'outlier'];

/** A validated message, or undefined ("ignore it"). Only files the panel lists can be opened, moved or deleted. */
export function parseWebviewMessage(v: unknown, files: ReadonlySet<string>): WebviewMessage | undefined {
  if (!isObject(v)) return undefined;
  switch (v.type) {
    case 'ready':
    case 'undo':
    case 'rerun':
      return { type: v.type };
    case 'open':
    case 'move':
    case 'delete':
      return typeof v.file === 'string' && files.has(v.file) ? { type: v.type, file: v.file } : undefined;
    case 'ignore':
      return KINDS.includes(v.kind as AuditKind) &&
        Array.isArray(v.files) &&
        v.files.length > 0 &&
        v.files.every(f => typeof f === 'string' && files.has(f))
        ? { type: 'ignore', kind: v.kind as AuditKind, files: v.files as string[] }
        : undefined;
    default:
      return undefined;
  }
}

export function parseViewState(v: unknown): ViewState {
  const tab = isObject(v) && AUDIT_TABS.includes(v.tab as AuditTab) ? (v.tab as AuditTab) : 'labelIssues';
  const saved = isObject(v) && isObject(v.sort) ? v.sort : {};
  const sort = Object.fromEntries(
    AUDIT_TABS.map(t => [t, SORTS[t].includes(saved[t] as string) ? (saved[t] as string) : 'worst']),
  ) as Record<AuditTab, string>;
  return { tab, sort, ...(isObject(v) && typeof v.file === 'string' ? { file: v.file } : {}) };
}

const byText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** A tab's rows in the chosen order ('worst' keeps the audit's ranking); the input is not changed. */
export function sortedRows<T extends { file?: string; files?: string[]; label?: string; suggested?: string }>(
  rows: readonly T[],
  sort: string,
): T[] {
  const file = (r: T) => r.file ?? r.files?.[0] ?? '';
  switch (sort) {
    case 'file':
      return [...rows].sort((a, b) => byText(file(a), file(b)));
    case 'label':
      return [...rows].sort((a, b) => byText(a.label ?? '', b.label ?? '') || byText(file(a), file(b)));
    case 'suggested':
      return [...rows].sort((a, b) => byText(a.suggested ?? '', b.suggested ?? '') || byText(file(a), file(b)));
    case 'size':
      return [...rows].sort((a, b) => (b.files?.length ?? 0) - (a.files?.length ?? 0));
    default:
      return [...rows];
  }
}

/** Every file the lists name. */
export function listedFiles(d: Pick<AuditViewData, 'labelIssues' | 'duplicates' | 'outliers'>): Set<string> {
  return new Set([
    ...d.labelIssues.map(l => l.file),
    ...d.duplicates.flatMap(g => g.files),
    ...d.outliers.map(o => o.file),
  ]);
}
