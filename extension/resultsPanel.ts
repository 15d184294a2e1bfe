/**
 * The results panel: one webview panel, a row per image, the attention map of the selected image.
 *
 * The extension owns the state (what was asked, what the worker answered); the webview renders it
 * and keeps a copy with setState so it survives hide/show, and VS Code hands that copy back to the
 * serializer after a window reload. Everything coming back from the webview — messages and the
 * restored state — is validated first: image paths must be ones this panel was opened on.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import {
  Controls,
  ImageRow,
  MapView,
  ModelSummary,
  PanelState,
  parseControls,
  parseModelSummary,
  parseWebviewMessage,
  WebviewMessage,
} from '../common/webviewMessages/resultsPanel';
import { panelHtml } from './panelHtml';
import { pageParts } from './webviewPage';
import type { ExplainParams, ModelInfo } from '../common/workerRequests';
import { isImagePath } from '../common/imageFiles';
import type { ModelRequest, WorkerClient } from './workerClient';
import type { Settings } from './config';
import { Disposable, PanelRegistry } from './disposable';

export const RESULTS_VIEW_TYPE = 'vitLens.results';
/** There is one results panel: its key in the registry. */
const ONLY = 'results';

/** What the panel needs from the rest of the extension. */
export interface PanelHost {
  readonly extensionUri: vscode.Uri;
  readonly worker: WorkerClient;
  readonly log: vscode.LogOutputChannel;
  readonly panels: { readonly results: PanelRegistry<ResultsPanel> };
  settings(): Settings;
  /** The model to use, or undefined after telling the user why there is none. */
  modelRequest(): ModelRequest | undefined;
  /** Show a worker/model failure to the user (once, with the right buttons). */
  reportError(what: string, e: unknown): void;
}

export class ResultsPanel extends Disposable {
  private explainCts: vscode.CancellationTokenSource | undefined;
  private classifyCts: vscode.CancellationTokenSource | undefined;

  /** Open (or reuse) the panel on these images. */
  static show(host: PanelHost, images: string[], mode: PanelState['mode']): ResultsPanel {
    const column = vscode.ViewColumn.Beside;
    let panel = host.panels.results.get(ONLY);
    if (!panel) {
      const webviewPanel = vscode.window.createWebviewPanel(
        RESULTS_VIEW_TYPE,
        'ViT Lens',
        { viewColumn: column, preserveFocus: false },
        {
          enableScripts: true,
          // The webview's own copy of the state (setState) restores it when shown again; keeping the
          // whole page alive while hidden would cost memory for nothing.
          retainContextWhenHidden: false,
          localResourceRoots: [],
        },
      );
      panel = new ResultsPanel(host, webviewPanel, initialState(host.settings()));
    } else {
      // Where the user left it: revealing "beside" every time would open a new editor group per run.
      panel.panel.reveal(undefined, false);
    }
    panel.open(images, mode);
    return panel;
  }

  /** Called by the WebviewPanelSerializer after a window reload. */
  static revive(host: PanelHost, webviewPanel: vscode.WebviewPanel, saved: unknown): ResultsPanel {
    host.panels.results.get(ONLY)?.dispose();
    const state = restoreState(saved, host.settings());
    return new ResultsPanel(host, webviewPanel, state);
  }

  private constructor(
    private readonly host: PanelHost,
    private readonly panel: vscode.WebviewPanel,
    private state: PanelState,
  ) {
    super();
    this._register(host.panels.results.track(ONLY, this));
    this._register(panel);
    this._register({ dispose: () => [this.explainCts, this.classifyCts].forEach(cts => cts?.cancel()) });
    if (host.worker.model) this.state.model = summarize(host.worker.model, this.builtInModel());
    panel.iconPath = vscode.Uri.joinPath(host.extensionUri, 'media', 'icon.png');
    this.setResourceRoots();
    this.refreshSources();
    this.setTitle();
    panel.webview.html = this.html();
    this._register(panel.onDidDispose(() => this.dispose()));
    this._register(panel.webview.onDidReceiveMessage(m => this.onMessage(m)));
    this._register(
      host.worker.onDidChangeModel(info => {
        if (info) this.state.model = summarize(info, this.builtInModel());
        this.post();
      }),
    );
  }

  /** The built-in demo model's folder: the panel warns when it is used on images unlike its training data. */
  private builtInModel(): string {
    return path.join(this.host.extensionUri.fsPath, 'models', 'default');
  }

  private html(): string {
    const ext = this.host.extensionUri;
    return panelHtml(
      pageParts(
        this.panel.webview,
        vscode.Uri.joinPath(ext, 'dist', 'webview.js'),
        vscode.Uri.joinPath(ext, 'media', 'panel.css'),
      ),
    );
  }

