// The mixture-of-experts kernels over MXFP4 weights (the decoding and quantising pieces are in
// mxfp4.ts): the first matrix with the clamped SwiGLU fused in, and the second with the routing
// weights applied and each row added into its token's output. Both walk a work list of one record
// per expert (layout and activation modes in ../abi.ts) and split it over the pool's threads.
import {
  EXPERT_ACTIVATIONS_F32, EXPERT_ACTIVATIONS_Q8, EXPERT_ACTIVATIONS_SPLIT, EXPERT_BIAS, EXPERT_BLOCKS,
  EXPERT_DOWN_TOKENS, EXPERT_DOWN_WEIGHTS, EXPERT_INPUT, EXPERT_QUANT_INPUT, EXPERT_RECORD_BYTES,
  EXPERT_ROWS, EXPERT_SCALES, EXPERT_UP_OUTPUT,
} from '../abi';
import { dot0, dot1, dot2, dot3, dot4, dot5, dot6, dot7, dot2x4F32, dot4F32, dotF32, madd, sliceStart } from './simd';
import { dot1Q8, dot4Q8, dotRowsX4Q8, mxRowDot, mxRowDotQ2, mxRowDotQ8, mxRowExpand, mxRowExpandQ8, mxRowsExpandQ8x4, permuted, q8Stride } from './mxfp4';

@inline function swiglu(glu: f32, lin: f32, limit: f32): f32 {
  const g = min(glu, limit);
  const l = max(min(lin, limit), -limit);
  return g / (1 + Mathf.exp(-1.702 * g)) * (l + 1);
}

/** Bytes of one thread's row buffer for rows of `cols` (two rows expanded to f32, or to q8 codes and scales, or four interleaved rows of q8 codes and scales, 4.5 bytes per column). */
@inline function rowBufferBytes(cols: i32): usize {
  return <usize>cols << 3;
}

/** Bytes the MoE kernels' `rowbuf` needs per thread, for rows of `cols` (hidden up, inter down). */
export function f32_mf4w_moe_row_buffer_bytes(cols: i32): i32 {
  return <i32>rowBufferBytes(cols);
}

/**
 * Tokens on an expert from which its q8 rows are expanded four at a time (relaxed build): the
 * interleaving costs more than the one-row expansion, which two tokens do not repay
 * (bench/kernel-ab.ts: two tokens per expert 0.92x, four 1.11x, six 1.16x, 32 1.27x).
 */
const ROWS4_MIN_TOKENS = 4;

// `quant` (an EXPERT_ACTIVATIONS_* mode) says how the input rows are carried: f32; 'split'
// (f32_quantize_i16x2 for single-row experts, f32 for the others); 'q8' (f32_quantize_i8, every row).

/**
 * First expert matrix with the clamped SwiGLU fused in: for each entry, rows (2i, 2i+1) of mlp1
 * give (glu, linear) and act[t, i] (block-permuted, ready for mlp2) = swiglu. Threads split the
 * (entry, i) pairs. rowbuf: f32_mf4w_moe_row_buffer_bytes(hidden) per thread, for the multi-token path.
 */
