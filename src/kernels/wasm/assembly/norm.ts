// RMS normalisation of f32 rows with an f32 scale (main thread: a few microseconds per token).
import { dotF32 } from './simd';

/** out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * scale. */
export function f32_rmsnorm(x: usize, tokens: i32, n: i32, scale: usize, eps: f32, out: usize): void {
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
