// The local engine's KV cache against full recomputation: prefill vs token-by-token decode,
// chunked prefill, sequences far beyond the sliding window (banded rings stay bounded),
// truncate + re-feed (served from the cache, or recomputed when the ring lost the window),
// batches of several sequences, and the errors a caller can cause. The bf16 KV cache is held to the
// same recomputation tolerances: decode and prefill attend to the same rounded entries.
import { after, before, describe, it, test } from 'node:test';
import assert from 'node:assert/strict';
import { UserError } from '../../src/errors.ts';
import { loadEngine, resolveKvCacheType, type LocalEngine } from '../../src/engine/local.ts';
import type { Sequence } from '../../src/engine/engine.ts';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { toOriginalConfigJson } from '../../src/model/config.ts';
import { SHAPES } from '../../src/checkpoint/synth.ts';

const GQA = new URL('../fixtures/golden/gqa4-l2-e8k4/', import.meta.url).pathname; // window 4, vocab 512
const MQA = new URL('../fixtures/golden/mqa-l4-e6k3/', import.meta.url).pathname; // window 8, 4 layers

function tokens(n: number, seed: number, vocab = 300): number[] {
  const out: number[] = [];
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    out.push(s % vocab);
  }
  return out;
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Logits at every position computed in one pass over a fresh sequence (the recomputation oracle). */
async function oneShot(engine: LocalEngine, ids: number[]): Promise<Float32Array[]> {
  const seq = engine.createSequence();
  const all = await engine.stepAll(seq, ids);
  engine.release(seq);
  const V = engine.info.vocabSize;
  return ids.map((_, p) => all.slice(p * V, (p + 1) * V));
}

// Reference backend: only the summation order inside attention differs (ring vs chunk order).
// The wasm backend also blocks its sums by batch size, so results vary a little more with T.
const TOLERANCE = { reference: 2e-5, wasm: 3e-4 } as const;
type BackendName = keyof typeof TOLERANCE;
// With a bf16 cache, the wasm backend's keys differ across T in their last f32 bits, and an entry
// that lands near a bf16 rounding tie can round either way: one bf16 step (2^-8 relative) in a few
// entries, about 1e-2 on these logits (of size ~9). The reference's sums do not depend on T.
const BF16_TOLERANCE = { reference: 2e-5, wasm: 2e-2 } as const;

const CASES = [
  ['gqa4 (window 4)', GQA, 'reference', 'f32'], ['mqa (window 8, 4 layers)', MQA, 'reference', 'f32'], ['mqa (window 8, 4 layers)', MQA, 'wasm', 'f32'],
  ['gqa4 (window 4)', GQA, 'reference', 'bf16'], ['mqa (window 8, 4 layers)', MQA, 'wasm', 'bf16'],
] as const;
for (const [label, dir, backend, kvCacheType] of CASES) {
  const TOL = (kvCacheType === 'bf16' ? BF16_TOLERANCE : TOLERANCE)[backend];
  describe(`local engine KV cache: ${label}, ${backend} backend, ${kvCacheType} cache`, () => {
    let engine: LocalEngine;
    before(async () => {
      engine = await loadEngine(dir, { backend, threads: 2, kvRewind: 0, expertActivations: 'split', kvCacheType });
      assert.equal(engine.model.kvCacheType, kvCacheType);
    });
    after(() => engine.close());

    it('token-by-token decode equals one-shot prefill at every position, far beyond the window', async () => {
      const ids = tokens(70, 1);
      const expected = await oneShot(engine, ids);
      const seq = engine.createSequence();
      for (const [p, id] of ids.entries()) {
        const [logits] = await engine.step([{ sequence: seq, tokens: [id] }]);
        assert.ok(maxDiff(logits!, expected[p]!) <= TOL, `position ${p}`);
      }
      assert.deepEqual(seq.tokens, ids);
      engine.release(seq);
    });

    it('chunks of mixed sizes equal one-shot prefill', async () => {
      const ids = tokens(60, 2);
      const expected = await oneShot(engine, ids);
      const seq = engine.createSequence();
      let p = 0;
      for (const size of [7, 1, 13, 2, 9, 1, 1, 20, 6]) {
        const [logits] = await engine.step([{ sequence: seq, tokens: ids.slice(p, p + size) }]);
        p += size;
        assert.ok(maxDiff(logits!, expected[p - 1]!) <= TOL, `after ${p} tokens`);
      }
      engine.release(seq);
    });

    it('a batch of sequences equals each sequence alone', async () => {
      const a = tokens(12, 3);
      const b = tokens(5, 4);
      const ea = await oneShot(engine, a);
      const eb = await oneShot(engine, b);
      const sa = engine.createSequence();
      const sb = engine.createSequence();
      const [la, lb] = await engine.step([{ sequence: sa, tokens: a }, { sequence: sb, tokens: b }]);
      assert.ok(maxDiff(la!, ea[11]!) <= TOL);
      assert.ok(maxDiff(lb!, eb[4]!) <= TOL);
      const [lb2, la2] = await engine.step([{ sequence: sb, tokens: [a[0]!] }, { sequence: sa, tokens: [b[0]!] }]);
      assert.ok(maxDiff(la2!, (await oneShot(engine, [...a, b[0]!]))[12]!) <= TOL);
      assert.ok(maxDiff(lb2!, (await oneShot(engine, [...b, a[0]!]))[5]!) <= TOL);
      engine.release(sa);
      engine.release(sb);
    });
  });
}

