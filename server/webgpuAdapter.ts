/**
 * Which WebGPU adapter this machine offers, asked through Dawn's Node bindings (the `webgpu` package).
 * ONNX Runtime's WebGPU provider runs on Dawn too but does not say which adapter it took; both take
 * the system's default adapter, so this names the device the provider runs on, and tells a hardware
 * GPU from a software rasteriser (lavapipe/llvmpipe, SwiftShader, WARP), which `auto` never picks.
 *
 * Loaded lazily: loading dawn.node takes ~10 ms and finding the adapter ~200 ms (measured on
 * lavapipe), so only a session that may use WebGPU pays for it, once per process.
 */
import * as fs from 'fs';
import * as path from 'path';

export interface WebGpuAdapter {
  /** For people: "NVIDIA H100 (Vulkan)", "llvmpipe: Mesa 25.0.7 … (Vulkan)". */
  name: string;
  vendor: string;
  architecture: string;
  description: string;
  /** A CPU implementation of the GPU API: correct, but slower than the CPU provider. */
  software: boolean;
  /** The native API Dawn drives on this platform. */
  backend: 'Vulkan' | 'D3D12' | 'Metal';
}

/** The little of Dawn's API used here (the full types are @webgpu/types, which would add globals). */
export interface DawnAdapterInfo {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  isFallbackAdapter?: boolean;
}
interface DawnGpu {
  requestAdapter(o?: { powerPreference?: string }): Promise<{ info: DawnAdapterInfo } | null>;
}
interface DawnBindings {
  create(flags: string[]): DawnGpu;
  globals: Record<string, unknown>;
}

export type AdapterProbe = { adapter: WebGpuAdapter } | { error: string };

let probed: Promise<AdapterProbe> | undefined;
/** ~200 ms on lavapipe; a driver that takes far longer is treated as absent. */
const ADAPTER_TIMEOUT_MS = 10_000;

/** The default WebGPU adapter, or why there is none. Asked once per process. */
export function probeWebGpuAdapter(): Promise<AdapterProbe> {
  probed ??= probe();
  return probed;
}

const SOFTWARE = /llvmpipe|lavapipe|swiftshader|softpipe|microsoft basic render|\bwarp\b/i;

/** A CPU rasteriser posing as a GPU: Dawn's fallback flag, or the names Mesa, Google and Microsoft give theirs. */
export function isSoftwareAdapter(info: Partial<DawnAdapterInfo>): boolean {
  return (
    info.isFallbackAdapter === true ||
    info.architecture === 'software' ||
    SOFTWARE.test(`${info.description} ${info.device} ${info.vendor}`)
  );
}

let dawn: { gpu: DawnGpu; globals: Record<string, unknown> } | undefined;

/**
 * Dawn's GPU object (navigator.gpu's equivalent) and its WebGPU globals (GPUBufferUsage …), loaded
 * once per process: the adapter probe and the trainer's TF.js WebGPU backend share one instance.
 * Throws, saying so, when the bindings cannot load on this platform.
 */
export function dawnGpu(): { gpu: DawnGpu; globals: Record<string, unknown> } {
  if (dawn) return dawn;
  // Dawn's Vulkan loader wants a runtime dir; without one it prints warnings and may find no device.
  process.env.XDG_RUNTIME_DIR ??= '/tmp';
  let bindings: DawnBindings;
  try {
    const dir = path.dirname(require.resolve('webgpu/package.json'));
    const arch = process.platform === 'darwin' ? 'universal' : process.arch;
    // The package's own index.js is ESM and only re-exports this binding.
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- a native addon at a platform-dependent path
    bindings = require(path.join(dir, 'dist', `${process.platform}-${arch}`, 'dawn.node')) as DawnBindings;
  } catch (e) {
    throw new Error(
      `the WebGPU bindings (npm package "webgpu") cannot load on ${process.platform}-${process.arch}: ${firstLine(e)}`,
    );
  }
  dawn = { gpu: bindings.create([]), globals: bindings.globals };
  return dawn;
}

/**
 * Linux: a GPU has a DRM render node (/dev/dri/renderD*), or NVIDIA's /dev/nvidia0, or WSL's /dev/dxg;
 * a machine with none of them has at most a software Vulkan device. Elsewhere: assume one may exist.
 */
export function gpuDeviceNodesExist(dev = '/dev'): boolean {
  if (process.platform !== 'linux') return true;
  if (fs.existsSync(path.join(dev, 'nvidia0')) || fs.existsSync(path.join(dev, 'dxg'))) return true;
  try {
    return fs.readdirSync(path.join(dev, 'dri')).some(n => n.startsWith('renderD'));
  } catch {
    return false;
  }
}

async function probe(): Promise<AdapterProbe> {
  let gpu: DawnGpu;
  try {
    gpu = dawnGpu().gpu;
  } catch (e) {
    return { error: firstLine(e) };
  }
  try {
    // A broken driver must not hang every `auto` load: give up after a while and use the CPU.
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>(
      resolve => (timer = setTimeout(() => resolve('timeout'), ADAPTER_TIMEOUT_MS).unref()),
    );
    const adapter = await Promise.race([gpu.requestAdapter({ powerPreference: 'high-performance' }), timeout]).finally(
      () => clearTimeout(timer),
    );
    if (adapter === 'timeout')
      return { error: `no answer from the WebGPU adapter query within ${ADAPTER_TIMEOUT_MS / 1000} s` };
    if (!adapter)
      return {
        error:
          "no WebGPU adapter found (no Vulkan/D3D12/Metal device; on Linux install the GPU vendor's Vulkan driver or Mesa's)",
      };
    const info = adapter.info;
    const backend = process.platform === 'win32' ? 'D3D12' : process.platform === 'darwin' ? 'Metal' : 'Vulkan';
    const label = info.description || [info.vendor, info.device].filter(Boolean).join(' ') || 'unknown adapter';
    const software = isSoftwareAdapter(info);
    return {
      adapter: {
        name: `${label} (${backend})`,
        vendor: info.vendor,
        architecture: info.architecture,
        description: info.description,
        software,
        backend,
      },
    };
  } catch (e) {
    return { error: `WebGPU adapter query failed: ${firstLine(e)}` };
  }
}

function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0];
}
