// The server samples a request that sets no temperature or top_p with the model's defaults (its
// generation_config.json, carried as EngineInfo.sampling), and a request's own fields win; the
// Responses API echoes the values the request ran with.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { GenerationDefaults } from '../../src/checkpoint/generation.ts';
import { DelegatingEngine, type StepRequest } from '../../src/engine/engine.ts';
import { RandomLogitEngine, startServer } from './helpers.ts';

/**
 * Random logits write no harmony, so the answers are empty: what a request sampled is read from
 * the tokens fed back to the model. The last ten fed are generated tokens (the prompt comes first).
 */
class FedTokens extends DelegatingEngine {
  fed: number[] = [];
  override step(batch: readonly StepRequest[]): Promise<Float32Array[]> {
    for (const r of batch) this.fed.push(...r.tokens);
    return this.inner.step(batch);
  }
  take(): string {
    const tail = this.fed.slice(-10);
    this.fed = [];
    return tail.join(',');
  }
}

async function serve(sampling: GenerationDefaults | undefined) {
  const inner = new RandomLogitEngine(9);
  if (sampling !== undefined) inner.info.sampling = sampling;
  const engine = new FedTokens(inner);
  return { engine, ...(await startServer(engine, { modelName: 'random' })) };
}

type Fields = { temperature?: number; top_p?: number; seed?: number };

test('Chat Completions: unset temperature/top_p take the model defaults; the request fields win', async () => {
  const plain = await serve(undefined);
  const greedyModel = await serve({ temperature: 0 });
  const coolModel = await serve({ temperature: 0.5, topP: 0.9 });
  const ask = async (s: typeof plain, fields: Fields): Promise<string> => {
    const r = await s.client.chat.completions.create({ model: 'random', messages: [{ role: 'user', content: 'hi' }], max_tokens: 12, ...fields });
    assert.equal(r.usage!.completion_tokens, 12);
    return s.engine.take();
  };
  try {
    const greedy = await ask(plain, { temperature: 0 });
    const sampled = await ask(plain, { seed: 4 });
    const cool = await ask(plain, { temperature: 0.5, top_p: 0.9, seed: 4 });
    assert.notEqual(sampled, greedy);
    assert.notEqual(cool, sampled);
    assert.equal(await ask(plain, { temperature: 1, top_p: 1, seed: 4 }), sampled);

    assert.equal(await ask(greedyModel, { seed: 4 }), greedy);
    assert.equal(await ask(greedyModel, { seed: 8 }), greedy);
    assert.equal(await ask(greedyModel, { temperature: 1, seed: 4 }), sampled);

    assert.equal(await ask(coolModel, { seed: 4 }), cool);
    assert.equal(await ask(coolModel, { temperature: 1, top_p: 1, seed: 4 }), sampled);
    assert.equal(await ask(coolModel, { temperature: 0 }), greedy);
  } finally {
    await Promise.all([plain.close(), greedyModel.close(), coolModel.close()]);
  }
});

test('Responses: the model defaults apply and are echoed; the request fields win', async () => {
  const plain = await serve(undefined);
  const coolModel = await serve({ temperature: 0.5, topP: 0.9 });
  const ask = async (s: typeof plain, fields: Fields): Promise<{ tokens: string; temperature: number | null; topP: number | null }> => {
    const r = await s.client.responses.create({ model: 'random', input: 'hi', max_output_tokens: 12, ...fields });
    assert.equal(r.usage!.output_tokens, 12);
    return { tokens: s.engine.take(), temperature: r.temperature, topP: r.top_p };
  };
  try {
    const cool = await ask(plain, { temperature: 0.5, top_p: 0.9, seed: 4 });
    const sampled = await ask(plain, { seed: 4 });
    assert.deepEqual([sampled.temperature, sampled.topP], [1, 1]);
    assert.notEqual(cool.tokens, sampled.tokens);
    const byDefault = await ask(coolModel, { seed: 4 });
    assert.deepEqual(byDefault, { ...cool, temperature: 0.5, topP: 0.9 });
    const overridden = await ask(coolModel, { temperature: 1, top_p: 1, seed: 4 });
    assert.deepEqual(overridden, { ...sampled, temperature: 1, topP: 1 });
  } finally {
    await Promise.all([plain.close(), coolModel.close()]);
  }
});
