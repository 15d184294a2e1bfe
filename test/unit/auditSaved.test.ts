/**
 * The audit panel after a window reload: the webview state names the audit.json, and the serializer
 * reads that file again (readSavedAudit); anything else closes the panel.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseViewState } from '../../common/webviewMessages/audit';
import { readSavedAudit } from '../../extension/audit/saved';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-audit-saved-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const report = {
  version: 1,
  dataset: tmp,
  model: 'default',
  images: 3,
  classes: ['a', 'b'],
  folds: 2,
  seed: 0,
  similarityThreshold: 0.965,
  labelIssues: [{ file: 'a/1.png', label: 'a', suggested: 'b', score: 0.1 }],
  duplicates: [],
  outliers: [],
  skipped: [],
  decisions: [{ kind: 'labelIssue', files: ['a/0.png'], action: 'ignore', at: '2026-01-01T00:00:00Z' }],
  timings: { features: 1, crossValidation: 1, neighbours: 1, computed: 3 },
  file: '/elsewhere/audit.json',
};

test('the saved state names the audit file; the report is read from it', async () => {
  const file = path.join(tmp, '.vit-lens', 'audit.json');
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(report));
  const state = parseViewState({ tab: 'duplicates', sort: {}, file });
  assert.equal(state.file, file, 'the view state keeps the file');
  const r = await readSavedAudit(state);
  assert.ok(r);
  assert.deepEqual(r.labelIssues, report.labelIssues);
  assert.deepEqual(r.decisions, report.decisions);
  assert.equal(r.file, file, 'the file where it was found, not the path written inside it');
});

test('no file, a relative path, another file name, a missing file or not an audit: nothing to restore', async () => {
  const other = path.join(tmp, 'other.json');
  fs.writeFileSync(other, JSON.stringify(report));
  const notAudit = path.join(tmp, 'x', 'audit.json');
  fs.mkdirSync(path.dirname(notAudit));
  fs.writeFileSync(notAudit, JSON.stringify({ ...report, labelIssues: 'no' }));
  const torn = path.join(tmp, 'y', 'audit.json');
  fs.mkdirSync(path.dirname(torn));
  fs.writeFileSync(torn, '{"version":');
  for (const state of [
    undefined,
    null,
    { tab: 'outliers' },
    { file: 'audit.json' },
    { file: other },
    { file: path.join(tmp, 'none', 'audit.json') },
    { file: notAudit },
    { file: torn },
    { file: 42 },
  ]) {
    assert.equal(await readSavedAudit(state), undefined, JSON.stringify(state));
  }
});
