/**
 * Messages between the predictions table (webview) and the extension, and the checks on what comes
 * back from outside: webview messages, the webview's saved state, and predictions.json read from
 * disk. Free of `vscode` imports: the webview bundle and the tests use it too.
 */
import type { ClassifyFolderResult, FolderPrediction } from '../workerRequests';

/** One table row; the top-k beyond the runner-up stay in predictions.json (100k rows must stay light). */
export interface TableRow {
  /** Relative to the folder, '/' separators. */
  file: string;
  folderLabel?: string;
  predicted: string;
  confidence: number;
  agrees?: boolean;
  /** Second-best label and its score, for the tooltip. */
  runnerUp?: { label: string; score: number };
}

export interface TableData {
  folder: string;
  model: string;
  createdAt: string;
  partial: boolean;
  total: number;
  /** The folder as a webview resource URI; a thumbnail is base + '/' + the encoded relative path. */
  baseUri: string;
  csvFile: string;
  jsonFile: string;
  rows: TableRow[];
  failures: { file: string; error: string }[];
}

export type SortKey = 'file' | 'folderLabel' | 'predicted' | 'confidence' | 'agrees';
export const SORT_KEYS: readonly SortKey[] = ['file', 'folderLabel', 'predicted', 'confidence', 'agrees'];

/** What the webview keeps with setState: its view settings and which predictions.json it shows. */
export interface ViewState {
  jsonFile?: string;
  sort: SortKey;
  descending: boolean;
  disagreementsOnly: boolean;
  filter: string;
}

/** Extension → webview. */
export type HostMessage = { type: 'data'; data: TableData } | { type: 'error'; message: string };

/** Webview → extension. */
export type WebviewMessage =
  | { type: 'ready' }
  /** Open the results panel's attention view on this row's image. */
  | { type: 'explain'; file: string }
  | { type: 'openFile'; which: 'csv' | 'json' }
  | { type: 'rerun' };

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A validated message, or undefined ("ignore it"). `files` are the rows the panel shows: nothing else can be opened. */
export function parseWebviewMessage(v: unknown, files: ReadonlySet<string>): WebviewMessage | undefined {
  if (!isObject(v)) return undefined;
  switch (v.type) {
    case 'ready':
    case 'rerun':
      return { type: v.type };
    case 'explain':
      return typeof v.file === 'string' && files.has(v.file) ? { type: 'explain', file: v.file } : undefined;
    case 'openFile':
      return v.which === 'csv' || v.which === 'json' ? { type: 'openFile', which: v.which } : undefined;
    default:
      return undefined;
  }
}

export function defaultViewState(): ViewState {
  return { sort: 'file', descending: false, disagreementsOnly: false, filter: '' };
}

/** The webview's saved state, field by field; anything malformed falls back to the default. */
export function parseViewState(v: unknown): ViewState {
  const s = defaultViewState();
  if (!isObject(v)) return s;
  if (typeof v.jsonFile === 'string') s.jsonFile = v.jsonFile;
  if (SORT_KEYS.includes(v.sort as SortKey)) s.sort = v.sort as SortKey;
  if (typeof v.descending === 'boolean') s.descending = v.descending;
  if (typeof v.disagreementsOnly === 'boolean') s.disagreementsOnly = v.disagreementsOnly;
  if (typeof v.filter === 'string') s.filter = v.filter.slice(0, 500);
  return s;
}

/**
 * A predictions.json as the worker writes it, or a message saying what is wrong. The file may have
 * been edited or be from another version, and its `folder` becomes a resource root of the webview,
 * so every field that is used is checked.
 */
export function parseResultFile(v: unknown): ClassifyFolderResult | string {
  if (!isObject(v)) return 'not a JSON object';
  const { folder, model, predictions, failures, csvFile, jsonFile, partial, total, createdAt } = v;
  if (
    typeof folder !== 'string' ||
    typeof model !== 'string' ||
    typeof csvFile !== 'string' ||
    typeof jsonFile !== 'string'
  )
    return 'missing folder, model or file names';
  if (!Array.isArray(predictions) || !Array.isArray(failures)) return 'missing predictions or failures';
  const okPrediction = (p: unknown): p is FolderPrediction =>
    isObject(p) &&
    typeof p.file === 'string' &&
    typeof p.predicted === 'string' &&
    typeof p.confidence === 'number' &&
    (p.folderLabel === undefined || typeof p.folderLabel === 'string') &&
    (p.agrees === undefined || typeof p.agrees === 'boolean') &&
    Array.isArray(p.top);
  if (!predictions.every(okPrediction)) return 'a prediction is malformed';
  if (!failures.every(f => isObject(f) && typeof f.file === 'string' && typeof f.error === 'string'))
    return 'a failure is malformed';
  return {
    folder,
    model,
    predictions,
    failures: failures as ClassifyFolderResult['failures'],
    csvFile,
    jsonFile,
    partial: partial === true,
    total: typeof total === 'number' ? total : predictions.length + failures.length,
    createdAt: typeof createdAt === 'string' ? createdAt : '',
  };
}

export function tableRows(predictions: FolderPrediction[]): TableRow[] {
  return predictions.map(p => {
    const second = p.top[1];
    const row: TableRow = { file: p.file, predicted: p.predicted, confidence: p.confidence };
    if (p.folderLabel !== undefined) row.folderLabel = p.folderLabel;
    if (p.agrees !== undefined) row.agrees = p.agrees;
    if (second && typeof second.label === 'string' && typeof second.score === 'number')
      row.runnerUp = { label: second.label, score: second.score };
    return row;
  });
}
