// The int8 matrix form: int8 codes, row-major [rows, cols], with one f32 scale per group of 32
// columns of a row (the last group of a row may be shorter); a weight is code * scale. An optional
// copy of a bf16 matrix (the unembedding, `--unembedding int8`) that reads in half the bytes.
import type { Bf16Matrix } from './dtypes.ts';

/** Columns sharing one scale. */
export const INT8_GROUP = 32;

export interface Int8Matrix {
  rows: number;
  cols: number;
  /** [rows, cols] codes in -127..127. */
  codes: Int8Array;
  /** [rows, ceil(cols / INT8_GROUP)] scales. */
  scales: Float32Array;
}

/** A linear layer's weight: bf16 as stored, or an int8 copy. */
export type LinearWeight = Bf16Matrix | Int8Matrix;

export function isInt8Matrix(w: LinearWeight): w is Int8Matrix {
  return (w as Int8Matrix).codes !== undefined;
}

/** Widens row `row` of an int8 matrix into `out` (length m.cols). */
export function dequantInt8Row(m: Int8Matrix, row: number, out: Float32Array): void {
  const groups = Math.ceil(m.cols / INT8_GROUP);
  for (let c = 0; c < m.cols; c++) out[c] = m.codes[row * m.cols + c]! * m.scales[row * groups + Math.floor(c / INT8_GROUP)]!;
}

/** Bytes of the codes and scales of an int8 copy of a [rows, cols] matrix. */
export function int8Bytes(w: Pick<Bf16Matrix, 'rows' | 'cols'>): { codes: number; scales: number } {
  return { codes: w.rows * w.cols, scales: w.rows * Math.ceil(w.cols / INT8_GROUP) * 4 };
}
