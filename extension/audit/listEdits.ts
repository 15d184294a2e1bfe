/** How the audit panel's lists change when a file is moved or deleted. Pure: the tests use it. */
import type { AuditResult } from '../../common/workerRequests';

export type Lists = Pick<AuditResult, 'labelIssues' | 'duplicates' | 'outliers' | 'decisions'>;

/** The lists with every finding about `file` dropped; in duplicate groups a moved file keeps its place under its new path `to`. */
export function withoutFile(r: Lists, file: string, to?: string): Lists {
  const duplicates = r.duplicates
    .map(g => ({ ...g, files: to ? g.files.map(f => (f === file ? to : f)) : g.files.filter(f => f !== file) }))
    .filter(g => g.files.length > 1);
  return {
    labelIssues: r.labelIssues.filter(l => l.file !== file),
    outliers: r.outliers.filter(o => o.file !== file),
    duplicates,
    decisions: r.decisions,
  };
}
