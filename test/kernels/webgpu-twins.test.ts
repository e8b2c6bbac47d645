// Every WebGPU kernel against its twin in the reference backend, on ragged shapes, with weights
// whole and split into many small GPU buffers (a lowered binding limit), requiring that no op fell
// back to the reference code; the glue kernels that keep a step on the GPU against the host glue. Skips with the reason when no WebGPU adapter exists at all, unless
// GPTOSS_REQUIRE_WEBGPU=1 (CI with its software adapter), where a missing adapter fails.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { createReferenceBackend } from '../../src/kernels/reference.ts';
import { webGpuAvailable } from '../../src/kernels/webgpu/device.ts';
import type { WebGpuBackend } from '../../src/kernels/webgpu/index.ts';
import type { ExpertWeights, RopeTable } from '../../src/kernels/backend.ts';
import { seededRandom } from '../../src/random.ts';
import { UserError } from '../../src/errors.ts';
import { assertClose, assertNoFallbacks, randomBf16 as bf16Matrix, randomF32, randomMxfp4 as mxfp4, randomRouting } from './twins.ts';

const reference = createReferenceBackend();
const available = await webGpuAvailable();
if (!available.ok && process.env.GPTOSS_REQUIRE_WEBGPU === '1') throw new Error(`GPTOSS_REQUIRE_WEBGPU=1 but ${available.reason}`);
const skip = available.ok ? false : `no WebGPU adapter: ${available.reason}`;

let whole: WebGpuBackend, split: WebGpuBackend;
before(async () => {
  if (!available.ok) return;
  const { createWebGpuBackend } = await import('../../src/kernels/webgpu/index.ts');
  whole = await createWebGpuBackend({ expertActivations: 'split' });
  // 8 KiB weight buffers: the larger matrices below are cut into several.
  split = await createWebGpuBackend({ maxBindingBytes: 8192, expertActivations: 'split' });
});
after(async () => {
  await whole?.close();
  await split?.close();
});

test('the webgpu backend names its adapter', { skip }, () => {
  assert.equal(whole.name, 'webgpu');
  assert.ok(whole.adapter.length > 0);
});

test('rmsnorm matches the reference (and may alias its input)', { skip }, async () => {
  const r = seededRandom(3);
  for (const [tokens, width] of [[1, 2880], [4, 37], [3, 64], [70, 5]] as const) {
    const x = randomF32(tokens * width, r, 3);
    const scale = randomF32(width, r);
    const want = new Float32Array(x.length);
    reference.rmsnorm(x, tokens, scale, 1e-5, want);
    const got = new Float32Array(x.length);
    await whole.rmsnorm(x, tokens, scale, 1e-5, got);
    assertClose(got, want, 1e-5, `rmsnorm ${tokens}x${width}`);
    await whole.rmsnorm(x, tokens, scale, 1e-5, x);
    assertClose(x, want, 1e-5, `rmsnorm aliased ${tokens}x${width}`);
  }
});

for (const layout of ['whole', 'split'] as const) {
  test(`linear (bf16) matches the reference, weights ${layout}`, { skip }, async () => {
    const b = layout === 'whole' ? whole : split;
    const r = seededRandom(11);
    for (const [tokens, rows, cols] of [[1, 37, 45], [3, 64, 64], [5, 129, 200], [9, 17, 8], [1, 1, 1], [13, 70, 96], [2, 517, 333], [20, 31, 7]] as const) {
      const w = bf16Matrix(rows, cols, r);
      const x = randomF32(tokens * cols, r);
      const bias = r() < 0.5 ? randomF32(rows, r) : null;
      const want = new Float32Array(tokens * rows);
      reference.linear(x, tokens, w, bias, want);
      const got = new Float32Array(tokens * rows);
      await b.linear(x, tokens, w, bias, got);
      assertClose(got, want, 1e-5, `linear ${tokens}x${cols} -> ${rows}`);
      // Second call: the weight is already on the GPU.
      const again = new Float32Array(tokens * rows);
      await b.linear(x, tokens, w, bias, again);
      assert.deepEqual(again, got);
    }
    assertNoFallbacks(b);
  });

  test(`experts (MXFP4 + SwiGLU) match the reference, weights ${layout}`, { skip }, async () => {
    const b = layout === 'whole' ? whole : split;
    const r = seededRandom(5);
    for (const [tokens, experts, k, hidden, inter] of [[1, 4, 2, 64, 32], [7, 6, 3, 96, 64], [2, 8, 4, 32, 96], [19, 5, 2, 160, 32], [12, 3, 1, 32, 32]] as const) {
      const moe: ExpertWeights = {
        mlp1Weight: mxfp4(experts, 2 * inter, hidden, r), mlp1Bias: randomF32(experts * 2 * inter, r),
        mlp2Weight: mxfp4(experts, hidden, inter, r), mlp2Bias: randomF32(experts * hidden, r),
      };
      const x = randomF32(tokens * hidden, r, 2);
      const { indices, weights } = randomRouting(tokens, experts, k, r);
      const limit = 1.5; // low, so the clamp is exercised
      const want = new Float32Array(tokens * hidden);
      reference.experts(x, tokens, indices, weights, k, moe, limit, want);
      const got = randomF32(tokens * hidden, r); // overwritten, not accumulated
      await b.experts(x, tokens, indices, weights, k, moe, limit, got);
      assertClose(got, want, 2e-5, `experts t=${tokens} e=${experts} k=${k} h=${hidden} i=${inter}`);
    }
    assertNoFallbacks(b);
  });
}

