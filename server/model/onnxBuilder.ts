/**
 * Builds the ViT forward pass as an ONNX graph (IR 8, opset 17, float32) from weights in the canonical
 * (Hugging Face) layout, so any supported checkpoint format runs on ONNX Runtime.
 *
 * The graph matches ViTForImageClassification / torchvision's VisionTransformer in eval mode and has
 * these outputs: `logits` [N, K], `features` (the final-LayerNorm [CLS] token, [N, D]),
 * `attentions.{i}` (each layer's softmaxed attention, [N, H, T, T]) and `attention_{mean,max,min}.{i}`
 * (the same with heads fused, [N, T, T]). ONNX Runtime only returns graph outputs, so the attention
 * maps must be outputs; a caller that does not fetch them pays only for the small reductions.
 *
 * With `hiddenAfter: n` the graph is instead truncated: embeddings and blocks [0, n) only, with the
 * single output `hidden.{n}` (the tokens after block n, [N, T, D]; n = 0 is the embeddings). This is
 * what last-k training caches for its frozen part. ORT runs every node whatever is fetched, so an
 * extra output on the full graph would still pay for the remaining blocks, the attention reductions
 * and the head: on the built-in model (6 blocks, k = 2, 512 images) ~95 ms truncated vs ~125 ms
 * (bench/lastk_tokens.ts). A truncated graph records its variant in the metadata (META_VARIANT), so it
 * is never mistaken for a full model; the trainer builds it in memory, and it never goes into the
 * built-graph cache (modelSource.ts), whose key names the full graph. The full graph is unchanged by
 * this option, hence no BUILDER_VERSION bump.
 */
import * as fs from 'fs';
import * as os from 'os';
import { onnx } from 'onnx-proto';
import { Tensor, WeightMap } from './tensor';
import { ViTArch, W, checkWeights } from './vitConfig';
import { HEAD_FUSIONS, type Dtype } from '../../common/options';

/** Bump when the graph layout changes, so models cached by an older builder are rebuilt. */
export const BUILDER_VERSION = '2';
export const META_ARCH = 'vit_lens.arch';
export const META_BUILDER_VERSION = 'vit_lens.builder_version';
/** Present only on a truncated graph: its single output's name (`hidden.{n}`). */
export const META_VARIANT = 'vit_lens.variant';

export const INPUT_NAME = 'pixel_values';
export const LOGITS_NAME = 'logits';
export const FEATURES_NAME = 'features';
export const attentionOutputName = (layer: number): string => `attentions.${layer}`;
/** Tokens after blocks [0, n) — the input of block n — [N, T, D]; `hidden.0` is the embeddings. */
export const hiddenOutputName = (afterBlocks: number): string => `hidden.${afterBlocks}`;
/** Each layer's attention with the heads already fused, [N, T, T]: what rollout reads. */
export const fusedAttentionOutputName = (fusion: (typeof HEAD_FUSIONS)[number], layer: number): string =>
  `attention_${fusion}.${layer}`;

export const OPSET = 17; // first opset with LayerNormalization
export const IR_VERSION = 8;
const FLOAT = onnx.TensorProto.DataType.FLOAT;
const INT8 = onnx.TensorProto.DataType.INT8;
const FLOAT16 = onnx.TensorProto.DataType.FLOAT16;
/** ONNX Runtime's contrib operators (DynamicQuantizeMatMul). */
const MS_DOMAIN = 'com.microsoft';
const INT64 = onnx.TensorProto.DataType.INT64;

/**
 * Weight precision of a built graph. fp16 (for WebGPU and CUDA): every weight and every activation in
 * half precision, the input cast from fp32 on entry, and logits, features and attention maps cast
 * back to fp32 outputs (the head fusions are reduced from the fp32 maps). q8: the blocks' linear layers (q, k, v, out, fc1, fc2, ~all of a
 * ViT's FLOPs) as ORT's DynamicQuantizeMatMul: int8 weights, symmetric per output channel, and each
 * activation quantized to uint8 at run time (the fastest of ORT's int8 linears in bench/q8_linear.ts:
 * 2.5× fp32 MatMul, vs 2.1× for MatMulIntegerToFloat and 1.75× for the standard-op chain, 2 AVX2
 * cores); everything else (patch conv, LayerNorm, attention
 * scores and softmax, head) stays fp32, so the attention maps rollout reads are exact fp32.
 */
