// MXFP4 weights against f32 activations: decoding packed rows (dots and expansion to f32 or to
// byte codes), the activation quantisers of the 'split' and 'q8' modes, and the block permutation
// the MXFP4 kernels take their activations in. The MoE kernels (moe.ts) are built from these.
//
// MXFP4 kernels read experts in their packed form. Their activations come "block-permuted": in
// each group of 32 the 16 even elements first, then the 16 odd ones, so the low nibbles of a
// 16-byte block line up with the first half and the high nibbles with the second half without a
// byte interleave.
import { hsum, isum4x4, madd, setDots4 } from './simd';

// FP4 (e2m1) values doubled, so they are exact int8: {0, .5, 1, 1.5, 2, 3, 4, 6} * 2 and negatives.
const FP4X2: v128 = i8x16(0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12);
const NIBBLE: v128 = i8x16(15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15);

/** Bytes of `table` picked by the 4-bit indices in idx (every byte < 16: relaxed swizzle's pshufb alone suffices). */
@inline function lookup(table: v128, idx: v128): v128 {
  return ASC_FEATURE_RELAXED_SIMD ? i8x16.relaxed_swizzle(table, idx) : i8x16.swizzle(table, idx);
}
/** Low nibbles of b's bytes. */
@inline function lowNibbles(b: v128): v128 {
  return v128.and(b, NIBBLE);
}
/** High nibbles of b's bytes: a 16-bit shift and the mask (V8 lowers an 8-bit shift to five instructions). */
@inline function highNibbles(b: v128): v128 {
  return v128.and(i16x8.shr_u(b, 4), NIBBLE);
}

/** E8M0 exponent e -> 2^(e-128) (the LUT is doubled), exact including the subnormal range. */
@inline function e8m0Half(e: u32): f32 {
  return e >= 2 ? reinterpret<f32>((e - 1) << 23) : reinterpret<f32>(<u32>1 << (21 + e));
}

/** Dot of one packed MXFP4 row (groups of 16 bytes + 1 scale byte each) with block-permuted x. */
@inline export function mxRowDot(blk: usize, scl: usize, x: usize, groups: i32): f32 {
  let acc = f32x4.splat(0);
  for (let g = 0; g < groups; g++) {
    const b = v128.load(blk + (<usize>g << 4));
    const wl = lookup(FP4X2, lowNibbles(b));
    const wh = lookup(FP4X2, highNibbles(b));
    const l0 = i16x8.extend_low_i8x16_s(wl), l1 = i16x8.extend_high_i8x16_s(wl);
    const h0 = i16x8.extend_low_i8x16_s(wh), h1 = i16x8.extend_high_i8x16_s(wh);
    const xg = x + (<usize>g << 7);
    let s = f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(l0)), v128.load(xg));
    let t = f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(l0)), v128.load(xg, 16));
    s = f32x4.add(s, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(l1)), v128.load(xg, 32)));
    t = f32x4.add(t, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(l1)), v128.load(xg, 48)));
    s = f32x4.add(s, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(h0)), v128.load(xg, 64)));
    t = f32x4.add(t, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(h0)), v128.load(xg, 80)));
    s = f32x4.add(s, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(h1)), v128.load(xg, 96)));
    t = f32x4.add(t, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(h1)), v128.load(xg, 112)));
    acc = f32x4.add(acc, f32x4.mul(f32x4.add(s, t), f32x4.splat(e8m0Half(load<u8>(scl + g)))));
  }
  return hsum(acc);
}

