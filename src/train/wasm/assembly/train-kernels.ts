// The training matrix products in f32 with WebAssembly SIMD (AssemblyScript, simd128): the linear
// layer's forward (out = x W^T + b) and its two backward products (dx = dy W, dw = dy^T x), row
// major, every pointer a byte offset into the imported memory. Each kernel works on register tiles
// (several rows at once, four lanes per vector) and finishes ragged edges (rows or columns not a
// multiple of the tile) with narrower loops, so any shape is exact up to f32 rounding. The
// backward kernels overwrite their outputs; the caller adds them into its float64 gradients.

@inline function hsum(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3);
}

@inline function ld(p: usize): v128 {
  return v128.load(p);
}

@inline function madd(a: v128, b: v128, acc: v128): v128 {
  return f32x4.add(acc, f32x4.mul(a, b));
}

/** sum_c x[c] * w[c] over `cols` floats. */
@inline function dot(x: usize, w: usize, cols: i32): f32 {
  let acc = f32x4.splat(0);
  let c = 0;
  for (; c + 4 <= cols; c += 4) acc = madd(ld(x + (<usize>c << 2)), ld(w + (<usize>c << 2)), acc);
  let s = hsum(acc);
  for (; c < cols; c++) s += load<f32>(x + (<usize>c << 2)) * load<f32>(w + (<usize>c << 2));
  return s;
}

/**
 * out[t, r] = sum_c x[t, c] * w[r, c] (+ bias[r] when bias != 0); x [tokens, cols], w [rows,
 * cols], out [tokens, rows]. Tiles of 2 tokens x 4 rows share each loaded vector.
 */
export function f32_matmul(x: usize, w: usize, bias: usize, out: usize, tokens: i32, rows: i32, cols: i32): void {
  const rowBytes = <usize>cols << 2;
  const vecEnd = cols & ~3;
  let r = 0;
  for (; r + 4 <= rows; r += 4) {
    const w0 = w + <usize>r * rowBytes, w1 = w0 + rowBytes, w2 = w1 + rowBytes, w3 = w2 + rowBytes;
    let t = 0;
    for (; t + 2 <= tokens; t += 2) {
      const xa = x + <usize>t * rowBytes, xb = xa + rowBytes;
      let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
      let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0), b3 = f32x4.splat(0);
      for (let c = 0; c < vecEnd; c += 4) {
        const o = <usize>c << 2;
        const va = ld(xa + o), vb = ld(xb + o);
        const v0 = ld(w0 + o), v1 = ld(w1 + o), v2 = ld(w2 + o), v3 = ld(w3 + o);
        a0 = madd(va, v0, a0); a1 = madd(va, v1, a1); a2 = madd(va, v2, a2); a3 = madd(va, v3, a3);
        b0 = madd(vb, v0, b0); b1 = madd(vb, v1, b1); b2 = madd(vb, v2, b2); b3 = madd(vb, v3, b3);
      }
      let sa0 = hsum(a0), sa1 = hsum(a1), sa2 = hsum(a2), sa3 = hsum(a3);
      let sb0 = hsum(b0), sb1 = hsum(b1), sb2 = hsum(b2), sb3 = hsum(b3);
      for (let c = vecEnd; c < cols; c++) {
        const o = <usize>c << 2;
        const ea = load<f32>(xa + o), eb = load<f32>(xb + o);
        const e0 = load<f32>(w0 + o), e1 = load<f32>(w1 + o), e2 = load<f32>(w2 + o), e3 = load<f32>(w3 + o);
        sa0 += ea * e0; sa1 += ea * e1; sa2 += ea * e2; sa3 += ea * e3;
        sb0 += eb * e0; sb1 += eb * e1; sb2 += eb * e2; sb3 += eb * e3;
      }
      const oa = out + ((<usize>t * <usize>rows + <usize>r) << 2), ob = oa + (<usize>rows << 2);
      store<f32>(oa, sa0); store<f32>(oa, sa1, 4); store<f32>(oa, sa2, 8); store<f32>(oa, sa3, 12);
      store<f32>(ob, sb0); store<f32>(ob, sb1, 4); store<f32>(ob, sb2, 8); store<f32>(ob, sb3, 12);
    }
    for (; t < tokens; t++) {
      const xa = x + <usize>t * rowBytes;
      const oa = out + ((<usize>t * <usize>rows + <usize>r) << 2);
      store<f32>(oa, dot(xa, w0, cols)); store<f32>(oa, dot(xa, w1, cols), 4);
      store<f32>(oa, dot(xa, w2, cols), 8); store<f32>(oa, dot(xa, w3, cols), 12);
    }
  }
  for (; r < rows; r++) {
    const wr = w + <usize>r * rowBytes;
    for (let t = 0; t < tokens; t++) store<f32>(out + ((<usize>t * <usize>rows + <usize>r) << 2), dot(x + <usize>t * rowBytes, wr, cols));
  }
  if (bias != 0) {
    for (let t = 0; t < tokens; t++) {
      const o = out + ((<usize>t * <usize>rows) << 2);
      for (let q = 0; q < rows; q++) store<f32>(o + (<usize>q << 2), load<f32>(o + (<usize>q << 2)) + load<f32>(bias + (<usize>q << 2)));
    }
  }
}

