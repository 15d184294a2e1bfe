#!/usr/bin/python3
"""Writes the TensorBoard event-file fixtures for test/unit/tfevents.test.ts.

The `tensorboard` package is not installed here, so torch.utils.tensorboard.SummaryWriter cannot be
used. Instead the Event / Summary / TensorProto messages are defined at run time with google.protobuf
(descriptor_pb2 + message_factory) using the field numbers of tensorboard's event.proto, summary.proto
and tensor.proto, and framed as TFRecords exactly as TensorFlow's record writer does
(uint64 LE length, masked CRC32C of the length, data, masked CRC32C of the data).

Usage: /usr/bin/python3 scripts/make_tfevents_fixtures.py [out_dir]   (default test/fixtures/tfevents)
Writes:
  run_a/events.out.tfevents.1700000000.host.1.0   old-style simple_value scalars + TF2 tensor scalars
                                                  (float_val, tensor_content float32/float64) + an
                                                  image summary and a histogram-plugin summary (ignored)
  run_a/rank1/events.out.tfevents.1700000000.host.2.0   a second run (like a torchrun rank)
  live/events.out.tfevents.1700000100.host.3.0          last record truncated mid-write
  expected.json   every complete scalar written: {run, file, tag, step, wallTime, value}
"""
import json
import os
import struct
import sys

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

F = descriptor_pb2.FieldDescriptorProto


def _build_messages():
    fdp = descriptor_pb2.FileDescriptorProto(name='vitlens_tfevents_fixture.proto', package='tensorboard', syntax='proto3')

    def msg(name, fields):
        m = fdp.message_type.add(name=name)
        for fname, num, ftype, label, type_name in fields:
            f = m.field.add(name=fname, number=num, type=ftype, label=label)
            if type_name:
                f.type_name = type_name
        return m

    OPT, REP = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    msg('TensorShapeProto', [])  # empty shape = scalar
    msg('TensorProto', [
        ('dtype', 1, F.TYPE_INT32, OPT, None),  # DataType enum; int32 has the same wire encoding
        ('tensor_shape', 2, F.TYPE_MESSAGE, OPT, '.tensorboard.TensorShapeProto'),
        ('tensor_content', 4, F.TYPE_BYTES, OPT, None),
        ('float_val', 5, F.TYPE_FLOAT, REP, None),  # proto3: packed
        ('double_val', 6, F.TYPE_DOUBLE, REP, None),
    ])
    msg('PluginData', [('plugin_name', 1, F.TYPE_STRING, OPT, None), ('content', 2, F.TYPE_BYTES, OPT, None)])
    msg('SummaryMetadata', [('plugin_data', 1, F.TYPE_MESSAGE, OPT, '.tensorboard.PluginData')])
    msg('Image', [('height', 1, F.TYPE_INT32, OPT, None), ('width', 2, F.TYPE_INT32, OPT, None),
                  ('colorspace', 3, F.TYPE_INT32, OPT, None), ('encoded_image_string', 4, F.TYPE_BYTES, OPT, None)])
    msg('Value', [
        ('tag', 1, F.TYPE_STRING, OPT, None),
        ('simple_value', 2, F.TYPE_FLOAT, OPT, None),
        ('image', 4, F.TYPE_MESSAGE, OPT, '.tensorboard.Image'),
        ('tensor', 8, F.TYPE_MESSAGE, OPT, '.tensorboard.TensorProto'),
        ('metadata', 9, F.TYPE_MESSAGE, OPT, '.tensorboard.SummaryMetadata'),
    ])
    # proto3 has no presence for scalars; simple_value must be sent even when 0 -> mark it a oneof
    # member like in summary.proto (oneof value { simple_value = 2; ... image = 4; tensor = 8 }).
    v = fdp.message_type[-1]
    v.oneof_decl.add(name='value')
    for f in v.field:
        if f.name in ('simple_value', 'image', 'tensor'):
            f.oneof_index = 0
    msg('Summary', [('value', 1, F.TYPE_MESSAGE, REP, '.tensorboard.Value')])
    msg('Event', [
        ('wall_time', 1, F.TYPE_DOUBLE, OPT, None),
        ('step', 2, F.TYPE_INT64, OPT, None),
        ('file_version', 3, F.TYPE_STRING, OPT, None),
        ('summary', 5, F.TYPE_MESSAGE, OPT, '.tensorboard.Summary'),
    ])
    ev = fdp.message_type[-1]
    ev.oneof_decl.add(name='what')
    for f in ev.field:
        if f.name in ('file_version', 'summary'):
            f.oneof_index = 0

    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    get = lambda n: message_factory.MessageFactory(pool).GetPrototype(pool.FindMessageTypeByName('tensorboard.' + n))
    return get('Event'), get('Summary')


Event, Summary = _build_messages()
DT_FLOAT, DT_DOUBLE = 1, 2


