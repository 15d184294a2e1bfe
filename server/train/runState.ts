/** What one training run holds while it trains, shared by the stages in trainer.ts and epoch.ts. */
import type * as tf from '@tensorflow/tfjs-core';
import type { WeightMap } from '../model/tensor';
import type { ViTArch } from '../model/vitConfig';
import type { PreprocessConfig } from '../preprocess';
import type { LoopState } from './checkpoint';
import type { SkippedFile } from './datasetFolder';
import type { PixelLoader } from './imageLoader';
import type { Optimizer } from './optimizer';
import type { RunInfo, RunReport, TrainConfig } from './runFiles';
import type { DataParallel } from './threads';
import type { PreparedInputs } from './trainInputs';
import type { ForwardInput, Params } from './vitModel';

export class TrainingError extends Error {}

/** One micro-batch's (or one slice's) mean loss, its gradients, and how many predictions were right. */
export interface BatchGradients {
  loss: number;
  grads: Map<string, tf.Tensor>;
  correct: number;
}

/** BatchGradients of `n` images: a whole micro-batch, or one thread's slice of it (threads.ts). */
export interface SliceGradients extends BatchGradients {
  n: number;
}

export interface TrainingRun {
  runDir: string;
  /** With warmupSteps resolved (recorded so in run.json). */
  config: TrainConfig;
  arch: ViTArch;
  pre: PreprocessConfig;
  classes: string[];
  loader: PixelLoader;
  params: Params;
  trainable: string[];
  optimizer: Optimizer;
  /** Loop position and running sums: checkpointed together with the weights and optimizer state. */
  loop: LoopState;
  inputs: PreparedInputs;
  info: RunInfo;
  report: RunReport;
  /** Every image left out so far (report.json). */
  skipped: SkippedFile[];
  microPerEpoch: number;
  totalSteps: number;
  log: (line: string) => void;
  logEvery: number;
  shouldStop?: () => boolean;
  /** True when a within-epoch checkpoint is due after the current step. */
  checkpointDue(): boolean;
  /** Restarts the within-epoch checkpoint clock (after any write of checkpoints/latest). */
  checkpointWritten(): void;
  /** Logs images found unreadable since the last call, and classes left without images. */
  warnUnreadable(): void;
  /** Loss and gradients of the trainable parameters on one micro-batch: one part, or one per thread's slice (threads.ts), in a fixed order. */
  gradients(input: ForwardInput, labels: Int32Array): Promise<SliceGradients[]>;
  /** The worker threads of a data-parallel run (closed by finishRun). */
  pool?: DataParallel;
}

/** The current weights as plain arrays (for checkpoints). */
export async function snapshot(params: Params): Promise<WeightMap> {
  const w: WeightMap = new Map();
  for (const [name, v] of params) w.set(name, { shape: v.shape.slice(), data: (await v.data()) as Float32Array });
  return w;
}

/** run.json's best-epoch fields: validation accuracy, or without validation images the training accuracy that chose the epoch (never called validation accuracy). */
export function bestAccuracy(
  loop: LoopState,
  validation: boolean,
): Pick<RunInfo, 'bestValAcc' | 'bestTrainAcc' | 'bestEpoch'> {
  if (loop.bestEpoch < 0) return { bestValAcc: undefined, bestTrainAcc: undefined, bestEpoch: undefined };
  return validation
    ? { bestValAcc: loop.bestValAcc, bestEpoch: loop.bestEpoch }
    : { bestTrainAcc: loop.bestValAcc, bestEpoch: loop.bestEpoch };
}
