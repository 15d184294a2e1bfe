/**
 * Which class folder an image sits in, for "ViT: Classify Folder": the ImageFolder layout
 * (DATASET/<class>/…) or a split layout (DATASET/train|val|test/<class>/…). Pure, no file system.
 */

export const SPLIT_FOLDERS = ['train', 'val', 'test'];

/** The class folder of one relative path ('/' separators), ignoring whether the whole folder is a dataset. */
export function classFolderOf(rel: string): string | undefined {
  const parts = rel.split('/');
  if (parts.length >= 3 && SPLIT_FOLDERS.includes(parts[0])) return parts[1];
  // "test/x.png": an image loose in a split folder has no class.
  if (parts.length === 2 && SPLIT_FOLDERS.includes(parts[0])) return undefined;
  return parts.length >= 2 ? parts[0] : undefined;
}

/**
 * Folder labels for every file, or all undefined when the folder does not look like a class-folder
 * dataset. It does when every image sits inside a class folder and there are at least two classes:
 * a folder of loose photos, or one with a single sub-folder (an album), has no labels to check
 * against, and guessing them would turn every prediction into a "disagreement".
 */
export function folderLabels(relFiles: string[]): (string | undefined)[] {
  const labels = relFiles.map(classFolderOf);
  if (labels.some(l => l === undefined)) return relFiles.map(() => undefined);
  if (new Set(labels).size < 2) return relFiles.map(() => undefined);
  return labels;
}

/**
 * Folder names cannot hold every label ("T-shirt/top" becomes "T-shirt_top" or "tshirt-top"), and
 * people write "ankle_boot" for "Ankle boot": compare case-insensitively over letters and digits only.
 */
export function sameLabel(folderLabel: string, predicted: string): boolean {
  const norm = (s: string) =>
    s
      .normalize('NFKC')
      .toLowerCase()
      .replace(/[^\p{L}\p{N}]+/gu, '');
  return norm(folderLabel) === norm(predicted);
}
