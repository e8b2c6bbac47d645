// The server on a real engine: a synthetic checkpoint (tiny shape, full vocabulary, random weights)
// loaded by loadEngine and served through continuous batching. Random weights write no harmony,
// so these tests check what must hold for any model: shapes, limits, the rendered prompt, schema
// validity, and that batched requests get exactly what they would get alone.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import OpenAI from 'openai';
import { loadEngine } from '../../src/engine/local.ts';
import { tokensToText } from '../../src/harmony/index.ts';
import { SHAPES, synthesize } from '../../src/checkpoint/synth.ts';
import { RecordingEngine, startServer } from './helpers.ts';

let dir = '';
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'gptoss-serve-real-'));
  synthesize(SHAPES.tiny, dir, { seed: 11 });
});
after(() => rmSync(dir, { recursive: true, force: true }));

async function serve() {
  const engine = new RecordingEngine(await loadEngine(dir, { threads: 1, contextLength: 2048 }));
  const { server, running, client } = await startServer(engine, { modelName: 'tiny', log: (l) => { if (l.startsWith('internal')) console.error(l); } });
  return { engine, server, client, close: async () => { await running.close(); await server.engine.close(); } };
}

test('real engine: both APIs, streaming and not, limits, effort in the rendered prompt', async () => {
  const s = await serve();
  try {
    const r = await s.client.responses.create({ model: 'tiny', input: 'Hello', reasoning: { effort: 'low' }, max_output_tokens: 12, temperature: 0 });
    assert.ok(r.usage!.output_tokens <= 12 && r.usage!.output_tokens > 0);
    assert.ok(r.status === 'completed' || r.status === 'incomplete');
    const prompts = [...s.engine.fed.values()].map((t) => tokensToText(t));
    assert.ok(prompts.some((p) => p.startsWith('<|start|>system<|message|>') && p.includes('\nReasoning: low\n') && p.includes('<|start|>user<|message|>Hello<|end|><|start|>assistant')));

    const stream = await s.client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 10, stream: true, stream_options: { include_usage: true } });
    let usage: OpenAI.CompletionUsage | null | undefined;
    let finish: string | null = null;
    for await (const chunk of stream) {
      finish = chunk.choices[0]?.finish_reason ?? finish;
      usage = chunk.usage ?? usage;
    }
    assert.equal(usage?.completion_tokens, 10);
    assert.equal(finish, 'length');
  } finally {
    await s.close();
  }
});

test('real engine: concurrent requests are batched and each gets what it would get alone', async () => {
  const s = await serve();
  const ask = (content: string) => s.client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content }], max_tokens: 16, temperature: 0 });
  try {
    const words = ['apple', 'river', 'stone', 'cloud'];
    const alone = [];
    for (const w of words) alone.push(await ask(w));
    // Prefix caching: later requests reuse the system message the first one left in the pool.
    assert.ok(alone[1]!.usage!.prompt_tokens_details!.cached_tokens! > 20, JSON.stringify(alone[1]!.usage));
    const stepsBefore = s.server.engine.stats.steps;
    const together = await Promise.all(words.map(ask));
    const view = (c: OpenAI.Chat.ChatCompletion) => JSON.stringify([c.choices[0]!.message.content, (c.choices[0]!.message as unknown as { reasoning: string }).reasoning, c.usage!.completion_tokens]);
    assert.deepEqual(together.map(view), alone.map(view));
    assert.ok(s.server.engine.stats.maxSequencesPerStep >= 2);
    assert.ok(s.server.engine.stats.steps - stepsBefore < 16 * 4, 'decodes shared steps');
  } finally {
    await s.close();
  }
});

test('real engine: structured output validates', async () => {
  const s = await serve();
  const schema = { type: 'object', properties: { answer: { type: 'string', maxLength: 8 }, score: { type: 'number' } }, required: ['answer', 'score'], additionalProperties: false };
  try {
    const r = await s.client.responses.create({ model: 'tiny', input: 'Rate it', max_output_tokens: 40, temperature: 0, text: { format: { type: 'json_schema', name: 'rating', schema } } });
    assert.ok(new Ajv().compile(schema)(JSON.parse(r.output_text)), r.output_text);
  } finally {
    await s.close();
  }
});
