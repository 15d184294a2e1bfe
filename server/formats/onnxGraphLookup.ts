/**
 * The walks over an ONNX graph that the torch.onnx weight recovery (onnxWeights.ts) needs: back
 * through moves to a tensor's source, forward to a residual Add, to the ·V MatMul, the attention
 * scale. Built on the shared graph index (onnxGraph.ts); "constant" is a stored value seen through
 * Identity dedup nodes.
 */
import { onnx } from 'onnx-proto';
import { numel } from '../model/tensor';
import { attr, OnnxGraph, tensorInts, toNumber } from './onnxGraph';
import { TensorReader } from './onnxTensors';

type Node = onnx.INodeProto;
const DT = onnx.TensorProto.DataType;

/** One node passed when tracing back: `from` its input, to its output `out`. */
export interface PathStep {
  node: Node;
  from: string;
  out: string;
}

/** Ops that only move or relabel values; walked through when tracing a tensor back to its source. */
const MOVES = new Set([
  'Reshape',
  'Transpose',
  'Identity',
  'Cast',
  'Flatten',
  'Squeeze',
  'Unsqueeze',
  'Dropout',
  'Expand',
]);
/** Scaling by a constant (q * dh^-0.5, scores / sqrt(dh)). */
const SCALES = new Set(['Mul', 'Div']);

/** The weight recovery's walks over one graph. */
export class Lookup extends OnnxGraph {
  /** A small (≤ 16 values) constant as numbers: scales, epsilons. */
  floats(name: string): number[] | undefined {
    const t = this.constant(name);
    if (!t || numel((t.dims ?? []).map(toNumber)) > 16) return undefined;
    if (t.dataType === DT.FLOAT || t.dataType === DT.DOUBLE || t.dataType === DT.FLOAT16)
      return Array.from(TensorReader.inline(t, '').data);
    return tensorInts(t);
  }

  /** Whether `name` is `source` or computed from it through up to `hops` single-activation ops. */
  reachesFrom(name: string, source: string, hops: number): boolean {
    return this.derivesFrom(name, source, hops);
  }

  derivesFrom(name: string, source: string, hops: number): boolean {
    return this.opsBetween(name, source, hops) !== undefined;
  }

  /**
   * The op types on the activation paths from `source` to `name` (following each node's non-constant
   * inputs back, up to `hops` nodes deep); undefined when `name` does not derive from `source`.
   */
  opsBetween(name: string, source: string, hops: number): Set<string> | undefined {
    if (name === source) return new Set();
    if (hops === 0) return undefined;
    const p = this.producerOf(name);
    if (!p) return undefined;
    // The union over every path (GELU's x * (1 + erf(x / √2)) / 2 reaches x both directly and through Erf).
    let ops: Set<string> | undefined;
    for (const i of p.input ?? []) {
      if (!i || this.constant(i)) continue;
      const found = this.opsBetween(i, source, hops - 1);
      if (found) ops = new Set([...(ops ?? []), ...found]);
    }
    return ops?.add(p.opType ?? '');
  }

  /**
   * Walks back from `name` through moves, constant scalings and picks (Gather/Split/Slice) to the
   * first tensor `stop` accepts; returns it and the nodes passed (nearest first).
   */
  traceBack(name: string, stop: (name: string) => boolean): { hit: string; path: PathStep[] } | undefined {
    const pathNodes: PathStep[] = [];
    for (let hop = 0; hop < 12; hop++) {
      if (stop(name)) return { hit: name, path: pathNodes.reverse() };
      const p = this.producerOf(name);
      if (!p) return undefined;
      const op = p.opType ?? '';
      const activations = (p.input ?? []).filter(i => i && !this.constant(i));
      let from: string | undefined;
      if (MOVES.has(op) || SCALES.has(op) || op === 'Gather' || op === 'Split' || op === 'Slice') from = p.input?.[0];
      if (!from || this.constant(from) || (SCALES.has(op) && activations.length !== 1)) return undefined;
      pathNodes.push({ node: p, from, out: name });
      name = from;
    }
    return undefined;
  }

