/**
 * The one contract between the extension and the worker (JSON-RPC over vscode-jsonrpc, as a
 * language-server-style connection). Every request lives in the `vitLens/` namespace.
 *
 * Long requests (loadModel, classify, explain) accept a `workDoneToken` and report progress with
 * the LSP `$/progress` notifications; all requests honour `$/cancelRequest`.
 *
 * Pure TypeScript (common/): on the wire a request type is just its method name, so a request here
 * is a method name that carries its parameter and result types, and neither side's copy of
 * vscode-jsonrpc enters this file. The worker checks every request's params against the valibot
 * schemas in server/requestSchemas.ts (typed against the interfaces here) before acting on them.
 */
import type { ColormapName, Dtype, ExplainMethod, HeadFusion, Provider, ProviderPreference } from './options';

export type { ColormapName, Dtype, ExplainMethod, HeadFusion, ProviderPreference } from './options';

/** Longest path accepted (Linux's PATH_MAX, in characters): longer ones cannot name a file anyway. */
export const MAX_PATH_CHARS = 4096;
/** Most images one classify request may name (Classify Folder sends batches, not a list). */
export const MAX_IMAGES_PER_REQUEST = 10_000;

/** Mirrors LSP's WorkDoneProgressParams without depending on the LSP types. */
export interface WithProgress {
  workDoneToken?: string | number;
}

export interface Prediction {
  label: string;
  index: number;
  /** Softmax probability. */
  score: number;
}

/** The image preprocessing a model uses (from its preprocessor_config.json, or Hugging Face ViT defaults). */
export interface PreprocessInfo {
  /** Model input [height, width]. */
  size: [number, number];
  /** PIL filter code (2 = bilinear). */
  resample: number;
  doResize: boolean;
  doRescale: boolean;
  rescaleFactor: number;
  doNormalize: boolean;
  mean: [number, number, number];
  std: [number, number, number];
}

export interface ModelInfo {
  name: string;
  spec: string;
  kind: 'onnx' | 'hf-folder' | 'npz' | 'hub';
  provider: Provider;
  /** What it runs on: the WebGPU adapter ("NVIDIA H100 (Vulkan)"), the CUDA device or the CPU model. */
  device: string;
  /** Why it is not on the provider that was asked for, how `auto` chose, or why it left the GPU mid-session. */
  providerNote?: string;
  /** Weight precision: fp32, fp16 (for GPUs) or q8 (int8 weights, dynamically quantized activations). */
  dtype: Dtype;
  /** Images per classification run on this provider: 8 on the CPU, sized to the model's activations on a GPU. */
  batchSize?: number;
  numClasses: number;
  labels: string[];
  labelsFrom: string;
  imageSize: [number, number];
  patchSize?: number;
  numLayers: number;
  numHeads?: number;
  architecture?: {
    hiddenSize: number;
    numLayers: number;
    numHeads: number;
    mlpSize: number;
    patchSize: number;
    layerNormEps: number;
    qkvBias: boolean;
    preLogitsSize?: number;
  };
  preprocess: PreprocessInfo;
  explainAvailable: boolean;
  explainUnavailableReason?: string;
  /** Where our exporter's ONNX build of the weights is cached. */
  builtFile?: string;
}

/** The worker's `initializationOptions` (LSP initialize). */
export interface WorkerInitOptions {
  provider?: ProviderPreference;
  /** CPU threads for ONNX Runtime; default: all cores. */
  threads?: number;
  /** Hub downloads and built graphs; default: $VIT_LENS_CACHE, else ~/.cache/vit-lens. */
  cacheDir?: string;
  offline?: boolean;
}

export interface LoadModelParams extends WithProgress {
  /** .onnx file, Hugging Face folder, Google .npz, or hub id org/name[@revision]. */
  model: string;
  labelsFile?: string;
  provider?: ProviderPreference;
  dtype?: Dtype;
}

export interface ClassifyParams extends WithProgress {
  images: string[];
  topK?: number;
}

/** An image's distance to the model's training sample, the threshold 99% of training images stay under, and whether it is above. */
export interface TrainingDataNote {
  distance: number;
  threshold: number;
  unlike: boolean;
}

