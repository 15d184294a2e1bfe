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
import { ExternalDataReader } from '../formats/externalData';

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

type Model = onnx.ModelProto;
type Node = onnx.INodeProto;
type Graph = onnx.IGraphProto;

const DataType = onnx.TensorProto.DataType;
const MAX_PROTO_BYTES = 2 ** 31 - 1; // protobuf's hard limit on one message

/**
 * @param modelDir the folder of the .onnx file, needed only when its weights are in external data
 *   files; they are then inlined, so the returned bytes load on their own.
 */
export function tapAttention(modelBytes: Uint8Array, modelDir?: string): { bytes: Uint8Array; info: TapInfo } {
  const model = onnx.ModelProto.decode(modelBytes);
  const graph = model.graph;
  if (!graph) throw new Error('ONNX model has no graph');
  const inlined = inlineExternalData(model, modelDir);
  const g = new GraphIndex(graph);

  const input = g.imageInput();
  const logitsName = graph.output?.[0]?.name;
  if (!logitsName) throw new Error('ONNX model has no outputs');

  const attentions = g.nodes.filter((n) => n.opType === 'Softmax' && !n.domain).flatMap((softmax) => {
    const scores = g.scoresMatMul(softmax.input?.[0] ?? '');
    return scores && g.feedsMatMul(softmax.output?.[0] ?? '') ? [{ softmax, scores }] : [];
  });

  const patch = g.patchEmbedding(input.name);
  const inputShape = dimsOf(input.type);
  const imageSize: [number, number] | undefined =
    typeof inputShape[2] === 'number' && typeof inputShape[3] === 'number' ? [inputShape[2], inputShape[3]] : undefined;
  const info: TapInfo = {
    inputName: input.name,
    inputShape,
    inputElemType: input.type?.tensorType?.elemType ?? undefined,
    logitsName,
    attentionOutputs: attentions.map((a) => a.softmax.output![0]),
    attentionRank: 4,
    patchSize: patch?.size,
    imageSize,
    tokens: patch && imageSize ? g.tokenCount(patch, imageSize) : undefined,
    numClasses: g.classCount(logitsName),
  };

  if (attentions.length === 0) {
    info.reason = g.noAttentionReason();
    return { bytes: inlined ? encode(model) : modelBytes, info };
  }
  const first = attentions[0];
  info.attentionRank = g.attentionRank(first.softmax, first.scores) ?? 4;
  info.numHeads = g.numHeads(first.scores, info.attentionRank, patch?.channels, typeof inputShape[0] === 'number' ? inputShape[0] : undefined);

  const existing = new Set((graph.output ?? []).map((o) => o.name));
  for (const name of info.attentionOutputs) {
    // The shape is left unknown (ORT infers it); the element type must be right or ORT refuses the model.
    if (!existing.has(name)) graph.output!.push({ name, type: { tensorType: { elemType: g.elemType(name) } } });
  }
  return { bytes: encode(model), info };
}

/** Number of classes from the output's static last dim, or from the classifier weights producing it. */
export function outputClassCount(modelBytes: Uint8Array, outputName: string): number | undefined {
  const graph = onnx.ModelProto.decode(modelBytes).graph;
  return graph ? new GraphIndex(graph).classCount(outputName) : undefined;
}

function encode(model: Model): Uint8Array {
  return onnx.ModelProto.encode(model).finish();
}

/** Ops a Q·Kᵀ score tensor may pass through before its Softmax: scaling, masking, casts. */
const SCORE_PATH_OPS = new Set(['Mul', 'Div', 'Add', 'Sub', 'Where', 'Cast', 'Identity', 'Reshape']);
/** Ops between the Softmax and the ·V MatMul: casts, eval-mode dropout, head masks. */
const PROBS_PATH_OPS = new Set(['Cast', 'Identity', 'Dropout', 'Mul']);
/** Rank-preserving ops walked through when looking for the Transpose/Reshape that fixes Q's rank. */
const ELEMENTWISE_OPS = new Set(['Mul', 'Div', 'Add', 'Sub', 'Cast', 'Identity']);
const MATMUL_OPS = new Set(['MatMul', 'FusedMatMul']);

