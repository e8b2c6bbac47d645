// Sampler properties with computed expectations: greedy, seeded reproducibility, the empirical
// distribution, temperature, top-k / top-p / min-p masks, penalties, processors and logprobs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UserError } from '../../src/errors.ts';
import { Rng, Sampler, applyPenalties, candidates, samplingParams, sampleToken, topIndices } from '../../src/engine/sampler.ts';

const fromProbs = (probs: number[]): Float32Array => new Float32Array(probs.map((p) => Math.log(p)));

function randomLogits(n: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (rng.nextFloat() - 0.5) * 20;
  return out;
}

test('temperature 0 is greedy: the largest logit, lowest id on ties, whatever the rng', () => {
  const logits = new Float32Array([0.5, 3, -1, 3, 2.9]);
  const params = samplingParams({ temperature: 0 });
  for (let seed = 0; seed < 20; seed++) assert.equal(sampleToken(logits, params, new Rng(seed)).token, 1);
});

test('the same seed reproduces the same tokens; different seeds differ', () => {
  const logits = randomLogits(1000, 7);
  const run = (seed: number): number[] => {
    const s = new Sampler({ temperature: 1.3, topP: 0.95 }, seed);
    return Array.from({ length: 50 }, () => s.sample(logits).token);
  };
  assert.deepEqual(run(42), run(42));
  assert.notDeepEqual(run(42), run(43));
});

test('Rng: floats in [0,1) with mean 1/2, and integer seeds up to 2^53 are distinct', () => {
  const rng = new Rng(1);
  let sum = 0;
  for (let i = 0; i < 100000; i++) {
    const x = rng.nextFloat();
    assert.ok(x >= 0 && x < 1);
    sum += x;
  }
  assert.ok(Math.abs(sum / 100000 - 0.5) < 0.005);
  assert.notEqual(new Rng(2 ** 40).nextU32(), new Rng(2 ** 40 + 1).nextU32());
  assert.notEqual(new Rng(0).nextU32(), new Rng(2 ** 32).nextU32());
});

test('at temperature 1 the empirical frequencies follow softmax(logits)', () => {
  const probs = [0.1, 0.2, 0.3, 0.4];
  const s = new Sampler({}, 123);
  const counts = [0, 0, 0, 0];
  const n = 40000;
  for (let i = 0; i < n; i++) counts[s.sample(fromProbs(probs)).token]!++;
  for (let i = 0; i < 4; i++) assert.ok(Math.abs(counts[i]! / n - probs[i]!) < 0.01, `token ${i}: ${counts[i]! / n} vs ${probs[i]}`);
});

test('temperature T scales the logits: weights are p_i^(1/T) relative to the most likely token', () => {
  const probs = [0.1, 0.2, 0.3, 0.4];
  const { ids, weights } = candidates(fromProbs(probs), samplingParams({ temperature: 2 }));
  assert.deepEqual(ids, [0, 1, 2, 3]);
  for (let i = 0; i < 4; i++) assert.ok(Math.abs(weights[i]! - Math.sqrt(probs[i]! / 0.4)) < 1e-6);
});

test('top-k keeps the k most likely tokens', () => {
  const logits = new Float32Array([1, 5, 3, 5, -2, 4]);
  assert.deepEqual(candidates(logits, samplingParams({ topK: 3 })).ids, [1, 3, 5]);
  assert.deepEqual(candidates(logits, samplingParams({ topK: 1 })).ids, [1]);
  assert.equal(candidates(logits, samplingParams({ topK: 100 })).ids.length, 6);
  const big = randomLogits(50000, 3);
  const expected = Array.from(big.keys()).sort((a, b) => big[b]! - big[a]! || a - b).slice(0, 40);
  assert.deepEqual(topIndices(big, 40), expected);
});

test('top-p keeps the smallest most-likely set whose mass reaches p', () => {
  const logits = fromProbs([0.15, 0.5, 0.05, 0.3]);
  const ids = (topP: number): number[] => candidates(logits, samplingParams({ topP })).ids;
  assert.deepEqual(ids(0.5), [1]);
  assert.deepEqual(ids(0.79), [1, 3]);
  assert.deepEqual(ids(0.81), [1, 3, 0]);
  assert.deepEqual(ids(0.99), [1, 3, 0, 2]);
});

test('top-p over a full-size vocabulary equals the nucleus computed by sorting everything', () => {
  const logits = randomLogits(201088, 11);
  for (const [temperature, topP] of [[1, 0.9], [0.7, 0.5], [1.5, 0.99]] as const) {
    const order = Array.from(logits.keys()).sort((a, b) => logits[b]! - logits[a]! || a - b);
    const w = order.map((i) => Math.exp((logits[i]! - logits[order[0]!]!) / temperature));
    const total = w.reduce((a, b) => a + b, 0);
    let cum = 0;
    let keep = 0;
    while (cum < topP * total) cum += w[keep++]!;
    assert.deepEqual(candidates(logits, samplingParams({ temperature, topP })).ids, order.slice(0, keep));
  }
});