/** Expands one packed MXFP4 row to f32 (block-permuted order) into dst. */
@inline export function mxRowExpand(blk: usize, scl: usize, dst: usize, groups: i32): void {
  for (let g = 0; g < groups; g++) {
    const b = v128.load(blk + (<usize>g << 4));
    const wl = lookup(FP4X2, lowNibbles(b));
    const wh = lookup(FP4X2, highNibbles(b));
    const l0 = i16x8.extend_low_i8x16_s(wl), l1 = i16x8.extend_high_i8x16_s(wl);
    const h0 = i16x8.extend_low_i8x16_s(wh), h1 = i16x8.extend_high_i8x16_s(wh);
    const sc = f32x4.splat(e8m0Half(load<u8>(scl + g)));
    const d = dst + (<usize>g << 7);
    v128.store(d, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(l0)), sc));
    v128.store(d, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(l0)), sc), 16);
    v128.store(d, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(l1)), sc), 32);
    v128.store(d, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(l1)), sc), 48);
    v128.store(d, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(h0)), sc), 64);
    v128.store(d, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(h0)), sc), 80);
    v128.store(d, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(h1)), sc), 96);
    v128.store(d, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(h1)), sc), 112);
  }
}

/** max |x| over the 32 f32 of one group at x. */
@inline function groupAbsMax(x: usize): f32 {
  let m = f32x4.abs(v128.load(x));
  for (let i = 1; i < 8; i++) m = f32x4.max(m, f32x4.abs(v128.load(x + (<usize>i << 4))));
  return max(max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1)), max(f32x4.extract_lane(m, 2), f32x4.extract_lane(m, 3)));
}

/** Bytes of one split-quantised row (f32_quantize_i16x2): per group 32 high + 32 low i16, then f32 scales. */
@inline export function q2Stride(cols: i32): usize {
  return ((<usize>cols * 4 + (<usize>cols >> 3)) + 63) & ~63;
}

/** Bytes of one row of f32_quantize_i16x2's output (its callers size their buffers with it). */
export function f32_quantize_i16x2_row_bytes(cols: i32): i32 {
  return <i32>q2Stride(cols);
}

const LOW_STEPS: f32 = 65534;

/**
 * Splits block-permuted f32 activations [rows, cols] into two i16 halves per group of 32:
 * x = d * (hi + lo / 65534) with d = max|x| / 32767, so x is carried to ~2^-31 of the group's
 * largest value: integer dot products (i32x4.dot_i16x8_s) then give f32-grade results (the
 * residual is far below f32 rounding of the sum) at about two thirds of the f32 path's work.
 */
export function f32_quantize_i16x2(src: usize, dst: usize, rows: i32, cols: i32): void {
  const groups = cols >> 5;
  const stride = q2Stride(cols);
  for (let r = 0; r < rows; r++) {
    const rs = src + (<usize>(r * cols) << 2), rd = dst + <usize>r * stride;
    const scales = rd + (<usize>cols << 2);
    for (let g = 0; g < groups; g++) {
      const x = rs + (<usize>g << 7);
      const mx = groupAbsMax(x);
      const d: f32 = mx / 32767;
      const inv: f64 = mx > 0 ? 32767 / <f64>mx : 0;
      const q = rd + (<usize>g << 7);
      for (let i = 0; i < 32; i++) {
        // In f64 so the residual is exact.
        const v = <f64>load<f32>(x + (<usize>i << 2)) * inv;
        const hi = Math.round(v);
        const lo = Math.round((v - hi) * <f64>LOW_STEPS);
        store<i16>(q + (<usize>i << 1), <i16>hi);
        store<i16>(q + 64 + (<usize>i << 1), <i16>lo);
      }
      store<f32>(scales + (<usize>g << 2), d);
    }
  }
}

