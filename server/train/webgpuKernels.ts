/**
 * What the trainer adds to TF.js's WebGPU backend (tfjs-backend-webgpu 4.22), registered once when
 * training picks it.
 *
 * AddN binds every input as its own storage buffer, and WebGPU allows 8 per shader stage unless the
 * device asks for more (TF.js does not). With more inputs the pipeline is invalid and, WebGPU errors
 * being reported out of band, the whole command buffer is dropped: tf.addN of the 40 squared-gradient
 * sums in clipGradients returned 0.11 instead of 107 and training silently diverged from PyTorch. The
 * override sums at most (limit − 1) inputs per program, then sums the partial sums.
 *
 * Device errors (validation, out of memory, a lost device) reach only `onuncapturederror`; they are
 * kept here and `throwIfWebGpuFailed` turns them into an exception after each step, so a run stops
 * with the reason instead of training on garbage.
 */
import * as tf from '@tensorflow/tfjs-core';

interface WebGpuBackendLike {
  device: {
    limits: { maxStorageBuffersPerShaderStage: number };
    onuncapturederror: ((e: { error?: { message?: string } }) => void) | null;
    lost: Promise<{ message?: string }>;
  };
  disposeData(dataId: object): boolean;
}

let registered = false;
let failure: string | undefined;

export function registerWebGpuTrainingKernels(): void {
  if (registered) return;
  registered = true;
  const backend = tf.findBackend('webgpu') as unknown as WebGpuBackendLike;
  const device = backend.device;
  device.onuncapturederror = e => {
    failure ??= (e.error?.message ?? String(e)).split('\n')[0];
  };
  void device.lost.then(info => {
    failure ??= `device lost: ${info.message ?? 'no reason given'}`;
  });

  const addN = tf.getKernel(tf.AddN, 'webgpu')!;
  // One binding is the output.
  const perProgram = Math.max(2, device.limits.maxStorageBuffersPerShaderStage - 1);
  tf.unregisterKernel(tf.AddN, 'webgpu');
  tf.registerKernel({
    kernelName: tf.AddN,
    backendName: 'webgpu',
    kernelFunc: args => {
      let inputs = args.inputs as unknown as tf.TensorInfo[];
      const partials: tf.TensorInfo[] = [];
      while (inputs.length > perProgram) {
        const next: tf.TensorInfo[] = [];
        for (let i = 0; i < inputs.length; i += perProgram) {
          const chunk = inputs.slice(i, i + perProgram);
          const sum =
            chunk.length === 1
              ? chunk[0]
              : (addN.kernelFunc({ ...args, inputs: chunk as unknown as tf.NamedTensorInfoMap }) as tf.TensorInfo);
          if (chunk.length > 1) partials.push(sum);
          next.push(sum);
        }
        inputs = next;
      }
      const out = addN.kernelFunc({ ...args, inputs: inputs as unknown as tf.NamedTensorInfoMap });
      for (const p of partials) backend.disposeData(p.dataId);
      return out;
    },
  });
}

/** Throws the first WebGPU device error since the backend started (the step's results are not to be trusted). */
export function throwIfWebGpuFailed(): void {
  if (failure) throw new Error(`WebGPU device error: ${failure}`);
}
