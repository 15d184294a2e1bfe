/**
 * Initial weights for a run: a from-scratch ViT (`scratch:tiny|small|base`), or any checkpoint the
 * engine reads as weights (Hugging Face folder, Google .npz, an ONNX ViT from our builder or torch.onnx,
 * one of our runs), with the classifier replaced to fit the dataset's classes and position embeddings
 * interpolated to the new grid.
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { numel, Tensor, WeightMap } from '../model/tensor';
import { ViTArch, W, checkWeights } from '../model/vitConfig';
import { archAndLabelsFromHfFolder, loadHfWeights } from '../formats/hfSafetensors';
import { loadGoogleNpz } from '../formats/googleNpz';
import { loadOnnxWeights } from '../formats/onnxWeights';
import { mixSeed, mulberry32, normal, PURPOSE, truncNormal, TRUNC_2SIGMA_STD, uniform } from './rng';

import { classifyModelSpec, extensionOf } from '../../common/modelSpec';
import { SCRATCH_IMAGE_SIZE, SCRATCH_PATCH_SIZE, SCRATCH_PRESETS, type ScratchSize } from '../../common/training';

export interface InitOptions {
  numClasses: number;
  /** Input size; defaults to the checkpoint's (or 224 from scratch). */
  imageSize?: [number, number];
  /** Patch size for scratch models (default 16). */
  patchSize?: number;
  /** Overrides for scratch models (used by the benchmark's small ViT). */
  scratchArch?: Partial<ViTArch>;
  seed: number;
}

export interface InitResult {
  arch: ViTArch;
  weights: WeightMap;
  /** Where the weights came from, for run.json. */
  source: string;
  /** The checkpoint file whose content identifies the frozen backbone (feature-cache key); undefined from scratch. */
  weightsFile?: string;
  notes: string[];
}

export async function initialWeights(spec: string, opts: InitOptions): Promise<InitResult> {
  if (spec.startsWith('scratch:')) return scratch(spec, opts);
  const loaded = await loadCheckpoint(spec);
  const notes: string[] = [];
  const arch: ViTArch = { ...loaded.arch };
  const weights = loaded.weights;
  if (opts.imageSize && (opts.imageSize[0] !== arch.imageSize[0] || opts.imageSize[1] !== arch.imageSize[1])) {
    const P = arch.patchSize;
    if (opts.imageSize[0] % P || opts.imageSize[1] % P)
      throw new Error(`--image-size ${opts.imageSize.join('x')} is not a multiple of ${spec}'s patch size ${P}`);
    weights.set(
      W.posEmbed,
      await interpolatePositions(
        weights.get(W.posEmbed)!,
        [arch.imageSize[0] / P, arch.imageSize[1] / P],
        [opts.imageSize[0] / P, opts.imageSize[1] / P],
      ),
    );
    notes.push(
      `position embeddings interpolated (bilinear) from ${arch.imageSize.join('x')} to ${opts.imageSize.join('x')}`,
    );
    arch.imageSize = opts.imageSize;
  }
  // A fresh zero head, as the official fine-tuning code does: the first steps then start from uniform predictions.
  const width = arch.preLogitsSize ?? arch.hiddenSize;
  weights.set(W.headWeight, { shape: [opts.numClasses, width], data: new Float32Array(opts.numClasses * width) });
  weights.set(W.headBias, { shape: [opts.numClasses], data: new Float32Array(opts.numClasses) });
  if (arch.numClasses !== opts.numClasses)
    notes.push(`classifier replaced: ${arch.numClasses} → ${opts.numClasses} classes`);
  else notes.push('classifier re-initialised for the new classes');
  arch.numClasses = opts.numClasses;
  checkWeights(arch, n => weights.get(n)?.shape, spec);
  return { arch, weights, source: spec, weightsFile: loaded.file, notes };
}

/** Reads weights + architecture from a model folder, .npz, .onnx or run folder. */
export async function loadCheckpoint(spec: string): Promise<{ arch: ViTArch; weights: WeightMap; file: string }> {
  const st = await fs.stat(spec).catch(() => undefined);
  const kind = classifyModelSpec(
    spec,
    st &&
      (st.isDirectory() ? { folder: true, hasRunJson: await exists(path.join(spec, 'run.json')) } : { folder: false }),
  );
  if (kind === 'missing' || kind === 'hub' || kind === 'scratch')
    throw new Error(
      `${spec}: no such model (expected a Hugging Face folder, a .npz or .onnx file, a run folder or scratch:tiny|small|base)`,
    );
  if (kind === 'run-folder' || kind === 'hf-folder') {
    // One of our runs: its exported model (written at the end of every run) or its best checkpoint.
    if (kind === 'run-folder') {
      const exported = path.join(spec, 'export');
      if (await exists(path.join(exported, 'model.safetensors'))) return loadCheckpoint(exported);
      throw new Error(
        `${spec}: this run has no exported model yet (run "vit-lens export ${spec} --out DIR" or let it finish)`,
      );
    }
    const file = path.join(spec, 'model.safetensors');
    if (!(await exists(file))) {
      throw new Error(
        `${spec}: no model.safetensors; training needs the weights (an ONNX-only folder cannot be fine-tuned)`,
      );
    }
    const { arch } = await archAndLabelsFromHfFolder(spec);
    return { arch, weights: await loadHfWeights(file, arch), file };
  }
  if (kind === 'npz') return { ...(await loadGoogleNpz(spec)), file: spec };
  if (kind === 'safetensors') return loadCheckpoint(path.dirname(spec));
  // A ViT exported to ONNX by our builder or by torch.onnx: weights recovered from the graph (onnxWeights.ts).
  if (kind === 'onnx') return { ...(await loadOnnxWeights(spec)), file: spec };
  throw new Error(`${spec}: unknown model format "${extensionOf(spec) || '(none)'}"`);
}

