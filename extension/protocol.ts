/**
 * The worker's requests as vscode-languageclient request types.
 *
 * The shapes come from server/protocol.ts (the one contract, shared with the worker). Its
 * RequestType objects are built with vscode-jsonrpc 9 while vscode-languageclient 11 uses
 * vscode-jsonrpc 10; at run time a request type is just its method name, so we re-declare the
 * four types here with the client's own RequestType and import only the *types* from the server.
 * Importing types only also keeps the engine (and onnxruntime) out of the extension bundle.
 */
import { RequestType } from 'vscode-languageclient/node';
import type {
  ClassifyParams,
  ClassifyResult,
  ExplainParams,
  ExplainResult,
  LoadModelParams,
  ModelInfo,
  StatusResult,
} from '../server/protocol';

export type {
  ClassifyParams,
  ClassifyResult,
  ColormapName,
  ExplainParams,
  ExplainResult,
  HeadFusion,
  LoadModelParams,
  ModelInfo,
  Prediction,
  ProviderPreference,
  StatusResult,
} from '../server/protocol';

export const LoadModelRequest = new RequestType<LoadModelParams, ModelInfo, void>('vitLens/loadModel');
export const ClassifyRequest = new RequestType<ClassifyParams, ClassifyResult, void>('vitLens/classify');
export const ExplainRequest = new RequestType<ExplainParams, ExplainResult, void>('vitLens/explain');
export const StatusRequest = new RequestType<Record<string, never>, StatusResult, void>('vitLens/status');

/** Mirrors server/protocol.ts ErrorCodes. */
export const WorkerErrorCodes = { BadInput: -32001, NoModel: -32002 } as const;