/** Dot of one packed MXFP4 row with split-quantised x (f32_quantize_i16x2). */
@inline export function mxRowDotQ2(blk: usize, scl: usize, xq: usize, xd: usize, groups: i32): f32 {
  let acc = f32x4.splat(0);
  const lowScale = f32x4.splat(1 / LOW_STEPS);
  for (let g = 0; g < groups; g++) {
    const b = v128.load(blk + (<usize>g << 4));
    const wl = lookup(FP4X2, lowNibbles(b));
    const wh = lookup(FP4X2, highNibbles(b));
    const w0 = i16x8.extend_low_i8x16_s(wl), w1 = i16x8.extend_high_i8x16_s(wl);
    const w2 = i16x8.extend_low_i8x16_s(wh), w3 = i16x8.extend_high_i8x16_s(wh);
    const q = xq + (<usize>g << 7);
    let ph = i32x4.dot_i16x8_s(w0, v128.load(q));
    ph = i32x4.add(ph, i32x4.dot_i16x8_s(w1, v128.load(q, 16)));
    ph = i32x4.add(ph, i32x4.dot_i16x8_s(w2, v128.load(q, 32)));
    ph = i32x4.add(ph, i32x4.dot_i16x8_s(w3, v128.load(q, 48)));
    let pl = i32x4.dot_i16x8_s(w0, v128.load(q, 64));
    pl = i32x4.add(pl, i32x4.dot_i16x8_s(w1, v128.load(q, 80)));
    pl = i32x4.add(pl, i32x4.dot_i16x8_s(w2, v128.load(q, 96)));
    pl = i32x4.add(pl, i32x4.dot_i16x8_s(w3, v128.load(q, 112)));
    const sum = f32x4.add(f32x4.convert_i32x4_s(ph), f32x4.mul(f32x4.convert_i32x4_s(pl), lowScale));
    const sc = load<f32>(xd + (<usize>g << 2)) * e8m0Half(load<u8>(scl + g));
    acc = f32x4.add(acc, f32x4.mul(sum, f32x4.splat(sc)));
  }
  return hsum(acc);
}

// ---- MXFP4 x int8 activations ('q8') ----------------------------------------------------
// Activations quantised to int8 per group of 32 (scale = max|x| / 127), as llama.cpp does for
// MXFP4: the fastest mode, with an error per op of ~0.4% of the group's largest activation (the
// golden tests hold it to their tolerance for the official bf16 reference). With relaxed SIMD the FP4
// codes are shifted to 0..24 so one unsigned-by-signed byte dot (pmaddubsw on x64) takes 16
// products per instruction; the shift adds 12 * sum(q) per group, which f32_quantize_i8 stores negated
// so the kernel subtracts it. Without relaxed SIMD the codes stay signed and go through i16 dots.

// FP4 codes doubled plus 12: 0..24, the unsigned operand of the relaxed byte dot.
const FP4X2P12: v128 = i8x16(12, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0);

/** Bytes of one int8-quantised row: cols i8, then cols/32 f32 scales, cols/32 i32 corrections. */
@inline export function q8Stride(cols: i32): usize {
  return ((<usize>cols + (<usize>cols >> 2)) + 63) & ~63;
}

/** Bytes of one row of f32_quantize_i8's output (its callers size their buffers with it). */
export function f32_quantize_i8_row_bytes(cols: i32): i32 {
  return <i32>q8Stride(cols);
}

/** Quantises block-permuted f32 activations [rows, cols] to int8 per group of 32 (see above). */
export function f32_quantize_i8(src: usize, dst: usize, rows: i32, cols: i32): void {
  const groups = cols >> 5;
  const stride = q8Stride(cols);
  for (let r = 0; r < rows; r++) {
    const rs = src + (<usize>(r * cols) << 2), rd = dst + <usize>r * stride;
    const scales = rd + <usize>cols, corr = scales + (<usize>groups << 2);
    for (let g = 0; g < groups; g++) {
      const x = rs + (<usize>g << 7);
      const mx = groupAbsMax(x);
      const inv = f32x4.splat(mx > 0 ? 127 / mx : 0);
      let sum = i32x4.splat(0);
      const q = rd + (<usize>g << 5);
      for (let i = 0; i < 2; i++) {
        const o = x + (<usize>i << 6);
        const a = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(o), inv)));
        const b = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(o, 16), inv)));
        const c = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(o, 32), inv)));
        const d = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(o, 48), inv)));
        sum = i32x4.add(sum, i32x4.add(i32x4.add(a, b), i32x4.add(c, d)));
        v128.store(q + (<usize>i << 4), i8x16.narrow_i16x8_s(i16x8.narrow_i32x4_s(a, b), i16x8.narrow_i32x4_s(c, d)));
      }
      store<f32>(scales + (<usize>g << 2), mx / 127);
      const total = i32x4.extract_lane(sum, 0) + i32x4.extract_lane(sum, 1) + i32x4.extract_lane(sum, 2) + i32x4.extract_lane(sum, 3);
      store<i32>(corr + (<usize>g << 2), -12 * total);
    }
  }
}

