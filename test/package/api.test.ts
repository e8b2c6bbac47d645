// The library API (src/index.ts) over ScriptedEngine replaying real harmony completions: chat events
// in order, a user function answered by its handler, abort by signal and by a consumer that stops
// reading, errors as GptossError with a code, the tokenizer and harmony functions, the server and an
// evaluation on a Model; and chat with structured output on the embedded demo model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DelegatingEngine, type Sequence } from '../../src/engine/engine.ts';
import { ScriptedEngine } from '../../src/engine/scripted.ts';
import { modelFromEngine } from '../../src/api/model.ts';
import { GptossError, decode, encode, loadModel, parseCompletion, renderPrompt, runEval, startServer, type ChatEvent, type JsonObject } from '../../src/index.ts';
import { getTokenizer } from '../../src/tokenizer/index.ts';

const ids = (s: string): number[] => getTokenizer().encode(s, { allowedSpecial: 'all' });

/** Counts the sequences the loop frees, to see that every chat releases its own. */
class ReleaseCounter extends DelegatingEngine {
  released = 0;
  override release(sequence: Sequence): void {
    this.released++;
    super.release(sequence);
  }
}

async function events(stream: AsyncIterable<ChatEvent>): Promise<ChatEvent[]> {
  const out: ChatEvent[] = [];
  for await (const e of stream) out.push(e);
  return out;
}

const reasoningThenAnswer = ids('<|channel|>analysis<|message|>The user greets me.<|end|><|start|>assistant<|channel|>final<|message|>Hello there, friend.<|return|>');

