// The memory-bandwidth probe: every thread streams its slice of a buffer (what `gptoss bench`
// compares the decode speed against).
import { sliceStart } from './simd';

/** Reads this thread's slice of [ptr, ptr + bytes) with 16-byte loads (the memory-bandwidth probe). */
export function mem_stream_read(ptr: usize, bytes: i32, out: usize, part: i32, parts: i32): void {
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
