/**
 * The training dashboard's script. The extension sends a snapshot of every source after `ready`
 * and deltas after that; this page merges them, draws (at most once per animation frame), and
 * keeps its view settings and the list of sources with setState (VS Code hands that back after a
 * reload, and the extension's serializer reopens the same sources from it).
 */
import 'uplot/dist/uPlot.min.css';
import './dashboard.css';
import { formatDuration, timing } from './analysis';
import type {
  DashboardSource,
  HeldOutView,
  HostMessage,
  SourceView,
  WebviewMessage,
} from '../../common/webviewMessages/dashboard';
import { palette, renderCharts, resetCharts, charts } from './charts';
import { EvalUi, pickEpoch, renderCellImages, renderConfusion, renderReport } from './evaluation';
import { ImageActions, renderGallery, renderSuspects, thumb } from './images';
import { Axis, legendEntries, runChartSpecs, tfChartSpecs } from './specs';
import { $, vscodeApi } from '../vscodeApi';

interface Saved {
  sources: DashboardSource[];
  axis: Axis;
  smoothing: number;
  logY: boolean;
  rank: 'selfConfidence' | 'mistakenness';
  evalSource: number | null;
  eval: EvalUi;
}

const vscode = vscodeApi<WebviewMessage, Saved>();
const saved = vscode.getState();
const ui: Saved = {
  sources: saved?.sources ?? [],
  axis: saved?.axis === 'epoch' ? 'epoch' : 'step',
  smoothing: typeof saved?.smoothing === 'number' ? saved.smoothing : 0.6,
  logY: saved?.logY === true,
  rank: saved?.rank === 'mistakenness' ? 'mistakenness' : 'selfConfidence',
  evalSource: saved?.evalSource ?? null,
  eval: {
    normalize: saved?.eval?.normalize === true,
    cell: saved?.eval?.cell ?? null,
    epoch: saved?.eval?.epoch ?? null,
  },
};
let sources: SourceView[] = [];
/** Bumped when what the evaluation sections show may have changed (they are not redrawn for every new step). */
let evalVersion = 0;
const reportJson = new Map<number, string>();

const el = {
  runs: $('runs'),
  notices: $('notices'),
  axisStep: $('axis-step'),
  axisEpoch: $('axis-epoch'),
  smoothing: $<HTMLInputElement>('smoothing'),
  smoothingValue: $('smoothing-value'),
  logY: $<HTMLInputElement>('log-y'),
  legend: $('legend'),
  charts: $('charts'),
  evaluation: $('evaluation'),
  evalRun: $<HTMLSelectElement>('eval-run'),
  evalRunLabel: $('eval-run-label'),
  evalEpoch: $<HTMLSelectElement>('eval-epoch'),
  evalNote: $('eval-note'),
  normalize: $<HTMLInputElement>('normalize'),
  confusion: $<HTMLTableElement>('confusion'),
  prf: $<HTMLTableElement>('prf'),
  cellImages: $('cell-images'),
  gallery: $('gallery'),
  misclassified: $('misclassified'),
  misCount: $('misclassified-count'),
  lowConfidence: $('low-confidence'),
  suspects: $('suspects'),
  suspectRank: $<HTMLSelectElement>('suspect-rank'),
  suspectTable: $<HTMLTableElement>('suspect-table'),
  problems: $<HTMLDetailsElement>('problems'),
  problemList: $('problem-list'),
};

// Tests look at the live uPlot instances.
(globalThis as unknown as { __vitLensCharts: typeof charts }).__vitLensCharts = charts;

function save(): void {
  vscode.setState(ui);
}