test('chat streams reasoning and text deltas, then usage, then done, and frees its sequence', async () => {
  const scripted = new ScriptedEngine([reasoningThenAnswer]);
  const engine = new ReleaseCounter(scripted);
  const model = modelFromEngine(engine);
  const got = await events(model.chat([{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi' }], { date: null, sampling: { temperature: 0 } }));

  const kinds = got.map((e) => e.type).filter((t, i, all) => t !== all[i - 1]);
  assert.deepEqual(kinds, ['reasoning-delta', 'text-delta', 'usage', 'done']);
  const reasoning = got.flatMap((e) => (e.type === 'reasoning-delta' ? [e.text] : [])).join('');
  const text = got.flatMap((e) => (e.type === 'text-delta' ? [e.text] : [])).join('');
  assert.equal(reasoning, 'The user greets me.');
  assert.equal(text, 'Hello there, friend.');
  const done = got.at(-1)!;
  assert.deepEqual(done, { type: 'done', finishReason: 'stop', text: 'Hello there, friend.', reasoning: 'The user greets me.' });
  const usage = got.find((e) => e.type === 'usage');
  assert.ok(usage?.type === 'usage');
  assert.equal(usage.usage.outputTokens, reasoningThenAnswer.length);
  assert.ok(usage.usage.reasoningTokens > 0 && usage.usage.reasoningTokens < reasoningThenAnswer.length);
  // The system message became developer instructions in the prompt the engine saw.
  const prompt = getTokenizer().decode(scripted.steps[0]![0]!.tokens);
  assert.match(prompt, /<\|start\|>developer<\|message\|># Instructions\n\nBe brief\.<\|end\|><\|start\|>user<\|message\|>Hi<\|end\|><\|start\|>assistant$/);
  assert.equal(engine.released, 1);
});

test('complete() collects the same turn: answer, reasoning, finish reason and usage', async () => {
  const model = modelFromEngine(new ScriptedEngine([reasoningThenAnswer]));
  const r = await model.complete('Hi');
  assert.equal(r.text, 'Hello there, friend.');
  assert.equal(r.reasoning, 'The user greets me.');
  assert.equal(r.finishReason, 'stop');
  assert.equal(r.usage.outputTokens, reasoningThenAnswer.length);
  assert.deepEqual(r.toolCalls, []);
});

test('a user function is called with parsed arguments, its result goes back to the model, and the answer follows', async () => {
  const call = ids('<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city":"Oslo"}<|call|>');
  const answer = ids('<|channel|>final<|message|>It is 3 degrees in Oslo.<|return|>');
  const scripted = new ScriptedEngine([call, answer]);
  const model = modelFromEngine(scripted);
  const seen: JsonObject[] = [];
  const got = await events(
    model.chat('Weather in Oslo?', {
      tools: [
        {
          type: 'function',
          name: 'get_weather',
          description: 'Current weather for a city.',
          parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
          handler: async (args, { signal }) => {
            assert.equal(signal.aborted, false);
            seen.push(args);
            return { city: args['city'] ?? null, celsius: 3 };
          },
        },
      ],
    }),
  );
  assert.deepEqual(seen, [{ city: 'Oslo' }]);
  const toolEvents = got.filter((e) => e.type === 'tool-call' || e.type === 'tool-result');
  assert.deepEqual(toolEvents, [
    { type: 'tool-call', callId: 'call_1', name: 'get_weather', builtin: false, arguments: '{"city":"Oslo"}' },
    { type: 'tool-result', callId: 'call_1', name: 'get_weather', output: '{"city":"Oslo","celsius":3}', isError: false },
  ]);
  assert.deepEqual(got.at(-1), { type: 'done', finishReason: 'stop', text: 'It is 3 degrees in Oslo.', reasoning: '' });
  // The function was declared to the model, and its result was in the second prompt.
  const first = getTokenizer().decode(scripted.steps[0]![0]!.tokens);
  assert.match(first, /namespace functions \{\n\n\/\/ Current weather for a city\.\ntype get_weather = \(_: \{\ncity: string,\n\}\) => any;/);
  const second = getTokenizer().decode(scripted.steps.find((s) => s[0]!.tokens.length > 1 && s !== scripted.steps[0])![0]!.tokens);
  assert.match(second, /<\|start\|>functions\.get_weather to=assistant<\|channel\|>commentary<\|message\|>\{"city":"Oslo","celsius":3\}<\|end\|>/);
});

test('a handler that throws becomes an error result the model reads; the turn goes on', async () => {
  const call = ids('<|channel|>commentary to=functions.lookup <|constrain|>json<|message|>{"key":"x"}<|call|>');
  const answer = ids('<|channel|>final<|message|>Sorry, the lookup failed.<|return|>');
  const model = modelFromEngine(new ScriptedEngine([call, answer]));
  const r = await model.complete('Look up x', {
    tools: [{ type: 'function', name: 'lookup', handler: () => { throw new Error('the table is offline'); } }],
  });
  assert.equal(r.toolCalls.length, 1);
  assert.equal(r.toolCalls[0]!.isError, true);
  assert.match(r.toolCalls[0]!.output, /^Error: functions\.lookup failed: the table is offline/);
  assert.equal(r.text, 'Sorry, the lookup failed.');
});

const longAnswer = ids(`<|channel|>final<|message|>${'one two three four five six seven eight nine ten '.repeat(5)}<|return|>`);

test('an AbortSignal ends the turn with finishReason abort and the text so far', async () => {
  const engine = new ReleaseCounter(new ScriptedEngine([longAnswer]));
  const model = modelFromEngine(engine);
  const controller = new AbortController();
  const got: ChatEvent[] = [];
  for await (const e of model.chat('Count', { signal: controller.signal })) {
    got.push(e);
    if (e.type === 'text-delta' && e.text.includes('three')) controller.abort();
  }
  const done = got.at(-1);
  assert.ok(done?.type === 'done');
  assert.equal(done.finishReason, 'abort');
  assert.ok(done.text.startsWith('one two three'));
  assert.ok(done.text.length < 'one two three four five six seven eight nine ten '.length * 5);
  assert.equal(engine.released, 1);

  // A signal aborted before the turn starts: nothing reaches the engine.
  const idle = new ScriptedEngine([longAnswer]);
  const r = await modelFromEngine(idle).complete('Count', { signal: AbortSignal.abort() });
  assert.equal(r.finishReason, 'abort');
  assert.equal(r.text, '');
  assert.equal(idle.steps.length, 0);
});

test('a consumer that stops reading aborts the turn and frees the sequence', async () => {
  const engine = new ReleaseCounter(new ScriptedEngine([longAnswer]));
  const model = modelFromEngine(engine);
  let deltas = 0;
  for await (const e of model.chat('Count')) {
    if (e.type === 'text-delta') deltas++;
    if (deltas === 2) break;
  }
  assert.equal(deltas, 2);
  assert.equal(engine.released, 1);
});

test('bad input is a GptossError with a code, before anything runs', async () => {
  const scripted = new ScriptedEngine([]);
  const model = modelFromEngine(scripted);
  const codeOf = async (fn: () => Promise<unknown>): Promise<string> => {
    try {
      await fn();
    } catch (e) {
      assert.ok(e instanceof GptossError, String(e));
      assert.doesNotMatch(e.message, /\n/);
      return e.code;
    }
    throw new Error('expected a GptossError');
  };
  assert.equal(await codeOf(() => model.complete([{ role: 'robot' as 'user', content: 'hi' }])), 'input');
  assert.equal(await codeOf(() => model.complete([{ role: 'system', content: 'no user message' }])), 'input');
  assert.equal(await codeOf(() => model.complete('hi', { tools: [{ type: 'function', name: 'bad name', handler: () => 1 }] })), 'usage');
  assert.equal(await codeOf(() => model.complete('hi', { sampling: { topP: 5 } })), 'input');
  assert.equal(await codeOf(() => model.complete('hi', { reasoningEffort: 'max' as 'high' })), 'usage');
  assert.equal(await codeOf(() => model.complete('hi', { outputSchema: { $ref: 'https://example.com/schema' } })), 'input');
  assert.equal(await codeOf(() => loadModel({ model: join(tmpdir(), 'no-such-checkpoint-folder', 'x') })), 'usage');
  assert.equal(await codeOf(() => loadModel({ threads: 0 })), 'usage');
  assert.equal(scripted.steps.length, 0);
});

test('encode/decode round-trip, renderPrompt is the prompt chat() sends, parseCompletion reads a completion', async () => {
  const text = 'Grüße, <|start|> is text here';
  const tokens = encode(text);
  assert.equal(decode(tokens), text);
  assert.ok(!tokens.includes(200006));
  assert.deepEqual(encode('<|start|>', { allowedSpecial: 'all' }), [200006]);
  assert.throws(() => decode([999999]), (e: unknown) => e instanceof GptossError && e.code === 'input');

  const scripted = new ScriptedEngine([reasoningThenAnswer]);
  await modelFromEngine(scripted).complete('Hi', { reasoningEffort: 'low', date: '2025-08-05' });
  assert.deepEqual(renderPrompt('Hi', { reasoningEffort: 'low', date: '2025-08-05' }), scripted.steps[0]![0]!.tokens);

  assert.deepEqual(parseCompletion(reasoningThenAnswer), [
    { role: 'assistant', channel: 'analysis', text: 'The user greets me.' },
    { role: 'assistant', channel: 'final', text: 'Hello there, friend.' },
  ]);
});

test('startServer serves the model over the OpenAI API and close() leaves the model usable', async () => {
  const answer = ids('<|channel|>final<|message|>Served answer.<|return|>');
  const model = modelFromEngine(new ScriptedEngine([answer, reasoningThenAnswer], { name: 'scripted-model' }));
  const server = await startServer(model);
  try {
    assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(server.baseUrl, `${server.url}/v1`);
    const models = (await (await fetch(`${server.baseUrl}/models`)).json()) as { data: { id: string }[] };
    assert.ok(models.data.some((m) => m.id === 'scripted-model'));
    const res = await fetch(`${server.baseUrl}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'scripted-model', messages: [{ role: 'user', content: 'hi' }] }),
    });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { choices: { message: { content: string } }[] };
    assert.equal(body.choices[0]!.message.content, 'Served answer.');
  } finally {
    await server.close();
  }
  assert.equal((await model.complete('Hi')).text, 'Hello there, friend.');
  await assert.rejects(startServer(model, { port: 70000 }), (e: unknown) => e instanceof GptossError && e.code === 'usage');
});

test('runEval scores an exact-answer file on a Model and writes the report', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gptoss-api-eval-'));
  try {
    const data = join(dir, 'cases.jsonl');
    writeFileSync(data, [JSON.stringify({ id: 'a', question: 'What is 6*7?', answer: 42 }), JSON.stringify({ id: 'b', question: 'What is 2+2?', answer: 5 })].join('\n') + '\n');
    const model = modelFromEngine(new ScriptedEngine([ids('<|channel|>final<|message|>\\boxed{42}<|return|>'), ids('<|channel|>final<|message|>\\boxed{4}<|return|>')]));
    const progress: number[] = [];
    const result = await runEval({ kind: 'exact', data, model, outDir: join(dir, 'out'), concurrency: 1, onProgress: (done) => progress.push(done) });
    assert.equal(result.cases, 2);
    assert.equal(result.score.mean, 0.5);
    assert.deepEqual(result.failed, []);
    assert.deepEqual(progress, [0, 1, 2]);
    assert.match(readFileSync(result.reportPath, 'utf8'), /<html/i);
    await assert.rejects(runEval({ kind: 'exact', data: join(dir, 'missing.jsonl'), model, outDir: join(dir, 'out2') }), (e: unknown) => e instanceof GptossError && e.code === 'input');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('on the embedded demo model, chat streams to usage and done, and outputSchema makes the answer valid JSON of the schema', async () => {
  const saved = { model: process.env['GPTOSS_MODEL'], hub: process.env['HF_HUB_CACHE'] };
  const emptyHub = mkdtempSync(join(tmpdir(), 'gptoss-api-hub-'));
  delete process.env['GPTOSS_MODEL'];
  process.env['HF_HUB_CACHE'] = emptyHub; // so the default chain ends at the demo model
  const model = await loadModel({ threads: 1, contextLength: 512 });
  try {
    assert.equal(model.randomWeights, true);
    assert.equal(model.contextLength, 512);
    const got = await events(model.chat('Hello', { maxTokens: 8, seed: 7 }));
    assert.deepEqual(got.slice(-2).map((e) => e.type), ['usage', 'done']);
    const usage = got.at(-2);
    assert.ok(usage?.type === 'usage');
    assert.equal(usage.usage.outputTokens, 8);

    const schema = { type: 'object', properties: { count: { type: 'integer' } }, required: ['count'], additionalProperties: false };
    const r = await model.complete('How many?', { outputSchema: schema, maxTokens: 48, seed: 3 });
    const parsed = JSON.parse(r.text) as Record<string, unknown>;
    assert.deepEqual(Object.keys(parsed), ['count']);
    assert.ok(Number.isInteger(parsed['count']));
  } finally {
    await model.close();
    if (saved.model !== undefined) process.env['GPTOSS_MODEL'] = saved.model;
    if (saved.hub === undefined) delete process.env['HF_HUB_CACHE'];
    else process.env['HF_HUB_CACHE'] = saved.hub;
    rmSync(emptyHub, { recursive: true, force: true });
  }
});

test('the built-in browser searches a documents folder: its call and result are events, and the answer follows', async () => {
  const search = ids('<|channel|>analysis to=browser.search code<|message|>{"query":"hand washing soap"}<|call|>');
  const answer = ids('<|channel|>final<|message|>Wash with soap.<|return|>');
  const scripted = new ScriptedEngine([search, answer]);
  const model = modelFromEngine(scripted);
  const r = await model.complete('How do I wash my hands?', { tools: [{ type: 'browser', documents: join(import.meta.dirname, '../fixtures/docs') }] });
  assert.equal(r.toolCalls.length, 1);
  const call = r.toolCalls[0]!;
  assert.equal(call.name, 'browser.search');
  assert.equal(call.builtin, true);
  assert.equal(call.isError, false);
  assert.match(call.output, /hand/i);
  assert.equal(r.text, 'Wash with soap.');
  // The browser's namespace was in the system message.
  assert.match(getTokenizer().decode(scripted.steps[0]![0]!.tokens), /## browser\n/);
  await assert.rejects(model.complete('x', { tools: [{ type: 'browser', documents: join(tmpdir(), 'no-such-docs-folder') }] }), (e: unknown) => e instanceof GptossError);
});

test('functions without handlers end the turn with the call; the caller answers it with a tool message and chats again', async () => {
  const call = ids('<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city":"Oslo"}<|call|>');
  const answer = ids('<|channel|>final<|message|>3 degrees.<|return|>');
  const scripted = new ScriptedEngine([call, answer]);
  const model = modelFromEngine(scripted);
  const tools = [{ type: 'function' as const, name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } }];
  const first = await model.complete('Weather in Oslo?', { tools, date: null });
  assert.equal(first.finishReason, 'tool-calls');
  assert.deepEqual(first.pendingToolCall, { name: 'get_weather', arguments: '{"city":"Oslo"}' });
  assert.deepEqual(first.toolCalls, []);

  const second = await model.complete(
    [
      { role: 'user', content: 'Weather in Oslo?' },
      { role: 'assistant', toolCall: first.pendingToolCall! },
      { role: 'tool', name: 'get_weather', content: '{"celsius":3}' },
    ],
    { tools, date: null },
  );
  assert.equal(second.finishReason, 'stop');
  assert.equal(second.text, '3 degrees.');
  assert.equal(second.pendingToolCall, undefined);
  // The second turn's prompt: the last step that fed more than the one sampled token.
  const prompt = getTokenizer().decode(scripted.steps.filter((s) => s[0]!.tokens.length > 1).at(-1)![0]!.tokens);
  assert.match(prompt, /<\|start\|>assistant to=functions\.get_weather<\|channel\|>commentary <\|constrain\|>json<\|message\|>\{"city":"Oslo"\}<\|call\|><\|start\|>functions\.get_weather to=assistant<\|channel\|>commentary<\|message\|>\{"celsius":3\}<\|end\|><\|start\|>assistant$/);
  assert.deepEqual(renderPrompt([{ role: 'user', content: 'Weather in Oslo?' }, { role: 'assistant', toolCall: first.pendingToolCall! }, { role: 'tool', name: 'get_weather', content: '{"celsius":3}' }], { date: null, functions: tools }), encode(prompt, { allowedSpecial: 'all' }));

  await assert.rejects(
    model.complete('x', { tools: [...tools, { type: 'function', name: 'other', handler: () => 1 }] }),
    (e: unknown) => e instanceof GptossError && e.code === 'usage' && /every function a handler/.test(e.message),
  );
});