/** Present on a graph built with a dtype other than fp32. */
export const META_DTYPE = 'vit_lens.dtype';

export interface BuildOptions {
  producer?: string;
  dtype?: Dtype;
  /** Truncate after this many blocks (0 … numLayers): output only `hidden.{n}`. */
  hiddenAfter?: number;
  /**
   * Store the weights in this file instead of inside the graph (ONNX external data): a protobuf
   * message cannot exceed 2 GB, so bigger models (ViT-H/14: 2.5 GB) can only be built this way.
   * The file is created (or truncated) and written synchronously; tensors are written as they are
   * made, so a transposed copy is never held for longer than its own write.
   */
  externalData?: {
    /** Where to write the data. */
    file: string;
    /** The name the graph records, resolved by ONNX Runtime against the .onnx file's folder. */
    location: string;
  };
}

/** Tensors smaller than this stay inside the graph, as onnx.save_model's default threshold (1 KB) does. */
const EXTERNAL_MIN_BYTES = 1024;
/** ONNX Runtime memory-maps external data whose offset is a multiple of this (the Windows allocation granularity). */
const EXTERNAL_ALIGN = 64 * 1024;

export function buildVitOnnx(arch: ViTArch, weights: WeightMap, opts: BuildOptions = {}): Uint8Array {
  // raw_data is little-endian by definition; we copy Float32Array bytes as they are in memory.
  if (os.endianness() !== 'LE') throw new Error('buildVitOnnx needs a little-endian host');
  checkWeights(arch, name => weights.get(name)?.shape, 'buildVitOnnx');
  const [imgH, imgW] = arch.imageSize;
  const P = arch.patchSize;
  if (imgH % P !== 0 || imgW % P !== 0) {
    throw new Error(`image size ${imgH}x${imgW} is not a multiple of the patch size ${P}`);
  }
  if (arch.hiddenSize % arch.numHeads !== 0) {
    throw new Error(`hidden size ${arch.hiddenSize} is not divisible by ${arch.numHeads} heads`);
  }
  const cut = opts.hiddenAfter;
  if (cut !== undefined && !(Number.isInteger(cut) && cut >= 0 && cut <= arch.numLayers)) {
    throw new Error(`hiddenAfter ${cut} must be an integer between 0 and the model's ${arch.numLayers} layers`);
  }

  if (opts.dtype === 'fp16' && cut !== undefined) throw new Error('a truncated graph (hiddenAfter) is fp32 or q8 only');
  const external = opts.externalData && new ExternalDataWriter(opts.externalData.file, opts.externalData.location);
  try {
    return encodeGraph(arch, weights, opts, external);
  } finally {
    external?.close();
  }
}

