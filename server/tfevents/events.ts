/**
 * Decodes TensorBoard `Event` records (tensorboard/compat/proto/event.proto, summary.proto, tensor.proto)
 * with protobufjs and extracts scalars from both summary styles:
 *  - old style: `Summary.Value.simple_value` (torch.utils.tensorboard add_scalar, tensorboardX, TF1);
 *  - TF2 style: `Summary.Value.tensor` with `metadata.plugin_data.plugin_name == "scalars"`
 *    (tf.summary.scalar, Keras, HF Trainer on TF), as float_val / double_val / tensor_content.
 * Only the fields needed are declared; protobufjs skips the others (graph_def, images, histograms ...).
 */
import * as protobuf from 'protobufjs';

const PROTO = `
syntax = "proto3";
package tensorboard;
message TensorShapeProto { message Dim { int64 size = 1; string name = 2; } repeated Dim dim = 2; bool unknown_rank = 3; }
message TensorProto {
  int32 dtype = 1;
  TensorShapeProto tensor_shape = 2;
  bytes tensor_content = 4;
  repeated float float_val = 5;
  repeated double double_val = 6;
}
message PluginData { string plugin_name = 1; bytes content = 2; }
message SummaryMetadata { PluginData plugin_data = 1; }
message Summary {
  message Value {
    string tag = 1;
    SummaryMetadata metadata = 9;
    oneof value { float simple_value = 2; TensorProto tensor = 8; }
  }
  repeated Value value = 1;
}
message Event {
  double wall_time = 1;
  int64 step = 2;
  oneof what { string file_version = 3; Summary summary = 5; }
}
`;

const root = protobuf.parse(PROTO, { keepCase: true }).root;
const EventType = root.lookupType('tensorboard.Event');

export const DT_FLOAT = 1;
export const DT_DOUBLE = 2;

export interface Scalar {
  tag: string;
  step: number;
  /** Seconds since the epoch, as written by the writer. */
  wallTime: number;
  value: number;
}

interface DecodedTensor {
  dtype?: number;
  tensor_shape?: { dim?: { size?: number }[] };
  tensor_content?: Uint8Array;
  float_val?: number[];
  double_val?: number[];
}
interface DecodedValue {
  tag?: string;
  metadata?: { plugin_data?: { plugin_name?: string } };
  simple_value?: number;
  tensor?: DecodedTensor;
}
interface DecodedEvent {
  wall_time?: number;
  step?: number;
  file_version?: string;
  summary?: { value?: DecodedValue[] };
}

/** The single value of a scalar tensor, or undefined if it is not a float/double scalar. */
export function tensorScalar(t: DecodedTensor): number | undefined {
  const dims = t.tensor_shape?.dim ?? [];
  if (dims.some(d => (d.size ?? 0) !== 1)) return undefined;
  const dtype = t.dtype ?? 0;
  if (dtype === DT_FLOAT) {
    if (t.float_val && t.float_val.length === 1) return t.float_val[0];
    const c = t.tensor_content;
    if (c && c.length === 4) return new DataView(c.buffer, c.byteOffset, 4).getFloat32(0, true);
  } else if (dtype === DT_DOUBLE) {
    if (t.double_val && t.double_val.length === 1) return t.double_val[0];
    const c = t.tensor_content;
    if (c && c.length === 8) return new DataView(c.buffer, c.byteOffset, 8).getFloat64(0, true);
  }
  return undefined;
}

export interface DecodedRecord {
  wallTime: number;
  step: number;
  fileVersion?: string;
  scalars: Scalar[];
}

/**
 * Decodes events of one file. Stateful because TF2 writers put a tag's plugin metadata only on its
 * first value in a file; later tensor values of that tag carry no metadata and are recognised by tag.
 */
export class EventDecoder {
  private readonly pluginOfTag = new Map<string, string>();

  /** Throws (with protobufjs' message) on an undecodable record; the caller adds file and offset. */
  decode(data: Uint8Array): DecodedRecord {
    // toObject keeps only fields present on the wire (so an unset simple_value is absent, a 0.0 one is
    // kept) and turns int64 into numbers (exact up to 2^53).
    const ev = EventType.toObject(EventType.decode(data), { longs: Number }) as DecodedEvent;
    const wallTime = ev.wall_time ?? 0;
    const step = ev.step ?? 0;
    const scalars: Scalar[] = [];
    for (const v of ev.summary?.value ?? []) {
      const tag = v.tag ?? '';
      const plugin = v.metadata?.plugin_data?.plugin_name;
      if (plugin) this.pluginOfTag.set(tag, plugin);
      if (typeof v.simple_value === 'number') {
        scalars.push({ tag, step, wallTime, value: v.simple_value });
      } else if (v.tensor && (this.pluginOfTag.get(tag) ?? 'scalars') === 'scalars') {
        // A tag never seen with metadata (e.g. its first record was lost to corruption) is taken as a
        // scalar when its tensor is a 0-d float/double; tags of other plugins are never read as scalars.
        const value = tensorScalar(v.tensor);
        if (value !== undefined) scalars.push({ tag, step, wallTime, value });
      }
      // anything else (images, audio, histograms, text, hparams ...) is ignored
    }
    return { wallTime, step, fileVersion: ev.file_version || undefined, scalars };
  }
}
