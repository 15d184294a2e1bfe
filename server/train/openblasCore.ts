/**
 * OpenBLAS (under Debian's PyTorch and numpy) picks its kernels from the CPU's family and model
 * number. Under a hypervisor that reports a CPU it does not know ("Intel(R) Xeon(R) Processor"),
 * OpenBLAS 0.3.21 falls back to its Prescott (SSE3) kernels: torch.mm ran at 29 GFLOP/s on such a
 * machine and at 150 with OPENBLAS_CORETYPE=SkylakeX. `--backend torch` and the benches' peers set
 * OPENBLAS_CORETYPE where the core OpenBLAS picked lacks the vector instructions the CPU reports.
 */
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

/** This CPU's flags from /proc/cpuinfo ('' where there is none: not Linux). */
export function cpuFlags(): string {
  try {
    return /^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '';
  } catch {
    return '';
  }
}

/**
 * Python that prints the core name of the OpenBLAS the process has loaded (after `import torch` or
 * numpy), or None: asked through OpenBLAS's own openblas_get_corename, found in /proc/self/maps.
 */
export const OPENBLAS_CORE_PY = `def openblas_core():
    try:
        import ctypes
        with open("/proc/self/maps") as maps:
            libs = sorted({l.split()[-1] for l in maps if "blas" in l.lower() and ".so" in l})
        for lib in libs:
            try:
                f = ctypes.CDLL(lib).openblas_get_corename
            except (OSError, AttributeError):
                continue
            f.restype = ctypes.c_char_p
            return f().decode()
    except Exception:
        pass
    return None`;

/**
 * OPENBLAS_CORETYPE to set for a process whose OpenBLAS picked `picked`, with a line for notes;
 * undefined when nothing needs setting (the pick fits, no OpenBLAS, or the variable is already set).
 */
export function openBlasOverride(
  picked: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): { core: string; note: string } | undefined {
  if (!picked || env.OPENBLAS_CORETYPE) return undefined;
  const core = betterOpenBlasCore(picked, cpuFlags());
  return core
    ? {
        core,
        note: `OpenBLAS picked its ${picked} kernels, which lack this CPU's vector instructions: running with OPENBLAS_CORETYPE=${core}`,
      }
    : undefined;
}