function encodeGraph(
  arch: ViTArch,
  weights: WeightMap,
  opts: BuildOptions,
  external: ExternalDataWriter | undefined,
): Uint8Array {
  const [imgH, imgW] = arch.imageSize;
  const P = arch.patchSize;
  const cut = opts.hiddenAfter;
  const q8 = opts.dtype === 'q8';
  const fp16 = opts.dtype === 'fp16';
  const g = new GraphBuilder(weights, fp16, external);
  /** fp16: compute `name` internally and emit it as an fp32 graph output `output`. */
  const asOutput = (op: string, name: string, inputs: string[], attrs: Record<string, AttrValue>, output: string) =>
    fp16
      ? g.node('Cast', `${name}/to_fp32`, [g.node(op, name, inputs, attrs)], { to: FLOAT }, output)
      : g.node(op, name, inputs, attrs, output);
  const attentionOutputs: onnx.IValueInfoProto[] = [];
  const fusedOutputs: onnx.IValueInfoProto[] = [];
  const D = arch.hiddenSize;
  const H = arch.numHeads;
  const dh = D / H;
  const tokens = 1 + (imgH / P) * (imgW / P);

  // Embeddings: patchify with a strided conv, flatten the grid into tokens, prepend [CLS], add positions.
  const pixels = fp16 ? g.node('Cast', 'embeddings/pixels_fp16', [INPUT_NAME], { to: FLOAT16 }) : INPUT_NAME;
  const conv = g.node('Conv', 'embeddings/patch_conv', [pixels, g.weight(W.patchWeight), g.weight(W.patchBias)], {
    kernel_shape: [P, P],
    strides: [P, P],
  });
  const grid = g.node('Reshape', 'embeddings/flatten_grid', [conv, g.int64s('const/flatten_grid_shape', [0, D, -1])]);
  const patches = g.node('Transpose', 'embeddings/tokens_last', [grid], { perm: [0, 2, 1] });
  // [CLS] is one [1, 1, D] parameter; Expand needs the batch size, which is only known at run time.
  const batch = g.node('Shape', 'embeddings/batch_size', [INPUT_NAME], { start: 0, end: 1 });
  const clsShape = g.node('Concat', 'embeddings/cls_shape', [batch, g.int64s('const/cls_shape_tail', [1, 1])], {
    axis: 0,
  });
  const cls = g.node('Expand', 'embeddings/cls_expand', [g.weight(W.clsToken), clsShape]);
  const seq = g.node('Concat', 'embeddings/prepend_cls', [cls, patches], { axis: 1 });
  let x = g.node(
    'Add',
    'embeddings/add_positions',
    [seq, g.weight(W.posEmbed)],
    {},
    cut === 0 ? hiddenOutputName(0) : 'embeddings/add_positions',
  );

  const headsShape = g.int64s('const/split_heads_shape', [0, 0, H, dh]);
  const mergedShape = g.int64s('const/merge_heads_shape', [0, 0, D]);
  const qkScale = g.float('const/attn_scale', 1 / Math.sqrt(dh));
  const sqrt2 = g.float('const/sqrt2', Math.SQRT2);
  const one = g.float('const/one', 1);
  const half = g.float('const/half', 0.5);

  for (let i = 0; i < (cut ?? arch.numLayers); i++) {
    const w = W.layer(i);
    const at = (s: string) => `layer${i}/${s}`;
    const linear = (name: string, input: string, weight: string, bias: string | undefined) => {
      if (q8) {
        const [wq, scale, zero] = g.weightQuantized(weight);
        return g.node(
          'DynamicQuantizeMatMul',
          at(name),
          [input, wq, scale, zero, ...(bias ? [g.weight(bias)] : [])],
          {},
          at(name),
          MS_DOMAIN,
        );
      }
      const y = g.node('MatMul', at(name), [input, g.weightTransposed(weight)]);
      return bias ? g.node('Add', at(`${name}_bias`), [y, g.weight(bias)]) : y;
    };

    // Attention (pre-LN).
    const ln1 = g.layerNorm(at('ln1'), x, w.norm1Weight, w.norm1Bias, arch.layerNormEps);
    const q = linear('attn/q', ln1, w.qWeight, arch.qkvBias ? w.qBias : undefined);
    const k = linear('attn/k', ln1, w.kWeight, arch.qkvBias ? w.kBias : undefined);
    const v = linear('attn/v', ln1, w.vWeight, arch.qkvBias ? w.vBias : undefined);
    // Scaling Q ([N, T, D]) is cheaper than scaling the scores ([N, H, T, T]) and equal in exact arithmetic.
    const qScaled = g.node('Mul', at('attn/q_scale'), [q, qkScale]);
    const qHeads = g.node(
      'Transpose',
      at('attn/q_heads'),
      [g.node('Reshape', at('attn/q_split'), [qScaled, headsShape])],
      { perm: [0, 2, 1, 3] },
    );
    const kHeadsT = g.node(
      'Transpose',
      at('attn/k_heads_t'),
      [g.node('Reshape', at('attn/k_split'), [k, headsShape])],
      { perm: [0, 2, 3, 1] },
    );
    const vHeads = g.node('Transpose', at('attn/v_heads'), [g.node('Reshape', at('attn/v_split'), [v, headsShape])], {
      perm: [0, 2, 1, 3],
    });
    const scores = g.node('MatMul', at('attn/scores'), [qHeads, kHeadsT]);
    const probs = g.node(
      'Softmax',
      at('attn/softmax'),
      [scores],
      { axis: -1 },
      fp16 ? at('attn/softmax') : attentionOutputName(i),
    );
    // Rollout multiplies these maps layer after layer: they leave the graph in fp32 whatever the dtype.
    const probs32 = fp16
      ? g.node('Cast', at('attn/probs_fp32'), [probs], { to: FLOAT }, attentionOutputName(i))
      : probs;
    attentionOutputs.push(valueInfo(probs32, ['batch', H, tokens, tokens]));
    // Rollout needs the heads fused. Fetching [N, H, T, T] and fusing in JS costs ~20% of a ViT-B
    // forward pass (copying 22 MB out, then a JS pass over it); these reductions cost ORT well under 1%
    // and are H times smaller to fetch. ORT runs every node whatever is fetched, so keep them cheap.
    for (const fusion of HEAD_FUSIONS) {
      const op = fusion === 'mean' ? 'ReduceMean' : fusion === 'max' ? 'ReduceMax' : 'ReduceMin';
      const fused = g.node(
        op,
        at(`attn/heads_${fusion}`),
        [probs32],
        { axes: [1], keepdims: 0 },
        fusedAttentionOutputName(fusion, i),
      );
      fusedOutputs.push(valueInfo(fused, ['batch', tokens, tokens]));
    }
    const ctx = g.node('MatMul', at('attn/context'), [probs, vHeads]);
    const ctxTokens = g.node('Transpose', at('attn/context_tokens'), [ctx], { perm: [0, 2, 1, 3] });
    const merged = g.node('Reshape', at('attn/merge_heads'), [ctxTokens, mergedShape]);
    const attnOut = linear('attn/out', merged, w.projWeight, w.projBias);
    x = g.node('Add', at('attn/residual'), [x, attnOut]);

    // MLP (pre-LN) with exact GELU, written the way torch exports it so ORT's GeluFusion recognises it.
    const ln2 = g.layerNorm(at('ln2'), x, w.norm2Weight, w.norm2Bias, arch.layerNormEps);
    const h = linear('mlp/fc1', ln2, w.fc1Weight, w.fc1Bias);
    const erf = g.node('Erf', at('mlp/gelu_erf'), [g.node('Div', at('mlp/gelu_div'), [h, sqrt2])]);
    const gate = g.node('Add', at('mlp/gelu_add'), [erf, one]);
    const gelu = g.node('Mul', at('mlp/gelu_half'), [g.node('Mul', at('mlp/gelu_mul'), [h, gate]), half]);
    const mlpOut = linear('mlp/fc2', gelu, w.fc2Weight, w.fc2Bias);
    x = g.node('Add', at('mlp/residual'), [x, mlpOut], {}, i + 1 === cut ? hiddenOutputName(cut) : at('mlp/residual'));
  }

  if (cut !== undefined) {
    // The shared constants (attention scale, GELU's) are made before the loop; with no block they are unused.
    const used = new Set(g.nodes.flatMap(n => n.input ?? []));
    return onnx.ModelProto.encode({
      irVersion: IR_VERSION,
      opsetImport: [{ domain: '', version: OPSET }, ...(q8 ? [{ domain: MS_DOMAIN, version: 1 }] : [])],
      producerName: opts.producer ?? 'vit-lens',
      producerVersion: BUILDER_VERSION,
      graph: {
        name: `vit_hidden_${cut}`,
        input: [valueInfo(INPUT_NAME, ['batch', arch.numChannels, imgH, imgW])],
        output: [valueInfo(x, ['batch', tokens, D])],
        node: g.nodes,
        initializer: g.initializers.filter(t => used.has(t.name!)),
      },
      metadataProps: [
        { key: META_ARCH, value: JSON.stringify(arch) },
        { key: META_BUILDER_VERSION, value: BUILDER_VERSION },
        { key: META_VARIANT, value: x },
      ],
    }).finish();
  }

  const normed = g.layerNorm('head/final_ln', x, W.finalNormWeight, W.finalNormBias, arch.layerNormEps);
  const clsOut = g.node(
    'Gather',
    'head/take_cls',
    [normed, g.int64Scalar('const/token0', 0)],
    { axis: 1 },
    fp16 ? 'head/take_cls' : FEATURES_NAME,
  );
  const features = fp16 ? g.node('Cast', 'head/features_fp32', [clsOut], { to: FLOAT }, FEATURES_NAME) : clsOut;
  let z = clsOut;
  if (arch.preLogitsSize) {
    const pre = g.node('MatMul', 'head/pre_logits', [z, g.weightTransposed(W.preLogitsWeight)]);
    z = g.node('Tanh', 'head/pre_logits_tanh', [
      g.node('Add', 'head/pre_logits_bias', [pre, g.weight(W.preLogitsBias)]),
    ]);
  }
  const headMm = g.node('MatMul', 'head/classifier', [z, g.weightTransposed(W.headWeight)]);
  const logits = asOutput('Add', 'head/classifier_bias', [headMm, g.weight(W.headBias)], {}, LOGITS_NAME);

  const model: onnx.IModelProto = {
    irVersion: IR_VERSION,
    opsetImport: [{ domain: '', version: OPSET }, ...(q8 ? [{ domain: MS_DOMAIN, version: 1 }] : [])],
    producerName: opts.producer ?? 'vit-lens',
    producerVersion: BUILDER_VERSION,
    graph: {
      name: 'vit',
      input: [valueInfo(INPUT_NAME, ['batch', arch.numChannels, imgH, imgW])],
      // logits first: tools that look at "the" output of a classifier take the first one.
      output: [
        valueInfo(logits, ['batch', arch.numClasses]),
        valueInfo(features, ['batch', D]),
        ...attentionOutputs,
        ...fusedOutputs,
      ],
      node: g.nodes,
      initializer: g.initializers,
    },
    metadataProps: [
      { key: META_ARCH, value: JSON.stringify(arch) },
      { key: META_BUILDER_VERSION, value: BUILDER_VERSION },
      ...(opts.dtype && opts.dtype !== 'fp32' ? [{ key: META_DTYPE, value: opts.dtype }] : []),
    ],
  };
  // Peak memory is the caller's weights + the transposed copies (~all of a ViT's parameters) + the
  // returned buffer; protobufjs holds the copies until finish(), after which they are garbage. With
  // external data it is the caller's weights + one transposed matrix.
  return onnx.ModelProto.encode(model).finish();
}