/** Lookups over one graph: who produces and who consumes each tensor, and which tensors are constant (also used by formats/onnxWeights.ts). */
export class GraphIndex {
  readonly nodes: Node[];
  private readonly producer = new Map<string, Node>();
  private readonly consumers = new Map<string, Node[]>();
  private readonly initializers = new Map<string, onnx.ITensorProto>();
  private readonly constants = new Set<string>();
  /** Types declared in value_info, inputs and outputs. */
  private readonly declared = new Map<string, onnx.ITypeProto>();

  constructor(private readonly graph: Graph) {
    this.nodes = graph.node ?? [];
    for (const v of [...(graph.valueInfo ?? []), ...(graph.input ?? []), ...(graph.output ?? [])]) {
      if (v.name && v.type) this.declared.set(v.name, v.type);
    }
    for (const t of graph.initializer ?? []) this.initializers.set(t.name ?? '', t);
    for (const name of this.initializers.keys()) this.constants.add(name);
    // Nodes are topologically sorted (an ONNX requirement), so one pass propagates constness.
    for (const n of this.nodes) {
      const inputs = (n.input ?? []).filter((i) => i !== '');
      const constant = n.opType === 'Constant' || (inputs.length > 0 && inputs.every((i) => this.constants.has(i)));
      for (const o of n.output ?? []) {
        this.producer.set(o, n);
        if (constant) this.constants.add(o);
      }
      for (const i of inputs) {
        const list = this.consumers.get(i);
        if (list) list.push(n);
        else this.consumers.set(i, [n]);
      }
    }
  }

  /** The first graph input that is not an initializer (old exporters list weights as inputs too). */
  imageInput(): { name: string; type: onnx.ITypeProto | null | undefined } {
    const input = (this.graph.input ?? []).find((i) => !this.initializers.has(i.name ?? ''));
    if (!input?.name) throw new Error('ONNX model has no (non-initializer) input');
    return { name: input.name, type: input.type };
  }

