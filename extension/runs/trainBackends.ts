/**
 * What a training run would run on, for the Fine-tune form: asked of `vit-lens train --list-backends
 * --json` in a process of its own, because finding a WebGPU adapter loads Dawn and the GPU driver,
 * which the extension host must never do. Pure apart from `probeTrainBackends`, which is given the
 * way to run the CLI.
 */
import type { TrainBackend } from './trainArgs';

/** server/train/backend.ts's BackendListing, as the CLI prints it. */
export interface BackendListing {
  auto: string;
  /** `software`: the WebGPU adapter is a CPU emulation (lavapipe, SwiftShader). */
  backends: { name: string; device?: string; unavailable?: string; autoSkips?: string; software?: boolean }[];
}

export type BackendsProbe = { listing: BackendListing } | { error: string };

/** Asked with the --threads the run will get: the wasm entry then says "CPU · N threads (…)". */
export const listBackendsArgs = (threads: number) => [
  'train',
  '--list-backends',
  '--json',
  '--threads',
  String(threads),
];

/** The CLI's JSON, checked; throws saying what is wrong. */
export function parseListing(stdout: string): BackendListing {
  const v = JSON.parse(stdout.trim().split('\n').pop() ?? '') as Partial<BackendListing>;
  const str = (x: unknown) => x === undefined || typeof x === 'string';
  if (
    typeof v?.auto !== 'string' ||
    !Array.isArray(v.backends) ||
    !v.backends.every(
      b =>
        typeof b?.name === 'string' &&
        str(b.device) &&
        str(b.unavailable) &&
        str(b.autoSkips) &&
        (b.software === undefined || typeof b.software === 'boolean'),
    )
  ) {
    throw new Error('unexpected answer from vit-lens train --list-backends');
  }
  return v as BackendListing;
}

/** `threads`: what the run will be given (the editor's editorTrainThreads). */
export async function probeTrainBackends(
  runCli: (args: string[]) => Promise<{ code: number | null; stdout: string; stderr: string }>,
  threads: number,
): Promise<BackendsProbe> {
  try {
    const r = await runCli(listBackendsArgs(threads));
    if (r.code !== 0) return { error: r.stderr.trim().split('\n').pop() || `exit code ${r.code}` };
    return { listing: parseListing(r.stdout) };
  } catch (e) {
    return { error: (e as Error).message };
  }
}

const NAMES: Record<string, string> = {
  'tensorflow-gpu': 'CUDA',
  webgpu: 'WebGPU',
  tensorflow: 'TensorFlow',
  wasm: 'CPU',
  cpu: 'CPU',
};

/** What `choice` will run on: "WebGPU · NVIDIA GeForce RTX 4090 (Vulkan)", "CPU · 7 threads (wasm + fused kernels)", or why not. */
export function backendDevice(choice: TrainBackend, p: BackendsProbe): string {
  if ('error' in p) return `unknown (${p.error})`;
  const name = choice === 'auto' ? p.listing.auto : choice;
  const b = p.listing.backends.find(x => x.name === name);
  if (!b) return `unknown (${name})`;
  if (b.unavailable) return `unavailable: ${b.unavailable}`;
  return b.device ?? NAMES[name] ?? name;
}

const LABELS: Record<TrainBackend, string> = { auto: 'Auto', webgpu: 'WebGPU', wasm: 'CPU (wasm)' };

/** The Backend row's text: "Auto: WebGPU · NVIDIA …", "CPU · 1 thread (wasm …)", "WebGPU: unavailable: …". */
export function backendSummary(choice: TrainBackend, p: BackendsProbe): string {
  const device = backendDevice(choice, p);
  if (choice === 'auto') return `Auto: ${device}`;
  return /^(unknown|unavailable)\b/.test(device) ? `${LABELS[choice]}: ${device}` : device;
}

/** The rows of the backend picker, each saying what it would run on. */
export function backendChoices(
  p: BackendsProbe,
): { key: TrainBackend; label: string; description: string; detail: string }[] {
  const webgpu = 'listing' in p ? p.listing.backends.find(b => b.name === 'webgpu') : undefined;
  const skipped = webgpu?.autoSkips ? ` Auto skips WebGPU here: ${webgpu.autoSkips}.` : '';
  return [
    {
      key: 'auto',
      label: LABELS.auto,
      description: backendDevice('auto', p),
      detail: `The first that starts: CUDA → WebGPU (hardware GPU) → TensorFlow → wasm → JavaScript.${skipped}`,
    },
    {
      key: 'webgpu',
      label: LABELS.webgpu,
      description: backendDevice('webgpu', p),
      detail: webgpu?.software
        ? 'Emulates a GPU on the CPU: correct, but much slower than CPU (wasm).'
        : "Any GPU with a Vulkan, Metal or D3D12 driver, through TF.js's WebGPU kernels; no CUDA install.",
    },
    {
      key: 'wasm',
      label: LABELS.wasm,
      description: backendDevice('wasm', p),
      detail: "TF.js's WebAssembly backend with our fused kernels, on the CPU: works everywhere.",
    },
  ];
}