// ---- messages ----
window.addEventListener('message', (e: MessageEvent<HostMessage>) => {
  const m = e.data;
  switch (m?.type) {
    case 'snapshot':
      sources = m.sources;
      evalVersion++;
      ui.sources = sources.map(s => ({ kind: s.kind, dir: s.dir }));
      save();
      break;
    case 'append': {
      const s = sources[m.id];
      if (!s) return;
      s.steps.push(...m.steps);
      s.epochs.push(...m.epochs);
      if (m.epochs.length) evalVersion++;
      break;
    }
    case 'scalars': {
      const s = sources[m.id];
      if (!s) return;
      for (const d of m.scalars) {
        let series = s.scalars.find(x => x.run === d.run && x.tag === d.tag);
        if (!series) s.scalars.push((series = { run: d.run, tag: d.tag, step: [], value: [], wallTime: [] }));
        series.step.push(...d.step);
        series.value.push(...d.value);
        series.wallTime.push(...d.wallTime);
      }
      break;
    }
    case 'meta': {
      const s = sources[m.id];
      if (!s) return;
      Object.assign(s, { run: m.run, report: m.report, problems: m.problems, notice: m.notice });
      const json = JSON.stringify([m.report, m.run?.classes]);
      if (reportJson.get(m.id) !== json) {
        reportJson.set(m.id, json);
        evalVersion++;
      }
      break;
    }
    case 'reset':
      if (sources[m.source.id]) sources[m.source.id] = m.source;
      evalVersion++;
      break;
    default:
      return;
  }
  schedule();
});

const actions: ImageActions = {
  open: h => post({ type: 'openImage', id: evalSource()?.id ?? 0, file: h.file }),
  move: h => post({ type: 'moveImage', id: evalSource()?.id ?? 0, file: h.file }),
  undo: h => post({ type: 'undoMove', id: evalSource()?.id ?? 0, file: h.file }),
};

function post(m: WebviewMessage): void {
  vscode.postMessage(m);
}

// ---- controls ----
el.axisStep.addEventListener('click', () => setUi({ axis: 'step' }));
el.axisEpoch.addEventListener('click', () => setUi({ axis: 'epoch' }));
el.smoothing.addEventListener('input', () => setUi({ smoothing: Number(el.smoothing.value) }));
el.logY.addEventListener('change', () => setUi({ logY: el.logY.checked }));
el.normalize.addEventListener('change', () => setUi({ eval: { ...ui.eval, normalize: el.normalize.checked } }));
el.evalEpoch.addEventListener('change', () =>
  setUi({ eval: { ...ui.eval, epoch: Number(el.evalEpoch.value), cell: null } }),
);
el.evalRun.addEventListener('change', () =>
  setUi({ evalSource: Number(el.evalRun.value), eval: { ...ui.eval, cell: null, epoch: null } }),
);
el.suspectRank.addEventListener('change', () =>
  setUi({ rank: el.suspectRank.value === 'mistakenness' ? 'mistakenness' : 'selfConfidence' }),
);

function setUi(patch: Partial<Saved>): void {
  Object.assign(ui, patch);
  save();
  schedule();
}

// Theme switch: chart colours are read when a chart is built.
new MutationObserver(() => {
  resetCharts();
  schedule();
}).observe(document.body, { attributes: true, attributeFilter: ['class'] });
new ResizeObserver(() => schedule()).observe(el.charts);
// Elapsed and ETA move on while a run runs.
setInterval(() => {
  if (sources.some(s => s.run?.status === 'running')) renderHeader();
}, 1000);

let pending = false;
function schedule(): void {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => {
    pending = false;
    render();
  });
}

/** The run the evaluation sections show: the chosen one, else the first with held-out data or epochs. */
function evalSource(): SourceView | undefined {
  const runs = sources.filter(s => s.kind === 'run');
  return runs.find(s => s.id === ui.evalSource) ?? runs.find(s => s.report?.heldOut.length) ?? runs[0];
}

