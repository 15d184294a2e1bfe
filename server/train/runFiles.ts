/**
 * The run directory: the contract the editor UI and other tools read (documented in README.md,
 * "Run directory format").
 *   run.json        config, classes, backend, status, pid, timestamps (rewritten atomically)
 *   metrics.jsonl   one JSON object per line: {"type":"step",…} and {"type":"epoch",…}
 *   report.json     skipped files, warnings, held-out predictions of the best epoch
 *   checkpoints/    latest.safetensors, best.safetensors (atomic: temp file + rename)
 *   export/         the best checkpoint as a Hugging Face folder (written when the run ends)
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import { writeFileAtomic } from '../util/atomicFile';
import type { SkippedFile } from './datasetFolder';

export const RUN_FORMAT_VERSION = 1;

export type RunStatus = 'running' | 'finished' | 'failed' | 'stopped';

export interface TrainConfig {
  dataset: string;
  model: string;
  mode: 'head' | 'last-k' | 'full';
  lastK: number;
  epochs: number;
  batchSize: number;
  /** Micro-batches per optimizer step. */
  accumulate: number;
  lr: number;
  optimizer: 'adamw' | 'sgd';
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
  /** What ran the steps, for people ("WebGPU · NVIDIA H100 (Vulkan)", "CPU · 1 thread (wasm + fused kernels)"); absent in older runs. */
  device?: string;
  backendNotes: string[];
  status: RunStatus;
  /** Why the run failed or stopped. */
  reason?: string;
  pid: number;
  /** os.hostname() of the machine the trainer runs on (with pid: see extension/runs/runStatus.ts). */
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
  architecture?: import('../model/vitConfig').ViTArch;
  preprocess?: import('../preprocess').PreprocessConfig;
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

export const runFile = (dir: string) => path.join(dir, 'run.json');
export const metricsFile = (dir: string) => path.join(dir, 'metrics.jsonl');
export const reportFile = (dir: string) => path.join(dir, 'report.json');
export const checkpointFile = (dir: string, which: 'latest' | 'best') => path.join(dir, 'checkpoints', `${which}.safetensors`);
export const exportDir = (dir: string) => path.join(dir, 'export');

export async function writeRunInfo(dir: string, info: RunInfo): Promise<void> {
  info.updatedAt = new Date().toISOString();
  const text = JSON.stringify(info, null, 2) + '\n';
  try {
    await writeFileAtomic(runFile(dir), text);
  } catch (e) {
    // Disk full: no new file can be created, but run.json's own blocks can be overwritten, and a
    // status that says "failed" matters more here than an atomic replacement.
    if (!['ENOSPC', 'EDQUOT'].includes((e as NodeJS.ErrnoException).code ?? '')) throw e;
    const h = await fs.open(runFile(dir), 'r+').catch(() => { throw e; });
    try {
      const bytes = Buffer.from(text);
      await h.write(bytes, 0, bytes.length, 0);
      await h.truncate(bytes.length);
      await h.sync();
    } finally {
      await h.close();
    }
  }
}

export async function readRunInfo(dir: string): Promise<RunInfo> {
  const file = runFile(dir);
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch {
    throw new Error(`${dir}: not a run folder (no run.json)`);
  }
  try {
    return JSON.parse(text) as RunInfo;
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
}

export async function appendMetrics(dir: string, m: StepMetrics | EpochMetrics): Promise<void> {
  await fs.appendFile(metricsFile(dir), JSON.stringify(m) + '\n');
}

export async function readMetrics(dir: string): Promise<(StepMetrics | EpochMetrics)[]> {
  const text = await fs.readFile(metricsFile(dir), 'utf8').catch(() => '');
  const out: (StepMetrics | EpochMetrics)[] = [];
  // A crash can leave a half-written last line; it is dropped, not fatal.
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      out.push(JSON.parse(line));
    } catch {
      /* partial line */
    }
  }
  return out;
}

/** On resume, forget metrics written after the checkpoint (a crash may have left some). */
export async function truncateMetrics(dir: string, step: number, epochsDone: number): Promise<void> {
  const kept = (await readMetrics(dir)).filter((m) => (m.type === 'step' ? m.step <= step : m.epoch < epochsDone));
  await writeFileAtomic(metricsFile(dir), kept.map((m) => JSON.stringify(m) + '\n').join(''));
}

export async function writeReport(dir: string, report: RunReport): Promise<void> {
  await writeFileAtomic(reportFile(dir), JSON.stringify(report) + '\n');
}

/** Is the process that owns a "running" run still alive? */
export { processAlive } from '../util/processAlive';