for (const layout of ['whole', 'split'] as const) {
  test(`attention with sinks (banded and dense, GQA, ring buffer, empty slots) matches the reference, cache ${layout}`, { skip }, async () => {
    // Split: the cache goes up in 8 KiB buffers (32 positions of 1 x 64 floats), its chunks combined.
    const b = layout === 'whole' ? whole : split;
    const r = seededRandom(21);
    for (const [tokens, keyCount, heads, kvHeads, headDim, window] of [
      [1, 9, 4, 2, 16, 0], [5, 12, 8, 2, 18, 4], [6, 6, 4, 1, 64, 0], [3, 20, 6, 3, 7, 5], [2, 150, 4, 4, 130, 0], [4, 200, 8, 1, 64, 128], [1, 300, 4, 1, 64, 0], [3, 1, 2, 1, 8, 0],
    ] as const) {
      const start = keyCount - tokens;
      const positions = Int32Array.from({ length: tokens }, (_, i) => start + i);
      // A ring buffer: positions rotated, with one empty slot when there is room.
      const keyPositions = Int32Array.from({ length: keyCount }, (_, i) => (i + 3) % keyCount);
      if (keyCount > 8) keyPositions[2] = -1;
      const q = randomF32(tokens * heads * headDim, r, 2);
      const keys = randomF32(keyCount * kvHeads * headDim, r, 2);
      const values = randomF32(keyCount * kvHeads * headDim, r);
      const sinks = randomF32(heads, r, 3);
      const shape = { heads, kvHeads, headDim, window };
      const want = new Float32Array(tokens * heads * headDim);
      reference.attention(q, tokens, positions, keys, values, keyCount, keyPositions, sinks, shape, want);
      const got = new Float32Array(want.length);
      await b.attention(q, tokens, positions, keys, values, keyCount, keyPositions, sinks, shape, got);
      assertClose(got, want, 1e-5, `attention ${JSON.stringify(shape)} t=${tokens} k=${keyCount}`);
    }
    assertNoFallbacks(b);
  });
}

test('rope matches the reference', { skip }, async () => {
  const r = seededRandom(4);
  for (const [tokens, heads, headDim] of [[1, 8, 64], [5, 3, 18], [2, 2, 6], [33, 7, 10]] as const) {
    const half = headDim / 2, positionsCount = 40;
    const table: RopeTable = { cos: randomF32(positionsCount * half, r), sin: randomF32(positionsCount * half, r), halfDim: half, positions: positionsCount };
    const positions = Int32Array.from({ length: tokens }, () => Math.floor(r() * positionsCount));
    const x = randomF32(tokens * heads * headDim, r);
    const want = Float32Array.from(x);
    reference.rope(want, tokens, heads, headDim, positions, table);
    await whole.rope(x, tokens, heads, headDim, positions, table);
    assertClose(x, want, 1e-6, `rope ${tokens}x${heads}x${headDim}`);
  }
});

test('experts with one expert larger than a weight buffer run the reference code and are counted', { skip }, async () => {
  const r = seededRandom(8);
  const [tokens, experts, k, hidden, inter] = [2, 2, 1, 512, 64]; // mlp1: 128 rows x 512 cols = 32 KiB per expert
  const moe: ExpertWeights = {
    mlp1Weight: mxfp4(experts, 2 * inter, hidden, r), mlp1Bias: randomF32(experts * 2 * inter, r),
    mlp2Weight: mxfp4(experts, hidden, inter, r), mlp2Bias: randomF32(experts * hidden, r),
  };
  const x = randomF32(tokens * hidden, r);
  const indices = Int32Array.from([0, 1]), weights = Float32Array.from([1, 0.5]);
  const want = new Float32Array(tokens * hidden), got = new Float32Array(tokens * hidden);
  reference.experts(x, tokens, indices, weights, k, moe, 7, want);
  const before = split.fallbacks.experts;
  await split.experts(x, tokens, indices, weights, k, moe, 7, got);
  assert.deepEqual(got, want);
  assert.equal(split.fallbacks.experts, before + 1);
});

