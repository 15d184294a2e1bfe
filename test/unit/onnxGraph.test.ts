/**
 * The one ONNX graph index (server/formats/onnxGraph.ts) that the attention tap and the weight
 * recovery share: producers and consumers, folded constness, stored constants seen through
 * torch's Identity dedup nodes, and int constants in each way exporters write them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { onnx } from 'onnx-proto';
import { OnnxGraph } from '../../server/formats/onnxGraph';

const INT64 = onnx.TensorProto.DataType.INT64;
const raw64 = (values: number[]) => new Uint8Array(new BigInt64Array(values.map(BigInt)).buffer);

// x ─Reshape(shape: Identity of an initializer)─▶ r ─Add(bias)─▶ y; a Constant(value_ints) and Shape→Gather arithmetic on constants.
const graph: onnx.IGraphProto = {
  input: [{ name: 'shape0' }, { name: 'x', type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT } } }],
  initializer: [
    { name: 'shape0', dataType: INT64, dims: [3], rawData: raw64([1, 5, 8]) },
    { name: 'bias', dataType: INT64, dims: [1], int64Data: [7] },
  ],
  node: [
    { opType: 'Identity', input: ['shape0'], output: ['shape'] },
    { opType: 'Constant', output: ['axes'], attribute: [{ name: 'value_ints', ints: [0, 2] }] },
    { opType: 'Shape', input: ['shape'], output: ['n'] },
    { opType: 'Reshape', input: ['x', 'shape'], output: ['r'] },
    { opType: 'Add', input: ['r', 'bias'], output: ['y'] },
    { opType: 'Mul', input: ['r', 'r'], output: ['sq'] },
  ],
};

test('producers, consumers and the image input (the first input that is not an initializer)', () => {
  const g = new OnnxGraph(graph);
  assert.equal(g.producerOf('y')?.opType, 'Add');
  assert.deepEqual(
    g.consumersOf('r').map(n => n.opType),
    ['Add', 'Mul', 'Mul'],
  );
  assert.deepEqual(g.consumersOf('y'), []);
  assert.equal(g.imageInput().name, 'x');
  assert.equal(g.elemType('y'), onnx.TensorProto.DataType.FLOAT);
});

test('constness is folded through ops on constants only; stored constants and ints are seen through Identity and value_ints', () => {
  const g = new OnnxGraph(graph);
  assert.deepEqual(
    ['shape', 'axes', 'n', 'bias', 'x', 'r', 'y'].map(n => g.isFolded(n)),
    [true, true, true, true, false, false, false],
  );
  assert.equal(g.constant('shape')?.name, 'shape0');
  assert.equal(g.constant('n'), undefined, 'Shape of a constant is folded, but not a stored value');
  assert.deepEqual(g.ints('shape'), [1, 5, 8]);
  assert.deepEqual(g.ints('bias'), [7]);
  assert.deepEqual(g.ints('axes'), [0, 2]);
  assert.equal(g.ints('r'), undefined);
});
