/**
 * The dashboard's curves, drawn with uPlot. A chart is a list of lines (x and y arrays); lines of
 * different lengths and x values share one chart through uPlot.join. With smoothing on, each line
 * is drawn twice: raw and faint, then smoothed on top (as TensorBoard does). Charts are updated in
 * place with setData while their series stay the same, and rebuilt when the series change.
 */
import uPlot from 'uplot';
import { smoothEma } from './analysis';

export interface Line {
  label: string;
  color: string;
  dashed?: boolean;
  x: number[];
  y: (number | null)[];
  /** Not smoothed (the learning rate follows a schedule, it is not noisy). */
  exact?: boolean;
}

export interface ChartSpec {
  id: string;
  title: string;
  /** Section heading (tfevents: the tag's prefix before '/'). */
  group?: string;
  xLabel: string;
  lines: Line[];
}

export interface ChartOptions {
  smoothing: number;
  logY: boolean;
}

interface Chart {
  el: HTMLElement;
  plot: uPlot;
  key: string;
  spec: ChartSpec;
}

/** The live charts by id; tests read them (window.__vitLensCharts). */
export const charts = new Map<string, Chart>();

function cssVar(name: string, fallback: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
}

/** Series colours from the VS Code theme's chart palette. */
export function palette(): string[] {
  return [
    cssVar('--vscode-charts-blue', '#3794ff'),
    cssVar('--vscode-charts-orange', '#d18616'),
    cssVar('--vscode-charts-green', '#89d185'),
    cssVar('--vscode-charts-purple', '#b180d7'),
    cssVar('--vscode-charts-red', '#f14c4c'),
    cssVar('--vscode-charts-yellow', '#cca700'),
  ];
}

/** Sort by x and keep the last value for a repeated x (a restarted writer logs the same steps again). */
function clean(line: Line, logY: boolean): [number[], (number | null)[]] {
  const byX = new Map<number, number | null>();
  for (let i = 0; i < line.x.length; i++) {
    const x = line.x[i];
    if (!Number.isFinite(x)) continue;
    let y = line.y[i];
    if (y !== null && (!Number.isFinite(y) || (logY && y <= 0))) y = null;
    byX.set(x, y);
  }
  const xs = [...byX.keys()].sort((a, b) => a - b);
  return [xs, xs.map(x => byX.get(x) ?? null)];
}

interface Drawn {
  data: uPlot.AlignedData;
  series: uPlot.Series[];
  labels: string[];
}

function build(spec: ChartSpec, o: ChartOptions): Drawn {
  const tables: uPlot.AlignedData[] = [];
  const series: uPlot.Series[] = [{}];
  const labels: string[] = [];
  for (const line of spec.lines) {
    const [xs, ys] = clean(line, o.logY);
    if (!xs.length) continue;
    const smooth = !line.exact && o.smoothing > 0 && xs.length > 1;
    const dash = line.dashed ? [6, 4] : undefined;
    if (smooth) {
      tables.push([xs, ys]);
      series.push({
        label: `${line.label} (raw)`,
        stroke: line.color,
        alpha: 0.25,
        width: 1,
        dash,
        spanGaps: true,
        points: { show: false },
      });
      labels.push('');
      tables.push([xs, smoothEma(ys, o.smoothing)]);
    } else {
      tables.push([xs, ys]);
    }
    series.push({
      label: line.label,
      stroke: line.color,
      width: 2,
      dash,
      spanGaps: true,
      points: { show: xs.length < 3, size: 5, fill: line.color },
    });
    labels.push(line.label);
  }
  const data = tables.length ? uPlot.join(tables) : ([[]] as unknown as uPlot.AlignedData);
  return { data, series, labels };
}

const WHOLE_INCREMENTS = Array.from({ length: 16 }, (_, e) => [1, 2, 5].map(m => m * 10 ** e)).flat();

