/**
 * `npm run bench:audit`: `vit-lens audit` on 10,000 Fashion-MNIST test images (written as PNG class
 * folders with the planted faults of test/unit/auditData.ts) with the built-in model: seconds for the
 * features cold (empty cache) and cached, for the K-fold heads and for the neighbour pass. Targets:
 * the whole audit under 60 s cold, under 5 s cached. Also prints how the planted faults rank.
 * `--profile FILE.cpuprofile` writes a CPU profile of the cached run (open it in Chrome DevTools).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Session } from 'inspector/promises';
import { performance } from 'perf_hooks';
import { execFileSync } from 'child_process';
import { auditDataset, AuditReport } from '../server/audit/audit';
import { rankedLabelIssues } from '../server/audit/confidentLearning';
import { outOfFoldProbabilities } from '../server/audit/crossValidation';
import { Engine } from '../server/engine';
import { writePlantedDataset } from '../test/unit/auditData';
import { fixOpenBlasCore } from './openblasCore';

async function main(): Promise<void> {
  console.log(fixOpenBlasCore());
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-bench-audit-'));
  try {
    const dataset = path.join(tmp, 'data');
    let t0 = performance.now();
    const planted = await writePlantedDataset(dataset, 998);
    console.log(
      `${planted.images} images written in ${((performance.now() - t0) / 1000).toFixed(1)} s (not timed below); ${os.availableParallelism()} CPUs, ${os.cpus()[0]?.model ?? 'unknown CPU'}, load average ${os.loadavg()[0].toFixed(1)}`,
    );
    const engine = new Engine({ cacheDir: path.join(tmp, 'cache') });
    t0 = performance.now();
    await engine.load(path.join(__dirname, '..', 'models', 'default'));
    console.log(`model load ${((performance.now() - t0) / 1000).toFixed(2)} s`);
    let kept: { X: Float32Array; dim: number; labels: Int32Array } | undefined;
    const run = async (what: string): Promise<AuditReport> => {
      const start = performance.now();
      const cpu0 = process.cpuUsage();
      const r = await auditDataset(engine, dataset, {
        cacheDir: path.join(tmp, 'cache'),
        onFeatures: (X, dim, labels) => (kept = { X, dim, labels }),
      });
      const total = (performance.now() - start) / 1000;
      // CPU seconds of this process (all threads): on a shared machine, wall time also counts other people's work.
      const cpu = process.cpuUsage(cpu0);
      const t = r.timings;
      console.log(
        `${what.padEnd(7)} total ${total.toFixed(1)} s: features ${t.features.toFixed(1)} s (${t.computed} computed), ${r.folds}-fold heads ${t.crossValidation.toFixed(1)} s, neighbours ${t.neighbours.toFixed(1)} s, rest ${(total - t.features - t.crossValidation - t.neighbours).toFixed(1)} s; CPU ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s, load average ${os.loadavg()[0].toFixed(1)}`,
      );
      return r;
    };
    await run('cold');
    const profile = process.argv.indexOf('--profile');
    const session = profile > 0 ? new Session() : undefined;
    if (session) {
      session.connect();
      await session.post('Profiler.enable');
      await session.post('Profiler.start');
    }
    const r = await run('cached');
    if (session) {
      fs.writeFileSync(process.argv[profile + 1], JSON.stringify((await session.post('Profiler.stop')).profile));
      session.disconnect();
    }
    // The peer the issue names: cleanlab's recipe (scikit-learn cross_val_predict + confident learning) on the same features, same run.
    const { X, dim, labels } = kept!;
    const cpu0 = process.cpuUsage();
    let t1 = performance.now();
    const probs = await outOfFoldProbabilities(X, dim, labels, r.classes.length, { folds: 5, seed: 0 });
    const oursHeads = (performance.now() - t1) / 1000;
    t1 = performance.now();
    const flagged = rankedLabelIssues(labels, probs, r.classes.length).map(x => x.index);
    const oursCl = (performance.now() - t1) / 1000;
    const oursCpu = process.cpuUsage(cpu0);
    fs.writeFileSync(path.join(tmp, 'features.f32'), new Uint8Array(X.buffer, X.byteOffset, X.byteLength));
    fs.writeFileSync(path.join(tmp, 'labels.json'), JSON.stringify(Array.from(labels)));
    fs.writeFileSync(path.join(tmp, 'ours.json'), JSON.stringify(flagged));
    const peer = JSON.parse(
      execFileSync(
        '/usr/bin/python3',
        [
          path.join(__dirname, '..', 'scripts', 'audit_peer.py'),
          path.join(tmp, 'features.f32'),
          path.join(tmp, 'labels.json'),
          String(dim),
          path.join(tmp, 'ours.json'),
        ],
        { encoding: 'utf8' },
      ),
    );
    const ours = oursHeads + oursCl;
    const theirs = peer.heads + peer.confidentLearning;
    console.log(
      `heads + confident learning on the same ${labels.length} × ${dim} features: ours ${oursHeads.toFixed(2)} + ${oursCl.toFixed(2)} s, scikit-learn cross_val_predict + numpy confident learning ${peer.heads.toFixed(2)} + ${peer.confidentLearning.toFixed(2)} s (CPU ${((oursCpu.user + oursCpu.system) / 1e6).toFixed(2)} s vs ${peer.cpu.toFixed(2)} s); theirs ÷ ours: wall ${(theirs / ours).toFixed(2)}×, CPU ${(peer.cpu / ((oursCpu.user + oursCpu.system) / 1e6)).toFixed(2)}× (flagged ${flagged.length} vs ${peer.flagged}, ${peer.common} in common)`,
    );
    const flips = new Set(planted.flips.map(f => f.file));
    const issues = r.labelIssues.map(l => l.file);
    // A planted pair counts as found when one group holds both files (at 10,000 images a pair can join a group of natural near-duplicates).
    const rankOf = (files: string[]) => r.duplicates.findIndex(d => files.every(f => d.files.includes(f)));
    const photos = new Set(planted.outliers);
    console.log(
      `label issues: ${issues.length} flagged, flips flagged ${issues.filter(f => flips.has(f)).length}/10, flips in the top 100: ${issues.slice(0, 100).filter(f => flips.has(f)).length}`,
    );
    console.log(
      `duplicates: ${r.duplicates.length} groups, planted pairs at ranks ${planted.duplicates.map(d => rankOf(d.files)).join(', ')}`,
    );
    console.log(
      `outliers: ${r.outliers.length} listed, photos in the top 10: ${r.outliers.slice(0, 10).filter(o => photos.has(o.file)).length}/5`,
    );
    await engine.dispose();
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch(e => {
  console.error(e);
  process.exit(1);
});
