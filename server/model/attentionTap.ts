/**
 * Makes the attention maps of an ONNX ViT that we did not build (torch.onnx export of torchvision's
 * VisionTransformer, Hugging Face optimum, timm) observable: ONNX Runtime only returns graph outputs,
 * so each attention Softmax's output is added as an extra graph output. Nothing else is changed.
 *
 * An attention Softmax is recognised by its neighbourhood, not by names (exporters name things
 * differently): its input comes from a MatMul of two activations (Q·Kᵀ), possibly through scaling or
 * masking, and its output feeds a MatMul (·V), possibly through Cast/Dropout/Identity. A Softmax over
 * logits fails both tests, because the classifier MatMul has a constant weight and nothing multiplies
 * its output.
 *
 * Shapes differ by exporter: torch 1.13's nn.MultiheadAttention computes attention with bmm over
 * [N*H, T, T] (rank 3); Hugging Face and timm keep [N, H, T, T] (rank 4). `numHeads` is inferred from the
 * graph when it can be; when it is undefined, derive it at run time from a rank-3 output as dim0 / N.
 */
import { onnx } from 'onnx-proto';
import { attr, dimsOf, OnnxGraph, toNumber } from '../formats/onnxGraph';
import { inlineExternalData } from '../formats/onnxTensors';

export interface TapInfo {
  inputName: string;
  /** Dims of the image input: numbers when static, the dim_param (or '?') when symbolic. */
  inputShape: (number | string)[];
  /** The image input's ONNX element type (1 = float32), when declared. */
  inputElemType?: number;
  /** The model's first original output, taken to be the logits. */
  logitsName: string;
  /** The attention Softmax outputs, in layer (topological) order; empty when none was found. */
  attentionOutputs: string[];
  /**
   * 4: [N, H, T, T]. 3: [N*H, T, T] (torch nn.MultiheadAttention), image-major (row n*H + h), so a
   * free reshape to [N, H, T, T]. 4 when the graph does not tell; the run-time dims are authoritative.
   */
  attentionRank: 3 | 4;
  /** Undefined when the graph does not tell; for rank 3 derive it at run time as dims[0] / N. */
  numHeads?: number;
  patchSize?: number;
  imageSize?: [number, number];
  /** Sequence length T ([CLS] + patches, + any other prefix tokens), from the position embeddings. */
  tokens?: number;
  /** Static class count of the logits, when the graph tells. */
  numClasses?: number;
  /** Why no attention outputs could be added (explain will not work; classification still does). */
  reason?: string;
}

type Node = onnx.INodeProto;

/**
 * @param modelDir the folder of the .onnx file, needed only when its weights are in external data
 *   files; they are then inlined, so the returned bytes load on their own.
 */
export function tapAttention(modelBytes: Uint8Array, modelDir?: string): { bytes: Uint8Array; info: TapInfo } {
  const model = onnx.ModelProto.decode(modelBytes);
  const graph = model.graph;
  if (!graph) throw new Error('ONNX model has no graph');
  const inlined = inlineExternalData(model, modelDir);
  const g = new OnnxGraph(graph);
  const a = new AttentionFinder(g);

  const input = g.imageInput();
  const logitsName = graph.output?.[0]?.name;
  if (!logitsName) throw new Error('ONNX model has no outputs');

  const attentions = g.nodes
    .filter(n => n.opType === 'Softmax' && !n.domain)
    .flatMap(softmax => {
      const scores = a.scoresMatMul(softmax.input?.[0] ?? '');
      return scores && a.feedsMatMul(softmax.output?.[0] ?? '') ? [{ softmax, scores }] : [];
    });

  const patch = a.patchEmbedding(input.name);
  const inputShape = dimsOf(input.type);
  const imageSize: [number, number] | undefined =
    typeof inputShape[2] === 'number' && typeof inputShape[3] === 'number' ? [inputShape[2], inputShape[3]] : undefined;
  const info: TapInfo = {
    inputName: input.name,
    inputShape,
    inputElemType: input.type?.tensorType?.elemType ?? undefined,
    logitsName,
    attentionOutputs: attentions.map(a => a.softmax.output![0]),
    attentionRank: 4,
    patchSize: patch?.size,
    imageSize,
    tokens: patch && imageSize ? a.tokenCount(patch, imageSize) : undefined,
    numClasses: a.classCount(logitsName),
  };

  if (attentions.length === 0) {
    info.reason = a.noAttentionReason();
    return { bytes: inlined ? encode(model) : modelBytes, info };
  }
  const first = attentions[0];
  info.attentionRank = a.attentionRank(first.softmax, first.scores) ?? 4;
  info.numHeads = a.numHeads(
    first.scores,
    info.attentionRank,
    patch?.channels,
    typeof inputShape[0] === 'number' ? inputShape[0] : undefined,
  );

  const existing = new Set((graph.output ?? []).map(o => o.name));
  for (const name of info.attentionOutputs) {
    // The shape is left unknown (ORT infers it); the element type must be right or ORT refuses the model.
    if (!existing.has(name)) graph.output!.push({ name, type: { tensorType: { elemType: g.elemType(name) } } });
  }
  return { bytes: encode(model), info };
}

