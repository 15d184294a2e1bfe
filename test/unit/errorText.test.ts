/**
 * The text of the errors we show: ONNX Runtime's messages without its internals, long values cut
 * in the middle, and a schema problem as "field problem".
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cleanOrtMessage } from '../../server/inference';
import { check, obj, shorten, shortenLongRuns, text } from '../../server/util/validate';
import * as v from 'valibot';

test('ONNX Runtime messages lose ANSI codes, C++ source paths and signatures, and keep what is wrong', () => {
  // Verbatim from onnxruntime-node 1.30 (a LayerNormalization with epsilon -1), with its log line's colours.
  const raw =
    '\x1b[1;31mException during initialization: /onnxruntime_src/onnxruntime/contrib_ops/cpu/skip_layer_norm.cc:132 ' +
    'onnxruntime::contrib::SkipLayerNorm<T, simplified>::SkipLayerNorm(const onnxruntime::OpKernelInfo&) [with T = float; bool simplified = false] epsilon_ >= 0 was false. \n\x1b[m';
  assert.equal(cleanOrtMessage(raw), 'Exception during initialization: epsilon_ >= 0 was false.');
  const plain = 'Invalid rank for input: x Got: 4 Expected: 2 Please fix either the inputs/outputs or the model.';
  assert.equal(cleanOrtMessage(plain), plain);
  assert.equal(
    cleanOrtMessage(
      '/onnxruntime_src/onnxruntime/core/graph/graph.cc:1490 void onnxruntime::Graph::InitializeStateFromModelFileGraphProto() This is an invalid model.',
    ),
    'This is an invalid model.',
  );
});

test('long values are cut in the middle, saying how long they were', () => {
  const long = '/tmp/' + 'a'.repeat(10_000) + '/end.png';
  const cut = shorten(long);
  assert.ok(cut.length < 160, cut);
  assert.ok(cut.startsWith('/tmp/aaa') && cut.includes('end.png (10013 characters)'), cut);
  assert.equal(shorten('short'), 'short');
  const message = shortenLongRuns(`${long}: file not found`);
  assert.ok(message.length < 300 && message.endsWith(': file not found'), message);
});

test('a schema problem names the field by its path', () => {
  const schema = obj({
    images: v.array(text('an image file path', 10)),
    overlay: v.optional(obj({ opacity: v.number() })),
  });
  assert.deepEqual(check(schema, { images: ['a', 3] }, 'params'), {
    ok: false,
    field: 'images[1]',
    problem: 'must be an image file path, got 3',
  });
  assert.deepEqual(check(schema, { images: ['x'.repeat(11)] }, 'params'), {
    ok: false,
    field: 'images[0]',
    problem: 'is 11 characters long; at most 10 are accepted',
  });
  assert.deepEqual(check(schema, { images: [], overlay: {} }, 'params'), {
    ok: false,
    field: 'overlay.opacity',
    problem: 'is missing',
  });
  assert.deepEqual(check(schema, [1], 'params'), {
    ok: false,
    field: 'params',
    problem: 'must be an object, got a list',
  });
  assert.deepEqual(check(schema, { images: ['ok'], extra: 1 }, 'params'), { ok: true, value: { images: ['ok'] } });
});
