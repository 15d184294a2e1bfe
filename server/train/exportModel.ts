/**
 * Writes a checkpoint as a Hugging Face ViTForImageClassification folder that `vit-lens classify`/
 * `explain` load directly: config.json (id2label), preprocessor_config.json, model.safetensors and
 * onnx/model.onnx (our builder's graph, with attention outputs).
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import { buildVitOnnx } from '../model/onnxBuilder';
import type { WeightMap } from '../model/tensor';
import { hfConfigFromArch, ViTArch, W } from '../model/vitConfig';
import { writeSafetensors } from '../formats/safetensors';
import type { PreprocessConfig } from '../preprocess';
import { THUMB, thumbnail } from '../audit/thumbnail';
import { buildTrainingSample, writeTrainingSample } from '../model/trainingSample';
import { writeFileAtomic } from '../util/atomicFile';
import { loadCheckpoint } from './checkpoint';
import { scanDataset, type Sample } from './datasetFolder';
import { folderLoader } from './imageLoader';
import { checkpointFile, readRunInfo } from './runFiles';

export function preprocessorJson(pre: PreprocessConfig): Record<string, unknown> {
  return {
    image_processor_type: 'ViTImageProcessor',
    do_resize: pre.doResize,
    size: { height: pre.size[0], width: pre.size[1] },
    resample: pre.resample,
    do_rescale: pre.doRescale,
    rescale_factor: pre.rescaleFactor,
    do_normalize: pre.doNormalize,
    image_mean: pre.mean,
    image_std: pre.std,
  };
}

/** Only the tensors HF's ViTForImageClassification knows (plus our optional pre-logits), in a stable order. */
function modelTensors(arch: ViTArch, weights: WeightMap): WeightMap {
  const names: string[] = [W.clsToken, W.posEmbed, W.patchWeight, W.patchBias];
  for (let i = 0; i < arch.numLayers; i++) {
    names.push(...Object.values(W.layer(i)).filter(n => arch.qkvBias || !/\.(query|key|value)\.bias$/.test(n)));
  }
  names.push(W.finalNormWeight, W.finalNormBias);
  if (arch.preLogitsSize) names.push(W.preLogitsWeight, W.preLogitsBias);
  names.push(W.headWeight, W.headBias);
  const out: WeightMap = new Map();
  for (const n of names) {
    const t = weights.get(n);
    if (!t) throw new Error(`export: checkpoint has no tensor "${n}"`);
    out.set(n, t);
  }
  return out;
}

export async function exportHfFolder(
  outDir: string,
  arch: ViTArch,
  weights: WeightMap,
  labels: string[],
  pre: PreprocessConfig,
  extra: Record<string, unknown> = {},
): Promise<void> {
  const tensors = modelTensors(arch, weights);
  await fs.mkdir(path.join(outDir, 'onnx'), { recursive: true });
  await writeSafetensors(path.join(outDir, 'model.safetensors'), tensors, { format: 'pt' });
  await writeFileAtomic(
    path.join(outDir, 'onnx', 'model.onnx'),
    buildVitOnnx(arch, tensors, { producer: 'vit-lens train' }),
  );
  await writeFileAtomic(
    path.join(outDir, 'config.json'),
    JSON.stringify({ ...hfConfigFromArch(arch, labels), ...extra }, null, 2) + '\n',
  );
  await writeFileAtomic(
    path.join(outDir, 'preprocessor_config.json'),
    JSON.stringify(preprocessorJson(pre), null, 2) + '\n',
  );
}

/** Training images per class in an export's training sample (decoding them is the cost, at the end of a run). */
const SAMPLE_PER_CLASS = 100;

/**
 * training_sample.json for an exported model (server/model/trainingSample.ts): thumbnails of up to
 * SAMPLE_PER_CLASS training images per class, so that classify can say when an image is unlike them.
 * Unreadable images are left out; with no more readable images than the 10 neighbours compared, no sample is written.
 */
export async function writeTrainingSampleOf(outDir: string, train: Sample[], pre: PreprocessConfig): Promise<boolean> {
  const perClass = new Map<number, number>();
  const picked = [...train]
    .sort((a, b) => (a.file < b.file ? -1 : 1))
    .filter(s => {
      const n = perClass.get(s.label) ?? 0;
      perClass.set(s.label, n + 1);
      return n < SAMPLE_PER_CLASS;
    });
  const load = folderLoader(pre);
  const [h, w] = pre.size;
  const thumbs: Float32Array[] = [];
  for (const s of picked) {
    const pixels = await load(s).catch(() => undefined);
    if (pixels) thumbs.push(thumbnail(pixels, 0, h, w));
  }
  if (thumbs.length <= 10) return false;
  const all = new Float32Array(thumbs.length * THUMB * THUMB);
  thumbs.forEach((t, i) => all.set(t, i * THUMB * THUMB));
  await writeTrainingSample(outDir, buildTrainingSample(all, thumbs.length));
  return true;
}

/** `vit-lens export RUN_DIR --out MODEL_DIR`: the run's best checkpoint (else its latest). */
export async function exportRun(runDir: string, outDir: string): Promise<{ checkpoint: string }> {
  const info = await readRunInfo(runDir);
  let file = checkpointFile(runDir, 'best');
  if (!(await fs.stat(file).catch(() => undefined))) file = checkpointFile(runDir, 'latest');
  if (!(await fs.stat(file).catch(() => undefined)))
    throw new Error(`${runDir}: no checkpoint yet (checkpoints/best.safetensors and latest.safetensors are missing)`);
  const { weights } = await loadCheckpoint(file);
  if (!info.architecture || !info.preprocess)
    throw new Error(`${runDir}/run.json: no architecture/preprocess recorded`);
  await exportHfFolder(outDir, info.architecture, weights, info.classes, info.preprocess, {
    vit_lens: {
      run: path.resolve(runDir),
      checkpoint: path.basename(file),
      bestEpoch: info.bestEpoch,
      bestValAcc: info.bestValAcc,
    },
  });
  // The run's training split, as the trainer drew it; a dataset moved or deleted since only loses the sample.
  const c = info.config;
  const ds = c?.dataset
    ? await scanDataset(c.dataset, { valSplit: c.valSplit, seed: c.seed }).catch(() => undefined)
    : undefined;
  if (ds) await writeTrainingSampleOf(outDir, ds.train, info.preprocess);
  return { checkpoint: file };
}
