// Sampling where the logits are. Top-k through Engine.stepTopK: the engine hands back the k
// largest logits, generate draws from them (sampleTopK); plain sampling through Engine.stepDraw:
// the engine draws by slices for generate's random number. Both only where nothing else needs the
// logits, and the same seed gives the tokens the whole logits give. On webgpu a decode step then
// reads back k (id, logit) pairs, or the slice sums and one slice. The webgpu case skips with the reason when no adapter exists at all, unless
// GPTOSS_REQUIRE_WEBGPU=1.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DelegatingEngine } from '../../src/engine/engine.ts';
import { generate } from '../../src/engine/generate.ts';
import { loadEngine, type LocalEngine } from '../../src/engine/local.ts';
import { Rng, candidates, sampleTopK, samplingParams, sampleToken, topIndices } from '../../src/engine/sampler.ts';
import { DRAW_SLICE, landingSlice, walkSlice } from '../../src/model/draw.ts';
import { hostGlue } from '../../src/model/glue.ts';
import { seededRandom } from '../../src/random.ts';
import { webGpuAvailable } from '../../src/kernels/webgpu/device.ts';
import type { WebGpuBackend } from '../../src/kernels/webgpu/index.ts';

const DIR = new URL('../fixtures/golden/gqa4-l2-e8k4/', import.meta.url).pathname;
const PROMPT = [3, 1, 4, 1, 5, 9, 2, 6];
const SAMPLED = { sampling: { temperature: 0.9, topK: 7, topP: 0.95 }, maxTokens: 8, stopTokens: [] };

/** Counts the engine's stepTopK calls. */
function counting(engine: LocalEngine): { calls: number } {
  const count = { calls: 0 };
  const inner = engine.stepTopK.bind(engine);
  engine.stepTopK = (request, k) => {
    count.calls++;
    return inner(request, k);
  };
  return count;
}

it('sampleTopK draws what sampleToken draws from the whole logits, for the same random state', () => {
  const r = seededRandom(9);
  for (const params of [{ topK: 5 }, { topK: 40, topP: 0.8 }, { topK: 3, minP: 0.2, temperature: 0.5 }, { topK: 12, topP: 0.5, minP: 0.05, temperature: 1.7 }]) {
    const p = samplingParams(params);
    for (let trial = 0; trial < 20; trial++) {
      const logits = Float32Array.from({ length: 300 }, () => Math.round((r() * 8 - 4) * 4) / 4); // ties on purpose
      logits[17] = -Infinity;
      const ids = new Int32Array(p.topK), values = new Float32Array(p.topK);
      hostGlue.topK(logits, logits.length, p.topK, ids, values);
      assert.deepEqual(Array.from(ids), topIndices(logits, p.topK));
      const a = new Rng(trial), b = new Rng(trial);
      assert.equal(sampleTopK(ids, values, p, a), sampleToken(logits, p, b).token, JSON.stringify(params));
      assert.equal(a.nextU32(), b.nextU32(), 'the same random numbers were used');
    }
  }
  // Fewer finite logits than k: the ids end in -1 and the draw stays among the finite ones.
  const sparse = new Float32Array(10).fill(-Infinity);
  sparse[4] = 1;
  sparse[7] = 2;
  const ids = new Int32Array(5), values = new Float32Array(5);
  hostGlue.topK(sparse, 10, 5, ids, values);
  assert.deepEqual(Array.from(ids), [7, 4, -1, -1, -1]);
  assert.deepEqual(candidates(sparse, samplingParams({ topK: 5 })).ids, [7, 4]);
  assert.ok([4, 7].includes(sampleTopK(ids, values, samplingParams({ topK: 5 }), new Rng(1))));
});

