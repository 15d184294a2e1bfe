/**
 * The worker process: a language-server-style JSON-RPC connection (IPC or stdio, chosen by the
 * usual `--node-ipc` / `--stdio` arguments) around one Engine. A failing request answers with an
 * error; the worker itself keeps serving. Every request's params are checked against its schema
 * (server/requestSchemas.ts) before anything acts on them. A corrupt message frame ends the worker (exit 1,
 * reason on stderr): after one, the stream cannot be trusted to be in step again, and the
 * extension's client restarts a worker that stopped.
 */
import { format } from 'util';
import {
  CancellationToken,
  createConnection,
  IPCMessageReader,
  IPCMessageWriter,
  LSPErrorCodes,
  MessageReader,
  MessageWriter,
  NotificationType,
  ProposedFeatures,
  RequestHandler,
  RequestType,
  ResponseError,
  StreamMessageReader,
  StreamMessageWriter,
  WorkDoneProgressParams,
  WorkDoneProgressReporter,
} from 'vscode-languageserver/node';
import type { GenericSchema } from 'valibot';
import * as ort from 'onnxruntime-node';
import * as os from 'os';
import sharp from 'sharp';
import { Engine, EngineOptions } from './engine';
import { cudaProviderInstalled } from './inference';
import { classifyFolder } from './classifyFolder';
import { scanDatasetForEditor } from './datasetScan';
import { auditDataset } from './audit/audit';
import {
  AuditRequest,
  ClassifyFolderRequest,
  ClassifyRequest,
  ErrorCodes,
  ExplainRequest,
  LoadModelRequest,
  ProviderFallbackNotification,
  ReadScalarsRequest,
  ScanDatasetRequest,
  StatusRequest,
  ModelInfo,
  StatusResult,
  WorkerRequest,
} from '../common/workerRequests';
import {
  AuditParamsSchema,
  ClassifyFolderParamsSchema,
  ClassifyParamsSchema,
  ExplainParamsSchema,
  LoadModelParamsSchema,
  ReadScalarsParamsSchema,
  ScanDatasetParamsSchema,
  StatusParamsSchema,
  WorkerInitOptionsSchema,
} from './requestSchemas';
import { ScalarsReaders } from './scalarsReaders';
import { check, shortenLongRuns } from './util/validate';
import { FAIL_GPU_AFTER_ENV, testBackendsFromEnv } from './testSeams';

/** The transport the client asked for, made here (not by createConnection) so that its reader's errors can be seen. */
function transport(): [MessageReader, MessageWriter] {
  if (process.argv.includes('--node-ipc')) return [new IPCMessageReader(process), new IPCMessageWriter(process)];
  if (process.argv.includes('--stdio')) {
    // stdout carries the messages: anything a library prints goes to stderr instead.
    for (const level of ['log', 'info', 'warn', 'error', 'debug'] as const)
      console[level] = (...args: unknown[]) => void process.stderr.write(format(...args) + '\n');
    return [new StreamMessageReader(process.stdin), new StreamMessageWriter(process.stdout)];
  }
  process.stderr.write('vit-lens worker: start it with --node-ipc or --stdio\n');
  process.exit(2);
}

const [reader, writer] = transport();
const connection = createConnection(ProposedFeatures.all, reader, writer);
let shutdownRequested = false;
let engine = new Engine({ onProviderFallback });
let engineOptions: EngineOptions = {};
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
  // Messages quote paths and values the client sent: long ones are cut, not echoed whole.
  const message = shortenLongRuns(e instanceof Error ? e.message : String(e));
  connection.console.error(message);
  if (message === 'no model is loaded')
    return new ResponseError(ErrorCodes.NoModel, 'No model is loaded: load one first (vitLens/loadModel).');
  return new ResponseError(ErrorCodes.BadInput, message);
}

