/**
 * Confusion matrix heatmap, per-class precision/recall/F1, and the held-out images behind a
 * clicked cell. The matrix is an epoch's `confusion[true][predicted]`; by default the best epoch's,
 * because report.json's held-out predictions (the images a cell lists) are that epoch's.
 */
import { classReport } from './analysis';
import type { HeldOutView, SourceView } from '../../common/webviewMessages/dashboard';
import type { EpochMetrics } from '../../common/workerRequests';

export interface EvalUi {
  normalize: boolean;
  /** Selected cell [true, predicted], or null. */
  cell: [number, number] | null;
  /** Epoch shown; null: the best (or the last). */
  epoch: number | null;
}

export interface Hooks {
  selectCell(cell: [number, number] | null): void;
  thumb(h: HeldOutView, classes: string[], caption: string): HTMLElement;
}

/** The epoch lines that carry a confusion matrix, and the one to show. */
export function pickEpoch(
  s: SourceView,
  wanted: number | null,
): { withConfusion: EpochMetrics[]; shown?: EpochMetrics } {
  const withConfusion = s.epochs.filter(e => Array.isArray(e.confusion) && e.confusion.length > 0);
  const best = s.report?.bestEpoch ?? s.run?.bestEpoch;
  const shown =
    withConfusion.find(e => e.epoch === wanted) ??
    withConfusion.find(e => e.epoch === best) ??
    withConfusion[withConfusion.length - 1];
  return { withConfusion, shown };
}

const pct = (v: number | null) => (v === null ? '—' : `${(v * 100).toFixed(1)}%`);

export function renderConfusion(
  table: HTMLTableElement,
  s: SourceView,
  e: EpochMetrics,
  ui: EvalUi,
  hooks: Hooks,
): void {
  const m = e.confusion!;
  const classes = s.run?.classes ?? m.map((_, i) => String(i));
  const rowSum = m.map(r => r.reduce((a, b) => a + b, 0));
  const max = Math.max(1, ...m.flat());
  const head = document.createElement('tr');
  const corner = document.createElement('th');
  corner.className = 'corner';
  corner.textContent = 'true ╲ predicted';
  head.append(corner, ...classes.map(c => th(c, 'col')));
  const rows = m.map((r, i) => {
    const tr = document.createElement('tr');
    tr.append(th(classes[i] ?? String(i), 'row'));
    r.forEach((count, j) => {
      const td = document.createElement('td');
      const b = document.createElement('button');
      b.type = 'button';
      b.className = i === j ? 'cell diag' : 'cell off';
      b.dataset.row = String(i);
      b.dataset.col = String(j);
      const share = rowSum[i] > 0 ? count / rowSum[i] : 0;
      b.textContent = ui.normalize ? (rowSum[i] > 0 ? `${Math.round(share * 100)}%` : '—') : String(count);
      b.title = `${count} image${count === 1 ? '' : 's'} of “${classes[i]}” predicted as “${classes[j]}” (${(share * 100).toFixed(1)}% of the row)`;
      // Intensity by row share when normalised, by count otherwise.
      const t = ui.normalize ? share : count / max;
      b.style.setProperty('--level', String(count === 0 ? 0 : 0.12 + 0.88 * t));
      if (ui.cell && ui.cell[0] === i && ui.cell[1] === j) b.setAttribute('aria-pressed', 'true');
      b.addEventListener('click', () =>
        hooks.selectCell(ui.cell && ui.cell[0] === i && ui.cell[1] === j ? null : [i, j]),
      );
      td.append(b);
      tr.append(td);
    });
    return tr;
  });
  table.replaceChildren(head, ...rows);
}

export function renderReport(table: HTMLTableElement, s: SourceView, e: EpochMetrics): void {
  const rep = classReport(e.confusion!);
  const classes = s.run?.classes ?? rep.perClass.map((_, i) => String(i));
  const head = document.createElement('tr');
  head.append(...['class', 'precision', 'recall', 'F1', 'support'].map(t => th(t, 'col')));
  const row = (name: string, p: number | null, r: number | null, f: number | null, support: string, cls?: string) => {
    const tr = document.createElement('tr');
    if (cls) tr.className = cls;
    tr.append(th(name, 'row'), td(pct(p)), td(pct(r)), td(pct(f)), td(support));
    return tr;
  };
  table.replaceChildren(
    head,
    ...rep.perClass.map((c, i) => row(classes[i] ?? String(i), c.precision, c.recall, c.f1, String(c.support))),
    row('macro avg', rep.macro.precision, rep.macro.recall, rep.macro.f1, String(rep.total), 'summary'),
    row('weighted avg', rep.weighted.precision, rep.weighted.recall, rep.weighted.f1, String(rep.total), 'summary'),
    row('accuracy', null, null, null, pct(rep.accuracy), 'summary'),
  );
}

export function renderCellImages(el: HTMLElement, s: SourceView, ui: EvalUi, hooks: Hooks): void {
  if (!ui.cell) return void el.replaceChildren();
  const [t, p] = ui.cell;
  const classes = s.run?.classes ?? [];
  const files = (s.report?.heldOut ?? []).filter(h => h.label === t && h.predicted === p);
  const h = document.createElement('h3');
  h.textContent = `${classes[t] ?? t} → ${classes[p] ?? p}: ${files.length} held-out image${files.length === 1 ? '' : 's'}`;
  const list = document.createElement('div');
  list.className = 'thumbs';
  list.append(...files.map(f => hooks.thumb(f, classes, `${pct(f.probabilities[p] ?? null)} ${classes[p] ?? p}`)));
  if (!files.length) {
    const note = document.createElement('p');
    note.className = 'note';
    note.textContent = s.report
      ? 'None.'
      : 'No report.json yet: held-out images are listed once an epoch has been evaluated.';
    el.replaceChildren(h, note);
  } else el.replaceChildren(h, list);
}

function th(text: string, scope: 'row' | 'col'): HTMLTableCellElement {
  const c = document.createElement('th');
  c.scope = scope;
  c.textContent = text;
  c.title = text;
  return c;
}

function td(text: string): HTMLTableCellElement {
  const c = document.createElement('td');
  c.textContent = text;
  return c;
}
