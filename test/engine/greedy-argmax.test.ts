// Greedy decoding through Engine.stepArgmax: the engine hands back the largest logit's id instead
// of the logits, and generate takes it only where the logits are not needed otherwise (greedy,
// no logprobs, no processors, no penalties). The tokens are those the logits would give; on webgpu
// a decode step then reads back 4 bytes. The webgpu case skips with the reason when no adapter
// exists at all, unless GPTOSS_REQUIRE_WEBGPU=1.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DelegatingEngine } from '../../src/engine/engine.ts';
import { generate } from '../../src/engine/generate.ts';
import { loadEngine, type LocalEngine } from '../../src/engine/local.ts';
import { webGpuAvailable } from '../../src/kernels/webgpu/device.ts';
import type { WebGpuBackend } from '../../src/kernels/webgpu/index.ts';

const DIR = new URL('../fixtures/golden/gqa4-l2-e8k4/', import.meta.url).pathname;
const PROMPT = [3, 1, 4, 1, 5, 9, 2, 6];
const GREEDY = { sampling: { temperature: 0 }, maxTokens: 8, stopTokens: [] };

/** Counts the engine's stepArgmax calls. */
function counting(engine: LocalEngine): { calls: number } {
  const count = { calls: 0 };
  const inner = engine.stepArgmax.bind(engine);
  engine.stepArgmax = (request) => {
    count.calls++;
    return inner(request);
  };
  return count;
}

describe('greedy decoding through stepArgmax', () => {
  let engine: LocalEngine;
  before(async () => {
    engine = await loadEngine(DIR, { backend: 'reference' });
  });
  after(async () => {
    await engine?.close();
  });

  it('gives the tokens the logits give, and is used only for plain greedy decoding', async () => {
    const count = counting(engine);
    const fast = await generate(engine, engine.createSequence(), PROMPT, GREEDY);
    assert.equal(fast.tokens.length, 8);
    assert.equal(count.calls, 7, 'every decode step after the prompt');
    // A wrapper hides stepArgmax (it may change the logits): the logits path, same tokens.
    const slow = await generate(new DelegatingEngine(engine), engine.createSequence(), PROMPT, GREEDY);
    assert.deepEqual(fast.tokens, slow.tokens);
    count.calls = 0;
    const withLogprobs = await generate(engine, engine.createSequence(), PROMPT, { ...GREEDY, logprobs: true });
    const sampled = await generate(engine, engine.createSequence(), PROMPT, { ...GREEDY, sampling: { temperature: 0.7 }, seed: 1 });
    const penalised = await generate(engine, engine.createSequence(), PROMPT, { ...GREEDY, sampling: { temperature: 0, presencePenalty: 0.5 } });
    assert.equal(count.calls, 0);
    assert.deepEqual(withLogprobs.tokens, fast.tokens);
    assert.equal(sampled.tokens.length + penalised.tokens.length, 16);
  });
});

const available = await webGpuAvailable();
if (!available.ok && process.env.GPTOSS_REQUIRE_WEBGPU === '1') throw new Error(`GPTOSS_REQUIRE_WEBGPU=1 but ${available.reason}`);

describe('greedy decoding on webgpu', { skip: available.ok ? false : `no WebGPU adapter: ${available.ok ? '' : available.reason}` }, () => {
  it('reads back 4 bytes per decoded token and matches the reference', async () => {
    const gpu = await loadEngine(DIR, { backend: 'webgpu', expertActivations: 'split' });
    const ref = await loadEngine(DIR, { backend: 'reference' });
    try {
      const backend = gpu.backend as WebGpuBackend;
      // The prompt alone (its logits, and in prefill the routing read back to group tokens by expert),
      // then the prompt and 7 decode steps.
      let before = backend.transfers.down;
      await generate(gpu, gpu.createSequence(), PROMPT, { ...GREEDY, maxTokens: 1 });
      const prompt = backend.transfers.down - before;
      before = backend.transfers.down;
      const got = await generate(gpu, gpu.createSequence(), PROMPT, GREEDY);
      assert.equal(backend.transfers.down - before - prompt, 7 * 4);
      assert.deepEqual(got.tokens, (await generate(ref, ref.createSequence(), PROMPT, GREEDY)).tokens);
    } finally {
      await gpu.close();
      await ref.close();
    }
  });
});
