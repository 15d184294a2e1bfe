/**
 * The Classify Folder table. The extension sends the rows once; sorting and filtering happen here
 * over row indices, and only the rows in view exist in the DOM (fixed row height), so 100k images
 * scroll as fast as 100. setState keeps only the view settings and the predictions.json path: the
 * extension re-reads the file after a reload rather than the webview storing megabytes of state.
 */
import '@vscode-elements/elements/dist/vscode-button/index.js';
import '@vscode-elements/elements/dist/vscode-checkbox/index.js';
import '@vscode-elements/elements/dist/vscode-textfield/index.js';
import type {
  HostMessage,
  SortKey,
  TableData,
  TableRow,
  ViewState,
  WebviewMessage,
} from '../../common/webviewMessages/predictions';
import { defaultViewState, parseViewState } from '../../common/webviewMessages/predictions';
import { summaryText, viewRows } from './view';
import { $, vscodeApi } from '../vscodeApi';

/** Must match .row height in media/predictions.css. */
const ROW_HEIGHT = 60;
/** Thumbnails from images smaller than this are drawn pixelated (sharp squares, not a blur). */
const SMALL_SIDE = 64;
const OVERSCAN = 8;

const vscode = vscodeApi<WebviewMessage, ViewState>();
/** Not trusted: parseViewState checks it field by field. */
const saved: unknown = vscode.getState();
let view: ViewState = saved ? parseViewState(saved) : defaultViewState();
let data: TableData | undefined;
let order: number[] = [];
/** Row elements in the DOM, by position in `order`. */
const live = new Map<number, HTMLElement>();

const ui = {
  title: $('title'),
  summary: $('summary'),
  partial: $('partial'),
  error: $('error'),
  failures: $<HTMLDetailsElement>('failures'),
  failuresSummary: $('failures-summary'),
  failuresList: $('failures-list'),
  filter: $<HTMLElement & { value: string }>('filter'),
  disagreements: $<HTMLElement & { checked: boolean; disabled: boolean }>('disagreements'),
  shown: $('shown'),
  scroller: $('scroller'),
  spacer: $('spacer'),
  empty: $('empty'),
  headers: [...document.querySelectorAll<HTMLElement>('[role="columnheader"][data-key]')],
};

const post = (m: WebviewMessage) => vscode.postMessage(m);

function saveView(): void {
  vscode.setState({ ...view, jsonFile: data?.jsonFile ?? view.jsonFile });
}

function setView(patch: Partial<ViewState>): void {
  view = { ...view, ...patch };
  saveView();
  refilter();
}

// ---- events (no inline handlers: CSP forbids them) ----
for (const h of ui.headers) {
  h.querySelector('button')!.addEventListener('click', () => {
    const key = h.dataset.key as SortKey;
    // A new column starts with what one usually wants first: least confident, disagreements first, A–Z.
    setView(view.sort === key ? { descending: !view.descending } : { sort: key, descending: false });
  });
}
ui.filter.addEventListener('input', () => setView({ filter: ui.filter.value }));
ui.disagreements.addEventListener('change', () => setView({ disagreementsOnly: ui.disagreements.checked }));
$('open-csv').addEventListener('click', () => post({ type: 'openFile', which: 'csv' }));
$('open-json').addEventListener('click', () => post({ type: 'openFile', which: 'json' }));
$('rerun').addEventListener('click', () => post({ type: 'rerun' }));
ui.scroller.addEventListener('scroll', () => requestAnimationFrame(renderRows), { passive: true });
window.addEventListener('resize', () => requestAnimationFrame(renderRows));

ui.spacer.addEventListener('click', e => {
  const row = (e.target as HTMLElement).closest<HTMLElement>('.row');
  if (row?.dataset.file) post({ type: 'explain', file: row.dataset.file });
});
ui.spacer.addEventListener('keydown', e => {
  const row = (e.target as HTMLElement).closest<HTMLElement>('.row');
  if (!row) return;
  const pos = Number(row.dataset.pos);
  if (e.key === 'Enter' || e.key === ' ') {
    e.preventDefault();
    if (row.dataset.file) post({ type: 'explain', file: row.dataset.file });
  } else if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
    e.preventDefault();
    focusRow(pos + (e.key === 'ArrowDown' ? 1 : -1));
  }
});

