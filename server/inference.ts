/**
 * One ONNX Runtime session for one ViT graph, on WebGPU, CUDA or the CPU.
 *
 * The graph's attention maps are graph outputs (ONNX Runtime returns nothing else), but they are only
 * *fetched* when explaining, so plain classification copies nothing extra out.
 *
 * `auto` takes CUDA when its provider is installed and starts, and WebGPU only on a hardware adapter
 * (a software one such as lavapipe is slower than the CPU provider); when one of those is available it
 * times one warm batch on each candidate and the CPU and keeps the fastest, remembering the choice per
 * model and machine (providerChoice.ts). A GPU session that fails during a run (device lost, out of
 * memory) is replaced by a CPU session and the run is repeated there.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ort from 'onnxruntime-node';
import { gpuDeviceNodesExist, probeWebGpuAdapter } from './webgpuAdapter';
import { ChoiceCache, timeWarmBatch } from './providerChoice';

import type { Provider, ProviderPreference } from '../common/options';

export type { Provider, ProviderPreference } from '../common/options';

/** Moved to webgpuAdapter.ts (the trainer needs it without ONNX Runtime); callers know it from here. */
export { gpuDeviceNodesExist };
export const PROVIDER_NAMES: Record<Provider, string> = { webgpu: 'WebGPU', cuda: 'CUDA', cpu: 'CPU' };

/** What VitSession needs of an ONNX Runtime session (tests wrap real ones to fake a slow or failing device). */
export type RunnableSession = Pick<ort.InferenceSession, 'run' | 'release' | 'outputNames'>;

/** How one execution provider is found and started: the seam the tests replace. */
export interface ProviderBackend {
  /** Whether it can run here and on what; `software` devices are never picked by `auto`. */
  probe(): Promise<{ device: string; software?: boolean } | { unavailable: string }>;
  /**
   * A cheap look for the hardware before `auto` probes (false: not even probed). Dawn prints warnings
   * while it enumerates a software Vulkan device, which every CLI run without a GPU would show.
   */
  hardwareMayExist?(): boolean;
  /** `model` is the graph's bytes, or its file when its weights are in external data (found beside the file). */
  create(model: Uint8Array | string, base: ort.InferenceSession.SessionOptions): Promise<RunnableSession>;
}

export interface SessionOptions {
  provider?: ProviderPreference;
  /** Intra-op threads for the CPU provider; default: all cores. */
  threads?: number;
  /** Replaces the real providers (tests). */
  backends?: Partial<Record<Provider, ProviderBackend>>;
  /** Where `auto` remembers its measured choice; without it, auto measures on every load. */
  choiceCacheFile?: string;
  /** The input shape `auto` times one batch with ([1, C, H, W]). */
  timingInput?: [number, number, number, number];
  /** Called once when a GPU session failed during a run and the session moved to the CPU. */
  onFallback?: (note: string) => void;
}

/**
 * onnxruntime-node ships the CUDA provider only when installed with ONNXRUNTIME_NODE_INSTALL=cuda12;
 * its library then sits beside the native binding.
 */
export function cudaProviderInstalled(): boolean {
  try {
    const binDir = path.join(path.dirname(require.resolve('onnxruntime-node/package.json')), 'bin');
    for (const napi of fs.readdirSync(binDir)) {
      const dir = path.join(binDir, napi, process.platform, process.arch);
      if (
        fs.existsSync(
          path.join(
            dir,
            process.platform === 'win32' ? 'onnxruntime_providers_cuda.dll' : 'libonnxruntime_providers_cuda.so',
          ),
        )
      )
        return true;
    }
  } catch {
    // not installed the usual way: treat as CPU-only
  }
  return false;
}

export function cpuDescription(threads: number): string {
  return `${os.cpus()[0]?.model.trim() || os.arch()} (${threads} thread${threads === 1 ? '' : 's'})`;
}

