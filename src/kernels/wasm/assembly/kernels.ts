// The WebAssembly SIMD kernels (AssemblyScript, simd128). One compiled module, instantiated once
// per shared memory per thread; every pointer is a byte offset into that memory. Kernels that
// run on the worker pool take (part, parts) and compute their own slice, so a dispatch is just
// "call export N with these numbers" on every thread. Activations are f32, accumulation is f32.
//
// MXFP4 kernels read experts in their packed form. Their activations come "block-permuted": in
// each group of 32 the 16 even elements first, then the 16 odd ones, so the low nibbles of a
// 16-byte block line up with the first half and the high nibbles with the second half without a
// byte interleave.

// FP4 (e2m1) values doubled, so they are exact int8: {0, .5, 1, 1.5, 2, 3, 4, 6} * 2 and negatives.
const FP4X2: v128 = i8x16(0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12);
const NIBBLE: v128 = i8x16(15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15);
const ZERO: v128 = i32x4(0, 0, 0, 0);

// ---- helpers -------------------------------------------------------------------------------

/** Start of slice `part` of `parts` over [0, total), in units of `align`. */
@inline function sliceStart(total: i32, part: i32, parts: i32, align: i32): i32 {
  const units = (total + align - 1) / align;
  const s = <i32>((<i64>units * <i64>part) / <i64>parts) * align;
  return s < total ? s : total;
}

@inline function hsum(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3);
}

/** acc + a * b: one fused multiply-add where relaxed SIMD has it (x64 FMA3), else mul + add. */
@inline function madd(a: v128, b: v128, acc: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, acc);
  return f32x4.add(acc, f32x4.mul(a, b));
}

/** [sum(a), sum(b), sum(c), sum(d)] of four f32x4. */
@inline function sum4x4(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = f32x4.add(i32x4.shuffle(a, b, 0, 4, 1, 5), i32x4.shuffle(a, b, 2, 6, 3, 7));
  const cd = f32x4.add(i32x4.shuffle(c, d, 0, 4, 1, 5), i32x4.shuffle(c, d, 2, 6, 3, 7));
  return f32x4.add(i32x4.shuffle(ab, cd, 0, 1, 4, 5), i32x4.shuffle(ab, cd, 2, 3, 6, 7));
}

/** E8M0 exponent e -> 2^(e-128) (the LUT is doubled), exact including the subnormal range. */
@inline function e8m0Half(e: u32): f32 {
  return e >= 2 ? reinterpret<f32>((e - 1) << 23) : reinterpret<f32>(<u32>1 << (21 + e));
}

/** Dot product of two f32 vectors of length n. */
@inline function dotF32(a: usize, b: usize, n: i32): f32 {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let c = 0;
  for (; c + 16 <= n; c += 16) {
    const o = <usize>c << 2;
    a0 = f32x4.add(a0, f32x4.mul(v128.load(a + o), v128.load(b + o)));
    a1 = f32x4.add(a1, f32x4.mul(v128.load(a + o, 16), v128.load(b + o, 16)));
    a2 = f32x4.add(a2, f32x4.mul(v128.load(a + o, 32), v128.load(b + o, 32)));
    a3 = f32x4.add(a3, f32x4.mul(v128.load(a + o, 48), v128.load(b + o, 48)));
  }
  for (; c + 4 <= n; c += 4) {
    const o = <usize>c << 2;
    a0 = f32x4.add(a0, f32x4.mul(v128.load(a + o), v128.load(b + o)));
  }
  let s = hsum(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)));
  for (; c < n; c++) s += load<f32>(a + (<usize>c << 2)) * load<f32>(b + (<usize>c << 2));
  return s;
}

// Results of dot4F32 (AssemblyScript returns one value).
let dot0: f32 = 0, dot1: f32 = 0, dot2: f32 = 0, dot3: f32 = 0;

/** Dots of one f32 row w with 4 f32 rows x0..x3 (n % 4 == 0), sharing each load of w. */
@inline function dot4F32(w: usize, x0: usize, x1: usize, x2: usize, x3: usize, n: i32): void {
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
  for (let c = 0; c < n; c += 8) {
    const o = <usize>c << 2;
    const wa = v128.load(w + o), wb = v128.load(w + o, 16);
    s0 = madd(wb, v128.load(x0 + o, 16), madd(wa, v128.load(x0 + o), s0));
    s1 = madd(wb, v128.load(x1 + o, 16), madd(wa, v128.load(x1 + o), s1));
    s2 = madd(wb, v128.load(x2 + o, 16), madd(wa, v128.load(x2 + o), s2));
    s3 = madd(wb, v128.load(x3 + o, 16), madd(wa, v128.load(x3 + o), s3));
  }
  dot0 = hsum(s0); dot1 = hsum(s1); dot2 = hsum(s2); dot3 = hsum(s3);
}

let dot4: f32 = 0, dot5: f32 = 0, dot6: f32 = 0, dot7: f32 = 0;

/** Dots of two f32 rows wa, wb with 4 rows x0..x3 (n % 8 == 0): dot0..3 for wa, dot4..7 for wb. */
@inline function dot2x4F32(wa: usize, wb: usize, x0: usize, x1: usize, x2: usize, x3: usize, n: i32): void {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0), b3 = f32x4.splat(0);
  for (let c = 0; c < n; c += 4) {
    const o = <usize>c << 2;
    const va = v128.load(wa + o), vb = v128.load(wb + o);
    const y0 = v128.load(x0 + o), y1 = v128.load(x1 + o), y2 = v128.load(x2 + o), y3 = v128.load(x3 + o);
    a0 = madd(va, y0, a0); b0 = madd(vb, y0, b0);
    a1 = madd(va, y1, a1); b1 = madd(vb, y1, b1);
    a2 = madd(va, y2, a2); b2 = madd(vb, y2, b2);
    a3 = madd(va, y3, a3); b3 = madd(vb, y3, b3);
  }
  dot0 = hsum(a0); dot1 = hsum(a1); dot2 = hsum(a2); dot3 = hsum(a3);
  dot4 = hsum(b0); dot5 = hsum(b1); dot6 = hsum(b2); dot7 = hsum(b3);
}

// ---- BF16 linear ---------------------------------------------------------------------------
// A bf16 word is the upper half of an f32. Loaded as 4 x i32, the odd words are already in place
// (mask the low half) and the even words need one shift, so the kernels take x "pair-permuted":
// in each group of 8, elements 0,2,4,6 then 1,3,5,7 (tails of < 8 stay in order).

const HIGH_HALVES: v128 = i32x4(0xffff0000, 0xffff0000, 0xffff0000, 0xffff0000);

@inline function bf16Even(v: v128): v128 {
  return i32x4.shl(v, 16);
}
@inline function bf16Odd(v: v128): v128 {
  return v128.and(v, HIGH_HALVES);
}
@inline function bf16At(p: usize): f32 {
  return reinterpret<f32>(<u32>load<u16>(p) << 16);
}

