/**
 * The predictions table of one classified folder (one panel per folder). It shows a
 * ClassifyFolderResult; after a window reload VS Code hands back the webview's saved state, which
 * names the predictions.json to re-read. Only files this extension wrote are re-read
 * (`KnownPredictionFiles`): the webview's state is untrusted, and the file's folder becomes a
 * resource root of the webview.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { Ctx } from '../ctx';
import { Disposable } from '../disposable';
import { isImagePath } from '../../common/imageFiles';
import type { ClassifyFolderResult } from '../../common/workerRequests';
import { pageParts } from '../webviewPage';
import { ResultsPanel } from '../resultsPanel';
import { predictionsHtml } from './html';
import {
  HostMessage,
  parseResultFile,
  parseViewState,
  parseWebviewMessage,
  tableRows,
  WebviewMessage,
} from '../../common/webviewMessages/predictions';

export const PREDICTIONS_VIEW_TYPE = 'vitLens.predictions';

/** The predictions.json files this extension wrote (most recent first), kept in globalState. */
export class KnownPredictionFiles {
  private static readonly KEY = 'vitLens.predictionFiles';
  private static readonly MAX = 100;
  constructor(private readonly memento: vscode.Memento) {}
  has(file: string): boolean {
    return this.memento.get<string[]>(KnownPredictionFiles.KEY, []).includes(file);
  }
  async add(file: string): Promise<void> {
    const files = this.memento.get<string[]>(KnownPredictionFiles.KEY, []).filter(f => f !== file);
    await this.memento.update(KnownPredictionFiles.KEY, [file, ...files].slice(0, KnownPredictionFiles.MAX));
  }
}

export class PredictionsPanel extends Disposable {
  private result: ClassifyFolderResult | undefined;
  private files = new Set<string>();
  private error: string | undefined;

  static show(ctx: Ctx, result: ClassifyFolderResult): PredictionsPanel {
    const existing = ctx.panels.predictions.get(result.folder);
    if (existing) {
      existing.panel.reveal(undefined, false);
      existing.setResult(result);
      return existing;
    }
    const panel = vscode.window.createWebviewPanel(PREDICTIONS_VIEW_TYPE, 'Predictions', vscode.ViewColumn.Active, {
      enableScripts: true,
      // 100k rows are cheap to resend from memory; the webview keeps only its view settings.
      retainContextWhenHidden: false,
      localResourceRoots: [],
    });
    const p = new PredictionsPanel(ctx, panel);
    p.setResult(result);
    return p;
  }

  /** After a window reload: re-read the predictions.json named in the saved state, if this extension wrote it. */
  static async revive(
    ctx: Ctx,
    panel: vscode.WebviewPanel,
    saved: unknown,
    known: KnownPredictionFiles,
  ): Promise<void> {
    const p = new PredictionsPanel(ctx, panel);
    const jsonFile = parseViewState(saved).jsonFile;
    if (!jsonFile || !path.isAbsolute(jsonFile) || !known.has(jsonFile)) {
      p.showError('This table has no predictions file to show. Run “ViT Lens: Classify Folder” again.');
      return;
    }
    const result = await readResult(jsonFile);
    if (typeof result === 'string') p.showError(`${jsonFile}: ${result}. Run “ViT Lens: Classify Folder” again.`);
    else if (ctx.panels.predictions.has(result.folder)) panel.dispose();
    else p.setResult(result);
  }

  private constructor(
    private readonly ctx: Ctx,
    private readonly panel: vscode.WebviewPanel,
  ) {
    super();
    this._register(panel);
    panel.iconPath = vscode.Uri.joinPath(ctx.extensionUri, 'media', 'icon.png');
    this.setResourceRoots(undefined);
    this._register(panel.onDidDispose(() => this.dispose()));
    this._register(panel.webview.onDidReceiveMessage(m => this.onMessage(m)));
  }

  private setResult(result: ClassifyFolderResult): void {
    if (this.result?.folder !== result.folder) this._register(this.ctx.panels.predictions.track(result.folder, this));
    this.result = result;
    this.error = undefined;
    this.files = new Set(result.predictions.map(p => p.file));
    this.panel.title = `Predictions: ${path.basename(result.folder)}`;
    this.setResourceRoots(result.folder);
    this.post();
  }

  private showError(message: string): void {
    this.error = message;
    this.panel.title = 'Predictions';
    this.post();
  }

  /** Setting options reloads the page, so the HTML is set again after; the page asks for data with 'ready'. */
  private setResourceRoots(folder: string | undefined): void {
    const ext = this.ctx.extensionUri;
    this.panel.webview.options = {
      enableScripts: true,
      localResourceRoots: [
        vscode.Uri.joinPath(ext, 'dist'),
        vscode.Uri.joinPath(ext, 'media'),
        ...(folder ? [vscode.Uri.file(folder)] : []),
      ],
    };
    this.panel.webview.html = predictionsHtml(
      pageParts(
        this.panel.webview,
        vscode.Uri.joinPath(ext, 'dist', 'predictions.js'),
        vscode.Uri.joinPath(ext, 'media', 'predictions.css'),
      ),
    );
  }

  private post(): void {
    let m: HostMessage | undefined;
    if (this.error) m = { type: 'error', message: this.error };
    else if (this.result) {
      const r = this.result;
      const baseUri = this.panel.webview.asWebviewUri(vscode.Uri.file(r.folder)).toString().replace(/\/$/, '');
      m = {
        type: 'data',
        data: {
          folder: r.folder,
          model: r.model,
          createdAt: r.createdAt,
          partial: r.partial,
          total: r.total,
          baseUri,
          csvFile: r.csvFile,
          jsonFile: r.jsonFile,
          rows: tableRows(r.predictions),
          failures: r.failures,
        },
      };
    }
    if (m && !this.isDisposed) void this.panel.webview.postMessage(m);
  }

  private onMessage(raw: unknown): void {
    const m = parseWebviewMessage(raw, this.files);
    if (!m) {
      this.ctx.log.warn(
        `ignored a malformed message from the predictions table: ${JSON.stringify(raw)?.slice(0, 200)}`,
      );
      return;
    }
    void this.handle(m);
  }

  private async handle(m: WebviewMessage): Promise<void> {
    const r = this.result;
    switch (m.type) {
      case 'ready':
        this.post();
        return;
      case 'explain': {
        if (!r) return;
        const file = path.resolve(r.folder, ...m.file.split('/'));
        // `files` came from the worker, but the JSON may have been edited: stay inside the folder.
        if (!file.startsWith(r.folder + path.sep) || !isImagePath(file)) return;
        ResultsPanel.show(this.ctx, [file], 'explain');
        return;
      }
      case 'openFile':
        if (r)
          await vscode.commands.executeCommand(
            'vscode.open',
            vscode.Uri.file(m.which === 'csv' ? r.csvFile : r.jsonFile),
          );
        return;
      case 'rerun':
        if (r) await vscode.commands.executeCommand('vitLens.classifyFolder', vscode.Uri.file(r.folder));
        return;
    }
  }
}

async function readResult(file: string): Promise<ClassifyFolderResult | string> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (e) {
    return `cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`;
  }
  try {
    const r = parseResultFile(JSON.parse(text));
    return typeof r === 'string' || path.isAbsolute(r.folder) ? r : 'its folder is not an absolute path';
  } catch {
    return 'is not valid JSON';
  }
}