/** The params as their schema allows, or the InvalidParams error that names the first bad field. */
function checkParams<P>(
  type: WorkerRequest<P, unknown>,
  schema: GenericSchema<unknown, P>,
  params: unknown,
): { params: P } | { error: ResponseError<void> } {
  const r = check(schema, params, 'params');
  if (r.ok) return { params: r.value };
  const message = `${type.method}: ${r.field} ${r.problem}`;
  connection.console.error(message);
  return { error: new ResponseError(ErrorCodes.InvalidParams, message) };
}

/**
 * Register a request whose params are checked against `schema`, whose failures become JSON-RPC
 * errors and whose cancellation becomes an AbortSignal.
 */
function onRequest<P, R>(
  type: WorkerRequest<P, R>,
  schema: GenericSchema<unknown, P>,
  work: (params: P, signal: AbortSignal, progress: WorkDoneProgressReporter) => Promise<R>,
): void {
  // The cast only bridges TypeScript's deferred conditional type in HandlerResult for a generic R.
  const handler = (async (...args: unknown[]) => {
    // vscode-jsonrpc spreads positional params (a JSON array) into arguments; the token comes last.
    const token = args[args.length - 1] as CancellationToken;
    const checked = checkParams(type, schema, args.length === 2 ? args[0] : args.slice(0, -1));
    if ('error' in checked) return checked.error;
    const params = checked.params;
    try {
      // A no-op reporter unless the client sent a workDoneToken.
      const progress = connection.languages.attachWorkDoneProgress((params ?? {}) as WorkDoneProgressParams);
      return (await work(params, abortSignalFor(token), progress)) as R;
    } catch (e) {
      return asResponseError(e, token);
    }
  }) as unknown as RequestHandler<P, R, void>;
  // A RequestType (one parameter), not the bare method name: vscode-jsonrpc would spread a params array into arguments.
  connection.onRequest(new RequestType<P, R, void>(type.method), handler);
}

/** One log line and one notification; the run that failed is repeated on the CPU, so the request still answers. */
function onProviderFallback(note: string): void {
  connection.console.warn(note);
  void connection.sendNotification(new NotificationType<ModelInfo>(ProviderFallbackNotification.method), engine.info());
}

connection.onInitialize(params => {
  const checked = check(WorkerInitOptionsSchema, params.initializationOptions ?? {}, 'initializationOptions');
  if (!checked.ok) {
    const field = checked.field === 'initializationOptions' ? checked.field : `initializationOptions.${checked.field}`;
    return new ResponseError(ErrorCodes.InvalidParams, `initialize: ${field} ${checked.problem}`);
  }
  const init = checked.value;
  // backends: undefined (the real providers) unless a worker test set its env seam.
  const backends = testBackendsFromEnv(process.env, init.threads ?? os.availableParallelism());
  if (backends)
    connection.console.warn(
      `${FAIL_GPU_AFTER_ENV} is set: WebGPU runs will fail on purpose (a test seam, not a setting)`,
    );
  engineOptions = {
    provider: init.provider,
    threads: init.threads,
    cacheDir: init.cacheDir,
    cacheDirOption: 'the vitLens.cacheDir setting',
    offline: init.offline,
    onProviderFallback,
    backends,
  };
  engine = new Engine(engineOptions);
  return { capabilities: {}, serverInfo: { name: 'vit-lens-worker' } };
});

