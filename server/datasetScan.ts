/**
 * vitLens/scanDataset: what the trainer will see in a folder, for the editor's Fine-tune summary.
 * The folder walk is the trainer's own (`scanDataset`), so classes, order and the val split match
 * what `vit-lens train` does; with `checkImages` every image's header is also read, so unreadable
 * files are reported before a run starts instead of being skipped silently during it.
 *
 * Only datasetFolder (and its rng) are imported from server/train: the worker bundle must not pull
 * in TensorFlow.js.
 */
import sharp from 'sharp';
import { decodeBmp, isBmp } from './formats/bmp';
import { ImageError, MAX_IMAGE_PIXELS, readImageBytes } from './preprocess';
import type { ScanDatasetParams, ScanDatasetResult } from '../common/workerRequests';
import { classCoverageWarnings, Sample, scanDataset } from './train/datasetFolder';
import { hasRawBytes } from './util/fileNames';
import { openRegularFile, readRange, UnreadableFileError } from './util/regularFile';

/** Header reads are I/O bound; a few in flight keep a local disk busy without flooding a network share. */
const CONCURRENCY = 16;

export interface ScanReporter {
  report(percentage: number, message: string): void;
}

export async function scanDatasetForEditor(
  params: ScanDatasetParams,
  signal: AbortSignal,
  progress: ScanReporter,
): Promise<ScanDatasetResult> {
  if (typeof params.folder !== 'string' || !params.folder)
    throw new Error('scanDataset: "folder" must be a folder path');
  const valSplit = params.valSplit ?? 0.2;
  if (!(valSplit >= 0 && valSplit <= 0.9))
    throw new Error(`scanDataset: valSplit must be in [0, 0.9], got ${params.valSplit}`);
  const ds = await scanDataset(params.folder, { valSplit, seed: params.seed ?? 0 });
  signal.throwIfAborted();
  const skipped = [...ds.skipped];
  let train = ds.train;
  let val = ds.val;
  if (params.checkImages) {
    const all = [...train, ...val];
    const bad = await checkHeaders(
      all.map(s => s.file),
      signal,
      done =>
        progress.report(Math.floor((100 * done) / Math.max(1, all.length)), `${done}/${all.length} images checked`),
    );
    for (const [file, reason] of bad) skipped.push({ file, reason });
    const ok = (s: Sample) => !bad.has(s.file);
    train = train.filter(ok);
    val = val.filter(ok);
  }
  const classes = ds.classes.map(name => ({ name, train: 0, val: 0 }));
  for (const s of train) classes[s.label].train++;
  for (const s of val) classes[s.label].val++;
  const warnings = [...ds.warnings];
  // The trainer's own words for classes it cannot learn (scanDataset already warned about classes that were empty from the start).
  if (params.checkImages)
    warnings.push(...classCoverageWarnings(ds.root, ds.classes, [...ds.train, ...ds.val], train, val));
  const sizes = classes.map(c => c.train + c.val).filter(n => n > 0);
  const imbalance = sizes.length ? Math.max(...sizes) / Math.min(...sizes) : 1;
  return { root: ds.root, layout: ds.layout, classes, images: train.length + val.length, skipped, warnings, imbalance };
}

/** file → reason, for every file whose header does not read as an image the trainer can decode. */
async function checkHeaders(
  files: string[],
  signal: AbortSignal,
  onDone: (done: number) => void,
): Promise<Map<string, string>> {
  const bad = new Map<string, string>();
  let next = 0;
  let done = 0;
  let lastReport = 0;
  const worker = async () => {
    while (next < files.length) {
      signal.throwIfAborted();
      const file = files[next++];
      const reason = await headerProblem(file);
      if (reason) bad.set(file, reason);
      done++;
      const now = Date.now();
      if (now - lastReport > 100 || done === files.length) {
        lastReport = now;
        onDone(done);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, files.length) }, worker));
  return bad;
}

/** Why `file` is not a readable image, or undefined. Reads the header only (BMP, which sharp cannot read, is decoded; BMPs are small). */
export async function headerProblem(file: string): Promise<string | undefined> {
  let head: Buffer;
  try {
    const { handle, size } = await openRegularFile(file);
    try {
      head = await readRange(handle, 0, Math.min(32, size));
    } finally {
      await handle.close();
    }
  } catch (e) {
    return e instanceof UnreadableFileError
      ? e.problem
      : `cannot read file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`;
  }
  if (head.length === 0) return 'file is empty (0 bytes)';
  try {
    let width: number;
    let height: number;
    if (isBmp(head)) {
      ({ width, height } = decodeBmp(await readImageBytes(file), () => undefined));
    } else {
      // sharp opens a path itself, which cannot carry a name that is not UTF-8: then it gets the bytes.
      const meta = await sharp(hasRawBytes(file) ? await readImageBytes(file) : file, {
        limitInputPixels: false,
      }).metadata();
      width = meta.width ?? 0;
      height = meta.height ?? 0;
    }
    if (width <= 0 || height <= 0) return 'image has no size in its header';
    if (width * height > MAX_IMAGE_PIXELS)
      return `image is ${width}×${height}, over the ${(MAX_IMAGE_PIXELS / 1e6).toFixed(0)}-megapixel limit`;
    return undefined;
  } catch (e) {
    if (e instanceof ImageError) return e.problem;
    const msg = (e instanceof Error ? e.message : String(e)).split('\n')[0].replace(/^Input (buffer|file) /, '');
    return `not a readable image (${msg})`;
  }
}
