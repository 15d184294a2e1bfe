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
import type { EpochMetrics, RunInfo, RunReport, StepMetrics } from '../../common/runFolder';

export const RUN_FORMAT_VERSION = 1;

// The run directory's record types are shared with the Runs view and the dashboard: common/runFolder.ts.
export type {
  RunStatus,
  TrainConfig,
  RunInfo,
  StepMetrics,
  EpochMetrics,
  HeldOutPrediction,
  RunReport,
} from '../../common/runFolder';

export const runFile = (dir: string) => path.join(dir, 'run.json');
export const metricsFile = (dir: string) => path.join(dir, 'metrics.jsonl');
export const reportFile = (dir: string) => path.join(dir, 'report.json');
export const checkpointFile = (dir: string, which: 'latest' | 'best') =>
  path.join(dir, 'checkpoints', `${which}.safetensors`);
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
    const h = await fs.open(runFile(dir), 'r+').catch(() => {
      throw e;
    });
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
  const kept = (await readMetrics(dir)).filter(m => (m.type === 'step' ? m.step <= step : m.epoch < epochsDone));
  await writeFileAtomic(metricsFile(dir), kept.map(m => JSON.stringify(m) + '\n').join(''));
}

/** A resumed run keeps the held-out predictions of its best epoch so far (none when the file is missing or unreadable). */
export async function carryOverReport(dir: string, report: RunReport): Promise<void> {
  const old = await fs
    .readFile(reportFile(dir), 'utf8')
    .then(t => JSON.parse(t) as RunReport)
    .catch(() => undefined);
  if (old) {
    report.heldOut = old.heldOut;
    report.bestEpoch = old.bestEpoch;
  }
}

export async function writeReport(dir: string, report: RunReport): Promise<void> {
  await writeFileAtomic(reportFile(dir), JSON.stringify(report) + '\n');
}

/** Is the process that owns a "running" run still alive? */
export { processAlive } from '../util/processAlive';
