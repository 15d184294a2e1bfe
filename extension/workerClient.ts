/**
 * The worker process (dist/worker.js) behind a vscode-languageclient LanguageClient.
 *
 * Lifecycle: nothing starts at activation. The first request starts the worker over Node IPC; it
 * then lives for the session, is restarted after a crash (one notification per burst of crashes,
 * and not at all after too many), and is stopped by `dispose()` on deactivate. The worker holds one
 * model; this class remembers which, so a request after a restart or a settings change reloads it
 * first — behind a cancellable progress notification, since a hub download can take minutes.
 */
import * as path from 'node:path';
import * as vscode from 'vscode';
import type {
  CloseHandlerResult,
  ErrorHandler,
  ErrorHandlerResult,
  LanguageClient,
  LanguageClientOptions,
  ServerOptions,
} from 'vscode-languageclient/node';
import {
  ClassifyParams,
  ClassifyRequest,
  ClassifyResult,
  ExplainParams,
  ExplainRequest,
  ExplainResult,
  LoadModelRequest,
  ModelInfo,
  ProviderFallbackNotification,
  ProviderPreference,
  WorkerRequest,
} from '../common/workerRequests';
import type { Dtype } from './config';

type LanguageClientModule = typeof import('vscode-languageclient/node');
let lcModule: LanguageClientModule | undefined;
/**
 * vscode-languageclient, loaded on first use: it is most of the extension's code (≈400 KB), and
 * activation should not pay for it. scripts/build.mjs bundles it separately as dist/languageclient.js;
 * the computed path keeps esbuild from inlining it here.
 */
function lc(): LanguageClientModule {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on first use from a computed path (above)
  lcModule ??= require(path.join(__dirname, 'languageclient.js')) as LanguageClientModule;
  return lcModule;
}

export interface WorkerInit {
  provider: ProviderPreference;
  cacheDir?: string;
}

/** A model as the user asked for it: the resolved spec plus the provider preference and precision. */
export interface ModelRequest {
  spec: string;
  provider: ProviderPreference;
  dtype?: Dtype;
}

const CRASH_WINDOW_MS = 3 * 60_000;
const MAX_CRASHES_IN_WINDOW = 3;

export class WorkerClient implements vscode.Disposable {
  private client: LanguageClient | undefined;
  private starting: Promise<LanguageClient> | undefined;
  private loaded: { key: string; info: ModelInfo } | undefined;
  private loading: { key: string; promise: Promise<ModelInfo> } | undefined;
  private crashes: number[] = [];
  private lastCrashNotice = 0;
  private readonly modelChanged = new vscode.EventEmitter<ModelInfo | undefined>();
  /** Fires with the loaded model, or undefined when the worker (and so its model) went away. */
  readonly onDidChangeModel = this.modelChanged.event;
  private readonly loadingChanged = new vscode.EventEmitter<ModelRequest | undefined>();
  /** Fires with the model being loaded, and with undefined when that load ends. */
  readonly onDidChangeLoading = this.loadingChanged.event;

  constructor(
    private readonly workerModule: string,
    private readonly log: vscode.LogOutputChannel,
    private readonly init: () => WorkerInit,
  ) {}

  get model(): ModelInfo | undefined {
    return this.loaded?.info;
  }

  get isRunning(): boolean {
    return !!this.client && this.client.state === lc().State.Running;
  }

  /** The running client, starting the worker on first use. */
  private async started(): Promise<LanguageClient> {
    if (this.starting) return this.starting;
    const { State } = lc();
    const client = this.client;
    // Restarting after a crash: wait for it rather than start a second worker.
    if (client?.state === State.Starting) {
      await new Promise<void>(resolve => {
        const sub = client.onDidChangeState(e => {
          if (e.newState !== State.Starting) {
            sub.dispose();
            resolve();
          }
        });
      });
    }
    if (client && client === this.client && client.state === State.Running) return client;
    // Never started, stopped for good after repeated crashes, or a start that failed: a fresh client.
    this.starting = this.start().finally(() => (this.starting = undefined));
    return this.starting;
  }