export function defaultBackends(threads: number): Record<Provider, ProviderBackend> {
  return {
    cpu: {
      probe: async () => ({ device: cpuDescription(threads) }),
      create: (model, base) => createSession(model, { ...base, executionProviders: ['cpu'] }),
    },
    cuda: {
      probe: async () =>
        cudaProviderInstalled()
          ? { device: 'CUDA device 0' }
          : {
              unavailable:
                'onnxruntime-node was installed without its CUDA provider (reinstall with ONNXRUNTIME_NODE_INSTALL=cuda12)',
            },
      create: (model, base) => createSession(model, { ...base, executionProviders: ['cuda', 'cpu'] }),
    },
    webgpu: {
      probe: async () => {
        const p = await probeWebGpuAdapter();
        return 'adapter' in p ? { device: p.adapter.name, software: p.adapter.software } : { unavailable: p.error };
      },
      hardwareMayExist: gpuDeviceNodesExist,
      // Warnings only: ORT reports every shape op it leaves on the CPU, which is by design.
      create: (model, base) =>
        createSession(model, { ...base, logSeverityLevel: 3, executionProviders: ['webgpu', 'cpu'] }),
    },
  };
}

/**
 * ONNX Runtime's error text without what only its developers can use: ANSI colour codes, the C++
 * source path and line, and the C++ function signature after it. What is left says what is wrong.
 */
export function cleanOrtMessage(message: string): string {
  return (
    message
      // eslint-disable-next-line no-control-regex -- ANSI colour codes start with ESC
      .replace(/\x1b\[[0-9;]*m/g, '')
      .replace(
        /\S+\.(?:cc|cpp|cxx|h|hpp|cu):\d+\s+(?:(?:[\w:<>,*&]+\s+){0,3}?(?:onnxruntime|std)::[^(]*\([^)]*\)(?:\s*const)?(?:\s*\[with [^\]]*\])?\s*)?/g,
        '',
      )
      .replace(/\s+/g, ' ')
      .trim()
  );
}

/** An ORT failure as an Error whose message is cleaned (see cleanOrtMessage). */
function ortError(e: unknown): Error {
  return new Error(cleanOrtMessage(e instanceof Error ? e.message : String(e)));
}

/** ORT's own log lines go straight to stderr, coloured; its errors reach us as exceptions anyway. */
const ORT_LOG_SEVERITY = process.env.VIT_LENS_DEBUG ? 2 : 4;

export interface RunResult {
  logits: Float32Array;
  numClasses: number;
  /** The extra outputs that were asked for, by name. */
  outputs: Record<string, ort.Tensor>;
}

interface Started {
  session: RunnableSession;
  provider: Provider;
  device: string;
  note?: string;
}

export class VitSession {
  private constructor(
    private session: RunnableSession,
    private current: { provider: Provider; device: string; note?: string },
    readonly inputName: string,
    readonly logitsName: string,
    /** Kept while on a GPU, to start a CPU session if the device fails; dropped on the CPU. */
    private model: Uint8Array | string | undefined,
    private readonly cpu: {
      backend: ProviderBackend;
      base: ort.InferenceSession.SessionOptions;
      onFallback?: (note: string) => void;
    },
  ) {}

  get provider(): Provider {
    return this.current.provider;
  }

  /** The adapter or CPU the session runs on, for people. */
  get device(): string {
    return this.current.device;
  }

  /** Why the session is not on the provider that was asked for, or how `auto` chose. */
  get providerNote(): string | undefined {
    return this.current.note;
  }

  static async create(
    model: Uint8Array | string,
    names: { input: string; logits: string },
    opts: SessionOptions = {},
  ): Promise<VitSession> {
    const threads = opts.threads ?? os.availableParallelism();
    const backends = { ...defaultBackends(threads), ...opts.backends };
    const base: ort.InferenceSession.SessionOptions = {
      graphOptimizationLevel: 'all',
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      logSeverityLevel: ORT_LOG_SEVERITY,
    };
    const want = opts.provider ?? 'auto';
    const started =
      want === 'auto'
        ? await startAuto(model, names.input, backends, base, opts)
        : await startRequested(want, model, backends, base);
    return new VitSession(
      started.session,
      started,
      names.input,
      names.logits,
      started.provider === 'cpu' ? undefined : model,
      {
        backend: backends.cpu,
        base,
        onFallback: opts.onFallback,
      },
    );
  }