export interface ClassifyResult {
  /** trainingData: see ClassifiedImage (server/engine.ts); only for models that carry a training sample. */
  results: { image: string; predictions: Prediction[]; logits: number[]; trainingData?: TrainingDataNote }[];
  /** Images that could not be classified, each with a message naming the file and the problem. */
  failures: { image: string; error: string }[];
}

export interface ExplainParams extends WithProgress {
  image: string;
  /** Default: rollout, or attention when `layer` is given. */
  method?: ExplainMethod;
  /** Relevance only: the class to explain, by index or label (default: the top-1 prediction). */
  class?: number | string;
  headFusion?: HeadFusion;
  discardRatio?: number;
  /** Raw attention of this layer instead of rollout (method attention without a layer: the last). */
  layer?: number;
  /** Head of `layer`; heads fused with `headFusion` when omitted. */
  head?: number;
  topK?: number;
  /** Also render the overlay PNG at the image's own size. */
  overlay?: { colormap: ColormapName; opacity: number };
}

export interface ExplainResult {
  image: string;
  width: number;
  height: number;
  predictions: Prediction[];
  method: ExplainMethod;
  /** Relevance: the class explained. */
  class?: { index: number; label: string };
  layer?: number;
  head?: number | HeadFusion;
  map: { grid: [number, number]; values: number[] };
  /** Base64 PNG, when an overlay was asked for. */
  overlayPng?: string;
}

export interface StatusResult {
  state: 'idle' | 'loading' | 'ready';
  model?: ModelInfo;
  /** Present when the last load failed; the previous model (if any) stays loaded. */
  lastError?: string;
  pid: number;
  rssBytes: number;
  versions: { node: string; onnxruntime: string; sharp: string };
  cudaProviderInstalled: boolean;
}

// ---- Training UI (issue 5): dataset scan, TensorBoard scalars, classify a folder ----

/** The run directory format (README, "Run directory format"), re-exported as types for the extension and other readers. */
export type {
  RunInfo,
  RunStatus,
  TrainConfig,
  StepMetrics,
  EpochMetrics,
  RunReport,
  HeldOutPrediction,
} from './runFolder';

export interface ScanDatasetParams extends WithProgress {
  folder: string;
  /** Check that every image decodes (sharp reads the header); off: only list files. */
  checkImages?: boolean;
  valSplit?: number;
  seed?: number;
}

export interface ScanDatasetResult {
  root: string;
  layout: 'class-folders' | 'train-val-folders';
  /** Sorted by name, as the trainer numbers them. */
  classes: { name: string; train: number; val: number }[];
  images: number;
  /** Files and folders that will be skipped, each with the reason (unreadable image, not an image, symlink loop …). */
  skipped: { file: string; reason: string }[];
  warnings: string[];
  /** Largest class size / smallest non-empty class size. */
  imbalance: number;
}

export interface ScalarPoint {
  step: number;
  value: number;
  /** Seconds since the epoch, as TensorBoard stores it. */
  wallTime: number;
}

export interface ReadScalarsParams {
  folder: string;
  /** From the previous answer for the same folder; omitted: read everything from the start. */
  cursor?: string;
}

export interface ReadScalarsResult {
  /** Pass back next time to get only newer points. */
  cursor: string;
  /** True when the worker no longer had the reader state for `cursor` (e.g. it restarted): `scalars` starts over. */
  reset: boolean;
  /** New points by run (event file folder relative to `folder`, '.' for the folder itself) and tag. */
  scalars: { run: string; tag: string; points: ScalarPoint[] }[];
  /** New problems (a corrupt record, an unreadable file), each naming the file. */
  problems: string[];
}

export interface ClassifyFolderParams extends WithProgress {
  folder: string;
  /** Where predictions.csv and predictions.json go; default: `folder`. */
  outDir?: string;
  topK?: number;
}

export interface FolderPrediction {
  /** Path relative to the folder, '/' separators. */
  file: string;
  /** The class folder the image sits in (ImageFolder layout), when there is one. */
  folderLabel?: string;
  predicted: string;
  confidence: number;
  /** folderLabel === predicted; undefined without a folder label. */
  agrees?: boolean;
  top: Prediction[];
}

