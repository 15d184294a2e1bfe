/**
 * The dashboard's numbers: curve smoothing, per-class metrics from a confusion matrix, label-issue
 * scores for held-out images, elapsed time and ETA. Pure functions, shared by the webview (which
 * draws them) and the unit tests (which check them against pandas / numpy / scipy).
 */
import type { RunHeader } from '../../common/webviewMessages/dashboard';

/**
 * TensorBoard's (and W&B's) debiased exponential moving average: `last = last·w + (1−w)·v`, divided
 * by `1 − w^n` so the first points are not pulled towards 0. Equal to pandas
 * `Series.ewm(alpha=1−w, adjust=True).mean()`. Non-finite values (NaN loss) pass through unchanged
 * and do not enter the average, as in TensorBoard.
 */
export function smoothEma(values: readonly (number | null)[], weight: number): (number | null)[] {
  const w = Math.min(Math.max(weight, 0), 0.999999);
  if (w === 0) return values.slice();
  let last = 0;
  let n = 0;
  return values.map(v => {
    if (v === null || !Number.isFinite(v)) return v;
    last = last * w + (1 - w) * v;
    n++;
    return last / (1 - Math.pow(w, n));
  });
}

export interface ClassMetrics {
  /** null where undefined (no image predicted as / labelled with the class). */
  precision: number | null;
  recall: number | null;
  f1: number | null;
  support: number;
}

export interface ClassReport {
  perClass: ClassMetrics[];
  accuracy: number | null;
  /** Unweighted mean over classes with a defined value. */
  macro: { precision: number | null; recall: number | null; f1: number | null };
  /** Mean weighted by support. */
  weighted: { precision: number | null; recall: number | null; f1: number | null };
  total: number;
}

/** Precision, recall and F1 per class from `confusion[true][predicted]` (sklearn's classification_report). */
export function classReport(confusion: readonly (readonly number[])[]): ClassReport {
  const k = confusion.length;
  const rowSum = confusion.map(r => r.reduce((a, b) => a + b, 0));
  const colSum = Array.from({ length: k }, (_, j) => confusion.reduce((a, r) => a + (r[j] ?? 0), 0));
  const total = rowSum.reduce((a, b) => a + b, 0);
  const diag = confusion.reduce((a, r, i) => a + (r[i] ?? 0), 0);
  const perClass = confusion.map((r, i): ClassMetrics => {
    const tp = r[i] ?? 0;
    const precision = colSum[i] > 0 ? tp / colSum[i] : null;
    const recall = rowSum[i] > 0 ? tp / rowSum[i] : null;
    const f1 =
      precision === null || recall === null
        ? null
        : precision + recall > 0
          ? (2 * precision * recall) / (precision + recall)
          : 0;
    return { precision, recall, f1, support: rowSum[i] };
  });
  const mean = (key: 'precision' | 'recall' | 'f1', weighted: boolean) => {
    let sum = 0;
    let wsum = 0;
    for (const c of perClass) {
      const v = c[key];
      if (v === null) continue;
      const wt = weighted ? c.support : 1;
      sum += v * wt;
      wsum += wt;
    }
    return wsum > 0 ? sum / wsum : null;
  };
  return {
    perClass,
    accuracy: total > 0 ? diag / total : null,
    macro: { precision: mean('precision', false), recall: mean('recall', false), f1: mean('f1', false) },
    weighted: { precision: mean('precision', true), recall: mean('recall', true), f1: mean('f1', true) },
    total,
  };
}

/** Shannon entropy in nats of a probability vector (renormalised; 0·log 0 = 0). */
export function entropy(p: readonly number[]): number {
  const sum = p.reduce((a, b) => a + (b > 0 ? b : 0), 0);
  if (!(sum > 0)) return 0;
  let h = 0;
  for (const v of p) if (v > 0) h -= (v / sum) * Math.log(v / sum);
  return h;
}

/**
 * FiftyOne's classification mistakenness (fiftyone.brain, `_compute_mistakenness_class`):
 * c = exp(−entropy(softmax(logits))); (1 + c)/2 when the prediction disagrees with the label,
 * (1 − c)/2 when it agrees. report.json keeps probabilities, not logits; softmax(log p) = p, so
 * the entropy of the stored probabilities is exactly the entropy FiftyOne takes of the logits.
 */
export function mistakenness(probabilities: readonly number[], label: number, predicted: number): number {
  const c = Math.exp(-entropy(probabilities));
  return predicted === label ? (1 - c) / 2 : (1 + c) / 2;
}

/** cleanlab's default `find_label_issues` ranking score: the probability the model gives the given label (low = suspect). */
export function selfConfidence(probabilities: readonly number[], label: number): number {
  const p = probabilities[label];
  return typeof p === 'number' && Number.isFinite(p) ? p : 0;
}

export interface Suspect<T> {
  item: T;
  selfConfidence: number;
  mistakenness: number;
}

/** Items ranked most suspect first: by self-confidence ascending, or by mistakenness descending. */
export function rankSuspects<T extends { label: number; predicted: number; probabilities: number[] }>(
  items: readonly T[],
  by: 'selfConfidence' | 'mistakenness',
): Suspect<T>[] {
  const scored = items.map(item => ({
    item,
    selfConfidence: selfConfidence(item.probabilities, item.label),
    mistakenness: mistakenness(item.probabilities, item.label, item.predicted),
  }));
  return scored.sort((a, b) =>
    by === 'selfConfidence' ? a.selfConfidence - b.selfConfidence : b.mistakenness - a.mistakenness,
  );
}

export interface Timing {
  /** Seconds from the run's start to its end (or to `now` while it runs). */
  elapsed: number;
  /** Seconds left at the recent pace; undefined when unknown or not running. */
  eta?: number;
}

/**
 * Elapsed from run.json's timestamps; ETA from the pace of the last few logged steps (a pace over
 * the whole run would include model loading and feature caching, and a resume's idle gap).
 */
export function timing(run: RunHeader, steps: readonly { step: number; time: string }[], now: number): Timing {
  const start = Date.parse(run.createdAt);
  const running = run.status === 'running';
  const end = running ? now : Date.parse(run.finishedAt ?? run.updatedAt);
  const elapsed = Number.isFinite(start) && Number.isFinite(end) ? Math.max(0, (end - start) / 1000) : 0;
  if (!running || steps.length < 2) return { elapsed };
  const recent = steps.slice(-20);
  const a = recent[0];
  const b = recent[recent.length - 1];
  const dt = (Date.parse(b.time) - Date.parse(a.time)) / 1000;
  const ds = b.step - a.step;
  if (!(dt > 0 && ds > 0) || !(run.totalSteps > 0)) return { elapsed };
  const sinceLast = Math.max(0, (now - Date.parse(b.time)) / 1000);
  const eta = Math.max(0, ((run.totalSteps - b.step) * dt) / ds - sinceLast);
  return { elapsed, eta };
}

/** "3d 4h", "1:02:03", "4:05", "12s", "0.4s" (a head-only fine-tune can finish in under a second: not "0s"). */
export function formatDuration(seconds: number): string {
  if (seconds < 9.95) return seconds < 0.05 ? (seconds > 0 ? '<0.1s' : '0s') : `${seconds.toFixed(1)}s`;
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s >= 86400) return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}