/** Number of classes from the output's static last dim, or from the classifier weights producing it. */
export function outputClassCount(modelBytes: Uint8Array, outputName: string): number | undefined {
  const graph = onnx.ModelProto.decode(modelBytes).graph;
  return graph ? new AttentionFinder(new OnnxGraph(graph)).classCount(outputName) : undefined;
}

function encode(model: onnx.ModelProto): Uint8Array {
  return onnx.ModelProto.encode(model).finish();
}

/** Ops a Q·Kᵀ score tensor may pass through before its Softmax: scaling, masking, casts. */
const SCORE_PATH_OPS = new Set(['Mul', 'Div', 'Add', 'Sub', 'Where', 'Cast', 'Identity', 'Reshape']);
/** Ops between the Softmax and the ·V MatMul: casts, eval-mode dropout, head masks. */
const PROBS_PATH_OPS = new Set(['Cast', 'Identity', 'Dropout', 'Mul']);
/** Rank-preserving ops walked through when looking for the Transpose/Reshape that fixes Q's rank. */
const ELEMENTWISE_OPS = new Set(['Mul', 'Div', 'Add', 'Sub', 'Cast', 'Identity']);
const MATMUL_OPS = new Set(['MatMul', 'FusedMatMul']);

/** Where a ViT's attention is in a graph, and the facts around it (also used by formats/onnxWeights.ts). */
export class AttentionFinder {
  constructor(private readonly g: OnnxGraph) {}

  /** The MatMul of two activations that `name` comes from, within a few scaling/masking ops. */
  scoresMatMul(name: string, depth = 0): Node | undefined {
    const p = this.g.producerOf(name);
    if (!p || depth > 4) return undefined;
    const activations = (p.input ?? []).filter(i => i !== '' && !this.g.isFolded(i));
    if (MATMUL_OPS.has(p.opType ?? '')) return activations.length === 2 ? p : undefined;
    if (!SCORE_PATH_OPS.has(p.opType ?? '')) return undefined;
    for (const i of activations) {
      const found = this.scoresMatMul(i, depth + 1);
      if (found) return found;
    }
    return undefined;
  }

  /** Whether `name` (a Softmax output) is multiplied by another activation (V), within a few pass-through ops. */
  feedsMatMul(name: string, depth = 0): boolean {
    if (depth > 3) return false;
    return this.g.consumersOf(name).some(c => {
      if (MATMUL_OPS.has(c.opType ?? ''))
        return (c.input ?? []).some(i => i !== name && i !== '' && !this.g.isFolded(i));
      return PROBS_PATH_OPS.has(c.opType ?? '') && this.feedsMatMul(c.output?.[0] ?? '', depth + 1);
    });
  }

  /** 3 or 4 from declared shapes or from the Transpose/Reshape that shaped Q or Kᵀ; undefined if unclear. */
  attentionRank(softmax: Node, scores: Node): 3 | 4 | undefined {
    const asRank = (r: number | undefined) => (r === 3 || r === 4 ? r : undefined);
    const declared = asRank(this.declaredRank(softmax.output?.[0]) ?? this.declaredRank(softmax.input?.[0]));
    if (declared) return declared;
    for (const operand of (scores.input ?? []).slice(0, 2)) {
      let name = operand;
      for (let hop = 0; hop < 6; hop++) {
        const p = this.g.producerOf(name);
        if (!p) break;
        if (p.opType === 'Transpose') {
          const perm = attr(p, 'perm')?.ints;
          if (perm?.length) return asRank(perm.length);
        }
        if (p.opType === 'Reshape') {
          const shape = this.g.ints(p.input?.[1] ?? '');
          if (shape) return asRank(shape.length);
        }
        if (!ELEMENTWISE_OPS.has(p.opType ?? '')) break;
        name = (p.input ?? []).find(i => !this.g.isFolded(i)) ?? '';
      }
    }
    return undefined;
  }

