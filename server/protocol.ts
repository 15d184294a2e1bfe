/**
 * The one contract between the extension and the worker (JSON-RPC over vscode-jsonrpc, as a
 * language-server-style connection). Every request lives in the `vitLens/` namespace.
 *
 * Long requests (loadModel, classify, explain) accept a `workDoneToken` and report progress with
 * the LSP `$/progress` notifications; all requests honour `$/cancelRequest`.
 */
import { RequestType } from 'vscode-jsonrpc';

export type ProviderPreference = 'auto' | 'cuda' | 'cpu';
export type HeadFusion = 'mean' | 'max' | 'min';
export type ColormapName = 'turbo' | 'viridis' | 'inferno' | 'magma' | 'plasma' | 'gray';

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
  provider: 'cuda' | 'cpu';
  providerNote?: string;
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

export interface LoadModelParams extends WithProgress {
  /** .onnx file, Hugging Face folder, Google .npz, or hub id org/name[@revision]. */
  model: string;
  labelsFile?: string;
  provider?: ProviderPreference;
}

export interface ClassifyParams extends WithProgress {
  images: string[];
  topK?: number;
}

export interface ClassifyResult {
  results: { image: string; predictions: Prediction[]; logits: number[] }[];
  /** Images that could not be classified, each with a message naming the file and the problem. */
  failures: { image: string; error: string }[];
}

export interface ExplainParams extends WithProgress {
  image: string;
  headFusion?: HeadFusion;
  discardRatio?: number;
  /** Raw attention of this layer instead of rollout. */
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
  method: 'rollout' | 'attention';
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

export const LoadModelRequest = new RequestType<LoadModelParams, ModelInfo, void>('vitLens/loadModel');
export const ClassifyRequest = new RequestType<ClassifyParams, ClassifyResult, void>('vitLens/classify');
export const ExplainRequest = new RequestType<ExplainParams, ExplainResult, void>('vitLens/explain');
export const StatusRequest = new RequestType<Record<string, never>, StatusResult, void>('vitLens/status');

/** Error codes in JSON-RPC error responses, beyond the standard ones. */
export const ErrorCodes = {
  /** The request's input (image, model file, parameters) is bad; the message names the file and the problem. */
  BadInput: -32001,
  /** A request that needs a model arrived before any model was loaded. */
  NoModel: -32002,
} as const;
