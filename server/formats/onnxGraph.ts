/**
 * One index over an ONNX graph — who produces and who consumes each tensor, which tensors are
 * constant, what types are declared — and the small readers of ONNX protos (attributes, int64s,
 * dims). Shared by the attention tap (model/attentionTap.ts) and the recovery of a torch export's
 * weights (onnxWeights.ts, onnxGraphLookup.ts).
 */
import { onnx } from 'onnx-proto';

type Node = onnx.INodeProto;
type TensorProto = onnx.ITensorProto;
const DataType = onnx.TensorProto.DataType;

export class OnnxGraph {
  readonly nodes: Node[];
  private readonly producer = new Map<string, Node>();
  private readonly consumers = new Map<string, Node[]>();
  private readonly initializers = new Map<string, TensorProto>();
  private readonly folded = new Set<string>();
  /** Types declared in value_info, inputs and outputs. */
  private readonly declared = new Map<string, onnx.ITypeProto>();

  constructor(readonly graph: onnx.IGraphProto) {
    this.nodes = graph.node ?? [];
    for (const v of [...(graph.valueInfo ?? []), ...(graph.input ?? []), ...(graph.output ?? [])]) {
      if (v.name && v.type) this.declared.set(v.name, v.type);
    }
    for (const t of graph.initializer ?? []) this.initializers.set(t.name ?? '', t);
    for (const name of this.initializers.keys()) this.folded.add(name);
    // Nodes are topologically sorted (an ONNX requirement), so one pass propagates constness.
    for (const n of this.nodes) {
      const inputs = (n.input ?? []).filter(i => i !== '');
      const constant = n.opType === 'Constant' || (inputs.length > 0 && inputs.every(i => this.folded.has(i)));
      for (const o of n.output ?? []) {
        this.producer.set(o, n);
        if (constant) this.folded.add(o);
      }
      for (const i of inputs) {
        const list = this.consumers.get(i);
        if (list) list.push(n);
        else this.consumers.set(i, [n]);
      }
    }
  }

  producerOf(name: string): Node | undefined {
    return this.producer.get(name);
  }

  consumersOf(name: string): Node[] {
    return this.consumers.get(name) ?? [];
  }

  initializer(name: string): TensorProto | undefined {
    return this.initializers.get(name);
  }

  allInitializers(): Iterable<TensorProto> {
    return this.initializers.values();
  }

  declaredType(name: string): onnx.ITypeProto | undefined {
    return this.declared.get(name);
  }

  /** Computed from constants alone (initializers, Constant nodes, ops on them such as shape arithmetic): never an activation. */
  isFolded(name: string): boolean {
    return this.folded.has(name);
  }

  /** An initializer or Constant value, seen through Identity (torch's dedup of equal parameters). */
  constant(name: string): TensorProto | undefined {
    for (let hop = 0; hop < 8; hop++) {
      const init = this.initializers.get(name);
      if (init) return init;
      const p = this.producer.get(name);
      if (p?.opType === 'Constant') return attr(p, 'value')?.t ?? undefined;
      if (p?.opType !== 'Identity') return undefined;
      name = p.input?.[0] ?? '';
    }
    return undefined;
  }

  /** Values of a constant int tensor (an initializer, a Constant's `value` or `value_ints`, through Identity), else undefined. */
  ints(name: string): number[] | undefined {
    const t = this.constant(name);
    if (t) return tensorInts(t);
    const p = this.producer.get(name);
    const ints = p?.opType === 'Constant' ? attr(p, 'value_ints')?.ints : undefined;
    return ints ? ints.map(toNumber) : undefined;
  }

  /** The first graph input that is not an initializer (old exporters list weights as inputs too). */
  imageInput(): { name: string; type: onnx.ITypeProto | null | undefined } {
    const input = (this.graph.input ?? []).find(i => !this.initializers.has(i.name ?? ''));
    if (!input?.name) throw new Error('ONNX model has no (non-initializer) input');
    return { name: input.name, type: input.type };
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
}

export function attr(node: Node, name: string): onnx.IAttributeProto | undefined {
  return node.attribute?.find(a => a.name === name);
}

export function toNumber(v: number | { toNumber(): number } | null | undefined): number {
  if (v === null || v === undefined) return 0;
  return typeof v === 'number' ? v : v.toNumber();
}

export function dimsOf(type: onnx.ITypeProto | null | undefined): (number | string)[] {
  return (type?.tensorType?.shape?.dim ?? []).map(d => {
    const value = toNumber(d.dimValue);
    return value > 0 ? value : d.dimParam || '?';
  });
}

export function tensorInts(t: TensorProto): number[] | undefined {
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
