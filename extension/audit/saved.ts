/**
 * Reading back the audit a panel showed before a window reload: the webview state names its
 * audit.json (an absolute path); the file is read again (moves and ignores since are in it).
 * Free of `vscode` imports, for the tests.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { AuditResult } from '../../common/workerRequests';

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The report in the audit file the saved state names, or undefined when there is none to show (moved, deleted, not an audit). */
export async function readSavedAudit(state: unknown): Promise<AuditResult | undefined> {
  const file = isObject(state) ? state.file : undefined;
  if (typeof file !== 'string' || !path.isAbsolute(file) || path.basename(file) !== 'audit.json') return undefined;
  let r: unknown;
  try {
    r = JSON.parse(await fs.readFile(file, 'utf8'));
  } catch {
    return undefined;
  }
  const lists = ['classes', 'labelIssues', 'duplicates', 'outliers', 'decisions', 'skipped'];
  if (
    !isObject(r) ||
    typeof r.dataset !== 'string' ||
    !path.isAbsolute(r.dataset) ||
    typeof r.model !== 'string' ||
    typeof r.images !== 'number' ||
    !lists.every(k => Array.isArray(r[k]))
  )
    return undefined;
  // The file is where it was found, whatever an older copy says.
  return { ...(r as unknown as AuditResult), file };
}
