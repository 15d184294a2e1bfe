/**
 * One ONNX Runtime session for one ViT graph, on CUDA when available and asked for, else CPU.
 *
 * The graph's attention maps are graph outputs (ONNX Runtime returns nothing else), but they are only
 * *fetched* when explaining, so plain classification copies nothing extra out.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ort from 'onnxruntime-node';

export type ProviderPreference = 'auto' | 'cuda' | 'cpu';
export type Provider = 'cuda' | 'cpu';

export interface SessionOptions {
  provider?: ProviderPreference;
  /** Intra-op threads for the CPU provider; default: all cores. */
  threads?: number;
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
      if (fs.existsSync(path.join(dir, process.platform === 'win32' ? 'onnxruntime_providers_cuda.dll' : 'libonnxruntime_providers_cuda.so'))) return true;
    }
  } catch {
    // not installed the usual way: treat as CPU-only
  }
  return false;
}

/**
 * ONNX Runtime's error text without what only its developers can use: ANSI colour codes, the C++
 * source path and line, and the C++ function signature after it. What is left says what is wrong.
 */
export function cleanOrtMessage(message: string): string {
  return message
    .replace(/\x1b\[[0-9;]*m/g, '')
    .replace(/\S+\.(?:cc|cpp|cxx|h|hpp|cu):\d+\s+(?:(?:[\w:<>,*&]+\s+){0,3}?(?:onnxruntime|std)::[^(]*\([^)]*\)(?:\s*const)?(?:\s*\[with [^\]]*\])?\s*)?/g, '')
    .replace(/\s+/g, ' ')
    .trim();
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

export class VitSession {
  private constructor(
    private readonly session: ort.InferenceSession,
    readonly provider: Provider,
    /** Why the session is not on the provider that was asked for, if it is not. */
    readonly providerNote: string | undefined,
    readonly inputName: string,
    readonly logitsName: string,
  ) {}

  static async create(model: Uint8Array, names: { input: string; logits: string }, opts: SessionOptions = {}): Promise<VitSession> {
    const want = opts.provider ?? 'auto';
    const base: ort.InferenceSession.SessionOptions = {
      graphOptimizationLevel: 'all',
      intraOpNumThreads: opts.threads ?? os.availableParallelism(),
      interOpNumThreads: 1,
      executionMode: 'sequential',
      logSeverityLevel: ORT_LOG_SEVERITY,
    };
    let note: string | undefined;
    if (want !== 'cpu') {
      if (cudaProviderInstalled()) {
        try {
          const s = await ort.InferenceSession.create(model, { ...base, executionProviders: ['cuda', 'cpu'] });
          return new VitSession(s, 'cuda', undefined, names.input, names.logits);
        } catch (e) {
          note = `CUDA provider failed to start (${(e as Error).message.split('\n')[0]}); using CPU`;
        }
      } else if (want === 'cuda') {
        note = 'CUDA was requested but onnxruntime-node was installed without its CUDA provider (reinstall with ONNXRUNTIME_NODE_INSTALL=cuda12); using CPU';
      }
    }
    const s = await ort.InferenceSession.create(model, { ...base, executionProviders: ['cpu'] });
    return new VitSession(s, 'cpu', note, names.input, names.logits);
  }

  get outputNames(): readonly string[] {
    return this.session.outputNames;
  }

  /**
   * Run a batch of CHW pixel tensors (already normalised), N × C × H × W in one Float32Array,
   * fetching the logits and any `extra` outputs (attention maps are only copied out when asked for).
   */
  async run(pixels: Float32Array, dims: [number, number, number, number], extra: readonly string[] = []): Promise<RunResult> {
    const out = await this.session.run({ [this.inputName]: new ort.Tensor('float32', pixels, dims) }, [this.logitsName, ...extra]).catch((e: unknown) => {
      throw ortError(e);
    });
    const logits = out[this.logitsName];
    const outputs: Record<string, ort.Tensor> = {};
    for (const name of extra) outputs[name] = out[name];
    return { logits: logits.data as Float32Array, numClasses: Number(logits.dims[logits.dims.length - 1]), outputs };
  }

  /** Run a batch and fetch exactly `names` (no logits: for graphs without them, e.g. a truncated `hidden.{n}` graph). */
  async fetch(pixels: Float32Array, dims: [number, number, number, number], names: readonly string[]): Promise<Record<string, ort.Tensor>> {
    const out = await this.session.run({ [this.inputName]: new ort.Tensor('float32', pixels, dims) }, [...names]).catch((e: unknown) => {
      throw ortError(e);
    });
    const picked: Record<string, ort.Tensor> = {};
    for (const name of names) picked[name] = out[name];
    return picked;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
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