test("gpt-oss's own widths: 2880-wide experts, 64 heads over 8 KV heads, more rows than one dispatch dimension", { skip }, async () => {
  const r = seededRandom(99);
  // 70000 rows: the dispatch grid needs a second dimension (at most 65535 workgroups per dimension).
  const w = bf16Matrix(70000, 24, r);
  const x = randomF32(3 * 24, r);
  const want = new Float32Array(3 * 70000), got = new Float32Array(3 * 70000);
  reference.linear(x, 3, w, null, want);
  await whole.linear(x, 3, w, null, got);
  assertClose(got, want, 1e-5, 'linear 3x24 -> 70000');

  const [tokens, experts, k, hidden, inter] = [3, 5, 4, 2880, 2880];
  const moe: ExpertWeights = {
    mlp1Weight: mxfp4(experts, 2 * inter, hidden, r), mlp1Bias: randomF32(experts * 2 * inter, r),
    mlp2Weight: mxfp4(experts, hidden, inter, r), mlp2Bias: randomF32(experts * hidden, r),
  };
  const xe = randomF32(tokens * hidden, r);
  const indices = Int32Array.from([0, 1, 2, 3, 4, 3, 2, 1, 1, 0, 4, 2]), weights = Float32Array.from({ length: tokens * k }, () => r());
  const wantE = new Float32Array(tokens * hidden), gotE = new Float32Array(tokens * hidden);
  reference.experts(xe, tokens, indices, weights, k, moe, 7, wantE);
  await whole.experts(xe, tokens, indices, weights, k, moe, 7, gotE);
  assertClose(gotE, wantE, 2e-5, 'experts at 2880');

  for (const window of [0, 128]) {
    const shape = { heads: 64, kvHeads: 8, headDim: 64, window };
    const keyCount = 700, t = 5;
    const positions = Int32Array.from({ length: t }, (_, i) => keyCount - t + i);
    const keyPositions = Int32Array.from({ length: keyCount }, (_, i) => i);
    const q = randomF32(t * 64 * 64, r, 2), keys = randomF32(keyCount * 8 * 64, r), values = randomF32(keyCount * 8 * 64, r);
    const sinks = randomF32(64, r, 3);
    const wantA = new Float32Array(t * 64 * 64), gotA = new Float32Array(t * 64 * 64);
    reference.attention(q, t, positions, keys, values, keyCount, keyPositions, sinks, shape, wantA);
    await whole.attention(q, t, positions, keys, values, keyCount, keyPositions, sinks, shape, gotA);
    assertClose(gotA, wantA, 1e-5, `attention 64/8 heads, window ${window}`);
  }
  assertNoFallbacks(whole);
});

/** A store array of `count` 32-bit values (a region the glue ops keep on the GPU), filled by `fill`. */
function storeArray<T extends Float32Array | Int32Array>(b: WebGpuBackend, make: (buf: ArrayBuffer, offset: number, n: number) => T, count: number, fill?: (i: number) => number): T {
  const bytes = b.store.allocate(count * 4, 'test');
  const a = make(bytes.buffer as ArrayBuffer, bytes.byteOffset, count);
  if (fill !== undefined) {
    for (let i = 0; i < count; i++) a[i] = fill(i);
    b.resident.written(a);
  }
  return a;
}
const f32Array = (buf: ArrayBuffer, offset: number, n: number): Float32Array => new Float32Array(buf, offset, n);
const i32Array = (buf: ArrayBuffer, offset: number, n: number): Int32Array => new Int32Array(buf, offset, n);

