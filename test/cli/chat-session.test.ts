// The chat's conversation (src/cli/chat/session.ts) over ScriptedEngine: the system message it
// builds and /effort and /reset on it, turns run through the turn API on the chat's one sequence
// (the next turn feeds only the tokens after the cached prefix), and a turn that fails leaves the
// user message last for the REPL to take back; --seed seeds one random stream per session, which
// every turn continues.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChatSession } from '../../src/cli/chat/session.ts';
import { commonPrefixLength, type Engine, type EngineInfo, type Sequence, type StepRequest } from '../../src/engine/engine.ts';
import { ScriptedEngine } from '../../src/engine/scripted.ts';
import { buildSystemMessage, createMessage, messageText, renderConversationForCompletion, systemText, type SystemContent } from '../../src/harmony/index.ts';
import { getTokenizer } from '../../src/tokenizer/index.ts';
import type { Tool } from '../../src/tools/index.ts';

const tok = getTokenizer();
const ids = (s: string): number[] => tok.encode(s, { allowedSpecial: 'all' });

const lookup: Tool = {
  name: 'lookup',
  namespace: () => ({ name: 'lookup', description: 'Looks up facts.', tools: [{ name: 'get', description: 'Returns a fact.' }] }),
  run: async () => ({ content: 'Paris.' }),
};

