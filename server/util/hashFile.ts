import { createHash } from 'crypto';
import { createReadStream, promises as fs } from 'fs';

const CHUNK = 4 << 20;

/**
 * SHA-256 of a file's content (hex), streamed so multi-GB weights never sit in memory. Files smaller
 * than one chunk (dataset images) are read in one go: a stream allocates a whole 4 MB buffer per
 * file, and for 10,000 small images that garbage costs seconds of collection.
 */
export async function hashFile(file: string, signal?: AbortSignal): Promise<string> {
  const h = createHash('sha256');
  if ((await fs.stat(file)).size < CHUNK) return h.update(await fs.readFile(file, { signal })).digest('hex');
  for await (const chunk of createReadStream(file, { highWaterMark: CHUNK, signal })) h.update(chunk as Buffer);
  return h.digest('hex');
}