describe('top-k sampling through stepTopK', () => {
  let engine: LocalEngine;
  before(async () => {
    engine = await loadEngine(DIR, { backend: 'reference' });
  });
  after(async () => {
    await engine?.close();
  });

  it('gives the tokens the logits give for a seed, and is used only where the top k decide the token', async () => {
    const count = counting(engine);
    const fast = await generate(engine, engine.createSequence(), PROMPT, { ...SAMPLED, seed: 5 });
    assert.equal(fast.tokens.length, 8);
    assert.equal(count.calls, 7, 'every decode step after the prompt');
    // A wrapper hides stepTopK: the logits path, the same tokens for the same seed.
    const slow = await generate(new DelegatingEngine(engine), engine.createSequence(), PROMPT, { ...SAMPLED, seed: 5 });
    assert.deepEqual(fast.tokens, slow.tokens);
    count.calls = 0;
    await generate(engine, engine.createSequence(), PROMPT, { ...SAMPLED, seed: 5, logprobs: true });
    await generate(engine, engine.createSequence(), PROMPT, { ...SAMPLED, sampling: { temperature: 1 }, seed: 5 });
    await generate(engine, engine.createSequence(), PROMPT, { ...SAMPLED, sampling: { ...SAMPLED.sampling, presencePenalty: 0.5 }, seed: 5 });
    await generate(engine, engine.createSequence(), PROMPT, { ...SAMPLED, sampling: { temperature: 1, topK: 257 }, seed: 5 });
    assert.equal(count.calls, 0, 'logprobs, no top-k, penalties and a k past the limit take the logits');
  });
});

const available = await webGpuAvailable();
if (!available.ok && process.env.GPTOSS_REQUIRE_WEBGPU === '1') throw new Error(`GPTOSS_REQUIRE_WEBGPU=1 but ${available.reason}`);

describe('top-k sampling on webgpu', { skip: available.ok ? false : `no WebGPU adapter: ${available.ok ? '' : available.reason}` }, () => {
  it('reads back k (id, logit) pairs per decoded token and gives the CPU path\'s tokens for a seed', async () => {
    const gpu = await loadEngine(DIR, { backend: 'webgpu', expertActivations: 'split' });
    const ref = await loadEngine(DIR, { backend: 'reference' });
    try {
      const backend = gpu.backend as WebGpuBackend;
      let before = backend.transfers.down;
      await generate(gpu, gpu.createSequence(), PROMPT, { ...SAMPLED, maxTokens: 1, seed: 2 });
      const prompt = backend.transfers.down - before;
      before = backend.transfers.down;
      const got = await generate(gpu, gpu.createSequence(), PROMPT, { ...SAMPLED, seed: 2 });
      assert.equal(backend.transfers.down - before - prompt, 7 * 2 * 7 * 4, '7 steps of 7 ids and 7 logits');
      assert.deepEqual(got.tokens, (await generate(new DelegatingEngine(ref), ref.createSequence(), PROMPT, { ...SAMPLED, seed: 2 })).tokens);
      // The GPU's top k against the host's on the same logits (ties and all), over a larger k.
      const seq = gpu.createSequence();
      const [logits] = await gpu.step([{ sequence: seq, tokens: PROMPT }]);
      const seq2 = gpu.createSequence();
      const top = await gpu.stepTopK({ sequence: seq2, tokens: PROMPT }, 200);
      assert.deepEqual(Array.from(top.ids).filter((i) => i >= 0), topIndices(logits!, 200));
      assert.deepEqual(Array.from(top.values.subarray(0, 5)), topIndices(logits!, 5).map((i) => logits![i]!));
    } finally {
      await gpu.close();
      await ref.close();
    }
  });
});

