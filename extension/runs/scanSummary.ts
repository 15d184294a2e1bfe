/** The dataset summary shown before fine-tuning (from vitLens/scanDataset). Pure, for the unit tests. */
import * as path from 'node:path';
import type { ScanDatasetResult } from '../../common/workerRequests';

/** max/min images per class above this is called out. */
export const IMBALANCE_WARNING = 3;
const MAX_CLASS_LINES = 25;

export interface Summary {
  message: string;
  detail: string;
  /** Set when training cannot start on this dataset; the message says why. */
  blocking?: string;
}

export function summarizeScan(s: ScanDatasetResult): Summary {
  const name = path.basename(s.root);
  const usable = s.classes.filter(c => c.train + c.val > 0);
  const lines: string[] = [];
  const width = Math.max(...s.classes.map(c => c.name.length), 5);
  for (const c of s.classes.slice(0, MAX_CLASS_LINES)) {
    lines.push(
      `${c.name.padEnd(width)}  ${String(c.train + c.val).padStart(6)} images  (${c.train} train, ${c.val} val)`,
    );
  }
  if (s.classes.length > MAX_CLASS_LINES) lines.push(`… and ${s.classes.length - MAX_CLASS_LINES} more classes`);
  const notes: string[] = [];
  if (s.layout === 'train-val-folders') notes.push('Layout: train/ and val/ folders.');
  if (s.skipped.length)
    notes.push(
      `${s.skipped.length} file${s.skipped.length > 1 ? 's' : ''} will be skipped (unreadable or not images), e.g. ${path.relative(s.root, s.skipped[0].file) || s.skipped[0].file}: ${s.skipped[0].reason}.`,
    );
  if (s.imbalance > IMBALANCE_WARNING)
    notes.push(
      `⚠ Imbalanced: the largest class has ${s.imbalance.toFixed(1)}× the images of the smallest. Accuracy can hide a poorly learned small class; watch per-class accuracy in the dashboard.`,
    );
  if (s.classes.every(c => c.val === 0))
    notes.push('⚠ No validation images: the best epoch is chosen by training accuracy.');
  // The trainer's warnings start with a path; relative to the dataset they read shorter.
  for (const w of s.warnings.slice(0, 5))
    notes.push(
      `⚠ ${w
        .split(`${s.root}: `)
        .join('')
        .split(s.root + path.sep)
        .join('')}`,
    );
  if (s.warnings.length > 5) notes.push(`… and ${s.warnings.length - 5} more warnings`);
  const blocking =
    usable.length < 2
      ? `${s.root}: ${usable.length === 1 ? `only class "${usable[0].name}" has readable images` : 'no readable images'}; a classifier needs at least two classes with images.`
      : undefined;
  return {
    message: `${name}: ${s.images} images in ${s.classes.length} classes`,
    detail: [...lines, '', ...notes].join('\n').trim(),
    blocking,
  };
}