function options(spec: ChartSpec, d: Drawn, o: ChartOptions, width: number, readout: HTMLElement): uPlot.Options {
  const fg = cssVar('--vscode-descriptionForeground', cssVar('--vscode-foreground', '#999'));
  const grid = cssVar('--vscode-editorWidget-border', cssVar('--vscode-panel-border', 'rgba(128,128,128,0.25)'));
  const font = `11px ${cssVar('--vscode-font-family', 'sans-serif')}`;
  const axis = (label?: string): uPlot.Axis => ({
    stroke: fg,
    font,
    labelFont: font,
    grid: { stroke: grid, width: 1 },
    ticks: { stroke: grid, width: 1 },
    label,
    labelSize: label ? 14 : 0,
    size: 36,
    // Compact ticks: 1.2e-3 rather than 0.001 three times, 2.5e+11 rather than overlapping digits.
    values: (_u, splits) => splits.map(v => (v === null || v === undefined ? '' : fmt(v))),
  });
  return {
    width,
    height: 220,
    legend: { show: false },
    padding: [8, 12, 0, 0],
    scales: { x: { time: false }, y: o.logY ? { distr: 3, log: 10 } : { distr: 1 } },
    // Steps and epochs are whole numbers: no 1.2, 1.4 … ticks on a short run.
    axes: [
      { ...axis(spec.xLabel), incrs: WHOLE_INCREMENTS },
      { ...axis(), size: 56 },
    ],
    series: d.series,
    cursor: { drag: { x: true, y: false, setScale: true } },
    hooks: {
      setCursor: [
        u => {
          const i = u.cursor.idx;
          if (i === null || i === undefined) return void (readout.textContent = '');
          const x = u.data[0][i];
          const parts = [`${spec.xLabel} ${fmt(x)}`];
          for (let s = 1; s < u.series.length; s++) {
            const label = d.labels[s - 1];
            const v = u.data[s][i];
            if (label && v !== null && v !== undefined) parts.push(`${label} ${fmt(v)}`);
          }
          readout.textContent = parts.join(' · ');
        },
      ],
    },
  };
}

export function fmt(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(2).replace(/\.?0+e/, 'e');
  if (Number.isInteger(v)) return String(v);
  return String(Number(v.toPrecision(4)));
}

/** Bring the chart area in line with the specs: update charts in place, add new ones, drop stale ones. */
export function renderCharts(container: HTMLElement, specs: ChartSpec[], o: ChartOptions): void {
  const seen = new Set<string>();
  const width = chartWidth(container);
  let groupEl: HTMLElement | undefined;
  let lastGroup: string | undefined;
  const order: HTMLElement[] = [];
  for (const spec of specs) {
    seen.add(spec.id);
    if (spec.group !== lastGroup && spec.group !== undefined) {
      lastGroup = spec.group;
      groupEl = document.createElement('h3');
      groupEl.className = 'chart-group';
      groupEl.textContent = spec.group;
      order.push(groupEl);
    }
    const d = build(spec, o);
    const key = JSON.stringify([d.series.map(s => [s.label, s.stroke, s.alpha, s.dash]), o.logY, width]);
    let chart = charts.get(spec.id);
    if (chart && chart.key === key) {
      chart.plot.setData(d.data);
      chart.spec = spec;
    } else {
      chart?.plot.destroy();
      const el = chart?.el ?? document.createElement('figure');
      el.className = 'chart';
      el.dataset.chart = spec.id;
      el.replaceChildren();
      const cap = document.createElement('figcaption');
      const title = document.createElement('span');
      title.className = 'chart-title';
      title.textContent = spec.title;
      const readout = document.createElement('span');
      readout.className = 'readout';
      cap.append(title, readout);
      el.append(cap);
      const plot = new uPlot(options(spec, d, o, width, readout), d.data, el);
      chart = { el, plot, key, spec };
      charts.set(spec.id, chart);
    }
    chart.el.dataset.points = String(d.data[0].length);
    order.push(chart.el);
  }
  for (const [id, c] of charts) {
    if (!seen.has(id)) {
      c.plot.destroy();
      charts.delete(id);
    }
  }
  // Re-append in order (moves existing nodes; uPlot keeps its canvas).
  const current = [...container.children];
  if (current.length !== order.length || current.some((c, i) => c !== order[i])) container.replaceChildren(...order);
}

function chartWidth(container: HTMLElement): number {
  // The grid's own column width: the stylesheet decides how many columns fit (two from about 500px),
  // so a chart sized here never overflows its cell. Less the figure's 1px borders.
  const track = parseFloat(getComputedStyle(container).gridTemplateColumns.split(' ')[0]);
  if (Number.isFinite(track) && track > 0) return Math.max(240, Math.floor(track) - 2);
  const w = container.clientWidth || document.body.clientWidth || 800;
  return Math.max(240, w - 2);
}

/** Drop every chart (theme change: colours are read when a chart is built). */
export function resetCharts(): void {
  for (const c of charts.values()) c.plot.destroy();
  charts.clear();
}
