// The agent loop once through the real engine (the full-vocabulary golden checkpoint: random
// weights, sliding window 4): greedy answers over two turns must equal what a fresh sequence computes
// from the whole prompt, so prefix reuse (truncation of the banded KV ring included) changes nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { AgentSession, type AgentEvent } from '../../src/engine/agent.ts';
import { argmax } from '../../src/engine/sampler.ts';
import type { Engine } from '../../src/engine/engine.ts';
import { renderConversationForCompletion } from '../../src/harmony/index.ts';

const dir = '../shared/golden/fullvocab-h32-l2';

/** Greedy tokens from scratch: a new sequence, the whole prompt, then one token at a time. */
async function greedyFromScratch(engine: Engine, prompt: readonly number[], count: number): Promise<number[]> {
  const seq = engine.createSequence();
  const out: number[] = [];
  let [logits] = await engine.step([{ sequence: seq, tokens: prompt }]);
  while (out.length < count) {
    const t = argmax(logits!);
    out.push(t);
    if (out.length < count) [logits] = await engine.step([{ sequence: seq, tokens: [t] }]);
  }
  engine.release(seq);
  return out;
}

test('two greedy turns through the real engine match recomputation from scratch', { skip: existsSync(dir) ? false : `${dir} not present` }, async () => {
  const { loadEngine } = await import('../../src/engine/local.ts');
  const engine = await loadEngine(dir, { backend: 'reference', contextLength: 256 });
  try {
    const session = new AgentSession(engine, { sampling: { temperature: 0 }, date: '2025-01-01', reasoningEffort: 'low' });
    const prefills: { promptTokens: number; cachedTokens: number }[] = [];
    const tokens: number[][] = [];
    for (const text of ['Hello', 'Again']) {
      const before = { messages: [...session.conversation.messages, { author: { role: 'user' as const }, content: [{ type: 'text' as const, text }] }] };
      const prompt = renderConversationForCompletion(before);
      const mine: number[] = [];
      const r = await session.send(text, {
        maxTokens: 6,
        onEvent: (e: AgentEvent) => {
          if (e.type === 'prefill') prefills.push(e);
          if (e.type === 'token') mine.push(e.token.token);
        },
      });
      assert.ok(r.finishReason === 'length' || r.finishReason === 'stop', r.finishReason);
      assert.equal(r.usage.completionTokens, mine.length);
      assert.equal(prefills.at(-1)!.promptTokens, prompt.length);
      assert.deepEqual(mine, await greedyFromScratch(engine, prompt, mine.length));
      tokens.push(mine);
    }
    assert.equal(prefills[0]!.cachedTokens, 0);
    assert.ok(prefills[1]!.cachedTokens > prefills[0]!.promptTokens / 2, `turn 2 reused ${prefills[1]!.cachedTokens} tokens`);
    session.close();
  } finally {
    await engine.close();
  }
});