  private setTitle(): void {
    const rows = this.state.rows;
    this.panel.title =
      rows.length === 0
        ? 'ViT Lens'
        : rows.length === 1
          ? `ViT Lens: ${path.basename(rows[0].path)}`
          : `ViT Lens: ${rows.length} images`;
  }

  /** The webview may load only the extension's bundles/styles and the folders of the images shown. */
  private setResourceRoots(): void {
    const folders = [...new Set(this.state.rows.map(r => path.dirname(r.path)))];
    this.panel.webview.options = {
      enableScripts: true,
      localResourceRoots: [
        vscode.Uri.joinPath(this.host.extensionUri, 'dist'),
        vscode.Uri.joinPath(this.host.extensionUri, 'media'),
        ...folders.map(f => vscode.Uri.file(f)),
      ],
    };
  }

  private refreshSources(): void {
    for (const row of this.state.rows) row.src = this.panel.webview.asWebviewUri(vscode.Uri.file(row.path)).toString();
  }

  private open(images: string[], mode: PanelState['mode']): void {
    const s = this.host.settings();
    this.state = {
      ...this.state,
      mode,
      rows: images.map(p => ({ path: p, name: displayName(p), src: '' })),
      selected: 0,
      map: undefined,
      mapError: undefined,
      // Settings are the defaults of each new run; in-panel tweaks last until the next one.
      controls: {
        ...this.state.controls,
        headFusion: s.headFusion,
        discardRatio: s.discardRatio,
        opacity: s.opacity,
        colormap: s.colormap,
      },
    };
    this.setTitle();
    this.setResourceRoots();
    this.refreshSources();
    this.post();
    void this.run(mode);
  }

  /** Classify every row (classify mode), then explain the selected one. */
  private async run(mode: PanelState['mode']): Promise<void> {
    const model = this.host.modelRequest();
    if (!model) {
      this.update({ mapError: 'No model is configured. Run “ViT Lens: Select Model…”.' });
      return;
    }
    if (mode === 'classify') {
      this.classifyCts?.cancel();
      const cts = (this.classifyCts = new vscode.CancellationTokenSource());
      const n = this.state.rows.length;
      this.update({ busy: n === 1 ? 'Classifying…' : `Classifying ${n} images…` });
      try {
        const r = await this.host.worker.classify(
          model,
          { images: this.state.rows.map(row => row.path), topK: this.host.settings().topK },
          cts.token,
        );
        if (cts.token.isCancellationRequested || this.isDisposed) return;
        const byImage = new Map(r.results.map(x => [x.image, x]));
        const failed = new Map(r.failures.map(f => [f.image, f.error]));
        for (const row of this.state.rows) {
          const result = byImage.get(row.path);
          row.predictions = result?.predictions;
          row.unlikeTraining = result?.trainingData?.unlike
            ? { distance: result.trainingData.distance, threshold: result.trainingData.threshold }
            : undefined;
          row.error = failed.get(row.path);
        }
        for (const f of r.failures) this.host.log.warn(f.error);
        const firstOk = this.state.rows.findIndex(row => !row.error);
        this.state.selected = firstOk >= 0 ? firstOk : 0;
      } catch (e) {
        if (!cts.token.isCancellationRequested && !this.isDisposed) {
          this.host.reportError('classify', e);
          const message = panelMessage(e);
          for (const row of this.state.rows) if (!row.predictions) row.error = message;
          this.update({ busy: undefined, mapError: message });
        }
        return;
      }
    }
    await this.explain();
  }

  /** (Re)compute the map of the selected image with the current controls; a newer call cancels an older one. */
  private async explain(): Promise<void> {
    const row = this.state.rows[this.state.selected];
    const model = this.host.modelRequest();
    if (!row || !model) return;
    if (row.error) {
      this.update({ busy: undefined, map: undefined, mapError: row.error });
      return;
    }
    this.explainCts?.cancel();
    const cts = (this.explainCts = new vscode.CancellationTokenSource());
    const c = this.state.controls;
    this.update({
      busy:
        c.method === 'rollout'
          ? 'Computing attention rollout…'
          : c.method === 'relevance'
            ? 'Computing class relevance…'
            : `Reading attention of layer ${c.layer}…`,
    });
    try {
      const info = await this.host.worker.ensureModel(model);
      // Relevance reads the weights, not the graph's attention outputs, so it may work where rollout cannot.
      if (!info.explainAvailable && c.method !== 'relevance') {
        this.update({
          busy: undefined,
          map: undefined,
          mapError: `This model cannot be explained: ${info.explainUnavailableReason ?? 'no attention outputs'}`,
        });
        return;
      }
      const params = explainParams(row.path, c, this.host.settings().topK, info);
      const r = await this.host.worker.explain(model, params, cts.token);
      if (cts.token.isCancellationRequested || this.isDisposed) return;
      // Explain answers with predictions too: in explain mode they fill the row.
      if (!row.predictions) row.predictions = r.predictions;
      const map: MapView = {
        image: r.image,
        width: r.width,
        height: r.height,
        method: r.method,
        grid: r.map.grid,
        values: r.map.values,
        label: describe(params, r.class),
        class: r.class,
      };
      this.update({ busy: undefined, map, mapError: undefined });
    } catch (e) {
      if (cts.token.isCancellationRequested || this.isDisposed) return;
      this.host.log.error(`explain ${row.path}: ${messageOf(e)}`);
      this.update({ busy: undefined, map: undefined, mapError: panelMessage(e) });
    }
  }