  /**
   * Heads from the Reshape that split Q into heads: [.., H, dh] for rank 4 ([N, T, H, dh] in HF,
   * [N, T, 3, H, dh] in timm). torch's rank-3 split is [T, N*H, dh]: when exported with a dynamic batch
   * its shape is computed at run time as Concat(T, N * H, D / H), and H is the constant in that Mul/Div.
   * Failing those, D / dh with D from the patch embedding's channels.
   */
  numHeads(
    scores: Node,
    rank: 3 | 4,
    hiddenSize: number | undefined,
    staticBatch: number | undefined,
  ): number | undefined {
    const shapeName = this.headSplitShapeName(scores.input?.[0] ?? '');
    if (!shapeName) return undefined;
    const shape = this.knownShapeSuffix(shapeName) ?? [];
    const beforeLast = shape[shape.length - 2];
    const headDim = shape[shape.length - 1];
    if (rank === 4 && beforeLast && beforeLast > 0) return beforeLast;
    if (rank === 3) {
      const pieces =
        this.g.producerOf(shapeName)?.opType === 'Concat' ? (this.g.producerOf(shapeName)!.input ?? []) : [];
      const fromPieces =
        pieces.length === 3
          ? (this.constantOperand(pieces[1], 'Mul') ?? this.constantOperand(pieces[2], 'Div'))
          : undefined;
      if (fromPieces && fromPieces > 0) return fromPieces;
      if (staticBatch && beforeLast && beforeLast > 0 && beforeLast % staticBatch === 0)
        return beforeLast / staticBatch;
    }
    if (hiddenSize && headDim && headDim > 0 && hiddenSize % headDim === 0) return hiddenSize / headDim;
    return undefined;
  }

  /** The patch-embedding Conv (kernel == stride) applied to the image input, possibly after normalisation ops. */
  patchEmbedding(inputName: string): { size: number; channels?: number } | undefined {
    let frontier = [inputName];
    for (let hop = 0; hop < 4 && frontier.length > 0; hop++) {
      const next: string[] = [];
      for (const name of frontier) {
        for (const c of this.g.consumersOf(name)) {
          if (c.opType === 'Conv' && c.input?.[0] === name) {
            const weightDims = this.g.initializer(c.input?.[1] ?? '')?.dims?.map(toNumber);
            const kernel = attr(c, 'kernel_shape')?.ints?.map(toNumber) ?? weightDims?.slice(2);
            const strides = attr(c, 'strides')?.ints?.map(toNumber);
            if (
              kernel?.length === 2 &&
              kernel[0] === kernel[1] &&
              strides?.every((s, i) => s === kernel[i]) &&
              kernel[0] > 1
            ) {
              return { size: kernel[0], channels: weightDims?.[0] };
            }
          } else if (ELEMENTWISE_OPS.has(c.opType ?? '')) {
            next.push(...(c.output ?? []));
          }
        }
      }
      frontier = next;
    }
    return undefined;
  }

  /** T from the position embeddings ([1, T, D], T just above the patch count); undefined if not found. */
  tokenCount(patch: { size: number; channels?: number }, imageSize: [number, number]): number | undefined {
    const grid = Math.floor(imageSize[0] / patch.size) * Math.floor(imageSize[1] / patch.size);
    for (const t of this.g.allInitializers()) {
      const d = (t.dims ?? []).map(toNumber);
      if (
        d.length === 3 &&
        d[0] === 1 &&
        d[1] > grid &&
        d[1] <= grid + 8 &&
        (!patch.channels || d[2] === patch.channels)
      )
        return d[1];
    }
    return undefined;
  }

