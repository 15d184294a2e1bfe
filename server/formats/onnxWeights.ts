/**
 * ViT weights and architecture read back out of an ONNX file, for training INIT (initWeights.ts).
 *
 * Two kinds of graph are recognised:
 *   - our own builder's (onnxBuilder.ts: exported runs' onnx/model.onnx and the cache builds), which
 *     record the arch in metadata and name every initializer after the canonical weight (linear
 *     weights stored transposed as `NAME.T`);
 *   - a pre-norm ViT exported by torch.onnx (torchvision's VisionTransformer, Hugging Face-style
 *     separate q/k/v projections, timm-style fused qkv). Such exporters rename linear weights to
 *     anonymous `onnx::MatMul_N` initializers stored (in, out), deduplicate equal tensors (all-ones
 *     LayerNorm scales become one initializer plus Identity nodes) and decompose LayerNorm below
 *     opset 17, so nothing is taken from names: every weight is found from the node that uses it, and
 *     each role (q, k, v, projection, fc1, fc2, norms, head) from where it sits in the graph.
 *
 * Whatever cannot be placed with certainty is an error naming the file and what was not recognised.
 */
import * as path from 'path';
import { onnx } from 'onnx-proto';
import { numel, Tensor, transpose2d as transpose, WeightMap } from '../model/tensor';
import { checkWeights, ViTArch, W } from '../model/vitConfig';
import { META_ARCH } from '../model/onnxBuilder';
import { AttentionFinder } from '../model/attentionTap';
import { attr, dimsOf, toNumber } from './onnxGraph';
import { Lookup, PathStep } from './onnxGraphLookup';
import { shortestFloat32, TensorReader } from './onnxTensors';
import { readModelFile } from '../util/regularFile';

type Node = onnx.INodeProto;

export interface OnnxWeights {
  arch: ViTArch;
  weights: WeightMap;
  /** Which exporter layout was recognised, for notes. */
  layout: 'vit-lens builder' | 'torch.onnx export';
}

export class OnnxNotRecognisedError extends Error {}

export async function loadOnnxWeights(file: string): Promise<OnnxWeights> {
  const bytes = await readModelFile(file, 2 ** 31 - 1, 'an .onnx file (a protobuf holds at most 2 GB)');
  let model: onnx.ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (e) {
    throw new Error(`${file}: not a readable ONNX file (${(e as Error).message})`);
  }
  if (!model.graph) throw new Error(`${file}: ONNX model has no graph`);
  const reader = new TensorReader(path.dirname(file), file);
  const fail = (what: string): never => {
    throw new OnnxNotRecognisedError(
      `${file}: cannot recover ViT weights from this ONNX file: ${what}. Use the Hugging Face folder (config.json + model.safetensors) or the .npz it was exported from instead`,
    );
  };
  const arch = (model.metadataProps ?? []).find(p => p.key === META_ARCH)?.value;
  const out = arch
    ? fromBuilder(model.graph, JSON.parse(arch) as ViTArch, reader, fail)
    : fromTorchExport(model.graph, reader, fail);
  checkWeights(out.arch, n => out.weights.get(n)?.shape, file);
  return out;
}

// ------------------------------------------------------------------------------------------------
// Our builder: names are canonical, arch is in the metadata.
// ------------------------------------------------------------------------------------------------