test('the system message carries effort, instructions and built-in tools; /effort changes it and /reset keeps its prefix', () => {
  const session = new ChatSession(new ScriptedEngine([]), { reasoningEffort: 'low', instructions: 'Be brief.', tools: [lookup], sampling: {} });
  const sys = (): string => systemText(session.conversation.messages[0]!.content[0] as SystemContent);
  assert.match(sys(), /Reasoning: low/);
  assert.match(sys(), /namespace lookup \{/);
  assert.equal(session.conversation.messages[1]!.author.role, 'developer');
  session.setReasoningEffort('high');
  assert.match(sys(), /Reasoning: high/);
  assert.equal(session.reasoningEffort, 'high');
  const before = renderConversationForCompletion(session.conversation);
  session.reset();
  assert.equal(session.conversation.messages.length, 2);
  assert.equal(commonPrefixLength(before, renderConversationForCompletion(session.conversation)), before.length);
  assert.match(systemText(buildSystemMessage({ date: null }).content[0] as SystemContent), /Reasoning: medium/);
});

test('/effort on a loaded conversation without a system message puts one first', () => {
  const session = new ChatSession(new ScriptedEngine([]), { reasoningEffort: 'medium', tools: [], sampling: {} });
  session.load({ messages: [{ author: { role: 'user' }, content: [{ type: 'text', text: 'Hi' }] }] });
  session.setReasoningEffort('low');
  assert.equal(session.conversation.messages[0]!.author.role, 'system');
  assert.match(systemText(session.conversation.messages[0]!.content[0] as SystemContent), /Reasoning: low/);
  assert.equal(session.conversation.messages.length, 2);
});

test('turns run on the chat\'s one sequence: the answer joins the conversation and the next turn feeds only what is new', async () => {
  const engine = new ScriptedEngine([
    ids('<|channel|>final<|message|>Hello!<|return|>'),
    ids('<|channel|>final<|message|>Paris.<|return|>'),
  ]);
  const session = new ChatSession(engine, { reasoningEffort: 'low', tools: [], sampling: { temperature: 0 } });
  const first = await session.send('Hi');
  assert.equal(first.finalText, 'Hello!');
  assert.deepEqual(session.conversation.messages.slice(-2).map((m) => [m.author.role, messageText(m)]), [['user', 'Hi'], ['assistant', 'Hello!']]);
  const prompt2 = renderConversationForCompletion({ messages: [...session.conversation.messages, createMessage('user', 'Capital of France?')] });
  const stepsBefore = engine.steps.length;
  const second = await session.send('Capital of France?');
  assert.equal(second.finalText, 'Paris.');
  const sequences = new Set(engine.steps.flat().map((s) => s.sequence));
  assert.equal(sequences.size, 1, 'both turns ran on one sequence');
  const fed = engine.steps[stepsBefore]![0]!.tokens;
  assert.ok(second.usage.cachedTokens > 0, 'the second turn reused the cached prefix');
  assert.equal(fed.length, prompt2.length - second.usage.cachedTokens);
  assert.deepEqual(fed, prompt2.slice(second.usage.cachedTokens));
  // system, then two turns of user and assistant.
  assert.equal(session.conversation.messages.length, 5);
});

test('a turn that does not fit the window throws with the user message last and nothing else added', async () => {
  const session = new ChatSession(new ScriptedEngine([ids('<|channel|>final<|message|>x<|return|>')], { contextLength: 20 }), { reasoningEffort: 'low', tools: [], sampling: {} });
  const before = session.conversation.messages.length;
  await assert.rejects(session.send('A question far too long for a window of twenty tokens.'), /context window holds 20/);
  assert.equal(session.conversation.messages.length, before + 1);
  assert.equal(session.conversation.messages.at(-1)!.author.role, 'user');
});

/**
 * Answers every turn with one word drawn uniformly from WORDS: a model for which the same random
 * numbers give the same answer, so turns drawing the same numbers say the same word.
 */
class CoinEngine implements Engine {
  /** 1000 tokens that are whole lower-case words. */
  static readonly WORDS = Array.from({ length: 20000 }, (_, i) => 1000 + i).filter((id) => /^[a-z]{3,}$/.test(Buffer.from(tok.decodeBytes([id])).toString('latin1'))).slice(0, 1000);
  readonly info: EngineInfo = { name: 'coin', vocabSize: 201088, contextLength: 131072, randomWeights: false };
  private readonly answer = [...ids('<|channel|>final<|message|>'), -1, ...ids('<|return|>')];
  private readonly at = new Map<number, number>();
  private nextId = 1;
  createSequence(): Sequence {
    const tokens: number[] = [];
    return { id: this.nextId++, tokens };
  }
  async step(batch: readonly StepRequest[]): Promise<Float32Array[]> {
    return batch.map((r) => {
      (r.sequence.tokens as number[]).push(...r.tokens);
      // A prompt (several tokens) starts an answer; one token continues it.
      const pos = r.tokens.length > 1 ? 0 : this.at.get(r.sequence.id)! + 1;
      this.at.set(r.sequence.id, pos);
      const logits = new Float32Array(this.info.vocabSize).fill(-Infinity);
      const next = this.answer[pos];
      if (next === undefined) throw new Error('CoinEngine: past the answer');
      if (next === -1) for (const w of CoinEngine.WORDS) logits[w] = 0;
      else logits[next] = 0;
      return logits;
    });
  }
  truncate(sequence: Sequence, length: number): void {
    (sequence.tokens as number[]).length = Math.min(length, sequence.tokens.length);
  }
  release(_sequence: Sequence): void {}
  async close(): Promise<void> {}
}

test('--seed seeds the session once: later turns continue the random stream instead of repeating the first turn\'s draws', async () => {
  const words = async (seed: number): Promise<string[]> => {
    const session = new ChatSession(new CoinEngine(), { reasoningEffort: 'low', tools: [], sampling: {}, seed });
    const out: string[] = [];
    for (let turn = 0; turn < 4; turn++) out.push((await session.send('Flip.')).finalText);
    session.close();
    return out;
  };
  const first = await words(7);
  assert.equal(CoinEngine.WORDS.length, 1000);
  for (const w of first) assert.ok(CoinEngine.WORDS.some((id) => tok.decode([id]) === w), `an answer is one of the words: ${w}`);
  // The same seed reproduces the whole session, turn by turn.
  assert.deepEqual(await words(7), first);
  // A stream restarted per turn gave every turn the first turn's word (1 in 10^9 by chance).
  assert.ok(new Set(first).size > 1, `every turn drew the same word: ${first.join(', ')}`);
});