/**
 * 4 E8M0 bytes at p -> f32x4 of 2^(e-128) (the codes are doubled): the f32 whose exponent field is
 * e - 1, one saturating subtract and a shift. e = 0 and 1 (2^-128 and 2^-127, below f32's normal
 * range) give 0: such a group's products are under 1e-36 of its activations, lost in any f32 sum.
 */
@inline function e8m0Half4(p: usize): v128 {
  const e = i8x16.sub_sat_u(v128.load32_zero(p), i8x16.splat(1));
  return i32x4.shl(i32x4.extend_low_i16x8_u(i16x8.extend_low_i8x16_u(e)), 23);
}

/** The byte codes of one group's low and high nibbles, in the form q8Dot takes. */
@inline function q8Low(b: v128): v128 {
  return lookup(ASC_FEATURE_RELAXED_SIMD ? FP4X2P12 : FP4X2, lowNibbles(b));
}
@inline function q8High(b: v128): v128 {
  return lookup(ASC_FEATURE_RELAXED_SIMD ? FP4X2P12 : FP4X2, highNibbles(b));
}

/** One group's integer dot (i32x4 partial sums) of byte codes wl, wh with 32 int8 activations at q. */
@inline function q8Dot(wl: v128, wh: v128, q: usize): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) {
    const p = i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(q), wl), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(q, 16), wh));
    return i32x4.extadd_pairwise_i16x8_s(p);
  } else {
    const xa = v128.load(q), xb = v128.load(q, 16);
    let p = i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(wl), i16x8.extend_low_i8x16_s(xa));
    p = i32x4.add(p, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(wl), i16x8.extend_high_i8x16_s(xa)));
    p = i32x4.add(p, i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(wh), i16x8.extend_low_i8x16_s(xb)));
    return i32x4.add(p, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(wh), i16x8.extend_high_i8x16_s(xb)));
  }
}

/** One group's integer dot of 16 packed bytes with 32 int8 activations at q. */
@inline function q8Group(b: v128, q: usize): v128 {
  return q8Dot(q8Low(b), q8High(b), q);
}

/** Expands one packed MXFP4 row to its q8 byte codes (32 per group) plus f32 group scales at ds. */
@inline export function mxRowExpandQ8(blk: usize, scl: usize, dq: usize, ds: usize, groups: i32): void {
  for (let g = 0; g < groups; g++) {
    const b = v128.load(blk + (<usize>g << 4));
    const d = dq + (<usize>g << 5);
    v128.store(d, q8Low(b));
    v128.store(d, q8High(b), 16);
    store<f32>(ds + (<usize>g << 2), e8m0Half(load<u8>(scl + g)));
  }
}

/** A group's dot with token x (q8 row at x, corrections at xc), as f32x4 partial sums times sc. */
@inline function q8Scaled(wl: v128, wh: v128, x: usize, xc: usize, sc: f32): v128 {
  let p = q8Dot(wl, wh, x);
  if (ASC_FEATURE_RELAXED_SIMD) p = i32x4.add(p, v128.load32_zero(xc));
  return f32x4.mul(f32x4.convert_i32x4_s(p), f32x4.splat(sc));
}

/**
 * Four groups' integer dots of expanded codes at w (32 bytes per group) with int8 row q, summed
 * across lanes into one i32x4 (one lane per group, exact), the shift corrections at c added.
 */
@inline function q8Step4(w: usize, q: usize, c: usize): v128 {
  let p = isum4x4(q8Dot(v128.load(w), v128.load(w, 16), q), q8Dot(v128.load(w, 32), v128.load(w, 48), q + 32),
    q8Dot(v128.load(w, 64), v128.load(w, 80), q + 64), q8Dot(v128.load(w, 96), v128.load(w, 112), q + 96));
  if (ASC_FEATURE_RELAXED_SIMD) p = i32x4.add(p, v128.load(c));
  return p;
}