  private async start(): Promise<LanguageClient> {
    const t0 = Date.now();
    const { LanguageClient, RevealOutputChannelOn, State, TransportKind } = lc();
    const serverOptions: ServerOptions = {
      run: { module: this.workerModule, transport: TransportKind.ipc },
      debug: {
        module: this.workerModule,
        transport: TransportKind.ipc,
        options: { execArgv: ['--nolazy', '--inspect=6019'] },
      },
    };
    const clientOptions: LanguageClientOptions = {
      // The worker serves no documents; it only answers vitLens/* requests.
      documentSelector: [],
      outputChannel: this.log,
      revealOutputChannelOn: RevealOutputChannelOn.Never,
      initializationOptions: this.init(),
      errorHandler: this.errorHandler(),
    };
    const client = new LanguageClient('vitLens', 'ViT Lens worker', serverOptions, clientOptions);
    client.onDidChangeState(e => {
      // A new worker process has no model loaded.
      if (e.newState !== State.Running && this.loaded) {
        this.loaded = undefined;
        this.modelChanged.fire(undefined);
      }
    });
    // The GPU failed mid-run and the worker moved the model to the CPU: the status bar follows, one notice.
    client.onNotification(ProviderFallbackNotification.method, (info: ModelInfo) => {
      this.log.warn(info.providerNote ?? 'the model moved to the CPU');
      if (this.loaded && this.loaded.info.spec === info.spec) {
        this.loaded = { ...this.loaded, info };
        this.modelChanged.fire(info);
      }
      void vscode.window.showWarningMessage(
        `ViT Lens: ${info.providerNote ?? 'the GPU failed; the model now runs on the CPU'}.`,
      );
    });
    this.client = client;
    try {
      await client.start();
    } catch (e) {
      if (this.client === client) this.client = undefined;
      throw e;
    }
    this.log.info(`worker started in ${Date.now() - t0} ms (${this.workerModule})`);
    return client;
  }

  private errorHandler(): ErrorHandler {
    const { CloseAction, ErrorAction } = lc();
    return {
      // A transport error on one message; the connection decides whether it is closed.
      error: (error: Error, _message, count): ErrorHandlerResult => {
        this.log.error(`worker connection error: ${error.message}`);
        return {
          action: count !== undefined && count >= 3 ? ErrorAction.Shutdown : ErrorAction.Continue,
          handled: true,
        };
      },
      closed: (): CloseHandlerResult => {
        const now = Date.now();
        this.crashes = this.crashes.filter(t => now - t < CRASH_WINDOW_MS).concat(now);
        if (this.crashes.length > MAX_CRASHES_IN_WINDOW) {
          this.log.error(`worker crashed ${this.crashes.length} times in 3 minutes; not restarting it`);
          void vscode.window
            .showErrorMessage(
              `ViT Lens: the worker crashed ${this.crashes.length} times in 3 minutes and was not restarted.`,
              'Show Log',
              'Restart Worker',
            )
            .then(
              pick =>
                pick &&
                vscode.commands.executeCommand(pick === 'Show Log' ? 'vitLens.showWorkerLog' : 'vitLens.restartWorker'),
            );
          return { action: CloseAction.DoNotRestart, handled: true };
        }
        this.log.warn('worker stopped unexpectedly; restarting it');
        // One notice per burst: a crash loop must not become a stream of toasts.
        if (now - this.lastCrashNotice > CRASH_WINDOW_MS) {
          this.lastCrashNotice = now;
          void vscode.window
            .showWarningMessage(
              'ViT Lens: the worker stopped unexpectedly and was restarted. The model reloads on next use.',
              'Show Log',
            )
            .then(pick => pick && vscode.commands.executeCommand('vitLens.showWorkerLog'));
        }
        return { action: CloseAction.Restart, handled: true };
      },
    };
  }

  private static key(m: ModelRequest): string {
    return `${m.provider}\u0000${m.dtype ?? 'fp32'}\u0000${m.spec}`;
  }

  /** Make `m` the worker's model, loading it behind a cancellable progress notification if needed. */
  async ensureModel(m: ModelRequest): Promise<ModelInfo> {
    const key = WorkerClient.key(m);
    const client = await this.started();
    if (this.loaded?.key === key) return this.loaded.info;
    if (this.loading?.key === key) return this.loading.promise;
    const promise = this.load(client, m).finally(() => {
      if (this.loading?.promise === promise) {
        this.loading = undefined;
        this.loadingChanged.fire(undefined);
      }
    });
    this.loading = { key, promise };
    this.loadingChanged.fire(m);
    return promise;
  }

