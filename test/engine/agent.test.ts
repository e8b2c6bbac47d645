// The agent loop end to end over ScriptedEngine replaying harmony completions: tool call -> tool
// result -> final, functions.* handed back or answered, malformed output turned into tool errors,
// the tool-call limit, stop strings, limits and cancellation, CoT dropping, and prefix reuse
// measured on the engine's recorded steps.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ScriptedEngine } from '../../src/engine/scripted.ts';
import { send } from './send.ts';
import { AgentSession, type AgentEvent, type ToolCall } from '../../src/engine/agent.ts';
import type { Tool } from '../../src/tools/index.ts';
import { createConversation, createMessage, today, messageText, renderConversationForCompletion } from '../../src/harmony/index.ts';
import { getTokenizer } from '../../src/tokenizer/index.ts';

const tok = getTokenizer();
const ids = (s: string): number[] => tok.encode(s, { allowedSpecial: 'all' });

/** A tool with real behaviour: looks keys up in a table, fails loudly on bad input. */
class LookupTool implements Tool {
  readonly name = 'lookup';
  readonly calls: ToolCall[] = [];
  constructor(private readonly table: Record<string, string>) {}
  namespace() {
    return {
      name: 'lookup',
      description: 'Looks up facts.',
      tools: [{ name: 'get', description: 'Returns the fact stored under `key`.', parameters: { type: 'object', properties: { key: { type: 'string' } }, required: ['key'] } }],
    };
  }
  async run(call: ToolCall) {
    this.calls.push(call);
    const { key } = JSON.parse(call.content) as { key: string };
    if (key === 'explode') throw new Error('the lookup table is on fire');
    const value = this.table[key];
    return value === undefined ? { content: `no entry for ${key}`, error: 'not found' } : { content: value };
  }
}

const weather = { name: 'get_weather', description: 'Current weather for a city.', parameters: { type: 'object', properties: { location: { type: 'string' } }, required: ['location'] } };

const analysisThenLookup = ids(
  '<|channel|>analysis<|message|>Need to look it up.<|end|><|start|>assistant<|channel|>analysis to=lookup.get code<|message|>{"key":"capital"}<|call|>',
);
const finalParis = ids('<|channel|>analysis<|message|>Found it.<|end|><|start|>assistant<|channel|>final<|message|>The capital is Paris.<|return|>');

function collect(): { events: AgentEvent[]; onEvent: (e: AgentEvent) => void } {
  const events: AgentEvent[] = [];
  return { events, onEvent: (e) => void events.push(e) };
}

test('tool call -> tool result -> final answer, with events in order and the KV cache reused', async () => {
  const engine = new ScriptedEngine([analysisThenLookup, finalParis]);
  const tool = new LookupTool({ capital: 'Paris is the capital of France.' });
  const session = new AgentSession(engine, { tools: [tool], date: '2025-08-05', sampling: { temperature: 0 } });
  const { events, onEvent } = collect();
  session.conversation.messages.push(createMessage('user', 'What is the capital of France?'));
  const prompt1 = renderConversationForCompletion(session.conversation);
  const result = await session.run({ onEvent });

  assert.equal(result.finishReason, 'stop');
  assert.equal(result.finalText, 'The capital is Paris.');
  assert.equal(result.toolCalls, 1);
  assert.equal(result.usage.generations, 2);
  assert.equal(result.usage.completionTokens, analysisThenLookup.length + finalParis.length);
  assert.deepEqual(tool.calls, [{ recipient: 'lookup.get', content: '{"key":"capital"}', channel: 'analysis', contentType: 'code' }]);
  assert.deepEqual(
    result.messages.map((m) => [m.author.role, m.author.name, m.channel, m.recipient, messageText(m)]),
    [
      ['assistant', undefined, 'analysis', undefined, 'Need to look it up.'],
      ['assistant', undefined, 'analysis', 'lookup.get', '{"key":"capital"}'],
      ['tool', 'lookup.get', 'analysis', 'assistant', 'Paris is the capital of France.'],
      ['assistant', undefined, 'analysis', undefined, 'Found it.'],
      ['assistant', undefined, 'final', undefined, 'The capital is Paris.'],
    ],
  );
  const kinds = events.filter((e) => e.type !== 'token' && e.type !== 'delta').map((e) => e.type);
  assert.deepEqual(kinds, ['prefill', 'message_start', 'message_done', 'message_start', 'message_done', 'tool_call', 'tool_result', 'prefill', 'message_start', 'message_done', 'message_start', 'message_done', 'done']);
  const finalDeltas = events.filter((e) => e.type === 'delta' && e.channel === 'final').map((e) => (e as { text: string }).text);
  assert.equal(finalDeltas.join(''), 'The capital is Paris.');
  const start = events.find((e) => e.type === 'message_start' && e.recipient !== undefined);
  assert.deepEqual(start, { type: 'message_start', role: 'assistant', channel: 'analysis', recipient: 'lookup.get', contentType: 'code', target: { kind: 'builtin', recipient: 'lookup.get', tool: 'lookup' } });
  assert.equal(events.filter((e) => e.type === 'token').length, result.usage.completionTokens);

  // Prefix reuse: the generation after the tool call feeds only the tokens after the cached prefix.
  assert.deepEqual(engine.steps[0]![0]!.tokens, prompt1);
  const secondPrefill = engine.steps[analysisThenLookup.length]![0]!.tokens;
  const prefills = events.filter((e) => e.type === 'prefill') as { promptTokens: number; cachedTokens: number }[];
  assert.equal(secondPrefill.length, prefills[1]!.promptTokens - prefills[1]!.cachedTokens);
  assert.ok(prefills[1]!.cachedTokens >= prompt1.length + ids('<|channel|>analysis<|message|>Need to look it up.<|end|>').length, 'first message cached');
  assert.ok(secondPrefill.length < 40, `fed ${secondPrefill.length} of ${prefills[1]!.promptTokens} tokens`);
});

