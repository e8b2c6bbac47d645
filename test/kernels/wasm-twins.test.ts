// Every wasm kernel against its twin in the reference backend, on random shapes including ragged
// sizes, with 1 and 2 threads (the pool offloading every op, by default, and inline), with activations both in JS memory and in the store, and with a
// store cut into small memories so tensors land in different memories. Every test requires that no
// op fell back to the reference code (else it would compare the reference with itself).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createReferenceBackend } from '../../src/kernels/reference.ts';
import { createWasmBackend, relaxedSimdAvailable, type ExpertActivations, type WasmBackend } from '../../src/kernels/wasm/index.ts';
import { SCRATCH_BYTES } from '../../src/kernels/wasm/store.ts';
import { f32ToBf16, type Bf16Matrix, type Mxfp4Matrices } from '../../src/tensor/index.ts';
import type { ExpertWeights, RopeTable } from '../../src/kernels/backend.ts';
import { seededRandom } from '../../src/random.ts';
import { assertClose, assertNoFallbacks, randomBf16, randomF32, randomMxfp4, randomRouting, relativeError } from './twins.ts';

const reference = createReferenceBackend();


function f32In(b: WasmBackend, n: number, label: string): Float32Array {
  const u = b.store.allocate(n * 4, label);
  return new Float32Array(u.buffer, u.byteOffset, n);
}

/** A random BF16 matrix in `b`'s store. */
function bf16Matrix(b: WasmBackend, rows: number, cols: number, r: () => number): Bf16Matrix {
  return randomBf16(rows, cols, r, (bytes, label) => b.store.allocate(bytes, label));
}

/** Random packed MXFP4 experts in `b`'s store. */
function mxfp4(b: WasmBackend, count: number, rows: number, cols: number, r: () => number): Mxfp4Matrices {
  return randomMxfp4(count, rows, cols, r, (bytes, label) => b.store.allocate(bytes, label));
}

const backends: WasmBackend[] = [];
after(async () => {
  for (const b of backends) await b.close();
});

/** How the pool runs the ops: every one handed to the workers, offloading's default (large ops handed off, small ones inline beside the workers), or always inline (the default). */
type PoolMode = 'offloaded' | 'hybrid' | 'inline';

async function makeBackend(threads: number, small: boolean, expertActivations: ExpertActivations, relaxedSimd: boolean, mode: PoolMode): Promise<WasmBackend> {
  const pool = mode === 'offloaded' ? { offload: true, offloadWork: 0 } : mode === 'hybrid' ? { offload: true } : {};
  const b = await createWasmBackend({ threads, expertActivations, relaxedSimd, ...pool, memoryBytes: small ? SCRATCH_BYTES + 2 * 65536 : undefined });
  backends.push(b);
  return b;
}

const backend = (threads: number, small = false, mode: ExpertActivations = 'split', relaxed = true): Promise<WasmBackend> => makeBackend(threads, small, mode, relaxed, 'inline');

