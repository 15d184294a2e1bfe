/**
 * `npm run bench:infer`: ViT-B/16 at 224 px with random weights, built by our own exporter, on CPU —
 * ms/img at batch 1, img/s at batch 8, fp32 and q8 — against PyTorch CPU on the same weights at the
 * same thread count in the same run (/usr/bin/python3 bench/torch_infer.py), with the GFLOP/s each
 * reaches against the cores' fp32 FMA peak; then the cost of explain (attention fetch + rollout) as
 * a percentage of plain inference; and WebGPU when a hardware adapter exists (BENCH_WEBGPU=1 also
 * times a software one, which is slow); and the cost of a class relevance map (forward + backward
 * graph) against one inference and one rollout map.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { performance } from 'perf_hooks';
import { Engine } from '../server/engine';
import { probeWebGpuAdapter } from '../server/webgpuAdapter';
import { fixOpenBlasCore } from './openblasCore';

/** FLOPs (2 per multiply-add) of one ViT-B/16 image at 224 px: patch embedding, 12 blocks, head. */
function vitFlops(d = 768, mlp = 3072, layers = 12, patches = 196, classes = 1000, patch = 16): number {
  const t = patches + 1;
  const block = t * (4 * d * d + 2 * d * mlp) + 2 * t * t * d;
  return 2 * (patches * 3 * patch * patch * d + layers * block + d * classes);
}

/**
 * The cores' fp32 peak: threads × clock × FLOPs per cycle (two FMA pipes: 32 with AVX2 or AMD's
 * double-pumped AVX-512, 64 with Intel's AVX-512). An estimate from /proc/cpuinfo; BENCH_PEAK_GFLOPS overrides.
 */
