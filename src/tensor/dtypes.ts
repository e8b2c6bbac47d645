// Element types as checkpoints store them (the safetensors dtype names) and their widening to f32.
// BF16 is the upper half of an f32, so widening it is a shift; F16 is decoded by its fields.
// Assumes a little-endian host, as every platform Node 20 runs on is.

/** Element sizes in bytes of the dtypes the safetensors format defines (sub-byte float formats are not supported). */
export const DTYPE_SIZES = {
  BOOL: 1, U8: 1, I8: 1, F8_E4M3: 1, F8_E5M2: 1, F8_E8M0: 1,
  U16: 2, I16: 2, F16: 2, BF16: 2,
  U32: 4, I32: 4, F32: 4,
  U64: 8, I64: 8, F64: 8,
} as const;

export type Dtype = keyof typeof DTYPE_SIZES;

export function isDtype(s: unknown): s is Dtype {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_SIZES, s);
}

/** A row-major BF16 matrix [rows, cols]; each element is the upper 16 bits of an f32. */
export interface Bf16Matrix {
  rows: number;
  cols: number;
  data: Uint16Array;
}

/** Widens `count` BF16 words starting at `offset` into `out` (bf16 is the upper half of an f32). */
export function bf16ToF32(src: Uint16Array, offset: number, count: number, out: Float32Array): void {
  const bits = new Uint32Array(out.buffer, out.byteOffset, count);
  for (let i = 0; i < count; i++) bits[i] = src[offset + i]! << 16;
}

/**
 * Narrows `count` f32 values of `src` into BF16 words at `out[offset..]`, rounding to nearest even
 * (NaN stays a quiet NaN rather than rounding into infinity).
 */
export function f32ToBf16(src: Float32Array, out: Uint16Array, offset: number, count = src.length): void {
  const bits = new Uint32Array(src.buffer, src.byteOffset, count);
  for (let i = 0; i < count; i++) {
    const b = bits[i]!;
    out[offset + i] = (b & 0x7fffffff) > 0x7f800000 ? (b >>> 16) | 0x40 : (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
  }
}

/** Widens little-endian BF16/F16/F32 bytes to f32 (`out.length` elements; callers check the dtype is one of those). */
export function widenToF32(dtype: Dtype, raw: Uint8Array, out: Float32Array): void {
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const bits = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < out.length; i++) {
    if (dtype === 'F32') out[i] = view.getFloat32(4 * i, true);
    else if (dtype === 'BF16') bits[i] = view.getUint16(2 * i, true) << 16;
    else out[i] = f16ToNumber(view.getUint16(2 * i, true));
  }
}

/** The value of an IEEE half-precision bit pattern. */
export function f16ToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 31) return mantissa === 0 ? sign * Infinity : NaN;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}