// ---- rendering ----
function render(): void {
  el.axisStep.setAttribute('aria-checked', String(ui.axis === 'step'));
  el.axisEpoch.setAttribute('aria-checked', String(ui.axis === 'epoch'));
  el.axisEpoch.toggleAttribute('disabled', !sources.some(s => s.kind === 'run'));
  el.smoothing.value = String(ui.smoothing);
  el.smoothingValue.textContent = ui.smoothing.toFixed(3);
  el.logY.checked = ui.logY;
  el.normalize.checked = ui.eval.normalize;
  el.suspectRank.value = ui.rank;

  renderHeader();
  renderNotices();
  const colors = palette();
  el.legend.replaceChildren(
    ...legendEntries(sources, colors).map(l => {
      const span = document.createElement('span');
      span.className = 'legend-item';
      const sw = document.createElement('i');
      sw.style.background = l.color;
      span.append(sw, l.label);
      return span;
    }),
  );
  const specs = [...runChartSpecs(sources, ui.axis, colors), ...tfChartSpecs(sources, colors)];
  renderCharts(el.charts, specs, { smoothing: ui.smoothing, logY: ui.logY });
  renderEvaluation();
}

function renderHeader(): void {
  const now = Date.now();
  el.runs.replaceChildren(
    ...sources.map(s => {
      const div = document.createElement('div');
      div.className = 'run';
      const name = document.createElement('button');
      name.type = 'button';
      name.className = 'run-name link';
      name.textContent = s.name;
      name.title = `${s.dir}\nClick: reveal the folder`;
      name.addEventListener('click', () => post({ type: 'revealRun', id: s.id }));
      div.append(name);
      const fact = (label: string, value: string, cls = '') => {
        const f = document.createElement('span');
        f.className = `fact ${cls}`.trim();
        const l = document.createElement('span');
        l.className = 'fact-label';
        l.textContent = label;
        f.append(l, value);
        div.append(f);
      };
      if (s.kind === 'tfevents') {
        const status = document.createElement('span');
        status.className = 'status tensorboard';
        status.textContent = 'TensorBoard';
        div.append(status);
        const runs = new Set(s.scalars.map(x => x.run));
        const last = Math.max(-Infinity, ...s.scalars.map(x => x.step[x.step.length - 1] ?? -Infinity));
        const wall = Math.max(-Infinity, ...s.scalars.map(x => x.wallTime[x.wallTime.length - 1] ?? -Infinity));
        fact('runs', String(runs.size));
        fact('tags', String(new Set(s.scalars.map(x => x.tag)).size));
        if (Number.isFinite(last)) fact('step', String(last));
        if (Number.isFinite(wall)) fact('last point', `${formatDuration(now / 1000 - wall)} ago`);
        return div;
      }
      const r = s.run;
      if (!r) return div;
      const status = document.createElement('span');
      status.className = `status ${r.status}`;
      status.textContent = r.status;
      if (r.reason) status.title = r.reason;
      div.append(status);
      const t = timing(r, s.steps, now);
      fact('backend', backendLabel(r.backend));
      fact('epoch', `${Math.min(r.epoch + (r.status === 'running' ? 1 : 0), r.totalEpochs)}/${r.totalEpochs}`);
      fact('step', `${r.step}/${r.totalSteps}`);
      fact('elapsed', formatDuration(t.elapsed));
      if (t.eta !== undefined) fact('ETA', formatDuration(t.eta));
      if (r.bestEpoch !== undefined)
        fact(
          'best',
          `epoch ${r.bestEpoch + 1}${typeof r.bestValAcc === 'number' ? ` · ${(r.bestValAcc * 100).toFixed(1)}%` : ''}`,
          'best',
        );
      if (r.dataset) {
        // The validation split's suspects cover a fifth of the images; the audit checks them all.
        const audit = document.createElement('button');
        audit.type = 'button';
        audit.className = 'link audit-dataset';
        audit.textContent = 'Audit this dataset';
        audit.title = `Check every image of ${r.dataset} for wrong labels, duplicates and outliers`;
        audit.addEventListener('click', () => post({ type: 'auditDataset', id: s.id }));
        div.append(audit);
      }
      return div;
    }),
  );
}