test('the resident glue matches the host glue: routing with ties, strided row copies from inside arrays, adds', { skip }, async () => {
  const { hostGlue } = await import('../../src/model/glue.ts');
  const r = seededRandom(31);
  for (const [tokens, experts, k] of [[1, 32, 4], [7, 5, 5], [3, 128, 4], [70, 6, 1]] as const) {
    // Gate logits rounded to a few values, so that exact ties occur between experts.
    const gate = storeArray(whole, f32Array, tokens * experts, () => Math.round(r() * 6) / 2);
    const indices = storeArray(whole, i32Array, tokens * k), weights = storeArray(whole, f32Array, tokens * k);
    whole.resident.route(gate, tokens, experts, k, indices, weights);
    await whole.resident.toHost(indices);
    await whole.resident.toHost(weights);
    const wantI = new Int32Array(tokens * k), wantW = new Float32Array(tokens * k);
    hostGlue.route(gate, tokens, experts, k, wantI, wantW);
    assert.deepEqual([...indices], [...wantI], `route ${tokens}x${experts} k=${k}`);
    assertClose(weights, wantW, 1e-6, `route weights ${tokens}x${experts} k=${k}`);
  }
  for (const [rows, srcStride, dstStride, width, srcAt, dstAt] of [[5, 13, 7, 7, 3, 0], [1, 9, 9, 9, 4, 2], [4, 6, 10, 5, 0, 5], [3, 8, 8, 8, 0, 0]] as const) {
    const src = storeArray(whole, f32Array, srcAt + rows * srcStride, (i) => i + 0.5);
    const dst = storeArray(whole, f32Array, dstAt + rows * dstStride, (i) => -i);
    const want = Float32Array.from(dst);
    hostGlue.copyRows(src.subarray(srcAt), srcStride, want.subarray(dstAt), dstStride, width, rows);
    whole.resident.copyRows(src.subarray(srcAt), srcStride, dst.subarray(dstAt), dstStride, width, rows);
    await whole.resident.toHost(dst);
    assert.deepEqual([...dst], [...want], `copyRows ${rows}x${width} strides ${srcStride}/${dstStride} from ${srcAt} to ${dstAt}`);
  }
  const x = storeArray(whole, f32Array, 1000, (i) => Math.sin(i)), y = storeArray(whole, f32Array, 1000, (i) => Math.cos(i));
  const want = Float32Array.from(x);
  hostGlue.add(want, y, 777);
  whole.resident.add(x, y, 777);
  await whole.resident.toHost(x);
  assert.deepEqual([...x], [...want]);
});

// The fast mode: f16 inputs into each 8-value MXFP4 dot product, f32 across them, f16 between the
// up and down projections. Held to f16 rounding of the reference (1% of the output's scale: these
// weights' extreme scales make sums cancel; ~0.5% was seen), on ragged shapes and split weights.
test('experts in the f16 mode stay within f16 rounding of the reference, and are not the f32 kernels', { skip }, async () => {
  const { createWebGpuBackend } = await import('../../src/kernels/webgpu/index.ts');
  const fast = await createWebGpuBackend({ maxBindingBytes: 8192 });
  try {
    if (fast.expertActivations !== 'f16') return void assert.equal(fast.expertActivations, 'split', 'an adapter without shader-f16 defaults to the exact mode');
    const r = seededRandom(6);
    let differs = false;
    for (const [tokens, experts, k, hidden, inter] of [[1, 4, 2, 64, 32], [7, 6, 3, 96, 64], [19, 5, 2, 160, 32], [12, 3, 1, 32, 32]] as const) {
      const moe: ExpertWeights = {
        mlp1Weight: mxfp4(experts, 2 * inter, hidden, r), mlp1Bias: randomF32(experts * 2 * inter, r),
        mlp2Weight: mxfp4(experts, hidden, inter, r), mlp2Bias: randomF32(experts * hidden, r),
      };
      const x = randomF32(tokens * hidden, r, 2);
      const { indices, weights } = randomRouting(tokens, experts, k, r);
      const want = new Float32Array(tokens * hidden);
      reference.experts(x, tokens, indices, weights, k, moe, 1.5, want);
      const got = new Float32Array(tokens * hidden), exact = new Float32Array(tokens * hidden);
      await fast.experts(x, tokens, indices, weights, k, moe, 1.5, got);
      await split.experts(x, tokens, indices, weights, k, moe, 1.5, exact);
      assertClose(got, want, 1e-2, `f16 experts t=${tokens} e=${experts} k=${k} h=${hidden} i=${inter}`);
      differs ||= got.some((v, i) => v !== exact[i]);
    }
    assert.ok(differs, 'the f16 mode gave the f32 kernels\' results bit for bit');
    assertNoFallbacks(fast);
  } finally {
    await fast.close();
  }
});

test('an adapter without shader-f16 defaults to the exact mode and refuses f16 in one line', { skip }, async () => {
  const { createWebGpuBackend } = await import('../../src/kernels/webgpu/index.ts');
  const plain = await createWebGpuBackend({ withoutF16: true });
  try {
    assert.equal(plain.expertActivations, 'split');
  } finally {
    await plain.close();
  }
  await assert.rejects(createWebGpuBackend({ withoutF16: true, expertActivations: 'f16' }), (e: unknown) =>
    e instanceof UserError && /^expert activations f16 need a WebGPU adapter with shader-f16, and .+ has none: use --expert-activations split$/.test(e.message));
  await assert.rejects(createWebGpuBackend({ expertActivations: 'q8' }), (e: unknown) => e instanceof UserError && /webgpu backend has no 'q8' expert activations/.test(e.message));
});
