// The bf16-weight linear layer: f32 activations times a bf16 matrix (plus an optional f32 bias),
// and the pair permutation of the activations it takes.
import { bf16At, dot0, dot1, dot2, dot3, dot4, dot5, dot6, dot7, dot2x4F32, dot4F32, dotF32, hsum, madd, sliceStart } from './simd';

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

/**
 * Tokens per block of the bf16 matmul: a block's activations of one column chunk (256 x 512 f32,
 * 512 KB) stay in L2 while this thread's rows stream past them, so a prompt reads the weights
 * from memory once per 256 tokens.
 */
const LINEAR_TOKEN_BLOCK = 256;
/** Rows per block: the rows whose column chunk is widened to f32 at once. */
const LINEAR_ROW_BLOCK = 8;
/**
 * Columns per chunk (a multiple of 8): a row block's widened chunk (8 rows, 16 KB of f32) and a
 * 4-token tile's activations of it (8 KB) stay in L1 while the token block's tiles walk them.
 */
const LINEAR_COL_BLOCK = 512;
/** Fewest tokens in a block for which the weights are widened: fewer do not repay it. */
const LINEAR_WIDEN_TOKENS = 8;

/** Bytes of one thread's buffer for f32_bf16w_matmul's widened weights. */
export function f32_bf16w_matmul_buffer_bytes(): i32 {
  return LINEAR_ROW_BLOCK * LINEAR_COL_BLOCK * 4;
}

/** Widens bf16 row w's words [0, n) to f32 at buf in the pair-permuted order x has. */
@inline function widenBf16(w: usize, buf: usize, n: i32): void {
  let c = 0;
  for (; c + 8 <= n; c += 8) {
    const v = v128.load(w + (<usize>c << 1));
    v128.store(buf + (<usize>c << 2), bf16Even(v));
    v128.store(buf + (<usize>c << 2), bf16Odd(v), 16);
  }
  for (; c < n; c++) store<f32>(buf + (<usize>c << 2), bf16At(w + (<usize>c << 1)));
}

/** out = v + bias on a row's first column chunk, out += v on the later ones. */
@inline function putPartial(p: usize, v: f32, first: bool, b: f32): void {
  store<f32>(p, first ? v + b : load<f32>(p) + v);
}

/**
 * out[t, r] = x[t] . w[r] + bias[r] for this thread's rows (x pair-permuted). bias == 0: no bias.
 * From LINEAR_WIDEN_TOKENS tokens in a block, rows go in blocks of 8 and columns in chunks of
 * 512: each block's chunk is widened to f32 once, into this thread's part of wbuf
 * (f32_bf16w_matmul_buffer_bytes each), and serves every token of the block in tiles of 4 tokens
 * x 2 rows (dot2x4F32), whose partial sums are added to the output. The inner loop is then
 * f32 loads and multiply-adds only: widening in it (or more values live at once) makes V8 spill
 * accumulators to the stack, and a spilled accumulator's store and reload lengthen every
 * iteration (such tiles ran 1.5-1.7x slower). Fewer tokens (decode) dot the bf16 rows directly.
 */
