/**
 * The worker process: a language-server-style JSON-RPC connection (IPC or stdio, chosen by the
 * usual `--node-ipc` / `--stdio` arguments) around one Engine. A failing request answers with an
 * error; the worker itself keeps serving.
 */
import { CancellationToken, createConnection, LSPErrorCodes, ProposedFeatures, RequestHandler, RequestType, ResponseError, WorkDoneProgressParams, WorkDoneProgressReporter } from 'vscode-languageserver/node';
import * as ort from 'onnxruntime-node';
import * as os from 'os';
import sharp from 'sharp';
import { Engine, EngineOptions } from './engine';
import { cudaProviderInstalled } from './inference';
import { classifyFolder } from './classifyFolder';
import { scanDatasetForEditor } from './datasetScan';
import { ClassifyFolderRequest, ClassifyRequest, ErrorCodes, ExplainRequest, LoadModelRequest, ProviderFallbackNotification, ReadScalarsRequest, ScanDatasetRequest, StatusRequest, StatusResult } from './protocol';
import { ScalarsReaders } from './scalarsReaders';
import { FAIL_GPU_AFTER_ENV, testBackendsFromEnv } from './testSeams';

const connection = createConnection(ProposedFeatures.all);
let engine = new Engine({ onProviderFallback });
let state: StatusResult['state'] = 'idle';
let lastError: string | undefined;

/** Requests that use the model run one at a time, in arrival order (ONNX Runtime sessions are not re-entrant here). */
let queue: Promise<unknown> = Promise.resolve();
function serialised<T>(work: () => Promise<T>): Promise<T> {
  const next = queue.then(work, work);
  queue = next.catch(() => undefined);
  return next;
}

function abortSignalFor(token: CancellationToken): AbortSignal {
  const controller = new AbortController();
  if (token.isCancellationRequested) controller.abort();
  token.onCancellationRequested(() => controller.abort());
  return controller.signal;
}

/** Map any failure to a JSON-RPC error the client can show; never let it escape and kill the process. */
function asResponseError(e: unknown, token: CancellationToken): ResponseError<void> {
  if (token.isCancellationRequested || (e instanceof Error && e.name === 'AbortError')) {
    return new ResponseError(LSPErrorCodes.RequestCancelled, 'cancelled');
  }
  const message = e instanceof Error ? e.message : String(e);
  connection.console.error(message);
  if (message === 'no model is loaded') return new ResponseError(ErrorCodes.NoModel, 'No model is loaded: load one first (vitLens/loadModel).');
  return new ResponseError(ErrorCodes.BadInput, message);
}

/** Register a request whose failures become JSON-RPC errors and whose cancellation becomes an AbortSignal. */
function onRequest<P, R>(type: RequestType<P, R, void>, work: (params: P, signal: AbortSignal, progress: WorkDoneProgressReporter) => Promise<R>): void {
  // The cast only bridges TypeScript's deferred conditional type in HandlerResult for a generic R.
  const handler = (async (params: P, token: CancellationToken) => {
    try {
      // A no-op reporter unless the client sent a workDoneToken.
      const progress = connection.languages.attachWorkDoneProgress(params as WorkDoneProgressParams);
      return (await work(params, abortSignalFor(token), progress)) as R;
    } catch (e) {
      return asResponseError(e, token);
    }
  }) as RequestHandler<P, R, void>;
  connection.onRequest(type, handler);
}

/** One log line and one notification; the run that failed is repeated on the CPU, so the request still answers. */
function onProviderFallback(note: string): void {
  connection.console.warn(note);
  void connection.sendNotification(ProviderFallbackNotification, engine.info());
}

connection.onInitialize((params) => {
  const init = (params.initializationOptions ?? {}) as EngineOptions;
  // backends: undefined (the real providers) unless a worker test set its env seam.
  const backends = testBackendsFromEnv(process.env, init.threads ?? os.availableParallelism());
  if (backends) connection.console.warn(`${FAIL_GPU_AFTER_ENV} is set: WebGPU runs will fail on purpose (a test seam, not a setting)`);
  engine = new Engine({ provider: init.provider, threads: init.threads, cacheDir: init.cacheDir, offline: init.offline, onProviderFallback, backends });
  return { capabilities: {}, serverInfo: { name: 'vit-lens-worker' } };
});

