/**
 * The OpenBLAS core choice (server/train/openblasCore.ts, for --backend torch and the benches): a peer whose OpenBLAS fell back to old
 * kernels on a CPU it does not know gets the core its vector instructions allow, and a pick that
 * already fits is left alone (a faster peer is never slowed down).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { betterOpenBlasCore } from '../../server/train/openblasCore';

const AVX512 = 'fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx avx2 avx512f avx512dq avx512cd avx512bw avx512vl';
const AVX2 = 'fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx avx2';

test('an under-detected AVX-512 CPU gets SkylakeX, an AVX2 one Haswell', () => {
  assert.equal(betterOpenBlasCore('Prescott', AVX512), 'SkylakeX');
  assert.equal(betterOpenBlasCore('Haswell', AVX512), 'SkylakeX');
  assert.equal(betterOpenBlasCore('Sandybridge', AVX2), 'Haswell');
  assert.equal(betterOpenBlasCore('Prescott', AVX2), 'Haswell');
});

test('a pick that fits the CPU is kept', () => {
  for (const core of ['SkylakeX', 'Cooperlake', 'SapphireRapids'])
    assert.equal(betterOpenBlasCore(core, AVX512), undefined);
  for (const core of ['Haswell', 'Zen']) assert.equal(betterOpenBlasCore(core, AVX2), undefined);
  // Without AVX2 + FMA there is nothing better to pick.
  assert.equal(betterOpenBlasCore('Sandybridge', 'fpu sse sse2 avx'), undefined);
  // A flag's prefix is not the flag (avx512f_x is not avx512f).
  assert.equal(betterOpenBlasCore('Haswell', 'avx2 fma avx512f_x avx512bw avx512vl'), undefined);
});