/** Copies x [tokens, cols] into pair-permuted order. */
export function permutePairs(src: usize, dst: usize, tokens: i32, cols: i32): void {
  for (let t = 0; t < tokens; t++) {
    const s = src + (<usize>(t * cols) << 2), d = dst + (<usize>(t * cols) << 2);
    let c = 0;
    for (; c + 8 <= cols; c += 8) {
      const o = <usize>c << 2;
      const a = v128.load(s + o), b = v128.load(s + o, 16);
      v128.store(d + o, i32x4.shuffle(a, b, 0, 2, 4, 6));
      v128.store(d + o, i32x4.shuffle(a, b, 1, 3, 5, 7), 16);
    }
    for (; c < cols; c++) store<f32>(d + (<usize>c << 2), load<f32>(s + (<usize>c << 2)));
  }
}

/** One output: dot of bf16 row w (n words) with pair-permuted f32 x. */
@inline function dotBf16(w: usize, x: usize, n: i32): f32 {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let c = 0;
  for (; c + 16 <= n; c += 16) {
    const v0 = v128.load(w + (<usize>c << 1));
    const v1 = v128.load(w + (<usize>c << 1), 16);
    const xo = x + (<usize>c << 2);
    a0 = f32x4.add(a0, f32x4.mul(bf16Even(v0), v128.load(xo)));
    a1 = f32x4.add(a1, f32x4.mul(bf16Odd(v0), v128.load(xo, 16)));
    a2 = f32x4.add(a2, f32x4.mul(bf16Even(v1), v128.load(xo, 32)));
    a3 = f32x4.add(a3, f32x4.mul(bf16Odd(v1), v128.load(xo, 48)));
  }
  for (; c + 8 <= n; c += 8) {
    const v0 = v128.load(w + (<usize>c << 1));
    const xo = x + (<usize>c << 2);
    a0 = f32x4.add(a0, f32x4.mul(bf16Even(v0), v128.load(xo)));
    a1 = f32x4.add(a1, f32x4.mul(bf16Odd(v0), v128.load(xo, 16)));
  }
  let s = hsum(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)));
  for (; c < n; c++) s += bf16At(w + (<usize>c << 1)) * load<f32>(x + (<usize>c << 2));
  return s;
}

/** Tokens per block of the bf16 matmul: 64 rows of 2880 f32 activations are 737 KB (L2 is 1 MB). */
const LINEAR_TOKEN_BLOCK = 64;

/**
 * out[t, r] = x[t] . w[r] + bias[r] for this thread's rows (x pair-permuted). Rows go in blocks of
 * 16 (kept in L1/L2) and tokens in tiles of 4 that share each weight load (two rows at a time),
 * so a prefill reads the weights from memory once per block of 64 tokens. bias == 0: no bias.
 */
export function linearBf16(x: usize, tokens: i32, cols: i32, w: usize, rows: i32, bias: usize, out: usize, part: i32, parts: i32): void {
  const r0 = sliceStart(rows, part, parts, 4);
  const r1 = sliceStart(rows, part + 1, parts, 4);
  const rowBytes = <usize>cols << 1;
  const xStride = <usize>cols << 2;
  // Tokens in blocks of LINEAR_TOKEN_BLOCK so a block's activations stay in L2 while every row of
  // this thread's slice streams past them (a long prompt's x is several MB).
  for (let tb = 0; tb < tokens; tb += LINEAR_TOKEN_BLOCK) {
    const tEnd = min(tb + LINEAR_TOKEN_BLOCK, tokens);
    for (let rb = r0; rb < r1; rb += 16) {
      const rbEnd = min(rb + 16, r1);
      let t = tb;
      for (; t + 4 <= tEnd; t += 4) {
        const x0 = x + <usize>t * xStride;
        const x1 = x0 + xStride, x2 = x1 + xStride, x3 = x2 + xStride;
        let r = rb;
        if ((cols & 7) == 0) {
          // Two rows x four tokens: each activation load feeds two rows.
          for (; r + 2 <= rbEnd; r += 2) {
            const wa = w + <usize>r * rowBytes, wb = wa + rowBytes;
            let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
            let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0), b3 = f32x4.splat(0);
            for (let c = 0; c < cols; c += 8) {
              const va = v128.load(wa + (<usize>c << 1)), vb = v128.load(wb + (<usize>c << 1));
              const la = bf16Even(va), ha = bf16Odd(va), lb = bf16Even(vb), hb = bf16Odd(vb);
              const o = <usize>c << 2;
              let y = v128.load(x0 + o), z = v128.load(x0 + o, 16);
              a0 = madd(ha, z, madd(la, y, a0)); b0 = madd(hb, z, madd(lb, y, b0));
              y = v128.load(x1 + o); z = v128.load(x1 + o, 16);
              a1 = madd(ha, z, madd(la, y, a1)); b1 = madd(hb, z, madd(lb, y, b1));
              y = v128.load(x2 + o); z = v128.load(x2 + o, 16);
              a2 = madd(ha, z, madd(la, y, a2)); b2 = madd(hb, z, madd(lb, y, b2));
              y = v128.load(x3 + o); z = v128.load(x3 + o, 16);
              a3 = madd(ha, z, madd(la, y, a3)); b3 = madd(hb, z, madd(lb, y, b3));
            }
            const sa = sum4x4(a0, a1, a2, a3), sb = sum4x4(b0, b1, b2, b3);
            const ba: f32 = bias != 0 ? load<f32>(bias + (<usize>r << 2)) : 0;
            const bb: f32 = bias != 0 ? load<f32>(bias + (<usize>r << 2), 4) : 0;
            const os = <usize>rows << 2;
            const ob = out + <usize>t * os + (<usize>r << 2);
            store<f32>(ob, f32x4.extract_lane(sa, 0) + ba); store<f32>(ob, f32x4.extract_lane(sb, 0) + bb, 4);
            store<f32>(ob + os, f32x4.extract_lane(sa, 1) + ba); store<f32>(ob + os, f32x4.extract_lane(sb, 1) + bb, 4);
            store<f32>(ob + 2 * os, f32x4.extract_lane(sa, 2) + ba); store<f32>(ob + 2 * os, f32x4.extract_lane(sb, 2) + bb, 4);
            store<f32>(ob + 3 * os, f32x4.extract_lane(sa, 3) + ba); store<f32>(ob + 3 * os, f32x4.extract_lane(sb, 3) + bb, 4);
          }
        }
        for (; r < rbEnd; r++) {
          const wr = w + <usize>r * rowBytes;
          let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
          let c = 0;
          for (; c + 8 <= cols; c += 8) {
            const v = v128.load(wr + (<usize>c << 1));
            const lo = bf16Even(v), hi = bf16Odd(v);
            const o = <usize>c << 2;
            s0 = f32x4.add(s0, f32x4.add(f32x4.mul(lo, v128.load(x0 + o)), f32x4.mul(hi, v128.load(x0 + o, 16))));
            s1 = f32x4.add(s1, f32x4.add(f32x4.mul(lo, v128.load(x1 + o)), f32x4.mul(hi, v128.load(x1 + o, 16))));
            s2 = f32x4.add(s2, f32x4.add(f32x4.mul(lo, v128.load(x2 + o)), f32x4.mul(hi, v128.load(x2 + o, 16))));
            s3 = f32x4.add(s3, f32x4.add(f32x4.mul(lo, v128.load(x3 + o)), f32x4.mul(hi, v128.load(x3 + o, 16))));
          }
          let d0 = hsum(s0), d1 = hsum(s1), d2 = hsum(s2), d3 = hsum(s3);
          for (; c < cols; c++) {
            const wv = bf16At(wr + (<usize>c << 1));
            const o = <usize>c << 2;
            d0 += wv * load<f32>(x0 + o); d1 += wv * load<f32>(x1 + o);
            d2 += wv * load<f32>(x2 + o); d3 += wv * load<f32>(x3 + o);
          }
          const b: f32 = bias != 0 ? load<f32>(bias + (<usize>r << 2)) : 0;
          const ro = <usize>r << 2, os = <usize>rows << 2;
          const ob = out + <usize>t * os + ro;
          store<f32>(ob, d0 + b);
          store<f32>(ob + os, d1 + b);
          store<f32>(ob + 2 * os, d2 + b);
          store<f32>(ob + 3 * os, d3 + b);
        }
      }
      for (; t < tEnd; t++) {
        const xt = x + <usize>t * xStride;
        for (let r = rb; r < rbEnd; r++) {
          const b: f32 = bias != 0 ? load<f32>(bias + (<usize>r << 2)) : 0;
          store<f32>(out + ((<usize>t * <usize>rows + <usize>r) << 2), dotBf16(w + <usize>r * rowBytes, xt, cols) + b);
        }
      }
    }
  }
}

