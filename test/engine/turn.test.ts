// The turn API over ScriptedEngine: the prompt is rendered once (prepareTurn) and that rendering
// feeds the first generation; each generated token is parsed once even with structured outputs on;
// each message's recipient is classified once and carried on the events as `target`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DelegatingEngine, type Sequence } from '../../src/engine/engine.ts';
import { ScriptedEngine } from '../../src/engine/scripted.ts';
import { prepareTurn, runTurn, type TurnRequest } from '../../src/engine/turn.ts';
import type { AgentEvent } from '../../src/engine/agent.ts';
import { StreamParser, createMessage, promptHead } from '../../src/harmony/index.ts';
import { getTokenizer } from '../../src/tokenizer/index.ts';
import type { Tool, ToolCall } from '../../src/tools/index.ts';

const tok = getTokenizer();
const ids = (s: string): number[] => tok.encode(s, { allowedSpecial: 'all' });

function request(extra: Partial<TurnRequest> = {}): TurnRequest {
  return {
    messages: [...promptHead({ date: null, reasoningEffort: 'low', ...(extra.functionTools ? { functionTools: extra.functionTools } : {}) }), createMessage('user', 'Give me JSON.')],
    builtinTools: [],
    functionTools: [],
    functionSchemas: new Map(),
    sampling: { temperature: 0 },
    ...extra,
  };
}


test('the prepared prompt is the one the first generation feeds, and running the turn renders nothing again', async () => {
  const completion = ids('<|channel|>final<|message|>Done.<|return|>');
  const engine = new ScriptedEngine([completion]);
  const turn = prepareTurn(request());
  const holder = tok as unknown as { encodeOrdinary: (s: string) => number[] };
  const original = holder.encodeOrdinary;
  let encodes = 0;
  holder.encodeOrdinary = function (this: unknown, s: string) {
    encodes++;
    return original.call(this, s);
  };
  let result;
  try {
    result = await runTurn(engine, turn);
  } finally {
    holder.encodeOrdinary = original;
  }
  assert.equal(result.result.finalText, 'Done.');
  assert.deepEqual(engine.steps[0]![0]!.tokens, [...turn.prompt]);
  assert.equal(result.promptTokens, turn.prompt.length);
  assert.equal(encodes, 0, 'runTurn tokenised text although the prompt was already rendered');
});

test('with structured outputs each generated token goes through the harmony parser once', async () => {
  const completion = ids('<|channel|>analysis<|message|>Think.<|end|><|start|>assistant<|channel|>final<|message|>{"a":1}<|return|>');
  const engine = new ScriptedEngine([completion]);
  const turn = prepareTurn(request({ finalSchema: { type: 'object' }, maxTokens: 200 }));
  const proto = StreamParser.prototype as unknown as { process: (t: number) => unknown };
  const original = proto.process;
  let parsed = 0;
  proto.process = function (this: unknown, t: number) {
    parsed++;
    return original.call(this, t);
  };
  let result;
  try {
    result = await runTurn(engine, turn);
  } finally {
    proto.process = original;
  }
  assert.equal(result.result.finalText, '{"a":1}');
  assert.equal(parsed, completion.length);
});

test('events carry each message target: a declared function, a misrouted browser call, an unknown tool, plain output', async () => {
  const browserCalls: ToolCall[] = [];
  const browser: Tool = {
    name: 'browser',
    namespace: () => ({ name: 'browser', tools: [{ name: 'search', description: 'Searches.' }] }),
    run: async (call) => {
      browserCalls.push(call);
      return { content: 'no results' };
    },
  };
  const engine = new ScriptedEngine([
    ids('<|channel|>commentary to=functions.search <|constrain|>json<|message|>{"query":"x"}<|call|>'),
    ids('<|channel|>commentary to=shell.exec<|message|>ls<|call|>'),
    ids('<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city":"Oslo"}<|call|>'),
  ]);
  const events: AgentEvent[] = [];
  const weather = { name: 'get_weather', description: 'Weather.' };
  const result = await runTurn(engine, prepareTurn(request({ builtinTools: [browser], functionTools: [weather] })), { onEvent: (e) => void events.push(e) });
  assert.equal(result.result.finishReason, 'function_call');
  const targets = events.filter((e) => e.type === 'tool_call').map((e) => (e as { target: unknown }).target);
  assert.deepEqual(targets, [
    { kind: 'builtin', recipient: 'browser.search', tool: 'browser' },
    { kind: 'unknown', recipient: 'shell.exec', function: false },
    { kind: 'function', recipient: 'functions.get_weather', name: 'get_weather' },
  ]);
  // The browser received the call addressed to it; the model's message keeps what it wrote.
  assert.equal(browserCalls[0]!.recipient, 'browser.search');
  const starts = events.filter((e) => e.type === 'message_start').map((e) => (e as { target: { kind: string } }).target.kind);
  assert.deepEqual(starts, ['builtin', 'unknown', 'function']);
});

test('a caller-owned sequence carries the turn and stays the caller\'s: never released, even after an abort', async () => {
  class Releases extends DelegatingEngine {
    readonly released: number[] = [];
    override release(sequence: Sequence): void {
      this.released.push(sequence.id);
      super.release(sequence);
    }
  }
  const answer = ids('<|channel|>final<|message|>One two three four.<|return|>');
  const scripted = new ScriptedEngine([answer, answer, answer]);
  const engine = new Releases(scripted);
  const own = engine.createSequence();
  const done = await runTurn(engine, prepareTurn(request()), { sequence: own, prefillChunk: 4 });
  assert.equal(done.result.finalText, 'One two three four.');
  assert.equal(scripted.steps[0]![0]!.tokens.length, 4, 'the prompt went in chunks of prefillChunk tokens');
  const controller = new AbortController();
  const aborted = await runTurn(engine, prepareTurn(request()), {
    sequence: own,
    signal: controller.signal,
    onEvent: (e) => {
      if (e.type === 'delta' && e.text.includes('two')) controller.abort();
    },
  });
  assert.equal(aborted.result.finishReason, 'abort');
  assert.deepEqual(engine.released, [], 'runTurn released the caller\'s sequence');
  assert.ok(own.tokens.length > 0, 'the turns ran on the caller\'s sequence');
  // Without one, the turn takes its own sequence and frees it.
  await runTurn(engine, prepareTurn(request()));
  assert.equal(engine.released.length, 1);
  assert.notEqual(engine.released[0], own.id);
});