# ---- CRC32C (Castagnoli, reflected poly 0x82F63B78) and TFRecord framing ----
_T = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    _T.append(c)


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = _T[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def masked(data):
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def frame(data):
    n = struct.pack('<Q', len(data))
    return n + struct.pack('<I', masked(n)) + data + struct.pack('<I', masked(data))


assert crc32c(b'123456789') == 0xE3069283  # standard CRC32C check value


def f32(x):
    return struct.unpack('<f', struct.pack('<f', x))[0]


class Writer:
    def __init__(self, root, run, name, wall0):
        self.rel = os.path.join(run, name) if run else name
        self.run = run
        self.path = os.path.join(root, self.rel)
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self.records = []
        self.expected = []
        e = Event(wall_time=wall0, file_version='brain.Event:2')
        self.records.append(e.SerializeToString())

    def _add(self, wall, step, fill, tag, value):
        e = Event(wall_time=wall, step=step)
        v = e.summary.value.add(tag=tag)
        fill(v)
        self.records.append(e.SerializeToString())
        if value is not None:
            self.expected.append(dict(run=self.run, file=self.rel.replace(os.sep, '/'), tag=tag, step=step, wallTime=wall, value=value))

    def simple(self, wall, step, tag, x):  # torch SummaryWriter.add_scalar style
        self._add(wall, step, lambda v: setattr(v, 'simple_value', x), tag, f32(x))

    def tensor(self, wall, step, tag, x, how, meta=True):  # TF2 tf.summary.scalar style
        # tf.summary writes the plugin metadata only with a tag's first value in a file (meta=False after).
        def fill(v):
            if meta:
                v.metadata.plugin_data.plugin_name = 'scalars'
            t = v.tensor
            t.tensor_shape.SetInParent()
            if how == 'float_val':
                t.dtype = DT_FLOAT
                t.float_val.append(x)
            elif how == 'double_val':
                t.dtype = DT_DOUBLE
                t.double_val.append(x)
            elif how == 'content_f32':
                t.dtype = DT_FLOAT
                t.tensor_content = struct.pack('<f', x)
            elif how == 'content_f64':
                t.dtype = DT_DOUBLE
                t.tensor_content = struct.pack('<d', x)
            else:
                raise ValueError(how)
        value = x if how in ('double_val', 'content_f64') else f32(x)
        self._add(wall, step, fill, tag, value)

    def image(self, wall, step, tag):  # ignored by the reader
        def fill(v):
            v.image.height = 1
            v.image.width = 1
            v.image.colorspace = 3
            v.image.encoded_image_string = b'\x89PNG-not-really'
        self._add(wall, step, fill, tag, None)

    def histogram_tensor(self, wall, step, tag):  # a tensor summary of another plugin: ignored
        def fill(v):
            v.metadata.plugin_data.plugin_name = 'histograms'
            v.tensor.dtype = DT_DOUBLE
            v.tensor.double_val.extend([0.0, 1.0, 3.0, 1.0, 2.0, 5.0])
        self._add(wall, step, fill, tag, None)

    def data(self):
        return b''.join(frame(r) for r in self.records)


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), '..', 'test', 'fixtures', 'tfevents')
    os.makedirs(root, exist_ok=True)
    expected = []

    # run_a: the main run, both scalar styles, several tags, one non-scalar summary of each kind.
    a = Writer(root, 'run_a', 'events.out.tfevents.1700000000.host.1.0', 1700000000.0)
    for step in range(0, 10):
        wall = 1700000000.0 + 1.25 * step + 0.001
        a.simple(wall, step, 'train/loss', 2.5 / (1 + step) + 0.1)
        a.simple(wall, step, 'train/lr', 1e-3 * (0.9 ** step))
        if step % 3 == 0:
            a.tensor(wall + 0.5, step, 'eval/accuracy', 0.1 + 0.08 * step, 'float_val', meta=step == 0)
            a.tensor(wall + 0.5, step, 'eval/loss_f64', 1.0 / (3 + step), 'double_val', meta=step == 0)
    a.tensor(1700000020.0, 10, 'eval/accuracy', 0.875, 'content_f32', meta=False)
    a.tensor(1700000020.0, 10, 'eval/top5', 0.9876543210123, 'content_f64')
    a.simple(1700000021.0, 11, 'train/loss', 0.0)  # zero must survive (oneof presence)
    a.simple(1700000021.0, 2**40, 'train/big_step', -1.5)  # int64 step beyond 32 bits
    a.image(1700000022.0, 11, 'samples/image')
    a.histogram_tensor(1700000022.0, 11, 'weights/hist')

    # run_a/rank1: a second run in a sub-folder (like torchrun rank 1 writing its own file).
    b = Writer(root, 'run_a/rank1', 'events.out.tfevents.1700000000.host.2.0', 1700000000.5)
    for step in range(0, 6):
        b.simple(1700000001.0 + step, step, 'train/loss', 3.0 / (1 + step))
        b.tensor(1700000001.0 + step, step, 'train/lr', 5e-4, 'float_val')

    files = [a, b]
    for w in files:
        with open(w.path, 'wb') as fh:
            fh.write(w.data())
        expected.extend(w.expected)

    # live: a writer killed mid-record; the last record is cut in its data part.
    c = Writer(root, 'live', 'events.out.tfevents.1700000100.host.3.0', 1700000100.0)
    for step in range(4):
        c.simple(1700000100.0 + step, step, 'train/loss', 1.0 - 0.2 * step)
    complete = c.data()
    c_expected = list(c.expected)
    c.simple(1700000105.0, 4, 'train/loss', 0.123)  # this one is truncated
    full = c.data()
    cut = len(complete) + 12 + 5  # header + 5 data bytes of the last record
    assert cut < len(full)
    with open(c.path, 'wb') as fh:
        fh.write(full[:cut])
    expected.extend(c_expected)

    with open(os.path.join(root, 'expected.json'), 'w') as fh:
        json.dump(dict(
            note='Written by scripts/make_tfevents_fixtures.py with google.protobuf (no tensorboard package).',
            truncated=dict(file=c.rel.replace(os.sep, '/'), completeBytes=len(complete), size=cut,
                           # the bytes the killed writer never wrote, so a test can "finish" the record
                           missingTailHex=full[cut:].hex(), missingScalar=c.expected[-1]),
            scalars=expected,
        ), fh, indent=1)
        fh.write('\n')
    print('wrote', len(expected), 'scalars to', os.path.normpath(root))


if __name__ == '__main__':
    main()
