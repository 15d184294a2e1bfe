import { createHash } from 'crypto';
import { createReadStream } from 'fs';

/** SHA-256 of a file's content (hex), streamed so multi-GB weights never sit in memory. */
export async function hashFile(file: string, signal?: AbortSignal): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 4 << 20, signal })) h.update(chunk as Buffer);
  return h.digest('hex');
}
