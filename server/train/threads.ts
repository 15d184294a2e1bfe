/**
 * Data-parallel training on worker_threads (`--threads N`, wasm backend): tfjs-backend-wasm runs on
 * one thread, so each of N−1 workers holds its own wasm backend + fused kernels and a copy of the
 * model, and every micro-batch is cut into N contiguous slices: the first is computed here, the
 * others in the workers at the same time. Each worker writes its slice's gradients into its own
 * region of a SharedArrayBuffer; the slices' gradients are then summed here, weighted by slice size,
 * in thread order (so a run is deterministic for a given N), and the one optimizer step runs here.
 * The updated trainable weights go back to the workers through a second SharedArrayBuffer.
 */
import * as path from 'path';
import { Worker } from 'worker_threads';
import * as tf from '@tensorflow/tfjs-core';
import type { ViTArch } from '../model/vitConfig';
import { BatchGradients, SliceGradients, TrainingError } from './runState';
import { lossAndGrads } from './step';
import { ForwardInput, logits, Params } from './vitModel';

/** A trainable parameter's place in the shared weight and gradient buffers (float32 elements). */
export interface SharedSlot {
  name: string;
  shape: number[];
  offset: number;
  size: number;
}

/** What a worker gets at start (trainThread.ts). */
export interface ThreadInit {
  index: number;
  threads: number;
  arch: ViTArch;
  smoothing: number;
  /** Parameters that do not train: their values, once. */
  frozen: { name: string; shape: number[]; data: Float32Array }[];
  slots: SharedSlot[];
  weights: SharedArrayBuffer;
  /** This worker's gradient region. */
  grads: SharedArrayBuffer;
}

export interface SliceRequest {
  /** train: loss and gradients into the shared buffer; logits: the slice's logits only (validation). */
  purpose: 'train' | 'logits';
  kind: ForwardInput['kind'];
  fromBlock?: number;
  shape: number[];
  x: Float32Array;
  labels: Int32Array;
  /** Changes whenever the shared weights were rewritten (after each optimizer step). */
  weightsVersion: number;
}

export type ThreadReply =
  { ready: true } | { loss: number; correct: number } | { logits: Float32Array } | { error: string };
type SliceReply = Exclude<ThreadReply, { ready: true } | { error: string }>;

/** Sizes of N contiguous slices of n images (the first ones one larger when n is not a multiple of N). */
export function sliceSizes(n: number, threads: number): number[] {
  return Array.from({ length: threads }, (_, i) => Math.floor(n / threads) + (i < n % threads ? 1 : 0));
}

/** The worker's entry: the bundle's dist/trainThread.js, or the TypeScript source under tsx (tests, benchmarks). */
function threadEntry(): { file: string; eval: boolean } {
  if (__filename.endsWith('.ts')) {
    const source = path.join(__dirname, 'trainThread.ts');
    const tsx = 'tsx/cjs'; // a variable: the bundle (where this branch never runs) must not resolve it
    return {
      file: `require(${JSON.stringify(require.resolve(tsx))}); require(${JSON.stringify(source)});`,
      eval: true,
    };
  }
  return { file: path.join(__dirname, 'trainThread.js'), eval: false };
}

interface Pending {
  resolve: (r: SliceReply) => void;
  reject: (e: Error) => void;
}

export class DataParallel {
  private version = 0;
  /** The trainable variables' tensors as last written to the shared weights (dataIds change on assign). */
  private written: object[] = [];
  private readonly pending = new Map<number, Pending>();
  private broken?: Error;

  private constructor(
    readonly threads: number,
    private readonly workers: Worker[],
    private readonly slots: SharedSlot[],
    private readonly weights: Float32Array,
    private readonly grads: Float32Array[],
    private readonly params: Params,
    private readonly arch: ViTArch,
    private readonly smoothing: number,
  ) {
    workers.forEach((w, i) => {
      w.on('message', (m: ThreadReply) => {
        const p = this.pending.get(i);
        if (!p) return;
        this.pending.delete(i);
        if ('error' in m) p.reject(new TrainingError(`training thread ${i + 2} of ${threads} failed: ${m.error}`));
        else if ('loss' in m || 'logits' in m) p.resolve(m);
      });
      const fail = (e: Error) => {
        this.broken ??= new TrainingError(`training thread ${i + 2} of ${threads} failed: ${e.message}`);
        this.pending.get(i)?.reject(this.broken);
        this.pending.delete(i);
      };
      w.on('error', fail);
      w.on('exit', code => fail(new Error(`it exited (code ${code})`)));
    });
  }