function fp32PeakGflops(threads: number): { gflops: number; how: string } {
  if (process.env.BENCH_PEAK_GFLOPS) return { gflops: Number(process.env.BENCH_PEAK_GFLOPS), how: 'BENCH_PEAK_GFLOPS' };
  const info = fs.existsSync('/proc/cpuinfo') ? fs.readFileSync('/proc/cpuinfo', 'utf8') : '';
  const flagsLine = ` ${info.match(/^flags.*$/m)?.[0] ?? ''} `;
  const flags = flagsLine.includes(' avx512f ') ? 'avx512f' : flagsLine.includes(' fma ') ? 'avx2+fma' : 'sse';
  const intel = /GenuineIntel/.test(info);
  const perCycle = flags === 'avx512f' && intel ? 64 : flags === 'sse' ? 8 : 32;
  const ghz = (Number(info.match(/^cpu MHz\s*:\s*([\d.]+)/m)?.[1]) || os.cpus()[0]?.speed || 2000) / 1000;
  return {
    gflops: threads * ghz * perCycle,
    how: `${threads} × ${ghz.toFixed(2)} GHz × ${perCycle} FLOP/cycle (${flags})`,
  };
}

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
  console.log(fixOpenBlasCore());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-bench-'));
  try {
    console.log(`ViT-B/16, 224 px, random weights, CPU, ${threads} threads (${os.cpus()[0]?.model ?? 'unknown CPU'})`);
    console.log('PyTorch: building the model, saving its weights, timing …');
    const torch = JSON.parse(
      execFileSync(
        '/usr/bin/python3',
        [
          path.join(__dirname, 'torch_infer.py'),
          dir,
          '--threads',
          String(threads),
          '--runs1',
          String(runs1),
          '--runs8',
          String(runs8),
        ],
        {
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'inherit'],
        },
      ),
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

    // q8: the same weights built with int8 linears (--dtype q8).
    const q8 = new Engine({ provider: 'cpu', threads, cacheDir: path.join(dir, 'cache'), dtype: 'q8' });
    await q8.load(path.join(dir, 'hf'));
    const q8Check = await q8.runPixels(x8, 8);
    let q8Diff = 0;
    let q8Agree = 0;
    for (let i = 0; i < refLogits.length; i++) q8Diff = Math.max(q8Diff, Math.abs(q8Check.logits[i] - refLogits[i]));
    const argmax = (a: Float32Array, i: number) => {
      const r = a.subarray(i * 1000, (i + 1) * 1000);
      return r.indexOf(Math.max(...r));
    };
    for (let i = 0; i < 8; i++) q8Agree += Number(argmax(q8Check.logits, i) === argmax(refLogits, i));
    for (let i = 0; i < 3; i++) await q8.runPixels(x1, 1);
    const q8t1 = await timed(() => q8.runPixels(x1, 1), runs1);
    const q8t8 = await timed(() => q8.runPixels(x8, 8), runs8);
    await q8.dispose();

    // WebGPU: only on a hardware adapter unless asked (a software one takes minutes on ViT-B).
    let gpu: { device: string; ms1: number; ips8: number; diff: number } | undefined;
    const probe = await probeWebGpuAdapter();
    if ('adapter' in probe && (!probe.adapter.software || process.env.BENCH_WEBGPU === '1')) {
      const wg = new Engine({ provider: 'webgpu', threads, cacheDir: path.join(dir, 'cache') });
      const info = await wg.load(path.join(dir, 'hf'));
      if (info.provider === 'webgpu') {
        const out = await wg.runPixels(x8, 8);
        let diff = 0;
        for (let i = 0; i < refLogits.length; i++) diff = Math.max(diff, Math.abs(out.logits[i] - refLogits[i]));
        for (let i = 0; i < 3; i++) await wg.runPixels(x1, 1);
        const w1 = await timed(() => wg.runPixels(x1, 1), runs1);
        const w8 = await timed(() => wg.runPixels(x8, 8), runs8);
        gpu = { device: info.device, ms1: median(w1), ips8: 8000 / median(w8), diff };
      } else console.log(`WebGPU did not start: ${info.providerNote}`);
      await wg.dispose();
    } else
      console.log(
        `WebGPU: ${'adapter' in probe ? `${probe.adapter.name} is a software adapter (BENCH_WEBGPU=1 to time it anyway)` : probe.error}`,
      );

    const ours1 = median(plain);
    const ours8 = 8000 / median(t8);
    const q81 = median(q8t1);
    const q88 = 8000 / median(q8t8);
    const flops = vitFlops();
    const peak = fp32PeakGflops(threads);
    const gf = (ips: number) =>
      `${((ips * flops) / 1e9).toFixed(1)} (${(((ips * flops) / 1e9 / peak.gflops) * 100).toFixed(0)}%)`;
    const rows: string[][] = [
      ['', 'ours fp32', 'ours q8', `PyTorch ${torch.torch}`, 'q8/fp32', 'q8/PyTorch', 'fp32/PyTorch'],
      [
        'batch 1, ms/img (median)',
        ours1.toFixed(1),
        q81.toFixed(1),
        torch.batch1_ms_median.toFixed(1),
        `${(ours1 / q81).toFixed(2)}×`,
        `${(torch.batch1_ms_median / q81).toFixed(2)}×`,
        `${(torch.batch1_ms_median / ours1).toFixed(2)}×`,
      ],
      [
        'batch 8, img/s',
        ours8.toFixed(2),
        q88.toFixed(2),
        torch.batch8_img_per_s.toFixed(2),
        `${(q88 / ours8).toFixed(2)}×`,
        `${(q88 / torch.batch8_img_per_s).toFixed(2)}×`,
        `${(ours8 / torch.batch8_img_per_s).toFixed(2)}×`,
      ],
      ['batch 8, GFLOP/s (% peak)', gf(ours8), gf(q88), gf(torch.batch8_img_per_s), '', '', ''],
    ];
    if (gpu)
      rows.push([
        `WebGPU: ${gpu.device}`,
        `${gpu.ms1.toFixed(1)} ms/img at batch 1, ${gpu.ips8.toFixed(2)} img/s at batch 8, ${gf(gpu.ips8)} GFLOP/s; logits vs PyTorch ${gpu.diff.toExponential(2)}`,
      ]);
    console.log('');
    for (const r of rows)
      console.log(
        r.length === 2
          ? `${r[0]}: ${r[1]}`
          : `${r[0].padEnd(27)}${r
              .slice(1)
              .map((c, i) => c.padStart(i < 3 ? 18 : 13))
              .join('')}`,
      );
    console.log('');
    console.log(
      `${(flops / 1e9).toFixed(1)} GFLOP per image; fp32 peak ${peak.gflops.toFixed(0)} GFLOP/s = ${peak.how} (q8's int8 rate is counted in the same FLOPs)`,
    );
    console.log(
      `logits vs PyTorch on the same weights (batch 8): fp32 max abs diff ${maxDiff.toExponential(2)}; q8 max abs diff ${q8Diff.toExponential(2)}, top-1 agrees on ${q8Agree}/8`,
    );
    console.log(
      `model load: ${(coldLoad / 1000).toFixed(2)} s first time (build ONNX + cache), ${(warmLoad / 1000).toFixed(2)} s from cache`,
    );
    const classifyMs = median(classify);
    const explainMs = median(explain);
    console.log(
      `classify one photo (decode + resize + inference): ${classifyMs.toFixed(1)} ms; explain (same + attention maps + rollout): ${explainMs.toFixed(1)} ms; ` +
        `rollout overhead ${(((explainMs - classifyMs) / ours1) * 100).toFixed(1)}% of inference (${(explainMs - classifyMs).toFixed(1)} ms)`,
    );
    console.log(
      `re-running rollout on cached maps (new fusion/discard in the panel): ${median(rolloutOnly).toFixed(2)} ms`,
    );
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

main().catch(e => {
  console.error(e);
  process.exit(1);
});
