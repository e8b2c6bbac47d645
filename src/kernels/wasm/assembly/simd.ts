// Helpers every kernel family shares: slicing work over the pool's threads, horizontal sums,
// fused multiply-add, f32 dot products (with their extra results in globals, since an
// AssemblyScript function returns one value) and bf16 widening. All inlined at their call sites.

/** Start of slice `part` of `parts` over [0, total), in units of `align`. */
@inline export function sliceStart(total: i32, part: i32, parts: i32, align: i32): i32 {
  const units = (total + align - 1) / align;
  const s = <i32>((<i64>units * <i64>part) / <i64>parts) * align;
  return s < total ? s : total;
}

@inline export function hsum(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3);
}

/** acc + a * b: one fused multiply-add where relaxed SIMD has it (x64 FMA3), else mul + add. */
@inline export function madd(a: v128, b: v128, acc: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, acc);
  return f32x4.add(acc, f32x4.mul(a, b));
}

/** [sum(a), sum(b), sum(c), sum(d)] of four f32x4. */
@inline export function sum4x4(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = f32x4.add(i32x4.shuffle(a, b, 0, 4, 1, 5), i32x4.shuffle(a, b, 2, 6, 3, 7));
  const cd = f32x4.add(i32x4.shuffle(c, d, 0, 4, 1, 5), i32x4.shuffle(c, d, 2, 6, 3, 7));
  return f32x4.add(i32x4.shuffle(ab, cd, 0, 1, 4, 5), i32x4.shuffle(ab, cd, 2, 3, 6, 7));
}

/** Dot product of two f32 vectors of length n. */
@inline export function dotF32(a: usize, b: usize, n: i32): f32 {
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

// Results of dot4F32, dot2x4F32 and setDots4 (AssemblyScript returns one value).
export let dot0: f32 = 0, dot1: f32 = 0, dot2: f32 = 0, dot3: f32 = 0;

/** Dots of one f32 row w with 4 f32 rows x0..x3 (n % 4 == 0), sharing each load of w. */
@inline export function dot4F32(w: usize, x0: usize, x1: usize, x2: usize, x3: usize, n: i32): void {
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

export let dot4: f32 = 0, dot5: f32 = 0, dot6: f32 = 0, dot7: f32 = 0;

/** Dots of two f32 rows wa, wb with 4 rows x0..x3 (n % 8 == 0): dot0..3 for wa, dot4..7 for wb. */
@inline export function dot2x4F32(wa: usize, wb: usize, x0: usize, x1: usize, x2: usize, x3: usize, n: i32): void {
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

/** Sets dot0..dot3 (for dot kernels outside this file: an imported global is read-only there). */
@inline export function setDots4(a: f32, b: f32, c: f32, d: f32): void {
  dot0 = a; dot1 = b; dot2 = c; dot3 = d;
}

/** The f32 of the bf16 word at p (a bf16 is the upper half of an f32). */
@inline export function bf16At(p: usize): f32 {
  return reinterpret<f32>(<u32>load<u16>(p) << 16);
}

/** [sum(a), sum(b), sum(c), sum(d)] of four i32x4. */
@inline export function isum4x4(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = i32x4.add(i32x4.shuffle(a, b, 0, 4, 1, 5), i32x4.shuffle(a, b, 2, 6, 3, 7));
  const cd = i32x4.add(i32x4.shuffle(c, d, 0, 4, 1, 5), i32x4.shuffle(c, d, 2, 6, 3, 7));
  return i32x4.add(i32x4.shuffle(ab, cd, 0, 1, 4, 5), i32x4.shuffle(ab, cd, 2, 3, 6, 7));
}
