/**
 * What a model spec names, decided once for the engine (server/model/modelSource.ts), the trainer
 * (server/train/initWeights.ts) and the Fine-tune flow (extension/runs/baseModel.ts). Pure: the
 * caller says what is on disk at the spec (a stat, reduced to what matters here).
 */

/** `org/name` or `org/name@revision`, as the Hugging Face Hub names a model repo. */
const HUB_ID = /^([A-Za-z0-9][A-Za-z0-9_.-]*)\/([A-Za-z0-9][A-Za-z0-9_.-]*)(?:@([A-Za-z0-9_./-]+))?$/;
/** A missing local file named like this is a typo'd path, not a repo. */
const LOCAL_MODEL_EXT = /\.(onnx|npz|safetensors|json)$/i;

export function parseHubId(id: string): { org: string; name: string; repo: string; revision: string } {
  const m = HUB_ID.exec(id);
  if (!m || id.includes('..')) throw new Error(`"${id}" is not a hub id of the form org/name or org/name@revision`);
  return { org: m[1], name: m[2], repo: `${m[1]}/${m[2]}`, revision: m[3] ?? 'main' };
}

/** Shaped like a hub id (the caller still checks that no local file of that name exists). */
export function looksLikeHubId(s: string): boolean {
  const m = HUB_ID.exec(s);
  return !!m && !s.includes('..') && !LOCAL_MODEL_EXT.test(m[2]);
}

/** What is at the spec's path: nothing (undefined), a folder (with or without our run.json), or a file. */
export type SpecOnDisk = { folder: true; hasRunJson: boolean } | { folder: false };

export type ModelSpecKind =
  /** `scratch:tiny|small|base`: a fresh ViT (trainer only). */
  | 'scratch'
  /** A hub id that is not a local path (the engine downloads it; the trainer does not). */
  | 'hub'
  /** One of our run folders: its export/ is the model. */
  | 'run-folder'
  /** Any other folder: a Hugging Face folder (config.json + model.safetensors and/or onnx/model.onnx). */
  | 'hf-folder'
  | 'npz'
  | 'onnx'
  /** A .safetensors file: the Hugging Face folder it sits in. */
  | 'safetensors'
  /** A file of another kind. */
  | 'other-file'
  /** Nothing there, and not a hub id. */
  | 'missing';

/** The extension of a path's last part, lower case, with the dot ('' when none). */
export function extensionOf(spec: string): string {
  const base = spec.slice(Math.max(spec.lastIndexOf('/'), spec.lastIndexOf('\\')) + 1);
  const dot = base.lastIndexOf('.');
  return dot > 0 ? base.slice(dot).toLowerCase() : '';
}

export function classifyModelSpec(spec: string, onDisk: SpecOnDisk | undefined): ModelSpecKind {
  if (spec.startsWith('scratch:')) return 'scratch';
  if (!onDisk) return looksLikeHubId(spec) ? 'hub' : 'missing';
  if (onDisk.folder) return onDisk.hasRunJson ? 'run-folder' : 'hf-folder';
  const ext = extensionOf(spec);
  return ext === '.npz' ? 'npz' : ext === '.onnx' ? 'onnx' : ext === '.safetensors' ? 'safetensors' : 'other-file';
}

/** The model shipped inside the package: `<packageRoot>/models/default`, when its config.json is there. */
export function builtInModel(packageRoot: string, exists: (file: string) => boolean): string | undefined {
  const dir = `${packageRoot.replace(/[\\/]+$/, '')}/models/default`;
  return exists(`${dir}/config.json`) ? dir : undefined;
}
