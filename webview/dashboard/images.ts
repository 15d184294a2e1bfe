/**
 * Held-out image lists: misclassified and least-confident thumbnails, and the suspect-label table
 * (ranked by cleanlab's self-confidence or FiftyOne's mistakenness) with Open / Move / Undo.
 * Clicking a thumbnail opens the image with its attention overlay in the results panel.
 */
import { rankSuspects } from './analysis';
import type { HeldOutView, SourceView } from '../../common/webviewMessages/dashboard';

export interface ImageActions {
  open(h: HeldOutView): void;
  move(h: HeldOutView): void;
  undo(h: HeldOutView): void;
}

const pct = (v: number | undefined) => `${((v ?? 0) * 100).toFixed(1)}%`;
const baseName = (f: string) => f.split(/[\\/]/).pop() ?? f;

export function thumb(h: HeldOutView, classes: string[], caption: string, actions: ImageActions): HTMLElement {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = 'thumb';
  b.dataset.file = h.file;
  b.title = `${h.file}\nfolder: ${classes[h.label] ?? h.label} · predicted: ${classes[h.predicted] ?? h.predicted} (${pct(h.probabilities[h.predicted])})\nClick: show with attention overlay`;
  const img = document.createElement('img');
  img.src = h.src;
  img.alt = baseName(h.file);
  img.loading = 'lazy';
  const name = document.createElement('span');
  name.className = 'thumb-name';
  name.textContent = baseName(h.file);
  const cap = document.createElement('span');
  cap.className = 'thumb-caption';
  cap.textContent = caption;
  b.append(img, name, cap);
  b.addEventListener('click', () => actions.open(h));
  return b;
}

export function renderGallery(
  mis: HTMLElement,
  low: HTMLElement,
  count: HTMLElement,
  s: SourceView,
  actions: ImageActions,
): void {
  const heldOut = s.report?.heldOut ?? [];
  const classes = s.run?.classes ?? [];
  const wrong = heldOut
    .filter(h => h.predicted !== h.label)
    .sort((a, b) => (b.probabilities[b.predicted] ?? 0) - (a.probabilities[a.predicted] ?? 0));
  count.textContent = `${wrong.length} of ${heldOut.length} held-out images (best epoch's predictions)`;
  mis.replaceChildren(
    ...wrong
      .slice(0, 60)
      .map(h =>
        thumb(
          h,
          classes,
          `${classes[h.label] ?? h.label} → ${classes[h.predicted] ?? h.predicted} ${pct(h.probabilities[h.predicted])}`,
          actions,
        ),
      ),
  );
  const unsure = [...heldOut].sort((a, b) => Math.max(...a.probabilities) - Math.max(...b.probabilities)).slice(0, 12);
  low.replaceChildren(
    ...unsure.map(h =>
      thumb(h, classes, `${classes[h.predicted] ?? h.predicted} ${pct(h.probabilities[h.predicted])}`, actions),
    ),
  );
}

export function renderSuspects(
  table: HTMLTableElement,
  s: SourceView,
  by: 'selfConfidence' | 'mistakenness',
  actions: ImageActions,
): void {
  const classes = s.run?.classes ?? [];
  const ranked = rankSuspects(s.report?.heldOut ?? [], by).slice(0, 50);
  const head = document.createElement('tr');
  for (const t of ['#', '', 'image', 'folder label', 'p(label)', 'predicted', 'mistakenness', '']) {
    const th = document.createElement('th');
    th.scope = 'col';
    th.textContent = t;
    head.append(th);
  }
  const rows = ranked.map((r, i) => {
    const h = r.item;
    const tr = document.createElement('tr');
    tr.dataset.file = h.file;
    if (h.movedTo !== undefined) tr.className = 'moved';
    const img = document.createElement('img');
    img.src = h.src;
    img.alt = '';
    img.className = 'mini';
    img.loading = 'lazy';
    const name = document.createElement('span');
    name.textContent = baseName(h.file);
    name.title = h.file;
    const label = document.createElement('span');
    label.textContent = classes[h.label] ?? String(h.label);
    if (h.movedTo !== undefined) {
      const badge = document.createElement('span');
      badge.className = 'badge';
      badge.textContent = `moved → ${classes[h.movedTo] ?? h.movedTo}`;
      label.append(' ', badge);
    }
    const buttons = document.createElement('span');
    buttons.className = 'actions';
    buttons.append(button('Open', 'Show with its attention overlay', () => actions.open(h)));
    if (h.movedTo === undefined)
      buttons.append(
        button('Move to class…', 'Move the file into another class folder of the dataset', () => actions.move(h)),
      );
    else buttons.append(button('Undo', 'Move it back', () => actions.undo(h)));
    tr.append(
      cell(String(i + 1)),
      cell(img),
      cell(name),
      cell(label),
      cell(pct(r.selfConfidence)),
      cell(`${classes[h.predicted] ?? h.predicted} ${pct(h.probabilities[h.predicted])}`),
      cell(r.mistakenness.toFixed(3)),
      cell(buttons),
    );
    return tr;
  });
  table.replaceChildren(head, ...rows);
}

function cell(content: string | Node): HTMLTableCellElement {
  const td = document.createElement('td');
  td.append(content);
  return td;
}

function button(text: string, title: string, onClick: () => void): HTMLButtonElement {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = 'small';
  b.textContent = text;
  b.title = title;
  b.addEventListener('click', onClick);
  return b;
}
