/**
 * The schema of every worker request's params (and of `initializationOptions`), checked before the
 * worker acts on them: a client is another process and may send anything. A mismatch is answered
 * with InvalidParams naming the field. Each annotation makes TypeScript check its schema against
 * the request's type in common/workerRequests.ts, so a field added there cannot skip the check.
 * They live with the worker, not in common/, so that valibot stays out of the extension bundle.
 */
import * as v from 'valibot';
import { COLORMAPS, DTYPES, EXPLAIN_METHODS, HEAD_FUSIONS, PROVIDER_PREFERENCES } from '../common/options';
import {
  MAX_IMAGES_PER_REQUEST,
  MAX_PATH_CHARS,
  type AuditParams,
  type ClassifyFolderParams,
  type ClassifyParams,
  type ExplainParams,
  type LoadModelParams,
  type ReadScalarsParams,
  type ScanDatasetParams,
  type WorkerInitOptions,
} from '../common/workerRequests';
import { bool, fields, int, list, num, obj, oneOf, text } from './util/validate';

const path = (what = 'a file path') => text(what, MAX_PATH_CHARS);
const topK = () => int(1, 1000);
const withProgress = { workDoneToken: v.optional(v.union([v.string(), v.number()], 'must be a string or a number')) };

export const WorkerInitOptionsSchema: v.GenericSchema<unknown, WorkerInitOptions> = obj(
  fields<WorkerInitOptions>()({
    provider: v.optional(oneOf(PROVIDER_PREFERENCES)),
    threads: v.optional(int(1, 1024)),
    cacheDir: v.optional(path('a folder path')),
    offline: v.optional(bool()),
  }),
);

export const LoadModelParamsSchema: v.GenericSchema<unknown, LoadModelParams> = obj(
  fields<LoadModelParams>()({
    ...withProgress,
    model: path('a model path or hub id'),
    labelsFile: v.optional(path()),
    provider: v.optional(oneOf(PROVIDER_PREFERENCES)),
    dtype: v.optional(oneOf(DTYPES)),
  }),
);

export const ClassifyParamsSchema: v.GenericSchema<unknown, ClassifyParams> = obj(
  fields<ClassifyParams>()({
    ...withProgress,
    images: list(path('an image file path'), MAX_IMAGES_PER_REQUEST),
    topK: v.optional(topK()),
  }),
);

export const ExplainParamsSchema: v.GenericSchema<unknown, ExplainParams> = obj(
  fields<ExplainParams>()({
    ...withProgress,
    image: path('an image file path'),
    method: v.optional(oneOf(EXPLAIN_METHODS)),
    class: v.optional(v.union([int(0), text('a class label', 1000)], 'must be a class index or a label')),
    headFusion: v.optional(oneOf(HEAD_FUSIONS)),
    discardRatio: v.optional(num(0, 1, true)),
    layer: v.optional(int(0)),
    head: v.optional(int(0)),
    topK: v.optional(topK()),
    overlay: v.optional(obj({ colormap: oneOf(COLORMAPS), opacity: num(0, 1) })),
  }),
);

export const ScanDatasetParamsSchema: v.GenericSchema<unknown, ScanDatasetParams> = obj(
  fields<ScanDatasetParams>()({
    ...withProgress,
    folder: path('a folder path'),
    checkImages: v.optional(bool()),
    valSplit: v.optional(num(0, 0.9)),
    seed: v.optional(int(0, 2 ** 32 - 1)),
  }),
);

export const ReadScalarsParamsSchema: v.GenericSchema<unknown, ReadScalarsParams> = obj(
  fields<ReadScalarsParams>()({
    folder: path('a folder path'),
    cursor: v.optional(text('a cursor from an earlier answer', 100)),
  }),
);

export const ClassifyFolderParamsSchema: v.GenericSchema<unknown, ClassifyFolderParams> = obj(
  fields<ClassifyFolderParams>()({
    ...withProgress,
    folder: path('a folder path'),
    outDir: v.optional(path('a folder path')),
    topK: v.optional(topK()),
  }),
);

export const AuditParamsSchema: v.GenericSchema<unknown, AuditParams> = obj(
  fields<AuditParams>()({
    ...withProgress,
    folder: path('a folder path'),
    outDir: v.optional(path('a folder path')),
    folds: v.optional(int(2, 100)),
    seed: v.optional(int(0)),
    similarity: v.optional(num(0, 1)),
  }),
);

/** Status takes no parameters: nothing, null or an object (whose fields are ignored). */
export const StatusParamsSchema: v.GenericSchema<unknown, Record<string, never> | null | undefined> = v.nullish(
  obj({}),
);