/**
 * The arch and builder version recorded by buildVitOnnx, or undefined for a model it did not build;
 * `variant` is set (to its single output's name) for a truncated graph.
 */
export function readBuildMetadata(
  modelBytes: Uint8Array,
): { arch: ViTArch; builderVersion: string; variant?: string } | undefined {
  // Decoding does not copy raw_data (protobufjs returns subarrays), so this is cheap even for large models.
  const props = onnx.ModelProto.decode(modelBytes).metadataProps ?? [];
  const get = (key: string) => props.find(p => p.key === key)?.value ?? undefined;
  const arch = get(META_ARCH);
  const builderVersion = get(META_BUILDER_VERSION);
  if (arch === undefined || builderVersion === undefined) return undefined;
  const variant = get(META_VARIANT);
  return { arch: JSON.parse(arch) as ViTArch, builderVersion, ...(variant !== undefined ? { variant } : {}) };
}

/** Bytes of external data the graph reads (the end of its furthest tensor), 0 when its weights are all inside it. */
export function externalDataSize(modelBytes: Uint8Array): number {
  let end = 0;
  for (const t of onnx.ModelProto.decode(modelBytes).graph?.initializer ?? []) {
    if (t.dataLocation !== onnx.TensorProto.DataLocation.EXTERNAL) continue;
    const field = (key: string) => Number(t.externalData?.find(e => e.key === key)?.value ?? 0);
    end = Math.max(end, field('offset') + field('length'));
  }
  return end;
}

