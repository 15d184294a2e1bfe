/**
 * Reads an image-classification dataset from disk: DATASET/<class>/* (torchvision ImageFolder, the
 * official vision_transformer repo), or DATASET/train/<class>/* with DATASET/val|test/<class>/*.
 * Only paths are kept in memory, so 100k-image folders cost a few MB. Problems with single files or
 * classes become warnings and skipped-file entries; only an unusable dataset as a whole is an error.
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import { decodeFileName, fsPath } from '../util/fileNames';
import { mixSeed, mulberry32, PURPOSE, shuffled } from './rng';
import { IMAGE_EXTENSIONS_DOTTED, isImagePath } from '../../common/imageFiles';

export interface Sample {
  file: string;
  label: number;
}

export interface SkippedFile {
  file: string;
  reason: string;
}

export interface Dataset {
  root: string;
  layout: 'class-folders' | 'train-val-folders';
  classes: string[];
  train: Sample[];
  val: Sample[];
  skipped: SkippedFile[];
  warnings: string[];
}

export class DatasetError extends Error {}

/** Image files under `dir`, recursively (nested folders inside a class folder belong to that class); symlink loops are cut. */
export async function listImages(dir: string, skipped: SkippedFile[], seen: Set<string>): Promise<string[]> {
  let real: string;
  try {
    real = await fs.realpath(fsPath(dir), 'buffer').then(decodeFileName);
  } catch (e) {
    skipped.push({
      file: dir,
      reason: `cannot resolve (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
    });
    return [];
  }
  if (seen.has(real)) {
    skipped.push({ file: dir, reason: 'folder already visited (symlink loop or duplicate link); skipped' });
    return [];
  }
  seen.add(real);
  let entries: { name: string; entry: import('fs').Dirent<Buffer> }[];
  try {
    // Names as bytes: a name that is not valid UTF-8 stays openable (util/fileNames).
    entries = (await fs.readdir(fsPath(dir), { withFileTypes: true, encoding: 'buffer' })).map(entry => ({
      name: decodeFileName(entry.name),
      entry,
    }));
  } catch (e) {
    skipped.push({
      file: dir,
      reason: `cannot list folder (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
    });
    return [];
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const out: string[] = [];
  for (const { name, entry: e } of entries) {
    if (name.startsWith('.')) continue;
    const full = path.join(dir, name);
    let st: { isDirectory(): boolean; isFile(): boolean } = e;
    if (e.isSymbolicLink()) {
      const target = await fs.stat(fsPath(full)).catch(() => undefined);
      if (!target) {
        skipped.push({ file: full, reason: 'broken symbolic link' });
        continue;
      }
      st = target;
    }
    if (st.isDirectory()) out.push(...(await listImages(full, skipped, seen)));
    else if (!st.isFile())
      skipped.push({ file: full, reason: 'not a regular file (a FIFO, device or socket); skipped' });
    else if (isImagePath(name)) out.push(full);
    else skipped.push({ file: full, reason: `not an image (extension "${path.extname(name) || 'none'}")` });
  }
  return out;
}

async function subfolders(dir: string): Promise<string[]> {
  const entries = await fs.readdir(dir, { withFileTypes: true });
  const out: string[] = [];
  for (const e of entries) {
    if (e.name.startsWith('.')) continue;
    if (
      e.isDirectory() ||
      (e.isSymbolicLink() && (await fs.stat(path.join(dir, e.name)).catch(() => undefined))?.isDirectory())
    )
      out.push(e.name);
  }
  return out.sort();
}

async function readClassFolders(
  root: string,
  classes: string[],
  skipped: SkippedFile[],
  warnings: string[],
): Promise<Sample[]> {
  const samples: Sample[] = [];
  const seen = new Set<string>();
  for (let label = 0; label < classes.length; label++) {
    const dir = path.join(root, classes[label]);
    const files = (await fs.stat(dir).catch(() => undefined)) ? await listImages(dir, skipped, seen) : [];
    if (files.length === 0) warnings.push(`${dir}: class "${classes[label]}" has no images`);
    else if (files.length === 1) warnings.push(`${dir}: class "${classes[label]}" has only one image`);
    for (const file of files) samples.push({ file, label });
  }
  return samples;
}

/** Stratified split: each class keeps ⌈valFraction·n⌉ of its images for validation (none when it has one). */
export function stratifiedSplit(
  samples: Sample[],
  numClasses: number,
  valFraction: number,
  seed: number,
): { train: Sample[]; val: Sample[] } {
  const train: Sample[] = [];
  const val: Sample[] = [];
  for (let c = 0; c < numClasses; c++) {
    const mine = samples.filter(s => s.label === c);
    const order = shuffled(mine, mulberry32(mixSeed(seed, PURPOSE.split, c)));
    const nVal =
      mine.length < 2 || valFraction <= 0
        ? 0
        : Math.min(mine.length - 1, Math.max(1, Math.round(valFraction * mine.length)));
    val.push(...order.slice(0, nVal));
    train.push(...order.slice(nVal));
  }
  const byFile = (a: Sample, b: Sample) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0);
  return { train: train.sort(byFile), val: val.sort(byFile) };
}

export async function scanDataset(root: string, opts: { valSplit: number; seed: number }): Promise<Dataset> {
  const st = await fs.stat(root).catch(() => undefined);
  if (!st) throw new DatasetError(`${root}: dataset folder does not exist`);
  if (!st.isDirectory()) throw new DatasetError(`${root}: dataset must be a folder with one sub-folder per class`);
  const skipped: SkippedFile[] = [];
  const warnings: string[] = [];
  const top = await subfolders(root);
  const valName = top.find(d => d === 'val') ?? top.find(d => d === 'test');
  if (top.includes('train') && valName) {
    const classes = [
      ...new Set([...(await subfolders(path.join(root, 'train'))), ...(await subfolders(path.join(root, valName)))]),
    ].sort();
    checkClasses(root, classes);
    const train = await readClassFolders(path.join(root, 'train'), classes, skipped, warnings);
    const val = await readClassFolders(path.join(root, valName), classes, skipped, warnings);
    checkNotEmpty(root, train);
    return { root, layout: 'train-val-folders', classes, train, val, skipped, warnings };
  }
  checkClasses(root, top);
  const all = await readClassFolders(root, top, skipped, warnings);
  checkNotEmpty(root, all);
  const { train, val } = stratifiedSplit(all, top.length, opts.valSplit, opts.seed);
  if (opts.valSplit > 0 && val.length === 0)
    warnings.push(`${root}: too few images per class for a validation split; no validation`);
  return { root, layout: 'class-folders', classes: top, train, val, skipped, warnings };
}

/**
 * What the classes look like once unreadable images are left out. `listed`: every image the folder
 * walk found; `train`, `val`: the readable ones. A class with no readable image cannot be learned,
 * and accuracy on the other classes alone says nothing about it.
 */
export function classCoverageWarnings(
  root: string,
  classes: string[],
  listed: Sample[],
  train: Sample[],
  val: Sample[],
): string[] {
  const count = (samples: Sample[]) =>
    samples.reduce((n, s) => (n[s.label]++, n), new Array<number>(classes.length).fill(0));
  const [nListed, nTrain, nVal] = [count(listed), count(train), count(val)];
  const warnings: string[] = [];
  classes.forEach((name, c) => {
    if (nListed[c] > 0 && nTrain[c] + nVal[c] === 0) {
      warnings.push(
        `${root}: class "${name}" has no readable images (all ${nListed[c]} skipped); the model cannot learn it${val.length ? ', and validation accuracy covers only the other classes' : ''}`,
      );
    } else if (nTrain[c] === 0 && nVal[c] > 0) {
      warnings.push(
        `${root}: class "${name}" has no readable training images (only ${nVal[c]} validation ones); the model cannot learn it`,
      );
    }
  });
  return warnings;
}

function checkClasses(root: string, classes: string[]): void {
  if (classes.length === 0)
    throw new DatasetError(
      `${root}: no class folders found (expected ${root}/<class name>/<images>, or train/ and val/ folders with class sub-folders)`,
    );
  if (classes.length === 1)
    throw new DatasetError(`${root}: only one class folder ("${classes[0]}"); a classifier needs at least two classes`);
}

function checkNotEmpty(root: string, samples: Sample[]): void {
  if (samples.length === 0)
    throw new DatasetError(`${root}: no images found (looked for ${IMAGE_EXTENSIONS_DOTTED} in any case)`);
}
