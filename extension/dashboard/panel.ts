/**
 * The dashboard webview panel: one per set of sources (opening the same runs again reveals it).
 *
 * The panel keeps the full state of every source (SourceState). The webview is not kept alive
 * while hidden; it reloads when shown and asks with `ready`, and gets a snapshot — that is the
 * buffering: nothing is posted while it is hidden, nothing is lost. After a window reload VS Code
 * hands the webview's saved state (which names the sources) to the serializer, which reopens it.
 */
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { Ctx } from '../ctx';
import { Disposable } from '../disposable';
import { ReadScalarsRequest } from '../../common/workerRequests';
import { ResultsPanel } from '../resultsPanel';
import { dashboardHtml } from './html';
import {
  DashboardSource,
  HostMessage,
  parseDashboardMessage,
  WebviewMessage,
} from '../../common/webviewMessages/dashboard';
import { moveImage, undoMove } from './moves';
import { RunSource } from './runSource';
import { SourceState } from './sourceState';
import { TfEventsSource } from './tfeventsSource';
import { pageParts } from '../webviewPage';

export const DASHBOARD_VIEW_TYPE = 'vitLens.dashboard';

export class DashboardPanel extends Disposable {
  private readonly states: SourceState[];
  /** The webview said `ready` since it was last (re)loaded: deltas can go to it. */
  private ready = false;
  private roots = '';

  static show(ctx: Ctx, sources: DashboardSource[]): DashboardPanel {
    const key = keyOf(sources);
    const existing = ctx.panels.dashboards.get(key);
    if (existing) {
      existing.panel.reveal(undefined, false);
      return existing;
    }
    const panel = vscode.window.createWebviewPanel(DASHBOARD_VIEW_TYPE, 'Dashboard', vscode.ViewColumn.Active, {
      enableScripts: true,
      retainContextWhenHidden: false,
      localResourceRoots: [],
    });
    return new DashboardPanel(ctx, panel, sources);
  }

  static revive(ctx: Ctx, panel: vscode.WebviewPanel, sources: DashboardSource[]): DashboardPanel {
    ctx.panels.dashboards.get(keyOf(sources))?.dispose();
    return new DashboardPanel(ctx, panel, sources);
  }

  private constructor(
    private readonly ctx: Ctx,
    private readonly panel: vscode.WebviewPanel,
    sources: DashboardSource[],
  ) {
    super();
    this._register(ctx.panels.dashboards.track(keyOf(sources), this));
    this._register(panel);
    this.states = sources.map(
      (s, id) =>
        new SourceState(
          id,
          s,
          f => this.panel.webview.asWebviewUri(vscode.Uri.file(f)).toString(),
          m => this.onSourceMessage(m),
        ),
    );
    panel.iconPath = vscode.Uri.joinPath(ctx.extensionUri, 'media', 'icon.png');
    panel.title = sources.length === 1 ? `Dashboard: ${this.states[0].view.name}` : `Dashboard: ${sources.length} runs`;
    this.setResourceRoots();
    panel.webview.html = this.html();
    this._register(panel.onDidDispose(() => this.dispose()));
    this._register(
      panel.onDidChangeViewState(() => {
        // A hidden webview is torn down; it says `ready` again when shown.
        if (!panel.visible) this.ready = false;
      }),
    );
    this._register(panel.webview.onDidReceiveMessage(m => this.onMessage(m)));
    for (const state of this.states) this.startSource(state);
  }

  private startSource(state: SourceState): void {
    if (state.view.kind === 'run') {
      this._register(new RunSource(state.view.dir, state.runListener)).start();
    } else {
      this._register(
        new TfEventsSource(
          state.view.dir,
          params => this.ctx.worker.request(ReadScalarsRequest, params),
          state.tfListener,
        ),
      ).start();
    }
  }

  private html(): string {
    const dist = vscode.Uri.joinPath(this.ctx.extensionUri, 'dist');
    return dashboardHtml(
      pageParts(
        this.panel.webview,
        vscode.Uri.joinPath(dist, 'dashboard.js'),
        vscode.Uri.joinPath(dist, 'dashboard.css'),
      ),
    );
  }

  /**
   * The webview may load the extension's bundle and the images of the runs' datasets. Changing
   * the roots reloads the page (it then asks for a snapshot), so it is done only when they change:
   * in practice once, when run.json has been read.
   */
  private setResourceRoots(): void {
    const folders = [...new Set(this.states.flatMap(s => s.imageRoots()))].sort();
    const key = folders.join('\n');
    if (key === this.roots && this.panel.webview.options.localResourceRoots?.length) return;
    this.roots = key;
    // The page reloads with the new roots and asks again with `ready`.
    this.ready = false;
    this.panel.webview.options = {
      enableScripts: true,
      localResourceRoots: [
        vscode.Uri.joinPath(this.ctx.extensionUri, 'dist'),
        vscode.Uri.joinPath(this.ctx.extensionUri, 'media'),
        ...folders.map(f => vscode.Uri.file(f)),
      ],
    };
  }

  private onSourceMessage(m: HostMessage): void {
    if (m.type === 'meta' || m.type === 'reset') this.setResourceRoots();
    this.post(m);
  }

  private post(m: HostMessage): void {
    // Hidden or not loaded yet: the snapshot on `ready` will carry it.
    if (this.isDisposed || !this.ready) return;
    void this.panel.webview.postMessage(m);
  }

  private snapshot(): void {
    this.ready = true;
    this.post({ type: 'snapshot', sources: this.states.map(s => s.view) });
  }

  private onMessage(raw: unknown): void {
    const m = parseDashboardMessage(raw, this.states.length, (id, file) => !!this.states[id].heldOut(file));
    if (!m) {
      this.ctx.log.warn(`ignored a malformed message from the dashboard: ${JSON.stringify(raw)?.slice(0, 200)}`);
      return;
    }
    void this.handle(m).catch(e => this.ctx.reportError('update the dashboard', e));
  }

  private async handle(m: WebviewMessage): Promise<void> {
    switch (m.type) {
      case 'ready':
        this.snapshot();
        return;
      case 'openImage':
        ResultsPanel.show(this.ctx, [m.file], 'explain');
        return;
      case 'moveImage':
        await moveImage(this.states[m.id], m.file);
        return;
      case 'undoMove':
        await undoMove(this.states[m.id], m.file);
        return;
      case 'revealRun':
        await vscode.commands.executeCommand(
          'revealFileInOS',
          vscode.Uri.file(path.join(this.states[m.id].view.dir, 'run.json')),
        );
        return;
      case 'auditDataset': {
        const dataset = this.states[m.id].dataset;
        if (dataset) await vscode.commands.executeCommand('vitLens.auditDataset', vscode.Uri.file(dataset));
        return;
      }
    }
  }
}

function keyOf(sources: DashboardSource[]): string {
  return JSON.stringify(sources.map(s => [s.kind, path.resolve(s.dir)]));
}