/** An INT attribute, an INTS attribute, or a FLOAT one (boxed, since 1 and 1.0 are the same JS number). */
export type AttrValue = number | number[] | { float: number };

/** Accumulates nodes and initializers; tensor names double as node names so graphs read well in Netron. */
export class GraphBuilder {
  readonly nodes: onnx.INodeProto[] = [];
  readonly initializers: onnx.ITensorProto[] = [];
  private readonly added = new Set<string>();

  /** `half`: float initializers are stored as fp16 (the q8 scales stay fp32, as the op wants). */
  constructor(
    private readonly weights: WeightMap,
    private readonly half = false,
    private readonly external?: ExternalDataWriter,
  ) {}

  node(
    op: string,
    name: string,
    inputs: string[],
    attrs: Record<string, AttrValue> = {},
    outputName = name,
    domain?: string,
  ): string {
    this.nodes.push({
      opType: op,
      ...(domain ? { domain } : {}),
      name,
      input: inputs,
      output: [outputName],
      attribute: Object.entries(attrs).map(([key, value]) => attribute(key, value)),
    });
    return outputName;
  }

  layerNorm(name: string, x: string, weight: string, bias: string, epsilon: number): string {
    // The attribute is a float32, so an eps of 1e-12 is stored as ~1e-12 (as in torch's own export).
    return this.node('LayerNormalization', name, [x, this.weight(weight), this.weight(bias)], {
      axis: -1,
      epsilon: { float: epsilon },
    });
  }