for (const backend of ['reference', 'wasm'] as BackendName[]) describe(`local engine: bounded banded caches, truncation, limits (${backend})`, () => {
  const TOL = TOLERANCE[backend];
  let engine: LocalEngine;
  before(async () => {
    engine = await loadEngine(GQA, { backend, threads: 2, kvRewind: 8, prefillChunk: 16, expertActivations: 'split' });
  });
  after(() => engine.close());

  const layers = (seq: Sequence) => (seq as unknown as { cache: { layers: { capacity: number; window: number }[] } }).cache.layers;

  it('banded layers keep a bounded ring while dense layers grow; prompts longer than a chunk are split', async () => {
    const ids = tokens(150, 5);
    const expected = await oneShot(engine, ids);
    const seq = engine.createSequence();
    const [first] = await engine.step([{ sequence: seq, tokens: ids.slice(0, 100) }]); // 7 chunks of <= 16
    assert.ok(maxDiff(first!, expected[99]!) <= TOL);
    for (let p = 100; p < 150; p++) await engine.step([{ sequence: seq, tokens: [ids[p]!] }]);
    const [banded, dense] = layers(seq);
    assert.equal(banded!.window, 4);
    assert.ok(banded!.capacity <= 4 - 1 + 8 + 16, `banded ring holds ${banded!.capacity} slots`);
    assert.equal(dense!.window, 0);
    assert.ok(dense!.capacity >= 150);
    engine.release(seq);
  });

  it('a batch larger than a chunk is packed into several passes with the same results', async () => {
    const prompts = [tokens(20, 11), tokens(9, 12), tokens(6, 13), tokens(1, 14), tokens(12, 15)];
    const expected = await Promise.all(prompts.map(async (p) => (await oneShot(engine, p))[p.length - 1]!));
    const seqs = prompts.map(() => engine.createSequence());
    const logits = await engine.step(prompts.map((p, i) => ({ sequence: seqs[i]!, tokens: p })));
    logits.forEach((l, i) => assert.ok(maxDiff(l, expected[i]!) <= TOL, `sequence ${i}`));
    for (const s of seqs) engine.release(s);
  });

  it('truncate + re-feed equals a fresh sequence, served from the cache within the rewind', async () => {
    const ids = tokens(40, 6);
    const other = tokens(10, 7);
    const seq = engine.createSequence();
    for (const id of ids) await engine.step([{ sequence: seq, tokens: [id] }]);
    const before = engine.recomputations;
    engine.truncate(seq, 34); // 6 back: within the 8-position rewind
    assert.equal(engine.recomputations, before);
    assert.deepEqual(seq.tokens, ids.slice(0, 34));
    const [logits] = await engine.step([{ sequence: seq, tokens: other }]);
    const fresh = await oneShot(engine, [...ids.slice(0, 34), ...other]);
    assert.ok(maxDiff(logits!, fresh[43]!) <= TOL);
    engine.release(seq);
  });

  it('truncating deeper than the ring holds recomputes, with the same result', async () => {
    const ids = tokens(40, 8);
    const other = tokens(3, 9);
    const seq = engine.createSequence();
    for (const id of ids) await engine.step([{ sequence: seq, tokens: [id] }]);
    const before = engine.recomputations;
    engine.truncate(seq, 20);
    assert.equal(engine.recomputations, before + 1);
    const [logits] = await engine.step([{ sequence: seq, tokens: other }]);
    const fresh = await oneShot(engine, [...ids.slice(0, 20), ...other]);
    assert.ok(maxDiff(logits!, fresh[22]!) <= TOL);
    assert.equal(seq.tokens.length, 23);
    engine.truncate(seq, 0);
    const [again] = await engine.step([{ sequence: seq, tokens: other }]);
    assert.ok(maxDiff(again!, (await oneShot(engine, other))[2]!) <= TOL);
    engine.release(seq);
  });

  it('a sequence released while its step is still to run keeps its cache until that step is done', async () => {
    const first = tokens(20, 8);
    const next = tokens(5, 9);
    const seq = engine.createSequence();
    await engine.step([{ sequence: seq, tokens: first }]);
    const pending = engine.step([{ sequence: seq, tokens: next }]);
    engine.release(seq); // before the step has run: it must still see the first 20 tokens' keys
    const [logits] = await pending;
    const fresh = await oneShot(engine, [...first, ...next]);
    assert.ok(maxDiff(logits!, fresh[first.length + next.length - 1]!) <= TOL);
    await assert.rejects(engine.step([{ sequence: seq, tokens: [1] }]), /was released/);
  });

  it('rejects out-of-vocabulary ids and over-long sequences without changing the sequence', async () => {
    const small = await loadEngine(GQA, { backend, threads: 1, contextLength: 10 });
    try {
      assert.equal(small.info.contextLength, 10);
      assert.equal(small.info.vocabSize, 512);
      const seq = small.createSequence();
      await assert.rejects(small.step([{ sequence: seq, tokens: [1, 512] }]), (e: unknown) => e instanceof UserError && e.kind === 'input' && e.message.includes('512'));
      await assert.rejects(small.step([{ sequence: seq, tokens: tokens(11, 1) }]), (e: unknown) => e instanceof UserError && e.kind === 'context');
      assert.equal(seq.tokens.length, 0);
      await small.step([{ sequence: seq, tokens: tokens(10, 1) }]);
      await assert.rejects(small.step([{ sequence: seq, tokens: [1] }]), (e: unknown) => e instanceof UserError && e.kind === 'context');
      small.release(seq);
      await assert.rejects(small.step([{ sequence: seq, tokens: [1] }]), /released/);
    } finally {
      await small.close();
    }
  });

  it('reports the model it serves', () => {
    assert.equal(engine.info.name, 'gqa4-l2-e8k4');
    assert.equal(engine.info.randomWeights, false);
    assert.equal(engine.info.contextLength, 512 * 32);
  });
});

