/** Which rows the table shows, in which order: the filters and the sort, over row indices (no copies of 100k rows). */
import type { SortKey, TableRow, ViewState } from '../../common/webviewMessages/predictions';

const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });

function compareBy(rows: TableRow[], key: SortKey): (a: number, b: number) => number {
  switch (key) {
    case 'confidence':
      return (a, b) => rows[a].confidence - rows[b].confidence;
    case 'agrees':
      // Disagreements first when ascending (what one looks for); rows without a label last.
      return (a, b) => agreeRank(rows[a]) - agreeRank(rows[b]);
    case 'folderLabel':
      return (a, b) => collator.compare(rows[a].folderLabel ?? '', rows[b].folderLabel ?? '');
    default:
      return (a, b) => collator.compare(rows[a][key], rows[b][key]);
  }
}

const agreeRank = (r: TableRow) => (r.agrees === false ? 0 : r.agrees === true ? 1 : 2);

export function viewRows(rows: TableRow[], v: ViewState): number[] {
  const needle = v.filter.trim().toLowerCase();
  const out: number[] = [];
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i];
    if (v.disagreementsOnly && r.agrees !== false) continue;
    if (needle && !`${r.file}\n${r.folderLabel ?? ''}\n${r.predicted}`.toLowerCase().includes(needle)) continue;
    out.push(i);
  }
  const cmp = compareBy(rows, v.sort);
  const sign = v.descending ? -1 : 1;
  // Ties keep the folder order, so a re-sort never shuffles equal rows.
  return out.sort((a, b) => sign * cmp(a, b) || a - b);
}

export function summaryText(rows: TableRow[], failures: number): string {
  const labelled = rows.filter(r => r.agrees !== undefined);
  const parts = [`${rows.length.toLocaleString()} images`];
  if (labelled.length) {
    const correct = labelled.filter(r => r.agrees).length;
    parts.push(
      `${((correct / labelled.length) * 100).toFixed(1)}% agree with folder labels (${correct.toLocaleString()}/${labelled.length.toLocaleString()})`,
    );
    parts.push(`${(labelled.length - correct).toLocaleString()} disagreements`);
  } else parts.push('no folder labels');
  if (failures) parts.push(`${failures.toLocaleString()} failed`);
  return parts.join(' · ');
}