// ---- MXFP4 experts -------------------------------------------------------------------------

/** Dot of one packed MXFP4 row (groups of 16 bytes + 1 scale byte each) with block-permuted x. */
@inline function mxRowDot(blk: usize, scl: usize, x: usize, groups: i32): f32 {
  let acc = f32x4.splat(0);
  for (let g = 0; g < groups; g++) {
    const b = v128.load(blk + (<usize>g << 4));
    const wl = i8x16.swizzle(FP4X2, v128.and(b, NIBBLE));
    const wh = i8x16.swizzle(FP4X2, i8x16.shr_u(b, 4));
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
@inline function mxRowExpand(blk: usize, scl: usize, dst: usize, groups: i32): void {
  for (let g = 0; g < groups; g++) {
    const b = v128.load(blk + (<usize>g << 4));
    const wl = i8x16.swizzle(FP4X2, v128.and(b, NIBBLE));
    const wh = i8x16.swizzle(FP4X2, i8x16.shr_u(b, 4));
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

/** Bytes of one split-quantised row (quantize16x2): per group 32 high + 32 low i16, then f32 scales. */
@inline function q2Stride(cols: i32): usize {
  return ((<usize>cols * 4 + (<usize>cols >> 3)) + 63) & ~63;
}

const LOW_STEPS: f32 = 65534;

/**
 * Splits block-permuted f32 activations [rows, cols] into two i16 halves per group of 32:
 * x = d * (hi + lo / 65534) with d = max|x| / 32767, so x is carried to ~2^-31 of the group's
 * largest value: integer dot products (i32x4.dot_i16x8_s) then give f32-grade results (the
 * residual is far below f32 rounding of the sum) at about two thirds of the f32 path's work.
 */
export function quantize16x2(src: usize, dst: usize, rows: i32, cols: i32): void {
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

/** Dot of one packed MXFP4 row with split-quantised x (quantize16x2). */
@inline function mxRowDotQ2(blk: usize, scl: usize, xq: usize, xd: usize, groups: i32): f32 {
  let acc = f32x4.splat(0);
  const lowScale = f32x4.splat(1 / LOW_STEPS);
  for (let g = 0; g < groups; g++) {
    const b = v128.load(blk + (<usize>g << 4));
    const wl = i8x16.swizzle(FP4X2, v128.and(b, NIBBLE));
    const wh = i8x16.swizzle(FP4X2, i8x16.shr_u(b, 4));
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

// ---- MXFP4 x int8 activations ('q8') ------------------------------------------------------
// Activations quantised to int8 per group of 32 (scale = max|x| / 127), as llama.cpp does for
// MXFP4: the fastest mode, with an error per op of ~0.4% of the group's largest activation (the
// golden tests hold it to their tolerance for the official bf16 reference). With relaxed SIMD the FP4
// codes are shifted to 0..24 so one unsigned-by-signed byte dot (pmaddubsw on x64) takes 16
// products per instruction; the shift adds 12 * sum(q) per group, which quantize8 stores negated
// so the kernel subtracts it. Without relaxed SIMD the codes stay signed and go through i16 dots.

// FP4 codes doubled plus 12: 0..24, the unsigned operand of the relaxed byte dot.
const FP4X2P12: v128 = i8x16(12, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0);

/** Bytes of one int8-quantised row: cols i8, then cols/32 f32 scales, cols/32 i32 corrections. */
@inline function q8Stride(cols: i32): usize {
  return ((<usize>cols + (<usize>cols >> 2)) + 63) & ~63;
}

/** Quantises block-permuted f32 activations [rows, cols] to int8 per group of 32 (see above). */
export function quantize8(src: usize, dst: usize, rows: i32, cols: i32): void {
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

/** 4 E8M0 bytes at p -> f32x4 of 2^(e-128) (the codes are doubled), exact for every e. */
@inline function e8m0Half4(p: usize): v128 {
  const e = i32x4.extend_low_i16x8_u(i16x8.extend_low_i8x16_u(v128.load32_zero(p)));
  const normal = i32x4.shl(i32x4.sub(e, i32x4.splat(1)), 23);
  const tiny = i32x4.shl(i32x4.add(e, i32x4.splat(1)), 21);
  return v128.bitselect(normal, tiny, i32x4.gt_u(e, i32x4.splat(1)));
}

/** The byte codes of one group's low and high nibbles, in the form q8Dot takes. */
@inline function q8Low(b: v128): v128 {
  return i8x16.swizzle(ASC_FEATURE_RELAXED_SIMD ? FP4X2P12 : FP4X2, v128.and(b, NIBBLE));
}
@inline function q8High(b: v128): v128 {
  return i8x16.swizzle(ASC_FEATURE_RELAXED_SIMD ? FP4X2P12 : FP4X2, i8x16.shr_u(b, 4));
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
@inline function mxRowExpandQ8(blk: usize, scl: usize, dq: usize, ds: usize, groups: i32): void {
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

/** Dots of one expanded row (codes dq, scales ds) with 4 int8-quantised rows x0..x3 into dot0..3. */
@inline function dot4Q8(dq: usize, ds: usize, x0: usize, x1: usize, x2: usize, x3: usize, cols: i32): void {
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
  dot0 = hsum(s0); dot1 = hsum(s1); dot2 = hsum(s2); dot3 = hsum(s3);
}

/** Dot of one expanded row with one int8-quantised row. */
@inline function dot1Q8(dq: usize, ds: usize, x: usize, cols: i32): f32 {
  const groups = cols >> 5;
  const so = <usize>cols, co = so + (<usize>groups << 2);
  let s = f32x4.splat(0);
  for (let g = 0; g < groups; g++) {
    const w = dq + (<usize>g << 5);
    s = f32x4.add(s, q8Scaled(v128.load(w), v128.load(w, 16), x + (<usize>g << 5), x + co + (<usize>g << 2), load<f32>(ds + (<usize>g << 2)) * load<f32>(x + so + (<usize>g << 2))));
  }
  return hsum(s);
}

/** [sum(a), sum(b), sum(c), sum(d)] of four i32x4. */
@inline function isum4x4(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = i32x4.add(i32x4.shuffle(a, b, 0, 4, 1, 5), i32x4.shuffle(a, b, 2, 6, 3, 7));
  const cd = i32x4.add(i32x4.shuffle(c, d, 0, 4, 1, 5), i32x4.shuffle(c, d, 2, 6, 3, 7));
  return i32x4.add(i32x4.shuffle(ab, cd, 0, 1, 4, 5), i32x4.shuffle(ab, cd, 2, 3, 6, 7));
}

/**
 * Dot of one packed MXFP4 row with int8-quantised x (quantize8), four groups per step: their
 * integer dots are summed across lanes into one vector (exact in i32), the shift corrections
 * added there, and one conversion and one multiply by the four group scales finish the step.
 */
@inline function mxRowDotQ8(blk: usize, scl: usize, xq: usize, cols: i32): f32 {
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
  let tail: f32 = 0;
  for (; g < groups; g++) {
    const sc = load<f32>(xs + (<usize>g << 2)) * e8m0Half(load<u8>(scl + g));
    let p = q8Group(v128.load(blk + (<usize>g << 4)), xq + (<usize>g << 5));
    let s = <f32>(i32x4.extract_lane(p, 0) + i32x4.extract_lane(p, 1) + i32x4.extract_lane(p, 2) + i32x4.extract_lane(p, 3));
    if (ASC_FEATURE_RELAXED_SIMD) s += <f32>load<i32>(xc + (<usize>g << 2));
    tail += s * sc;
  }
  return hsum(acc) + tail;
}

/** Position of logical column i in block-permuted order. */
@inline function permuted(i: i32): i32 {
  const j = i & 31;
  return (i & ~31) | ((j & 1) << 4) | (j >> 1);
}

/** Copies rows of x [tokens, cols] (cols % 32 == 0) into block-permuted order. */
export function permuteBlocks(src: usize, dst: usize, tokens: i32, cols: i32): void {
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

@inline function swiglu(glu: f32, lin: f32, limit: f32): f32 {
  const g = min(glu, limit);
  const l = max(min(lin, limit), -limit);
  return g / (1 + Mathf.exp(-1.702 * g)) * (l + 1);
}

// An expert job list is an array of 8-word entries in memory:
//   [0] blocks ptr  [1] scales ptr  [2] bias ptr (f32)  [3] input ptr (block-permuted f32 [n, cols])
//   [4] n tokens    [5] output ptr (up) / quantised input (down)
//   [6] token index ptr (i32 [n]) (down) / quantised input (up)   [7] routing weight ptr (f32 [n])
// The kernels' `quant` flag says how inputs are carried: 0 f32; 2 quantize16x2 ('split',
// single-token entries; the others f32); 3 quantize8 ('q8', every entry).

/**
 * First expert matrix with the clamped SwiGLU fused in: for each entry, rows (2i, 2i+1) of mlp1
 * give (glu, linear) and act[t, i] (block-permuted, ready for mlp2) = swiglu. Threads split the
 * (entry, i) pairs. rowbuf holds 2 * hidden f32 per thread for the multi-token path.
 */
export function expertsUp(list: usize, entries: i32, hidden: i32, inter: i32, rowbuf: usize, limit: f32, quant: i32, part: i32, parts: i32): void {
  const total = entries * inter;
  const p0 = sliceStart(total, part, parts, 4);
  const p1 = sliceStart(total, part + 1, parts, 4);
  const groups = hidden >> 5;
  const rowBytes = <usize>hidden >> 1;
  const bufA = rowbuf + <usize>part * (<usize>hidden << 3);
  const bufB = bufA + (<usize>hidden << 2);
  for (let p = p0; p < p1; p++) {
    const e = p / inter, i = p - e * inter;
    const ent = list + (<usize>e << 5);
    const blk = <usize>load<u32>(ent), scl = <usize>load<u32>(ent, 4), bias = <usize>load<u32>(ent, 8);
    const x = <usize>load<u32>(ent, 12), n = load<i32>(ent, 16), act = <usize>load<u32>(ent, 20);
    const xq = <usize>load<u32>(ent, 24);
    const rg = <usize>(2 * i);
    const bg = load<f32>(bias + (rg << 2)), bl = load<f32>(bias + (rg << 2), 4);
    const blkG = blk + rg * rowBytes, blkL = blkG + rowBytes;
    const sclG = scl + rg * <usize>groups, sclL = sclG + <usize>groups;
    const pi = <usize>permuted(i) << 2;
    const as = <usize>inter << 2;
    if (quant == 3 && n == 1) {
      const g = mxRowDotQ8(blkG, sclG, xq, hidden) + bg;
      const l = mxRowDotQ8(blkL, sclL, xq, hidden) + bl;
      store<f32>(act + pi, swiglu(g, l, limit));
    } else if (quant == 3) {
      // Several tokens: both rows expanded once to byte codes, then 4 tokens per pass.
      const xs8 = q8Stride(hidden);
      mxRowExpandQ8(blkG, sclG, bufA, bufA + <usize>hidden, groups);
      mxRowExpandQ8(blkL, sclL, bufB, bufB + <usize>hidden, groups);
      let t = 0;
      for (; t + 4 <= n; t += 4) {
        const x0 = xq + <usize>t * xs8;
        dot4Q8(bufA, bufA + <usize>hidden, x0, x0 + xs8, x0 + 2 * xs8, x0 + 3 * xs8, hidden);
        const g0 = dot0 + bg, g1 = dot1 + bg, g2 = dot2 + bg, g3 = dot3 + bg;
        dot4Q8(bufB, bufB + <usize>hidden, x0, x0 + xs8, x0 + 2 * xs8, x0 + 3 * xs8, hidden);
        const a0 = act + <usize>t * as + pi;
        store<f32>(a0, swiglu(g0, dot0 + bl, limit));
        store<f32>(a0 + as, swiglu(g1, dot1 + bl, limit));
        store<f32>(a0 + 2 * as, swiglu(g2, dot2 + bl, limit));
        store<f32>(a0 + 3 * as, swiglu(g3, dot3 + bl, limit));
      }
      for (; t < n; t++) {
        const xt = xq + <usize>t * xs8;
        store<f32>(act + <usize>t * as + pi, swiglu(dot1Q8(bufA, bufA + <usize>hidden, xt, hidden) + bg, dot1Q8(bufB, bufB + <usize>hidden, xt, hidden) + bl, limit));
      }
    } else if (quant == 2 && n == 1) {
      const xd = xq + (<usize>hidden << 2);
      const g = mxRowDotQ2(blkG, sclG, xq, xd, groups) + bg;
      const l = mxRowDotQ2(blkL, sclL, xq, xd, groups) + bl;
      store<f32>(act + pi, swiglu(g, l, limit));
    } else if (n == 1) {
      const g = mxRowDot(blkG, sclG, x, groups) + bg;
      const l = mxRowDot(blkL, sclL, x, groups) + bl;
      store<f32>(act + pi, swiglu(g, l, limit));
    } else {
      mxRowExpand(blkG, sclG, bufA, groups);
      mxRowExpand(blkL, sclL, bufB, groups);
      const xs = <usize>hidden << 2;
      let t = 0;
      for (; t + 4 <= n; t += 4) {
        const x0 = x + <usize>t * xs;
        dot2x4F32(bufA, bufB, x0, x0 + xs, x0 + 2 * xs, x0 + 3 * xs, hidden);
        const a0 = act + <usize>t * as + pi;
        store<f32>(a0, swiglu(dot0 + bg, dot4 + bl, limit));
        store<f32>(a0 + as, swiglu(dot1 + bg, dot5 + bl, limit));
        store<f32>(a0 + 2 * as, swiglu(dot2 + bg, dot6 + bl, limit));
        store<f32>(a0 + 3 * as, swiglu(dot3 + bg, dot7 + bl, limit));
      }
      for (; t < n; t++) {
        const xt = x + <usize>t * xs;
        const g = dotF32(bufA, xt, hidden) + bg;
        const l = dotF32(bufB, xt, hidden) + bl;
        store<f32>(act + <usize>t * as + pi, swiglu(g, l, limit));
      }
    }
  }
}

/**
 * Second expert matrix: out[tok[t], r] += weight[t] * (act[t] . mlp2[r] + bias[r]) for every
 * entry, with threads splitting the output rows (so no two threads touch the same element).
 */
export function expertsDown(list: usize, entries: i32, hidden: i32, inter: i32, out: usize, rowbuf: usize, quant: i32, part: i32, parts: i32): void {
  const r0 = sliceStart(hidden, part, parts, 4);
  const r1 = sliceStart(hidden, part + 1, parts, 4);
  const groups = inter >> 5;
  const rowBytes = <usize>inter >> 1;
  const buf = rowbuf + <usize>part * (<usize>inter << 3);
  const buf2 = buf + (<usize>inter << 2);
  const os = <usize>hidden << 2, as = <usize>inter << 2;
  for (let e = 0; e < entries; e++) {
    const ent = list + (<usize>e << 5);
    const blk = <usize>load<u32>(ent), scl = <usize>load<u32>(ent, 4), bias = <usize>load<u32>(ent, 8);
    const act = <usize>load<u32>(ent, 12), n = load<i32>(ent, 16), aq = <usize>load<u32>(ent, 20);
    const tok = <usize>load<u32>(ent, 24), wgt = <usize>load<u32>(ent, 28);
    for (let r = r0; r < r1; r++) {
      const br = blk + <usize>r * rowBytes, sr = scl + <usize>r * <usize>groups;
      const b = load<f32>(bias + (<usize>r << 2));
      const ro = <usize>r << 2;
      if ((quant == 0 || quant == 2) && n >= 4 && r + 1 < r1) {
        // Two rows at a time: each activation load feeds 2 rows x 4 tokens.
        const b2 = load<f32>(bias + (<usize>(r + 1) << 2));
        mxRowExpand(br, sr, buf, groups);
        mxRowExpand(br + rowBytes, sr + <usize>groups, buf2, groups);
        let t = 0;
        for (; t + 4 <= n; t += 4) {
          const a0 = act + <usize>t * as;
          dot2x4F32(buf, buf2, a0, a0 + as, a0 + 2 * as, a0 + 3 * as, inter);
          const o0 = out + <usize>load<i32>(tok + (<usize>t << 2)) * os + ro;
          const o1 = out + <usize>load<i32>(tok + (<usize>(t + 1) << 2)) * os + ro;
          const o2 = out + <usize>load<i32>(tok + (<usize>(t + 2) << 2)) * os + ro;
          const o3 = out + <usize>load<i32>(tok + (<usize>(t + 3) << 2)) * os + ro;
          const w0 = load<f32>(wgt + (<usize>t << 2)), w1 = load<f32>(wgt + (<usize>(t + 1) << 2));
          const w2 = load<f32>(wgt + (<usize>(t + 2) << 2)), w3 = load<f32>(wgt + (<usize>(t + 3) << 2));
          store<f32>(o0, load<f32>(o0) + w0 * (dot0 + b)); store<f32>(o0, load<f32>(o0, 4) + w0 * (dot4 + b2), 4);
          store<f32>(o1, load<f32>(o1) + w1 * (dot1 + b)); store<f32>(o1, load<f32>(o1, 4) + w1 * (dot5 + b2), 4);
          store<f32>(o2, load<f32>(o2) + w2 * (dot2 + b)); store<f32>(o2, load<f32>(o2, 4) + w2 * (dot6 + b2), 4);
          store<f32>(o3, load<f32>(o3) + w3 * (dot3 + b)); store<f32>(o3, load<f32>(o3, 4) + w3 * (dot7 + b2), 4);
        }
        for (; t < n; t++) {
          const a = act + <usize>t * as;
          const o = out + <usize>load<i32>(tok + (<usize>t << 2)) * os + ro;
          const w = load<f32>(wgt + (<usize>t << 2));
          store<f32>(o, load<f32>(o) + w * (dotF32(buf, a, inter) + b));
          store<f32>(o, load<f32>(o, 4) + w * (dotF32(buf2, a, inter) + b2), 4);
        }
        r++;
        continue;
      }
      if (n == 1) {
        const y = (quant == 3 ? mxRowDotQ8(br, sr, aq, inter) : quant == 2 ? mxRowDotQ2(br, sr, aq, aq + (<usize>inter << 2), groups)
          : mxRowDot(br, sr, act, groups)) + b;
        const o = out + <usize>load<i32>(tok) * os + ro;
        store<f32>(o, load<f32>(o) + load<f32>(wgt) * y);
        continue;
      }
      const q8 = quant == 3;
      if (q8) mxRowExpandQ8(br, sr, buf, buf + <usize>inter, groups);
      else mxRowExpand(br, sr, buf, groups);
      const src = q8 ? aq : act, ss = q8 ? q8Stride(inter) : as;
      let t = 0;
      for (; t + 4 <= n; t += 4) {
        const a0 = src + <usize>t * ss;
        if (q8) dot4Q8(buf, buf + <usize>inter, a0, a0 + ss, a0 + 2 * ss, a0 + 3 * ss, inter);
        else dot4F32(buf, a0, a0 + ss, a0 + 2 * ss, a0 + 3 * ss, inter);
        const o0 = out + <usize>load<i32>(tok + (<usize>t << 2)) * os + ro;
        const o1 = out + <usize>load<i32>(tok + (<usize>(t + 1) << 2)) * os + ro;
        const o2 = out + <usize>load<i32>(tok + (<usize>(t + 2) << 2)) * os + ro;
        const o3 = out + <usize>load<i32>(tok + (<usize>(t + 3) << 2)) * os + ro;
        store<f32>(o0, load<f32>(o0) + load<f32>(wgt + (<usize>t << 2)) * (dot0 + b));
        store<f32>(o1, load<f32>(o1) + load<f32>(wgt + (<usize>(t + 1) << 2)) * (dot1 + b));
        store<f32>(o2, load<f32>(o2) + load<f32>(wgt + (<usize>(t + 2) << 2)) * (dot2 + b));
        store<f32>(o3, load<f32>(o3) + load<f32>(wgt + (<usize>(t + 3) << 2)) * (dot3 + b));
      }
      for (; t < n; t++) {
        const a = src + <usize>t * ss;
        const y = (q8 ? dot1Q8(buf, buf + <usize>inter, a, inter) : dotF32(buf, a, inter)) + b;
        const o = out + <usize>load<i32>(tok + (<usize>t << 2)) * os + ro;
        store<f32>(o, load<f32>(o) + load<f32>(wgt + (<usize>t << 2)) * y);
      }
    }
  }
}

// ---- attention -----------------------------------------------------------------------------

// Cephes-style single-precision exp: 2^n times a degree-6 polynomial on [-ln2/2, ln2/2] (about
// 1 ulp), ln2 split in two so the reduction is exact.
const LOG2E: f32 = 1.44269504088896341;
const LN2_HI: f32 = 0.693359375;
const LN2_LO: f32 = -2.12194440e-4;

/** e^x for four x <= 0; below -87 (and -inf) gives 0. */
@inline function exp4(x: v128): v128 {
  const dead = f32x4.lt(x, f32x4.splat(-87));
  const xc = f32x4.max(x, f32x4.splat(-87));
  const n = f32x4.nearest(f32x4.mul(xc, f32x4.splat(LOG2E)));
  let r = f32x4.sub(xc, f32x4.mul(n, f32x4.splat(LN2_HI)));
  r = f32x4.sub(r, f32x4.mul(n, f32x4.splat(LN2_LO)));
  let p = f32x4.splat(1.9875691500e-4);
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.3981999507e-3));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(8.3334519073e-3));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(4.1665795894e-2));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.6666665459e-1));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(5.0000001201e-1));
  p = f32x4.add(f32x4.add(f32x4.mul(f32x4.mul(p, r), r), r), f32x4.splat(1));
  const pow2 = i32x4.shl(i32x4.add(i32x4.trunc_sat_f32x4_s(n), i32x4.splat(127)), 23);
  return v128.andnot(f32x4.mul(p, pow2), dead);
}


// Flash-style attention: the queries of one KV head for a few tokens (a tile) go through the
// keys in blocks, with an online softmax (a running maximum and sum per query row, rescaled as a
// block raises the maximum), so each key and value is read once per tile instead of once per
// query head and no row of scores as long as the cache is kept. The sink starts the running
// maximum and sum (its weight e^(sink - m) is the sum's initial 1), so it joins the denominator
// without a value. Blocks whose positions no query of the tile can see are skipped, which makes a
// banded layer's cost proportional to its window and a dense layer's prefill causal. Keys and
// values are f32 or bf16 words (kvBf16 = 1); a block is widened to f32 once for the whole tile.

/** Keys per block: a block of 64 keys and values of 64 dims is 32 KB, in L1 with the tile. */
const ATT_KEYS: i32 = 64;
/** Query rows (tokens x query heads of one KV head) per tile. */
const ATT_ROWS: i32 = 32;

@inline function paddedDim(headDim: i32): i32 {
  return (headDim + 3) & ~3;
}

/** Tokens per tile: as many as keep the tile's query rows within ATT_ROWS (at least one). */
@inline function tileTokens(group: i32): i32 {
  return max(1, ATT_ROWS / group);
}

/** Scratch bytes one thread of `attention` needs (64-byte multiple). */
export function attentionScratch(heads: i32, kvHeads: i32, headDim: i32): i32 {
  const group = heads / kvHeads;
  const rows = tileTokens(group) * group;
  const hp = paddedDim(headDim);
  const floats = 2 * rows * hp + 2 * ATT_KEYS * hp + rows * ATT_KEYS + 3 * rows + ATT_KEYS;
  return ((floats << 2) + 63) & ~63;
}

/** Copies `n` rows of `headDim` cache entries (f32 or bf16, row stride `stride` bytes) into f32 rows of hp, zero-padded. */
@inline function widenRows(src: usize, stride: usize, n: i32, headDim: i32, hp: i32, bf16: bool, dst: usize): void {
  for (let j = 0; j < n; j++) {
    const s = src + <usize>j * stride, d = dst + (<usize>(j * hp) << 2);
    let c = 0;
    if (bf16) {
      for (; c + 8 <= headDim; c += 8) {
        const v = v128.load(s + (<usize>c << 1));
        v128.store(d + (<usize>c << 2), i32x4.shl(i32x4.extend_low_i16x8_u(v), 16));
        v128.store(d + (<usize>c << 2), i32x4.shl(i32x4.extend_high_i16x8_u(v), 16), 16);
      }
      for (; c < headDim; c++) store<f32>(d + (<usize>c << 2), bf16At(s + (<usize>c << 1)));
    } else {
      for (; c + 4 <= headDim; c += 4) v128.store(d + (<usize>c << 2), v128.load(s + (<usize>c << 2)));
      for (; c < headDim; c++) store<f32>(d + (<usize>c << 2), load<f32>(s + (<usize>c << 2)));
    }
    for (; c < hp; c++) store<f32>(d + (<usize>c << 2), 0);
  }
}

/** The visibility mask of four keys at positions kp for a query at pos (all lanes set = visible). */
@inline function seen4(kp: v128, pos: i32, window: i32): v128 {
  const posv = i32x4.splat(pos);
  const inWindow = window == 0 ? i32x4.splat(-1) : i32x4.lt_s(i32x4.sub(posv, kp), i32x4.splat(window));
  return v128.and(v128.and(i32x4.ge_s(kp, i32x4.splat(0)), i32x4.le_s(kp, posv)), inWindow);
}

@inline function max4(v: v128): f32 {
  return max(max(f32x4.extract_lane(v, 0), f32x4.extract_lane(v, 1)), max(f32x4.extract_lane(v, 2), f32x4.extract_lane(v, 3)));
}

/**
 * Attention with sinks, split over threads by (tile of tokens, KV head). q [tokens, heads,
 * headDim]; keys/values [keyCount, kvHeads, headDim] (f32, or bf16 when kvBf16 != 0) at
 * positions kpos (-1 = empty slot, any order); a query at p sees keys at kp <= p with
 * p - kp < window (window 0 = dense). scratch: attentionScratch() bytes per thread.
 */
export function attention(
  q: usize, tokens: i32, qpos: usize, keys: usize, values: usize, keyCount: i32, kpos: usize,
  sinks: usize, heads: i32, kvHeads: i32, headDim: i32, window: i32, out: usize, scratch: usize, kvBf16: i32,
  part: i32, parts: i32,
): void {
  const group = heads / kvHeads;
  const tt = tileTokens(group);
  const tiles = (tokens + tt - 1) / tt;
  const hp = paddedDim(headDim);
  const bf16 = kvBf16 != 0;
  const esize: usize = bf16 ? 2 : 4;
  const rowStride = <usize>(kvHeads * headDim) * esize;
  const scale: f32 = 1 / Mathf.sqrt(<f32>headDim);
  const maxRows = tt * group;
  // This thread's scratch: q tile, o tile, key and value blocks, scores, running max and sum, row positions, block positions.
  const qb = scratch + <usize>part * <usize>attentionScratch(heads, kvHeads, headDim);
  const ob = qb + (<usize>(maxRows * hp) << 2);
  const kb = ob + (<usize>(maxRows * hp) << 2);
  const vb = kb + (<usize>(ATT_KEYS * hp) << 2);
  const sc = vb + (<usize>(ATT_KEYS * hp) << 2);
  const mrow = sc + (<usize>(maxRows * ATT_KEYS) << 2);
  const lrow = mrow + (<usize>maxRows << 2);
  const prow = lrow + (<usize>maxRows << 2);
  const kpb = prow + (<usize>maxRows << 2);
  const rowBytes = <usize>hp << 2;
  // Units dealt round-robin: under the causal mask later tiles see more keys, so contiguous
  // slices would leave the first thread idle for most of a prompt's first chunk.
  for (let u = part; u < tiles * kvHeads; u += parts) {
    const tile = u / kvHeads, kvh = u - tile * kvHeads;
    const t0 = tile * tt;
    const rows = min(tt, tokens - t0) * group;
    // Gather the tile's query rows, scaled; the running state starts at the sink.
    let qmin = i32.MAX_VALUE, qmax = i32.MIN_VALUE;
    for (let r = 0; r < rows; r++) {
      const t = t0 + r / group, h = kvh * group + r % group;
      const src = q + (<usize>(t * heads + h) * <usize>headDim << 2), dst = qb + <usize>r * rowBytes;
      let c = 0;
      for (; c + 4 <= headDim; c += 4) v128.store(dst + (<usize>c << 2), f32x4.mul(v128.load(src + (<usize>c << 2)), f32x4.splat(scale)));
      for (; c < headDim; c++) store<f32>(dst + (<usize>c << 2), load<f32>(src + (<usize>c << 2)) * scale);
      for (; c < hp; c++) store<f32>(dst + (<usize>c << 2), 0);
      memory.fill(ob + <usize>r * rowBytes, 0, rowBytes);
      const pos = load<i32>(qpos + (<usize>t << 2));
      store<i32>(prow + (<usize>r << 2), pos);
      if (pos < qmin) qmin = pos;
      if (pos > qmax) qmax = pos;
      store<f32>(mrow + (<usize>r << 2), load<f32>(sinks + (<usize>h << 2)));
      store<f32>(lrow + (<usize>r << 2), 1);
    }
    const kOff = <usize>(kvh * headDim) * esize;
    for (let b0 = 0; b0 < keyCount; b0 += ATT_KEYS) {
      const n = min(ATT_KEYS, keyCount - b0);
      // Skip a block that no query of the tile can see.
      let lo = i32.MAX_VALUE, hi = -1;
      for (let j = 0; j < n; j++) {
        const kp = load<i32>(kpos + (<usize>(b0 + j) << 2));
        store<i32>(kpb + (<usize>j << 2), kp);
        if (kp >= 0) {
          if (kp < lo) lo = kp;
          if (kp > hi) hi = kp;
        }
      }
      if (hi < 0 || lo > qmax || (window != 0 && qmin - hi >= window)) continue;
      const n4 = (n + 3) & ~3;
      for (let j = n; j < n4; j++) store<i32>(kpb + (<usize>j << 2), -1);
      widenRows(keys + <usize>b0 * rowStride + kOff, rowStride, n, headDim, hp, bf16, kb);
      widenRows(values + <usize>b0 * rowStride + kOff, rowStride, n, headDim, hp, bf16, vb);
      if (n4 > n) memory.fill(kb + <usize>n * rowBytes, 0, <usize>(n4 - n) * rowBytes);
      if (n4 > n) memory.fill(vb + <usize>n * rowBytes, 0, <usize>(n4 - n) * rowBytes);
      // Scores, two query rows by four keys at a time (each key load feeds two rows), masked.
      for (let r = 0; r < rows; r += 2) {
        const two = r + 1 < rows;
        const qa = qb + <usize>r * rowBytes, qc = two ? qa + rowBytes : qa;
        const posA = load<i32>(prow + (<usize>r << 2));
        const posC = two ? load<i32>(prow + (<usize>(r + 1) << 2)) : posA;
        for (let j = 0; j < n4; j += 4) {
          const k0 = kb + <usize>j * rowBytes, k1 = k0 + rowBytes, k2 = k1 + rowBytes, k3 = k2 + rowBytes;
          let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
          let c0 = f32x4.splat(0), c1 = f32x4.splat(0), c2 = f32x4.splat(0), c3 = f32x4.splat(0);
          for (let d = 0; d < hp; d += 4) {
            const o = <usize>d << 2;
            const x = v128.load(qa + o), y = v128.load(qc + o);
            const w0 = v128.load(k0 + o), w1 = v128.load(k1 + o), w2 = v128.load(k2 + o), w3 = v128.load(k3 + o);
            a0 = madd(x, w0, a0); c0 = madd(y, w0, c0);
            a1 = madd(x, w1, a1); c1 = madd(y, w1, c1);
            a2 = madd(x, w2, a2); c2 = madd(y, w2, c2);
            a3 = madd(x, w3, a3); c3 = madd(y, w3, c3);
          }
          const kp = v128.load(kpb + (<usize>j << 2));
          const ninf = f32x4.splat(-Infinity);
          v128.store(sc + (<usize>(r * ATT_KEYS + j) << 2), v128.bitselect(sum4x4(a0, a1, a2, a3), ninf, seen4(kp, posA, window)));
          if (two) v128.store(sc + (<usize>((r + 1) * ATT_KEYS + j) << 2), v128.bitselect(sum4x4(c0, c1, c2, c3), ninf, seen4(kp, posC, window)));
        }
      }
      // Online softmax: raise each row's maximum, rescale its sum and output, turn scores into weights.
      for (let r = 0; r < rows; r++) {
        const sr = sc + (<usize>(r * ATT_KEYS) << 2);
        let mv = f32x4.splat(-Infinity);
        for (let j = 0; j < n4; j += 4) mv = f32x4.max(mv, v128.load(sr + (<usize>j << 2)));
        const m = load<f32>(mrow + (<usize>r << 2));
        const mNew = max(m, max4(mv));
        const mvec = f32x4.splat(mNew);
        let sum = f32x4.splat(0);
        for (let j = 0; j < n4; j += 4) {
          const e = exp4(f32x4.sub(v128.load(sr + (<usize>j << 2)), mvec));
          v128.store(sr + (<usize>j << 2), e);
          sum = f32x4.add(sum, e);
        }
        let l = load<f32>(lrow + (<usize>r << 2));
        if (mNew > m) {
          const alpha = Mathf.exp(m - mNew);
          l *= alpha;
          const av = f32x4.splat(alpha), orow = ob + <usize>r * rowBytes;
          for (let d = 0; d < hp; d += 4) v128.store(orow + (<usize>d << 2), f32x4.mul(v128.load(orow + (<usize>d << 2)), av));
          store<f32>(mrow + (<usize>r << 2), mNew);
        }
        store<f32>(lrow + (<usize>r << 2), l + hsum(sum));
      }
      // Weighted values: two rows at a time, 16 dims in registers, each value load feeding both rows.
      for (let r = 0; r < rows; r += 2) {
        const two = r + 1 < rows;
        const pa = sc + (<usize>(r * ATT_KEYS) << 2), pc = two ? pa + (<usize>ATT_KEYS << 2) : pa;
        const oa = ob + <usize>r * rowBytes, oc = two ? oa + rowBytes : oa;
        let d = 0;
        for (; d + 16 <= hp; d += 16) {
          const od = <usize>d << 2;
          let x0 = v128.load(oa + od), x1 = v128.load(oa + od, 16), x2 = v128.load(oa + od, 32), x3 = v128.load(oa + od, 48);
          let y0 = v128.load(oc + od), y1 = v128.load(oc + od, 16), y2 = v128.load(oc + od, 32), y3 = v128.load(oc + od, 48);
          for (let j = 0; j < n; j++) {
            const wa = f32x4.splat(load<f32>(pa + (<usize>j << 2))), wc = f32x4.splat(load<f32>(pc + (<usize>j << 2)));
            const vv = vb + <usize>j * rowBytes + od;
            const v0 = v128.load(vv), v1 = v128.load(vv, 16), v2 = v128.load(vv, 32), v3 = v128.load(vv, 48);
            x0 = madd(wa, v0, x0); y0 = madd(wc, v0, y0);
            x1 = madd(wa, v1, x1); y1 = madd(wc, v1, y1);
            x2 = madd(wa, v2, x2); y2 = madd(wc, v2, y2);
            x3 = madd(wa, v3, x3); y3 = madd(wc, v3, y3);
          }
          // With one row left, oc = oa: the row's own store goes last and is the one kept.
          v128.store(oc + od, y0); v128.store(oc + od, y1, 16); v128.store(oc + od, y2, 32); v128.store(oc + od, y3, 48);
          v128.store(oa + od, x0); v128.store(oa + od, x1, 16); v128.store(oa + od, x2, 32); v128.store(oa + od, x3, 48);
        }
        for (; d < hp; d += 4) {
          const od = <usize>d << 2;
          let x0 = v128.load(oa + od), y0 = v128.load(oc + od);
          for (let j = 0; j < n; j++) {
            const v0 = v128.load(vb + <usize>j * rowBytes + od);
            x0 = madd(f32x4.splat(load<f32>(pa + (<usize>j << 2))), v0, x0);
            y0 = madd(f32x4.splat(load<f32>(pc + (<usize>j << 2))), v0, y0);
          }
          v128.store(oc + od, y0);
          v128.store(oa + od, x0);
        }
      }
    }
    // out = o / l for each row of the tile.
    for (let r = 0; r < rows; r++) {
      const t = t0 + r / group, h = kvh * group + r % group;
      const inv: f32 = 1 / load<f32>(lrow + (<usize>r << 2));
      const src = ob + <usize>r * rowBytes, dst = out + (<usize>(t * heads + h) * <usize>headDim << 2);
      let c = 0;
      for (; c + 4 <= headDim; c += 4) v128.store(dst + (<usize>c << 2), f32x4.mul(v128.load(src + (<usize>c << 2)), f32x4.splat(inv)));
      for (; c < headDim; c++) store<f32>(dst + (<usize>c << 2), load<f32>(src + (<usize>c << 2)) * inv);
    }
  }
}

// ---- small ops (main thread) ---------------------------------------------------------------

/** out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * scale. */
export function rmsnorm(x: usize, tokens: i32, n: i32, scale: usize, eps: f32, out: usize): void {
  for (let t = 0; t < tokens; t++) {
    const xt = x + (<usize>(t * n) << 2);
    const ot = out + (<usize>(t * n) << 2);
    const ms = dotF32(xt, xt, n) / <f32>n;
    const r: f32 = 1 / Mathf.sqrt(ms + eps);
    let c = 0;
    const rv = f32x4.splat(r);
    for (; c + 4 <= n; c += 4) {
      const a = <usize>c << 2;
      v128.store(ot + a, f32x4.mul(f32x4.mul(v128.load(xt + a), rv), v128.load(scale + a)));
    }
    for (; c < n; c++) {
      const a = <usize>c << 2;
      store<f32>(ot + a, load<f32>(xt + a) * r * load<f32>(scale + a));
    }
  }
}

/** Rotates x [tokens, heads, 2*half] in place; cos/sin [tokens, half] already gathered per token. */
export function rope(x: usize, tokens: i32, heads: i32, half: i32, cos: usize, sin: usize): void {
  for (let t = 0; t < tokens; t++) {
    const ct = cos + (<usize>(t * half) << 2), st = sin + (<usize>(t * half) << 2);
    for (let h = 0; h < heads; h++) {
      const a = x + (<usize>((t * heads + h) * 2 * half) << 2);
      const b = a + (<usize>half << 2);
      let i = 0;
      for (; i + 4 <= half; i += 4) {
        const o = <usize>i << 2;
        const x1 = v128.load(a + o), x2 = v128.load(b + o), c = v128.load(ct + o), s = v128.load(st + o);
        v128.store(a + o, f32x4.sub(f32x4.mul(x1, c), f32x4.mul(x2, s)));
        v128.store(b + o, f32x4.add(f32x4.mul(x2, c), f32x4.mul(x1, s)));
      }
      for (; i < half; i++) {
        const o = <usize>i << 2;
        const x1 = load<f32>(a + o), x2 = load<f32>(b + o), c = load<f32>(ct + o), s = load<f32>(st + o);
        store<f32>(a + o, x1 * c - x2 * s);
        store<f32>(b + o, x2 * c + x1 * s);
      }
    }
  }
}

/** Index of the largest of n f32 (the first on ties; NaN never wins). */
export function argmax(x: usize, n: i32): i32 {
  let best = 0;
  let bv = load<f32>(x);
  for (let i = 1; i < n; i++) {
    const v = load<f32>(x + (<usize>i << 2));
    if (v > bv) { bv = v; best = i; }
  }
  return best;
}

/** Reads this thread's slice of [ptr, ptr + bytes) with 16-byte loads (the memory-bandwidth probe). */
export function streamRead(ptr: usize, bytes: i32, out: usize, part: i32, parts: i32): void {
  const b0 = <usize>sliceStart(bytes >>> 6, part, parts, 1) << 6;
  const b1 = <usize>sliceStart(bytes >>> 6, part + 1, parts, 1) << 6;
  let a = i32x4.splat(0), b = i32x4.splat(0), c = i32x4.splat(0), d = i32x4.splat(0);
  for (let p = ptr + b0; p < ptr + b1; p += 64) {
    a = v128.xor(a, v128.load(p));
    b = v128.xor(b, v128.load(p, 16));
    c = v128.xor(c, v128.load(p, 32));
    d = v128.xor(d, v128.load(p, 48));
  }
  v128.store(out + (<usize>part << 4), v128.xor(v128.xor(a, b), v128.xor(c, d)));
}