  private load(client: LanguageClient, m: ModelRequest): Promise<ModelInfo> {
    const title = `ViT Lens: loading ${shortName(m.spec)}`;
    return Promise.resolve(
      vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title, cancellable: true },
        async (progress, token) => {
          const t0 = Date.now();
          const info = await sendWithProgress(
            client,
            LoadModelRequest,
            { model: m.spec, provider: m.provider, dtype: m.dtype },
            token,
            progress,
          );
          this.log.info(
            `loaded ${info.name} (${info.kind}, ${info.provider.toUpperCase()} on ${info.device}) in ${Date.now() - t0} ms`,
          );
          if (info.providerNote) this.log.warn(info.providerNote);
          this.loaded = { key: WorkerClient.key(m), info };
          this.modelChanged.fire(info);
          return info;
        },
      ),
    );
  }

  async classify(m: ModelRequest, params: ClassifyParams, token?: vscode.CancellationToken): Promise<ClassifyResult> {
    await this.ensureModel(m);
    return send(await this.started(), ClassifyRequest, params, token);
  }

  async explain(m: ModelRequest, params: ExplainParams, token?: vscode.CancellationToken): Promise<ExplainResult> {
    await this.ensureModel(m);
    return send(await this.started(), ExplainRequest, params, token);
  }

  /** Any other worker request (dataset scan, scalars, classify folder): starts the worker if needed; the worker's work-done reports go to `progress` (a withProgress notification). */
  async request<P extends object, R>(
    request: WorkerRequest<P, R>,
    params: P,
    token?: vscode.CancellationToken,
    progress?: NotificationProgress,
  ): Promise<R> {
    const client = await this.started();
    return progress ? sendWithProgress(client, request, params, token, progress) : send(client, request, params, token);
  }

  /** Stop and start a fresh worker; the model reloads on next use. */
  async restart(): Promise<void> {
    this.crashes = [];
    await this.stop();
    await this.started();
  }

  private async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    this.loading = undefined;
    if (this.loaded) {
      this.loaded = undefined;
      this.modelChanged.fire(undefined);
    }
    if (client && client.state !== lc().State.Stopped) {
      try {
        await client.stop(5000);
      } catch (e) {
        this.log.warn(`worker did not stop cleanly: ${e instanceof Error ? e.message : e}`);
      }
    }
  }

  /** Deactivation awaits this so the worker process does not outlive the extension host. */
  async dispose(): Promise<void> {
    await this.stop();
    this.modelChanged.dispose();
    this.loadingChanged.dispose();
  }
}

function send<P, R>(
  client: LanguageClient,
  request: WorkerRequest<P, R>,
  params: P,
  token?: vscode.CancellationToken,
): Promise<R> {
  // With a method name, vscode-jsonrpc treats a trailing argument that is not a CancellationToken
  // (undefined included) as one more positional parameter: never pass an absent token along.
  return token ? client.sendRequest<R>(request.method, params, token) : client.sendRequest<R>(request.method, params);
}

type NotificationProgress = vscode.Progress<{ message?: string; increment?: number }>;

/**
 * `send` with a fresh work-done token; the worker's `$/progress` reports (absolute percentages) go
 * to a withProgress notification, which takes increments.
 */
async function sendWithProgress<P extends object, R>(
  client: LanguageClient,
  request: WorkerRequest<P, R>,
  params: P,
  token: vscode.CancellationToken | undefined,
  progress: NotificationProgress,
): Promise<R> {
  const workDoneToken = `vitLens-${Date.now()}-${Math.random().toString(36).slice(2)}`;
  let last = 0;
  const sub = client.onProgress(lc().WorkDoneProgress.type, workDoneToken, p => {
    if (p.kind === 'end') return;
    const pct = p.percentage ?? last;
    progress.report({ message: p.message, increment: Math.max(0, pct - last) });
    last = Math.max(last, pct);
  });
  try {
    return await send(client, request, { ...params, workDoneToken }, token);
  } finally {
    sub.dispose();
  }
}

/** "google/vit-base-patch16-224" → itself; "/a/b/model.onnx" → "model.onnx"; ".../hf" → "…/x/hf". */
export function shortName(spec: string): string {
  const parts = spec.split(/[\\/]/).filter(Boolean);
  if (!spec.startsWith('/') && !/^[A-Za-z]:/.test(spec) && parts.length <= 2) return spec;
  return parts.slice(-2).join('/');
}
