/**
 * Kernel overrides for the wasm backend, registered once when training picks it.
 *
 * Identity (tf.clone) and a same-dtype Cast copy the whole buffer on wasm. The autodiff engine
 * clones every tensor a gradient saves (engine.saveTensorsForBackwardMode) and the Mul gradient
 * casts float32 to float32, so a training step of the bench ViT made ~740 such copies (~35 ms of
 * 470). TF.js tensors are immutable (Variable.assign swaps the dataId, nothing writes in place), so
 * sharing the buffer and counting references, as the cpu backend's Identity and the wasm backend's
 * own Reshape do, is safe.
 */
import * as tf from '@tensorflow/tfjs-core';

interface RefCountingBackend {
  incRef(dataId: object): void;
}

let registered = false;

export function registerWasmTrainingKernels(): void {
  if (registered) return;
  registered = true;
  const original = (name: string) => tf.getKernel(name, 'wasm')!;
  const identity = original(tf.Identity);
  const cast = original(tf.Cast);
  const share = (x: tf.TensorInfo, backend: RefCountingBackend): tf.TensorInfo => {
    backend.incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  };
  tf.unregisterKernel(tf.Identity, 'wasm');
  tf.registerKernel({
    kernelName: tf.Identity,
    backendName: 'wasm',
    kernelFunc: args => {
      const x = args.inputs.x as tf.TensorInfo;
      return x.dtype === 'string' ? identity.kernelFunc(args) : share(x, args.backend as unknown as RefCountingBackend);
    },
  });
  tf.unregisterKernel(tf.Cast, 'wasm');
  tf.registerKernel({
    kernelName: tf.Cast,
    backendName: 'wasm',
    kernelFunc: args => {
      const x = args.inputs.x as tf.TensorInfo;
      return x.dtype === (args.attrs as { dtype: string }).dtype && x.dtype !== 'string'
        ? share(x, args.backend as unknown as RefCountingBackend)
        : cast.kernelFunc(args);
    },
  });
}
