/**
 * ONNX initializer data as our Tensor: raw_data (little-endian), float_data/double_data, int32_data
 * (fp16), and external data files next to the model.
 */
import { onnx } from 'onnx-proto';
import { toNumber } from '../model/attentionTap';
import { numel, Tensor } from '../model/tensor';
import { ExternalDataReader } from './externalData';

type TensorProto = onnx.ITensorProto;
const DT = onnx.TensorProto.DataType;

export class TensorReader {
  private readonly external: ExternalDataReader;
  constructor(dir: string, private readonly file: string) {
    this.external = new ExternalDataReader(dir, file);
  }

  read(t: TensorProto): Tensor {
    if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) {
      const entry = (key: string) => t.externalData?.find((e) => e.key === key)?.value ?? undefined;
      const rawData = this.external.read({ tensor: t.name ?? '', location: entry('location'), offset: entry('offset'), length: entry('length') });
      return TensorReader.inline({ ...t, rawData, dataLocation: onnx.TensorProto.DataLocation.DEFAULT }, this.file);
    }
    return TensorReader.inline(t, this.file);
  }

  static inline(t: TensorProto, file: string): Tensor {
    const shape = (t.dims ?? []).map(toNumber);
    const n = numel(shape);
    const raw = t.rawData && t.rawData.length ? t.rawData : undefined;
    let data: Float32Array;
    if (t.dataType === DT.FLOAT) {
      if (raw) {
        data = new Float32Array(n);
        const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
        if (raw.byteLength !== 4 * n) throw new Error(`${file}: tensor "${t.name}" has ${raw.byteLength} bytes for ${n} floats`);
        for (let i = 0; i < n; i++) data[i] = view.getFloat32(i * 4, true);
      } else data = Float32Array.from(t.floatData ?? []);
    } else if (t.dataType === DT.DOUBLE) {
      if (raw) {
        const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
        data = Float32Array.from({ length: n }, (_, i) => view.getFloat64(i * 8, true));
      } else data = Float32Array.from(t.doubleData ?? []);
    } else if (t.dataType === DT.FLOAT16) {
      const halves = raw ? Array.from({ length: n }, (_, i) => raw[2 * i] | (raw[2 * i + 1] << 8)) : (t.int32Data ?? []);
      data = Float32Array.from(halves, halfToFloat);
    } else {
      throw new Error(`${file}: tensor "${t.name}" has data type ${onnx.TensorProto.DataType[t.dataType ?? 0]}, not a float type`);
    }
    if (data.length !== n) throw new Error(`${file}: tensor "${t.name}" has ${data.length} values for shape [${shape.join(', ')}]`);
    return { shape, data };
  }
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

/** The shortest decimal that is the same float32 (an epsilon of 1e-6 is stored as 9.99999997e-7). */
export function shortestFloat32(v: number): number {
  const f = Math.fround(v);
  for (let p = 1; p <= 9; p++) {
    const d = Number(f.toPrecision(p));
    if (Math.fround(d) === f) return d;
  }
  return f;
}
