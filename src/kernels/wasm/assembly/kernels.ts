// The WebAssembly SIMD kernels (AssemblyScript, simd128): the module's entry, which only re-exports
// one file per op family. One compiled module, instantiated once per shared memory per thread;
// every pointer is a byte offset into that memory. Kernels that run on the worker pool take
// (part, parts) and compute their own slice, so a dispatch is just "call this export with these
// numbers" on every thread. Activations are f32, accumulation is f32. Export names say the
// activation type, then the weight type and layout where there is one (`bf16w`, `mf4w` for
// MXFP4, `i8w` for int8 codes with group scales), then the op. The numbers both sides must agree
// on are in ../abi.ts.
export { f32_rmsnorm } from './norm';
export { f32_pair_permute, f32_bf16w_matmul, f32_bf16w_matmul_buffer_bytes } from './linear';
export { f32_quantize_i16, f32_quantize_i16_row_bytes, f32_i8w_matmul, bf16_quantize_i8w } from './linear-i8';
export { f32_block_permute, f32_quantize_i8, f32_quantize_i8_row_bytes, f32_quantize_i16x2, f32_quantize_i16x2_row_bytes } from './mxfp4';
export { f32_mf4w_moe_matmul_swiglu, f32_mf4w_moe_matmul_scatter, f32_mf4w_moe_row_buffer_bytes } from './moe';
export { f32_rope } from './rope';
export { f32_attention_sinks, f32_attention_sinks_scratch_bytes } from './attention';
export { f32_argmax } from './sampling';
export { mem_stream_read } from './memory';
