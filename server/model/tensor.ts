/** A dense float32 tensor in row-major order. All weights travel through the engine in this form. */
export interface Tensor {
  shape: number[];
  data: Float32Array;
}

/** Weights keyed by their canonical (Hugging Face ViTForImageClassification) names; see vitConfig.ts. */
export type WeightMap = Map<string, Tensor>;

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function tensor(shape: number[], data?: Float32Array): Tensor {
  const n = numel(shape);
  if (data && data.length !== n) {
    throw new Error(`tensor data has ${data.length} values but shape [${shape.join(', ')}] needs ${n}`);
  }
  return { shape, data: data ?? new Float32Array(n) };
}

/** 2-D transpose, used to turn (in, out) kernels into (out, in) linear weights and back. */
export function transpose2d(t: Tensor): Tensor {
  if (t.shape.length !== 2) throw new Error(`transpose2d needs a 2-D tensor, got [${t.shape.join(', ')}]`);
  const [r, c] = t.shape;
  const out = new Float32Array(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = t.data[i * c + j];
  return { shape: [c, r], data: out };
}

/** General axis permutation: output axis i is input axis perm[i]. */
export function permute(t: Tensor, perm: number[]): Tensor {
  const rank = t.shape.length;
  const shape = perm.map(p => t.shape[p]);
  const inStride = new Array<number>(rank);
  inStride[rank - 1] = 1;
  for (let a = rank - 2; a >= 0; a--) inStride[a] = inStride[a + 1] * t.shape[a + 1];
  const stride = perm.map(p => inStride[p]);
  const out = new Float32Array(t.data.length);
  const index = new Array<number>(rank).fill(0);
  let offset = 0;
  for (let i = 0; i < out.length; i++) {
    out[i] = t.data[offset];
    for (let a = rank - 1; a >= 0; a--) {
      index[a]++;
      offset += stride[a];
      if (index[a] < shape[a]) break;
      offset -= stride[a] * shape[a];
      index[a] = 0;
    }
  }
  return { shape, data: out };
}