  private onMessage(raw: unknown): void {
    const m = parseWebviewMessage(raw, this.state.rows.length);
    if (!m) {
      this.host.log.warn(`ignored a malformed message from the results panel: ${JSON.stringify(raw)?.slice(0, 200)}`);
      return;
    }
    void this.handle(m);
  }

  private async handle(m: WebviewMessage): Promise<void> {
    switch (m.type) {
      case 'ready':
        this.post();
        return;
      case 'select':
        if (m.index === this.state.selected) return;
        this.state.selected = m.index;
        this.state.map = undefined;
        this.state.controls.classIndex = null; // another image: explain its own top-1 class
        await this.explain();
        return;
      case 'setControls': {
        const layers = this.state.model?.numLayers ?? Infinity;
        const heads = this.state.model?.numHeads ?? Infinity;
        if (m.controls.layer >= layers || (m.controls.head !== null && m.controls.head >= heads)) return;
        this.state.controls = m.controls;
        if (m.reexplain) await this.explain();
        return;
      }
      case 'copyJson':
        await vscode.env.clipboard.writeText(JSON.stringify(this.resultsJson(), null, 2));
        void vscode.window.setStatusBarMessage('$(check) ViT Lens: results copied as JSON', 3000);
        return;
      case 'saveOverlay':
        await this.saveOverlay();
        return;
    }
  }

  private resultsJson(): unknown {
    const rows = this.state.rows;
    return {
      model: this.state.model?.name,
      provider: this.state.model?.provider,
      results: rows.filter(r => r.predictions).map(r => ({ image: r.path, predictions: r.predictions })),
      failures: rows.filter(r => r.error).map(r => ({ image: r.path, error: r.error })),
      ...(this.state.map
        ? {
            attention: {
              image: this.state.map.image,
              method: this.state.map.method,
              settings: this.state.map.label,
              ...(this.state.map.class ? { class: this.state.map.class } : {}),
              grid: this.state.map.grid,
              values: this.state.map.values,
            },
          }
        : {}),
    };
  }

  /** The worker renders the overlay at the image's own size; the user picks where it goes (next to the image by default). */
  private async saveOverlay(): Promise<void> {
    const row = this.state.rows[this.state.selected];
    const model = this.host.modelRequest();
    if (!row || !model) return;
    const stem = path.basename(row.path, path.extname(row.path));
    const cls =
      this.state.controls.method === 'relevance'
        ? this.state.map?.class?.label.replace(/[^\p{L}\p{N}_-]+/gu, '_')
        : undefined;
    const target = await vscode.window.showSaveDialog({
      defaultUri: vscode.Uri.file(
        path.join(path.dirname(row.path), `${stem}.${this.state.controls.method}${cls ? `.${cls}` : ''}.png`),
      ),
      filters: { 'PNG image': ['png'] },
      title: 'Save Attention Overlay',
    });
    if (!target) return;
    try {
      const info = await this.host.worker.ensureModel(model);
      const c = this.state.controls;
      const r = await this.host.worker.explain(model, {
        ...explainParams(row.path, c, 1, info),
        overlay: { colormap: c.colormap, opacity: c.opacity },
      });
      if (!r.overlayPng) throw new Error('the worker returned no overlay');
      await vscode.workspace.fs.writeFile(target, Buffer.from(r.overlayPng, 'base64'));
      const pick = await vscode.window.showInformationMessage(`Saved ${path.basename(target.fsPath)}`, 'Open');
      if (pick) await vscode.commands.executeCommand('vscode.open', target);
    } catch (e) {
      this.host.reportError('save the overlay', e);
    }
  }

  private update(patch: Partial<PanelState>): void {
    Object.assign(this.state, patch);
    this.post();
  }