  classCount(outputName: string): number | undefined {
    const dims = dimsOf(this.g.declaredType(outputName));
    const last = dims[dims.length - 1];
    if (typeof last === 'number' && last > 0) return last;
    // Walk back to the classifier: Gemm(x, W, b), MatMul(x, Wᵀ) or its bias Add.
    let name = outputName;
    for (let hop = 0; hop < 6; hop++) {
      const p = this.g.producerOf(name);
      if (!p) return undefined;
      const weight = (i: number) => this.g.initializer(p.input?.[i] ?? '')?.dims?.map(toNumber);
      if (p.opType === 'Gemm') {
        const w = weight(1);
        if (w?.length === 2) return toNumber(attr(p, 'transB')?.i ?? 0) ? w[0] : w[1];
      }
      if (p.opType === 'MatMul') {
        const w = weight(1);
        if (w && w.length >= 2) return w[w.length - 1];
      }
      if (p.opType === 'Add') {
        const b = weight(1) ?? weight(0);
        if (b?.length === 1 && b[0] > 1) return b[0];
      }
      name = (p.input ?? []).find(i => !this.g.isFolded(i)) ?? '';
    }
    return undefined;
  }

  noAttentionReason(): string {
    const softmaxes = this.g.nodes.filter(n => n.opType === 'Softmax').length;
    const fused = this.g.nodes.find(n => /Attention$/.test(n.opType ?? ''));
    let why = `no attention Softmax feeding a MatMul found in ${this.g.nodes.length} nodes`;
    if (fused)
      why += ` (the graph uses fused ${fused.domain ? fused.domain + '.' : ''}${fused.opType} ops, which do not expose attention weights; export it without ONNX Runtime attention fusion)`;
    else if (softmaxes > 0) why += ` (${softmaxes} Softmax node(s), none between two MatMuls)`;
    return `${why}, so attention maps cannot be shown for this model`;
  }

  private declaredRank(name: string | undefined): number | undefined {
    return (name && this.g.declaredType(name)?.tensorType?.shape?.dim?.length) || undefined;
  }

  /** The shape input of the Reshape that split heads on Q's path (walking through rank-changing picks too). */
  private headSplitShapeName(name: string): string | undefined {
    const through = new Set([...ELEMENTWISE_OPS, 'Transpose', 'Gather', 'Squeeze', 'Split', 'Slice']);
    for (let hop = 0; hop < 8; hop++) {
      const p = this.g.producerOf(name);
      if (!p) return undefined;
      if (p.opType === 'Reshape') return p.input?.[1];
      if (!through.has(p.opType ?? '')) return undefined;
      name = (p.input ?? []).find(i => !this.g.isFolded(i)) ?? '';
    }
    return undefined;
  }

  /** For a shape entry computed as `x <op> c` (seen through Unsqueeze/Cast), the constant scalar c. */
  private constantOperand(name: string, op: 'Mul' | 'Div'): number | undefined {
    for (let hop = 0; hop < 4; hop++) {
      const p = this.g.producerOf(name);
      if (!p) return undefined;
      if (p.opType === op) {
        const operands = op === 'Div' ? [p.input?.[1]] : (p.input ?? []);
        for (const i of operands) {
          const v = this.g.ints(i ?? '');
          if (v?.length === 1) return v[0];
        }
        return undefined;
      }
      if (p.opType !== 'Unsqueeze' && p.opType !== 'Cast' && p.opType !== 'Squeeze') return undefined;
      name = p.input?.[0] ?? '';
    }
    return undefined;
  }

  /**
   * The trailing entries of a Reshape's target shape: all of it when constant, or the tail of a
   * Concat whose last pieces are constants (dynamic exports compute N and T from Shape at run time).
   * Unknown single entries are undefined.
   */
  private knownShapeSuffix(name: string): (number | undefined)[] | undefined {
    const whole = this.g.ints(name);
    if (whole) return whole;
    const p = this.g.producerOf(name);
    if (p?.opType !== 'Concat') return undefined;
    const tail: (number | undefined)[] = [];
    for (const piece of [...(p.input ?? [])].reverse()) {
      const values = this.g.ints(piece);
      if (values) tail.unshift(...values);
      else if (this.g.producerOf(piece)?.opType === 'Unsqueeze') tail.unshift(undefined);
      else break;
    }
    return tail.length > 0 ? tail : undefined;
  }
}
