// The PyTorch parity test again, on the fused kernels' plain-SIMD build (dist/train-kernels.wasm),
// which engines without relaxed SIMD load. The switch is read when the backend starts, inside the
// imported tests.
process.env.VIT_LENS_FUSED_KERNELS = 'simd';
void import('./trainParity.test');
