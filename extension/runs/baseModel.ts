/**
 * What a model spec means to the trainer. `vit-lens train --model` takes a Hugging Face folder with
 * safetensors weights, a Google .npz, an .onnx whose ViT weights it recognises, one of our run
 * folders or scratch:tiny|small|base, but not a hub id (the trainer does not download). Pure, for
 * the unit tests.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { classifyModelSpec } from '../../common/modelSpec';
import { SCRATCH_IMAGE_SIZE, SCRATCH_PATCH_SIZE, SCRATCH_PRESETS, type ScratchSize } from '../../common/training';

export interface ModelFacts {
  spec: string;
  /** Why the trainer cannot start from it; undefined when it can. */
  unusable?: string;
  /** A spec the trainer can use instead (the HF folder an onnx/model.onnx sits in). */
  alternative?: string;
  imageSize?: number;
  patchSize?: number;
  layers?: number;
}

/** The scratch sizes as the trainer builds them (common/training.ts). */
function scratchFacts(spec: string): Omit<ModelFacts, 'spec'> | undefined {
  const preset = Object.hasOwn(SCRATCH_PRESETS, spec.slice('scratch:'.length))
    ? SCRATCH_PRESETS[spec.slice('scratch:'.length) as ScratchSize]
    : undefined;
  return preset && { imageSize: SCRATCH_IMAGE_SIZE, patchSize: SCRATCH_PATCH_SIZE, layers: preset.numLayers };
}

function readConfig(dir: string): Omit<ModelFacts, 'spec'> | undefined {
  try {
    const c = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    const size = Array.isArray(c.image_size) ? c.image_size[0] : c.image_size;
    return {
      imageSize: typeof size === 'number' ? size : undefined,
      patchSize: c.patch_size,
      layers: c.num_hidden_layers,
    };
  } catch {
    return undefined;
  }
}

export function modelFacts(spec: string): ModelFacts {
  if (spec.startsWith('scratch:')) {
    const facts = scratchFacts(spec);
    return facts ? { spec, ...facts } : { spec, unusable: `unknown scratch size "${spec}" (tiny, small or base)` };
  }
  const st = fs.statSync(spec, { throwIfNoEntry: false });
  const kind = classifyModelSpec(
    spec,
    st &&
      (st.isDirectory() ? { folder: true, hasRunJson: fs.existsSync(path.join(spec, 'run.json')) } : { folder: false }),
  );
  if (kind === 'hub')
    return {
      spec,
      unusable: `${spec} is a Hugging Face Hub id; the trainer needs the model on disk (a folder with config.json and model.safetensors)`,
    };
  if (kind === 'missing') return { spec, unusable: `${spec} does not exist` };
  if (kind === 'npz' || kind === 'onnx' || kind === 'safetensors' || kind === 'other-file') {
    if (kind === 'npz') return { spec };
    // The trainer starts from the Hugging Face folder a model.safetensors sits in.
    if (kind === 'safetensors')
      return {
        spec,
        unusable: `${path.basename(spec)} is read as part of its folder`,
        alternative: path.dirname(spec),
      };
    if (kind === 'onnx') {
      // transformers.js layout: <folder>/onnx/model.onnx next to the safetensors weights; the folder
      // is the better start (same weights, and its preprocessor_config.json).
      const folder = path.dirname(path.dirname(spec));
      if (path.basename(path.dirname(spec)) === 'onnx' && fs.existsSync(path.join(folder, 'model.safetensors'))) {
        return {
          spec,
          unusable: `${path.basename(spec)} sits in a Hugging Face folder, which keeps its preprocessing`,
          alternative: folder,
        };
      }
      // A bare .onnx: the trainer reads ViT weights from our exports and torch.onnx exports, and
      // says clearly when it cannot (the launch shows that error from train.log).
      return { spec };
    }
    return { spec, unusable: `${spec} is not a model the trainer reads (a folder, .npz, .onnx or scratch:…)` };
  }
  // One of our run folders: the trainer starts from its export/.
  if (kind === 'run-folder') {
    const facts = readConfig(path.join(spec, 'export'));
    return facts
      ? { spec, ...facts }
      : { spec, unusable: `${spec} is a run without an exported model (export/ is written when the run ends)` };
  }
  const facts = readConfig(spec);
  if (!facts) return { spec, unusable: `${spec} has no readable config.json` };
  if (!fs.existsSync(path.join(spec, 'model.safetensors')))
    return {
      spec,
      ...facts,
      unusable: `${spec} has no model.safetensors (the trainer needs safetensors weights, not only onnx/model.onnx)`,
    };
  return { spec, ...facts };
}
