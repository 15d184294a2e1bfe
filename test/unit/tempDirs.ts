/** Temp folders for a test file, all removed after its tests. Call at the top level of the file (it registers an `after` hook there). */
import { after } from 'node:test';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** A maker of fresh folders named vit-lens-`name`-XXXXXX under the system temp folder. */
export function tempDirs(name: string): () => Promise<string> {
  const made: string[] = [];
  after(() => Promise.all(made.map(d => fsp.rm(d, { recursive: true, force: true }))));
  return async () => {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), `vit-lens-${name}-`));
    made.push(dir);
    return dir;
  };
}
