// What the kernel twin tests share: random inputs (f32 vectors, BF16 matrices, packed MXFP4 experts
// with extreme scales), the relative-error comparison, and the check that no op fell back to the
// reference code (else a twin test would compare the reference with itself).
import assert from 'node:assert/strict';
import { fallbackTotal } from '../../src/kernels/wasm/index.ts';
import type { Bf16Matrix, Mxfp4Matrices } from '../../src/tensor/index.ts';

/** Where a test's tensors live: plain memory, or a backend's store. */
export type Allocate = (bytes: number, label: string) => Uint8Array;
const onHeap: Allocate = (bytes) => new Uint8Array(bytes);

export function randomF32(n: number, r: () => number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (r() * 2 - 1) * scale;
  return a;
}

export function randomBf16(rows: number, cols: number, r: () => number, allocate: Allocate = onHeap): Bf16Matrix {
  const u = allocate(rows * cols * 2, 'w');
  const data = new Uint16Array(u.buffer, u.byteOffset, rows * cols);
  const f = new Float32Array(1);
  const bits = new Uint32Array(f.buffer);
  for (let i = 0; i < data.length; i++) {
    f[0] = (r() * 2 - 1) * 0.5;
    data[i] = bits[0]! >>> 16;
  }
  return { rows, cols, data };
}

export function randomMxfp4(count: number, rows: number, cols: number, r: () => number, allocate: Allocate = onHeap): Mxfp4Matrices {
  const groups = cols / 32;
  const blocks = allocate(count * rows * groups * 16, 'blocks');
  const scales = allocate(count * rows * groups, 'scales');
  for (let i = 0; i < blocks.length; i++) blocks[i] = Math.floor(r() * 256);
  // Exponents around 2^-4 with a few extremes, including the subnormal E8M0 codes 0 and 1.
  for (let i = 0; i < scales.length; i++) scales[i] = i % 97 === 0 ? (i % 2) : 118 + Math.floor(r() * 10);
  return { count, rows, cols, blocks, scales };
}

/** Max |a - b| relative to the largest |b| (at least 1e-3 so all-tiny outputs still compare). */
export function relativeError(actual: Float32Array, expected: Float32Array): number {
  let maxRef = 1e-3, worst = 0;
  for (const v of expected) maxRef = Math.max(maxRef, Math.abs(v));
  for (let i = 0; i < actual.length; i++) worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!));
  return worst / maxRef;
}

/** relativeError within `tol`, naming the worst element (a NaN counts as the worst). */
export function assertClose(actual: Float32Array, expected: Float32Array, tol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let maxRef = 1e-3;
  for (const v of expected) maxRef = Math.max(maxRef, Math.abs(v));
  let worst = 0, at = -1;
  for (let i = 0; i < actual.length; i++) {
    const d = Math.abs(actual[i]! - expected[i]!);
    if (!(d <= worst)) { worst = d; at = i; }
  }
  assert.ok(worst / maxRef <= tol, `${what}: max error ${worst} at ${at} (scale ${maxRef}), tolerance ${tol}`);
}

/** The kernels ran: no op of the backend took the reference code. */
export function assertNoFallbacks(b: { readonly fallbacks: object }): void {
  assert.equal(fallbackTotal(b), 0, `fallbacks to the reference code: ${JSON.stringify(b.fallbacks)}`);
}

/** A routing of `tokens` tokens to `k` distinct experts each, with random weights. */
export function randomRouting(tokens: number, experts: number, k: number, r: () => number): { indices: Int32Array; weights: Float32Array } {
  const indices = new Int32Array(tokens * k);
  const weights = new Float32Array(tokens * k);
  for (let t = 0; t < tokens; t++) {
    const chosen = new Set<number>();
    while (chosen.size < k) chosen.add(Math.floor(r() * experts));
    [...chosen].forEach((e, j) => { indices[t * k + j] = e; weights[t * k + j] = r(); });
  }
  return { indices, weights };
}