  /** The MatMul of two activations that `name` comes from, within a few scaling/masking ops. */
  scoresMatMul(name: string, depth = 0): Node | undefined {
    const p = this.producer.get(name);
    if (!p || depth > 4) return undefined;
    const activations = (p.input ?? []).filter((i) => i !== '' && !this.constants.has(i));
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
    return (this.consumers.get(name) ?? []).some((c) => {
      if (MATMUL_OPS.has(c.opType ?? '')) return (c.input ?? []).some((i) => i !== name && i !== '' && !this.constants.has(i));
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
        const p = this.producer.get(name);
        if (!p) break;
        if (p.opType === 'Transpose') {
          const perm = attr(p, 'perm')?.ints;
          if (perm?.length) return asRank(perm.length);
        }
        if (p.opType === 'Reshape') {
          const shape = this.constInts(p.input?.[1] ?? '');
          if (shape) return asRank(shape.length);
        }
        if (!ELEMENTWISE_OPS.has(p.opType ?? '')) break;
        name = (p.input ?? []).find((i) => !this.constants.has(i)) ?? '';
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
  numHeads(scores: Node, rank: 3 | 4, hiddenSize: number | undefined, staticBatch: number | undefined): number | undefined {
    const shapeName = this.headSplitShapeName(scores.input?.[0] ?? '');
    if (!shapeName) return undefined;
    const shape = this.knownShapeSuffix(shapeName) ?? [];
    const beforeLast = shape[shape.length - 2];
    const headDim = shape[shape.length - 1];
    if (rank === 4 && beforeLast && beforeLast > 0) return beforeLast;
    if (rank === 3) {
      const pieces = this.producer.get(shapeName)?.opType === 'Concat' ? this.producer.get(shapeName)!.input ?? [] : [];
      const fromPieces = pieces.length === 3 ? this.constantOperand(pieces[1], 'Mul') ?? this.constantOperand(pieces[2], 'Div') : undefined;
      if (fromPieces && fromPieces > 0) return fromPieces;
      if (staticBatch && beforeLast && beforeLast > 0 && beforeLast % staticBatch === 0) return beforeLast / staticBatch;
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
        for (const c of this.consumers.get(name) ?? []) {
          if (c.opType === 'Conv' && c.input?.[0] === name) {
            const weightDims = this.initializers.get(c.input?.[1] ?? '')?.dims?.map(toNumber);
            const kernel = attr(c, 'kernel_shape')?.ints?.map(toNumber) ?? weightDims?.slice(2);
            const strides = attr(c, 'strides')?.ints?.map(toNumber);
            if (kernel?.length === 2 && kernel[0] === kernel[1] && strides?.every((s, i) => s === kernel[i]) && kernel[0] > 1) {
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
    for (const t of this.initializers.values()) {
      const d = (t.dims ?? []).map(toNumber);
      if (d.length === 3 && d[0] === 1 && d[1] > grid && d[1] <= grid + 8 && (!patch.channels || d[2] === patch.channels)) return d[1];
    }
    return undefined;
  }

  classCount(outputName: string): number | undefined {
    const dims = dimsOf(this.declared.get(outputName));
    const last = dims[dims.length - 1];
    if (typeof last === 'number' && last > 0) return last;
    // Walk back to the classifier: Gemm(x, W, b), MatMul(x, Wᵀ) or its bias Add.
    let name = outputName;
    for (let hop = 0; hop < 6; hop++) {
      const p = this.producer.get(name);
      if (!p) return undefined;
      const weight = (i: number) => this.initializers.get(p.input?.[i] ?? '')?.dims?.map(toNumber);
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
      name = (p.input ?? []).find((i) => !this.constants.has(i)) ?? '';
    }
    return undefined;
  }

  noAttentionReason(): string {
    const softmaxes = this.nodes.filter((n) => n.opType === 'Softmax').length;
    const fused = this.nodes.find((n) => /Attention$/.test(n.opType ?? ''));
    let why = `no attention Softmax feeding a MatMul found in ${this.nodes.length} nodes`;
    if (fused) why += ` (the graph uses fused ${fused.domain ? fused.domain + '.' : ''}${fused.opType} ops, which do not expose attention weights; export it without ONNX Runtime attention fusion)`;
    else if (softmaxes > 0) why += ` (${softmaxes} Softmax node(s), none between two MatMuls)`;
    return `${why}, so attention maps cannot be shown for this model`;
  }

  /** Element type of a tensor: declared, or traced back to a Cast, constant or the input it is computed from. */
  elemType(name: string): number {
    for (let hop = 0; hop <= this.nodes.length; hop++) {
      const t = this.declared.get(name)?.tensorType?.elemType;
      if (t) return t;
      const init = this.initializers.get(name);
      if (init?.dataType) return init.dataType;
      const p = this.producer.get(name);
      if (!p) break;
      if (p.opType === 'Cast') return toNumber(attr(p, 'to')?.i ?? DataType.FLOAT);
      if (p.opType === 'Constant') return attr(p, 'value')?.t?.dataType ?? DataType.FLOAT;
      if (p.opType === 'Shape' || p.opType === 'Size') return DataType.INT64;
      name = (p.opType === 'Where' ? p.input?.[1] : p.input?.[0]) ?? '';
    }
    return DataType.FLOAT;
  }

  private declaredRank(name: string | undefined): number | undefined {
    return (name && this.declared.get(name)?.tensorType?.shape?.dim?.length) || undefined;
  }

  /** The shape input of the Reshape that split heads on Q's path (walking through rank-changing picks too). */
  private headSplitShapeName(name: string): string | undefined {
    const through = new Set([...ELEMENTWISE_OPS, 'Transpose', 'Gather', 'Squeeze', 'Split', 'Slice']);
    for (let hop = 0; hop < 8; hop++) {
      const p = this.producer.get(name);
      if (!p) return undefined;
      if (p.opType === 'Reshape') return p.input?.[1];
      if (!through.has(p.opType ?? '')) return undefined;
      name = (p.input ?? []).find((i) => !this.constants.has(i)) ?? '';
    }
    return undefined;
  }

  /** For a shape entry computed as `x <op> c` (seen through Unsqueeze/Cast), the constant scalar c. */
  private constantOperand(name: string, op: 'Mul' | 'Div'): number | undefined {
    for (let hop = 0; hop < 4; hop++) {
      const p = this.producer.get(name);
      if (!p) return undefined;
      if (p.opType === op) {
        const operands = op === 'Div' ? [p.input?.[1]] : (p.input ?? []);
        for (const i of operands) {
          const v = this.constInts(i ?? '');
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
    const whole = this.constInts(name);
    if (whole) return whole;
    const p = this.producer.get(name);
    if (p?.opType !== 'Concat') return undefined;
    const tail: (number | undefined)[] = [];
    for (const piece of [...(p.input ?? [])].reverse()) {
      const values = this.constInts(piece);
      if (values) tail.unshift(...values);
      else if (this.producer.get(piece)?.opType === 'Unsqueeze') tail.unshift(undefined);
      else break;
    }
    return tail.length > 0 ? tail : undefined;
  }

  /** Values of a constant int tensor (initializer or Constant node), else undefined. */
  private constInts(name: string): number[] | undefined {
    const init = this.initializers.get(name);
    if (init) return tensorInts(init);
    const p = this.producer.get(name);
    if (p?.opType !== 'Constant') return undefined;
    const value = attr(p, 'value');
    if (value?.t) return tensorInts(value.t);
    const ints = attr(p, 'value_ints')?.ints;
    return ints ? ints.map(toNumber) : undefined;
  }
}

export function attr(node: Node, name: string): onnx.IAttributeProto | undefined {
  return node.attribute?.find((a) => a.name === name);
}

export function toNumber(v: number | { toNumber(): number } | null | undefined): number {
  if (v === null || v === undefined) return 0;
  return typeof v === 'number' ? v : v.toNumber();
}

export function dimsOf(type: onnx.ITypeProto | null | undefined): (number | string)[] {
  return (type?.tensorType?.shape?.dim ?? []).map((d) => {
    const value = toNumber(d.dimValue);
    return value > 0 ? value : d.dimParam || '?';
  });
}

export function tensorInts(t: onnx.ITensorProto): number[] | undefined {
  if (t.dataType === DataType.INT64) {
    if (t.int64Data?.length) return t.int64Data.map(toNumber);
    if (t.rawData?.length) {
      const view = new DataView(t.rawData.buffer, t.rawData.byteOffset, t.rawData.byteLength);
      return Array.from({ length: t.rawData.byteLength / 8 }, (_, i) => Number(view.getBigInt64(i * 8, true)));
    }
    return (t.dims ?? []).length === 1 && toNumber(t.dims![0]) === 0 ? [] : undefined;
  }
  if (t.dataType === DataType.INT32) {
    if (t.int32Data?.length) return [...t.int32Data];
    if (t.rawData?.length) {
      const view = new DataView(t.rawData.buffer, t.rawData.byteOffset, t.rawData.byteLength);
      return Array.from({ length: t.rawData.byteLength / 4 }, (_, i) => view.getInt32(i * 4, true));
    }
  }
  return undefined;
}

/**
 * Moves tensors stored in external data files (big exports keep weights beside the .onnx) into the
 * model, since ONNX Runtime cannot resolve relative data files for a model passed as bytes.
 * Returns whether anything was inlined.
 */
function inlineExternalData(model: Model, modelDir: string | undefined): boolean {
  const tensors: onnx.ITensorProto[] = [...(model.graph?.initializer ?? [])];
  for (const n of model.graph?.node ?? []) for (const a of n.attribute ?? []) if (a.t) tensors.push(a.t);
  const external = tensors.filter((t) => t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL);
  if (external.length === 0) return false;

  if (!modelDir) {
    const location = external[0].externalData?.find((e) => e.key === 'location')?.value;
    throw new Error(`ONNX model stores its weights in external data ("${location}", expected next to the .onnx file); open the model from its file so that data can be found`);
  }
  const reader = new ExternalDataReader(modelDir, 'ONNX model');
  let total = 0;
  for (const t of external) {
    const entry = (key: string) => t.externalData?.find((e) => e.key === key)?.value ?? undefined;
    const data = reader.read({ tensor: t.name ?? '', location: entry('location'), offset: entry('offset'), length: entry('length') });
    total += data.length;
    if (total > MAX_PROTO_BYTES) throw new Error(`ONNX model's external data exceeds 2 GB, too large to load as one protobuf`);
    t.rawData = data;
    t.externalData = [];
    t.dataLocation = onnx.TensorProto.DataLocation.DEFAULT;
  }
  return true;
}
