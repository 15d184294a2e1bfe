/**
 * Before any Python peer starts, the benches ask its OpenBLAS which core it picked and, when that
 * core lacks the vector instructions the CPU reports, set OPENBLAS_CORETYPE for every child process
 * (server/train/openblasCore.ts says why: a peer on Prescott kernels would flatter us). A value the
 * user set is kept.
 */
import { spawnSync } from 'child_process';
import { OPENBLAS_CORE_PY, openBlasOverride } from '../server/train/openblasCore';

/** Sets OPENBLAS_CORETYPE where OpenBLAS under-detects this CPU; returns a line saying what was found and done. */
export function fixOpenBlasCore(python = '/usr/bin/python3'): string {
  if (process.env.OPENBLAS_CORETYPE)
    return `OpenBLAS core: ${process.env.OPENBLAS_CORETYPE} (OPENBLAS_CORETYPE as set)`;
  const probe = spawnSync(python, ['-c', `import numpy\n${OPENBLAS_CORE_PY}\nprint(openblas_core())`], {
    encoding: 'utf8',
    env: { ...process.env, OPENBLAS_NUM_THREADS: '1' },
  });
  const picked = probe.stdout?.trim();
  if (!picked || picked === 'None') return 'OpenBLAS core: not reported (the peer may not use OpenBLAS)';
  const override = openBlasOverride(picked);
  if (!override) return `OpenBLAS core: ${picked}`;
  process.env.OPENBLAS_CORETYPE = override.core;
  return `OpenBLAS core: ${override.note} (every peer)`;
}
