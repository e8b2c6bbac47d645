// The floor under kernels, model and checkpoint I/O: element types, the packed matrix forms
// weights keep in memory, and the store buffers live in. No math beyond widening.
export { DTYPE_SIZES, isDtype, bf16ToF32, f32ToBf16, widenToF32, f16ToNumber, type Dtype, type Bf16Matrix } from './dtypes.ts';
export { INT8_GROUP, isInt8Matrix, dequantInt8Row, int8Bytes, type Int8Matrix, type LinearWeight } from './int8.ts';
export { FP4_VALUES, dequantMxfp4Row, type Mxfp4Matrices } from './mxfp4.ts';
export { HeapStore, type TensorStore } from './store.ts';
