// Rotary position embedding of f32 query or key heads in place (main thread), from cos/sin rows
// the caller gathered per token.

/** Rotates x [tokens, heads, 2*half] in place; cos/sin [tokens, half] already gathered per token. */
export function f32_rope(x: usize, tokens: i32, heads: i32, half: i32, cos: usize, sin: usize): void {
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