describe('local engine: memory pre-flight', () => {
  it('refuses a model that cannot fit before reading any tensor, saying how much it needs', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gptoss-120b-'));
    try {
      // A 120b-wide config of 2000 layers (~3.6 TB) with no weights at all: the estimate stops the load first.
      writeFileSync(join(dir, 'config.json'), JSON.stringify(toOriginalConfigJson({ ...SHAPES['120b'], numLayers: 2000 })));
      await assert.rejects(loadEngine(dir, { backend: 'reference' }), (e: unknown) => {
        assert.ok(e instanceof UserError && e.kind === 'memory', String(e));
        assert.match(e.message, /needs about \d+(\.\d)? GB .*available/);
        return true;
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

test('the KV cache type: bf16 by default with q8 on wasm, f32 with split and on the other backends; bf16 refused on webgpu', () => {
  assert.equal(resolveKvCacheType({}), 'bf16');
  assert.equal(resolveKvCacheType({ expertActivations: 'split' }), 'f32');
  assert.equal(resolveKvCacheType({ backend: 'reference' }), 'f32');
  assert.equal(resolveKvCacheType({ backend: 'webgpu' }), 'f32');
  assert.equal(resolveKvCacheType({ backend: 'reference', kvCacheType: 'bf16' }), 'bf16');
  assert.throws(() => resolveKvCacheType({ backend: 'webgpu', kvCacheType: 'bf16' }), (e: unknown) => e instanceof UserError && /webgpu backend keeps an f32 KV cache/.test(e.message));
});

test('the wasm backend refuses the webgpu backend\'s f16 expert activations in one line', async () => {
  await assert.rejects(loadEngine(GQA, { backend: 'wasm', threads: 1, expertActivations: 'f16' }), (e: unknown) =>
    e instanceof UserError && e.message === "expert activations 'f16' are the webgpu backend's: the wasm backend takes q8, split or f32");
});
