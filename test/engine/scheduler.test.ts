import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BatchingEngine, CancelledError } from '../../src/engine/scheduler.ts';
import type { Engine } from '../../src/engine/engine.ts';
import { HashEngine, argmax } from '../server/helpers.ts';

/** Greedy generation of `n` tokens after `prompt` on any engine. */
async function greedy(engine: Engine, prompt: number[], n: number, sequence = engine.createSequence()): Promise<number[]> {
  const out: number[] = [];
  let feed = prompt.slice(sequence.tokens.length);
  for (let i = 0; i < n; i++) {
    const [logits] = await engine.step([{ sequence, tokens: feed }]);
    const next = argmax(logits!);
    out.push(next);
    feed = [next];
  }
  engine.release(sequence);
  return out;
}

const prompts = Array.from({ length: 6 }, (_, k) => Array.from({ length: 40 + 37 * k }, (_, i) => (i * 7 + k) % 97));

test('concurrent generations are batched and equal the sequential results', async () => {
  const sequential = [];
  for (const p of prompts) sequential.push(await greedy(new HashEngine(), p, 12));
  const inner = new HashEngine();
  const batching = new BatchingEngine(inner, { maxBatchTokens: 64, prefillChunk: 32, poolSize: 0 });
  const batched = await Promise.all(prompts.map((p) => greedy(batching, p, 12)));
  assert.deepEqual(batched, sequential);
  assert.ok(batching.stats.maxSequencesPerStep >= 4, `max ${batching.stats.maxSequencesPerStep} sequences per step`);
  // Long prompts were split into chunks and no inner step exceeded the token budget.
  for (const b of inner.batches) assert.ok(b.reduce((s, r) => s + r.tokens, 0) <= 64);
  assert.ok(inner.batches.some((b) => b.some((r) => r.tokens === 1) && b.some((r) => r.tokens > 1)), 'a prefill chunk shared a step with decodes');
  assert.equal(inner.live, 0);
});

test('prefix caching reuses a released sequence and skips the shared prefill', async () => {
  const inner = new HashEngine();
  const batching = new BatchingEngine(inner, { poolSize: 2 });
  const system = Array.from({ length: 50 }, (_, i) => (i * 3) % 97);
  const first = [...system, 1, 2, 3];
  const second = [...system, 9, 9];
  await greedy(batching, first, 3, batching.acquire(first));
  const before = batching.stats.tokensProcessed;
  const seq = batching.acquire(second);
  assert.equal(seq.tokens.length, 50);
  const out = await greedy(batching, second, 3, seq);
  assert.equal(batching.stats.tokensProcessed - before, 2 + 2); // the 2-token suffix, then 2 decodes
  assert.deepEqual(out, await greedy(new HashEngine(), second, 3));
  await batching.close();
});

test('releasing a sequence with a pending step cancels it and frees it at once', async () => {
  const inner = new HashEngine();
  const batching = new BatchingEngine(inner, { poolSize: 4 });
  const seq = batching.createSequence();
  const pending = batching.step([{ sequence: seq, tokens: [1, 2, 3] }]);
  batching.discard(seq);
  await assert.rejects(pending, CancelledError);
  assert.equal(inner.live, 0);
  assert.equal(batching.activeSequences, 0);
  // The cancelled work never reaches the engine: the next step runs alone.
  const other = batching.createSequence();
  await batching.step([{ sequence: other, tokens: [4] }]);
  assert.deepEqual(inner.batches, [[{ sequence: other.id, tokens: 1 }]]);
});

test('a prompt over the context window is a context error before any work', async () => {
  const batching = new BatchingEngine(new HashEngine(97, 100));
  const seq = batching.createSequence();
  await assert.rejects(batching.step([{ sequence: seq, tokens: new Array(101).fill(1) }]), /context window/);
});
