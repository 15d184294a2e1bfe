/**
 * TensorFlow.js for the trainer: tfjs-core plus what the `@tensorflow/tfjs` umbrella adds to it that
 * training needs (gradients, chained ops such as `x.reshape()`, the cpu backend), without layers,
 * converter, data and webgl. The VSIX then ships ~3 MB of TensorFlow.js instead of ~140 MB.
 *
 * The two registration modules are ES sources; scripts/build.mjs bundles them into dist/cli.js
 * (they reach the one engine and registries through tfjs's globals), the rest stays external.
 */
// The package first: its engine.js creates the one global engine on load, and the bundled copy that
// comes with the registrations below would otherwise create it with its own Tensor class, whose ops
// (tensor.clone() …) are never set up — whichever module loads first wins.
import '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import '@tensorflow/tfjs-core/dist/public/chained_ops/register_all_chained_ops';
import '@tensorflow/tfjs-backend-cpu';

export * from '@tensorflow/tfjs-core';
