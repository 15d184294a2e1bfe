/**
 * Hugging Face ViT folders: `config.json` + `model.safetensors` (ViTForImageClassification, or a bare
 * ViTModel whose keys lack the `vit.` prefix).
 */
import * as path from 'path';
import type { WeightMap } from '../model/tensor';
import { archFromHfConfig, checkWeights, parseHfConfig, ViTArch, W } from '../model/vitConfig';
import { readSafetensors, readSafetensorsHeader } from './safetensors';
import { MAX_CONFIG_FILE_BYTES, readModelFile } from '../util/regularFile';

/** Keys that already carry their canonical top-level name; anything else is a bare ViTModel key. */
const CANONICAL_ROOTS = ['vit.', 'classifier.', 'pre_logits.'];

export async function loadHfWeights(safetensorsPath: string, arch: ViTArch): Promise<WeightMap> {
  const { tensors, skipped } = await readSafetensors(safetensorsPath);
  const weights: WeightMap = new Map();
  for (const [key, t] of tensors) {
    const name = canonicalName(key);
    // The pooler (dense + tanh on [CLS]) is ViTModel's, not used by the classification head.
    if (name.startsWith('vit.pooler.')) continue;
    weights.set(name, t);
  }
  try {
    checkWeights(arch, name => weights.get(name)?.shape, safetensorsPath);
  } catch (err) {
    // A "missing" tensor may really be there with an integer dtype; say so instead.
    const missing = /missing tensor "([^"]+)"/.exec((err as Error).message)?.[1];
    const skippedAs = missing && [...skipped].find(([key]) => canonicalName(key) === missing);
    if (skippedAs) {
      throw new Error(
        `${safetensorsPath}: tensor "${skippedAs[0]}" has dtype ${skippedAs[1]}; only F32, F16, BF16 and F64 are supported`,
      );
    }
    throw err;
  }
  return weights;
}

function canonicalName(key: string): string {
  return CANONICAL_ROOTS.some(r => key.startsWith(r)) ? key : `vit.${key}`;
}

/**
 * Architecture and class labels from `<dir>/config.json`. Labels are id2label ordered by index (empty
 * when the config has none); the class count falls back to num_labels, then to the classifier's shape.
 */
export async function archAndLabelsFromHfFolder(dir: string): Promise<{ arch: ViTArch; labels: string[] }> {
  const configPath = path.join(dir, 'config.json');
  let json: unknown;
  try {
    json = JSON.parse((await readModelFile(configPath, MAX_CONFIG_FILE_BYTES, 'a config.json')).toString('utf8'));
  } catch (err) {
    const message = (err as Error).message;
    throw new Error(
      message.startsWith(configPath) ? message : `${configPath}: cannot read the model config (${message})`,
    );
  }
  const cfg = parseHfConfig(json, configPath);
  if (cfg.model_type && cfg.model_type !== 'vit') {
    throw new Error(`${configPath}: model_type "${cfg.model_type}" is not supported (only "vit")`);
  }
  const labels = labelsFromId2label(configPath, cfg.id2label);
  let numClasses = labels.length || cfg.num_labels || 0;
  if (!numClasses) {
    const weightsPath = path.join(dir, 'model.safetensors');
    const header = await readSafetensorsHeader(weightsPath).catch(() => undefined);
    numClasses = header?.entries.get(W.headWeight)?.shape[0] ?? 0;
    if (!numClasses) {
      throw new Error(
        `${configPath}: no id2label or num_labels, and ${weightsPath} has no readable "${W.headWeight}" to count classes from`,
      );
    }
  }
  return { arch: archFromHfConfig(cfg, numClasses, configPath), labels };
}

function labelsFromId2label(configPath: string, id2label: Record<string, string> | undefined): string[] {
  if (!id2label) return [];
  const labels: string[] = [];
  for (const [id, label] of Object.entries(id2label)) {
    const i = Number(id);
    if (!/^\d+$/.test(id)) throw new Error(`${configPath}: id2label key "${id}" is not a class index`);
    labels[i] = String(label);
  }
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] === undefined) throw new Error(`${configPath}: id2label has no entry for class ${i}`);
  }
  return labels;
}