  /** Starts `threads − 1` workers, each with its own wasm backend and a copy of the model. */
  static async start(
    threads: number,
    params: Params,
    trainable: readonly string[],
    arch: ViTArch,
    smoothing: number,
  ): Promise<DataParallel> {
    const slots: SharedSlot[] = [];
    let total = 0;
    for (const name of trainable) {
      const v = params.get(name)!;
      slots.push({ name, shape: v.shape.slice(), offset: total, size: v.size });
      total += v.size;
    }
    const trainableSet = new Set(trainable);
    const frozen = [...params]
      .filter(([n]) => !trainableSet.has(n))
      .map(([name, v]) => ({ name, shape: v.shape.slice(), data: v.dataSync() as Float32Array }));
    const weightsBuffer = new SharedArrayBuffer(total * 4);
    const gradBuffers = Array.from({ length: threads - 1 }, () => new SharedArrayBuffer(total * 4));
    const entry = threadEntry();
    const workers: Worker[] = [];
    try {
      for (let i = 1; i < threads; i++) {
        const init: ThreadInit = {
          index: i,
          threads,
          arch,
          smoothing,
          frozen,
          slots,
          weights: weightsBuffer,
          grads: gradBuffers[i - 1],
        };
        workers.push(new Worker(entry.file, { eval: entry.eval, workerData: init }));
      }
      await Promise.all(
        workers.map(
          (w, i) =>
            new Promise<void>((resolve, reject) => {
              const onExit = (code: number) =>
                reject(new Error(`thread ${i + 2} exited (code ${code}) while starting`));
              w.once('message', (m: ThreadReply) => {
                w.off('exit', onExit);
                if ('error' in m) reject(new Error(`thread ${i + 2}: ${m.error}`));
                else resolve();
              });
              w.once('error', reject);
              w.once('exit', onExit);
            }),
        ),
      );
    } catch (e) {
      await Promise.all(workers.map(w => w.terminate()));
      throw new TrainingError(`could not start ${threads} training threads: ${(e as Error).message}`);
    }
    return new DataParallel(
      threads,
      workers,
      slots,
      new Float32Array(weightsBuffer),
      gradBuffers.map(b => new Float32Array(b)),
      params,
      arch,
      smoothing,
    );
  }

  /** Copies the trainable weights into the shared buffer when the optimizer has changed them since the last copy. */
  private shareWeights(): void {
    const vars = this.slots.map(s => this.params.get(s.name)!);
    if (vars.every((v, i) => v.dataId === this.written[i])) return;
    vars.forEach((v, i) => this.weights.set(v.dataSync() as Float32Array, this.slots[i].offset));
    this.written = vars.map(v => v.dataId);
    this.version++;
  }

  /**
   * Sends each worker its slice of `input` (the first slice stays here) and returns the replies in
   * thread order (a resolved placeholder for an empty slice).
   */
  private postSlices(
    purpose: SliceRequest['purpose'],
    input: ForwardInput,
    sizes: number[],
    labels: Int32Array = new Int32Array(0),
  ): Promise<SliceReply | undefined>[] {
    const x = input.x.dataSync() as Float32Array;
    const per = x.length / Math.max(1, input.x.shape[0]);
    const rest = input.x.shape.slice(1);
    const replies: Promise<SliceReply | undefined>[] = [];
    let start = sizes[0];
    for (let t = 1; t < this.threads; t++) {
      const n = sizes[t];
      if (n) {
        const request: SliceRequest = {
          purpose,
          kind: input.kind,
          fromBlock: input.kind === 'tokens' ? input.fromBlock : undefined,
          shape: [n, ...rest],
          x: x.slice(start * per, (start + n) * per),
          labels: labels.slice(start, start + n),
          weightsVersion: this.version,
        };
        replies.push(
          new Promise((resolve, reject) => {
            this.pending.set(t - 1, { resolve, reject });
            this.workers[t - 1].postMessage(request, [
              request.x.buffer as ArrayBuffer,
              request.labels.buffer as ArrayBuffer,
            ]);
          }),
        );
      } else {
        replies.push(Promise.resolve(undefined));
      }
      start += n;
    }
    return replies;
  }

  /** The first slice of `input` (this thread's). */
  private ownSlice(input: ForwardInput, n: number): ForwardInput {
    return { ...input, x: tf.tidy(() => input.x.slice(0, n)) } as ForwardInput;
  }