onRequest(LoadModelRequest, LoadModelParamsSchema, (params, signal, progress) =>
  serialised(async () => {
    state = 'loading';
    progress.begin('Loading model', undefined, params.model, true);
    try {
      const info = await engine.load(params.model, {
        labelsFile: params.labelsFile,
        provider: params.provider,
        dtype: params.dtype,
        signal,
        onWarning: message => connection.console.warn(message),
        onProgress: p => progress.report(p.fraction === undefined ? 0 : Math.round(p.fraction * 100), p.message),
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

onRequest(ClassifyRequest, ClassifyParamsSchema, (params, signal) =>
  serialised(() => engine.classify(params.images, params.topK ?? 5, signal)),
);

onRequest(ExplainRequest, ExplainParamsSchema, (params, signal) =>
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
onRequest(ClassifyFolderRequest, ClassifyFolderParamsSchema, async (params, signal, progress) => {
  const topK = params.topK ?? 5;
  const info = engine.info();
  progress.begin('Classifying folder', 0, 'Listing images…', true);
  try {
    return await classifyFolder(params.folder, {
      outDir: params.outDir,
      model: info.name,
      signal,
      batchSize: engine.classifyBatchSize(),
      classifyBatch: files =>
        serialised(() => {
          // Another model may have been loaded between two batches: do not mix two models' answers.
          if (engine.info().spec !== info.spec)
            throw new Error(
              `the model changed to ${engine.info().name} while classifying ${params.folder}; run Classify Folder again`,
            );
          return engine.classify(files, topK, signal);
        }),
      onProgress: (done, total) =>
        progress.report(total ? Math.floor((done / total) * 100) : 0, `${done} / ${total} images`),
    });
  } finally {
    progress.done();
  }
});

// Like classifyFolder: each feature batch takes its own turn on the model queue. The heads and the
// neighbour pass then run here for a few seconds (10,000 images) without the model.
onRequest(AuditRequest, AuditParamsSchema, async (params, signal, progress) => {
  const info = engine.info();
  progress.begin('Auditing dataset', 0, 'Listing images…', true);
  try {
    return await auditDataset(engine, params.folder, {
      outDir: params.outDir,
      folds: params.folds,
      seed: params.seed,
      similarity: params.similarity,
      cacheDir: engineOptions.cacheDir,
      signal,
      runModel: work =>
        serialised(() => {
          if (engine.info().spec !== info.spec)
            throw new Error(
              `the model changed to ${engine.info().name} while auditing ${params.folder}; run the audit again`,
            );
          return work();
        }),
      onProgress: p => progress.report(Math.floor(p.fraction * 100), p.message),
    });
  } finally {
    progress.done();
  }
});

// Not on the model queue: a scan reads files only, and must not wait behind a long classify.
onRequest(ScanDatasetRequest, ScanDatasetParamsSchema, async (params, signal, progress) => {
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
onRequest(ReadScalarsRequest, ReadScalarsParamsSchema, params => scalarsReaders.read(params));

onRequest(StatusRequest, StatusParamsSchema, async () => status());

const status = (): StatusResult => ({
  state,
  model: engine.isLoaded ? engine.info() : undefined,
  lastError,
  pid: process.pid,
  rssBytes: process.memoryUsage().rss,
  versions: {
    node: process.versions.node,
    onnxruntime: ort.env.versions.node ?? ort.env.versions.common,
    sharp: sharp.versions.sharp ?? '',
  },
  cudaProviderInstalled: cudaProviderInstalled(),
});

connection.onShutdown(() => {
  shutdownRequested = true;
  return engine.dispose();
});

/** A frame that cannot be parsed (bad header, body that is not JSON) leaves the stream out of step: stop, saying why. */
reader.onError(e => {
  const reason = `corrupt message from the client (${shortenLongRuns(e instanceof Error ? e.message : String(e))}); the worker stops and the client may start a new one`;
  process.stderr.write(`vit-lens worker: ${reason}\n`);
  void engine.dispose().finally(() => process.exit(1));
});
// The client closed the stream (stdio): the session is over, cleanly only after a shutdown request.
reader.onClose(() => void engine.dispose().finally(() => process.exit(shutdownRequested ? 0 : 1)));

// A bug in one request must not take the model (and the user's session) down with it.
process.on('uncaughtException', e => connection.console.error(`uncaught: ${e.stack ?? e}`));
process.on('unhandledRejection', e =>
  connection.console.error(`unhandled rejection: ${e instanceof Error ? e.stack : e}`),
);

connection.listen();
