// Attention with sinks over an f32 or bf16 KV cache (f32 queries, f32 accumulation): a
// flash-style kernel split over the pool's threads, and the scratch size it needs per thread.
import { KV_CACHE_BF16 } from '../abi';
import { bf16At, hsum, madd, sum4x4 } from './simd';

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
// values are f32 or bf16 words (kvType, a KV_CACHE_* type); a block is widened to f32 once for the whole tile.

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

/** Scratch bytes one thread of `f32_attention_sinks` needs (64-byte multiple). */
export function f32_attention_sinks_scratch_bytes(heads: i32, kvHeads: i32, headDim: i32): i32 {
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
 * headDim]; keys/values [keyCount, kvHeads, headDim] (f32 or bf16 per kvType) at
 * positions kpos (-1 = empty slot, any order); a query at p sees keys at kp <= p with
 * p - kp < window (window 0 = dense). scratch: f32_attention_sinks_scratch_bytes() per thread.
 */
export function f32_attention_sinks(
  q: usize, tokens: i32, qpos: usize, keys: usize, values: usize, keyCount: i32, kpos: usize,
  sinks: usize, heads: i32, kvHeads: i32, headDim: i32, window: i32, out: usize, scratch: usize, kvType: i32,
  part: i32, parts: i32,
): void {
  const group = heads / kvHeads;
  const tt = tileTokens(group);
  const tiles = (tokens + tt - 1) / tt;
  const hp = paddedDim(headDim);
  const bf16 = kvType == KV_CACHE_BF16;
  const esize: usize = bf16 ? 2 : 4;
  const rowStride = <usize>(kvHeads * headDim) * esize;
  const scale: f32 = 1 / Mathf.sqrt(<f32>headDim);
  const maxRows = tt * group;
  // This thread's scratch: q tile, o tile, key and value blocks, scores, running max and sum, row positions, block positions.
  const qb = scratch + <usize>part * <usize>f32_attention_sinks_scratch_bytes(heads, kvHeads, headDim);
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