/**
 * dx[t, c] = sum_r dy[t, r] * w[r, c]; dy [tokens, rows], w [rows, cols], dx [tokens, cols]
 * (overwritten). A tile of 4 tokens x 8 columns stays in registers across all rows; a column
 * strip of w (rows x 32 bytes) is reused by every block of tokens.
 */
export function f32_matmul_grad_input(dy: usize, w: usize, dx: usize, tokens: i32, rows: i32, cols: i32): void {
  const rowBytes = <usize>cols << 2;
  const dyBytes = <usize>rows << 2;
  const end8 = cols & ~7;
  for (let c = 0; c < end8; c += 8) {
    const o = <usize>c << 2;
    let t = 0;
    for (; t + 4 <= tokens; t += 4) {
      const g0 = dy + <usize>t * dyBytes, g1 = g0 + dyBytes, g2 = g1 + dyBytes, g3 = g2 + dyBytes;
      let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
      let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0), b3 = f32x4.splat(0);
      for (let r = 0; r < rows; r++) {
        const wr = w + <usize>r * rowBytes + o;
        const va = ld(wr), vb = ld(wr + 16);
        const q = <usize>r << 2;
        const s0 = v128.load32_splat(g0 + q), s1 = v128.load32_splat(g1 + q), s2 = v128.load32_splat(g2 + q), s3 = v128.load32_splat(g3 + q);
        a0 = madd(s0, va, a0); a1 = madd(s1, va, a1); a2 = madd(s2, va, a2); a3 = madd(s3, va, a3);
        b0 = madd(s0, vb, b0); b1 = madd(s1, vb, b1); b2 = madd(s2, vb, b2); b3 = madd(s3, vb, b3);
      }
      const d0 = dx + <usize>t * rowBytes + o, d1 = d0 + rowBytes, d2 = d1 + rowBytes, d3 = d2 + rowBytes;
      v128.store(d0, a0); v128.store(d1, a1); v128.store(d2, a2); v128.store(d3, a3);
      v128.store(d0, b0, 16); v128.store(d1, b1, 16); v128.store(d2, b2, 16); v128.store(d3, b3, 16);
    }
    for (; t < tokens; t++) {
      const g = dy + <usize>t * dyBytes;
      let a = f32x4.splat(0), b = f32x4.splat(0);
      for (let r = 0; r < rows; r++) {
        const wr = w + <usize>r * rowBytes + o;
        const s = v128.load32_splat(g + (<usize>r << 2));
        a = madd(s, ld(wr), a);
        b = madd(s, ld(wr + 16), b);
      }
      const d = dx + <usize>t * rowBytes + o;
      v128.store(d, a);
      v128.store(d, b, 16);
    }
  }
  // The last cols % 8 columns.
  for (let t = 0; t < tokens; t++) {
    const g = dy + <usize>t * dyBytes;
    for (let c = end8; c < cols; c++) {
      const o = <usize>c << 2;
      let s: f32 = 0;
      for (let r = 0; r < rows; r++) s += load<f32>(g + (<usize>r << 2)) * load<f32>(w + <usize>r * rowBytes + o);
      store<f32>(dx + <usize>t * rowBytes + o, s);
    }
  }
}

