/**
 * Messages between the results panel (webview) and the extension, and the panel's state.
 *
 * Shared by both sides and free of `vscode` imports so the webview bundle can use it too. The
 * extension treats everything the webview sends as untrusted input: `parseWebviewMessage` checks
 * every field before anything acts on it (a compromised or buggy webview must not be able to make
 * the worker read arbitrary files, or pass junk parameters through).
 */
import {
  COLORMAPS,
  EXPLAIN_METHODS,
  HEAD_FUSIONS,
  type ColormapName,
  type ExplainMethod,
  type HeadFusion,
  type Provider,
} from '../options';
import type { Prediction } from '../workerRequests';

export type Method = ExplainMethod;

/** Everything the user can set in the panel. */
export interface Controls {
  method: Method;
  /** Relevance: the class to explain (an index into the model's labels), or null for the top-1 prediction. */
  classIndex: number | null;
  headFusion: HeadFusion;
  /** Rollout: fraction of the lowest fused attentions zeroed, in [0, 1). */
  discardRatio: number;
  /** Raw attention: layer index. */
  layer: number;
  /** Raw attention: head index, or null for all heads fused with `headFusion`. */
  head: number | null;
  /** Heatmap opacity in [0, 1]; drawn in the webview, no worker round trip. */
  opacity: number;
  colormap: ColormapName;
}

export interface ImageRow {
  /** Absolute file path (extension side only uses it; the webview shows `name`). */
  path: string;
  name: string;
  /** The image as a webview resource URI. */
  src: string;
  predictions?: Prediction[];
  /** From classify, for models that carry a training sample: the image is unlike their training data. */
  unlikeTraining?: { distance: number; threshold: number };
  error?: string;
}

export interface ModelSummary {
  name: string;
  provider: Provider;
  numLayers: number;
  numHeads: number;
  explainAvailable: boolean;
  explainUnavailableReason?: string;
  /** The built-in Fashion-MNIST demo: the panel says so when an image is unlike its 28×28 grey training images. */
  demo?: boolean;
}

/** A saved ModelSummary (webview state, untrusted), kept only when well-formed. */
export function parseModelSummary(v: unknown): ModelSummary | undefined {
  const m = v as Partial<ModelSummary> | undefined;
  if (typeof m !== 'object' || m === null || typeof m.name !== 'string' || !m.name || m.name.length > 200)
    return undefined;
  if (m.provider !== 'webgpu' && m.provider !== 'cuda' && m.provider !== 'cpu') return undefined;
  const count = (n: unknown) => Number.isInteger(n) && (n as number) > 0 && (n as number) <= 10_000;
  if (!count(m.numLayers) || !count(m.numHeads) || typeof m.explainAvailable !== 'boolean') return undefined;
  return {
    name: m.name,
    provider: m.provider,
    numLayers: m.numLayers as number,
    numHeads: m.numHeads as number,
    explainAvailable: m.explainAvailable,
    ...(typeof m.explainUnavailableReason === 'string' ? { explainUnavailableReason: m.explainUnavailableReason } : {}),
    ...(m.demo === true ? { demo: true } : {}),
  };
}

/** One attention map for the selected image, ready to draw. */
export interface MapView {
  image: string;
  width: number;
  height: number;
  method: Method;
  grid: [number, number];
  /** Row-major, max = 1. */
  values: number[];
  /** Relevance: the class the map explains. */
  class?: { index: number; label: string };
  /** The controls that produced this map (the heatmap shows what was asked, not what is pending). */
  label: string;
}

export interface PanelState {
  version: 1;
  mode: 'classify' | 'explain';
  model?: ModelSummary;
  rows: ImageRow[];
  /** Index into rows of the image whose attention is shown. */
  selected: number;
  controls: Controls;
  map?: MapView;
  /** Shown instead of the map when explaining failed or is unavailable. */
  mapError?: string;
  /** A short "what is running" text while the worker works; absent when idle. */
  busy?: string;
}

/** Extension → webview. */
export type HostMessage = { type: 'state'; state: PanelState };

/** Webview → extension. */
export type WebviewMessage =
  | { type: 'ready' }
  | { type: 'select'; index: number }
  /** `reexplain`: the change needs a new map from the worker (method, fusion, ratio, layer, head). */
  | { type: 'setControls'; controls: Controls; reexplain: boolean }
  | { type: 'copyJson' }
  | { type: 'saveOverlay' };

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isInt = (v: unknown, min: number, max: number): v is number =>
  Number.isInteger(v) && (v as number) >= min && (v as number) <= max;
const isNumber = (v: unknown, min: number, max: number): v is number =>
  typeof v === 'number' && Number.isFinite(v) && v >= min && v <= max;

/** The controls if every field is well-formed, else undefined. Layer/head bounds are checked against the model by the caller. */
export function parseControls(v: unknown): Controls | undefined {
  if (!isObject(v)) return undefined;
  const { method, headFusion, discardRatio, layer, head, opacity, colormap } = v;
  // Absent in states saved before relevance existed: the top-1 class.
  const classIndex = v.classIndex ?? null;
  if (!EXPLAIN_METHODS.includes(method as Method)) return undefined;
  if (classIndex !== null && !isInt(classIndex, 0, 1_000_000)) return undefined;
  if (!HEAD_FUSIONS.includes(headFusion as HeadFusion)) return undefined;
  if (!isNumber(discardRatio, 0, 0.99)) return undefined;
  if (!isInt(layer, 0, 1023)) return undefined;
  if (head !== null && !isInt(head, 0, 1023)) return undefined;
  if (!isNumber(opacity, 0, 1)) return undefined;
  if (!COLORMAPS.includes(colormap as ColormapName)) return undefined;
  return {
    method: method as Method,
    classIndex,
    headFusion: headFusion as HeadFusion,
    discardRatio,
    layer,
    head: head as number | null,
    opacity,
    colormap: colormap as ColormapName,
  };
}

/** Validate a message from the webview; undefined means "ignore it". */
export function parseWebviewMessage(v: unknown, rowCount: number): WebviewMessage | undefined {
  if (!isObject(v)) return undefined;
  switch (v.type) {
    case 'ready':
    case 'copyJson':
    case 'saveOverlay':
      return { type: v.type };
    case 'select':
      return isInt(v.index, 0, rowCount - 1) ? { type: 'select', index: v.index } : undefined;
    case 'setControls': {
      const controls = parseControls(v.controls);
      return controls && typeof v.reexplain === 'boolean'
        ? { type: 'setControls', controls, reexplain: v.reexplain }
        : undefined;
    }
    default:
      return undefined;
  }
}
