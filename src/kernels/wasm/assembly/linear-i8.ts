// The int8-weight linear layer (the optional int8 copy of the unembedding): weights as int8 codes
// with one f32 scale per group of 32 columns, activations quantised per row to i16 (scale =
// max|x| / 32767, an error of ~1e-5 of the row's largest value), so every product is an exact
// integer dot (i32x4.dot_i16x8_s) and the weights' own rounding is the only error that matters.
// Half the bytes of bf16 per weight, for decode, where the unembedding streams 1.16 GB per token.
import { hsum, madd, sliceStart } from './simd';

/** Bytes of one i16 activation row of `cols` values (64-byte multiple). */
export function f32_quantize_i16_row_bytes(cols: i32): i32 {
  return ((cols << 1) + 63) & ~63;
}

/**
 * Quantises x [rows, cols] (cols a multiple of 16) to i16 per row: dst rows of
 * f32_quantize_i16_row_bytes(cols) bytes and scales[r] = max|x[r]| / 32767 (0 for a zero row,
 * whose codes are all 0). Each 16 values are stored even ones first, then odd ones: the order in
 * which the kernel splits a 16-byte load of int8 codes (read as 8 i16 lanes: the even code in the
 * low byte, the odd one in the high byte) with two shifts.
 */
export function f32_quantize_i16(src: usize, dst: usize, scales: usize, rows: i32, cols: i32): void {
  const stride = <usize>f32_quantize_i16_row_bytes(cols);
  for (let r = 0; r < rows; r++) {
    const s = src + (<usize>(r * cols) << 2), d = dst + <usize>r * stride;
    let mv = f32x4.splat(0);
    for (let c = 0; c < cols; c += 4) mv = f32x4.max(mv, f32x4.abs(v128.load(s + (<usize>c << 2))));
    const m = max(max(f32x4.extract_lane(mv, 0), f32x4.extract_lane(mv, 1)), max(f32x4.extract_lane(mv, 2), f32x4.extract_lane(mv, 3)));
    store<f32>(scales + (<usize>r << 2), m / 32767);
    const inv = f32x4.splat(m > 0 ? 32767 / m : 0);
    for (let c = 0; c < cols; c += 16) {
      const o = s + (<usize>c << 2);
      const q0 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(o), inv)));
      const q1 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(o, 16), inv)));
      const q2 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(o, 32), inv)));
      const q3 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(o, 48), inv)));
      const a = i16x8.narrow_i32x4_s(q0, q1), b = i16x8.narrow_i32x4_s(q2, q3);
      v128.store(d + (<usize>c << 1), i8x16.shuffle(a, b, 0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29));
      v128.store(d + (<usize>c << 1), i8x16.shuffle(a, b, 2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31), 16);
    }
  }
}

/** Sum over one 32-column group: int8 codes at w against i16 activations at x (even/odd order), as i32 lanes. */
@inline function groupDot(w: usize, x: usize): v128 {
  // Sign-extending the low and high byte of each i16 lane takes shifts, not shuffles.
  const b0 = v128.load(w), b1 = v128.load(w, 16);
  let s = i32x4.dot_i16x8_s(i16x8.shr_s(i16x8.shl(b0, 8), 8), v128.load(x));
  s = i32x4.add(s, i32x4.dot_i16x8_s(i16x8.shr_s(b0, 8), v128.load(x, 16)));
  s = i32x4.add(s, i32x4.dot_i16x8_s(i16x8.shr_s(i16x8.shl(b1, 8), 8), v128.load(x, 32)));
  return i32x4.add(s, i32x4.dot_i16x8_s(i16x8.shr_s(b1, 8), v128.load(x, 48)));
}

/**
 * out[t, r] = xs[t] * sum_g ws[r, g] * (codes of row r, group g) . (xq[t], group g), for this
 * thread's rows; cols a multiple of 32. One row at a time, every token against it while it is in
 * L1, so the weights are read once however many tokens (a batch of decoded sequences) there are.
 * (Two rows per pass computed as fast from cache but streamed from memory at half the rate: 5.5
 * against 11 G weights/s on one thread here.)
 */