// The small shapes here run inline in a 'hybrid' pool; 'offloaded' hands every op to the workers.
for (const [threads, poolMode] of [[1, 'offloaded'], [2, 'offloaded'], [2, 'hybrid'], [2, 'inline']] as const) {
  const backend = (t: number, small = false, mode: ExpertActivations = 'split', relaxed = true): Promise<WasmBackend> => makeBackend(t, small, mode, relaxed, poolMode);
  const inline = `, pool ${poolMode}`;
  test(`linear (bf16) matches the reference, ${threads} thread(s)${inline}`, async () => {
    const b = await backend(threads);
    const r = seededRandom(11 + threads);
    for (const [tokens, rows, cols] of [[1, 37, 45], [3, 64, 64], [5, 129, 200], [9, 17, 8], [1, 1, 1], [13, 70, 96], [2, 517, 333], [6, 130, 400]] as const) {
      // (the last two are large enough to be split across threads)
      const w = bf16Matrix(b, rows, cols, r);
      const x = randomF32(tokens * cols, r);
      const bias = r() < 0.5 ? randomF32(rows, r) : null;
      const want = new Float32Array(tokens * rows);
      reference.linear(x, tokens, w, bias, want);
      const got = new Float32Array(tokens * rows);
      await b.linear(x, tokens, w, bias, got);
      assertClose(got, want, 1e-5, `linear ${tokens}x${cols} -> ${rows}`);
      // Activations already in the store are used in place.
      const xs = f32In(b, x.length, 'x');
      xs.set(x);
      const outs = f32In(b, want.length, 'out');
      await b.linear(xs, tokens, w, bias, outs);
      assertClose(outs, want, 1e-5, `linear in store ${tokens}x${cols} -> ${rows}`);
    }
    assertNoFallbacks(b);
  });

  test(`linear (bf16) over several column chunks and token blocks matches the reference, ${threads} thread(s)${inline}`, async () => {
    // From 8 tokens in a block of 256 the kernel widens 512-column chunks of 8-row blocks for
    // tiles of 4 tokens; fewer take the direct path: columns past one chunk with tails of 1..7
    // (the last chunk's), token counts that leave 1..3 after the tiles, a second block of 3 or 6
    // tokens, row counts that leave a single row in a block or a thread's slice.
    const b = await backend(threads);
    const r = seededRandom(31 + threads);
    for (const [tokens, rows, cols] of [[11, 19, 1100], [70, 33, 1030], [10, 21, 777], [66, 18, 2880], [8, 3, 523], [5, 9, 600], [262, 9, 520], [259, 5, 64]] as const) {
      const w = bf16Matrix(b, rows, cols, r);
      const x = randomF32(tokens * cols, r);
      for (const bias of [null, randomF32(rows, r)]) {
        const want = new Float32Array(tokens * rows);
        reference.linear(x, tokens, w, bias, want);
        const got = new Float32Array(tokens * rows);
        await b.linear(x, tokens, w, bias, got);
        assertClose(got, want, 1e-5, `linear ${tokens}x${cols} -> ${rows}${bias === null ? '' : ' + bias'}`);
      }
    }
    assertNoFallbacks(b);
  });

  test(`linear on an int8 copy matches the reference on the same copy, ${threads} thread(s)${inline}`, async () => {
    // Both builds (the relaxed one fuses the scale multiply-adds).
    for (const relaxed of [true, false]) {
      const b = await backend(threads, false, 'split', relaxed);
      const r = seededRandom(71 + threads);
      // Odd row counts (a thread's last single row), 1..9 tokens, and shapes large enough to split.
      for (const [tokens, rows, cols] of [[1, 37, 64], [3, 64, 32], [5, 129, 96], [9, 17, 256], [1, 1, 32], [2, 517, 320], [1, 1031, 2880], [6, 130, 416]] as const) {
        const w = await b.int8Copy(bf16Matrix(b, rows, cols, r), 'w8');
        const x = randomF32(tokens * cols, r);
        // One row of zeros: a zero scale must give zeros, not NaN.
        x.fill(0, 0, cols);
        const want = new Float32Array(tokens * rows);
        reference.linear(x, tokens, w, null, want);
        const got = new Float32Array(tokens * rows);
        await b.linear(x, tokens, w, null, got);
        // The activations are rounded to i16 per row (1/32767 of the row's largest).
        assertClose(got, want, 1e-4, `int8 linear ${tokens}x${cols} -> ${rows}`);
        assert.ok(got.subarray(0, rows).every((v) => v === 0), 'a zero row gives zero outputs');
      }
      assertNoFallbacks(b);
    }
  });

  test(`experts (MXFP4 + SwiGLU) match the reference, ${threads} thread(s)${inline}`, async (t) => {
    const r = seededRandom(5 + threads);
    // Modes: 'split' (two i16 halves into integer dots for single tokens, f32 for
    // several) and 'f32' are exact to ~1e-6 of the output scale; 'q8' (int8
    // activations for every token, relaxed-SIMD byte dots or the baseline i16 dots) a few 1e-2
    // (reported below; the test after this one checks the two q8 builds against each other).
    const cases = [
      [false, 'split', 2e-5, true], [true, 'split', 2e-5, true], [false, 'f32', 2e-5, true], [true, 'f32', 2e-5, true],
      [false, 'q8', 5e-2, true], [true, 'q8', 5e-2, false],
    ] as const;
    for (const [small, mode, tol, relaxed] of cases) {
      const b = await backend(threads, small, mode, relaxed);
      let worst = 0;
      for (const [tokens, experts, k, hidden, inter] of [[1, 4, 2, 64, 32], [7, 6, 3, 96, 64], [2, 8, 4, 32, 96], [19, 5, 2, 160, 32]] as const) {
        const mlp1 = mxfp4(b, experts, 2 * inter, hidden, r);
        const mlp2 = mxfp4(b, experts, hidden, inter, r);
        const moe: ExpertWeights = {
          mlp1Weight: mlp1, mlp1Bias: randomF32(experts * 2 * inter, r),
          mlp2Weight: mlp2, mlp2Bias: randomF32(experts * hidden, r),
        };
        const x = randomF32(tokens * hidden, r, 2);
        const { indices, weights } = randomRouting(tokens, experts, k, r);
        const limit = 1.5; // low, so the clamp is exercised
        const want = new Float32Array(tokens * hidden);
        reference.experts(x, tokens, indices, weights, k, moe, limit, want);
        const got = randomF32(tokens * hidden, r); // overwritten, not accumulated
        await b.experts(x, tokens, indices, weights, k, moe, limit, got);
        assertClose(got, want, tol, `experts t=${tokens} e=${experts} k=${k} h=${hidden} i=${inter} small=${small} ${mode}`);
        worst = Math.max(worst, relativeError(got, want));
      }
      t.diagnostic(`experts ${mode} activations${mode === 'q8' ? (relaxed && relaxedSimdAvailable() ? ' (relaxed SIMD)' : ' (baseline SIMD)') : ''}: max error ${worst.toExponential(2)} of the output scale`);
      if (small) assert.ok(b.memoryCount > 1, 'the small-memory store spreads tensors over several memories');
      assertNoFallbacks(b);
    }
  });

  test(`q8 experts: the relaxed-SIMD byte dots equal the baseline build's, ${threads} thread(s)${inline}`, { skip: relaxedSimdAvailable() ? false : 'this runtime has no relaxed SIMD' }, async () => {
    // Same int8 quantisation, so the integer products agree exactly; only the f32 summation
    // order of the group results differs.
    const relaxed = await backend(threads, false, 'q8', true), baseline = await backend(threads, false, 'q8', false);
    for (const [experts, k, hidden, inter] of [[4, 4, 2880, 64], [6, 2, 160, 96], [3, 3, 96, 2880]] as const) {
      // The same weights in each backend's own store (a tensor outside the store would fall back to the reference).
      const moeIn = (b: WasmBackend): ExpertWeights => {
        const r = seededRandom(31 + threads + hidden);
        return {
          mlp1Weight: mxfp4(b, experts, 2 * inter, hidden, r), mlp1Bias: randomF32(experts * 2 * inter, r),
          mlp2Weight: mxfp4(b, experts, hidden, inter, r), mlp2Bias: randomF32(experts * hidden, r),
        };
      };
      const moe = moeIn(relaxed), moe2 = moeIn(baseline);
      const r = seededRandom(7 * hidden);
      for (const tokens of [1, 6]) {
        // One token: the single-row kernels; six: rows expanded to byte codes, four tokens per pass.
        const x = randomF32(tokens * hidden, r, 2);
        const indices = Int32Array.from({ length: tokens * k }, (_, i) => (i + Math.floor(i / k)) % experts);
        const weights = Float32Array.from({ length: tokens * k }, () => r());
        const a = new Float32Array(tokens * hidden), b = new Float32Array(tokens * hidden), want = new Float32Array(tokens * hidden);
        await relaxed.experts(x, tokens, indices, weights, k, moe, 7, a);
        await baseline.experts(x, tokens, indices, weights, k, moe2, 7, b);
        reference.experts(x, tokens, indices, weights, k, moe, 7, want);
        assertClose(a, b, 1e-5, `relaxed vs baseline q8 t=${tokens} h=${hidden} i=${inter}`);
        assertClose(a, want, 5e-2, `q8 vs reference t=${tokens} h=${hidden} i=${inter}`);
      }
    }
    assertNoFallbacks(relaxed);
    assertNoFallbacks(baseline);
  });

  // Ragged against the kernel's tiles (64 keys per block, up to 32 query rows of one KV head per
  // tile): prompt lengths and key counts not multiples of them, windows smaller and larger than a
  // key block, one query head per KV head and gpt-oss's 8, head sizes not a multiple of 4, and
  // shapes large enough that both threads take a share.
  const attentionShapes = [
    [1, 9, 4, 2, 16, 0], [5, 12, 8, 2, 18, 4], [6, 6, 4, 1, 64, 0], [3, 20, 6, 3, 7, 5],
    [37, 300, 8, 2, 64, 0], [37, 300, 8, 2, 64, 20], [70, 333, 16, 2, 64, 100], [45, 130, 8, 8, 12, 0],
    [1, 200, 64, 8, 64, 128], [9, 517, 64, 8, 64, 0],
  ] as const;

  /** A ring buffer: positions rotated, with one empty slot when there is room; queries at the last positions. */
  function attentionCase(r: () => number, tokens: number, keyCount: number, heads: number, kvHeads: number, headDim: number) {
    const start = keyCount - tokens;
    const positions = Int32Array.from({ length: tokens }, (_, i) => start + i);
    const keyPositions = Int32Array.from({ length: keyCount }, (_, i) => (i + 3) % keyCount);
    if (keyCount > 8) keyPositions[2] = -1;
    const q = randomF32(tokens * heads * headDim, r, 2);
    const keys = randomF32(keyCount * kvHeads * headDim, r, 2);
    const values = randomF32(keyCount * kvHeads * headDim, r);
    const sinks = randomF32(heads, r, 3);
    return { positions, keyPositions, q, keys, values, sinks };
  }

  test(`attention with sinks (banded and dense, ring buffer, empty slots, ragged tiles) matches the reference, ${threads} thread(s)${inline}`, async () => {
    const b = await backend(threads);
    const r = seededRandom(21 + threads);
    for (const [tokens, keyCount, heads, kvHeads, headDim, window] of attentionShapes) {
      const { positions, keyPositions, q, keys, values, sinks } = attentionCase(r, tokens, keyCount, heads, kvHeads, headDim);
      const shape = { heads, kvHeads, headDim, window };
      const want = new Float32Array(tokens * heads * headDim);
      reference.attention(q, tokens, positions, keys, values, keyCount, keyPositions, sinks, shape, want);
      const got = new Float32Array(want.length);
      await b.attention(q, tokens, positions, keys, values, keyCount, keyPositions, sinks, shape, got);
      assertClose(got, want, 1e-5, `attention ${JSON.stringify(shape)} t=${tokens} k=${keyCount}`);
      const ks = f32In(b, keys.length, 'kv.keys'); ks.set(keys);
      const vs = f32In(b, values.length, 'kv.values'); vs.set(values);
      const got2 = new Float32Array(want.length);
      await b.attention(q, tokens, positions, ks, vs, keyCount, keyPositions, sinks, shape, got2);
      assertClose(got2, want, 1e-5, `attention over a store cache ${JSON.stringify(shape)}`);
    }
    assertNoFallbacks(b);
  });

  test(`attention where a window or the causal edge falls exactly on a key block's edge matches the reference, ${threads} thread(s)${inline}`, async () => {
    const b = await backend(threads);
    const r = seededRandom(61 + threads);
    const heads = 8, kvHeads = 2, headDim = 64, keyCount = 200;
    // Slot = position, so the kernel's 64-key blocks hold positions 0-63, 64-127, ...
    const keyPositions = Int32Array.from({ length: keyCount }, (_, i) => i);
    const keys = randomF32(keyCount * kvHeads * headDim, r, 2);
    const values = randomF32(keyCount * kvHeads * headDim, r);
    const sinks = randomF32(heads, r, 3);
    // [first query position, window]: 57..64 sees key 64 (the second block's first) only from its
    // last query; 82..89 with window 20 sees key 63 (the first block's last) only from its first.
    for (const [first, window] of [[57, 0], [82, 20], [57, 8]] as const) {
      const tokens = 8;
      const positions = Int32Array.from({ length: tokens }, (_, i) => first + i);
      const q = randomF32(tokens * heads * headDim, r, 2);
      const shape = { heads, kvHeads, headDim, window };
      const want = new Float32Array(tokens * heads * headDim);
      reference.attention(q, tokens, positions, keys, values, keyCount, keyPositions, sinks, shape, want);
      const got = new Float32Array(want.length);
      await b.attention(q, tokens, positions, keys, values, keyCount, keyPositions, sinks, shape, got);
      assertClose(got, want, 1e-5, `attention from ${first}, window ${window}`);
    }
    assertNoFallbacks(b);
  });

  test(`attention over a bf16 KV cache matches the reference on the same bf16 cache, ${threads} thread(s)${inline}`, async () => {
    const b = await backend(threads);
    const r = seededRandom(41 + threads);
    for (const [tokens, keyCount, heads, kvHeads, headDim, window] of attentionShapes) {
      const { positions, keyPositions, q, keys, values, sinks } = attentionCase(r, tokens, keyCount, heads, kvHeads, headDim);
      const shape = { heads, kvHeads, headDim, window };
      const n = keys.length;
      const kb = new Uint16Array(n), vb = new Uint16Array(n);
      f32ToBf16(keys, kb, 0);
      f32ToBf16(values, vb, 0);
      const want = new Float32Array(tokens * heads * headDim);
      reference.attention(q, tokens, positions, kb, vb, keyCount, keyPositions, sinks, shape, want);
      const got = new Float32Array(want.length);
      await b.attention(q, tokens, positions, kb, vb, keyCount, keyPositions, sinks, shape, got);
      assertClose(got, want, 1e-5, `bf16 attention ${JSON.stringify(shape)} t=${tokens} k=${keyCount}`);
      // In the store (in place), as the model's caches are.
      const ku = b.store.allocate(n * 2, 'kv.keys'), vu = b.store.allocate(n * 2, 'kv.values');
      const ks = new Uint16Array(ku.buffer, ku.byteOffset, n), vs = new Uint16Array(vu.buffer, vu.byteOffset, n);
      ks.set(kb); vs.set(vb);
      const got2 = new Float32Array(want.length);
      await b.attention(q, tokens, positions, ks, vs, keyCount, keyPositions, sinks, shape, got2);
      assertClose(got2, want, 1e-5, `bf16 attention over a store cache ${JSON.stringify(shape)}`);
      // And rounding the cache to bf16 costs about bf16's precision against the f32 cache.
      const exact = new Float32Array(want.length);
      reference.attention(q, tokens, positions, keys, values, keyCount, keyPositions, sinks, shape, exact);
      const err = relativeError(got, exact);
      assert.ok(err > 0 && err < 3e-2, `bf16 cache error ${err} against f32 ${JSON.stringify(shape)}`);
    }
    assertNoFallbacks(b);
  });
}