function fromBuilder(
  graph: onnx.IGraphProto,
  arch: ViTArch,
  reader: TensorReader,
  fail: (what: string) => never,
): OnnxWeights {
  const inits = new Map((graph.initializer ?? []).map(t => [t.name ?? '', t]));
  const weights: WeightMap = new Map();
  const names: string[] = [
    W.clsToken,
    W.posEmbed,
    W.patchWeight,
    W.patchBias,
    W.finalNormWeight,
    W.finalNormBias,
    W.headWeight,
    W.headBias,
  ];
  if (arch.preLogitsSize) names.push(W.preLogitsWeight, W.preLogitsBias);
  for (let i = 0; i < arch.numLayers; i++) {
    const l = W.layer(i);
    names.push(
      l.norm1Weight,
      l.norm1Bias,
      l.qWeight,
      l.kWeight,
      l.vWeight,
      l.projWeight,
      l.projBias,
      l.norm2Weight,
      l.norm2Bias,
      l.fc1Weight,
      l.fc1Bias,
      l.fc2Weight,
      l.fc2Bias,
    );
    if (arch.qkvBias) names.push(l.qBias, l.kBias, l.vBias);
  }
  for (const name of names) {
    const direct = inits.get(name);
    const transposed = inits.get(`${name}.T`);
    if (direct) weights.set(name, reader.read(direct));
    else if (transposed) weights.set(name, transpose(reader.read(transposed)));
    else fail(`it carries ViT Lens builder metadata but no initializer "${name}" (or "${name}.T")`);
  }
  return { arch, weights, layout: 'vit-lens builder' };
}

// ------------------------------------------------------------------------------------------------
// torch.onnx exports: structure, not names.
// ------------------------------------------------------------------------------------------------

interface Linear {
  index: number; // node index of the MatMul/Gemm
  input: string;
  output: string; // after the bias Add, when there is one
  weight: Tensor; // (out, in)
  bias?: Tensor;
}

interface Norm {
  index: number; // node index of the op producing the output
  input: string;
  output: string;
  weight: Tensor;
  bias: Tensor;
  eps: number;
}

