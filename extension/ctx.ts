/**
 * The extension's one context object (as in rust-analyzer's `Ctx`): it owns the log, the worker
 * client, the status bar item, the open panels and every registration, and disposes them all on deactivate.
 */
import * as vscode from 'vscode';
import type { AuditPanel } from './audit/panel';
import type { PredictionsPanel } from './classifyFolder/predictionsPanel';
import { readSettings, resolveModelSpec, Settings, SECTION } from './config';
import type { DashboardPanel } from './dashboard/panel';
import { PanelRegistry } from './disposable';
import { ModelPicker } from './modelPicker';
import type { PanelHost, ResultsPanel } from './resultsPanel';
import { messageOf } from './resultsPanel';
import { ModelStatusItem } from './statusBar';
import { ModelRequest, WorkerClient } from './workerClient';

/** JSON-RPC / LSP "request cancelled". */
const REQUEST_CANCELLED = -32800;
/** vscode-jsonrpc: a pending request failed because the connection closed / was not active (the worker died). */
const PENDING_RESPONSE_REJECTED = -32097;
const CONNECTION_INACTIVE = -32096;

export class Ctx implements PanelHost, vscode.Disposable {
  readonly extensionUri: vscode.Uri;
  readonly worker: WorkerClient;
  readonly picker: ModelPicker;
  /** Every open webview panel, by kind: disposing the context closes them all. */
  readonly panels = {
    results: new PanelRegistry<ResultsPanel>(),
    dashboards: new PanelRegistry<DashboardPanel>(),
    predictions: new PanelRegistry<PredictionsPanel>(),
    audits: new PanelRegistry<AuditPanel>(),
  };
  private readonly status = new ModelStatusItem();
  private readonly subscriptions: vscode.Disposable[] = [];
  private lastError = { text: '', at: 0 };
  private missingModelShown = false;

  constructor(
    readonly extension: vscode.ExtensionContext,
    readonly log: vscode.LogOutputChannel,
  ) {
    this.extensionUri = extension.extensionUri;
    this.picker = new ModelPicker(extension.globalState, extension.extensionPath);
    this.status.builtIn = resolveModelSpec('', extension.extensionPath) ?? '';
    this.worker = new WorkerClient(vscode.Uri.joinPath(extension.extensionUri, 'dist', 'worker.js').fsPath, log, () => {
      const s = this.settings();
      return { provider: s.provider, cacheDir: s.cacheDir };
    });
    this.subscriptions.push(
      ...Object.values(this.panels),
      this.status,
      this.worker.onDidChangeModel(info => {
        this.status.update(this.modelSpec(), info);
        if (info) void this.picker.remember(this.settings().modelSetting);
      }),
      // A spinner while a model loads (a hub download can take minutes).
      this.worker.onDidChangeLoading(m =>
        this.status.update(m?.spec ?? this.modelSpec(), m ? undefined : this.worker.model, !!m),
      ),
      vscode.workspace.onDidChangeConfiguration(e => this.onConfigChanged(e)),
      vscode.workspace.onDidGrantWorkspaceTrust(() => this.status.update(this.modelSpec(), this.worker.model)),
    );
    this.status.update(this.modelSpec(), undefined);
  }

  /** Registered disposables are disposed with the context, in reverse order. */
  push(...d: vscode.Disposable[]): void {
    this.subscriptions.push(...d);
  }

  settings(): Settings {
    return readSettings();
  }

  private modelSpec(): string | undefined {
    return resolveModelSpec(this.settings().modelSetting, this.extension.extensionPath);
  }

  modelRequest(): ModelRequest | undefined {
    const spec = this.modelSpec();
    if (!spec) {
      if (!this.missingModelShown) {
        this.missingModelShown = true;
        void vscode.window
          .showErrorMessage(
            'ViT Lens: no model is configured and this build has no built-in model. Select an .onnx file, a Hugging Face folder or hub id, or a .npz checkpoint.',
            'Select Model…',
          )
          .then(pick => {
            this.missingModelShown = false;
            if (pick) void vscode.commands.executeCommand('vitLens.selectModel');
          });
      }
      return undefined;
    }
    return { spec, provider: this.settings().provider, dtype: this.settings().dtype };
  }

  /** One notification per distinct failure (the worker's messages already name the file and problem); cancellations are silent. */
  reportError(what: string, e: unknown): void {
    // A request lost to a worker crash: the crash handler already told the user, once.
    if (isCancellation(e) || isWorkerGone(e)) return;
    const text = messageOf(e);
    this.log.error(`${what}: ${text}`);
    const now = Date.now();
    if (text === this.lastError.text && now - this.lastError.at < 10_000) return;
    this.lastError = { text, at: now };
    void vscode.window
      .showErrorMessage(`ViT Lens could not ${what}: ${text}`, 'Select Model…', 'Show Log')
      .then(pick => {
        if (pick === 'Select Model…') void vscode.commands.executeCommand('vitLens.selectModel');
        if (pick === 'Show Log') this.log.show(true);
      });
  }

  private onConfigChanged(e: vscode.ConfigurationChangeEvent): void {
    if (!e.affectsConfiguration(SECTION)) return;
    this.status.update(this.modelSpec(), this.worker.model);
    // The cache dir is a worker start option; the model and provider are per request and reload lazily.
    if (e.affectsConfiguration(`${SECTION}.cacheDir`) && this.worker.isRunning) {
      this.log.info('vitLens.cacheDir changed: restarting the worker');
      void this.worker.restart().catch(err => this.reportError('restart the worker', err));
    }
  }

  async dispose(): Promise<void> {
    for (const d of this.subscriptions.splice(0).reverse()) d.dispose();
    await this.worker.dispose();
    this.log.dispose();
  }
}

export function isWorkerGone(e: unknown): boolean {
  const code = (e as { code?: unknown } | undefined)?.code;
  return code === PENDING_RESPONSE_REJECTED || code === CONNECTION_INACTIVE;
}

export function isCancellation(e: unknown): boolean {
  if (e instanceof vscode.CancellationError) return true;
  const x = e as { code?: unknown; name?: unknown } | undefined;
  return x?.code === REQUEST_CANCELLED || x?.name === 'Canceled';
}