test('rmsnorm and rope match the reference (in place and copied)', async () => {
  const b = await backend(1);
  const r = seededRandom(3);
  for (const [tokens, width] of [[1, 2880], [4, 37], [3, 64]] as const) {
    const x = randomF32(tokens * width, r, 3);
    const scale = randomF32(width, r);
    const want = new Float32Array(x.length);
    reference.rmsnorm(x, tokens, scale, 1e-5, want);
    const got = new Float32Array(x.length);
    await b.rmsnorm(x, tokens, scale, 1e-5, got);
    assertClose(got, want, 1e-5, `rmsnorm ${tokens}x${width}`);
    const xs = f32In(b, x.length, 'x'); xs.set(x);
    await b.rmsnorm(xs, tokens, scale, 1e-5, xs);
    assertClose(xs, want, 1e-5, `rmsnorm aliased ${tokens}x${width}`);
  }
  for (const [tokens, heads, headDim] of [[1, 8, 64], [5, 3, 18], [2, 2, 6]] as const) {
    const half = headDim / 2, positionsCount = 40;
    const table: RopeTable = { cos: randomF32(positionsCount * half, r), sin: randomF32(positionsCount * half, r), halfDim: half, positions: positionsCount };
    const positions = Int32Array.from({ length: tokens }, () => Math.floor(r() * positionsCount));
    const x = randomF32(tokens * heads * headDim, r);
    const want = Float32Array.from(x);
    reference.rope(want, tokens, heads, headDim, positions, table);
    const got = Float32Array.from(x);
    await b.rope(got, tokens, heads, headDim, positions, table);
    assertClose(got, want, 1e-6, `rope ${tokens}x${heads}x${headDim}`);
  }
  assertNoFallbacks(b);
});

