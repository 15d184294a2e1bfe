// The PyTorch parity test again, on TF.js's own wasm kernels: the trainer's fallback when the fused
// kernels (dist/train-kernels*.wasm) are missing or switched off. The switch is read when the backend
// starts, which is inside the imported tests.
process.env.VIT_LENS_FUSED_KERNELS = '0';
void import('./trainParity.test');