/** Groups [g, groups) of dot1Q8, one at a time. */
@inline function q8TailExpanded(dq: usize, ds: usize, x: usize, cols: i32, g: i32): f32 {
  const groups = cols >> 5;
  const so = <usize>cols, co = so + (<usize>groups << 2);
  let s = f32x4.splat(0);
  for (; g < groups; g++) {
    const w = dq + (<usize>g << 5);
    s = f32x4.add(s, q8Scaled(v128.load(w), v128.load(w, 16), x + (<usize>g << 5), x + co + (<usize>g << 2), load<f32>(ds + (<usize>g << 2)) * load<f32>(x + so + (<usize>g << 2))));
  }
  return hsum(s);
}

/**
 * Dots of one expanded row (codes dq, scales ds) with 4 int8-quantised rows x0..x3 into dot0..3.
 * With relaxed SIMD one token at a time: a pass sharing the row's codes across two or four tokens
 * keeps more values live than x64 has vector registers, and V8's spills made it 6-13% slower
 * (bench/kernel-ab.ts). Without it the codes are widened to i16 before the dots, work a pass over
 * four tokens shares (one token at a time was 1.4x slower there).
 */
@inline export function dot4Q8(dq: usize, ds: usize, x0: usize, x1: usize, x2: usize, x3: usize, cols: i32): void {
  if (ASC_FEATURE_RELAXED_SIMD) {
    setDots4(dot1Q8(dq, ds, x0, cols), dot1Q8(dq, ds, x1, cols), dot1Q8(dq, ds, x2, cols), dot1Q8(dq, ds, x3, cols));
    return;
  }
  const groups = cols >> 5;
  const so = <usize>cols, co = so + (<usize>groups << 2);
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
  for (let g = 0; g < groups; g++) {
    const w = dq + (<usize>g << 5);
    const wl = v128.load(w), wh = v128.load(w, 16);
    const ws = load<f32>(ds + (<usize>g << 2));
    const o = <usize>g << 5, go = so + (<usize>g << 2), gc = co + (<usize>g << 2);
    s0 = f32x4.add(s0, q8Scaled(wl, wh, x0 + o, x0 + gc, ws * load<f32>(x0 + go)));
    s1 = f32x4.add(s1, q8Scaled(wl, wh, x1 + o, x1 + gc, ws * load<f32>(x1 + go)));
    s2 = f32x4.add(s2, q8Scaled(wl, wh, x2 + o, x2 + gc, ws * load<f32>(x2 + go)));
    s3 = f32x4.add(s3, q8Scaled(wl, wh, x3 + o, x3 + gc, ws * load<f32>(x3 + go)));
  }
  setDots4(hsum(s0), hsum(s1), hsum(s2), hsum(s3));
}

// ---- Four rows interleaved (relaxed SIMD, several tokens) ----------------------------------
// A pass over one token and four rows of an expert: the rows' codes interleaved so one 16-byte
// vector holds 4 consecutive codes of each of the 4 rows, and the token's matching 4 activations
// broadcast against it. One byte dot then serves 4 rows, the i16 results of a group's 16 low
// (or high) positions add without overflow (4 x 2 x 24 x 127 < 2^15), and the i32 lanes that
// come out are the 4 rows themselves: no sum across lanes per group nor per output.

/**
 * Expands packed MXFP4 rows r..r+3 (blk, scl at row r; rows rowBytes and `groups` scale bytes
 * apart) into dq: per group 128 bytes, vector m < 4 holding codes 4m..4m+3 (low nibbles) of rows
 * 0..3 and vector 4 + m the high nibbles' 4m..4m+3; then per group the 4 rows' f32 scales
 * (4.5 bytes per column in all).
 */