test('rope over more tokens than one scratch holds runs the kernel in passes', async () => {
  const b = await backend(1);
  const r = seededRandom(4);
  const [heads, headDim] = [64, 64];
  const half = headDim / 2;
  // Each token needs (64*64 + 64) floats of scratch when x is copied in: this is about 1.1 scratches.
  const tokens = Math.ceil((1.1 * SCRATCH_BYTES) / ((heads * headDim + 2 * half) * 4));
  const table: RopeTable = { cos: randomF32(tokens * half, r), sin: randomF32(tokens * half, r), halfDim: half, positions: tokens };
  const positions = Int32Array.from({ length: tokens }, (_, i) => i);
  const x = randomF32(tokens * heads * headDim, r);
  const want = Float32Array.from(x);
  reference.rope(want, tokens, heads, headDim, positions, table);
  await b.rope(x, tokens, heads, headDim, positions, table);
  assertClose(x, want, 1e-6, `rope over ${tokens} tokens`);
  assertNoFallbacks(b);
});

test('argmax over 201088 logits finds the first maximum', async () => {
  const b = await backend(1);
  const r = seededRandom(9);
  const logits = randomF32(201088, r);
  logits[150001] = 7;
  logits[190000] = 7;
  assert.equal(b.argmax(logits), 150001);
  const ls = f32In(b, logits.length, 'logits'); ls.set(logits);
  ls[5] = 9;
  assert.equal(b.argmax(ls), 5);
});