test('the next turn drops the finished turn\'s analysis and reuses the cache up to it', async () => {
  const second = ids('<|channel|>final<|message|>Berlin.<|return|>');
  const engine = new ScriptedEngine([analysisThenLookup, finalParis, second]);
  const session = new AgentSession(engine, { tools: [new LookupTool({ capital: 'Paris.' })], date: '2025-08-05', sampling: { temperature: 0 } });
  await send(session, 'Capital of France?');
  const stepsBefore = engine.steps.length;
  const { events, onEvent } = collect();
  const r = await send(session, 'And Germany?', { onEvent });
  assert.equal(r.finalText, 'Berlin.');
  const prompt = renderConversationForCompletion(session.conversation.messages.length > 0 ? { messages: session.conversation.messages.slice(0, -1) } : session.conversation);
  const text = tok.decode(prompt.filter((t) => !tok.isSpecial(t)));
  assert.ok(!text.includes('Need to look it up') && !text.includes('Found it'), 'analysis of turn 1 dropped');
  assert.ok(text.includes('The capital is Paris.') && text.includes('And Germany?'));
  const prefill = events.find((e) => e.type === 'prefill') as { promptTokens: number; cachedTokens: number };
  assert.equal(prefill.promptTokens, prompt.length);
  // Cached up to the first dropped analysis message: system + first user message at least.
  const head = renderConversationForCompletion({ messages: session.conversation.messages.slice(0, 2) });
  assert.ok(prefill.cachedTokens >= head.length - 2, `cached ${prefill.cachedTokens}`);
  assert.equal(engine.steps[stepsBefore]![0]!.tokens.length, prompt.length - prefill.cachedTokens);
});

test('a functions.* call ends the run for the caller, who answers it and runs again', async () => {
  const call = ids('<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"location":"Paris"}<|call|>');
  const answer = ids('<|channel|>final<|message|>It is 20 degrees.<|return|>');
  const engine = new ScriptedEngine([call, answer]);
  const session = new AgentSession(engine, { functionTools: [weather], date: null, sampling: { temperature: 0 } });
  const r1 = await send(session, 'Weather in Paris?');
  assert.equal(r1.finishReason, 'function_call');
  assert.equal(r1.functionCall!.name, 'get_weather');
  assert.deepEqual(JSON.parse(r1.functionCall!.arguments), { location: 'Paris' });
  assert.equal(r1.functionCall!.message.contentType, '<|constrain|>json');
  session.conversation.messages.push(createMessage({ role: 'tool', name: 'functions.get_weather' }, '{"temperature":20}', { recipient: 'assistant', channel: 'commentary' }));
  const r2 = await session.run();
  assert.equal(r2.finishReason, 'stop');
  assert.equal(r2.finalText, 'It is 20 degrees.');
  const last = renderConversationForCompletion(session.conversation);
  assert.ok(tok.decode(last.filter((t) => !tok.isSpecial(t))).includes('functions.get_weather to=assistant'));
});

