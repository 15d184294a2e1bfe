/**
 * `vit-lens` command line: the same engine as the editor's worker, headless.
 *   vit-lens classify IMAGE... [--model M] [--top-k 5] [--json]
 *   vit-lens classify-folder DIR [--out DIR] [--model M] [--top-k 5] [--json]   (also: classify DIR)
 *   vit-lens explain IMAGE [--model M] [--method rollout|relevance|attention] [--class LABEL|INDEX]
 *                          [--head-fusion mean|max|min] [--discard-ratio 0.9]
 *                          [--layer N [--head H]] [--out overlay.png] [--json]
 *   vit-lens info [--model M] [--json]
 *   vit-lens audit DATASET_DIR [--model M] [--folds 5] [--out DIR] [--json]
 * With --json exactly one JSON document goes to stdout; progress and errors go to stderr.
 */
import { promises as fs, existsSync } from 'fs';
import * as path from 'path';
import { parseArgs, ParseArgsConfig } from 'util';
import { Engine } from './engine';
import { builtInModel } from '../common/modelSpec';
import { PROVIDER_NAMES } from './inference';
import { classifyFolder, folderAccuracy } from './classifyFolder';
import {
  COLORMAPS,
  DTYPES,
  EXPLAIN_METHODS,
  PROVIDER_PREFERENCES,
  type ColormapName as Colormap,
} from '../common/options';
import type { ProgressEvent } from './model/modelSource';
import type { HeadFusion } from './explain/rollout';
import type { ModelInfo, Prediction } from '../common/workerRequests';
import { commandLineArgs, displayPath, fsPath } from './util/fileNames';

const USAGE = `Usage:
  vit-lens classify IMAGE... [--model MODEL] [--top-k 5] [--json]
  vit-lens classify-folder DIR [--out OUT_DIR] [--model MODEL] [--top-k 5] [--json]
                         every image under DIR; writes OUT_DIR/predictions.csv and .json (OUT_DIR: DIR)
  vit-lens explain IMAGE [--model MODEL] [--method rollout|relevance|attention] [--class LABEL|INDEX]
                         [--head-fusion mean|max|min] [--discard-ratio 0.9]
                         [--layer N [--head H]] [--out overlay.png] [--colormap turbo] [--opacity 0.5] [--json]
                         rollout (default): where the model looks; relevance: why it says --class
                         (default: its top-1 class); attention: one layer's raw attention (--layer)
  vit-lens info [--model MODEL] [--json]
  vit-lens audit DATASET_DIR [--model MODEL] [--folds 5] [--seed 0] [--similarity 0.965] [--out OUT_DIR] [--json]
                         label issues, near-duplicates and outliers of a class-folder dataset;
                         writes OUT_DIR/audit.json (OUT_DIR: DATASET_DIR/.vit-lens)

MODEL: an .onnx file, a Hugging Face folder (config.json + model.safetensors and/or onnx/model.onnx),
a Google vision_transformer .npz checkpoint, or a hub id org/name[@revision]. Default: $VIT_LENS_MODEL,
else the built-in model.

Common options:
  --labels FILE        one label per line (overrides config.json id2label)
  --provider P         auto (default), webgpu, cuda or cpu: auto takes CUDA or a hardware WebGPU adapter
                       when one is faster than the CPU on this model (measured once, remembered)
  --threads N          CPU threads for ONNX Runtime (default: all cores)
  --dtype D            fp32 (default) or q8: int8 weights for models built from safetensors/npz, or a
                       transformers.js folder's onnx/model_quantized.onnx
  --cache-dir DIR      downloads and built models (default: $VIT_LENS_CACHE or ~/.cache/vit-lens)
  --offline            never use the network (also HF_HUB_OFFLINE=1)
  --json               print one JSON document on stdout
`;