export function f32_bf16w_matmul(x: usize, tokens: i32, cols: i32, w: usize, rows: i32, bias: usize, out: usize, wbuf: usize, part: i32, parts: i32): void {
  const r0 = sliceStart(rows, part, parts, 4);
  const r1 = sliceStart(rows, part + 1, parts, 4);
  const rowBytes = <usize>cols << 1;
  const xStride = <usize>cols << 2;
  const os = <usize>rows << 2;
  const buf = wbuf + <usize>part * <usize>f32_bf16w_matmul_buffer_bytes();
  for (let tb = 0; tb < tokens; tb += LINEAR_TOKEN_BLOCK) {
    const tEnd = min(tb + LINEAR_TOKEN_BLOCK, tokens);
    if (tEnd - tb < LINEAR_WIDEN_TOKENS) {
      // Few tokens (decode, small batches): too few to repay the widening. Each token dots the
      // bf16 rows directly, a block of rows at a time so the later tokens find it in L2.
      for (let rb = r0; rb < r1; rb += 16) {
        const rbEnd = min(rb + 16, r1);
        for (let t = tb; t < tEnd; t++) {
          const xt = x + <usize>t * xStride;
          for (let r = rb; r < rbEnd; r++) {
            const b: f32 = bias != 0 ? load<f32>(bias + (<usize>r << 2)) : 0;
            store<f32>(out + <usize>t * os + (<usize>r << 2), dotBf16(w + <usize>r * rowBytes, xt, cols) + b);
          }
        }
      }
      continue;
    }
    for (let rb = r0; rb < r1; rb += LINEAR_ROW_BLOCK) {
      const rbEnd = min(rb + LINEAR_ROW_BLOCK, r1);
      for (let k0 = 0; k0 < cols; k0 += LINEAR_COL_BLOCK) {
        const n = min(LINEAR_COL_BLOCK, cols - k0);
        const bs = <usize>n << 2;
        for (let r = rb; r < rbEnd; r++) widenBf16(w + <usize>r * rowBytes + (<usize>k0 << 1), buf + <usize>(r - rb) * bs, n);
        // Only the last chunk can have a tail of < 8 columns, done one column at a time.
        const nv = n & ~7;
        const first = k0 == 0;
        const xk = x + (<usize>k0 << 2);
        let t = tb;
        for (; t + 4 <= tEnd; t += 4) {
          const x0 = xk + <usize>t * xStride;
          const x1 = x0 + xStride, x2 = x1 + xStride, x3 = x2 + xStride;
          let r = rb;
          for (; r + 2 <= rbEnd; r += 2) {
            const wa = buf + <usize>(r - rb) * bs, wb = wa + bs;
            dot2x4F32(wa, wb, x0, x1, x2, x3, nv);
            let da0 = dot0, da1 = dot1, da2 = dot2, da3 = dot3, db0 = dot4, db1 = dot5, db2 = dot6, db3 = dot7;
            for (let c = nv; c < n; c++) {
              const o = <usize>c << 2;
              const ua = load<f32>(wa + o), ub = load<f32>(wb + o);
              const y0 = load<f32>(x0 + o), y1 = load<f32>(x1 + o), y2 = load<f32>(x2 + o), y3 = load<f32>(x3 + o);
              da0 += ua * y0; da1 += ua * y1; da2 += ua * y2; da3 += ua * y3;
              db0 += ub * y0; db1 += ub * y1; db2 += ub * y2; db3 += ub * y3;
            }
            const ba: f32 = bias != 0 ? load<f32>(bias + (<usize>r << 2)) : 0;
            const bb: f32 = bias != 0 ? load<f32>(bias + (<usize>r << 2), 4) : 0;
            const ob = out + <usize>t * os + (<usize>r << 2);
            putPartial(ob, da0, first, ba); putPartial(ob + 4, db0, first, bb);
            putPartial(ob + os, da1, first, ba); putPartial(ob + os + 4, db1, first, bb);
            putPartial(ob + 2 * os, da2, first, ba); putPartial(ob + 2 * os + 4, db2, first, bb);
            putPartial(ob + 3 * os, da3, first, ba); putPartial(ob + 3 * os + 4, db3, first, bb);
          }
          // The block's last row when it has an odd count.
          for (; r < rbEnd; r++) {
            const wr = buf + <usize>(r - rb) * bs;
            dot4F32(wr, x0, x1, x2, x3, nv);
            let d0 = dot0, d1 = dot1, d2 = dot2, d3 = dot3;
            for (let c = nv; c < n; c++) {
              const o = <usize>c << 2;
              const u = load<f32>(wr + o);
              d0 += u * load<f32>(x0 + o); d1 += u * load<f32>(x1 + o);
              d2 += u * load<f32>(x2 + o); d3 += u * load<f32>(x3 + o);
            }
            const b: f32 = bias != 0 ? load<f32>(bias + (<usize>r << 2)) : 0;
            const ob = out + <usize>t * os + (<usize>r << 2);
            putPartial(ob, d0, first, b);
            putPartial(ob + os, d1, first, b);
            putPartial(ob + 2 * os, d2, first, b);
            putPartial(ob + 3 * os, d3, first, b);
          }
        }
        // The block's last tokens when its count is not a multiple of 4.
        for (; t < tEnd; t++) {
          const xt = xk + <usize>t * xStride;
          for (let r = rb; r < rbEnd; r++) {
            const b: f32 = bias != 0 ? load<f32>(bias + (<usize>r << 2)) : 0;
            putPartial(out + <usize>t * os + (<usize>r << 2), dotF32(buf + <usize>(r - rb) * bs, xt, n), first, b);
          }
        }
      }
    }
  }
}
