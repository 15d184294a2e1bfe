/**
 * The dataset audit panel: three tabs (label issues, duplicates, outliers) of thumbnails; each row
 * opens its image and offers Move to class… / Delete / Ignore, which the extension carries out
 * (and can undo). The lists come from the extension after every change; the page keeps only the
 * selected tab with setState.
 */
import '@vscode-elements/elements/dist/vscode-button/index.js';
import type {
  AuditTab,
  AuditViewData,
  HostMessage,
  ViewState,
  WebviewMessage,
} from '../../common/webviewMessages/audit';
import { AUDIT_TABS, parseViewState, SORTS, sortedRows } from '../../common/webviewMessages/audit';
import { $, vscodeApi } from '../vscodeApi';

/** More rows than anyone reviews in one sitting; the rest stay in audit.json. */
const MAX_ROWS = 500;

const vscode = vscodeApi<WebviewMessage, ViewState>();
let view: ViewState = parseViewState(vscode.getState());
let data: AuditViewData | undefined;
const post = (m: WebviewMessage) => vscode.postMessage(m);

const ui = {
  title: $('title'),
  summary: $('summary'),
  error: $('error'),
  undo: $<HTMLElement & { disabled: boolean }>('undo'),
  explain: $('explain'),
  sort: $<HTMLSelectElement>('sort'),
  list: $('list'),
  empty: $('empty'),
  tabs: AUDIT_TABS.map(t => $<HTMLButtonElement>(`tab-${t}`)),
};

const EXPLAIN: Record<AuditTab, string> = {
  labelIssues:
    'Images whose folder disagrees with what cross-validated heads on every other image predict (confident learning), least likely label first.',
  // Pixels, not the model's features: measured on real photos, they find resized and re-encoded copies better (README).
  duplicates:
    'Identical files, and images whose 16×16 pixel thumbnails nearly match (compared by pixels, not by the model’s features), grouped; groups filed under different classes first.',
  outliers:
    'Images least like their 10 nearest neighbours in the dataset, compared by 16×16 pixel thumbnails, most unusual first.',
};

for (const b of ui.tabs) b.addEventListener('click', () => selectTab(b.dataset.tab as AuditTab, true));
document.querySelector('[role="tablist"]')!.addEventListener('keydown', e => {
  const ke = e as KeyboardEvent;
  if (ke.key !== 'ArrowRight' && ke.key !== 'ArrowLeft') return;
  const i = AUDIT_TABS.indexOf(view.tab);
  selectTab(AUDIT_TABS[(i + (ke.key === 'ArrowRight' ? 1 : AUDIT_TABS.length - 1)) % AUDIT_TABS.length], true);
});
const SORT_NAMES: Record<string, string> = {
  worst: 'worst first',
  file: 'file',
  label: 'label',
  suggested: 'suggested class',
  size: 'group size',
};
ui.sort.addEventListener('change', () => {
  view = { ...view, sort: { ...view.sort, [view.tab]: ui.sort.value } };
  vscode.setState(view);
  render();
});
ui.undo.addEventListener('click', () => post({ type: 'undo' }));
$('rerun').addEventListener('click', () => post({ type: 'rerun' }));
ui.list.addEventListener('click', e => {
  const el = (e.target as HTMLElement).closest<HTMLElement>('[data-action]');
  if (!el) return;
  const file = el.dataset.file!;
  const action = el.dataset.action;
  if (action === 'open' || action === 'move' || action === 'delete') post({ type: action, file });
  else if (action === 'ignore')
    post({
      type: 'ignore',
      kind: el.dataset.kind as 'labelIssue' | 'duplicate' | 'outlier',
      files: JSON.parse(el.dataset.files!),
    });
});

window.addEventListener('message', (e: MessageEvent<HostMessage>) => {
  const m = e.data;
  if (m?.type === 'data') {
    data = m.data;
    view = { ...view, file: data.file };
    vscode.setState(view);
    ui.error.hidden = true;
    render();
  } else if (m?.type === 'error') {
    ui.error.textContent = m.message;
    ui.error.hidden = false;
  }
});