test('with a handler, function calls are answered inside the loop', async () => {
  const call = ids('<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"location":"Oslo"}<|call|>');
  const answer = ids('<|channel|>final<|message|>Cold.<|return|>');
  const engine = new ScriptedEngine([call, answer]);
  const seen: string[] = [];
  const session = new AgentSession(engine, {
    functionTools: [weather],
    onFunctionCall: async (c) => {
      seen.push(c.arguments);
      return JSON.stringify({ temperature: -5 });
    },
  });
  const r = await send(session, 'Weather in Oslo?');
  assert.equal(r.finishReason, 'stop');
  assert.deepEqual(seen, ['{"location":"Oslo"}']);
  assert.equal(messageText(r.messages[1]!), '{"temperature":-5}');
  assert.equal(r.messages[1]!.author.name, 'functions.get_weather');
  assert.equal(r.messages[1]!.channel, 'commentary');
});

test('malformed output becomes a tool error the model reads: bad JSON, unknown tool, unknown function, a throwing tool, a broken header', async () => {
  const scripts = [
    ids('<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"location": Paris}<|call|>'),
    ids('<|channel|>analysis to=nosuch.tool code<|message|>{}<|call|>'),
    ids('<|channel|>commentary to=functions.get_time <|constrain|>json<|message|>{}<|call|>'),
    ids('<|channel|>analysis to=lookup.get code<|message|>{"key":"explode"}<|call|>'),
    ids('<|channel|>analysis to=lookup.get code<|message|>not json<|call|>'),
    // Extra words in the header: the strict parser rejects it; the lenient one drops them.
    ids('<|channel|>analysis to=lookup.get please now code<|message|>{"key":"capital"}<|call|>'),
    ids('<|channel|>final<|message|>Sorry.<|return|>'),
  ];
  const engine = new ScriptedEngine(scripts);
  const session = new AgentSession(engine, { functionTools: [weather], tools: [new LookupTool({ capital: 'Paris.' })], sampling: { temperature: 0 } });
  const r = await send(session, 'Try things.');
  assert.equal(r.finishReason, 'stop');
  assert.equal(r.finalText, 'Sorry.');
  assert.equal(r.toolCalls, 6);
  const tools = r.messages.filter((m) => m.author.role === 'tool').map((m) => [m.author.name, messageText(m)] as const);
  assert.equal(tools.length, 6);
  assert.match(tools[0]![1], /^Error: the arguments of functions\.get_weather are not valid JSON/);
  assert.equal(tools[1]![0], 'nosuch.tool');
  assert.match(tools[1]![1], /^Error: unknown tool "nosuch\.tool"\. Available tools: lookup\.get, functions\.get_weather\./);
  assert.match(tools[2]![1], /^Error: unknown function "get_time"/);
  assert.equal(tools[3]![1], 'Error: lookup.get failed: the lookup table is on fire');
  assert.match(tools[4]![1], /^Error: lookup\.get failed: .*JSON/);
  // Lenient parsing keeps the `to=` word as the recipient and drops the stray words.
  assert.deepEqual(tools[5], ['lookup.get', 'Paris.']);
});

test('the tool-call limit ends the run with the pending call', async () => {
  const call = ids('<|channel|>analysis to=lookup.get code<|message|>{"key":"capital"}<|call|>');
  const engine = new ScriptedEngine([call, call, call]);
  const tool = new LookupTool({ capital: 'Paris.' });
  const session = new AgentSession(engine, { tools: [tool], maxToolCalls: 2 });
  const r = await send(session, 'Loop forever.');
  assert.equal(r.finishReason, 'tool_limit');
  assert.equal(r.toolCalls, 2);
  assert.equal(tool.calls.length, 2);
  assert.equal(r.pendingCall!.recipient, 'lookup.get');
});

