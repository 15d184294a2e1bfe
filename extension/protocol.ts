/**
 * The worker's requests, typed for the extension.
 *
 * The shapes come from server/protocol.ts (the one contract, shared with the worker); only its
 * *types* are imported, so the engine never enters the extension bundle. Its RequestType objects
 * are built with vscode-jsonrpc 9 while vscode-languageclient 11 uses vscode-jsonrpc 10, and on the
 * wire a request type is just its method name, so here a request is a method name that carries its
 * parameter and result types. That also keeps vscode-languageclient out of activation: it is
 * loaded when the worker first starts (see workerClient.ts).
 */
import type {
  ClassifyParams,
  ClassifyResult,
  ExplainParams,
  ExplainResult,
  LoadModelParams,
  ModelInfo,
  StatusResult,
  ScanDatasetParams,
  ScanDatasetResult,
  ReadScalarsParams,
  ReadScalarsResult,
  ClassifyFolderParams,
  ClassifyFolderResult,
  AuditParams,
  AuditResult,
} from '../server/protocol';

export type {
  AuditParams,
  AuditResult,
  AuditDecision,
  AuditKind,
  ScanDatasetParams,
  ScanDatasetResult,
  ReadScalarsParams,
  ReadScalarsResult,
  ScalarPoint,
  ClassifyFolderParams,
  ClassifyFolderResult,
  FolderPrediction,
  RunInfo,
  RunStatus,
  TrainConfig,
  StepMetrics,
  EpochMetrics,
  RunReport,
  HeldOutPrediction,
  ClassifyParams,
  ClassifyResult,
  ColormapName,
  ExplainMethod,
  ExplainParams,
  ExplainResult,
  HeadFusion,
  LoadModelParams,
  ModelInfo,
  Prediction,
  ProviderPreference,
  StatusResult,
} from '../server/protocol';

/** A worker request: its method name, with the parameter and result types attached for the compiler. */
export interface WorkerRequest<P, R> {
  readonly method: string;
  /** Never set; only carries the types. */
  readonly _types?: (p: P) => R;
}

export const LoadModelRequest: WorkerRequest<LoadModelParams, ModelInfo> = { method: 'vitLens/loadModel' };
export const ClassifyRequest: WorkerRequest<ClassifyParams, ClassifyResult> = { method: 'vitLens/classify' };
export const ExplainRequest: WorkerRequest<ExplainParams, ExplainResult> = { method: 'vitLens/explain' };
export const StatusRequest: WorkerRequest<Record<string, never>, StatusResult> = { method: 'vitLens/status' };
/** Worker → client, with the model's new info: the GPU failed mid-session and the model moved to the CPU. */
export const PROVIDER_FALLBACK_NOTIFICATION = 'vitLens/providerFallback';
export const ScanDatasetRequest: WorkerRequest<ScanDatasetParams, ScanDatasetResult> = { method: 'vitLens/scanDataset' };
export const ReadScalarsRequest: WorkerRequest<ReadScalarsParams, ReadScalarsResult> = { method: 'vitLens/readScalars' };
export const ClassifyFolderRequest: WorkerRequest<ClassifyFolderParams, ClassifyFolderResult> = { method: 'vitLens/classifyFolder' };
export const AuditRequest: WorkerRequest<AuditParams, AuditResult> = { method: 'vitLens/audit' };
