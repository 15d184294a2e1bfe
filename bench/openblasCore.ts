/**
 * The Python peers (Debian's PyTorch and numpy) multiply matrices with OpenBLAS, which picks its
 * kernels from the CPU's family and model number. Under a hypervisor that reports a CPU it does not
 * know ("Intel(R) Xeon(R) Processor"), OpenBLAS 0.3.21 falls back to its Prescott (SSE3) kernels: on
 * one such machine torch.mm ran at 29 GFLOP/s instead of 150 with OPENBLAS_CORETYPE=SkylakeX. A
 * benchmark against that peer would flatter us, so before any peer starts, the benches ask OpenBLAS
 * which core it picked and, when that core lacks the vector instructions the CPU reports, set
 * OPENBLAS_CORETYPE for every child process. A value the user set is kept.
 */
import { spawnSync } from 'child_process';
import { readFileSync } from 'fs';

/** OpenBLAS cores with AVX-512 kernels, and those with at least AVX2 + FMA. */
const AVX512_CORES = ['SkylakeX', 'Cooperlake', 'SapphireRapids'];
const AVX2_CORES = [...AVX512_CORES, 'Haswell', 'Zen'];

/**
 * The OpenBLAS core to force for a CPU with these /proc/cpuinfo flags when OpenBLAS picked `picked`:
 * SkylakeX where the CPU has AVX-512 (F, BW, VL) and the pick has no AVX-512 kernels, Haswell where
 * it has AVX2 + FMA and the pick has neither; undefined when the pick already fits.
 */
export function betterOpenBlasCore(picked: string, flags: string): string | undefined {
  const has = (f: string) => flags.split(/\s+/).includes(f);
  if (has('avx512f') && has('avx512bw') && has('avx512vl') && !AVX512_CORES.includes(picked)) return 'SkylakeX';
  if (has('avx2') && has('fma') && !AVX2_CORES.includes(picked)) return 'Haswell';
  return undefined;
}

/** Sets OPENBLAS_CORETYPE where OpenBLAS under-detects this CPU; returns a line saying what was found and done. */
export function fixOpenBlasCore(python = '/usr/bin/python3'): string {
  if (process.env.OPENBLAS_CORETYPE)
    return `OpenBLAS core: ${process.env.OPENBLAS_CORETYPE} (OPENBLAS_CORETYPE as set)`;
  const probe = spawnSync(python, ['-c', 'import numpy; numpy.ones((2, 2)) @ numpy.ones((2, 2))'], {
    encoding: 'utf8',
    env: { ...process.env, OPENBLAS_VERBOSE: '2', OPENBLAS_NUM_THREADS: '1' },
  });
  const picked = /Core:\s*(\S+)/.exec(`${probe.stdout}${probe.stderr}`)?.[1];
  if (!picked) return 'OpenBLAS core: not reported (the peer may not use OpenBLAS)';
  let flags = '';
  try {
    flags = /^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '';
  } catch {
    return `OpenBLAS core: ${picked}`;
  }
  const wanted = betterOpenBlasCore(picked, flags);
  if (!wanted) return `OpenBLAS core: ${picked}`;
  process.env.OPENBLAS_CORETYPE = wanted;
  return `OpenBLAS core: detected ${picked}, which lacks the CPU's vector instructions; the peers run with OPENBLAS_CORETYPE=${wanted}`;
}
