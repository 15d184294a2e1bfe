/**
 * ViT: Select Model… — recent models, the built-in one, a hub id, or a local file/folder; then, when
 * the model offers several weight precisions, which one (with its size). Writes `vitLens.model` and
 * `vitLens.dtype`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { builtInModel } from '../common/modelSpec';
import { Dtype, writeDtypeSetting, writeModelSetting } from './config';
import { formatSize, listModelVariants, ModelVariant } from './modelVariants';

const RECENT_KEY = 'vitLens.recentModels';
const MAX_RECENT = 8;
/** `org/name` or `org/name@revision`, as the worker's hub resolver accepts. */
const HUB_ID = /^[A-Za-z0-9][\w.-]*\/[\w.-]+(@[\w./-]+)?$/;

type Pick = vscode.QuickPickItem & { value?: string; action?: 'hub' | 'file' | 'folder' };

export class ModelPicker {
  constructor(
    private readonly memento: vscode.Memento,
    private readonly extensionPath: string,
  ) {}

  /** Remember a model the user ran successfully or picked. */
  async remember(spec: string): Promise<void> {
    if (!spec) return;
    const recent = [spec, ...this.recent().filter(r => r !== spec)].slice(0, MAX_RECENT);
    await this.memento.update(RECENT_KEY, recent);
  }

  private recent(): string[] {
    const v = this.memento.get<unknown>(RECENT_KEY);
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
  }

  /** Returns the new setting value, or undefined when the user cancelled. */
  async pick(current: string, currentDtype: Dtype = 'fp32'): Promise<string | undefined> {
    const items: Pick[] = [];
    const builtIn = builtInModel(this.extensionPath, fs.existsSync);
    if (builtIn) {
      items.push({
        label: '$(package) Built-in model: Fashion-MNIST demo (10 clothing classes)',
        description: current === '' ? 'current' : 'offline',
        detail: '10 clothing classes, 28×28 grey images: for trying ViT Lens out; photos still get a clothing label',
        value: '',
      });
    }
    const recent = this.recent();
    if (recent.length) {
      items.push({ label: 'Recent', kind: vscode.QuickPickItemKind.Separator });
      for (const r of recent)
        items.push({
          label: `$(history) ${path.basename(r) || r}`,
          description: r === current ? 'current' : undefined,
          detail: r,
          value: r,
        });
    }
    items.push({ label: 'Other', kind: vscode.QuickPickItemKind.Separator });
    items.push({
      label: '$(cloud-download) Hugging Face Hub model…',
      detail: 'A hub id such as google/vit-base-patch16-224 (downloaded once into the cache)',
      action: 'hub',
    });
    items.push({
      label: '$(file) Model file…',
      detail: 'An .onnx model or a Google vision_transformer .npz checkpoint',
      action: 'file',
    });
    items.push({
      label: '$(folder) Hugging Face model folder…',
      detail: 'A folder with config.json and model.safetensors or onnx/model.onnx',
      action: 'folder',
    });

    const chosen = await vscode.window.showQuickPick(items, {
      title: 'ViT Lens: Select Model',
      placeHolder: current ? `Current: ${current}` : 'Current: built-in model',
      matchOnDetail: true,
    });
    if (!chosen) return undefined;
    let value = chosen.value;
    if (chosen.action === 'hub') {
      value = await vscode.window.showInputBox({
        title: 'Hugging Face Hub model',
        prompt: 'org/name, optionally @revision',
        placeHolder: 'google/vit-base-patch16-224',
        validateInput: v => (HUB_ID.test(v.trim()) ? undefined : 'Expected org/name or org/name@revision'),
      });
      value = value?.trim();
    } else if (chosen.action === 'file' || chosen.action === 'folder') {
      const uris = await vscode.window.showOpenDialog({
        canSelectFiles: chosen.action === 'file',
        canSelectFolders: chosen.action === 'folder',
        canSelectMany: false,
        filters: chosen.action === 'file' ? { 'ViT models': ['onnx', 'npz'] } : undefined,
        title: chosen.action === 'file' ? 'Select an .onnx or .npz model' : 'Select a Hugging Face model folder',
      });
      value = uris?.[0]?.fsPath;
    }
    if (value === undefined) return undefined;
    const dtype = await this.pickDtype(value === '' ? (builtIn ?? '') : value, currentDtype);
    if (dtype === null) return undefined;
    await writeModelSetting(value);
    if (dtype) await writeDtypeSetting(dtype);
    await this.remember(value);
    return value;
  }

  /**
   * The precision for `model`: asked when it offers several, taken when it offers one; fp32 for a
   * single .onnx file (the worker refuses any other for it); unchanged for a hub id, whose files are
   * not known before it downloads. null: cancelled.
   */
  private async pickDtype(model: string, current: Dtype): Promise<Dtype | undefined | null> {
    const variants = await listModelVariants(model);
    if (variants.length === 0) return path.extname(model).toLowerCase() === '.onnx' ? 'fp32' : undefined;
    if (variants.length === 1) return variants[0].dtype;
    const items = variants.map(v => ({
      label: v.dtype,
      description: describeVariant(v, current),
      detail: DTYPE_DETAIL[v.dtype],
      dtype: v.dtype,
    }));
    const chosen = await vscode.window.showQuickPick(items, {
      title: 'ViT Lens: Select Model — precision',
      placeHolder: `Weight precision for ${path.basename(model)} (vitLens.dtype)`,
    });
    return chosen ? chosen.dtype : null;
  }
}

const DTYPE_DETAIL: Record<Dtype, string> = {
  fp32: 'Full precision: the reference results',
  fp16: 'Half-size weights, for WebGPU and CUDA (slower on the CPU)',
  q8: "int8 weights: the fastest on the CPU, a fraction of fp32's size; probabilities differ slightly from fp32",
};

function describeVariant(v: ModelVariant, current: Dtype): string {
  const size = v.estimated ? `≈ ${formatSize(v.bytes)} (built from the weights)` : `${formatSize(v.bytes)} · ${v.file}`;
  return v.dtype === current ? `${size} · current` : size;
}