export function f32_mf4w_moe_matmul_swiglu(list: usize, entries: i32, hidden: i32, inter: i32, rowbuf: usize, limit: f32, quant: i32, part: i32, parts: i32): void {
  const total = entries * inter;
  const p0 = sliceStart(total, part, parts, 4);
  const p1 = sliceStart(total, part + 1, parts, 4);
  const groups = hidden >> 5;
  const rowBytes = <usize>hidden >> 1;
  const bufA = rowbuf + <usize>part * rowBufferBytes(hidden);
  const bufB = bufA + (<usize>hidden << 2);
  for (let p = p0; p < p1; p++) {
    const e = p / inter, i = p - e * inter;
    const ent = list + <usize>e * EXPERT_RECORD_BYTES;
    const blk = <usize>load<u32>(ent, EXPERT_BLOCKS << 2), scl = <usize>load<u32>(ent, EXPERT_SCALES << 2);
    const bias = <usize>load<u32>(ent, EXPERT_BIAS << 2), x = <usize>load<u32>(ent, EXPERT_INPUT << 2);
    const n = load<i32>(ent, EXPERT_ROWS << 2), xq = <usize>load<u32>(ent, EXPERT_QUANT_INPUT << 2);
    const act = <usize>load<u32>(ent, EXPERT_UP_OUTPUT << 2);
    const rg = <usize>(2 * i);
    const bg = load<f32>(bias + (rg << 2)), bl = load<f32>(bias + (rg << 2), 4);
    const blkG = blk + rg * rowBytes, blkL = blkG + rowBytes;
    const sclG = scl + rg * <usize>groups, sclL = sclG + <usize>groups;
    const pi = <usize>permuted(i) << 2;
    const as = <usize>inter << 2;
    if (quant == EXPERT_ACTIVATIONS_Q8 && n == 1) {
      const g = mxRowDotQ8(blkG, sclG, xq, hidden) + bg;
      const l = mxRowDotQ8(blkL, sclL, xq, hidden) + bl;
      store<f32>(act + pi, swiglu(g, l, limit));
    } else if (quant == EXPERT_ACTIVATIONS_Q8 && ASC_FEATURE_RELAXED_SIMD && n >= ROWS4_MIN_TOKENS && (i & 1) == 0 && i + 1 < inter && p + 1 < p1) {
      // Several tokens: the rows of SwiGLU units i and i + 1 (glu, linear, glu, linear) expanded
      // once, interleaved, then one token per pass gives all four.
      const xs8 = q8Stride(hidden);
      mxRowsExpandQ8x4(blkG, sclG, rowBytes, groups, bufA);
      const b4 = v128.load(bias + (rg << 2));
      const pi1 = <usize>permuted(i + 1) << 2;
      for (let t = 0; t < n; t++) {
        const d = f32x4.add(dotRowsX4Q8(bufA, xq + <usize>t * xs8, hidden), b4);
        const a = act + <usize>t * as;
        store<f32>(a + pi, swiglu(f32x4.extract_lane(d, 0), f32x4.extract_lane(d, 1), limit));
        store<f32>(a + pi1, swiglu(f32x4.extract_lane(d, 2), f32x4.extract_lane(d, 3), limit));
      }
      p++;
    } else if (quant == EXPERT_ACTIVATIONS_Q8) {
      // Several tokens (the baseline build, or too few for four rows): both rows expanded once to
      // byte codes, then 4 tokens per pass.
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
    } else if (quant == EXPERT_ACTIVATIONS_SPLIT && n == 1) {
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
export function f32_mf4w_moe_matmul_scatter(list: usize, entries: i32, hidden: i32, inter: i32, out: usize, rowbuf: usize, quant: i32, part: i32, parts: i32): void {
  const r0 = sliceStart(hidden, part, parts, 4);
  const r1 = sliceStart(hidden, part + 1, parts, 4);
  const groups = inter >> 5;
  const rowBytes = <usize>inter >> 1;
  const buf = rowbuf + <usize>part * rowBufferBytes(inter);
  const buf2 = buf + (<usize>inter << 2);
  const os = <usize>hidden << 2, as = <usize>inter << 2;
  for (let e = 0; e < entries; e++) {
    const ent = list + <usize>e * EXPERT_RECORD_BYTES;
    const blk = <usize>load<u32>(ent, EXPERT_BLOCKS << 2), scl = <usize>load<u32>(ent, EXPERT_SCALES << 2);
    const bias = <usize>load<u32>(ent, EXPERT_BIAS << 2), act = <usize>load<u32>(ent, EXPERT_INPUT << 2);
    const n = load<i32>(ent, EXPERT_ROWS << 2), aq = <usize>load<u32>(ent, EXPERT_QUANT_INPUT << 2);
    const tok = <usize>load<u32>(ent, EXPERT_DOWN_TOKENS << 2), wgt = <usize>load<u32>(ent, EXPERT_DOWN_WEIGHTS << 2);
    for (let r = r0; r < r1; r++) {
      const br = blk + <usize>r * rowBytes, sr = scl + <usize>r * <usize>groups;
      const b = load<f32>(bias + (<usize>r << 2));
      const ro = <usize>r << 2;
      if ((quant == EXPERT_ACTIVATIONS_F32 || quant == EXPERT_ACTIVATIONS_SPLIT) && n >= 4 && r + 1 < r1) {
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
        const y = (quant == EXPERT_ACTIVATIONS_Q8 ? mxRowDotQ8(br, sr, aq, inter) : quant == EXPERT_ACTIVATIONS_SPLIT ? mxRowDotQ2(br, sr, aq, aq + (<usize>inter << 2), groups)
          : mxRowDot(br, sr, act, groups)) + b;
        const o = out + <usize>load<i32>(tok) * os + ro;
        store<f32>(o, load<f32>(o) + load<f32>(wgt) * y);
        continue;
      }
      const q8 = quant == EXPERT_ACTIVATIONS_Q8;
      if (q8 && ASC_FEATURE_RELAXED_SIMD && n >= ROWS4_MIN_TOKENS && r + 4 <= r1) {
        // Four rows expanded once, interleaved; one token per pass gives all four.
        mxRowsExpandQ8x4(br, sr, rowBytes, groups, buf);
        const b4 = v128.load(bias + (<usize>r << 2));
        const ss = q8Stride(inter);
        for (let t = 0; t < n; t++) {
          const o = out + <usize>load<i32>(tok + (<usize>t << 2)) * os + ro;
          const y = f32x4.add(dotRowsX4Q8(buf, aq + <usize>t * ss, inter), b4);
          v128.store(o, madd(y, v128.load32_splat(wgt + (<usize>t << 2)), v128.load(o)));
        }
        r += 3;
        continue;
      }
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
