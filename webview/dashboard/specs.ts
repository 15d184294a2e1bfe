/**
 * Which charts the dashboard shows for its sources. Our runs: loss, accuracy, learning rate,
 * images/s and gradient norm, against optimizer steps or epochs. TensorBoard folders: one chart per
 * tag, grouped under the tag's prefix ("train/loss" → "train"), one line per event-file run.
 * Colours: one per line for a single source (train and val apart), one per source when several are
 * overlaid (val dashed), so a run keeps its colour in every chart.
 */
import type { EpochMetrics, StepMetrics } from '../../common/workerRequests';
import type { SourceView } from '../../common/webviewMessages/dashboard';
import type { ChartSpec, Line } from './charts';

export type Axis = 'step' | 'epoch';

/** Steps per epoch, for the epoch axis: from run.json, else from the epoch lines. */
function stepsPerEpoch(s: SourceView): number | undefined {
  const r = s.run;
  if (r && r.totalEpochs > 0 && r.totalSteps > 0) return r.totalSteps / r.totalEpochs;
  const e = s.epochs[s.epochs.length - 1];
  return e && e.step > 0 ? e.step / (e.epoch + 1) : undefined;
}

export function sourceColor(index: number, colors: string[]): string {
  return colors[index % colors.length];
}

export function runChartSpecs(sources: SourceView[], axis: Axis, colors: string[]): ChartSpec[] {
  const runs = sources.filter(s => s.kind === 'run');
  if (!runs.length) return [];
  const overlay = runs.length > 1;
  const xLabel = axis === 'step' ? 'step' : 'epoch';
  const specs = {
    loss: [] as Line[],
    acc: [] as Line[],
    lr: [] as Line[],
    speed: [] as Line[],
    grad: [] as Line[],
  };
  runs.forEach(s => {
    const spe = stepsPerEpoch(s);
    const stepX = (m: StepMetrics) => (axis === 'step' ? m.step : spe ? m.step / spe : m.epoch + 1);
    const epochX = (m: EpochMetrics) => (axis === 'step' ? m.step : m.epoch + 1);
    const base = sourceColor(sources.indexOf(s), colors);
    const name = (what: string) => (overlay ? `${s.name} ${what}` : what);
    const trainColor = overlay ? base : colors[0];
    const valColor = overlay ? base : colors[1 % colors.length];
    const steps = s.steps;
    const epochs = s.epochs;
    const withVal = epochs.filter(e => typeof e.valLoss === 'number' || typeof e.valAcc === 'number');
    specs.loss.push({ label: name('train loss'), color: trainColor, x: steps.map(stepX), y: steps.map(m => m.loss) });
    if (withVal.length)
      specs.loss.push({
        label: name('val loss'),
        color: valColor,
        dashed: overlay,
        x: withVal.map(epochX),
        y: withVal.map(m => m.valLoss ?? null),
      });
    specs.acc.push({
      label: name('train acc'),
      color: trainColor,
      x: epochs.map(epochX),
      y: epochs.map(m => m.trainAcc),
    });
    if (withVal.length)
      specs.acc.push({
        label: name('val acc'),
        color: valColor,
        dashed: overlay,
        x: withVal.map(epochX),
        y: withVal.map(m => m.valAcc ?? null),
      });
    specs.lr.push({ label: name('lr'), color: trainColor, exact: true, x: steps.map(stepX), y: steps.map(m => m.lr) });
    specs.speed.push({
      label: name('images/s'),
      color: trainColor,
      x: steps.map(stepX),
      y: steps.map(m => m.imagesPerSec),
    });
    specs.grad.push({
      label: name('grad norm'),
      color: trainColor,
      x: steps.map(stepX),
      y: steps.map(m => m.gradNorm),
    });
  });
  return [
    { id: 'run:loss', title: 'Loss', xLabel, lines: specs.loss },
    { id: 'run:accuracy', title: 'Accuracy', xLabel, lines: specs.acc },
    { id: 'run:lr', title: 'Learning rate', xLabel, lines: specs.lr },
    { id: 'run:speed', title: 'Images/s', xLabel, lines: specs.speed },
    { id: 'run:grad', title: 'Gradient norm (before clipping)', xLabel, lines: specs.grad },
  ];
}

/** TensorBoard lines, one per (source, event-file run), in first-seen order: their labels and colours. */
function tfRuns(sources: SourceView[], colors: string[]): Map<string, { label: string; color: string }> {
  const tf = sources.filter(s => s.kind === 'tfevents');
  const multiSource = tf.length > 1;
  const runs = new Map<string, { label: string; color: string }>();
  for (const s of tf) {
    for (const series of s.scalars) {
      const key = `${s.id}\u0000${series.run}`;
      if (runs.has(key)) continue;
      const label =
        [multiSource ? s.name : '', series.run === '.' ? '' : series.run].filter(Boolean).join(' / ') || s.name;
      // Colour by (source, run): the same run has the same colour in every chart.
      runs.set(key, { label, color: colors[runs.size % colors.length] });
    }
  }
  return runs;
}

export function tfChartSpecs(sources: SourceView[], colors: string[]): ChartSpec[] {
  const runs = tfRuns(sources, colors);
  const byTag = new Map<string, Line[]>();
  for (const s of sources) {
    if (s.kind !== 'tfevents') continue;
    for (const series of s.scalars) {
      const { label, color } = runs.get(`${s.id}\u0000${series.run}`)!;
      const lines = byTag.get(series.tag) ?? [];
      lines.push({ label, color, x: series.step, y: series.value });
      byTag.set(series.tag, lines);
    }
  }
  const tags = [...byTag.keys()].sort((a, b) => group(a).localeCompare(group(b)) || a.localeCompare(b));
  return tags.map(tag => ({ id: `tf:${tag}`, title: tag, group: group(tag), xLabel: 'step', lines: byTag.get(tag)! }));
}

function group(tag: string): string {
  const i = tag.indexOf('/');
  return i > 0 ? tag.slice(0, i) : 'scalars';
}

/** Legend entries: one per source when several are overlaid, one per event-file run for TensorBoard. */
export function legendEntries(sources: SourceView[], colors: string[]): { label: string; color: string }[] {
  const runs = sources.filter(s => s.kind === 'run');
  const out: { label: string; color: string }[] = [];
  if (runs.length > 1)
    for (const s of runs) out.push({ label: s.name, color: sourceColor(sources.indexOf(s), colors) });
  if (runs.length === 1) {
    out.push({ label: 'train', color: colors[0] });
    if (runs[0].epochs.some(e => typeof e.valAcc === 'number'))
      out.push({ label: 'val', color: colors[1 % colors.length] });
  }
  out.push(...tfRuns(sources, colors).values());
  return out;
}