test('argmax over more logits than one scratch holds keeps the first maximum across pieces', async () => {
  const b = await backend(1);
  const piece = SCRATCH_BYTES / 4;
  const logits = new Float32Array(piece + 1000);
  logits[piece + 10] = 3;
  assert.equal(b.argmax(logits), piece + 10, 'the maximum in the second piece');
  logits[20] = 3;
  assert.equal(b.argmax(logits), 20, 'a tie: the first one');
  logits[piece + 999] = 4;
  assert.equal(b.argmax(logits), piece + 999, 'the last element');
});

test('a weight outside the store runs the reference code and is counted as a fallback', async () => {
  const b = await backend(1);
  const r = seededRandom(8);
  const rows = 5, cols = 7;
  const data = new Uint16Array(rows * cols).map(() => 0x3f80 + Math.floor(r() * 64));
  const w: Bf16Matrix = { rows, cols, data };
  const x = randomF32(2 * cols, r);
  const want = new Float32Array(2 * rows), got = new Float32Array(2 * rows);
  reference.linear(x, 2, w, null, want);
  const before = b.fallbacks.linear;
  await b.linear(x, 2, w, null, got);
  assertClose(got, want, 1e-6, 'linear on a weight outside the store');
  assert.equal(b.fallbacks.linear, before + 1);
  assert.deepEqual({ ...b.fallbacks, linear: 0 }, { linear: 0, attention: 0, experts: 0 });
});

