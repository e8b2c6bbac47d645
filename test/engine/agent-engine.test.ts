// The agent loop once through the real engine (the full-vocabulary golden checkpoint: random
// weights, sliding window 4): greedy answers over two turns must equal what a fresh sequence computes
// from the whole prompt, so prefix reuse (truncation of the banded KV ring included) changes nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { send } from './send.ts';
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
      const r = await send(session, text, {
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

/** Forces the real engine to write `script` (a LogitsProcessor masking every other token) and
 *  keeps a copy of the logits the first forced token was chosen from. */
function forcing(script: readonly number[]): { processor: (logits: Float32Array, generated: readonly number[]) => void; first: Float32Array | undefined } {
  const state: { processor: (logits: Float32Array, generated: readonly number[]) => void; first: Float32Array | undefined } = {
    first: undefined,
    processor: (logits, generated) => {
      if (generated.length === 0) state.first = new Float32Array(logits);
      const next = script[generated.length]!;
      const keep = logits[next]!;
      logits.fill(-Infinity);
      logits[next] = keep;
    },
  };
  return state;
}

test('a real engine forced to write harmony: the next turn drops the reasoning, cuts the KV cache back, and its logits equal a fresh computation', { skip: existsSync(dir) ? false : `${dir} not present` }, async () => {
  const { getTokenizer } = await import('../../src/tokenizer/index.ts');
  const tok = getTokenizer();
  const ids = (s: string): number[] => tok.encode(s, { allowedSpecial: 'all' });
  const { loadEngine } = await import('../../src/engine/local.ts');
  // Banded rings of window - 1 + prefillChunk + kvRewind = 75 slots: more than the cut (the dropped
  // analysis), far less than the conversation.
  const engine = await loadEngine(dir, { backend: 'reference', contextLength: 512, prefillChunk: 8, kvRewind: 64 });
  try {
    const session = new AgentSession(engine, { date: '2025-01-01', reasoningEffort: 'low' });
    const turn1 = ids('<|channel|>analysis<|message|>The user greets me; I should greet back politely and briefly.<|end|><|start|>assistant<|channel|>final<|message|>Hello!<|return|>');
    const f1 = forcing(turn1);
    const r1 = await send(session, 'Hi', { processors: [f1.processor] });
    assert.equal(r1.finalText, 'Hello!');
    const turn2 = ids('<|channel|>final<|message|>Fine.<|return|>');
    const f2 = forcing(turn2);
    const prefills: { promptTokens: number; cachedTokens: number }[] = [];
    const r2 = await send(session, 'How are you?', { processors: [f2.processor], onEvent: (e) => void (e.type === 'prefill' && prefills.push(e)) });
    assert.equal(r2.finalText, 'Fine.');
    // The analysis of turn 1 is gone from the prompt; the cache was cut back to where it began.
    const prompt2 = renderConversationForCompletion({ messages: session.conversation.messages.slice(0, -1) });
    assert.ok(!tok.decode(prompt2.filter((t) => !tok.isSpecial(t))).includes('greet back'));
    assert.equal(prefills[0]!.promptTokens, prompt2.length);
    assert.ok(prefills[0]!.cachedTokens > 20 && prefills[0]!.cachedTokens < prompt2.length - 5, `cached ${prefills[0]!.cachedTokens}`);
    assert.equal(engine.recomputations, 0, 'served from the banded ring, not recomputed');
    // The logits after the cut equal those of a fresh sequence fed the whole prompt.
    const fresh = engine.createSequence();
    const [expected] = await engine.step([{ sequence: fresh, tokens: prompt2 }]);
    engine.release(fresh);
    let maxDiff = 0;
    for (let i = 0; i < expected!.length; i++) maxDiff = Math.max(maxDiff, Math.abs(expected![i]! - f2.first![i]!));
    assert.ok(maxDiff < 1e-4, `max |Δlogit| ${maxDiff}`);
    session.close();
  } finally {
    await engine.close();
  }
});