test('stop strings cut the final answer, and the streamed text never shows them', async () => {
  const engine = new ScriptedEngine([ids('<|channel|>analysis<|message|>Think END here.<|end|><|start|>assistant<|channel|>final<|message|>Hello there END and more<|return|>')]);
  const session = new AgentSession(engine, { sampling: { temperature: 0 } });
  const { events, onEvent } = collect();
  const r = await send(session, 'Hi', { stopStrings: ['END'], onEvent });
  assert.equal(r.finishReason, 'stop');
  assert.equal(r.stopString, 'END');
  assert.equal(r.finalText, 'Hello there ');
  const streamed = events.filter((e) => e.type === 'delta' && e.channel === 'final').map((e) => (e as { text: string }).text).join('');
  assert.equal(streamed, 'Hello there ');
  assert.equal(messageText(session.conversation.messages.at(-1)!), 'Hello there ');
  assert.equal(messageText(r.messages[0]!), 'Think END here.', 'analysis is not cut');
});

test('maxTokens, a full context and an abort end the run with the partial answer kept', async () => {
  const answer = ids('<|channel|>final<|message|>One two three four five six.<|return|>');
  const limited = await send(new AgentSession(new ScriptedEngine([answer]), { sampling: { temperature: 0 } }), 'Count', { maxTokens: 6 });
  assert.equal(limited.finishReason, 'length');
  assert.equal(limited.usage.completionTokens, 6);
  assert.equal(limited.messages.length, 1);
  assert.equal(limited.messages[0]!.channel, 'final');
  assert.ok('One two three'.startsWith(limited.finalText) && limited.finalText.length > 0, limited.finalText);

  const controller = new AbortController();
  const session = new AgentSession(new ScriptedEngine([answer]), { sampling: { temperature: 0 } });
  const r = await send(session, 'Count', {
    signal: controller.signal,
    onEvent: (e) => {
      if (e.type === 'delta' && e.text.includes('three')) controller.abort();
    },
  });
  assert.equal(r.finishReason, 'abort');
  assert.match(r.finalText, /three$/);

  const convo = createConversation({ date: null });
  const promptLength = renderConversationForCompletion({ messages: [...convo.messages, { author: { role: 'user' }, content: [{ type: 'text', text: 'Count' }] }] }).length;
  const full = await send(new AgentSession(new ScriptedEngine([answer], { contextLength: promptLength + 5 }), { date: null }), 'Count');
  assert.equal(full.finishReason, 'context');
  assert.equal(full.usage.completionTokens, 5);
});

test('a call whose header never reaches <|message|> does not crash the loop', async () => {
  const engine = new ScriptedEngine([ids('<|channel|>analysis to=lookup.get code<|call|>')]);
  const session = new AgentSession(engine, { tools: [new LookupTool({})] });
  const r = await send(session, 'Go');
  assert.equal(r.finishReason, 'stop');
  assert.equal(r.toolCalls, 0);
  assert.equal(r.messages[0]!.channel, 'analysis');
});

test('functions.search with no such function goes to the browser, as the reference server does; a throwing handler is a tool error', async () => {
  class EchoBrowser implements Tool {
    readonly name = 'browser';
    readonly calls: ToolCall[] = [];
    namespace() {
      return { name: 'browser', description: 'Tool for browsing.', tools: [{ name: 'search', description: 'Searches.' }] };
    }
    async run(call: ToolCall) {
      this.calls.push(call);
      return { content: `[0] results for ${(JSON.parse(call.content) as { query: string }).query}` };
    }
  }
  const browser = new EchoBrowser();
  const engine = new ScriptedEngine([
    ids('<|channel|>commentary to=functions.search <|constrain|>json<|message|>{"query":"sepsis"}<|call|>'),
    ids('<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"location":"Rome"}<|call|>'),
    ids('<|channel|>final<|message|>Done.<|return|>'),
  ]);
  const session = new AgentSession(engine, {
    tools: [browser],
    functionTools: [weather],
    onFunctionCall: async () => {
      throw new Error('weather service unreachable');
    },
  });
  const r = await send(session, 'Search, then weather.');
  assert.equal(r.finalText, 'Done.');
  assert.deepEqual(browser.calls.map((c) => c.recipient), ['browser.search']);
  const toolMessages = r.messages.filter((m) => m.author.role === 'tool');
  assert.deepEqual(toolMessages.map((m) => [m.author.name, messageText(m)]), [
    ['functions.search', '[0] results for sepsis'],
    ['functions.get_weather', 'Error: functions.get_weather failed: weather service unreachable'],
  ]);
});

test('today() is the local calendar date', () => {
  assert.equal(today(new Date(2025, 0, 5, 23, 59)), '2025-01-05');
  assert.equal(today(new Date(2025, 11, 31, 0, 1)), '2025-12-31');
});