function fromTorchExport(graph: onnx.IGraphProto, reader: TensorReader, fail: (what: string) => never): OnnxWeights {
  const nodes = graph.node ?? [];
  const x = new Lookup(graph);
  const g = new AttentionFinder(x);

  // Patch embedding: the first Conv on the image input, kernel == stride.
  const input = x.imageInput();
  const conv = nodes.find(n => n.opType === 'Conv' && x.reachesFrom(n.input?.[0] ?? '', input.name, 3));
  if (!conv) fail('no patch-embedding Conv on the image input');
  const convW = x.constant(conv!.input?.[1] ?? '');
  const kernel = attr(conv!, 'kernel_shape')?.ints?.map(toNumber) ?? convW?.dims?.slice(2).map(toNumber);
  const strides = attr(conv!, 'strides')?.ints?.map(toNumber);
  const pads = attr(conv!, 'pads')?.ints?.map(toNumber) ?? [];
  const dil = attr(conv!, 'dilations')?.ints?.map(toNumber) ?? [];
  if (
    !convW ||
    convW.dims?.length !== 4 ||
    !kernel ||
    kernel.length !== 2 ||
    kernel[0] !== kernel[1] ||
    !strides ||
    strides[0] !== kernel[0] ||
    strides[1] !== kernel[1] ||
    pads.some(p => p !== 0) ||
    dil.some(d => d !== 1) ||
    toNumber(attr(conv!, 'group')?.i ?? 1) !== 1
  ) {
    fail('the first Conv is not a square, non-overlapping patch embedding with constant weights');
  }
  const patchWeight = reader.read(convW!);
  const [D, C, P] = patchWeight.shape;
  const convB = conv!.input?.[2] ? x.constant(conv!.input[2]) : undefined;
  if (conv!.input?.[2] && !convB) fail('the patch-embedding bias is not a constant');
  const patchBias = convB ? reader.read(convB) : { shape: [D], data: new Float32Array(D) };

  // [CLS] token ([1, 1, D] constant joined by a Concat, possibly through Expand) and positions ([1, T, D] added).
  const clsCandidates = new Set<string>();
  const posCandidates = new Set<string>();
  for (const n of nodes) {
    for (const i of n.input ?? []) {
      const t = x.constant(i);
      const d = t?.dims?.map(toNumber);
      if (!t || d?.length !== 3 || d[0] !== 1 || d[2] !== D) continue;
      if (d[1] === 1 && (n.opType === 'Concat' || n.opType === 'Expand' || n.opType === 'Tile'))
        clsCandidates.add(t.name ?? i);
      if (d[1] > 1 && n.opType === 'Add') posCandidates.add(t.name ?? i);
    }
  }
  if (clsCandidates.size !== 1)
    fail(
      clsCandidates.size
        ? 'more than one [CLS]-like [1, 1, D] token'
        : `no [CLS] token ([1, 1, ${D}] constant joined to the patch tokens)`,
    );
  if (posCandidates.size !== 1)
    fail(
      posCandidates.size
        ? 'more than one position-embedding-like [1, T, D] constant'
        : `no position embeddings ([1, T, ${D}] constant added to the tokens)`,
    );
  const clsToken = reader.read(x.constant([...clsCandidates][0])!);
  const posEmbed = reader.read(x.constant([...posCandidates][0])!);
  const tokens = posEmbed.shape[1];
  const inDims = dimsOf(input.type);
  let imageSize: [number, number];
  if (typeof inDims[2] === 'number' && typeof inDims[3] === 'number') imageSize = [inDims[2], inDims[3]];
  else {
    const side = Math.round(Math.sqrt(tokens - 1));
    if (side * side !== tokens - 1)
      fail(`the input size is dynamic and ${tokens - 1} patch positions are not a square grid`);
    imageSize = [side * P, side * P];
  }
  if (imageSize[0] % P || imageSize[1] % P || (imageSize[0] / P) * (imageSize[1] / P) + 1 !== tokens) {
    fail(
      `${tokens} position embeddings do not match [CLS] + a ${imageSize.join('x')} image in ${P}x${P} patches (extra tokens such as DeiT's distillation token are not supported)`,
    );
  }

  const linears = findLinears(nodes, x, reader);
  const norms = findNorms(nodes, x, reader, fail);
  const byOutput = new Map(linears.map(l => [l.output, l]));
  const linearBefore = (name: string) => x.traceBack(name, n => byOutput.has(n));

  // Attention blocks, one per attention Softmax (as the attention tap finds them).
  const attentions = nodes.flatMap((softmax, index) => {
    if (softmax.opType !== 'Softmax' || softmax.domain) return [];
    const scores = g.scoresMatMul(softmax.input?.[0] ?? '');
    const context = scores && x.contextMatMul(softmax.output?.[0] ?? '');
    return scores && context ? [{ index, softmax, scores, context }] : [];
  });
  const L = attentions.length;
  if (L === 0) {
    const fused = nodes.find(n => /Attention$/.test(n.opType ?? ''));
    fail(
      fused
        ? `attention is a fused ${fused.opType} op`
        : 'no attention (Softmax between two MatMuls) found, so this does not look like a ViT',
    );
  }
  if (norms.length !== 2 * L + 1)
    fail(`${norms.length} LayerNorms for ${L} attention layers (a pre-norm ViT has ${2 * L + 1})`);

  const weights: WeightMap = new Map();
  weights.set(W.clsToken, clsToken);
  weights.set(W.posEmbed, posEmbed);
  weights.set(W.patchWeight, patchWeight);
  weights.set(W.patchBias, patchBias);
  const used = new Set<Linear>();
  const take = (l: Linear) => {
    if (used.has(l)) fail(`the linear layer at node ${l.index} is used twice`);
    used.add(l);
    return l;
  };
  let M = 0;
  let H: number | undefined;
  let allQkvBiasZero = true;
  const eps = norms[0].eps;
  if (norms.some(n => n.eps !== eps)) fail('LayerNorms with different epsilons');

  for (let i = 0; i < L; i++) {
    const a = attentions[i];
    const l = W.layer(i);
    const n1 = norms[2 * i];
    const n2 = norms[2 * i + 1];
    const next = norms[2 * i + 2];
    if (!(n1.index < a.index && a.index < n2.index))
      fail(`attention layer ${i} does not sit between two LayerNorms (not a pre-norm ViT)`);
    weights.set(l.norm1Weight, n1.weight);
    weights.set(l.norm1Bias, n1.bias);
    weights.set(l.norm2Weight, n2.weight);
    weights.set(l.norm2Bias, n2.bias);

    // q, k, v by role: Q·Kᵀ's left and right operands, and what the probabilities multiply.
    const vName = (a.context.input ?? []).find(n => n !== '' && !x.derivesFrom(n, a.softmax.output![0], 4)) ?? '';
    const roles = [a.scores.input?.[0] ?? '', a.scores.input?.[1] ?? '', vName].map(n => linearBefore(n));
    if (roles.some(r => !r)) fail(`layer ${i}: q, k and v cannot all be traced back to linear layers`);
    const [q, k, v] = roles as NonNullable<(typeof roles)[number]>[];
    const inProj: Linear[] = [];
    if (q.hit === k.hit && k.hit === v.hit) {
      const qkv = byOutput.get(q.hit)!;
      if (qkv.weight.shape[0] !== 3 * D || qkv.weight.shape[1] !== D)
        fail(`layer ${i}: fused qkv weight is [${qkv.weight.shape.join(', ')}], expected [${3 * D}, ${D}]`);
      const chunks = [q, k, v].map(r => chunkIndex(r.path, x, D));
      if (chunks[0] !== 0 || chunks[1] !== 1 || chunks[2] !== 2)
        fail(`layer ${i}: cannot tell which part of the fused qkv projection is q, k and v`);
      const names = [
        [l.qWeight, l.qBias],
        [l.kWeight, l.kBias],
        [l.vWeight, l.vBias],
      ] as const;
      names.forEach(([wn, bn], c) => {
        weights.set(wn, { shape: [D, D], data: qkv.weight.data.slice(c * D * D, (c + 1) * D * D) });
        if (qkv.bias) weights.set(bn, { shape: [D], data: qkv.bias.data.slice(c * D, (c + 1) * D) });
      });
      inProj.push(take(qkv));
    } else if (
      new Set([q.hit, k.hit, v.hit]).size === 3 &&
      [q, k, v].every(r => chunkIndex(r.path, x, D) === undefined)
    ) {
      const names = [
        [l.qWeight, l.qBias],
        [l.kWeight, l.kBias],
        [l.vWeight, l.vBias],
      ] as const;
      [q, k, v].forEach((r, c) => {
        const lin = take(byOutput.get(r.hit)!);
        weights.set(names[c][0], lin.weight);
        if (lin.bias) weights.set(names[c][1], lin.bias);
        inProj.push(lin);
      });
    } else {
      fail(`layer ${i}: q, k and v come from an unrecognised mix of projections`);
    }
    const biases = inProj.map(p => !!p.bias);
    if (biases.some(b => b !== biases[0])) fail(`layer ${i}: some of q, k, v have a bias and some do not`);
    if (biases[0]) allQkvBiasZero &&= inProj.every(p => p.bias!.data.every(b => b === 0));
    for (const p of inProj)
      if (!x.derivesFrom(p.input, n1.output, 6))
        fail(`layer ${i}: the q/k/v projection does not read the first LayerNorm's output`);

    // Output projection: the linear that reads the attention context; then the MLP.
    const between = linears.filter(lin => lin.index > n1.index && lin.index < n2.index && !inProj.includes(lin));
    if (between.length !== 1 || !x.derivesFrom(between[0].input, a.context.output![0], 6))
      fail(`layer ${i}: no single output projection after the attention`);
    const proj = take(between[0]);
    weights.set(l.projWeight, proj.weight);
    weights.set(l.projBias, proj.bias ?? { shape: [D], data: new Float32Array(D) });
    const mlp = linears.filter(lin => lin.index > n2.index && lin.index < next.index);
    if (mlp.length !== 2)
      fail(`layer ${i}: ${mlp.length} linear layers between the second LayerNorm and the next one (an MLP has 2)`);
    const [fc1, fc2] = mlp.map(take);
    if (!x.derivesFrom(fc1.input, n2.output, 6))
      fail(`layer ${i}: the MLP does not read the second LayerNorm's output`);
    const act = x.opsBetween(fc2.input, fc1.output, 12);
    if (!act) fail(`layer ${i}: the MLP's second linear does not read the first one`);
    if (!act!.has('Erf') && !act!.has('Gelu'))
      fail(`layer ${i}: the MLP activation is not exact (erf) GELU (ops: ${[...act!].join(', ') || 'none'})`);
    if (act!.has('Tanh') || act!.has('Sigmoid'))
      fail(
        `layer ${i}: the MLP activation is an approximate GELU (tanh or sigmoid), which the trainer does not implement`,
      );
    // Pre-norm residuals: x + attn(norm1(x)) feeds norm2, and that + mlp(norm2(.)) feeds the next norm.
    // (A post-norm block, or BERT-style embedding LayerNorm, fails here.)
    const attnSum = x.residualAdd(proj.output, n1.input);
    const mlpSum = x.residualAdd(fc2.output, n2.input);
    if (!attnSum || attnSum !== n2.input || !mlpSum || mlpSum !== next.input)
      fail(`layer ${i}: not a pre-norm residual block (x + attention(LayerNorm(x)), then x + MLP(LayerNorm(x)))`);
    M ||= fc1.weight.shape[0];
    weights.set(l.fc1Weight, fc1.weight);
    weights.set(l.fc1Bias, fc1.bias ?? { shape: [M], data: new Float32Array(M) });
    weights.set(l.fc2Weight, fc2.weight);
    weights.set(l.fc2Bias, fc2.bias ?? { shape: [D], data: new Float32Array(D) });

    const heads = g.numHeads(
      a.scores,
      g.attentionRank(a.softmax, a.scores) ?? 4,
      D,
      typeof inDims[0] === 'number' ? inDims[0] : undefined,
    );
    if (!heads || D % heads) fail(`layer ${i}: the number of attention heads cannot be read from the graph's reshapes`);
    if (H !== undefined && H !== heads) fail(`layers have different head counts (${H} and ${heads})`);
    H = heads;
    const scale = x.attentionScale(a.scores, a.softmax);
    if (scale !== undefined && Math.abs(scale - Math.sqrt(D / heads!)) > 1e-4 * Math.sqrt(D / heads!)) {
      fail(
        `layer ${i}: the attention scale (1/${scale.toPrecision(6)}) does not match ${heads} heads of ${D / heads!}`,
      );
    }
  }

  // Final LayerNorm, [CLS] pooling, optional tanh pre-logits, classifier.
  const final = norms[2 * L];
  weights.set(W.finalNormWeight, final.weight);
  weights.set(W.finalNormBias, final.bias);
  const headLinears = linears.filter(lin => lin.index > final.index);
  if (headLinears.length < 1 || headLinears.length > 2)
    fail(
      `${headLinears.length} linear layers after the final LayerNorm (expected the classifier, optionally after a pre-logits layer)`,
    );
  const pooled = x.opsBetween(headLinears[0].input, final.output, 8);
  if (!pooled) fail('the classifier does not read the final LayerNorm');
  if (pooled!.has('ReduceMean') || !x.picksFirstToken(headLinears[0].input, final.output))
    fail('the classifier does not read the [CLS] token (global average pooling is not supported)');
  let preLogitsSize: number | undefined;
  if (headLinears.length === 2) {
    const [pre, head] = headLinears;
    const between = x.opsBetween(head.input, pre.output, 4);
    if (!between?.has('Tanh'))
      fail('a layer between the final LayerNorm and the classifier that is not a tanh pre-logits layer');
    preLogitsSize = pre.weight.shape[0];
    weights.set(W.preLogitsWeight, take(pre).weight);
    weights.set(W.preLogitsBias, pre.bias ?? { shape: [preLogitsSize], data: new Float32Array(preLogitsSize) });
  }
  const head = take(headLinears[headLinears.length - 1]);
  const K = head.weight.shape[0];
  weights.set(W.headWeight, head.weight);
  weights.set(W.headBias, head.bias ?? { shape: [K], data: new Float32Array(K) });
  const unused = linears.filter(l => !used.has(l));
  if (unused.length) fail(`${unused.length} linear layer(s) that fit no ViT role (first at node ${unused[0].index})`);

  // torchvision's nn.MultiheadAttention always has q/k/v biases; a model without them is exported with zeros.
  const qkvBias = !!weights.get(W.layer(0).qBias) && !allQkvBiasZero;
  if (!qkvBias)
    for (let i = 0; i < L; i++)
      for (const n of [W.layer(i).qBias, W.layer(i).kBias, W.layer(i).vBias]) weights.delete(n);
  const arch: ViTArch = {
    hiddenSize: D,
    numLayers: L,
    numHeads: H!,
    mlpSize: M,
    patchSize: P,
    imageSize,
    numChannels: C,
    layerNormEps: eps,
    qkvBias,
    numClasses: K,
  };
  if (preLogitsSize) arch.preLogitsSize = preLogitsSize;
  return { arch, weights, layout: 'torch.onnx export' };
}

