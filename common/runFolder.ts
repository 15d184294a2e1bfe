/**
 * The run directory's records (README, "Run directory format"), as the trainer writes them
 * (server/train/runFiles.ts) and the Runs view, the dashboard and `vit-lens runs` read them.
 */
import type { PreprocessConfig } from '../server/preprocess';
import type { ViTArch } from '../server/model/vitConfig';
import type { SkippedFile } from '../server/train/datasetFolder';
import type { RecordedStatus } from './runStatus';
import type { Mode, Optimizer } from './training';

export type RunStatus = RecordedStatus;

export interface TrainConfig {
  dataset: string;
  model: string;
  mode: Mode;
  lastK: number;
  epochs: number;
  batchSize: number;
  /** Micro-batches per optimizer step. */
  accumulate: number;
  lr: number;
  optimizer: Optimizer;
  weightDecay: number;
  momentum: number;
  warmupSteps: number;
  clipNorm: number;
  labelSmoothing: number;
  augment: boolean;
  imageSize?: [number, number];
  patchSize?: number;
  valSplit: number;
  seed: number;
}

export interface RunInfo {
  format: number;
  config: TrainConfig;
  classes: string[];
  backend: string;
  /** What ran the steps, for people ("WebGPU · NVIDIA H100 (Vulkan)", "CPU · 2 threads (wasm + fused kernels)"); absent in older runs. */
  device?: string;
  backendNotes: string[];
  status: RunStatus;
  /** Why the run failed or stopped. */
  reason?: string;
  pid: number;
  /** os.hostname() of the machine the trainer runs on (with pid: see common/runStatus.ts). */
  host?: string;
  createdAt: string;
  updatedAt: string;
  finishedAt?: string;
  epoch: number;
  totalEpochs: number;
  step: number;
  totalSteps: number;
  /** Best validation accuracy; absent when there is no validation set (then see bestTrainAcc). */
  bestValAcc?: number;
  /** Without validation images only: the best epoch's training accuracy, by which it was chosen. */
  bestTrainAcc?: number;
  bestEpoch?: number;
  trainImages: number;
  valImages: number;
  architecture?: ViTArch;
  preprocess?: PreprocessConfig;
  initNotes: string[];
}

export interface StepMetrics {
  type: 'step';
  epoch: number;
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
  imagesPerSec: number;
  time: string;
}

export interface EpochMetrics {
  type: 'epoch';
  epoch: number;
  step: number;
  trainLoss: number;
  trainAcc: number;
  valLoss?: number;
  valAcc?: number;
  perClassAcc?: (number | null)[];
  /** confusion[true][predicted] counts. */
  confusion?: number[][];
  seconds: number;
  time: string;
}

export interface HeldOutPrediction {
  file: string;
  label: number;
  predicted: number;
  probabilities: number[];
}

export interface RunReport {
  skipped: SkippedFile[];
  warnings: string[];
  bestEpoch?: number;
  heldOut: HeldOutPrediction[];
}