function backendLabel(b: string): string {
  if (b === 'webgpu') return 'WebGPU';
  if (/gpu|cuda/i.test(b)) return `CUDA (${b})`;
  if (b === 'wasm') return 'wasm';
  if (b === 'tensorflow' || b === 'cpu') return `CPU (${b})`;
  return b || '?';
}

function renderNotices(): void {
  const notes = sources.filter(s => s.notice).map(s => `${s.name}: ${s.notice}`);
  if (!sources.length) notes.push('Waiting for the extension…');
  el.notices.replaceChildren(
    ...notes.map(n => {
      const p = document.createElement('p');
      p.className = 'notice';
      p.textContent = n;
      return p;
    }),
  );
  const problems = sources.flatMap(s => s.problems.map(p => `${s.name}: ${p}`));
  el.problems.hidden = !problems.length;
  const summary = el.problems.querySelector('summary')!;
  summary.textContent = `${problems.length} problem${problems.length === 1 ? '' : 's'} reading the logs`;
  el.problemList.replaceChildren(
    ...problems.map(p => {
      const li = document.createElement('li');
      li.textContent = p;
      return li;
    }),
  );
}

let evalKey = '';
function renderEvaluation(): void {
  const s = evalSource();
  const key = JSON.stringify([evalVersion, s?.id, ui.eval, ui.rank, sources.length]);
  if (key === evalKey) return;
  evalKey = key;
  const runs = sources.filter(x => x.kind === 'run');
  el.evalRunLabel.hidden = runs.length < 2;
  fillSelect(
    el.evalRun,
    runs.map(r => [String(r.id), r.name]),
    String(s?.id ?? ''),
  );
  const { withConfusion, shown } = s ? pickEpoch(s, ui.eval.epoch) : { withConfusion: [], shown: undefined };
  el.evaluation.hidden = !s || !shown;
  const heldOut = s?.report?.heldOut ?? [];
  el.gallery.hidden = !heldOut.length;
  el.suspects.hidden = !heldOut.length;
  if (!s) return;
  const bestEpoch = s.report?.bestEpoch;
  if (shown) {
    fillSelect(
      el.evalEpoch,
      withConfusion.map(e => [String(e.epoch), `${e.epoch + 1}${e.epoch === bestEpoch ? ' (best)' : ''}`]),
      String(shown.epoch),
    );
    el.evalNote.textContent =
      bestEpoch === undefined
        ? 'Validation confusion matrix. Held-out images appear once report.json is written.'
        : shown.epoch === bestEpoch
          ? `Validation confusion matrix of epoch ${shown.epoch + 1}, the best epoch, whose predictions report.json keeps: click a cell for its images.`
          : `Epoch ${shown.epoch + 1}'s counts; the images a cell lists are the best epoch's (${bestEpoch + 1}) predictions.`;
    const hooks = {
      selectCell: (cell: [number, number] | null) => setUi({ eval: { ...ui.eval, cell } }),
      thumb: (h: HeldOutView, classes: string[], caption: string) => thumb(h, classes, caption, actions),
    };
    renderConfusion(el.confusion, s, shown, ui.eval, hooks);
    renderReport(el.prf, s, shown);
    renderCellImages(el.cellImages, s, ui.eval, hooks);
  }
  if (heldOut.length) {
    renderGallery(el.misclassified, el.lowConfidence, el.misCount, s, actions);
    renderSuspects(el.suspectTable, s, ui.rank, actions);
  }
}

function fillSelect(select: HTMLSelectElement, options: [string, string][], value: string): void {
  const key = options.map(o => o.join('=')).join('\n');
  if (select.dataset.options !== key) {
    select.dataset.options = key;
    select.replaceChildren(
      ...options.map(([v, label]) => {
        const o = document.createElement('option');
        o.value = v;
        o.textContent = label;
        return o;
      }),
    );
  }
  select.value = value;
}

render();
post({ type: 'ready' });
