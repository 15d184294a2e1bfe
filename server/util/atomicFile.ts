import { promises as fs } from 'fs';
import * as path from 'path';
import { processAlive } from './processAlive';

let serial = 0;

/**
 * The temp file an atomic write goes through: `.<name>.<pid>.<id>.tmp` beside the target, hidden,
 * and naming its writer's pid so that a cleanup can tell a live writer's file from an orphan.
 */
export function tempPathFor(file: string): string {
  return path.join(
    path.dirname(file),
    `.${path.basename(file)}.${process.pid}.${Date.now().toString(36)}${(serial++).toString(36)}.tmp`,
  );
}

/** Our temp names: tempPathFor's, and the older `<name>.<pid>.<id>.tmp` that writeFileAtomic used to leave. */
const TEMP_NAME = /^\.?.+\.(\d+)\.[0-9a-z]+\.tmp$/;

export const isTempFileName = (name: string) => TEMP_NAME.test(name);

/**
 * Removes the temp files in `dir` (not below it) that a killed or failed atomic write left behind:
 * only names of our own pattern, and only those whose writer is this process or no longer alive.
 * Returns the names removed.
 */
export async function removeOrphanTempFiles(dir: string): Promise<string[]> {
  const names = await fs.readdir(dir).catch(() => [] as string[]);
  const removed: string[] = [];
  for (const name of names) {
    const m = TEMP_NAME.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid !== process.pid && processAlive(pid)) continue;
    const file = path.join(dir, name);
    if (!(await fs.lstat(file).catch(() => undefined))?.isFile()) continue;
    await fs.rm(file, { force: true });
    removed.push(name);
  }
  return removed;
}

/**
 * Write a file so that readers see either the old content or the complete new content, never a
 * partial file: write a temp file beside it, flush it, then rename over the target. The temp file
 * is removed if any step fails (a full disk must not keep the half-written copy).
 */
export async function writeFileAtomic(file: string, data: Uint8Array | string): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  const tmp = tempPathFor(file);
  try {
    const handle = await fs.open(tmp, 'w');
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(tmp, file);
  } catch (e) {
    await fs.rm(tmp, { force: true });
    throw e;
  }
}