  private post(): void {
    if (!this.isDisposed) void this.panel.webview.postMessage({ type: 'state', state: this.state });
  }
}

export function initialState(s: Settings): PanelState {
  return {
    version: 1,
    mode: 'classify',
    rows: [],
    selected: 0,
    controls: {
      method: 'rollout',
      classIndex: null,
      headFusion: s.headFusion,
      discardRatio: s.discardRatio,
      layer: 0,
      head: null,
      opacity: s.opacity,
      colormap: s.colormap,
    },
  };
}

/** The webview's saved state, kept only where it is well-formed and names image files that still exist. */
/** A saved "unlike the training data" note, if well-formed. */
const savedNote = (n: unknown): ImageRow['unlikeTraining'] =>
  typeof n === 'object' &&
  n !== null &&
  Number.isFinite((n as { distance?: unknown }).distance) &&
  Number.isFinite((n as { threshold?: unknown }).threshold)
    ? { distance: (n as { distance: number }).distance, threshold: (n as { threshold: number }).threshold }
    : undefined;

export function restoreState(saved: unknown, s: Settings): PanelState {
  const state = initialState(s);
  if (typeof saved !== 'object' || saved === null) return state;
  const v = saved as Partial<PanelState>;
  const rows: ImageRow[] = Array.isArray(v.rows)
    ? v.rows
        .filter(
          (r): r is ImageRow =>
            typeof r?.path === 'string' && path.isAbsolute(r.path) && isImagePath(r.path) && fs.existsSync(r.path),
        )
        .slice(0, 1000)
        .map(r => ({
          path: r.path,
          name: displayName(r.path),
          src: '',
          predictions: Array.isArray(r.predictions) ? r.predictions : undefined,
          unlikeTraining: savedNote(r.unlikeTraining),
          error: typeof r.error === 'string' ? r.error : undefined,
        }))
    : [];
  state.rows = rows;
  state.mode = v.mode === 'explain' ? 'explain' : 'classify';
  state.selected =
    Number.isInteger(v.selected) && (v.selected as number) < rows.length && (v.selected as number) >= 0
      ? (v.selected as number)
      : 0;
  state.controls = parseControls(v.controls) ?? state.controls;
  // The header keeps naming the model after a reload, until the new worker has loaded it again.
  state.model = parseModelSummary(v.model);
  const map = v.map;
  if (
    map &&
    Array.isArray(map.values) &&
    Array.isArray(map.grid) &&
    map.values.length === map.grid[0] * map.grid[1] &&
    rows[state.selected]?.path === map.image
  ) {
    state.map = { ...map, values: map.values.map(Number) };
  }
  return state;
}

/** A row's name: workspace-relative inside the workspace, the file name elsewhere (a temp copy's folder says nothing). */
function displayName(file: string): string {
  const rel = vscode.workspace.asRelativePath(file, false);
  return rel === file || path.isAbsolute(rel) ? path.basename(file) : rel;
}

function explainParams(image: string, c: Controls, topK: number, info: ModelInfo): ExplainParams {
  if (c.method === 'relevance')
    return c.classIndex === null
      ? { image, method: 'relevance', topK }
      : { image, method: 'relevance', class: c.classIndex, topK };
  const base: ExplainParams = { image, headFusion: c.headFusion, topK };
  if (c.method === 'rollout') return { ...base, discardRatio: c.discardRatio };
  const layer = Math.min(c.layer, info.numLayers - 1);
  return c.head === null ? { ...base, layer } : { ...base, layer, head: c.head };
}

function describe(p: ExplainParams, cls?: { index: number; label: string }): string {
  if (p.method === 'relevance') return cls ? `class ${cls.label}` : 'class';
  if (p.layer === undefined) return `rollout · ${p.headFusion} · discard ${p.discardRatio}`;
  return `layer ${p.layer} · ${p.head === undefined ? `heads ${p.headFusion}` : `head ${p.head}`}`;
}

function summarize(info: ModelInfo, builtIn: string): ModelSummary {
  return {
    name: info.name,
    demo: path.resolve(info.spec) === path.resolve(builtIn) || undefined,
    provider: info.provider,
    numLayers: info.numLayers,
    numHeads: info.numHeads ?? info.architecture?.numHeads ?? 1,
    explainAvailable: info.explainAvailable,
    explainUnavailableReason: info.explainUnavailableReason,
  };
}

/** What the panel says about a failure: the worker's message (it names the file and problem), or what to do after a crash. */
function panelMessage(e: unknown): string {
  const code = (e as { code?: unknown } | undefined)?.code;
  if (code === -32097 || code === -32096)
    return 'The worker stopped while working on this and has been restarted. Run the command again.';
  return messageOf(e);
}

export function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