  /** A weight stored as is (a view of its Float32Array, no copy). */
  weight(name: string): string {
    return this.addOnce(name, () => {
      const t = this.tensor(name);
      return this.floatInitializer(name, t.shape, t.data);
    });
  }

  /** A linear weight (out, in) stored as (in, out), so MatMul needs no Transpose at run time. */
  weightTransposed(name: string): string {
    const stored = `${name}.T`;
    return this.addOnce(stored, () => {
      const t = this.tensor(name);
      const [rows, cols] = t.shape;
      return this.floatInitializer(stored, [cols, rows], transposeMatrix(t.data, rows, cols));
    });
  }

  /**
   * A linear weight (out, in) as int8 (in, out) with one scale per output channel (max |w| / 127,
   * symmetric, so the zero points are 0): [weight, scales, zero points].
   */
  weightQuantized(name: string): [string, string, string] {
    const t = this.tensor(name);
    const [rows, cols] = t.shape; // rows = out channels
    const scales = new Float32Array(rows);
    const q = new Int8Array(rows * cols);
    for (let r = 0; r < rows; r++) {
      let max = 0;
      for (let c = 0; c < cols; c++) max = Math.max(max, Math.abs(t.data[r * cols + c]));
      const scale = max > 0 ? max / 127 : 1;
      scales[r] = scale;
      // Stored transposed, (in, out), as MatMul's B.
      for (let c = 0; c < cols; c++)
        q[c * rows + r] = Math.max(-127, Math.min(127, Math.round(t.data[r * cols + c] / scale)));
    }
    const [wq, sc, zp] = [`${name}.q8`, `${name}.q8_scale`, `${name}.q8_zero`];
    this.addOnce(wq, () => ({ name: wq, dataType: INT8, dims: [cols, rows], rawData: new Uint8Array(q.buffer) }));
    this.addOnce(sc, () => floatInitializer(sc, [rows], scales));
    this.addOnce(zp, () => ({ name: zp, dataType: INT8, dims: [rows], rawData: new Uint8Array(rows) }));
    return [wq, sc, zp];
  }

  float(name: string, value: number): string {
    return this.addOnce(name, () => floatInitializer(name, [], new Float32Array([value]), this.half));
  }

  floats(name: string, values: number[]): string {
    return this.addOnce(name, () => floatInitializer(name, [values.length], new Float32Array(values)));
  }

  int64s(name: string, values: number[]): string {
    return this.addOnce(name, () => ({ name, dataType: INT64, dims: [values.length], int64Data: values }));
  }

  int64Scalar(name: string, value: number): string {
    return this.addOnce(name, () => ({ name, dataType: INT64, dims: [], int64Data: [value] }));
  }

  /** A weight as fp32 (fp16 when `half`), in the external data file when it is big enough to matter. */
  private floatInitializer(name: string, dims: number[], data: Float32Array): onnx.ITensorProto {
    if (this.external && data.byteLength >= EXTERNAL_MIN_BYTES) {
      const bytes = this.half
        ? new Uint8Array(toFloat16Bits(data).buffer)
        : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      return { name, dataType: this.half ? FLOAT16 : FLOAT, dims, ...this.external.append(bytes) };
    }
    return floatInitializer(name, dims, data, this.half);
  }

  private tensor(name: string): Tensor {
    const t = this.weights.get(name);
    if (!t) throw new Error(`buildVitOnnx: missing tensor "${name}"`);
    return t;
  }

