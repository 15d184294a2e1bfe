/**
 * Test-only: lets the worker-process tests make the real WebGPU session fail mid-session, which no
 * real device does on demand. Read from VIT_LENS_TEST_FAIL_GPU_AFTER=N (runs that succeed before
 * every later run throws "device lost"); unset, it changes nothing. Not a user setting: not
 * documented as one, and not read by the CLI.
 */
import type { ProviderBackend, RunnableSession } from './inference';
import { defaultBackends, Provider } from './inference';

export const FAIL_GPU_AFTER_ENV = 'VIT_LENS_TEST_FAIL_GPU_AFTER';

export function testBackendsFromEnv(
  env: NodeJS.ProcessEnv,
  threads: number,
): Partial<Record<Provider, ProviderBackend>> | undefined {
  const raw = env[FAIL_GPU_AFTER_ENV];
  if (raw === undefined) return undefined;
  const after = Number(raw);
  if (!Number.isInteger(after) || after < 0)
    throw new Error(`${FAIL_GPU_AFTER_ENV}=${raw}: expected a whole number of runs`);
  return { webgpu: failingAfter(defaultBackends(threads).webgpu, after) };
}

/** The real backend, whose sessions throw on every run after the first `after` (counted per process). */
function failingAfter(real: ProviderBackend, after: number): ProviderBackend {
  let runs = 0;
  return {
    probe: () => real.probe(),
    create: async (model, base) => {
      const session = await real.create(model, base);
      const wrapped: RunnableSession = {
        get outputNames() {
          return session.outputNames;
        },
        release: () => session.release(),
        run: ((...args: Parameters<RunnableSession['run']>) => {
          if (++runs > after) return Promise.reject(new Error(`WebGPU device lost (${FAIL_GPU_AFTER_ENV}=${after})`));
          return session.run(...args);
        }) as RunnableSession['run'],
      };
      return wrapped;
    },
  };
}