  /** The output of the Add of `stream` and `branch` (seen forward through moves); undefined if none. */
  residualAdd(branch: string, stream: string): string | undefined {
    let frontier = [branch];
    for (let hop = 0; hop < 5 && frontier.length; hop++) {
      const next: string[] = [];
      for (const name of frontier) {
        for (const c of this.consumersOf(name)) {
          if (c.opType === 'Add' && c.input?.length === 2 && c.input.includes(stream) && c.input.includes(name))
            return c.output?.[0];
          if (MOVES.has(c.opType ?? '')) next.push(...(c.output ?? []));
        }
      }
      frontier = next;
    }
    return undefined;
  }

  /** The MatMul that multiplies the probabilities (a Softmax output, via casts/dropout) by V. */
  contextMatMul(probs: string, depth = 0): Node | undefined {
    if (depth > 3) return undefined;
    for (const c of this.consumersOf(probs)) {
      if (c.opType === 'MatMul' && c.input?.[0] === probs && c.input?.[1] && !this.constant(c.input[1])) return c;
      if (['Cast', 'Identity', 'Dropout'].includes(c.opType ?? '')) {
        const found = this.contextMatMul(c.output?.[0] ?? '', depth + 1);
        if (found) return found;
      }
    }
    return undefined;
  }

  /** sqrt(dh) implied by a constant scaling of q or of the scores (x * c → 1/c, x / c → c); undefined when none. */
  attentionScale(scores: Node, softmax: Node): number | undefined {
    const ofScale = (op: Node): number | undefined => {
      const c = op.input!.map(i => (this.constant(i) ? this.floats(i) : undefined)).find(v => v?.length === 1);
      if (!c) return undefined;
      return op.opType === 'Div' ? c[0] : 1 / c[0];
    };
    // Between the scores and the Softmax.
    let name = softmax.input?.[0] ?? '';
    for (let hop = 0; hop < 4 && name !== scores.output?.[0]; hop++) {
      const p = this.producerOf(name);
      if (!p) break;
      if (SCALES.has(p.opType ?? '')) return ofScale(p);
      name = (p.input ?? []).find(i => i && !this.constant(i)) ?? '';
    }
    // On q's path.
    name = scores.input?.[0] ?? '';
    for (let hop = 0; hop < 8; hop++) {
      const p = this.producerOf(name);
      if (
        !p ||
        !(
          MOVES.has(p.opType ?? '') ||
          SCALES.has(p.opType ?? '') ||
          ['Gather', 'Split', 'Slice'].includes(p.opType ?? '')
        )
      )
        break;
      if (SCALES.has(p.opType ?? '')) return ofScale(p);
      name = p.input?.[0] ?? '';
    }
    return undefined;
  }

  /** Whether the path from the final norm to the classifier takes token 0 (x[:, 0]): a Gather index 0 or a Slice 0:1 on axis 1. */
  picksFirstToken(name: string, source: string): boolean {
    for (let hop = 0; hop < 8 && name !== source; hop++) {
      const p = this.producerOf(name);
      if (!p) return false;
      if (p.opType === 'Gather') {
        const idx = this.ints(p.input?.[1] ?? '');
        return toNumber(attr(p, 'axis')?.i ?? 0) === 1 && idx?.length === 1 && idx[0] === 0;
      }
      if (p.opType === 'Slice') {
        const [starts, ends, axes] = [2, 3, 4].map(k => this.ints(p.input?.[k - 1] ?? ''));
        return starts?.join() === '0' && ends?.join() === '1' && (axes?.join() ?? '1') === '1';
      }
      name = (p.input ?? []).find(i => i && !this.constant(i)) ?? '';
    }
    return false;
  }
}
