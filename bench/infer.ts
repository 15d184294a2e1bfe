/**
 * `npm run bench:infer`: ViT-B/16 at 224 px with random weights, built by our own exporter, on CPU —
 * ms/img at batch 1, img/s at batch 8 — against PyTorch CPU on the same weights in the same run
 * (/usr/bin/python3 bench/torch_infer.py), plus the cost of explain (attention fetch + rollout) as a
 * percentage of plain inference, and of a class relevance map (forward + backward graph) against one
 * inference and one rollout map.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { performance } from 'perf_hooks';
import { Engine } from '../server/engine';

const threads = Number(process.env.BENCH_THREADS ?? os.availableParallelism());
const runs1 = Number(process.env.BENCH_RUNS1 ?? 20);
const runs8 = Number(process.env.BENCH_RUNS8 ?? 5);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

async function timed(fn: () => Promise<unknown>, runs: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    out.push(performance.now() - t0);
  }
  return out;
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-bench-'));
  try {
    console.log(`ViT-B/16, 224 px, random weights, CPU, ${threads} threads (${os.cpus()[0]?.model ?? 'unknown CPU'})`);
    console.log('PyTorch: building the model, saving its weights, timing …');
    const torch = JSON.parse(
      execFileSync('/usr/bin/python3', [path.join(__dirname, 'torch_infer.py'), dir, '--threads', String(threads), '--runs1', String(runs1), '--runs8', String(runs8)], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'inherit'],
      }),
    );

    const engine = new Engine({ provider: 'cpu', threads, cacheDir: path.join(dir, 'cache') });
    let t0 = performance.now();
    await engine.load(path.join(dir, 'hf'));
    const coldLoad = performance.now() - t0;
    await engine.dispose();
    t0 = performance.now();
    await engine.load(path.join(dir, 'hf'));
    const warmLoad = performance.now() - t0;

    const buf = fs.readFileSync(path.join(dir, 'input.bin'));
    const x8 = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
    const x1 = x8.slice(0, 3 * 224 * 224);
    const refBuf = fs.readFileSync(path.join(dir, 'logits.bin'));
    const refLogits = new Float32Array(refBuf.buffer.slice(refBuf.byteOffset, refBuf.byteOffset + refBuf.byteLength));
    const check = await engine.runPixels(x8, 8);
    let maxDiff = 0;
    for (let i = 0; i < refLogits.length; i++) maxDiff = Math.max(maxDiff, Math.abs(check.logits[i] - refLogits[i]));

    for (let i = 0; i < 3; i++) await engine.runPixels(x1, 1);
    // Inference alone, then the production paths on a real photo: classify vs explain (attention
    // rollout). Interleaved so machine noise hits all three alike.
    const photo = path.join(__dirname, '..', 'test', 'fixtures', 'photos', 'chelsea.png');
    await engine.classify([photo]);
    await engine.explain(photo);
    const plain: number[] = [];
    const classify: number[] = [];
    const explain: number[] = [];
    for (let i = 0; i < runs1; i++) {
      plain.push(...(await timed(() => engine.runPixels(x1, 1), 1)));
      classify.push(...(await timed(() => engine.classify([photo]), 1)));
      engine.forgetLastRun();
      explain.push(...(await timed(() => engine.explain(photo, { headFusion: 'mean', discardRatio: 0.9 }), 1)));
    }
    // Rollout alone, on maps already fetched (what changing fusion or discard ratio in the panel costs).
    const rolloutOnly = await timed(() => engine.explain(photo, { headFusion: 'max', discardRatio: 0.9 }), runs1);

    // Class relevance: first request (read the weights back, build the forward+backward graph, start
    // its session), then one map per call, interleaved with plain inference and rollout explain.
    engine.forgetLastRun();
    t0 = performance.now();
    await engine.explain(photo, { method: 'relevance' });
    const relevanceSetup = performance.now() - t0;
    const plainR: number[] = [];
    const rolloutR: number[] = [];
    const relevance: number[] = [];
    const relevanceExplain: number[] = [];
    for (let i = 0; i < runs1; i++) {
      plainR.push(...(await timed(() => engine.runPixels(x1, 1), 1)));
      engine.forgetLastRun();
      rolloutR.push(...(await timed(() => engine.explain(photo), 1)));
      relevance.push(...(await timed(() => engine.relevancePixels(x1, i % 2 ? -1 : 3), 1)));
      engine.forgetLastRun();
      relevanceExplain.push(...(await timed(() => engine.explain(photo, { method: 'relevance', class: i % 10 }), 1)));
    }
    await engine.runPixels(x8, 8);
    const t8 = await timed(() => engine.runPixels(x8, 8), runs8);
    await engine.dispose();

    const ours1 = median(plain);
    const ours8 = 8000 / median(t8);
    const rows: [string, string, string, string][] = [
      ['', 'ViT Lens (ORT)', `PyTorch ${torch.torch}`, 'ratio (ours/torch)'],
      ['batch 1, ms/img (median)', ours1.toFixed(1), torch.batch1_ms_median.toFixed(1), `${(torch.batch1_ms_median / ours1).toFixed(2)}× faster`],
      ['batch 8, img/s', ours8.toFixed(2), torch.batch8_img_per_s.toFixed(2), `${(ours8 / torch.batch8_img_per_s).toFixed(2)}× throughput`],
    ];
    console.log('');
    for (const r of rows) console.log(`${r[0].padEnd(26)}${r[1].padStart(16)}${r[2].padStart(18)}${r[3].padStart(22)}`);
    console.log('');
    console.log(`logits vs PyTorch on the same weights (batch 8): max abs diff ${maxDiff.toExponential(2)}`);
    console.log(`model load: ${(coldLoad / 1000).toFixed(2)} s first time (build ONNX + cache), ${(warmLoad / 1000).toFixed(2)} s from cache`);
    const classifyMs = median(classify);
    const explainMs = median(explain);
    console.log(
      `classify one photo (decode + resize + inference): ${classifyMs.toFixed(1)} ms; explain (same + attention maps + rollout): ${explainMs.toFixed(1)} ms; ` +
        `rollout overhead ${(((explainMs - classifyMs) / ours1) * 100).toFixed(1)}% of inference (${(explainMs - classifyMs).toFixed(1)} ms)`,
    );
    console.log(`re-running rollout on cached maps (new fusion/discard in the panel): ${median(rolloutOnly).toFixed(2)} ms`);
    const [inf, roll, rel, relExplain] = [plainR, rolloutR, relevance, relevanceExplain].map(median);
    console.log(
      `class relevance map (forward + backward, one graph): ${rel.toFixed(1)} ms = ${(rel / inf).toFixed(2)}× one inference (${inf.toFixed(1)} ms); ` +
        `explain on the photo: relevance ${relExplain.toFixed(1)} ms vs rollout ${roll.toFixed(1)} ms (${(relExplain / roll).toFixed(2)}×); ` +
        `first relevance request (weights + graph + session): ${(relevanceSetup / 1000).toFixed(2)} s`,
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