test('min-p drops tokens below minP times the top probability', () => {
  const logits = fromProbs([0.15, 0.5, 0.05, 0.3]);
  assert.deepEqual(candidates(logits, samplingParams({ minP: 0.25 })).ids, [0, 1, 3]);
  assert.deepEqual(candidates(logits, samplingParams({ minP: 0.35 })).ids, [1, 3]);
  assert.deepEqual(candidates(logits, samplingParams({ minP: 0.61 })).ids, [1]);
});

test('top-k then top-p then min-p compose', () => {
  const logits = fromProbs([0.35, 0.3, 0.2, 0.1, 0.05]);
  // top-k 3 renormalizes to [0.4118, 0.3529, 0.2353]; top-p 0.7 keeps two of them.
  assert.deepEqual(candidates(logits, samplingParams({ topK: 3, topP: 0.7 })).ids, [0, 1]);
  assert.deepEqual(candidates(logits, samplingParams({ topK: 3, minP: 0.6 })).ids, [0, 1]);
});

test('penalties follow the OpenAI and CTRL formulas on generated tokens', () => {
  const logits = new Float32Array([2, -1, 0.5, 3]);
  applyPenalties(logits, samplingParams({ frequencyPenalty: 0.5, presencePenalty: 0.25 }), [0, 0, 1, 0]);
  assert.deepEqual(Array.from(logits), [2 - 1.5 - 0.25, -1 - 0.5 - 0.25, 0.5, 3]);
  const rep = new Float32Array([2, -1, 0.5, 3]);
  applyPenalties(rep, samplingParams({ repetitionPenalty: 2 }), [0, 1, 1]);
  assert.deepEqual(Array.from(rep), [1, -2, 0.5, 3]);
  // The penalty changes the greedy choice: token 3 repeated three times falls below token 0.
  const s = new Sampler({ temperature: 0, frequencyPenalty: 0.5 }, 1);
  assert.equal(s.sample(new Float32Array([2, -1, 0.5, 3]), { generated: [3, 3, 3] }).token, 0);
});

test('processors mask tokens, see the generated tokens, and never touch the caller logits', () => {
  const logits = fromProbs([0.7, 0.1, 0.1, 0.1]);
  const seen: number[][] = [];
  const onlyThree = (l: Float32Array, generated: readonly number[]): void => {
    seen.push([...generated]);
    for (let i = 0; i < l.length; i++) if (i !== 3) l[i] = -Infinity;
  };
  const s = new Sampler({}, 5);
  for (let i = 0; i < 10; i++) assert.equal(s.sample(logits, { processors: [onlyThree], generated: [9, i] }).token, 3);
  assert.deepEqual(seen[4], [9, 4]);
  assert.ok(Math.abs(logits[0]! - Math.log(0.7)) < 1e-7);
  const none = (l: Float32Array): void => void l.fill(-Infinity);
  assert.throws(() => s.sample(logits, { processors: [none] }), UserError);
});

test('logprobs are log-softmax of the raw logits; top logprobs most likely first', () => {
  const probs = [0.1, 0.2, 0.3, 0.4];
  const r = sampleToken(fromProbs(probs), samplingParams({ temperature: 0 }), new Rng(0), { topLogprobs: 2 });
  assert.equal(r.token, 3);
  assert.ok(Math.abs(r.logprob! - Math.log(0.4)) < 1e-6);
  assert.deepEqual(r.topLogprobs!.map((t) => t.token), [3, 2]);
  assert.ok(Math.abs(r.topLogprobs![1]!.logprob - Math.log(0.3)) < 1e-6);
  assert.equal(sampleToken(fromProbs(probs), samplingParams(), new Rng(0)).logprob, undefined);
});

test('out-of-range parameters are user errors naming the field', () => {
  assert.throws(() => samplingParams({ temperature: -1 }), /temperature/);
  assert.throws(() => samplingParams({ topP: 0 }), /topP/);
  assert.throws(() => samplingParams({ topK: 1.5 }), /topK/);
  assert.throws(() => samplingParams({ presencePenalty: 3 }), /presencePenalty/);
  assert.deepEqual(samplingParams(), { temperature: 1, topP: 1, topK: 0, minP: 0, repetitionPenalty: 1, frequencyPenalty: 0, presencePenalty: 0 });
});