  private addOnce(name: string, make: () => onnx.ITensorProto): string {
    if (!this.added.has(name)) {
      this.added.add(name);
      this.initializers.push(make());
    }
    return name;
  }
}

function floatInitializer(name: string, dims: number[], data: Float32Array, half = false): onnx.ITensorProto {
  if (half) return { name, dataType: FLOAT16, dims, rawData: new Uint8Array(toFloat16Bits(data).buffer) };
  return { name, dataType: FLOAT, dims, rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}

/** Appends tensors' bytes to an external data file and says where each one went. */
class ExternalDataWriter {
  private readonly fd: number;
  private offset = 0;

  constructor(
    private readonly file: string,
    private readonly location: string,
  ) {
    this.fd = fs.openSync(file, 'w');
  }

  append(bytes: Uint8Array): Pick<onnx.ITensorProto, 'dataLocation' | 'externalData'> {
    const start = Math.ceil(this.offset / EXTERNAL_ALIGN) * EXTERNAL_ALIGN;
    for (let done = 0; done < bytes.byteLength;)
      done += fs.writeSync(this.fd, bytes, done, bytes.byteLength - done, start + done);
    this.offset = start + bytes.byteLength;
    return {
      dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
      externalData: [
        { key: 'location', value: this.location },
        { key: 'offset', value: String(start) },
        { key: 'length', value: String(bytes.byteLength) },
      ],
    };
  }

  close(): void {
    try {
      fs.fsyncSync(this.fd);
    } finally {
      fs.closeSync(this.fd);
    }
  }
}

/** IEEE binary16 bits of each value, rounded to nearest even (as numpy's astype(float16)); Node 20 has no Float16Array. */
export function toFloat16Bits(data: Float32Array): Uint16Array {
  const bits = new Uint32Array(data.buffer, data.byteOffset, data.length);
  const out = new Uint16Array(data.length);
  for (let i = 0; i < data.length; i++) {
    const x = bits[i];
    const sign = (x >>> 16) & 0x8000;
    const exp = (x >>> 23) & 0xff;
    const mant = x & 0x7fffff;
    if (exp === 0xff)
      out[i] = sign | 0x7c00 | (mant ? 0x200 : 0); // inf, NaN
    else if (exp > 142)
      out[i] = sign | 0x7c00; // overflow → inf
    else if (exp >= 113) {
      // normal: drop 13 mantissa bits, round half to even (a carry into the exponent is correct)
      const h = ((exp - 112) << 10) | (mant >>> 13);
      const rest = mant & 0x1fff;
      out[i] = sign | (h + (rest > 0x1000 || (rest === 0x1000 && h & 1) ? 1 : 0));
    } else if (exp >= 102) {
      // subnormal half: the implicit 1 made explicit, shifted into place, rounded half to even
      const m = mant | 0x800000;
      const shift = 126 - exp;
      const h = m >>> shift;
      const rest = m & ((1 << shift) - 1);
      const halfway = 1 << (shift - 1);
      out[i] = sign | (h + (rest > halfway || (rest === halfway && h & 1) ? 1 : 0));
    } else out[i] = sign; // underflow → ±0
  }
  return out;
}

export function valueInfo(name: string, dims: (number | string)[]): onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: FLOAT,
        shape: { dim: dims.map(d => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

export function attribute(name: string, value: AttrValue): onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (Array.isArray(value)) return { name, type: T.INTS, ints: value };
  if (typeof value === 'object') return { name, type: T.FLOAT, f: value.float };
  return { name, type: T.INT, i: value };
}

/** Cache-blocked (rows, cols) -> (cols, rows); ~2.5x faster than the naive loop on ViT-B-sized matrices. */
function transposeMatrix(src: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  const B = 32;
  for (let r0 = 0; r0 < rows; r0 += B) {
    const r1 = Math.min(r0 + B, rows);
    for (let c0 = 0; c0 < cols; c0 += B) {
      const c1 = Math.min(c0 + B, cols);
      for (let r = r0; r < r1; r++) {
        const rowStart = r * cols;
        for (let c = c0; c < c1; c++) out[c * rows + r] = src[rowStart + c];
      }
    }
  }
  return out;
}
