import { RequestType } from 'vscode-jsonrpc';
import type { WorkerRequest } from '../../common/workerRequests';

/** A worker request as a typed vscode-jsonrpc RequestType, as the worker registers it (server/worker.ts). */
export const requestType = <P, R>(request: WorkerRequest<P, R>): RequestType<P, R, void> =>
  new RequestType<P, R, void>(request.method);
