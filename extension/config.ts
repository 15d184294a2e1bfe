/**
 * The `vitLens.*` settings, read in one place.
 *
 * In an untrusted workspace a workspace-level `vitLens.model` or `vitLens.cacheDir` could point the
 * worker at a file the workspace author chose (a model is code-like input to a native runtime), so
 * those two are taken from user settings only. They are also listed in
 * `capabilities.untrustedWorkspaces.restrictedConfigurations`, which makes VS Code do the same;
 * reading `inspect()` here keeps us correct even where a host does not.
 */
import * as path from 'node:path';
import * as fs from 'node:fs';
import * as vscode from 'vscode';
import { builtInModel } from '../common/modelSpec';
import {
  COLORMAPS,
  DTYPES,
  HEAD_FUSIONS,
  PROVIDER_PREFERENCES,
  type ColormapName,
  type Dtype,
  type HeadFusion,
  type ProviderPreference,
} from '../common/options';

export const SECTION = 'vitLens';

function trustedValue<T>(config: vscode.WorkspaceConfiguration, key: string): T | undefined {
  if (vscode.workspace.isTrusted) return config.get<T>(key);
  const i = config.inspect<T>(key);
  return i?.globalValue ?? i?.defaultValue;
}

const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));
/** `value` when it is one of `choices`, else `fallback` (a hand-edited setting VS Code did not refuse). */
const oneOf = <T extends string>(value: string, choices: readonly T[], fallback: T): T =>
  choices.includes(value as T) ? (value as T) : fallback;

export type { Dtype } from '../common/options';

export interface Settings {
  /** The `vitLens.model` setting as written (empty = built-in model). */
  modelSetting: string;
  topK: number;
  provider: ProviderPreference;
  dtype: Dtype;
  headFusion: HeadFusion;
  discardRatio: number;
  opacity: number;
  colormap: ColormapName;
  cacheDir?: string;
}

export function readSettings(): Settings {
  const c = vscode.workspace.getConfiguration(SECTION);
  const provider = c.get<string>('executionProvider', 'auto');
  const dtype = c.get<string>('dtype', 'fp32');
  const headFusion = c.get<string>('rollout.headFusion', 'mean');
  const colormap = c.get<string>('overlay.colormap', 'turbo');
  const cacheDir = trustedValue<string>(c, 'cacheDir')?.trim();
  return {
    modelSetting: (trustedValue<string>(c, 'model') ?? '').trim(),
    topK: clamp(Math.round(c.get<number>('topK', 5)), 1, 100),
    provider: oneOf(provider, PROVIDER_PREFERENCES, 'auto'),
    dtype: oneOf(dtype, DTYPES, 'fp32'),
    headFusion: oneOf(headFusion, HEAD_FUSIONS, 'mean'),
    discardRatio: clamp(c.get<number>('rollout.discardRatio', 0.9), 0, 0.99),
    opacity: clamp(c.get<number>('overlay.opacity', 0.5), 0, 1),
    colormap: oneOf(colormap, COLORMAPS, 'turbo'),
    cacheDir: cacheDir ? expandHome(cacheDir) : undefined,
  };
}

/** `~` and `~/…` in a path setting, as a shell would read them. */
export function expandHome(p: string): string {
  return p === '~' || p.startsWith('~/') ? path.join(process.env.HOME ?? '', p.slice(1)) : p;
}

/** What the worker should load: the setting (a path relative to the first workspace folder, or a hub id), else the built-in model. */
export function resolveModelSpec(setting: string, extensionPath: string): string | undefined {
  if (!setting) {
    return builtInModel(extensionPath, fs.existsSync);
  }
  const expanded = expandHome(setting);
  if (path.isAbsolute(expanded)) return expanded;
  const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
  // A relative path that exists in the workspace wins over reading it as a hub id `org/name`.
  if (folder && fs.existsSync(path.join(folder, expanded))) return path.join(folder, expanded);
  return expanded;
}

/** vitLens.dtype, written where it takes effect (as the model setting beside it). */
export async function writeDtypeSetting(value: Dtype): Promise<void> {
  const c = vscode.workspace.getConfiguration(SECTION);
  const shadowed = vscode.workspace.isTrusted && c.inspect<string>('dtype')?.workspaceValue !== undefined;
  await c.update('dtype', value, shadowed ? vscode.ConfigurationTarget.Workspace : vscode.ConfigurationTarget.Global);
}

export async function writeModelSetting(value: string): Promise<void> {
  const c = vscode.workspace.getConfiguration(SECTION);
  // Write where it takes effect: a workspace value would shadow a user-level write.
  const shadowed = vscode.workspace.isTrusted && c.inspect<string>('model')?.workspaceValue !== undefined;
  await c.update('model', value, shadowed ? vscode.ConfigurationTarget.Workspace : vscode.ConfigurationTarget.Global);
}