function scratch(spec: string, opts: InitOptions): InitResult {
  const size = spec.slice('scratch:'.length) as ScratchSize;
  const preset = SCRATCH_PRESETS[size];
  if (!preset && !opts.scratchArch)
    throw new Error(`"${spec}": unknown scratch size (use scratch:tiny, scratch:small or scratch:base)`);
  const arch: ViTArch = {
    ...(preset ?? SCRATCH_PRESETS.tiny),
    patchSize: opts.patchSize ?? SCRATCH_PATCH_SIZE,
    imageSize: opts.imageSize ?? [SCRATCH_IMAGE_SIZE, SCRATCH_IMAGE_SIZE],
    numChannels: 3,
    layerNormEps: 1e-6,
    qkvBias: true,
    numClasses: opts.numClasses,
    ...opts.scratchArch,
  };
  if (arch.imageSize[0] % arch.patchSize || arch.imageSize[1] % arch.patchSize) {
    throw new Error(`image size ${arch.imageSize.join('x')} is not a multiple of the patch size ${arch.patchSize}`);
  }
  const random = mulberry32(mixSeed(opts.seed, PURPOSE.init));
  const D = arch.hiddenSize;
  const P = arch.patchSize;
  const T = 1 + (arch.imageSize[0] / P) * (arch.imageSize[1] / P);
  const weights: WeightMap = new Map();
  // The ViT paper's own code (google-research/vision_transformer, models_vit.py), also torchvision's:
  // Xavier-uniform dense kernels, MLP biases normal(1e-6), other biases zero, LeCun-normal patch
  // kernel, position embeddings normal(0.02), [CLS] and head zero. timm's truncated normal (std .02)
  // everywhere trains markedly worse from scratch on small data (README, "Training from scratch").
  const xavier = (shape: [number, number]): Tensor => ({
    shape,
    data: uniform(random, numel(shape), Math.sqrt(6 / (shape[0] + shape[1]))),
  });
  const gauss = (shape: number[], std: number): Tensor => ({ shape, data: normal(random, numel(shape), std) });
  const fill = (shape: number[], v: number): Tensor => ({ shape, data: new Float32Array(numel(shape)).fill(v) });
  const patchFanIn = arch.numChannels * P * P;
  weights.set(W.clsToken, fill([1, 1, D], 0));
  weights.set(W.posEmbed, gauss([1, T, D], 0.02));
  // lecun_normal: a normal truncated at ±2σ, σ scaled up by 1/0.8796 so that the kept values have variance 1/fan_in.
  weights.set(W.patchWeight, {
    shape: [D, arch.numChannels, P, P],
    data: truncNormal(random, D * patchFanIn, Math.sqrt(1 / patchFanIn) / TRUNC_2SIGMA_STD),
  });
  weights.set(W.patchBias, fill([D], 0));
  for (let i = 0; i < arch.numLayers; i++) {
    const l = W.layer(i);
    for (const n of [l.norm1Weight, l.norm2Weight]) weights.set(n, fill([D], 1));
    for (const n of [l.norm1Bias, l.norm2Bias, l.qBias, l.kBias, l.vBias, l.projBias]) weights.set(n, fill([D], 0));
    // Flax's attention kernels are [D, heads, D/heads] and Xavier sees them flattened to D×D.
    for (const n of [l.qWeight, l.kWeight, l.vWeight, l.projWeight]) weights.set(n, xavier([D, D]));
    weights.set(l.fc1Weight, xavier([arch.mlpSize, D]));
    weights.set(l.fc1Bias, gauss([arch.mlpSize], 1e-6));
    weights.set(l.fc2Weight, xavier([D, arch.mlpSize]));
    weights.set(l.fc2Bias, gauss([D], 1e-6));
  }
  weights.set(W.finalNormWeight, fill([D], 1));
  weights.set(W.finalNormBias, fill([D], 0));
  weights.set(W.headWeight, fill([opts.numClasses, D], 0));
  weights.set(W.headBias, fill([opts.numClasses], 0));
  return {
    arch,
    weights,
    source: spec,
    notes: [`from scratch: hidden ${D}, ${arch.numLayers} layers, patch ${P}, ${arch.imageSize.join('x')}`],
  };
}

/** Bilinear resize of the patch-position grid ([CLS] position kept), like the official code's scipy zoom(order=1). */
export async function interpolatePositions(pos: Tensor, from: [number, number], to: [number, number]): Promise<Tensor> {
  const D = pos.shape[2];
  const resized = tf.tidy(() => {
    const grid = tf.tensor(pos.data.subarray(D), [1, from[0], from[1], D]) as tf.Tensor4D;
    return tf.image.resizeBilinear(grid, to, true);
  });
  const out = (await resized.data()) as Float32Array;
  resized.dispose();
  const data = new Float32Array((1 + to[0] * to[1]) * D);
  data.set(pos.data.subarray(0, D));
  data.set(out, D);
  return { shape: [1, 1 + to[0] * to[1], D], data };
}

async function exists(p: string): Promise<boolean> {
  return !!(await fs.stat(p).catch(() => undefined));
}