test('q8 experts at the extremes of the byte dots (largest FP4 code against activations of +-127) match the reference', async () => {
  // Every weight +6 (the largest shifted code, 24, in the relaxed build) and every activation
  // of a token one value, so each quantises to +-127 exactly: a four-row byte dot's i16 sums then
  // reach their bound (4 x 2 x 24 x 127 = 24,384) in both signs, and an overflow would wrap.
  // Eight tokens on each of two experts (rows expanded, the prefill pass) and two tokens on
  // experts of their own (packed rows read directly, the decode pass).
  const [experts, k, hidden, inter] = [4, 2, 128, 64];
  for (const relaxed of [true, false]) {
    const b = await backend(2, false, 'q8', relaxed);
    const weights = (rows: number, cols: number): Mxfp4Matrices => {
      const m = mxfp4(b, experts, rows, cols, seededRandom(1));
      m.blocks.fill(0x77);
      m.scales.fill(123); // 2^-4
      return m;
    };
    const moe: ExpertWeights = {
      mlp1Weight: weights(2 * inter, hidden), mlp1Bias: new Float32Array(experts * 2 * inter),
      mlp2Weight: weights(hidden, inter), mlp2Bias: new Float32Array(experts * hidden),
    };
    for (const [tokens, expertOf] of [[8, (i: number) => i % k], [2, (i: number) => i]] as const) {
      const x = Float32Array.from({ length: tokens * hidden }, (_, i) => (Math.floor(i / hidden) % 2 === 0 ? 1 : -1));
      const indices = Int32Array.from({ length: tokens * k }, (_, i) => expertOf(i));
      const routing = new Float32Array(tokens * k).fill(0.5);
      const want = new Float32Array(tokens * hidden), got = new Float32Array(tokens * hidden);
      reference.experts(x, tokens, indices, routing, k, moe, 1e9, want); // no clamp: the dots' full range reaches mlp2
      await b.experts(x, tokens, indices, routing, k, moe, 1e9, got);
      assert.ok(want[0]! > 5e4, `the case reaches large outputs (${want[0]})`);
      assertClose(got, want, 1e-5, `extreme q8 experts, ${tokens} tokens, ${relaxed ? 'relaxed' : 'baseline'} build`);
    }
    assertNoFallbacks(b);
  }
});

