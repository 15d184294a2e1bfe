/**
 * "Classify Folder": every image under a folder through the loaded model, in batches, written to
 * predictions.csv and predictions.json. Shared by the worker and the CLI; the caller says how a
 * batch runs (the worker puts each one on its model queue so an explain can slip in between).
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import type { ClassifyFolderResult, FolderPrediction, Prediction } from '../common/workerRequests';
import { folderLabels, sameLabel } from './folderLabels';
import { IMAGE_EXTENSIONS_DOTTED } from '../common/imageFiles';
import { listImages, SkippedFile } from './train/datasetFolder';
import { writeFileAtomic } from './util/atomicFile';
import { displayPath, fsPath, hasRawBytes } from './util/fileNames';

export interface BatchResult {
  results: { image: string; predictions: Prediction[] }[];
  failures: { image: string; error: string }[];
}

export interface ClassifyFolderOptions {
  /** Where predictions.csv/.json go; default: the folder itself. */
  outDir?: string;
  /** Model name recorded in the files. */
  model: string;
  /** Classify absolute paths; failures name the file. */
  classifyBatch: (files: string[]) => Promise<BatchResult>;
  /** Files per batch (the engine's classifyBatchSize(): bigger on a GPU): progress and cancellation happen between batches. */
  batchSize?: number;
  signal?: AbortSignal;
  /** After listing (done = 0) and after every batch. */
  onProgress?: (done: number, total: number) => void;
}

export const CSV_HEADER = ['file', 'folder_label', 'predicted', 'confidence', 'agrees', 'top_k'];

/** Every image under `root` (all IMAGE_EXTENSIONS in any case; hidden entries skipped; symlink loops cut), relative with '/'. */
export async function listFolderImages(root: string): Promise<string[]> {
  const skipped: SkippedFile[] = [];
  const files = await listImages(root, skipped, new Set());
  return files.map(f => path.relative(root, f).split(path.sep).join('/'));
}

export async function classifyFolder(folder: string, opts: ClassifyFolderOptions): Promise<ClassifyFolderResult> {
  const root = path.resolve(folder);
  const outDir = path.resolve(opts.outDir ?? root);
  const st = await fs.stat(fsPath(root)).catch(() => undefined);
  if (!st?.isDirectory()) throw new Error(`${displayPath(root)}: ${st ? 'not a folder' : 'folder does not exist'}`);
  if (hasRawBytes(outDir)) {
    throw new Error(
      `${displayPath(outDir)}: the output folder's name is not valid UTF-8; give --out a folder whose name is`,
    );
  }
  const rel = await listFolderImages(root);
  if (rel.length === 0)
    throw new Error(
      `${displayPath(root)}: no images found (looked for ${IMAGE_EXTENSIONS_DOTTED} in any case, in all sub-folders)`,
    );
  const labels = folderLabels(rel);
  const labelOf = new Map(rel.map((r, i) => [r, labels[i]]));
  const total = rel.length;
  const batchSize = Math.max(1, opts.batchSize ?? 32);
  const predictions: FolderPrediction[] = [];
  const failures: ClassifyFolderResult['failures'] = [];
  let partial = false;
  opts.onProgress?.(0, total);
  for (let start = 0; start < total; start += batchSize) {
    if (opts.signal?.aborted) {
      partial = true;
      break;
    }
    const chunk = rel.slice(start, start + batchSize);
    let out: BatchResult;
    try {
      out = await opts.classifyBatch(chunk.map(r => path.join(root, r)));
    } catch (e) {
      // Cancelled inside a batch: keep what earlier batches did.
      if (opts.signal?.aborted) {
        partial = true;
        break;
      }
      throw e;
    }
    const relOf = (abs: string) => path.relative(root, abs).split(path.sep).join('/');
    for (const r of out.results) {
      const file = relOf(r.image);
      const folderLabel = labelOf.get(file);
      const top = r.predictions[0];
      predictions.push({
        file,
        folderLabel,
        predicted: top.label,
        confidence: top.score,
        agrees: folderLabel === undefined ? undefined : sameLabel(folderLabel, top.label),
        top: r.predictions,
      });
    }
    for (const f of out.failures) failures.push({ file: relOf(f.image), error: f.error });
    opts.onProgress?.(Math.min(total, start + chunk.length), total);
  }
  const result: ClassifyFolderResult = {
    folder: root,
    model: opts.model,
    predictions,
    failures,
    csvFile: path.join(outDir, 'predictions.csv'),
    jsonFile: path.join(outDir, 'predictions.json'),
    partial,
    total,
    createdAt: new Date().toISOString(),
  };
  // CSV first: a reader that sees the new JSON (the panel's source) finds the matching CSV beside it.
  await writeFileAtomic(result.csvFile, predictionsCsv(predictions));
  await writeFileAtomic(result.jsonFile, JSON.stringify(result, null, 1) + '\n');
  return result;
}

/** RFC 4180: CRLF line ends; a field with a comma, quote, CR or LF is quoted, quotes doubled. */
export function csvField(v: string): string {
  return /[",\r\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
}

export function predictionsCsv(predictions: FolderPrediction[]): string {
  const lines = [CSV_HEADER.join(',')];
  for (const p of predictions) {
    const topK = p.top.map(t => `${t.label}:${t.score.toFixed(6)}`).join(';');
    const agrees = p.agrees === undefined ? '' : String(p.agrees);
    lines.push(
      [p.file, p.folderLabel ?? '', p.predicted, p.confidence.toFixed(6), agrees, topK].map(csvField).join(','),
    );
  }
  return lines.join('\r\n') + '\r\n';
}

/** Share of labelled images whose prediction agrees with the folder; undefined without labels. */
export function folderAccuracy(predictions: FolderPrediction[]): { correct: number; labelled: number } | undefined {
  const labelled = predictions.filter(p => p.agrees !== undefined);
  if (labelled.length === 0) return undefined;
  return { correct: labelled.filter(p => p.agrees).length, labelled: labelled.length };
}
