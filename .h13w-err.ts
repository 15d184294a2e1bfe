import * as tf from './server/tfjs';
import { initBackend } from './server/train/backend';
(async () => {
  await initBackend('webgpu');
  const b: any = tf.backend();
  console.log('limit', b.device.limits.maxStorageBuffersPerShaderStage, typeof b.device.addEventListener, 'onuncapturederror' in b.device);
  b.device.onuncapturederror = (e: any) => console.log('UNCAPTURED', e.error?.message?.slice(0, 200));
  const xs = Array.from({ length: 40 }, (_, i) => tf.scalar(i));
  console.log('addN', (await tf.addN(xs).data())[0]);
  await new Promise((r) => setTimeout(r, 200));
})();