window.addEventListener('message', (e: MessageEvent<HostMessage>) => {
  const m = e.data;
  if (m?.type === 'data') {
    data = m.data;
    ui.error.hidden = true;
    saveView();
    renderAll();
  } else if (m?.type === 'error') {
    ui.error.textContent = m.message;
    ui.error.hidden = false;
  }
});

// ---- rendering ----
function renderAll(): void {
  if (!data) return;
  const d = data;
  const name = d.folder.split(/[\\/]/).filter(Boolean).pop() ?? d.folder;
  ui.title.textContent = `${name} — ${d.model}`;
  ui.title.title = d.folder;
  ui.summary.textContent = summaryText(d.rows, d.failures.length);
  ui.partial.hidden = !d.partial;
  ui.partial.textContent = `Stopped early after ${(d.rows.length + d.failures.length).toLocaleString()} of ${d.total.toLocaleString()} images; the table and the files hold those. Classify Again for the rest.`;
  ui.failures.hidden = d.failures.length === 0;
  ui.failuresSummary.textContent = `${d.failures.length.toLocaleString()} image${d.failures.length === 1 ? '' : 's'} could not be classified`;
  ui.failuresList.replaceChildren(
    ...d.failures.slice(0, 1000).map(f => {
      const li = document.createElement('li');
      const code = document.createElement('code');
      code.textContent = f.file;
      li.append(code, ` — ${failureText(d.folder, f.file, f.error)}`);
      return li;
    }),
  );
  const hasLabels = d.rows.some(r => r.agrees !== undefined);
  ui.disagreements.disabled = !hasLabels;
  ui.disagreements.title = hasLabels ? '' : 'The folder has no class sub-folders to compare with';
  refilter();
}

/** The worker's message names the file by absolute path; the list already names it (relative) before the dash. */
function failureText(folder: string, file: string, error: string): string {
  const full = `${folder.replace(/[\\/]+$/, '')}/${file}`;
  for (const prefix of [`${full}: `, `${file}: `]) if (error.startsWith(prefix)) return error.slice(prefix.length);
  return error.split(full).join(file);
}

function refilter(): void {
  if (!data) return;
  if (ui.filter.value !== view.filter) ui.filter.value = view.filter;
  ui.disagreements.checked = view.disagreementsOnly;
  order = viewRows(data.rows, view);
  for (const h of ui.headers)
    h.setAttribute('aria-sort', h.dataset.key === view.sort ? (view.descending ? 'descending' : 'ascending') : 'none');
  ui.shown.textContent =
    order.length === data.rows.length
      ? ''
      : `showing ${order.length.toLocaleString()} of ${data.rows.length.toLocaleString()}`;
  ui.scroller.setAttribute('aria-rowcount', String(order.length + 1));
  ui.spacer.style.height = `${order.length * ROW_HEIGHT}px`;
  ui.empty.hidden = order.length > 0;
  ui.empty.textContent = data.rows.length === 0 ? 'No images were classified.' : 'No rows match the filters.';
  for (const el of live.values()) el.remove();
  live.clear();
  renderRows();
}

/** Create the rows in view (plus a margin), drop the rest. */
function renderRows(): void {
  if (!data) return;
  const top = ui.scroller.scrollTop - ui.spacer.offsetTop;
  const first = Math.max(0, Math.floor(top / ROW_HEIGHT) - OVERSCAN);
  const last = Math.min(order.length, Math.ceil((top + ui.scroller.clientHeight) / ROW_HEIGHT) + OVERSCAN);
  for (const [pos, el] of live) {
    if (pos < first || pos >= last) {
      el.remove();
      live.delete(pos);
    }
  }
  const fragment = document.createDocumentFragment();
  for (let pos = first; pos < last; pos++) {
    if (live.has(pos)) continue;
    const el = rowElement(data, data.rows[order[pos]], pos);
    live.set(pos, el);
    fragment.append(el);
  }
  ui.spacer.append(fragment);
}

