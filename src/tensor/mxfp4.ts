// MXFP4, the format of gpt-oss's expert weights: FP4 (E2M1) values in groups of 32 sharing one
// E8M0 power-of-two scale. Kernels compute on the packed form; this is its layout, its code
// points and the plain dequantisation that the reference backend and the tests read it with.

/**
 * `count` MXFP4 matrices [rows, cols] (one per expert). Each row is split into groups of 32
 * elements sharing one E8M0 scale: blocks [count, rows, cols/32, 16] (element 2j in the low nibble
 * of byte j), scales [count, rows, cols/32] (exponent biased by 127).
 */
export interface Mxfp4Matrices {
  count: number;
  rows: number;
  cols: number;
  blocks: Uint8Array;
  scales: Uint8Array;
  /**
   * The stack unquantised [count, rows, cols], for a float export (a trained model before MXFP4
   * quantisation, to measure what quantising costs); blocks and scales are then empty. Only the
   * plain dequantisation reads it: backends compute such experts with the reference code.
   */
  dense?: Float32Array;
}

/** The FP4 (E2M1) code points of MXFP4, indexed by the 4-bit code. */
export const FP4_VALUES: readonly number[] = [+0, +0.5, +1, +1.5, +2, +3, +4, +6, -0, -0.5, -1, -1.5, -2, -3, -4, -6];

/** Dequantises row `row` of expert `expert` of an MXFP4 stack into `out` (length m.cols). */
export function dequantMxfp4Row(m: Mxfp4Matrices, expert: number, row: number, out: Float32Array): void {
  const groups = m.cols / 32;
  const rowIndex = expert * m.rows + row;
  if (m.dense !== undefined) {
    out.set(m.dense.subarray(rowIndex * m.cols, (rowIndex + 1) * m.cols));
    return;
  }
  for (let g = 0; g < groups; g++) {
    const scale = 2 ** (m.scales[rowIndex * groups + g]! - 127);
    const blockStart = (rowIndex * groups + g) * 16;
    for (let j = 0; j < 16; j++) {
      const byte = m.blocks[blockStart + j]!;
      out[g * 32 + 2 * j] = FP4_VALUES[byte & 0x0f]! * scale;
      out[g * 32 + 2 * j + 1] = FP4_VALUES[byte >> 4]! * scale;
    }
  }
}
