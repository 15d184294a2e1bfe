/**
 * ONNX initializer data as our Tensor: raw_data (little-endian), float_data/double_data, int32_data
 * (fp16), and external data files next to the model (read, or inlined into the model).
 */
import { onnx } from 'onnx-proto';
import { numel, Tensor } from '../model/tensor';
import { ExternalDataReader, type ExternalDataRef } from './externalData';
import { toNumber } from './onnxGraph';

type TensorProto = onnx.ITensorProto;
const DT = onnx.TensorProto.DataType;

export class TensorReader {
  private readonly external: ExternalDataReader;
  constructor(
    dir: string,
    private readonly file: string,
  ) {
    this.external = new ExternalDataReader(dir, file);
  }

  read(t: TensorProto): Tensor {
    if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) {
      const rawData = this.external.read(externalRef(t));
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
        if (raw.byteLength !== 4 * n)
          throw new Error(`${file}: tensor "${t.name}" has ${raw.byteLength} bytes for ${n} floats`);
        for (let i = 0; i < n; i++) data[i] = view.getFloat32(i * 4, true);
      } else data = Float32Array.from(t.floatData ?? []);
    } else if (t.dataType === DT.DOUBLE) {
      if (raw) {
        const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
        data = Float32Array.from({ length: n }, (_, i) => view.getFloat64(i * 8, true));
      } else data = Float32Array.from(t.doubleData ?? []);
    } else if (t.dataType === DT.FLOAT16) {
      const halves = raw
        ? Array.from({ length: n }, (_, i) => raw[2 * i] | (raw[2 * i + 1] << 8))
        : (t.int32Data ?? []);
      data = Float32Array.from(halves, halfToFloat);
    } else {
      throw new Error(
        `${file}: tensor "${t.name}" has data type ${onnx.TensorProto.DataType[t.dataType ?? 0]}, not a float type`,
      );
    }
    if (data.length !== n)
      throw new Error(`${file}: tensor "${t.name}" has ${data.length} values for shape [${shape.join(', ')}]`);
    return { shape, data };
  }
}

const MAX_PROTO_BYTES = 2 ** 31 - 1; // protobuf's hard limit on one message

/**
 * Moves tensors stored in external data files (big exports keep weights beside the .onnx) into the
 * model, since ONNX Runtime cannot resolve relative data files for a model passed as bytes.
 * Returns whether anything was inlined.
 */
export function inlineExternalData(model: onnx.ModelProto, modelDir: string | undefined): boolean {
  const tensors: TensorProto[] = [...(model.graph?.initializer ?? [])];
  for (const n of model.graph?.node ?? []) for (const a of n.attribute ?? []) if (a.t) tensors.push(a.t);
  const external = tensors.filter(t => t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL);
  if (external.length === 0) return false;

  if (!modelDir) {
    throw new Error(
      `ONNX model stores its weights in external data ("${externalRef(external[0]).location}", expected next to the .onnx file); open the model from its file so that data can be found`,
    );
  }
  const reader = new ExternalDataReader(modelDir, 'ONNX model');
  let total = 0;
  for (const t of external) {
    const data = reader.read(externalRef(t));
    total += data.length;
    if (total > MAX_PROTO_BYTES)
      throw new Error(`ONNX model's external data exceeds 2 GB, too large to load as one protobuf`);
    t.rawData = data;
    t.externalData = [];
    t.dataLocation = onnx.TensorProto.DataLocation.DEFAULT;
  }
  return true;
}

/** Where an external tensor's bytes are, as stored in its `external_data` entries. */
function externalRef(t: TensorProto): ExternalDataRef {
  const entry = (key: string) => t.externalData?.find(e => e.key === key)?.value ?? undefined;
  return { tensor: t.name ?? '', location: entry('location'), offset: entry('offset'), length: entry('length') };
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
