// Greedy sampling: the index of the largest f32 logit (main thread).

/** Index of the largest of n f32 (the first on ties; NaN never wins). */
export function f32_argmax(x: usize, n: i32): i32 {
  let best = 0;
  let bv = load<f32>(x);
  for (let i = 1; i < n; i++) {
    const v = load<f32>(x + (<usize>i << 2));
    if (v > bv) { bv = v; best = i; }
  }
  return best;
}
