// The PyTorch parity test again, on the fused kernels' plain-SIMD build (dist/train-kernels.wasm),
// which engines without relaxed SIMD load, and with the linear layers on our own GEMM (the fallback
// when ONNX Runtime's binding does not load), so both stay checked against PyTorch. The switches
// are read when the backend starts, inside the imported tests.
process.env.VIT_LENS_FUSED_KERNELS = 'simd';
process.env.VIT_LENS_GEMM = 'wasm';
void import('./trainParity.test');