const OPTIONS = {
  model: { type: 'string', short: 'm' },
  labels: { type: 'string' },
  provider: { type: 'string' },
  threads: { type: 'string' },
  dtype: { type: 'string' },
  'cache-dir': { type: 'string' },
  offline: { type: 'boolean' },
  json: { type: 'boolean' },
  'top-k': { type: 'string', short: 'k' },
  method: { type: 'string' },
  class: { type: 'string' },
  'head-fusion': { type: 'string' },
  'discard-ratio': { type: 'string' },
  layer: { type: 'string' },
  head: { type: 'string' },
  out: { type: 'string', short: 'o' },
  colormap: { type: 'string' },
  opacity: { type: 'string' },
  folds: { type: 'string' },
  seed: { type: 'string' },
  similarity: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

class UsageError extends Error {}

/** The model shipped inside the package (dist/ sits beside models/). */
function packagedModel(): string | undefined {
  return (
    builtInModel(path.join(__dirname, '..'), existsSync) ?? builtInModel(path.join(__dirname, '..', '..'), existsSync)
  );
}

function intOption(value: string | undefined, name: string, min: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be an integer ≥ ${min}, got "${value}"`);
  return n;
}

function numberOption(value: string | undefined, name: string, lo: number, hi: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n < lo || n > hi)
    throw new UsageError(`--${name} must be a number in [${lo}, ${hi}], got "${value}"`);
  return n;
}

function choice<T extends string>(value: string | undefined, name: string, allowed: readonly T[]): T | undefined {
  if (value === undefined) return undefined;
  if (!allowed.includes(value as T))
    throw new UsageError(`--${name} must be one of ${allowed.join(', ')}, got "${value}"`);
  return value as T;
}

function progressPrinter(json: boolean): (p: ProgressEvent) => void {
  let lastLine = '';
  let lastMessage = '';
  return p => {
    const pct = p.fraction === undefined ? '' : ` ${(p.fraction * 100).toFixed(0)}%`;
    const line = `${p.message}${pct}`;
    if (process.stderr.isTTY && !json) {
      if (line !== lastLine) process.stderr.write(`\r\x1b[K${line}`);
    } else if ((p.stage === 'download' || p.stage === 'build') && p.message !== lastMessage) {
      // In logs: only the slow stages, one line per file (percentages would flood them).
      process.stderr.write(`${p.message}\n`);
    }
    lastLine = line;
    lastMessage = p.message;
  };
}

/** Classify's note for an image unlike the model's training sample (server/model/trainingSample.ts). */
function unlikeTrainingNote(t: { distance: number; threshold: number }): string {
  return `  note: unlike the training data (distance ${t.distance.toFixed(2)} to its nearest training images; 99% of them are within ${t.threshold.toFixed(2)}): these labels say little`;
}

function formatPredictions(preds: Prediction[]): string {
  return preds.map(p => `  ${(p.score * 100).toFixed(1).padStart(5)}%  ${p.label}`).join('\n');
}

/** A small terminal picture of a map, for people running explain without --out. */
function textHeatmap(grid: [number, number], values: ArrayLike<number>): string {
  const shades = ' ░▒▓█';
  const lines: string[] = [];
  for (let r = 0; r < grid[0]; r++) {
    let line = '  ';
    for (let c = 0; c < grid[1]; c++) {
      const v = values[r * grid[1] + c];
      line += shades[Math.min(shades.length - 1, Math.floor(v * shades.length))].repeat(2);
    }
    lines.push(line);
  }
  return lines.join('\n');
}

function describeModel(info: ModelInfo): string {
  const a = info.architecture;
  const rows = [
    ['model', `${info.name} (${info.kind})`],
    ['source', info.spec],
    [
      'architecture',
      a
        ? `ViT: hidden ${a.hiddenSize}, ${a.numLayers} layers, ${a.numHeads} heads, MLP ${a.mlpSize}, patch ${a.patchSize}, LayerNorm eps ${a.layerNormEps}, qkv bias ${a.qkvBias}${a.preLogitsSize ? `, pre-logits ${a.preLogitsSize}` : ''}`
        : `ONNX graph: ${info.numLayers} attention layers${info.patchSize ? `, patch ${info.patchSize}` : ''}`,
    ],
    ['input', `${info.imageSize[1]}×${info.imageSize[0]}`],
    [
      'classes',
      `${info.numClasses} (labels from ${info.labelsFrom}): ${info.labels.slice(0, 5).join(', ')}${info.numClasses > 5 ? ', …' : ''}`,
    ],
    [
      'preprocessing',
      `resize ${info.preprocess.size[1]}×${info.preprocess.size[0]} (PIL filter ${info.preprocess.resample}), rescale ${info.preprocess.doRescale ? info.preprocess.rescaleFactor.toPrecision(4) : 'off'}, normalize ${info.preprocess.doNormalize ? `mean [${info.preprocess.mean.join(', ')}] std [${info.preprocess.std.join(', ')}]` : 'off'}`,
    ],
    [
      'explain',
      info.explainAvailable
        ? 'attention rollout and raw attention available'
        : `unavailable: ${info.explainUnavailableReason}`,
    ],
    ['dtype', info.dtype],
    [
      'provider',
      `${PROVIDER_NAMES[info.provider]} · ${info.device}${info.providerNote ? ` (${info.providerNote})` : ''}`,
    ],
    [
      'batch',
      `${info.batchSize} images per run (${info.provider === 'cpu' ? 'CPU' : "sized to the model's activations on a GPU"})`,
    ],
  ];
  if (info.builtFile) rows.push(['built graph', info.builtFile]);
  return rows.map(([k, v]) => `${k.padEnd(14)}${v}`).join('\n');
}

const TRAIN_COMMANDS = ['train', 'runs', 'export', 'torch-check'];

async function main(argv: string[]): Promise<number> {
  if (TRAIN_COMMANDS.includes(argv[0])) {
    // Loaded lazily so classify/explain never load TensorFlow.js.
    const { runTrainCommand } = await import('./train/cli');
    return runTrainCommand(argv[0], argv.slice(1));
  }
  const { values: o, positionals } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  const [command, ...rest] = positionals;
  if (o.help || !command) {
    process.stdout.write(USAGE);
    return command || o.help ? 0 : 2;
  }
  if (!['classify', 'classify-folder', 'explain', 'info', 'audit'].includes(command))
    throw new UsageError(`unknown command "${command}"`);
  if (command === 'audit' && rest.length !== 1) throw new UsageError('audit needs exactly one DATASET_DIR');
  if ((o.folds || o.seed || o.similarity) && command !== 'audit')
    throw new UsageError('--folds, --seed and --similarity are for audit');
  // `classify DIR` means the folder form.
  const folderMode =
    command === 'classify-folder' ||
    (command === 'classify' &&
      rest.length === 1 &&
      (await fs.stat(fsPath(rest[0])).catch(() => undefined))?.isDirectory() === true);
  if (command === 'classify-folder' && rest.length !== 1) throw new UsageError('classify-folder needs exactly one DIR');
  if (o.out && command !== 'explain' && command !== 'audit' && !folderMode)
    throw new UsageError('--out is for explain, classify-folder and audit');
  const model = o.model ?? process.env.VIT_LENS_MODEL ?? packagedModel();
  if (!model) throw new UsageError('no --model given, $VIT_LENS_MODEL is not set and no built-in model is installed');
  const json = !!o.json;
  const engine = new Engine({
    provider: choice(o.provider, 'provider', PROVIDER_PREFERENCES),
    onProviderFallback: note => process.stderr.write(`vit-lens: ${note}\n`),
    threads: intOption(o.threads, 'threads', 1),
    dtype: choice(o.dtype, 'dtype', DTYPES),
    cacheDir: o['cache-dir'],
    cacheDirOption: !o['cache-dir'] && process.env.VIT_LENS_CACHE ? '--cache-dir (or $VIT_LENS_CACHE)' : '--cache-dir',
    offline: o.offline || undefined,
  });
  const topK = intOption(o['top-k'], 'top-k', 1) ?? 5;
  const headFusion = choice<HeadFusion>(o['head-fusion'], 'head-fusion', ['mean', 'max', 'min']);
  const discardRatio = numberOption(o['discard-ratio'], 'discard-ratio', 0, 0.999);
  const layer = intOption(o.layer, 'layer', 0);
  const head = intOption(o.head, 'head', 0);
  const method = choice(o.method, 'method', EXPLAIN_METHODS) ?? (layer !== undefined ? 'attention' : 'rollout');
  if (head !== undefined && layer === undefined && method !== 'attention') throw new UsageError('--head needs --layer');
  if (layer !== undefined && method !== 'attention')
    throw new UsageError(`--layer and --head are for --method attention, not ${method}`);
  if (o.class !== undefined && method !== 'relevance') throw new UsageError('--class is for --method relevance');
  if ((o.method !== undefined || o.class !== undefined) && command !== 'explain')
    throw new UsageError('--method and --class are for explain');
  const colormap = choice<Colormap>(o.colormap, 'colormap', COLORMAPS) ?? 'turbo';
  const opacity = numberOption(o.opacity, 'opacity', 0, 1) ?? 0.5;
  const audit = {
    folds: intOption(o.folds, 'folds', 2) ?? 5,
    seed: intOption(o.seed, 'seed', 0) ?? 0,
    similarity: numberOption(o.similarity, 'similarity', 0.5, 1),
  };
  if (command === 'classify' && rest.length === 0) throw new UsageError('classify needs at least one IMAGE');
  if (command === 'explain' && rest.length !== 1) throw new UsageError('explain needs exactly one IMAGE');

  const info = await engine.load(model, {
    labelsFile: o.labels,
    onProgress: progressPrinter(json),
    onWarning: message =>
      process.stderr.write(`${process.stderr.isTTY && !json ? '\r\x1b[K' : ''}vit-lens: warning: ${message}\n`),
  });
  if (process.stderr.isTTY && !json) process.stderr.write('\r\x1b[K');
  try {
    if (command === 'info') {
      process.stdout.write(json ? JSON.stringify(info, null, 2) + '\n' : describeModel(info) + '\n');
      return 0;
    }
    if (command === 'audit')
      return await runAudit(engine, rest[0], { ...audit, outDir: o.out, cacheDir: o['cache-dir'] }, json);
    if (folderMode) return await runClassifyFolder(engine, info, rest[0], o.out, topK, json);
    if (command === 'classify') {
      const { results, failures } = await engine.classify(rest, topK);
      for (const f of failures) process.stderr.write(`error: ${f.error}\n`);
      if (json) {
        process.stdout.write(JSON.stringify(failures.length ? { results, failures } : { results }) + '\n');
      } else {
        for (const r of results)
          process.stdout.write(
            `${displayPath(r.image)}\n${formatPredictions(r.predictions)}\n${r.trainingData?.unlike ? `${unlikeTrainingNote(r.trainingData)}\n` : ''}`,
          );
      }
      return failures.length ? 1 : 0;
    }
    const r = await engine.explain(rest[0], {
      method,
      class: o.class,
      headFusion,
      discardRatio,
      layer,
      head,
      topK,
      overlay: o.out ? { colormap, opacity } : undefined,
    });
    if (o.out && r.overlayPng) {
      await fs.mkdir(path.dirname(path.resolve(o.out)), { recursive: true });
      await fs.writeFile(o.out, r.overlayPng);
    }
    if (json) {
      const mapJson = { grid: r.map.grid, values: Array.from(r.map.values) };
      const doc: Record<string, unknown> = { image: r.image, predictions: r.predictions };
      if (r.method === 'rollout') doc.rollout = mapJson;
      else if (r.method === 'relevance') {
        doc.relevance = mapJson;
        doc.class = r.class;
      } else doc.attention = { layer: r.layer, head: r.head, ...mapJson };
      if (o.out) doc.overlay = o.out;
      process.stdout.write(JSON.stringify(doc) + '\n');
    } else {
      const what =
        r.method === 'rollout'
          ? `attention rollout (${headFusion ?? 'mean'} fusion, discard ${discardRatio ?? 0.9})`
          : r.method === 'relevance'
            ? `relevance for class ${r.class!.index} "${r.class!.label}"`
            : `layer ${r.layer} attention, head ${r.head}`;
      process.stdout.write(
        `${displayPath(r.image)}\n${formatPredictions(r.predictions)}\n${what}:\n${textHeatmap(r.map.grid, r.map.values)}\n`,
      );
      if (o.out) process.stdout.write(`overlay written to ${o.out}\n`);
    }
    return 0;
  } finally {
    await engine.dispose();
  }
}

/** Ctrl-C stops between batches and still writes what was done (exit 130); a second Ctrl-C quits at once. */
async function runClassifyFolder(
  engine: Engine,
  info: ModelInfo,
  dir: string,
  outDir: string | undefined,
  topK: number,
  json: boolean,
): Promise<number> {
  const controller = new AbortController();
  const onSigint = () => {
    if (controller.signal.aborted) process.exit(130);
    process.stderr.write('\nstopping after this batch (Ctrl-C again to quit without writing)…\n');
    controller.abort();
  };
  process.on('SIGINT', onSigint);
  const tty = process.stderr.isTTY && !json;
  let lastLog = 0;
  try {
    const r = await classifyFolder(dir, {
      outDir,
      model: info.name,
      signal: controller.signal,
      batchSize: engine.classifyBatchSize(),
      classifyBatch: files => engine.classify(files, topK, controller.signal),
      onProgress: (done, total) => {
        if (tty) process.stderr.write(`\r\x1b[Kclassifying ${done} / ${total} images`);
        else if (done === total || Date.now() - lastLog > 10_000) {
          lastLog = Date.now();
          process.stderr.write(`classifying ${done} / ${total} images\n`);
        }
      },
    });
    if (tty) process.stderr.write('\r\x1b[K');
    for (const f of r.failures) process.stderr.write(`error: ${f.error}\n`);
    const acc = folderAccuracy(r.predictions);
    if (json) {
      // The full table is in the JSON file; stdout gets the summary and where the files are.
      const { predictions, ...rest } = r;
      process.stdout.write(
        JSON.stringify({
          ...rest,
          images: predictions.length,
          ...(acc ? { accuracy: acc.correct / acc.labelled, labelled: acc.labelled } : {}),
        }) + '\n',
      );
    } else {
      const accText = acc
        ? `; ${((acc.correct / acc.labelled) * 100).toFixed(1)}% agree with their folder labels (${acc.correct}/${acc.labelled})`
        : '; no folder labels (not a class-folder dataset)';
      process.stdout.write(
        `${r.partial ? 'stopped early: ' : ''}classified ${r.predictions.length} of ${r.total} images with ${r.model}${r.failures.length ? `, ${r.failures.length} failed` : ''}${accText}\n`,
      );
      process.stdout.write(`wrote ${r.csvFile}\nwrote ${r.jsonFile}\n`);
    }
    return r.partial ? 130 : r.failures.length ? 1 : 0;
  } finally {
    process.off('SIGINT', onSigint);
  }
}

/** Ctrl-C stops at the next batch or fold and writes nothing (exit 130); features computed so far stay cached. */
async function runAudit(
  engine: Engine,
  dir: string,
  opts: { folds: number; seed: number; similarity?: number; outDir?: string; cacheDir?: string },
  json: boolean,
): Promise<number> {
  const { auditDataset } = await import('./audit/audit');
  const controller = new AbortController();
  const onSigint = () => {
    if (controller.signal.aborted) process.exit(130);
    process.stderr.write('\nstopping (Ctrl-C again to quit at once)…\n');
    controller.abort();
  };
  process.on('SIGINT', onSigint);
  const tty = process.stderr.isTTY && !json;
  let lastStage = '';
  try {
    const r = await auditDataset(engine, dir, {
      ...opts,
      signal: controller.signal,
      onProgress: p => {
        if (tty) process.stderr.write(`\r\x1b[K${p.message}`);
        else if (p.stage !== lastStage || p.fraction === 1) process.stderr.write(`${p.message}\n`);
        lastStage = p.stage;
      },
    });
    if (tty) process.stderr.write('\r\x1b[K');
    for (const s of r.skipped)
      process.stderr.write(`skipped: ${s.reason.startsWith(s.file) ? s.reason : `${s.file}: ${s.reason}`}\n`);
    if (json) {
      const { images, classes, labelIssues, duplicates, outliers, skipped, file } = r;
      process.stdout.write(
        JSON.stringify({ images, classes, labelIssues, duplicates, outliers, skipped, file }) + '\n',
      );
    } else {
      const t = r.timings;
      process.stdout.write(
        `audited ${r.images} images in ${r.classes.length} classes with ${r.model} (${r.folds} folds; features ${t.features.toFixed(1)} s, ${t.computed} computed, heads ${t.crossValidation.toFixed(1)} s, neighbours ${t.neighbours.toFixed(1)} s)\n`,
      );
      process.stdout.write(
        `${r.labelIssues.length} label issues, ${r.duplicates.length} duplicate groups (${r.duplicates.filter(d => d.conflicting).length} with conflicting labels), ${r.outliers.length} outliers\n`,
      );
      for (const l of r.labelIssues.slice(0, 10))
        process.stdout.write(
          `  label issue  ${l.file}: labelled ${l.label}, looks like ${l.suggested} (self-confidence ${l.score.toFixed(3)})\n`,
        );
      for (const d of r.duplicates.slice(0, 5))
        process.stdout.write(
          `  duplicates   ${d.files.join(', ')} (${d.exact ? 'identical files' : `similarity ${d.similarity.toFixed(4)}`}${d.conflicting ? `, conflicting labels ${d.labels.join(' / ')}` : ''})\n`,
        );
      for (const x of r.outliers.slice(0, 5))
        process.stdout.write(`  outlier      ${x.file} (score ${x.score.toFixed(3)})\n`);
      process.stdout.write(`wrote ${r.file}\n`);
    }
    return 0;
  } catch (e) {
    if (controller.signal.aborted) {
      process.stderr.write('audit stopped; nothing written\n');
      return 130;
    }
    throw e;
  } finally {
    process.off('SIGINT', onSigint);
  }
}

main(commandLineArgs()).then(
  code => process.exit(code),
  (e: unknown) => {
    if (
      e instanceof UsageError ||
      (e instanceof Error && (e as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS'))
    ) {
      process.stderr.write(`vit-lens: ${(e as Error).message}\n\n${USAGE}`);
      process.exit(2);
    }
    process.stderr.write(`vit-lens: error: ${e instanceof Error ? e.message : String(e)}\n`);
    if (process.env.VIT_LENS_DEBUG && e instanceof Error) process.stderr.write(`${e.stack}\n`);
    process.exit(1);
  },
);