@inline export function mxRowsExpandQ8x4(blk: usize, scl: usize, rowBytes: usize, groups: i32, dq: usize): void {
  const ds = dq + (<usize>groups << 7);
  const sg = <usize>groups;
  for (let g = 0; g < groups; g++) {
    const b = blk + (<usize>g << 4);
    const b0 = v128.load(b), b1 = v128.load(b + rowBytes), b2 = v128.load(b + 2 * rowBytes), b3 = v128.load(b + 3 * rowBytes);
    const d = dq + (<usize>g << 7);
    interleave4(d, q8Low(b0), q8Low(b1), q8Low(b2), q8Low(b3));
    interleave4(d + 64, q8High(b0), q8High(b1), q8High(b2), q8High(b3));
    const s = scl + g, o = ds + (<usize>g << 4);
    store<f32>(o, e8m0Half(load<u8>(s)));
    store<f32>(o, e8m0Half(load<u8>(s + sg)), 4);
    store<f32>(o, e8m0Half(load<u8>(s + 2 * sg)), 8);
    store<f32>(o, e8m0Half(load<u8>(s + 3 * sg)), 12);
  }
}

/** Stores the 4x4 transpose (in 32-bit lanes) of rows a, b, c, e as four vectors at d. */
@inline function interleave4(d: usize, a: v128, b: v128, c: v128, e: v128): void {
  const ab0 = i32x4.shuffle(a, b, 0, 4, 1, 5), ce0 = i32x4.shuffle(c, e, 0, 4, 1, 5);
  const ab1 = i32x4.shuffle(a, b, 2, 6, 3, 7), ce1 = i32x4.shuffle(c, e, 2, 6, 3, 7);
  v128.store(d, i64x2.shuffle(ab0, ce0, 0, 2));
  v128.store(d, i64x2.shuffle(ab0, ce0, 1, 3), 16);
  v128.store(d, i64x2.shuffle(ab1, ce1, 0, 2), 32);
  v128.store(d, i64x2.shuffle(ab1, ce1, 1, 3), 48);
}

/**
 * Byte dot of 4 interleaved rows' codes w with 4 activations repeated in each lane of xs:
 * adjacent products summed into i16 lanes (pmaddubsw with relaxed SIMD; the baseline build's
 * signed codes through i16 dots, the same sums).
 */
@inline function q8x4Step(w: v128, xs: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return i16x8.relaxed_dot_i8x16_i7x16_s(xs, w);
  const xe = i16x8.extend_low_i8x16_s(xs);
  return i16x8.narrow_i32x4_s(i32x4.dot_i16x8_s(xe, i16x8.extend_low_i8x16_s(w)), i32x4.dot_i16x8_s(xe, i16x8.extend_high_i8x16_s(w)));
}

/** Sum of a half group's 4 steps: codes at w (4 vectors) against the 16 activations in x. */
@inline function q8x4Half(w: usize, x: v128): v128 {
  return i16x8.add(i16x8.add(q8x4Step(v128.load(w), i32x4.shuffle(x, x, 0, 0, 0, 0)), q8x4Step(v128.load(w, 16), i32x4.shuffle(x, x, 1, 1, 1, 1))),
    i16x8.add(q8x4Step(v128.load(w, 32), i32x4.shuffle(x, x, 2, 2, 2, 2)), q8x4Step(v128.load(w, 48), i32x4.shuffle(x, x, 3, 3, 3, 3))));
}

/** One group's i32 dots (a lane per row) of 4 interleaved rows at w with the 32 int8 activations at q. */
@inline function q8x4Group(w: usize, q: usize): v128 {
  return i32x4.add(i32x4.extadd_pairwise_i16x8_s(q8x4Half(w, v128.load(q))), i32x4.extadd_pairwise_i16x8_s(q8x4Half(w + 64, v128.load(q, 16))));
}

/** Dots of 4 interleaved expanded rows (mxRowsExpandQ8x4) with one int8-quantised row x: one lane per row. */
export function dotRowsX4Q8(dq: usize, x: usize, cols: i32): v128 {
  const groups = cols >> 5;
  // Pointers stepped per group (indexing by g costs V8 a shift and an add per access).
  let w = dq, q = x, s = dq + (<usize>groups << 7), xs = x + <usize>cols;
  let c = xs + (<usize>groups << 2);
  const end = s;
  let acc = f32x4.splat(0);
  while (w < end) {
    let p = q8x4Group(w, q);
    if (ASC_FEATURE_RELAXED_SIMD) p = i32x4.add(p, v128.load32_splat(c));
    acc = madd(f32x4.convert_i32x4_s(p), f32x4.mul(v128.load(s), v128.load32_splat(xs)), acc);
    w += 128; q += 32; s += 16; xs += 4; c += 4;
  }
  return acc;
}

