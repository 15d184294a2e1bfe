/** Array helpers the parity tests share: little-endian float32 fixtures and the largest elementwise difference. */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';

/** A raw little-endian float32 file (the fixture scripts' .bin outputs). */
export function readF32(file: string): Float32Array {
  const b = fs.readFileSync(file);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

/** max |a[i] − b[i]|, after checking the lengths agree. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, 'lengths differ');
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
