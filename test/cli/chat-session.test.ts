// The chat's conversation (src/cli/chat/session.ts) over ScriptedEngine: the system message it
// builds and /effort and /reset on it, turns run through the turn API on the chat's one sequence
// (the next turn feeds only the tokens after the cached prefix), and a turn that fails leaves the
// user message last for the REPL to take back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChatSession } from '../../src/cli/chat/session.ts';
import { commonPrefixLength } from '../../src/engine/engine.ts';
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
