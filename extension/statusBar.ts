/** The status bar item: which model the panel uses and where it runs (WebGPU adapter, CUDA or CPU). Click → Select Model. */
import * as vscode from 'vscode';
import type { ModelInfo } from '../common/workerRequests';
import { DEMO_MODEL_NAME } from './firstRun';
import { shortName } from './workerClient';

const PROVIDER_LABELS = { webgpu: 'WebGPU', cuda: 'CUDA', cpu: 'CPU' } as const;

/** "WebGPU · NVIDIA H100 (Vulkan)": the adapter is the point of WebGPU; CUDA and CPU need no more in the bar. */
export function providerLabel(info: Pick<ModelInfo, 'provider' | 'device'>): string {
  if (info.provider !== 'webgpu') return PROVIDER_LABELS[info.provider];
  const device = info.device.length > 40 ? `${info.device.slice(0, 39)}…` : info.device;
  return `WebGPU · ${device}`;
}

export class ModelStatusItem implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem('vitLens.model', vscode.StatusBarAlignment.Right, 100);

  /** The built-in model's folder: named for what it is before it is loaded. */
  builtIn = '';

  constructor() {
    this.item.name = 'ViT Lens Model';
    this.item.command = 'vitLens.selectModel';
  }

  /** `spec` is what the settings ask for (undefined: no model configured, none built in); `info` what the worker has loaded. */
  update(spec: string | undefined, info: ModelInfo | undefined, loading = false): void {
    const full = info?.name ?? (spec ? (spec === this.builtIn ? DEMO_MODEL_NAME : shortName(spec)) : 'no model');
    // The bar is narrow: "Fashion-MNIST demo"; the tooltip has the whole name.
    const name = full.replace(/ \([^)]*\)$/, '');
    const where = info ? ` · ${providerLabel(info)}` : '';
    this.item.text = `${loading ? '$(loading~spin)' : '$(eye)'} ${name}${where}`;
    const md = new vscode.MarkdownString(undefined, true);
    md.appendMarkdown('**ViT Lens**\n\n');
    if (info) {
      md.appendMarkdown(
        `Model: **${info.name}** (${info.kind}, ${info.numClasses} classes, ${info.numLayers} layers)\n\n`,
      );
      if (spec === this.builtIn)
        md.appendMarkdown(
          'The built-in demo: it knows only 10 kinds of clothing (28×28 grey images); for photos pick an ImageNet model\n\n',
        );
      md.appendMarkdown(
        `Runs on: ${PROVIDER_LABELS[info.provider]} · ${info.device}${info.providerNote ? ` — ${info.providerNote}` : ''}\n\n`,
      );
    } else if (spec) {
      md.appendMarkdown(
        `Model: \`${spec === this.builtIn ? DEMO_MODEL_NAME : spec}\` — ${loading ? 'loading…' : 'loads on first use'}\n\n`,
      );
    } else {
      md.appendMarkdown('No model: set `vitLens.model` or pick one\n\n');
    }
    md.appendMarkdown('Click to select a model');
    this.item.tooltip = md;
    this.item.show();
  }

  dispose(): void {
    this.item.dispose();
  }
}
