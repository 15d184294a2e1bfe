import { createHash } from 'crypto';
import { createReadStream, promises as fs } from 'fs';
import * as path from 'path';
import { writeFileAtomic } from './atomicFile';
import { fileKind } from './regularFile';

const CHUNK = 4 << 20;

/**
 * SHA-256 of a file's content (hex), streamed so multi-GB weights never sit in memory. Files smaller
 * than one chunk (dataset images) are read in one go: a stream allocates a whole 4 MB buffer per
 * file, and for 10,000 small images that garbage costs seconds of collection.
 */
export async function hashFile(file: string, signal?: AbortSignal): Promise<string> {
  const h = createHash('sha256');
  const st = await fs.stat(file);
  // A FIFO would block and a link to /dev/zero never end (both report size 0).
  if (!st.isFile()) throw new Error(`${file}: is ${fileKind(st)}, not a regular file; only regular files are read`);
  if (st.size < CHUNK) return h.update(await fs.readFile(file, { signal })).digest('hex');
  for await (const chunk of createReadStream(file, { highWaterMark: CHUNK, signal })) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** A file changed this recently may change again within one tick of the filesystem's clock, unseen by stat. */
const SETTLED_MS = 2000;

/**
 * hashFile, remembered in `memoDir` under the file's identity: device, inode, size, and mtime and ctime
 * in nanoseconds. The result is still the content's hash (two checkpoints of one architecture have the
 * same size and header, and tar, rsync -t or cp -p restore mtimes); the memo only spares re-reading a
 * file that has not changed since (ViT-H/14's 2.5 GB take ~15 s to hash). Every write or rename sets
 * ctime to the current time and no tool can set it back, so a changed file gets a new identity; files
 * changed in the last SETTLED_MS are not remembered, so a change within the clock's granularity cannot
 * hide behind an identical identity.
 */
export async function hashFileRemembered(file: string, memoDir: string, signal?: AbortSignal): Promise<string> {
  const identity = async () => {
    const s = await fs.stat(file, { bigint: true });
    return {
      key: `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`,
      changedMs: Number((s.ctimeNs > s.mtimeNs ? s.ctimeNs : s.mtimeNs) / 1_000_000n),
    };
  };
  const before = await identity();
  const memo = path.join(memoDir, createHash('sha256').update(before.key).digest('hex').slice(0, 32));
  const known = (await fs.readFile(memo, 'utf8').catch(() => '')).trim();
  if (/^[0-9a-f]{64}$/.test(known)) return known;
  const started = Date.now();
  const hash = await hashFile(file, signal);
  const after = await identity();
  if (after.key === before.key && after.changedMs < started - SETTLED_MS) {
    // A memo that cannot be written (read-only cache) only costs the next load a re-hash.
    await writeFileAtomic(memo, hash).catch(() => undefined);
  }
  return hash;
}
