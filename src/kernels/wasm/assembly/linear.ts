// The bf16-weight linear layer: f32 activations times a bf16 matrix (plus an optional f32 bias),
// and the pair permutation of the activations it takes.
import { bf16At, hsum, madd, sliceStart, sum4x4 } from './simd';

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

/** Copies x [tokens, cols] into pair-permuted order. */
export function f32_pair_permute(src: usize, dst: usize, tokens: i32, cols: i32): void {
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
    a0 = madd(bf16Even(v0), v128.load(xo), a0);
    a1 = madd(bf16Odd(v0), v128.load(xo, 16), a1);
    a2 = madd(bf16Even(v1), v128.load(xo, 32), a2);
    a3 = madd(bf16Odd(v1), v128.load(xo, 48), a3);
  }
  for (; c + 8 <= n; c += 8) {
    const v0 = v128.load(w + (<usize>c << 1));
    const xo = x + (<usize>c << 2);
    a0 = madd(bf16Even(v0), v128.load(xo), a0);
    a1 = madd(bf16Odd(v0), v128.load(xo, 16), a1);
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
export function f32_bf16w_matmul(x: usize, tokens: i32, cols: i32, w: usize, rows: i32, bias: usize, out: usize, part: i32, parts: i32): void {
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
