/**
 * Messages between the audit panel (webview) and the extension, and the checks on what the webview
 * sends. Free of `vscode` imports: the webview bundle and the tests use it too.
 */
import type { AuditKind, AuditResult } from '../protocol';

export type AuditTab = 'labelIssues' | 'duplicates' | 'outliers';
export const AUDIT_TABS: readonly AuditTab[] = ['labelIssues', 'duplicates', 'outliers'];

export interface AuditViewData {
  folder: string;
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

export interface ViewState {
  tab: AuditTab;
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
      return KINDS.includes(v.kind as AuditKind) && Array.isArray(v.files) && v.files.length > 0 && v.files.every((f) => typeof f === 'string' && files.has(f))
        ? { type: 'ignore', kind: v.kind as AuditKind, files: v.files as string[] }
        : undefined;
    default:
      return undefined;
  }
}

export function parseViewState(v: unknown): ViewState {
  return { tab: isObject(v) && AUDIT_TABS.includes(v.tab as AuditTab) ? (v.tab as AuditTab) : 'labelIssues' };
}

/** Every file the lists name. */
export function listedFiles(d: Pick<AuditViewData, 'labelIssues' | 'duplicates' | 'outliers'>): Set<string> {
  return new Set([...d.labelIssues.map((l) => l.file), ...d.duplicates.flatMap((g) => g.files), ...d.outliers.map((o) => o.file)]);
}