/** Dot of one expanded row with one int8-quantised row. */
@inline export function dot1Q8(dq: usize, ds: usize, x: usize, cols: i32): f32 {
  const groups = cols >> 5;
  const so = <usize>cols, co = so + (<usize>groups << 2);
  let s = f32x4.splat(0);
  let g = 0;
  for (; g + 4 <= groups; g += 4) {
    const ws = v128.load(ds + (<usize>g << 2));
    s = madd(f32x4.convert_i32x4_s(q8Step4(dq + (<usize>g << 5), x + (<usize>g << 5), x + co + (<usize>g << 2))), f32x4.mul(ws, v128.load(x + so + (<usize>g << 2))), s);
  }
  return hsum(s) + q8TailExpanded(dq, ds, x, cols, g);
}

/**
 * Dot of one packed MXFP4 row with int8-quantised x (f32_quantize_i8), four groups per step: their
 * integer dots are summed across lanes into one vector (exact in i32), the shift corrections
 * added there, and one conversion and one multiply by the four group scales finish the step.
 */
@inline export function mxRowDotQ8(blk: usize, scl: usize, xq: usize, cols: i32): f32 {
  const groups = cols >> 5;
  const xs = xq + <usize>cols, xc = xs + (<usize>groups << 2);
  let acc = f32x4.splat(0);
  let g = 0;
  for (; g + 4 <= groups; g += 4) {
    const bg = blk + (<usize>g << 4), q = xq + (<usize>g << 5);
    let p = isum4x4(q8Group(v128.load(bg), q), q8Group(v128.load(bg, 16), q + 32), q8Group(v128.load(bg, 32), q + 64), q8Group(v128.load(bg, 48), q + 96));
    if (ASC_FEATURE_RELAXED_SIMD) p = i32x4.add(p, v128.load(xc + (<usize>g << 2)));
    const sc = f32x4.mul(e8m0Half4(scl + g), v128.load(xs + (<usize>g << 2)));
    acc = madd(f32x4.convert_i32x4_s(p), sc, acc);
  }
  return hsum(acc) + q8TailDot(blk, scl, xq, xs, xc, g, groups);
}

/** One row's tail groups [g, groups) of mxRowDotQ8 (scalar scale per group). */
@inline function q8TailDot(blk: usize, scl: usize, xq: usize, xs: usize, xc: usize, g: i32, groups: i32): f32 {
  let tail: f32 = 0;
  for (; g < groups; g++) {
    const sc = load<f32>(xs + (<usize>g << 2)) * e8m0Half(load<u8>(scl + g));
    let p = q8Group(v128.load(blk + (<usize>g << 4)), xq + (<usize>g << 5));
    let s = <f32>(i32x4.extract_lane(p, 0) + i32x4.extract_lane(p, 1) + i32x4.extract_lane(p, 2) + i32x4.extract_lane(p, 3));
    if (ASC_FEATURE_RELAXED_SIMD) s += <f32>load<i32>(xc + (<usize>g << 2));
    tail += s * sc;
  }
  return tail;
}

/** Position of logical column i in block-permuted order. */
@inline export function permuted(i: i32): i32 {
  const j = i & 31;
  return (i & ~31) | ((j & 1) << 4) | (j >> 1);
}

/** Copies rows of x [tokens, cols] (cols % 32 == 0) into block-permuted order. */
export function f32_block_permute(src: usize, dst: usize, tokens: i32, cols: i32): void {
  const n = tokens * cols;
  for (let i = 0; i < n; i += 32) {
    const s = src + (<usize>i << 2);
    const d = dst + (<usize>i << 2);
    for (let j = 0; j < 16; j++) {
      store<f32>(d + (<usize>j << 2), load<f32>(s + (<usize>(2 * j) << 2)));
      store<f32>(d + (<usize>(16 + j) << 2), load<f32>(s + (<usize>(2 * j + 1) << 2)));
    }
  }
}
