/**
 * Which files are images the worker reads (sharp + bmp-ts), without the dot, in any case: for the
 * trainer's and Classify Folder's folder scans and the extension's pickers. package.json's menus
 * repeat them in their `when` clauses (test/unit/packageLists.test.ts keeps those in step).
 */
export const IMAGE_EXTENSIONS = ['jpg', 'jpeg', 'png', 'webp', 'gif', 'bmp', 'tif', 'tiff'] as const;

/** Does `p` (a path or file name) end in one of IMAGE_EXTENSIONS, in any case? */
export function isImagePath(p: string): boolean {
  const ext = /\.([^./\\]+)$/.exec(p)?.[1].toLowerCase();
  return ext !== undefined && (IMAGE_EXTENSIONS as readonly string[]).includes(ext);
}

/** The extensions as a message lists them: ".jpg .jpeg .png …". */
export const IMAGE_EXTENSIONS_DOTTED = IMAGE_EXTENSIONS.map(e => `.${e}`).join(' ');