  get outputNames(): readonly string[] {
    return this.session.outputNames;
  }

  /**
   * Run a batch of CHW pixel tensors (already normalised), N × C × H × W in one Float32Array,
   * fetching the logits and any `extra` outputs (attention maps are only copied out when asked for).
   */
  async run(
    pixels: Float32Array,
    dims: [number, number, number, number],
    extra: readonly string[] = [],
  ): Promise<RunResult> {
    const out = await this.runFeeds({ [this.inputName]: new ort.Tensor('float32', pixels, dims) }, [
      this.logitsName,
      ...extra,
    ]).catch((e: unknown) => {
      throw ortError(e);
    });
    const logits = out[this.logitsName];
    const outputs: Record<string, ort.Tensor> = {};
    for (const name of extra) outputs[name] = out[name];
    return { logits: logits.data as Float32Array, numClasses: Number(logits.dims[logits.dims.length - 1]), outputs };
  }

  /** Run a batch and fetch exactly `names` (no logits: for graphs without them, e.g. a truncated `hidden.{n}` graph). */
  async fetch(
    pixels: Float32Array,
    dims: [number, number, number, number],
    names: readonly string[],
  ): Promise<Record<string, ort.Tensor>> {
    const out = await this.runFeeds({ [this.inputName]: new ort.Tensor('float32', pixels, dims) }, [...names]).catch(
      (e: unknown) => {
        throw ortError(e);
      },
    );
    const picked: Record<string, ort.Tensor> = {};
    for (const name of names) picked[name] = out[name];
    return picked;
  }

  async release(): Promise<void> {
    await this.session.release();
  }

  /**
   * A GPU run that throws is repeated on a fresh CPU session; if that works, the session stays on the
   * CPU from then on (one onFallback call). If the CPU fails too, the input was at fault, not the
   * device: the GPU session is kept and the original error thrown.
   */
  private async runFeeds(
    feeds: ort.InferenceSession.FeedsType,
    fetches: string[],
  ): Promise<ort.InferenceSession.ReturnType> {
    try {
      return await this.session.run(feeds, fetches);
    } catch (e) {
      if (!this.model) throw e;
      const cpu = await this.cpu.backend.create(this.model, this.cpu.base);
      let out: ort.InferenceSession.ReturnType;
      try {
        out = await cpu.run(feeds, fetches);
      } catch {
        await cpu.release();
        throw e;
      }
      const failed = this.session;
      const note = `${PROVIDER_NAMES[this.current.provider]} failed during a run (${firstLine(e)}); switched to CPU`;
      this.session = cpu;
      this.current = {
        provider: 'cpu',
        device: await this.cpu.backend.probe().then(p => ('device' in p ? p.device : 'CPU')),
        note,
      };
      this.model = undefined;
      await failed.release().catch(() => undefined);
      this.cpu.onFallback?.(note);
      return out;
    }
  }
}

/** An explicit provider: used even on a software adapter; the CPU, with the reason, when it cannot start. */
async function startRequested(
  want: Provider,
  model: Uint8Array | string,
  backends: Record<Provider, ProviderBackend>,
  base: ort.InferenceSession.SessionOptions,
): Promise<Started> {
  let note: string | undefined;
  if (want !== 'cpu') {
    const p = await backends[want].probe();
    if ('unavailable' in p) note = `${PROVIDER_NAMES[want]} was requested but ${p.unavailable}; using CPU`;
    else {
      try {
        return { session: await backends[want].create(model, base), provider: want, device: p.device };
      } catch (e) {
        note = `${PROVIDER_NAMES[want]} provider failed to start on ${p.device} (${firstLine(e)}); using CPU`;
      }
    }
  }
  return { ...(await startCpu(model, backends.cpu, base)), note };
}