/**
 * dw[r, c] = sum_t dy[t, r] * x[t, c]; dy [tokens, rows], x [tokens, cols], dw [rows, cols]
 * (overwritten). A tile of 4 rows x 8 columns stays in registers across all tokens.
 */
export function f32_matmul_grad_weight(dy: usize, x: usize, dw: usize, tokens: i32, rows: i32, cols: i32): void {
  const rowBytes = <usize>cols << 2;
  const dyBytes = <usize>rows << 2;
  const end8 = cols & ~7;
  const end4 = cols & ~3;
  let r = 0;
  for (; r + 4 <= rows; r += 4) {
    const d0 = dw + <usize>r * rowBytes, d1 = d0 + rowBytes, d2 = d1 + rowBytes, d3 = d2 + rowBytes;
    const g = dy + (<usize>r << 2);
    let c = 0;
    for (; c < end8; c += 8) {
      const o = <usize>c << 2;
      let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
      let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0), b3 = f32x4.splat(0);
      for (let t = 0; t < tokens; t++) {
        const gt = g + <usize>t * dyBytes;
        const xt = x + <usize>t * rowBytes + o;
        const va = ld(xt), vb = ld(xt + 16);
        const g0 = v128.load32_splat(gt), g1 = v128.load32_splat(gt, 4), g2 = v128.load32_splat(gt, 8), g3 = v128.load32_splat(gt, 12);
        a0 = madd(g0, va, a0); a1 = madd(g1, va, a1); a2 = madd(g2, va, a2); a3 = madd(g3, va, a3);
        b0 = madd(g0, vb, b0); b1 = madd(g1, vb, b1); b2 = madd(g2, vb, b2); b3 = madd(g3, vb, b3);
      }
      v128.store(d0 + o, a0); v128.store(d1 + o, a1); v128.store(d2 + o, a2); v128.store(d3 + o, a3);
      v128.store(d0 + o, b0, 16); v128.store(d1 + o, b1, 16); v128.store(d2 + o, b2, 16); v128.store(d3 + o, b3, 16);
    }
    for (; c < end4; c += 4) {
      const o = <usize>c << 2;
      let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
      for (let t = 0; t < tokens; t++) {
        const gt = g + <usize>t * dyBytes;
        const va = ld(x + <usize>t * rowBytes + o);
        a0 = madd(v128.load32_splat(gt), va, a0); a1 = madd(v128.load32_splat(gt, 4), va, a1);
        a2 = madd(v128.load32_splat(gt, 8), va, a2); a3 = madd(v128.load32_splat(gt, 12), va, a3);
      }
      v128.store(d0 + o, a0); v128.store(d1 + o, a1); v128.store(d2 + o, a2); v128.store(d3 + o, a3);
    }
    for (; c < cols; c++) {
      const o = <usize>c << 2;
      let s0: f32 = 0, s1: f32 = 0, s2: f32 = 0, s3: f32 = 0;
      for (let t = 0; t < tokens; t++) {
        const gt = g + <usize>t * dyBytes;
        const e = load<f32>(x + <usize>t * rowBytes + o);
        s0 += load<f32>(gt) * e; s1 += load<f32>(gt, 4) * e; s2 += load<f32>(gt, 8) * e; s3 += load<f32>(gt, 12) * e;
      }
      store<f32>(d0 + o, s0); store<f32>(d1 + o, s1); store<f32>(d2 + o, s2); store<f32>(d3 + o, s3);
    }
  }
  for (; r < rows; r++) {
    const d = dw + <usize>r * rowBytes;
    const g = dy + (<usize>r << 2);
    let c = 0;
    for (; c < end4; c += 4) {
      const o = <usize>c << 2;
      let a = f32x4.splat(0);
      for (let t = 0; t < tokens; t++) a = madd(v128.load32_splat(g + <usize>t * dyBytes), ld(x + <usize>t * rowBytes + o), a);
      v128.store(d + o, a);
    }
    for (; c < cols; c++) {
      const o = <usize>c << 2;
      let s: f32 = 0;
      for (let t = 0; t < tokens; t++) s += load<f32>(g + <usize>t * dyBytes) * load<f32>(x + <usize>t * rowBytes + o);
      store<f32>(d + o, s);
    }
  }
}