function focusRow(pos: number): void {
  if (pos < 0 || pos >= order.length) return;
  const top = ui.spacer.offsetTop + pos * ROW_HEIGHT;
  const headH = ui.spacer.offsetTop;
  if (top < ui.scroller.scrollTop + headH) ui.scroller.scrollTop = top - headH;
  else if (top + ROW_HEIGHT > ui.scroller.scrollTop + ui.scroller.clientHeight)
    ui.scroller.scrollTop = top + ROW_HEIGHT - ui.scroller.clientHeight;
  renderRows();
  live.get(pos)?.focus();
}

function cell(cls: string, text?: string): HTMLElement {
  const el = document.createElement('span');
  el.className = `cell ${cls}`;
  el.setAttribute('role', 'gridcell');
  if (text !== undefined) el.textContent = text;
  return el;
}

function rowElement(d: TableData, r: TableRow, pos: number): HTMLElement {
  const row = document.createElement('div');
  row.className = `row${r.agrees === false ? ' disagrees' : ''}`;
  row.setAttribute('role', 'row');
  row.setAttribute('aria-rowindex', String(pos + 2));
  row.tabIndex = 0;
  row.dataset.file = r.file;
  row.dataset.pos = String(pos);
  row.style.transform = `translateY(${pos * ROW_HEIGHT}px)`;
  row.title = `${r.file}\nClick for the attention map`;

  const thumb = cell('thumb');
  const img = document.createElement('img');
  img.loading = 'lazy';
  img.decoding = 'async';
  img.alt = '';
  img.addEventListener('load', () =>
    img.classList.toggle('pixelated', Math.max(img.naturalWidth, img.naturalHeight) < SMALL_SIDE),
  );
  // No broken-image glyph for a file the browser cannot show.
  img.addEventListener('error', () => (img.hidden = true));
  img.src = `${d.baseUri}/${r.file.split('/').map(encodeURIComponent).join('/')}`;
  thumb.append(img);

  const slash = r.file.lastIndexOf('/');
  const file = cell('file');
  if (slash >= 0) {
    const dir = document.createElement('span');
    dir.className = 'dir';
    dir.textContent = r.file.slice(0, slash + 1);
    file.append(dir);
  }
  file.append(r.file.slice(slash + 1));

  const conf = cell('conf');
  const bar = document.createElement('span');
  bar.className = 'bar';
  bar.setAttribute('role', 'meter');
  bar.setAttribute('aria-valuemin', '0');
  bar.setAttribute('aria-valuemax', '100');
  bar.setAttribute('aria-valuenow', (r.confidence * 100).toFixed(1));
  const fill = document.createElement('span');
  fill.style.width = `${(r.confidence * 100).toFixed(1)}%`;
  bar.append(fill);
  const pct = document.createElement('span');
  pct.className = 'pct';
  pct.textContent = `${(r.confidence * 100).toFixed(1)}%`;
  conf.append(bar, pct);
  if (r.runnerUp) conf.title = `runner-up: ${r.runnerUp.label} ${(r.runnerUp.score * 100).toFixed(1)}%`;

  const agree = cell('agree');
  if (r.agrees !== undefined) {
    const badge = document.createElement('span');
    badge.className = `badge ${r.agrees ? 'yes' : 'no'}`;
    badge.textContent = r.agrees ? 'agree' : 'disagree';
    agree.append(badge);
  } else agree.textContent = '—';

  const label = cell('label', r.folderLabel ?? '—');
  if (r.folderLabel === undefined) label.classList.add('muted');
  row.append(thumb, file, label, cell('label predicted', r.predicted), conf, agree);
  return row;
}

// The saved view (hide/show, reload) until the extension sends the rows.
ui.filter.value = view.filter;
ui.disagreements.checked = view.disagreementsOnly;
post({ type: 'ready' });