// Plain sampling (a temperature only) through Engine.stepDraw: the engine sums the weights by
// slices where the logits are, and reads back only the slice the draw lands in.
it('a draw by slices picks what sampleToken draws from the whole logits for the same random number', () => {
  const r = seededRandom(12);
  for (const temperature of [0.3, 1, 2.5]) {
    const p = samplingParams({ temperature });
    for (let trial = 0; trial < 30; trial++) {
      const V = 200 + Math.floor(r() * 900); // 1 to 5 slices, the last one ragged
      const logits = Float32Array.from({ length: V }, () => (r() * 2 - 1) * 6);
      if (trial % 3 === 0) logits.fill(-Infinity, 0, Math.floor(V / 2)); // whole slices of zero weight
      const top = new Int32Array(1);
      hostGlue.argmax(logits, 1, V, top);
      const slices = Math.ceil(V / DRAW_SLICE);
      const sums = new Float32Array(slices + 1);
      hostGlue.sliceWeights(logits, V, DRAW_SLICE, 1 / temperature, top, sums);
      assert.equal(sums[slices], logits[top[0]!]);
      const rng = new Rng(trial), u = new Rng(trial).nextFloat();
      const { slice, before, target } = landingSlice(sums.subarray(0, slices), u);
      const first = slice * DRAW_SLICE;
      const got = walkSlice(logits.subarray(first, Math.min(V, first + DRAW_SLICE)), first, logits[top[0]!]!, 1 / temperature, before, target);
      assert.equal(got, sampleToken(logits, p, rng).token, `T=${temperature} trial ${trial}`);
    }
  }
});

describe('plain sampling through stepDraw', () => {
  it('gives the tokens the logits give for a seed, and only for plain sampling', async () => {
    const engine = await loadEngine(DIR, { backend: 'reference' });
    try {
      let calls = 0;
      const inner = engine.stepDraw.bind(engine);
      engine.stepDraw = (request, draw) => {
        calls++;
        return inner(request, draw);
      };
      const plain = { sampling: { temperature: 1.3 }, maxTokens: 8, stopTokens: [], seed: 21 };
      const fast = await generate(engine, engine.createSequence(), PROMPT, plain);
      assert.equal(calls, 7);
      assert.deepEqual(fast.tokens, (await generate(new DelegatingEngine(engine), engine.createSequence(), PROMPT, plain)).tokens);
      calls = 0;
      await generate(engine, engine.createSequence(), PROMPT, { ...plain, sampling: { temperature: 1, topP: 0.9 } });
      await generate(engine, engine.createSequence(), PROMPT, { ...plain, sampling: { temperature: 1, minP: 0.1 } });
      await generate(engine, engine.createSequence(), PROMPT, { ...plain, logprobs: true });
      assert.equal(calls, 0, 'top-p, min-p and logprobs take the logits');
    } finally {
      await engine.close();
    }
  });
});

describe('plain sampling on webgpu', { skip: available.ok ? false : `no WebGPU adapter: ${available.ok ? '' : available.reason}` }, () => {
  it('reads back the slice sums and one slice per decoded token, and gives the CPU path\'s tokens for a seed', async () => {
    const gpu = await loadEngine(DIR, { backend: 'webgpu', expertActivations: 'split' });
    const ref = await loadEngine(DIR, { backend: 'reference' });
    try {
      const plain = { sampling: { temperature: 1.1 }, maxTokens: 8, stopTokens: [], seed: 8 };
      const backend = gpu.backend as WebGpuBackend;
      const V = gpu.info.vocabSize;
      let before = backend.transfers.down;
      await generate(gpu, gpu.createSequence(), PROMPT, { ...plain, maxTokens: 1 });
      const prompt = backend.transfers.down - before;
      before = backend.transfers.down;
      const got = await generate(gpu, gpu.createSequence(), PROMPT, plain);
      // Per step: the argmax (4 bytes), the slice sums and the largest logit, and one slice of logits
      // (here 2 slices of 256: half the row).
      assert.equal(backend.transfers.down - before - prompt, 7 * (4 + (Math.ceil(V / DRAW_SLICE) + 1) * 4 + DRAW_SLICE * 4));
      assert.deepEqual(got.tokens, (await generate(new DelegatingEngine(ref), ref.createSequence(), PROMPT, plain)).tokens);
    } finally {
      await gpu.close();
      await ref.close();
    }
  });
});
