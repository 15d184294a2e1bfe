/**
 * Class-specific relevance (Chefer, Gur & Wolf 2021, "Generic Attention-model Explainability for
 * Interpreting Bi-Modal and Encoder-Decoder Transformers", ICCV): why the model says class c.
 *
 *   R = I;  for each block in forward order:  R = R + Ā_l · R,   Ā_l = mean_h (∂y_c/∂A_l ⊙ A_l)⁺
 *   map = R's [CLS] row without the [CLS] column, on the patch grid, divided by its max.
 *
 * Ā_l comes from ONNX Runtime (server/model/relevanceGraph.ts: forward + hand-written backward, the
 * negatives clamped per head before the head mean). Only R's [CLS] row is needed, and
 * R_L = (I + Ā_L)…(I + Ā_1), so its row 0 is a vector carried from the last layer down:
 * v ← v + v·Ā_l (T² per layer instead of T³).
 */
import * as ort from 'onnxruntime-node';
import { loadOnnxWeights } from '../formats/onnxWeights';
import {
  buildRelevanceOnnx,
  relevanceOutputName,
  RELEVANCE_INPUT,
  RELEVANCE_LOGITS,
  RELEVANCE_TARGET,
  RELEVANCE_TARGET_USED,
} from '../model/relevanceGraph';
import type { ViTArch } from '../model/vitConfig';
import { AttentionMap, patchMap, TokenLayout } from './rollout';

/** R's [CLS] row after all layers, from each layer's Ā ([T, T] row-major, layers in forward order). */
export function relevanceClsRow(layers: Float32Array[], tokens: number): Float64Array {
  const T = tokens;
  let v = new Float64Array(T);
  v[0] = 1;
  for (let l = layers.length - 1; l >= 0; l--) {
    const a = layers[l];
    if (a.length !== T * T) throw new Error(`relevance layer ${l} has ${a.length} entries, expected ${T}×${T}`);
    const next = Float64Array.from(v);
    for (let i = 0; i < T; i++) {
      const w = v[i];
      if (w === 0) continue;
      const row = i * T;
      for (let j = 0; j < T; j++) next[j] += w * a[row + j];
    }
    v = next;
  }
  return v;
}

export function relevanceMap(layers: Float32Array[], layout: TokenLayout, tokens: number): AttentionMap {
  return patchMap(relevanceClsRow(layers, tokens), layout, tokens);
}

export interface RelevanceRun {
  logits: Float32Array;
  /** The class the gradient was taken for. */
  classIndex: number;
  /** Ā per layer, [T, T]. */
  layers: Float32Array[];
  tokens: number;
}

/** The relevance graph of one model on its own ONNX Runtime session, built on first use (weights read back from the model's ONNX file). */
export class RelevanceSession {
  private constructor(
    private readonly session: ort.InferenceSession,
    readonly arch: ViTArch,
  ) {}

  /** `onnxFile` is our builder's graph or a torch.onnx export whose weights onnxWeights.ts recovers. */
  static async create(onnxFile: string, opts: { cuda?: boolean; threads?: number }): Promise<RelevanceSession> {
    const { arch, weights } = await loadOnnxWeights(onnxFile);
    const bytes = buildRelevanceOnnx(arch, weights);
    const session = await ort.InferenceSession.create(bytes, {
      graphOptimizationLevel: 'all',
      intraOpNumThreads: opts.threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      executionProviders: opts.cuda ? ['cuda', 'cpu'] : ['cpu'],
    });
    return new RelevanceSession(session, arch);
  }

  /** One image's Ā per layer for class `classIndex` (−1: the top-1 prediction). */
  async run(pixels: Float32Array, classIndex: number): Promise<RelevanceRun> {
    const [h, w] = this.arch.imageSize;
    const L = this.arch.numLayers;
    const names = [
      RELEVANCE_LOGITS,
      RELEVANCE_TARGET_USED,
      ...Array.from({ length: L }, (_, i) => relevanceOutputName(i)),
    ];
    const out = await this.session.run(
      {
        [RELEVANCE_INPUT]: new ort.Tensor('float32', pixels, [1, this.arch.numChannels, h, w]),
        [RELEVANCE_TARGET]: new ort.Tensor('int64', BigInt64Array.from([BigInt(classIndex)]), [1]),
      },
      names,
    );
    const layers = names.slice(2).map(n => out[n].data as Float32Array);
    return {
      logits: out[RELEVANCE_LOGITS].data as Float32Array,
      classIndex: Number((out[RELEVANCE_TARGET_USED].data as BigInt64Array)[0]),
      layers,
      tokens: Math.round(Math.sqrt(layers[0].length)),
    };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