export function f32_i8w_matmul(xq: usize, xs: usize, tokens: i32, cols: i32, w: usize, ws: usize, rows: i32, out: usize, part: i32, parts: i32): void {
  const r0 = sliceStart(rows, part, parts, 1);
  const r1 = sliceStart(rows, part + 1, parts, 1);
  const groups = cols >> 5;
  const xStride = <usize>f32_quantize_i16_row_bytes(cols);
  const os = <usize>rows << 2;
  for (let r = r0; r < r1; r++) {
    const wr = w + <usize>r * <usize>cols, sr = ws + (<usize>(r * groups) << 2);
    for (let t = 0; t < tokens; t++) {
      // Running pointers: V8 otherwise recomputes each address from the group index every step.
      let pw = wr, ps = sr, px = xq + <usize>t * xStride;
      const end = px + (<usize>groups << 6);
      let a = f32x4.splat(0);
      for (; px < end; px += 64, pw += 32, ps += 4) {
        a = madd(f32x4.convert_i32x4_s(groupDot(pw, px)), f32x4.splat(load<f32>(ps)), a);
      }
      store<f32>(out + <usize>t * os + (<usize>r << 2), hsum(a) * load<f32>(xs + (<usize>t << 2)));
    }
  }
}

/**
 * The int8 copy of bf16 rows [rows, cols] (cols a multiple of 32), this thread's rows: per group of
 * 32, scale = max|w| / 127 and code = w * (127 / max|w|) rounded to nearest even, all in f32 (the
 * model's int8Copy computes the same numbers). codes [rows, cols], scales [rows, cols / 32].
 */
export function bf16_quantize_i8w(src: usize, codes: usize, scales: usize, rows: i32, cols: i32, part: i32, parts: i32): void {
  const r0 = sliceStart(rows, part, parts, 1);
  const r1 = sliceStart(rows, part + 1, parts, 1);
  const groups = cols >> 5;
  for (let r = r0; r < r1; r++) {
    for (let g = 0; g < groups; g++) {
      const i = <usize>r * <usize>cols + (<usize>g << 5);
      const s = src + (i << 1);
      const h0 = v128.load(s), h1 = v128.load(s, 16), h2 = v128.load(s, 32), h3 = v128.load(s, 48);
      const v0 = i32x4.shl(i32x4.extend_low_i16x8_u(h0), 16), v1 = i32x4.shl(i32x4.extend_high_i16x8_u(h0), 16);
      const v2 = i32x4.shl(i32x4.extend_low_i16x8_u(h1), 16), v3 = i32x4.shl(i32x4.extend_high_i16x8_u(h1), 16);
      const v4 = i32x4.shl(i32x4.extend_low_i16x8_u(h2), 16), v5 = i32x4.shl(i32x4.extend_high_i16x8_u(h2), 16);
      const v6 = i32x4.shl(i32x4.extend_low_i16x8_u(h3), 16), v7 = i32x4.shl(i32x4.extend_high_i16x8_u(h3), 16);
      const mv = f32x4.max(
        f32x4.max(f32x4.max(f32x4.abs(v0), f32x4.abs(v1)), f32x4.max(f32x4.abs(v2), f32x4.abs(v3))),
        f32x4.max(f32x4.max(f32x4.abs(v4), f32x4.abs(v5)), f32x4.max(f32x4.abs(v6), f32x4.abs(v7))),
      );
      const m = max(max(f32x4.extract_lane(mv, 0), f32x4.extract_lane(mv, 1)), max(f32x4.extract_lane(mv, 2), f32x4.extract_lane(mv, 3)));
      store<f32>(scales + ((<usize>r * <usize>groups + <usize>g) << 2), m / 127);
      const inv = f32x4.splat(m > 0 ? <f32>127 / m : 0);
      const q0 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v0, inv))), q1 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v1, inv)));
      const q2 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v2, inv))), q3 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v3, inv)));
      const q4 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v4, inv))), q5 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v5, inv)));
      const q6 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v6, inv))), q7 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v7, inv)));
      const d = codes + i;
      v128.store(d, i8x16.narrow_i16x8_s(i16x8.narrow_i32x4_s(q0, q1), i16x8.narrow_i32x4_s(q2, q3)));
      v128.store(d, i8x16.narrow_i16x8_s(i16x8.narrow_i32x4_s(q4, q5), i16x8.narrow_i32x4_s(q6, q7)), 16);
    }
  }
}