async function startCpu(
  model: Uint8Array | string,
  cpu: ProviderBackend,
  base: ort.InferenceSession.SessionOptions,
): Promise<Started> {
  const p = await cpu.probe();
  return { session: await cpu.create(model, base), provider: 'cpu', device: 'device' in p ? p.device : 'CPU' };
}

/**
 * `auto`: the hardware GPUs that are available, each started and timed against the CPU on one warm
 * batch (unless a remembered choice for this model and machine names one); the fastest is kept.
 */
async function startAuto(
  model: Uint8Array | string,
  inputName: string,
  backends: Record<Provider, ProviderBackend>,
  base: ort.InferenceSession.SessionOptions,
  opts: SessionOptions,
): Promise<Started> {
  const candidates: { provider: Provider; device: string }[] = [];
  for (const provider of ['cuda', 'webgpu'] as const) {
    if (backends[provider].hardwareMayExist?.() === false) continue;
    const p = await backends[provider].probe();
    if ('device' in p && !p.software) candidates.push({ provider, device: p.device });
  }
  if (candidates.length === 0) return startCpu(model, backends.cpu, base);
  const cpuProbe = await backends.cpu.probe();
  candidates.push({ provider: 'cpu', device: 'device' in cpuProbe ? cpuProbe.device : 'CPU' });

  const cache = opts.choiceCacheFile
    ? new ChoiceCache(
        opts.choiceCacheFile,
        model,
        candidates.map(c => `${c.provider}:${c.device}`),
      )
    : undefined;
  const remembered = await cache?.get();
  const pick = candidates.find(c => c.provider === remembered?.provider);
  if (pick && remembered) {
    try {
      return { session: await backends[pick.provider].create(model, base), ...pick, note: remembered.note };
    } catch {
      // The remembered provider no longer starts: measure again.
    }
  }

  const timings: { started: Started; ms: number }[] = [];
  const failures: string[] = [];
  for (const c of candidates) {
    let session: RunnableSession | undefined;
    try {
      session = await backends[c.provider].create(model, base);
      timings.push({
        started: { session, ...c },
        ms: await timeWarmBatch(session, inputName, opts.timingInput ?? [1, 3, 224, 224]),
      });
    } catch (e) {
      await session?.release().catch(() => undefined);
      failures.push(`${PROVIDER_NAMES[c.provider]} failed (${firstLine(e)})`);
    }
  }
  timings.sort((a, b) => a.ms - b.ms);
  const [best, ...rest] = timings;
  for (const t of rest) await t.started.session.release();
  if (!best) return { ...(await startCpu(model, backends.cpu, base)), note: `auto: ${failures.join('; ')}; using CPU` };
  const note = `auto chose ${PROVIDER_NAMES[best.started.provider]}: ${timings.map(t => `${PROVIDER_NAMES[t.started.provider]} ${t.ms.toFixed(1)} ms`).join(' vs ')} per image${failures.length ? `; ${failures.join('; ')}` : ''}`;
  await cache?.set({ provider: best.started.provider, note });
  return { ...best.started, note };
}

function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0];
}

/** The overloads of InferenceSession.create take a path or bytes, not the union. */
function createSession(
  model: Uint8Array | string,
  options: ort.InferenceSession.SessionOptions,
): Promise<ort.InferenceSession> {
  return typeof model === 'string'
    ? ort.InferenceSession.create(model, options)
    : ort.InferenceSession.create(model, options);
}

export function softmax(logits: ArrayLike<number>, start = 0, count = logits.length): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < count; i++) max = Math.max(max, logits[start + i]);
  const out = new Float64Array(count);
  let sum = 0;
  for (let i = 0; i < count; i++) sum += out[i] = Math.exp(logits[start + i] - max);
  for (let i = 0; i < count; i++) out[i] /= sum;
  return out;
}