export interface ClassifyFolderResult {
  folder: string;
  model: string;
  predictions: FolderPrediction[];
  failures: { file: string; error: string }[];
  csvFile: string;
  jsonFile: string;
  /** True when cancelled part way: the files hold what was done so far. */
  partial: boolean;
  /** Images found in the folder; predictions + failures is less when partial. */
  total: number;
  /** ISO 8601, when the run finished (or was cancelled). */
  createdAt: string;
}

export interface AuditParams extends WithProgress {
  /** A class-folder dataset. */
  folder: string;
  /** Where audit.json goes; default: `folder`/.vit-lens. */
  outDir?: string;
  folds?: number;
  seed?: number;
  /** Thumbnail correlation at or above which images are near-duplicates. */
  similarity?: number;
}

export type AuditKind = 'labelIssue' | 'duplicate' | 'outlier';

export interface AuditDecision {
  kind: AuditKind;
  /** The item's files (one for label issues and outliers), relative with '/'. */
  files: string[];
  action: 'ignore' | 'move' | 'delete';
  /** For moves: where the file went, relative with '/'. */
  to?: string;
  at: string;
}

/** What vitLens/audit answers and audit.json holds (server/audit/audit.ts). */
export interface AuditReport {
  version: number;
  dataset: string;
  model: string;
  images: number;
  classes: string[];
  folds: number;
  seed: number;
  similarityThreshold: number;
  labelIssues: { file: string; label: string; suggested: string; score: number }[];
  duplicates: { files: string[]; similarity: number; conflicting: boolean; exact: boolean; labels: string[] }[];
  outliers: { file: string; score: number }[];
  skipped: { file: string; reason: string }[];
  decisions: AuditDecision[];
  /** Seconds per stage, and how many images had their features computed (not read from the cache). */
  timings: { features: number; crossValidation: number; neighbours: number; computed: number };
  file: string;
}

export type AuditResult = AuditReport;

/** A worker request: its method name, with the parameter and result types attached for the compiler. */
export interface WorkerRequest<P, R> {
  readonly method: string;
  /** Never set; only carries the types. */
  readonly _types?: (p: P) => R;
}

export const LoadModelRequest: WorkerRequest<LoadModelParams, ModelInfo> = { method: 'vitLens/loadModel' };
export const ClassifyRequest: WorkerRequest<ClassifyParams, ClassifyResult> = { method: 'vitLens/classify' };
export const ExplainRequest: WorkerRequest<ExplainParams, ExplainResult> = { method: 'vitLens/explain' };
/** Takes no parameters: nothing, null or an object (whose fields are ignored). */
export const StatusRequest: WorkerRequest<Record<string, never> | null | undefined, StatusResult> = {
  method: 'vitLens/status',
};
export const ScanDatasetRequest: WorkerRequest<ScanDatasetParams, ScanDatasetResult> = {
  method: 'vitLens/scanDataset',
};
export const ReadScalarsRequest: WorkerRequest<ReadScalarsParams, ReadScalarsResult> = {
  method: 'vitLens/readScalars',
};
export const ClassifyFolderRequest: WorkerRequest<ClassifyFolderParams, ClassifyFolderResult> = {
  method: 'vitLens/classifyFolder',
};
export const AuditRequest: WorkerRequest<AuditParams, AuditResult> = { method: 'vitLens/audit' };

/** A worker → client notification: its method name, with the parameter type attached for the compiler. */
export interface WorkerNotification<P> {
  readonly method: string;
  /** Never set; only carries the type. */
  readonly _types?: (p: P) => void;
}

/** Worker → client: the GPU failed during a run and the model now runs on the CPU (info.providerNote says why). */
export const ProviderFallbackNotification: WorkerNotification<ModelInfo> = { method: 'vitLens/providerFallback' };

/** Error codes in JSON-RPC error responses, beyond the standard ones. */
export const ErrorCodes = {
  /** JSON-RPC's own: the request's params do not match its schema; the message names the field. */
  InvalidParams: -32602,
  /** The request's input (image, model file, parameters) is bad; the message names the file and the problem. */
  BadInput: -32001,
  /** A request that needs a model arrived before any model was loaded. */
  NoModel: -32002,
} as const;