/** Every MatMul/Gemm with a constant 2-D weight, with its bias Add folded in, in node order. */
function findLinears(nodes: Node[], x: Lookup, reader: TensorReader): Linear[] {
  const out: Linear[] = [];
  nodes.forEach((n, index) => {
    if (n.opType === 'MatMul') {
      const [a, b] = n.input ?? [];
      const w = x.constant(b ?? '');
      if (!w || w.dims?.length !== 2 || x.constant(a ?? '')) return;
      const weight = transpose(reader.read(w)); // stored (in, out)
      let output = n.output![0];
      let bias: Tensor | undefined;
      const consumers = x.consumersOf(output);
      if (consumers.length === 1 && consumers[0].opType === 'Add') {
        const other = consumers[0].input!.find(i => i !== output) ?? '';
        const bt = x.constant(other);
        if (
          bt &&
          numel(bt.dims!.map(toNumber)) === weight.shape[0] &&
          bt
            .dims!.map(toNumber)
            .slice(0, -1)
            .every(d => d === 1)
        ) {
          bias = { shape: [weight.shape[0]], data: reader.read(bt).data };
          output = consumers[0].output![0];
        }
      }
      out.push({ index, input: a, output, weight, bias });
    } else if (n.opType === 'Gemm') {
      const [a, b, c] = n.input ?? [];
      const w = x.constant(b ?? '');
      if (!w || x.constant(a ?? '')) return;
      if (toNumber(attr(n, 'transA')?.i ?? 0) || (attr(n, 'alpha')?.f ?? 1) !== 1 || (attr(n, 'beta')?.f ?? 1) !== 1)
        return;
      const raw = reader.read(w);
      const weight = toNumber(attr(n, 'transB')?.i ?? 0) ? raw : transpose(raw);
      const bt = c ? x.constant(c) : undefined;
      if (c && (!bt || numel(bt.dims!.map(toNumber)) !== weight.shape[0])) return;
      out.push({
        index,
        input: a,
        output: n.output![0],
        weight,
        bias: bt ? { shape: [weight.shape[0]], data: reader.read(bt).data } : undefined,
      });
    }
  });
  return out;
}