function selectTab(tab: AuditTab, focus = false): void {
  view = { ...view, tab };
  vscode.setState(view);
  render();
  if (focus) ui.tabs[AUDIT_TABS.indexOf(tab)].focus();
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, cls?: string, text?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function button(
  label: string,
  action: string,
  file: string,
  title: string,
  extra: Record<string, string> = {},
): HTMLButtonElement {
  const b = el('button', `action ${action}`, label);
  b.type = 'button';
  b.title = title;
  b.dataset.action = action;
  b.dataset.file = file;
  Object.assign(b.dataset, extra);
  return b;
}

function thumb(d: AuditViewData, file: string): HTMLElement {
  const b = button('', 'open', file, `Open ${file} with its attention overlay`);
  b.classList.add('thumb');
  const img = el('img');
  img.alt = file;
  img.loading = 'lazy';
  img.src = `${d.baseUri}/${file.split('/').map(encodeURIComponent).join('/')}`;
  b.append(img);
  return b;
}

const fileActions = (file: string, kind: 'labelIssue' | 'duplicate' | 'outlier', ignoreFiles?: string[]) => {
  const span = el('span', 'buttons');
  span.append(
    button('Move to class…', 'move', file, `Move ${file} into another class folder`),
    button('Delete', 'delete', file, `Move ${file} to the trash`),
  );
  if (ignoreFiles)
    span.append(
      button('Ignore', 'ignore', file, 'Hide this finding, also in later audits', {
        kind,
        files: JSON.stringify(ignoreFiles),
      }),
    );
  return span;
};

function render(): void {
  for (const [i, b] of ui.tabs.entries()) {
    const tab = AUDIT_TABS[i];
    b.setAttribute('aria-selected', String(tab === view.tab));
    b.tabIndex = tab === view.tab ? 0 : -1;
    b.querySelector('.count')!.textContent = data ? String(data[tab].length) : '';
  }
  ui.explain.textContent = EXPLAIN[view.tab];
  ui.sort.replaceChildren(...SORTS[view.tab].map(k => new Option(SORT_NAMES[k], k, false, k === view.sort[view.tab])));
  const order = view.sort[view.tab];
  if (!data) return;
  const d = data;
  const name = d.folder.split(/[\\/]/).filter(Boolean).pop() ?? d.folder;
  ui.title.textContent = `Audit of ${name} — ${d.model}`;
  ui.title.title = d.folder;
  ui.summary.textContent = `${d.images.toLocaleString()} images in ${d.classes.length} classes${d.ignored ? ` · ${d.ignored} ignored` : ''}`;
  ui.undo.disabled = !d.undo;
  ui.undo.title = d.undo ? `Undo: ${d.undo}` : 'Nothing to undo';
  const rows: HTMLElement[] = [];
  if (view.tab === 'labelIssues') {
    for (const l of sortedRows(d.labelIssues, order).slice(0, MAX_ROWS)) {
      const li = el('li', 'row');
      const text = el('span', 'text');
      text.append(
        el('code', 'file', l.file),
        el(
          'span',
          'detail',
          `labelled “${l.label}”, looks like “${l.suggested}” · ${(l.score * 100).toFixed(1)}% for its label`,
        ),
      );
      li.append(thumb(d, l.file), text, fileActions(l.file, 'labelIssue', [l.file]));
      rows.push(li);
    }
  } else if (view.tab === 'outliers') {
    for (const o of sortedRows(d.outliers, order).slice(0, MAX_ROWS)) {
      const li = el('li', 'row');
      const text = el('span', 'text');
      text.append(
        el('code', 'file', o.file),
        el('span', 'detail', `distance to its nearest images ${o.score.toFixed(3)}`),
      );
      li.append(thumb(d, o.file), text, fileActions(o.file, 'outlier', [o.file]));
      rows.push(li);
    }
  } else {
    for (const g of sortedRows(d.duplicates, order).slice(0, MAX_ROWS)) {
      const li = el('li', `group${g.conflicting ? ' conflicting' : ''}`);
      const head = el('div', 'group-head');
      head.append(
        el(
          'span',
          'detail',
          `${g.files.length} images · ${g.exact ? 'identical files' : `similarity ${g.similarity.toFixed(3)}`}${g.conflicting ? ` · conflicting labels: ${g.labels.join(' / ')}` : ''}`,
        ),
      );
      head.append(
        button('Ignore', 'ignore', g.files[0], 'Hide this group, also in later audits', {
          kind: 'duplicate',
          files: JSON.stringify(g.files),
        }),
      );
      li.append(head);
      for (const f of g.files) {
        const row = el('div', 'row member');
        const text = el('span', 'text');
        text.append(el('code', 'file', f));
        row.append(thumb(d, f), text, fileActions(f, 'duplicate'));
        li.append(row);
      }
      rows.push(li);
    }
  }
  ui.list.replaceChildren(...rows);
  const total = d[view.tab].length;
  ui.empty.hidden = total > 0 && total <= MAX_ROWS;
  ui.empty.textContent =
    total === 0 ? 'Nothing found.' : `Showing the first ${MAX_ROWS} of ${total}; all are in audit.json.`;
}

render();
post({ type: 'ready' });