onRequest(LoadModelRequest, (params, signal, progress) =>
    serialised(async () => {
      state = 'loading';
      progress.begin('Loading model', undefined, params.model, true);
      try {
        const info = await engine.load(params.model, {
          labelsFile: params.labelsFile,
          provider: params.provider,
          dtype: params.dtype,
          signal,
          onProgress: (p) => progress.report(p.fraction === undefined ? 0 : Math.round(p.fraction * 100), p.message),
        });
        lastError = undefined;
        return info;
      } catch (e) {
        lastError = e instanceof Error ? e.message : String(e);
        throw e;
      } finally {
        state = engine.isLoaded ? 'ready' : 'idle';
        progress.done();
      }
    }),
);

onRequest(ClassifyRequest, (params, signal) => {
    if (!Array.isArray(params.images) || params.images.some((i) => typeof i !== 'string')) throw new Error('classify: "images" must be a list of file paths');
  return serialised(() => engine.classify(params.images, params.topK ?? 5, signal));
});

onRequest(ExplainRequest, (params, signal) =>
    serialised(async () => {
      const r = await engine.explain(params.image, {
        method: params.method,
        class: params.class,
        headFusion: params.headFusion,
        discardRatio: params.discardRatio,
        layer: params.layer,
        head: params.head,
        topK: params.topK,
        overlay: params.overlay,
        signal,
      });
      return {
        image: r.image,
        width: r.width,
        height: r.height,
        predictions: r.predictions,
        method: r.method,
        class: r.class,
        layer: r.layer,
        head: r.head,
        map: { grid: r.map.grid, values: Array.from(r.map.values) },
        overlayPng: r.overlayPng?.toString('base64'),
      };
    }),
);

// Each batch takes its own turn on the model queue, so an explain from the editor waits for one
// batch, not for the whole folder. Cancelling still answers: with the files of what was done (partial).
onRequest(ClassifyFolderRequest, async (params, signal, progress) => {
  if (typeof params.folder !== 'string' || !params.folder) throw new Error('classifyFolder: "folder" must be a folder path');
  if (params.outDir !== undefined && typeof params.outDir !== 'string') throw new Error('classifyFolder: "outDir" must be a folder path');
  const topK = params.topK ?? 5;
  const info = engine.info();
  progress.begin('Classifying folder', 0, 'Listing images…', true);
  try {
    return await classifyFolder(params.folder, {
      outDir: params.outDir,
      model: info.name,
      signal,
      batchSize: engine.classifyBatchSize(),
      classifyBatch: (files) =>
        serialised(() => {
          // Another model may have been loaded between two batches: do not mix two models' answers.
          if (engine.info().spec !== info.spec) throw new Error(`the model changed to ${engine.info().name} while classifying ${params.folder}; run Classify Folder again`);
          return engine.classify(files, topK, signal);
        }),
      onProgress: (done, total) => progress.report(total ? Math.floor((done / total) * 100) : 0, `${done} / ${total} images`),
    });
  } finally {
    progress.done();
  }
});

// Not on the model queue: a scan reads files only, and must not wait behind a long classify.
onRequest(ScanDatasetRequest, async (params, signal, progress) => {
  progress.begin('Scanning dataset', 0, params.folder, true);
  try {
    return await scanDatasetForEditor(params, signal, progress);
  } finally {
    progress.done();
  }
});

// Reading event files does not touch the model: not on the serialised queue, so a dashboard
// stays live while a long classify or explain runs.
const scalarsReaders = new ScalarsReaders();
onRequest(ReadScalarsRequest, (params) => scalarsReaders.read(params));

connection.onRequest(StatusRequest, () => ({
  state,
  model: engine.isLoaded ? engine.info() : undefined,
  lastError,
  pid: process.pid,
  rssBytes: process.memoryUsage().rss,
  versions: { node: process.versions.node, onnxruntime: ort.env.versions.node ?? ort.env.versions.common, sharp: sharp.versions.sharp ?? '' },
  cudaProviderInstalled: cudaProviderInstalled(),
}));

connection.onShutdown(() => engine.dispose());

// A bug in one request must not take the model (and the user's session) down with it.
process.on('uncaughtException', (e) => connection.console.error(`uncaught: ${e.stack ?? e}`));
process.on('unhandledRejection', (e) => connection.console.error(`unhandled rejection: ${e instanceof Error ? e.stack : e}`));

connection.listen();
