/**
 * Frozen-backbone cache for `head` and `last-k` modes: the part of the network that does not train is
 * run once per image and its output stored on disk, keyed by (backbone, preprocessing) and the image
 * file's content hash. Later epochs and later runs on the same data read the cache instead of
 * decoding and running the backbone again. Nothing is held in memory beyond one batch.
 *
 * Finding an image's entry needs its content hash; hashing 10,000 images on every run took most of a
 * cached audit. So, as make and rsync do, a file whose path, size and modification time (ns) are
 * those of the last run keeps the hash it had then (INDEX_FILE, one per backbone key). Known limit:
 * a file rewritten with different content but the same size and mtime (e.g. `touch -r`) keeps its
 * old features until its size or mtime changes.
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import { writeFileAtomic } from '../util/atomicFile';
import { hashFile } from '../util/hashFile';
import type { Sample, SkippedFile } from './datasetFolder';
import type { PixelLoader } from './imageLoader';

export interface FeatureCacheOptions {
  cacheDir: string;
  /** Identifies the backbone and preprocessing; part of the cache path. */
  key: string;
  /** Values per sample (D for features, T·D for tokens). */
  size: number;
  batchSize: number;
  loader: PixelLoader;
  /** Backbone on a batch of pixels [n, C, H, W] → n·size values. */
  produce: (pixels: Float32Array, n: number) => Promise<Float32Array>;
  pixelsPerSample: number;
  onProgress?: (done: number, total: number) => void;
}

/** Per backbone key: absolute image path → [`size:mtimeNs`, content hash] as of the last run. */
export const INDEX_FILE = 'files.json';

type HashIndex = Record<string, [stamp: string, hash: string]>;

/** Samples whose files are looked up at once. */
const PROBE = 64;

async function readIndex(file: string): Promise<HashIndex> {
  try {
    const index: unknown = JSON.parse(await fs.readFile(file, 'utf8'));
    return index && typeof index === 'object' && !Array.isArray(index) ? (index as HashIndex) : {};
  } catch {
    return {}; // missing or torn by a crash: every file is hashed again
  }
}

export class FeatureCache {
  private readonly fileOf = new Map<string, string>();

  private constructor(private readonly opts: FeatureCacheOptions) {}

  /** Fill the cache for `samples`; unreadable ones are returned in `skipped` and left out of `kept`. */
  static async build(
    samples: Sample[],
    opts: FeatureCacheOptions,
  ): Promise<{ cache: FeatureCache; kept: Sample[]; skipped: SkippedFile[]; computed: number }> {
    const cache = new FeatureCache(opts);
    const dir = path.join(opts.cacheDir, opts.key);
    await fs.mkdir(dir, { recursive: true });
    const indexFile = path.join(dir, INDEX_FILE);
    const index = await readIndex(indexFile);
    let indexChanged = false;
    const kept: Sample[] = [];
    const skipped: SkippedFile[] = [];
    let pending: { sample: Sample; target: string; pixels: Float32Array }[] = [];
    let computed = 0;
    const flush = async () => {
      if (!pending.length) return;
      const n = pending.length;
      const batch = new Float32Array(n * opts.pixelsPerSample);
      pending.forEach((p, i) => batch.set(p.pixels, i * opts.pixelsPerSample));
      const out = await opts.produce(batch, n);
      for (let i = 0; i < n; i++) {
        const bytes = out.slice(i * opts.size, (i + 1) * opts.size);
        const tmp = `${pending[i].target}.${process.pid}.tmp`;
        await fs.writeFile(tmp, new Uint8Array(bytes.buffer));
        await fs.rename(tmp, pending[i].target);
      }
      computed += n;
      pending = [];
    };
    // Where each sample's entry is and whether it exists, for PROBE samples at a time: one by one,
    // the stat and read round trips through libuv's thread pool took most of a cached audit.
    const probe = async (sample: Sample): Promise<{ target: string; cached: boolean } | { error: string }> => {
      let hash: string;
      try {
        const st = await fs.stat(sample.file, { bigint: true });
        const stamp = `${st.size}:${st.mtimeNs}`;
        const known = index[sample.file];
        if (st.isFile() && Array.isArray(known) && known[0] === stamp && typeof known[1] === 'string') hash = known[1];
        else {
          hash = await hashFile(sample.file);
          index[sample.file] = [stamp, hash];
          indexChanged = true;
        }
      } catch (e) {
        return { error: `cannot read (${(e as Error).message})` };
      }
      const target = path.join(dir, `${hash}.f32`);
      const st = await fs.stat(target).catch(() => undefined);
      return { target, cached: !!st && st.size === opts.size * 4 };
    };
    let done = 0;
    for (let start = 0; start < samples.length; start += PROBE) {
      const chunk = samples.slice(start, start + PROBE);
      const probed = await Promise.all(chunk.map(probe));
      for (const [i, sample] of chunk.entries()) {
        const p = probed[i];
        if ('error' in p) {
          skipped.push({ file: sample.file, reason: p.error });
          continue;
        }
        cache.fileOf.set(sample.file, p.target);
        if (!p.cached) {
          try {
            pending.push({ sample, target: p.target, pixels: await opts.loader(sample) });
          } catch (e) {
            skipped.push({ file: sample.file, reason: (e as Error).message });
            continue;
          }
          if (pending.length >= opts.batchSize) await flush();
        }
        kept.push(sample);
        opts.onProgress?.(++done, samples.length);
      }
    }
    await flush();
    // Written after the features, so an entry never names features that are not on disk yet. Two
    // runs at once may each drop the other's new entries: that only costs a re-hash next time.
    if (indexChanged) await writeFileAtomic(indexFile, JSON.stringify(index)).catch(() => undefined);
    return { cache, kept, skipped, computed };
  }

  /** The content hash the sample's entry is filed under (equal hashes: byte-identical files). */
  contentHash(sample: Sample): string | undefined {
    const file = this.fileOf.get(sample.file);
    return file && path.basename(file, '.f32');
  }

  /** Entries of several samples, read PROBE at a time. */
  async loadAll(samples: Sample[], into: (i: number, values: Float32Array) => void): Promise<void> {
    for (let start = 0; start < samples.length; start += PROBE) {
      const values = await Promise.all(samples.slice(start, start + PROBE).map(s => this.load(s)));
      values.forEach((v, i) => into(start + i, v));
    }
  }

  async load(sample: Sample): Promise<Float32Array> {
    const file = this.fileOf.get(sample.file);
    if (!file) throw new Error(`${sample.file}: not in the feature cache`);
    const buf = await fs.readFile(file);
    return new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  }
}