  /** Loss and gradients of one micro-batch: its slices' size-weighted sum, as one part. */
  async gradients(input: ForwardInput, labels: Int32Array): Promise<SliceGradients[]> {
    if (this.broken) throw this.broken;
    this.shareWeights();
    const sizes = sliceSizes(labels.length, this.threads);
    const replies = this.postSlices('train', input, sizes, labels);
    // This thread's slice, computed while the workers compute theirs.
    let own: BatchGradients | undefined;
    let ownError: unknown;
    if (sizes[0]) {
      try {
        const sliceInput = this.ownSlice(input, sizes[0]);
        own = await lossAndGrads(
          this.params,
          this.arch,
          this.slots.map(s => s.name),
          sliceInput,
          labels.slice(0, sizes[0]),
          this.smoothing,
        );
        sliceInput.x.dispose();
      } catch (e) {
        ownError = e;
      }
    }
    const settled = await this.settle(replies, ownError, () => {
      if (own) for (const g of own.grads.values()) g.dispose();
    });
    return [this.combine(own, sizes, settled)];
  }

  /**
   * The logits of a batch of `n` images (validation), its slices computed on all threads at once.
   * A row's logits do not depend on the other rows of its batch (every kernel works per image or
   * per row, each sum in a fixed order), so they equal one thread's to the bit.
   */
  async logits(input: ForwardInput, n: number): Promise<tf.Tensor2D> {
    if (this.broken) throw this.broken;
    this.shareWeights();
    const sizes = sliceSizes(n, this.threads);
    const replies = this.postSlices('logits', input, sizes);
    let own: tf.Tensor2D | undefined;
    let ownError: unknown;
    try {
      const sliceInput = this.ownSlice(input, sizes[0]);
      own = tf.tidy(() => logits(this.params, this.arch, sliceInput));
      sliceInput.x.dispose();
    } catch (e) {
      ownError = e;
    }
    const settled = await this.settle(replies, ownError, () => own?.dispose());
    const classes = own!.shape[1];
    const parts = [own!];
    settled.forEach((reply, t) => {
      if (reply && 'logits' in reply) parts.push(tf.tensor2d(reply.logits, [sizes[t + 1], classes]));
    });
    const all = tf.concat(parts, 0);
    tf.dispose(parts);
    return all;
  }

  /**
   * The workers' replies once all have answered; if any failed, or this thread's slice did
   * (`ownError`), `discardOwn` frees this thread's result and the first failure is thrown.
   */
  private async settle(
    replies: Promise<SliceReply | undefined>[],
    ownError: unknown,
    discardOwn: () => void,
  ): Promise<(SliceReply | undefined)[]> {
    const settled = await Promise.allSettled(replies);
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed || ownError) {
      discardOwn();
      throw failed ? failed.reason : ownError;
    }
    return settled.map(s => (s as PromiseFulfilledResult<SliceReply | undefined>).value);
  }

  /**
   * The slices' size-weighted gradient sum as one part, in thread order, summed in plain float32
   * arrays (each product and sum rounded to float32, as TF.js's mul/add would, but without a kernel
   * call per parameter and slice).
   */
  private combine(
    own: BatchGradients | undefined,
    sizes: number[],
    replies: (SliceReply | undefined)[],
  ): SliceGradients {
    const n = sizes.reduce((a, b) => a + b, 0);
    const sum = new Float32Array(this.weights.length);
    let loss = 0;
    let correct = 0;
    if (own) {
      const w = Math.fround(sizes[0] / n);
      for (const slot of this.slots) {
        const g = own.grads.get(slot.name)!;
        const data = g.dataSync() as Float32Array;
        for (let i = 0; i < slot.size; i++) sum[slot.offset + i] = data[i] * w;
        g.dispose();
      }
      loss += own.loss * (sizes[0] / n);
      correct += own.correct;
    }
    replies.forEach((reply, t) => {
      const size = sizes[t + 1];
      if (!size || !reply || !('loss' in reply)) return;
      const w = Math.fround(size / n);
      const region = this.grads[t];
      for (let i = 0; i < sum.length; i++) sum[i] += Math.fround(region[i] * w);
      loss += reply.loss * (size / n);
      correct += reply.correct;
    });
    const grads = new Map(
      this.slots.map(slot => [slot.name, tf.tensor(sum.subarray(slot.offset, slot.offset + slot.size), slot.shape)]),
    );
    return { loss, correct, grads, n };
  }

  async close(): Promise<void> {
    this.broken ??= new TrainingError('training threads closed');
    await Promise.all(this.workers.map(w => w.terminate()));
  }
}
