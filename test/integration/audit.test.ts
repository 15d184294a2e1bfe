/**
 * `vit-lens audit` on real data with planted faults (test/unit/auditData.ts): 300 Fashion-MNIST
 * *test* images (the built-in model never trained on them) in class folders, plus 10 label flips,
 * 6 duplicate pairs (4 resized copies, 1 byte-identical, 1 resized copy filed under another class)
 * and 5 out-of-domain photos. The planted faults must rank at the top of each list; the measured
 * precision and recall are printed and the asserted floors are a little below them.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { PlantedDataset, writePlantedDataset } from '../unit/auditData';
import type { AuditReport } from '../../common/workerRequests';
import { runCli } from './runCli';

/** What `audit --json` prints: the report without its settings, timings and decisions. */
type AuditJson = Pick<
  AuditReport,
  'images' | 'classes' | 'labelIssues' | 'duplicates' | 'outliers' | 'skipped' | 'file'
>;

const model = path.join(__dirname, '..', '..', 'models', 'default');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-audit-'));
const cacheDir = path.join(tmp, 'cache');
const dataset = path.join(tmp, 'data');
let planted: PlantedDataset;
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const audit = async (...extra: string[]): Promise<AuditJson> => {
  const r = await runCli(['audit', dataset, '--model', model, '--json', ...extra], {
    env: { VIT_LENS_CACHE: cacheDir, VIT_LENS_MODEL: undefined },
  });
  assert.equal(r.code, 0, `exit ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout);
};
const auditFile = (): AuditReport => JSON.parse(fs.readFileSync(path.join(dataset, '.vit-lens', 'audit.json'), 'utf8'));
const hits = (list: string[], wanted: Set<string>) => list.filter(f => wanted.has(f)).length;

describe('audit with planted faults', () => {
  let doc: AuditJson;
  before(async () => {
    planted = await writePlantedDataset(dataset, 30);
    doc = await audit();
  });

  test('the --json document: counts, classes, relative paths with /, lists sorted worst first, audit.json written', () => {
    assert.deepEqual(Object.keys(doc), [
      'images',
      'classes',
      'labelIssues',
      'duplicates',
      'outliers',
      'skipped',
      'file',
    ]);
    assert.equal(doc.images, planted.images);
    assert.equal(doc.classes.length, 10);
    assert.equal(doc.file, path.join(dataset, '.vit-lens', 'audit.json'));
    const onDisk = auditFile();
    assert.deepEqual(onDisk.labelIssues, doc.labelIssues);
    for (const f of [
      ...doc.labelIssues.map(l => l.file),
      ...doc.duplicates.flatMap(d => d.files),
      ...doc.outliers.map(o => o.file),
    ]) {
      assert.ok(!path.isAbsolute(f) && !f.includes('\\') && fs.existsSync(path.join(dataset, f)), f);
    }
    for (let i = 1; i < doc.labelIssues.length; i++)
      assert.ok(doc.labelIssues[i - 1].score <= doc.labelIssues[i].score);
    for (let i = 1; i < doc.outliers.length; i++) assert.ok(doc.outliers[i - 1].score >= doc.outliers[i].score);
    for (let i = 1; i < doc.duplicates.length; i++) {
      const [a, b] = [doc.duplicates[i - 1], doc.duplicates[i]];
      assert.ok(a.conflicting > b.conflicting || (a.conflicting === b.conflicting && a.similarity >= b.similarity));
    }
    for (const l of doc.labelIssues) assert.notEqual(l.label, l.suggested);
  });

  test('label issues: the planted flips and misfiled images lead the list', () => {
    // Label faults: the 10 flips, the 5 photos (no photo is a garment) and the copy filed under another class.
    const faults = new Set([
      ...planted.flips.map(f => f.file),
      ...planted.outliers,
      planted.duplicates.find(d => d.conflicting)!.files.find(f => f.includes('copy-'))!,
    ]);
    const files = doc.labelIssues.map(l => l.file);
    const top = hits(files.slice(0, faults.size), faults);
    const flipsFlagged = hits(files, new Set(planted.flips.map(f => f.file)));
    process.stderr.write(
      `label issues: ${files.length} flagged; precision@${faults.size} ${top}/${faults.size}; flips flagged ${flipsFlagged}/10; all faults flagged ${hits(files, faults)}/${faults.size}\n`,
    );
    assert.ok(top >= 10, `only ${top} of the top ${faults.size} label issues are planted`);
    assert.ok(flipsFlagged >= 9, `only ${flipsFlagged} of 10 flips flagged`);
    // Suggestions for flips: the class the image came from.
    const suggested = planted.flips.filter(
      f => doc.labelIssues.find(l => l.file === f.file)?.suggested === f.trueClass,
    ).length;
    assert.ok(suggested >= 8, `the true class is suggested for only ${suggested} flips`);
  });

  test('duplicates: every planted pair is found, the conflicting one first, the identical one marked exact', () => {
    const groups: string[][] = doc.duplicates.map(d => d.files);
    const key = (files: string[]) => files.slice().sort().join('|');
    const plantedKeys = new Set(planted.duplicates.map(d => key(d.files)));
    const rankOf = planted.duplicates.map(d => groups.findIndex(g => d.files.every(f => g.includes(f))));
    process.stderr.write(
      `duplicates: ${groups.length} groups; planted pairs at ranks ${rankOf.join(', ')}; precision@7 ${hits(groups.slice(0, 7).map(key), plantedKeys)}/7\n`,
    );
    assert.ok(
      rankOf.every(r => r >= 0),
      `planted pairs missing: ranks ${rankOf}`,
    );
    assert.ok(hits(groups.slice(0, 8).map(key), plantedKeys) >= 6, 'all 6 planted pairs in the top 8 groups');
    assert.equal(rankOf[planted.duplicates.findIndex(d => d.conflicting)], 0);
    assert.equal(doc.duplicates[0].conflicting, true);
    const exact = doc.duplicates[rankOf[planted.duplicates.findIndex(d => d.exact)]];
    assert.equal(exact.exact, true);
    assert.equal(exact.similarity, 1);
  });

  test('outliers: the photos come first', () => {
    const files = doc.outliers.map(o => o.file);
    const top5 = hits(files.slice(0, 5), new Set(planted.outliers));
    process.stderr.write(`outliers: ${files.length} listed; precision@5 ${top5}/5 (${files.slice(0, 5).join(', ')})\n`);
    assert.ok(top5 >= 4, `only ${top5} photos in the top 5 outliers`);
  });

  test('a second run reads every feature from the cache, skips .vit-lens and gives the same lists', async () => {
    fs.copyFileSync(path.join(dataset, planted.flips[0].file), path.join(dataset, '.vit-lens', 'stray.png'));
    const again = await audit();
    assert.equal(auditFile().timings.computed, 0);
    assert.equal(again.images, doc.images);
    assert.deepEqual(again.labelIssues, doc.labelIssues);
    assert.deepEqual(again.duplicates, doc.duplicates);
    assert.deepEqual(again.outliers, doc.outliers);
  });

  test('ignored items stay in the decisions and are not listed again', async () => {
    const file = path.join(dataset, '.vit-lens', 'audit.json');
    const current = auditFile();
    const first = current.labelIssues[0].file;
    current.decisions = [{ kind: 'labelIssue', files: [first], action: 'ignore', at: new Date(0).toISOString() }];
    fs.writeFileSync(file, JSON.stringify(current));
    const again = await audit();
    assert.ok(!again.labelIssues.some(l => l.file === first));
    assert.equal(again.labelIssues.length, doc.labelIssues.length - 1);
    assert.deepEqual(auditFile().decisions, current.decisions);
  });

  test('a missing folder is an error naming it; bad options are usage errors', async () => {
    const missing = path.join(tmp, 'nope');
    const r = await runCli(['audit', missing, '--model', model], { env: { VIT_LENS_CACHE: cacheDir } });
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`${missing.replace(/[/\\]/g, '.')}: dataset folder does not exist`));
    const bad = await runCli(['audit', dataset, '--folds', '1'], { env: { VIT_LENS_CACHE: cacheDir } });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--folds must be an integer ≥ 2/);
  });
});

describe('audit Ctrl-C', () => {
  test('SIGINT stops the audit: exit 130, a message on stderr, nothing written', async () => {
    const small = path.join(tmp, 'small');
    await writePlantedDataset(small, 8);
    let sent = false;
    const r = await runCli(['audit', small, '--model', model], {
      env: { VIT_LENS_CACHE: path.join(tmp, 'cache-sigint'), VIT_LENS_MODEL: undefined },
      onStderr: (stderr, kill) => {
        if (!sent && /features \d+\/\d+/.test(stderr)) {
          sent = true;
          kill('SIGINT');
        }
      },
    });
    assert.ok(sent, r.stderr);
    assert.equal(r.code, 130, r.stderr);
    assert.match(r.stderr, /audit stopped; nothing written/);
    assert.ok(!fs.existsSync(path.join(small, '.vit-lens', 'audit.json')));
  });
});
