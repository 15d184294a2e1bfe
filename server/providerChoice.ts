/**
 * `auto`'s measured choice of provider: one warm batch timed per candidate, and the winner remembered
 * per model and machine in the cache dir (`provider-choice.json`), so later loads start the winner
 * directly instead of starting every candidate again.
 */
import { createHash } from 'crypto';
import { promises as fs } from 'fs';
import * as os from 'os';
import * as ort from 'onnxruntime-node';
import { writeFileAtomic } from './util/atomicFile';
import type { Provider, RunnableSession } from './inference';

export interface Choice {
  provider: Provider;
  /** How it was chosen (the timings), shown as the provider note. */
  note: string;
}

/**
 * Milliseconds for one run on a zero image batch, after one untimed run (the first run on a GPU
 * compiles its shaders and uploads the weights; that is paid once per session, not per batch).
 */
export async function timeWarmBatch(
  session: RunnableSession,
  inputName: string,
  dims: [number, number, number, number],
): Promise<number> {
  const feeds = { [inputName]: new ort.Tensor('float32', new Float32Array(dims.reduce((a, b) => a * b)), dims) };
  const fetches = [session.outputNames[0]];
  await session.run(feeds, fetches);
  const t0 = performance.now();
  await session.run(feeds, fetches);
  return performance.now() - t0;
}

export class ChoiceCache {
  private readonly key: string;

  /** `devices` names every candidate ("webgpu:NVIDIA … (Vulkan)"): a new GPU or driver means measuring again. */
  constructor(
    private readonly file: string,
    model: Uint8Array | string,
    devices: string[],
  ) {
    const h = createHash('sha256');
    // A graph file (external-data builds) lives in the cache under its weights' content hash: its path names it.
    h.update(typeof model === 'string' ? `file:${model}` : model);
    h.update(`\n${os.hostname()}\n${os.cpus()[0]?.model}\n${os.availableParallelism()}\n${devices.join('\n')}`);
    this.key = h.digest('hex').slice(0, 32);
  }

  async get(): Promise<Choice | undefined> {
    return (await this.read())[this.key];
  }

  async set(choice: Choice): Promise<void> {
    const all = await this.read();
    all[this.key] = choice;
    await writeFileAtomic(this.file, JSON.stringify(all, null, 1) + '\n').catch(() => undefined);
  }

  /** A missing or unreadable file is an empty cache: the choice is only an optimisation. */
  private async read(): Promise<Record<string, Choice>> {
    try {
      const parsed = JSON.parse(await fs.readFile(this.file, 'utf8'));
      return parsed && typeof parsed === 'object' ? parsed : {};
    } catch {
      return {};
    }
  }
}