test('experts whose MXFP4 scales landed in another memory than their blocks still match', async () => {
  const b = await backend(2, true);
  const r = seededRandom(77);
  const [tokens, experts, k, hidden, inter] = [5, 4, 2, 64, 32];
  // Fill the first memory so mlp1's blocks end it exactly and its scales open the next memory.
  const blocks1 = experts * 2 * inter * (hidden / 32) * 16;
  const capacity = 65536 - b.store.reserve;
  b.store.allocate(capacity - blocks1, 'filler');
  const mlp1 = mxfp4(b, experts, 2 * inter, hidden, r);
  const mlp2 = mxfp4(b, experts, hidden, inter, r);
  assert.notEqual(b.store.locate(mlp1.blocks)!.memory, b.store.locate(mlp1.scales)!.memory, 'blocks and scales are in different memories');
  const moe: ExpertWeights = {
    mlp1Weight: mlp1, mlp1Bias: randomF32(experts * 2 * inter, r), mlp2Weight: mlp2, mlp2Bias: randomF32(experts * hidden, r),
  };
  const x = randomF32(tokens * hidden, r);
  const indices = Int32Array.from({ length: tokens * k }, (_, i) => (i * 3 + (i >> 1)) % experts);
  for (let t = 0; t < tokens; t++) if (indices[t * k] === indices[t * k + 1]) indices[t * k + 1] = (indices[t * k]! + 1) % experts;
  const weights = Float32Array.from({ length: tokens * k }, () => r());
  const want = new Float32Array(tokens * hidden);
  reference.experts(x, tokens, indices, weights, k, moe, 7, want);
  const got = new Float32Array(tokens * hidden);
  await b.experts(x, tokens, indices, weights, k, moe, 7, got);
  assertClose(got, want, 2e-5, 'experts with split blocks/scales');
});