/** LayerNormalization ops, and LayerNorm decomposed as torch exports it below opset 17. */
function findNorms(nodes: Node[], x: Lookup, reader: TensorReader, fail: (what: string) => never): Norm[] {
  const out: Norm[] = [];
  const vector = (name: string | undefined) => {
    const t = name ? x.constant(name) : undefined;
    return t ? { shape: [numel(t.dims!.map(toNumber))], data: reader.read(t).data } : undefined;
  };
  nodes.forEach((n, index) => {
    if (n.opType === 'LayerNormalization') {
      const axis = toNumber(attr(n, 'axis')?.i ?? -1);
      if (axis !== -1) fail(`a LayerNormalization over axis ${axis}`);
      const weight = vector(n.input?.[1]);
      if (!weight) fail('a LayerNormalization whose scale is not constant');
      const bias = n.input?.[2]
        ? vector(n.input[2])
        : { shape: weight!.shape, data: new Float32Array(weight!.shape[0]) };
      if (!bias) fail('a LayerNormalization whose bias is not constant');
      const eps = attr(n, 'epsilon')?.f ?? 1e-5;
      out.push({
        index,
        input: n.input![0],
        output: n.output![0],
        weight: weight!,
        bias: bias!,
        eps: shortestFloat32(eps),
      });
    } else if (n.opType === 'Sqrt') {
      // x - mean(x) → Pow 2 → ReduceMean → Add eps → Sqrt; (x - mean) / Sqrt → Mul γ → Add β.
      const addEps = x.producerOf(n.input?.[0] ?? '');
      if (addEps?.opType !== 'Add') return;
      const epsName = addEps.input!.find(i => x.constant(i));
      const varMean = x.producerOf(addEps.input!.find(i => i !== epsName) ?? '');
      const pow = varMean?.opType === 'ReduceMean' ? x.producerOf(varMean.input?.[0] ?? '') : undefined;
      const sub = pow?.opType === 'Pow' ? x.producerOf(pow.input?.[0] ?? '') : undefined;
      const mean = sub?.opType === 'Sub' ? x.producerOf(sub.input?.[1] ?? '') : undefined;
      if (!epsName || mean?.opType !== 'ReduceMean' || mean.input?.[0] !== sub!.input?.[0]) return;
      const axes = (op: Node) =>
        attr(op, 'axes')?.ints?.map(toNumber) ?? (op.input?.[1] ? x.ints(op.input[1]) : undefined);
      if (axes(mean)?.join() !== '-1' || axes(varMean!)?.join() !== '-1' || x.floats(pow!.input?.[1] ?? '')?.[0] !== 2)
        return;
      const div = x.consumersOf(n.output![0]).find(c => c.opType === 'Div' && c.input?.[0] === sub!.output![0]);
      const mul = div && x.consumersOf(div.output![0]).find(c => c.opType === 'Mul');
      const add = mul && x.consumersOf(mul.output![0]).find(c => c.opType === 'Add');
      const weight = vector(mul?.input?.find(i => i !== div!.output![0]));
      const bias = vector(add?.input?.find(i => i !== mul!.output![0]));
      if (!weight || !bias) fail(`a LayerNorm (at node ${index}) without a constant scale and bias`);
      const epsValue = x.floats(epsName)?.[0];
      if (epsValue === undefined) fail(`a LayerNorm (at node ${index}) whose epsilon is not readable`);
      out.push({
        index: nodes.indexOf(add!),
        input: sub!.input![0],
        output: add!.output![0],
        weight: weight!,
        bias: bias!,
        eps: shortestFloat32(epsValue!),
      });
    }
  });
  return out.sort((a, b) => a.index - b.index);
}

/**
 * Which third of a fused qkv output a traced path takes: a Gather (constant index), a Split output,
 * or a Slice whose start is a constant or `chunk * c` (torch's dynamic chunk()). Undefined when the
 * path picks nothing.
 */
function chunkIndex(pathNodes: PathStep[], x: Lookup, D: number): number | undefined {
  for (const { node, from, out } of pathNodes) {
    if (node.opType === 'Gather' && node.input?.[0] === from) {
      const idx = x.ints(node.input?.[1] ?? '');
      return idx?.length === 1 ? idx[0] : -1;
    }
    if (node.opType === 'Split') return node.output!.indexOf(out);
    if (node.opType === 'Slice') {
      const start = node.input?.[1] ?? '';
      const s = x.ints(start);
      if (s?.length === 1) return s[0] % D === 0 ? s[0] / D : -1;
      const mul = x.producerOf(start);
      if (mul?.opType === 'Mul') {
        const c = mul.input!.map(i => x.ints(i)).find(v => v?.length === 1);
        return c ? c[0] : -1;
      }
      return -1;
    }
  }
  return undefined;
}
