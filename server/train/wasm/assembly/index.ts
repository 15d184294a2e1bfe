// The fused training kernels for TensorFlow.js's wasm backend (server/train/fused/kernels.ts).
// Every function works on raw byte offsets into the backend's own memory, which this module imports.
export { gemm } from './gemm';
export { colSum } from './reduce';
export { adamw, sgd, sumSquares } from './optim';
export { layerNormForward, layerNormBackward, geluForward, geluBackward, geluScratchBytes } from './norm';
export { attentionForward, attentionBackward } from './attention';
