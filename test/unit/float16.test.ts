/** Our float32 → float16 rounding (fp16 builds) against numpy's astype(float16), bit for bit. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'child_process';
import { toFloat16Bits } from '../../server/model/onnxBuilder';

const NUMPY = `
import sys, numpy as np
x = np.frombuffer(sys.stdin.buffer.read(), dtype=np.float32)
sys.stdout.buffer.write(x.astype(np.float16).view(np.uint16).tobytes())
`;

test('float32 → float16 bits equal numpy (normals, subnormals, ties, overflow, inf, NaN, ±0)', () => {
  const special = [
    0,
    -0,
    1,
    -1,
    65504,
    65505,
    65519,
    65520,
    1e6,
    -1e6,
    Infinity,
    -Infinity,
    6.1e-5,
    6.0e-5,
    5.96e-8,
    2.98e-8,
    2.99e-8,
    1e-9,
    1 + 2 ** -11,
    1 + 3 * 2 ** -11,
    0.1,
    1 / 3,
  ];
  const random = Array.from(
    { length: 20000 },
    (_, i) => ((Math.sin(i * 12.9898) * 43758.5453) % 1) * 10 ** ((i % 24) - 12),
  );
  const x = new Float32Array([...special, ...random]);
  let theirs: Buffer;
  try {
    theirs = execFileSync('/usr/bin/python3', ['-c', NUMPY], { input: Buffer.from(x.buffer) });
  } catch (e) {
    throw new Error(`needs /usr/bin/python3 with numpy (apt-get install python3-numpy): ${(e as Error).message}`);
  }
  const expected = new Uint16Array(theirs.buffer, theirs.byteOffset, theirs.byteLength / 2);
  const ours = toFloat16Bits(x);
  for (let i = 0; i < x.length; i++)
    assert.equal(ours[i], expected[i], `${x[i]}: ours 0x${ours[i].toString(16)}, numpy 0x${expected[i].toString(16)}`);
  assert.equal(toFloat16Bits(new Float32Array([NaN]))[0] & 0x7c00, 0x7c00);
});
