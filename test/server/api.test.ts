// Contract tests of `gptoss serve` with the official openai client against a server on 127.0.0.1,
// the model replaced by engines that replay real harmony completions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import OpenAI from 'openai';
import type { Engine } from '../../src/engine/engine.ts';
import type { ServerOptions } from '../../src/server/index.ts';
import { ObservedBatchingEngine, PromptEngine, startServer } from './helpers.ts';

/** A server whose batches take every token at once (the contract tests are not about scheduling). */
const start = (engine: Engine, options: Partial<ServerOptions> = {}) => startServer(engine, { batching: { maxBatchTokens: 1 << 20, prefillChunk: 1 << 20 }, ...options });

const REASONED = (reasoning: string, answer: string): string =>
  `<|channel|>analysis<|message|>${reasoning}<|end|><|start|>assistant<|channel|>final<|message|>${answer}<|return|>`;

/** The last user message of a rendered prompt. */
function lastUser(prompt: string): string {
  const at = prompt.lastIndexOf('<|start|>user<|message|>');
  return at < 0 ? '' : prompt.slice(at + '<|start|>user<|message|>'.length, prompt.indexOf('<|end|>', at));
}

const WEATHER_TOOL = {
  type: 'function' as const,
  name: 'get_weather',
  description: 'Current weather in a city',
  parameters: { type: 'object', properties: { location: { type: 'string' } }, required: ['location'], additionalProperties: false },
  strict: true,
};

/** A model that calls get_weather once, then answers from the tool result. */
function weatherModel(prompt: string): string {
  const result = /<\|start\|>functions\.get_weather to=assistant<\|channel\|>commentary<\|message\|>(.*?)<\|end\|>/.exec(prompt);
  if (result !== null) return REASONED('The tool answered.', `It is ${JSON.parse(result[1]!).temperature} degrees.`);
  return '<|channel|>analysis<|message|>I need the weather.<|end|><|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"location":"Paris"}<|call|>';
}

test('responses: reasoning item and message, usage, effort in the system message', async () => {
  const engine = new PromptEngine((p) => REASONED('The user greets me.', `Hello, ${lastUser(p)}!`));
  const s = await start(engine);
  try {
    const r = await s.client.responses.create({ model: 'prompt-engine', input: 'Ada', instructions: 'Be brief.', reasoning: { effort: 'high' } });
    assert.equal(r.status, 'completed');
    assert.equal(r.output_text, 'Hello, Ada!');
    const [reasoning, message] = r.output;
    assert.equal(reasoning?.type, 'reasoning');
    assert.deepEqual(reasoning?.type === 'reasoning' ? reasoning.content : undefined, [{ type: 'reasoning_text', text: 'The user greets me.' }]);
    assert.equal(message?.type, 'message');
    assert.ok(r.usage!.input_tokens > 0);
    assert.ok(r.usage!.output_tokens_details.reasoning_tokens > 0 && r.usage!.output_tokens_details.reasoning_tokens < r.usage!.output_tokens);
    const prompt = engine.prompts[0]!;
    assert.match(prompt, /^<\|start\|>system<\|message\|>.*\nReasoning: high\n/s);
    assert.match(prompt, /<\|start\|>developer<\|message\|># Instructions\n\nBe brief\.<\|end\|>/);
    assert.ok(prompt.endsWith('<|start|>user<|message|>Ada<|end|><|start|>assistant'));
    assert.match(s.logs.join('\n'), /POST \/v1\/responses 200 in=\d+ out=\d+ \d+ms/);
    assert.ok(!s.logs.join('\n').includes('Ada'), 'no prompt text in the log');
  } finally {
    await s.close();
  }
});

test('responses: streaming event sequence with consecutive sequence numbers (reference shapes)', async () => {
  const engine = new PromptEngine(() => REASONED('Think briefly.', 'Streamed answer, in pieces.'));
  const s = await start(engine);
  try {
    const stream = await s.client.responses.create({ model: 'prompt-engine', input: 'go', stream: true });
    const events: { type: string; sequence_number: number; [k: string]: unknown }[] = [];
    for await (const e of stream) events.push(e as unknown as (typeof events)[number]);
    assert.deepEqual(events.map((e) => e.sequence_number), events.map((_, i) => i));
    const types = events.map((e) => e.type).filter((t, i, all) => !(t.endsWith('.delta') && all[i - 1] === t));
    assert.deepEqual(types, [
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.content_part.added',
      'response.reasoning_text.delta',
      'response.reasoning_text.done',
      'response.content_part.done',
      'response.output_item.done',
      'response.output_item.added',
      'response.content_part.added',
      'response.output_text.delta',
      'response.output_text.done',
      'response.content_part.done',
      'response.output_item.done',
      'response.completed',
    ]);
    const text = events.filter((e) => e.type === 'response.output_text.delta').map((e) => e.delta).join('');
    assert.equal(text, 'Streamed answer, in pieces.');
    const done = events.find((e) => e.type === 'response.output_text.done')!;
    assert.equal(done.text, text);
    assert.equal(done.output_index, 1);
    const reasoning = events.filter((e) => e.type === 'response.reasoning_text.delta').map((e) => e.delta).join('');
    assert.equal(reasoning, 'Think briefly.');
    // The shapes of the reference server's recorded stream (tests-data/basic-event-stream.txt).
    const added = events.find((e) => e.type === 'response.content_part.added' && e.output_index === 1)!;
    assert.deepEqual(added.part, { type: 'output_text', annotations: [], logprobs: [], text: '' });
    const completed = events.at(-1)! as unknown as { response: { status: string; usage: { output_tokens_details: { reasoning_tokens: number } }; output: unknown[] } };
    assert.equal(completed.response.status, 'completed');
    assert.equal(completed.response.output.length, 2);
    assert.ok(completed.response.usage.output_tokens_details.reasoning_tokens > 0);
  } finally {
    await s.close();
  }
});

test('responses: a request that asks for a reasoning summary gets the reasoning text as its summary too', async () => {
  const engine = new PromptEngine(() => REASONED('The user greets me.', 'Hello!'));
  const s = await start(engine);
  try {
    const plain = await s.client.responses.create({ model: 'prompt-engine', input: 'hi' });
    assert.deepEqual(plain.output[0], { id: plain.output[0]!.id, type: 'reasoning', summary: [], content: [{ type: 'reasoning_text', text: 'The user greets me.' }] });
    assert.equal(plain.reasoning?.summary, null);

    const asked = await s.client.responses.create({ model: 'prompt-engine', input: 'hi', reasoning: { summary: 'auto' } });
    assert.deepEqual(asked.output[0], {
      id: asked.output[0]!.id,
      type: 'reasoning',
      summary: [{ type: 'summary_text', text: 'The user greets me.' }],
      content: [{ type: 'reasoning_text', text: 'The user greets me.' }],
    });
    assert.equal(asked.reasoning?.summary, 'auto');
    await assert.rejects(
      s.client.responses.create({ model: 'prompt-engine', input: 'hi', reasoning: { summary: 'long' as 'auto' } }),
      (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === 'reasoning.summary',
    );

    // Streamed: the summary part events OpenAI sends, around the same text.
    const stream = s.client.responses.stream({ model: 'prompt-engine', input: 'hi', reasoning: { effort: 'low', summary: 'detailed' } });
    const events: OpenAI.Responses.ResponseStreamEvent[] = [];
    for await (const e of stream) events.push(e);
    const summaryEvents = events.filter((e) => e.type.startsWith('response.reasoning_summary_'));
    const types = summaryEvents.map((e) => e.type).filter((t, i, all) => !(t.endsWith('.delta') && all[i - 1] === t));
    assert.deepEqual(types, ['response.reasoning_summary_part.added', 'response.reasoning_summary_text.delta', 'response.reasoning_summary_text.done', 'response.reasoning_summary_part.done']);
    const reasoningId = events.find((e) => e.type === 'response.output_item.added')!;
    for (const e of summaryEvents) {
      const ev = e as unknown as { item_id: string; output_index: number; summary_index: number };
      assert.equal(ev.item_id, (reasoningId as OpenAI.Responses.ResponseOutputItemAddedEvent).item.id);
      assert.equal(ev.output_index, 0);
      assert.equal(ev.summary_index, 0);
    }
    const deltas = summaryEvents.flatMap((e) => (e.type === 'response.reasoning_summary_text.delta' ? [e.delta] : [])).join('');
    assert.equal(deltas, 'The user greets me.');
    const partDone = summaryEvents.find((e) => e.type === 'response.reasoning_summary_part.done') as OpenAI.Responses.ResponseReasoningSummaryPartDoneEvent;
    assert.deepEqual(partDone.part, { type: 'summary_text', text: 'The user greets me.' });
    const itemDone = events.find((e) => e.type === 'response.output_item.done')!;
    assert.ok(events.indexOf(partDone) < events.indexOf(itemDone));
    const final = await stream.finalResponse();
    const reasoning = final.output[0];
    assert.ok(reasoning?.type === 'reasoning');
    assert.deepEqual(reasoning.summary, [{ type: 'summary_text', text: 'The user greets me.' }]);
  } finally {
    await s.close();
  }
});

test('responses: a message cut off by max_output_tokens is incomplete, streamed and not', async () => {
  const engine = new PromptEngine(() => REASONED('Count.', 'one two three four'));
  const s = await start(engine);
  try {
    const whole = await s.client.responses.create({ model: 'prompt-engine', input: 'count', max_output_tokens: 13 });
    assert.equal(whole.status, 'incomplete');
    assert.deepEqual(whole.incomplete_details, { reason: 'max_output_tokens' });
    const message = whole.output.find((o) => o.type === 'message');
    assert.ok(message !== undefined && message.type === 'message');
    assert.equal(message.status, 'incomplete');
    assert.equal(whole.output_text, 'one two');

    const stream = await s.client.responses.create({ model: 'prompt-engine', input: 'count', max_output_tokens: 13, stream: true });
    const done: OpenAI.Responses.ResponseOutputItem[] = [];
    let final: OpenAI.Responses.Response | undefined;
    for await (const e of stream) {
      if (e.type === 'response.output_item.done') done.push(e.item);
      if (e.type === 'response.incomplete') final = e.response;
    }
    assert.deepEqual(done.map((i) => i.type), ['reasoning', 'message']);
    assert.equal((done[1] as OpenAI.Responses.ResponseOutputMessage).status, 'incomplete');
    assert.equal(final?.status, 'incomplete');
    assert.equal((final!.output[1] as OpenAI.Responses.ResponseOutputMessage).status, 'incomplete');

    // An answer that ended on its own is completed.
    const full = await s.client.responses.create({ model: 'prompt-engine', input: 'count', stream: true });
    for await (const e of full) if (e.type === 'response.output_item.done' && e.item.type === 'message') assert.equal(e.item.status, 'completed');
  } finally {
    await s.close();
  }
});

test('responses: function call round trip, by previous_response_id and by replaying items', async () => {
  const engine = new PromptEngine(weatherModel);
  const s = await start(engine);
  try {
    const first = await s.client.responses.create({ model: 'prompt-engine', input: 'Weather in Paris?', tools: [WEATHER_TOOL] });
    const call = first.output.find((o) => o.type === 'function_call');
    assert.ok(call !== undefined && call.type === 'function_call');
    assert.equal(call.name, 'get_weather');
    assert.deepEqual(JSON.parse(call.arguments), { location: 'Paris' });
    assert.match(engine.prompts[0]!, /<\|start\|>developer<\|message\|># Tools\n\n## functions\n\nnamespace functions \{\n\n\/\/ Current weather in a city\ntype get_weather = \(_: \{\nlocation: string,\n\}\) => any;/);

    const second = await s.client.responses.create({
      model: 'prompt-engine',
      previous_response_id: first.id,
      input: [{ type: 'function_call_output', call_id: call.call_id, output: '{"temperature": 21}' }],
      tools: [WEATHER_TOOL],
    });
    assert.equal(second.output_text, 'It is 21 degrees.');
    const prompt = engine.prompts.at(-1)!;
    // The turn is still open, so its reasoning stays in the prompt, then the call and its result.
    assert.match(prompt, /<\|start\|>assistant<\|channel\|>analysis<\|message\|>I need the weather\.<\|end\|><\|start\|>assistant to=functions\.get_weather<\|channel\|>commentary <\|constrain\|>json<\|message\|>\{"location":"Paris"\}<\|call\|><\|start\|>functions\.get_weather to=assistant<\|channel\|>commentary<\|message\|>\{"temperature": 21\}<\|end\|><\|start\|>assistant$/);

    // Stateless: the client sends the items back itself.
    const replay = await s.client.responses.create({
      model: 'prompt-engine',
      store: false,
      input: [
        { role: 'user', content: 'Weather in Paris?' },
        ...first.output.map((o) => o as unknown as OpenAI.Responses.ResponseInputItem),
        { type: 'function_call_output', call_id: call.call_id, output: '{"temperature": 19}' },
      ],
      tools: [WEATHER_TOOL],
    });
    assert.equal(replay.output_text, 'It is 19 degrees.');
    // The second request reused the first one's cached prefix.
    assert.ok(replay.usage!.input_tokens_details.cached_tokens > 0);

    const streamed = await s.client.responses.create({ model: 'prompt-engine', input: 'Weather?', tools: [WEATHER_TOOL], stream: true });
    const types: string[] = [];
    let args = '';
    for await (const e of streamed) {
      types.push(e.type);
      if (e.type === 'response.function_call_arguments.delta') args += e.delta;
    }
    assert.ok(types.includes('response.function_call_arguments.done'));
    assert.deepEqual(JSON.parse(args), { location: 'Paris' });
  } finally {
    await s.close();
  }
});

test('responses: item_reference inputs resolve to stored items; an unknown id is a 400 naming it', async () => {
  const engine = new PromptEngine((p) => (p.includes('Thanks!') ? REASONED('Polite.', 'You are welcome.') : weatherModel(p)));
  const s = await start(engine);
  try {
    const first = await s.client.responses.create({ model: 'prompt-engine', input: 'Weather in Paris?', tools: [WEATHER_TOOL] });
    const [reasoning, call] = first.output;
    assert.ok(reasoning?.type === 'reasoning' && call?.type === 'function_call');
    // The AI SDK's next step: earlier output items by reference, the tool's answer in full.
    const second = await s.client.responses.create({
      model: 'prompt-engine',
      input: [
        { role: 'user', content: 'Weather in Paris?' },
        { type: 'item_reference', id: reasoning.id },
        { type: 'item_reference', id: call.id! },
        { type: 'function_call_output', id: 'fco_paris', call_id: call.call_id, output: '{"temperature": 21}' },
      ],
      tools: [WEATHER_TOOL],
    });
    assert.equal(second.output_text, 'It is 21 degrees.');
    assert.match(engine.prompts.at(-1)!, /<\|start\|>user<\|message\|>Weather in Paris\?<\|end\|><\|start\|>assistant<\|channel\|>analysis<\|message\|>I need the weather\.<\|end\|><\|start\|>assistant to=functions\.get_weather<\|channel\|>commentary <\|constrain\|>json<\|message\|>\{"location":"Paris"\}<\|call\|><\|start\|>functions\.get_weather to=assistant<\|channel\|>commentary<\|message\|>\{"temperature": 21\}<\|end\|><\|start\|>assistant$/);

    // Input items with ids are stored too, and a reference may omit its type.
    const answer = second.output.find((o) => o.type === 'message')!;
    const third = await s.client.responses.create({
      model: 'prompt-engine',
      input: [
        { role: 'user', content: 'Weather in Paris?' },
        { type: 'item_reference', id: call.id! },
        { type: 'item_reference', id: 'fco_paris' },
        { id: answer.id } as OpenAI.Responses.ResponseInputItem,
        { role: 'user', content: 'Thanks!' },
      ],
    });
    assert.equal(third.output_text, 'You are welcome.');
    assert.match(engine.prompts.at(-1)!, /\{"temperature": 21\}<\|end\|><\|start\|>assistant<\|channel\|>final<\|message\|>It is 21 degrees\.<\|end\|><\|start\|>user<\|message\|>Thanks!<\|end\|><\|start\|>assistant$/);

    await assert.rejects(
      s.client.responses.create({ model: 'prompt-engine', input: [{ role: 'user', content: 'x' }, { type: 'item_reference', id: 'rs_missing' }] }),
      (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === 'input' && e.message.includes("'rs_missing'") && e.type === 'invalid_request_error',
    );
    // Deleting a response forgets its items.
    await s.client.responses.delete(second.id);
    await assert.rejects(
      s.client.responses.create({ model: 'prompt-engine', input: [{ role: 'user', content: 'x' }, { type: 'item_reference', id: 'fco_paris' }] }),
      (e: unknown) => e instanceof OpenAI.BadRequestError && e.message.includes("'fco_paris'"),
    );
    // A response stored with store: false leaves nothing to refer to.
    const unstored = await s.client.responses.create({ model: 'prompt-engine', input: 'Weather?', tools: [WEATHER_TOOL], store: false });
    const unstoredCall = unstored.output.find((o) => o.type === 'function_call')!;
    await assert.rejects(
      s.client.responses.create({ model: 'prompt-engine', input: [{ role: 'user', content: 'x' }, { type: 'item_reference', id: unstoredCall.id! }] }),
      (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === 'input',
    );
  } finally {
    await s.close();
  }
});

test('responses: the built-in browser runs on the server and its call is reported', async () => {
  const docs = mkdtempSync(join(tmpdir(), 'gptoss-docs-'));
  writeFileSync(join(docs, 'tides.md'), '# Tides\n\nThe tide in Brest rises 7 metres.\n');
  const { BrowserSession, LocalDocsBackend } = await import('../../src/tools/index.ts');
  const backend = await LocalDocsBackend.open(docs);
  const engine = new PromptEngine((p) => {
    if (p.includes('<|start|>browser.open to=assistant')) {
      const sawResult = p.includes('Brest rises 7 metres');
      return REASONED('Found it.', sawResult ? 'Seven metres【1†L1-L2】.' : 'Not found.');
    }
    if (p.includes('<|start|>browser.search to=assistant')) {
      return '<|channel|>analysis<|message|>Open the first hit.<|end|><|start|>assistant<|channel|>analysis to=browser.open code<|message|>{"id": 0, "cursor": 0}<|call|>';
    }
    return '<|channel|>analysis<|message|>Search the docs.<|end|><|start|>assistant<|channel|>analysis to=browser.search code<|message|>{"query": "tide Brest"}<|call|>';
  });
  const s = await start(engine, { tools: { browser: () => new BrowserSession(backend) } });
  try {
    const r = await s.client.responses.create({ model: 'prompt-engine', input: 'How high is the tide in Brest?', tools: [{ type: 'web_search_preview' }] });
    // The citation mark became a link and a url_citation annotation over it.
    const message = r.output.find((o) => o.type === 'message');
    const part = message?.type === 'message' ? message.content[0] : undefined;
    assert.ok(part !== undefined && part.type === 'output_text');
    assert.ok(part.text.startsWith('Seven metres') && !part.text.includes('【'), part.text);
    assert.equal(part.annotations.length, 1);
    const a = part.annotations[0]!;
    assert.ok(a.type === 'url_citation' && part.text.slice(a.start_index, a.end_index).includes('Tides'), JSON.stringify(a));
    assert.deepEqual(r.output.filter((o) => o.type === 'web_search_call').map((o) => (o as unknown as { action: { type: string } }).action.type), ['search', 'open_page']);
    const search = r.output.find((o) => o.type === 'web_search_call');
    assert.ok(search !== undefined && search.type === 'web_search_call');
    assert.equal(search.status, 'completed');
    assert.deepEqual((search as unknown as { action: unknown }).action, { type: 'search', query: 'tide Brest' });
    assert.match(engine.prompts[0]!, /<\|start\|>system<\|message\|>.*# Tools\n\n## browser\n/s);

    const noBrowser = await start(new PromptEngine(() => REASONED('x', 'y')));
    try {
      await assert.rejects(
        noBrowser.client.responses.create({ model: 'prompt-engine', input: 'x', tools: [{ type: 'web_search_preview' }] }),
        (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === 'tools[0].type',
      );
    } finally {
      await noBrowser.close();
    }
  } finally {
    await s.close();
    rmSync(docs, { recursive: true, force: true });
  }
});

test('chat: the built-in browser\'s citation marks become links with url_citation annotations, whole and streamed, as in the Responses API', async () => {
  const docs = mkdtempSync(join(tmpdir(), 'gptoss-docs-'));
  writeFileSync(join(docs, 'tides.md'), '# Tides\n\nThe tide in Brest rises 7 metres.\n\nSpring tides reach 8 metres.\n');
  const { BrowserSession, LocalDocsBackend } = await import('../../src/tools/index.ts');
  const backend = await LocalDocsBackend.open(docs);
  // Two marks naming the opened page, and one naming no page (left as written).
  const answer = 'Seven metres【1†L1-L2】, eight at spring tides【1†L4】 (see also 【7†L1】).';
  const engine = new PromptEngine((p) => {
    if (p.includes('<|start|>browser.open to=assistant')) return REASONED('Found it.', p.includes('Brest rises 7 metres') ? answer : 'Not found.');
    if (p.includes('<|start|>browser.search to=assistant')) {
      return '<|channel|>analysis<|message|>Open the first hit.<|end|><|start|>assistant<|channel|>analysis to=browser.open code<|message|>{"id": 0, "cursor": 0}<|call|>';
    }
    return '<|channel|>analysis<|message|>Search the docs.<|end|><|start|>assistant<|channel|>analysis to=browser.search code<|message|>{"query": "tide Brest"}<|call|>';
  });
  const s = await start(engine, { tools: { browser: () => new BrowserSession(backend) }, toolsByDefault: true });
  type UrlCitation = { type: 'url_citation'; url_citation: { start_index: number; end_index: number; url: string; title: string } };
  try {
    const messages: OpenAI.Chat.ChatCompletionMessageParam[] = [{ role: 'user', content: 'How high is the tide in Brest?' }];
    const whole = await s.client.chat.completions.create({ model: 'prompt-engine', messages });
    const message = whole.choices[0]!.message;
    const content = message.content!;
    assert.ok(content.startsWith('Seven metres ([Tides](') && !content.includes('【1'), content);
    assert.ok(content.endsWith(' (see also 【7†L1】).'), content);
    const annotations = message.annotations as UrlCitation[];
    assert.equal(annotations.length, 2);
    for (const a of annotations) {
      assert.equal(a.type, 'url_citation');
      assert.deepEqual(Object.keys(a.url_citation).sort(), ['end_index', 'start_index', 'title', 'url']);
      assert.equal(a.url_citation.title, 'Tides');
      // Each annotation spans exactly its link.
      assert.match(content.slice(a.url_citation.start_index, a.url_citation.end_index), /^ \(\[Tides\]\([^)]+\)\)$/);
    }
    assert.ok(annotations[0]!.url_citation.end_index <= annotations[1]!.url_citation.start_index);

    // The same text and citations as the Responses API gives for the same answer.
    const r = await s.client.responses.create({ model: 'prompt-engine', input: 'How high is the tide in Brest?' });
    assert.equal(r.output_text, content);
    const part = r.output.flatMap((o) => (o.type === 'message' ? o.content : []))[0];
    assert.ok(part !== undefined && part.type === 'output_text');
    assert.deepEqual(part.annotations, annotations.map((a) => ({ type: 'url_citation', ...a.url_citation })));

    // Streamed: the marks never show, and each annotation comes in the chunk whose content holds its link.
    const stream = await s.client.chat.completions.create({ model: 'prompt-engine', messages, stream: true });
    let streamed = '';
    const streamedAnnotations: UrlCitation[] = [];
    let chunks = 0;
    for await (const chunk of stream) {
      const delta = chunk.choices[0]?.delta as (OpenAI.Chat.ChatCompletionChunk.Choice.Delta & { annotations?: UrlCitation[] }) | undefined;
      if (delta?.content) {
        chunks++;
        assert.ok(!/【1/.test(delta.content), delta.content);
        streamed += delta.content;
      }
      for (const a of delta?.annotations ?? []) {
        assert.ok(a.url_citation.end_index <= streamed.length, `annotation ${JSON.stringify(a)} before its text`);
        streamedAnnotations.push(a);
      }
    }
    assert.ok(chunks > 3, 'the answer streamed in several chunks');
    assert.equal(streamed, content);
    assert.deepEqual(streamedAnnotations, annotations);

    // Without a browser the content is the model's text and there are no annotations.
    const plain = await start(new PromptEngine(() => REASONED('x', 'Seven metres【1†L1】.')));
    try {
      const m = (await plain.client.chat.completions.create({ model: 'prompt-engine', messages })).choices[0]!.message;
      assert.equal(m.content, 'Seven metres【1†L1】.');
      assert.deepEqual(m.annotations, []);
    } finally {
      await plain.close();
    }
  } finally {
    await s.close();
    rmSync(docs, { recursive: true, force: true });
  }
});

test('chat: reasoning in its own fields, streaming with usage, tool call round trip with reasoning sent back', async () => {
  const engine = new PromptEngine(weatherModel);
  const s = await start(engine);
  const tools: OpenAI.Chat.ChatCompletionTool[] = [{ type: 'function', function: { name: 'get_weather', description: 'Current weather in a city', parameters: WEATHER_TOOL.parameters } }];
  try {
    const first = await s.client.chat.completions.create({
      model: 'prompt-engine',
      messages: [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Weather in Paris?' }],
      tools,
      reasoning_effort: 'low',
    });
    const choice = first.choices[0]!;
    assert.equal(choice.finish_reason, 'tool_calls');
    const message = choice.message as typeof choice.message & { reasoning: string; reasoning_content: string };
    assert.equal(message.reasoning, 'I need the weather.');
    assert.equal(message.reasoning_content, 'I need the weather.');
    assert.equal(message.content, null);
    const call = message.tool_calls![0]!;
    assert.equal(call.type === 'function' ? call.function.name : '', 'get_weather');
    assert.match(engine.prompts[0]!, /Reasoning: low/);
    assert.match(engine.prompts[0]!, /<\|start\|>developer<\|message\|># Instructions\n\nYou are terse\./);

    const second = await s.client.chat.completions.create({
      model: 'prompt-engine',
      messages: [
        { role: 'user', content: 'Weather in Paris?' },
        { role: 'assistant', content: null, tool_calls: message.tool_calls, reasoning: message.reasoning } as OpenAI.Chat.ChatCompletionMessageParam,
        { role: 'tool', tool_call_id: call.id, content: '{"temperature": 25}' },
      ],
      tools,
    });
    assert.equal(second.choices[0]!.message.content, 'It is 25 degrees.');
    assert.equal(second.choices[0]!.finish_reason, 'stop');
    assert.match(engine.prompts.at(-1)!, /<\|start\|>assistant<\|channel\|>analysis<\|message\|>I need the weather\.<\|end\|><\|start\|>assistant to=functions\.get_weather/);

    const stream = await s.client.chat.completions.create({
      model: 'prompt-engine',
      messages: [{ role: 'user', content: 'Weather in Paris?' }, { role: 'assistant', content: null, tool_calls: message.tool_calls }, { role: 'tool', tool_call_id: call.id, content: '{"temperature": 3}' }],
      tools,
      stream: true,
      stream_options: { include_usage: true },
    });
    let content = '';
    let reasoning = '';
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | undefined | null;
    for await (const chunk of stream) {
      const delta = chunk.choices[0]?.delta as (OpenAI.Chat.ChatCompletionChunk.Choice.Delta & { reasoning?: string; reasoning_content?: string }) | undefined;
      if (delta?.content) content += delta.content;
      if (delta?.reasoning) {
        reasoning += delta.reasoning;
        assert.equal(delta.reasoning_content, delta.reasoning);
        assert.equal(delta.content, undefined);
      }
      finish = chunk.choices[0]?.finish_reason ?? finish;
      if (chunk.usage) usage = chunk.usage;
    }
    assert.equal(content, 'It is 3 degrees.');
    assert.equal(reasoning, 'The tool answered.');
    assert.equal(finish, 'stop');
    assert.ok(usage !== undefined && usage !== null && usage.completion_tokens > 0 && usage.prompt_tokens > 0);
  } finally {
    await s.close();
  }
});

test('chat: stop strings, max_tokens and logprobs; the server cap on output tokens', async () => {
  const engine = new PromptEngine(() => REASONED('Count.', 'one two three four'));
  const s = await start(engine, { maxOutputTokens: 13 });
  try {
    const stopped = await s.client.chat.completions.create({ model: 'prompt-engine', messages: [{ role: 'user', content: 'count' }], stop: [' two'] });
    assert.equal(stopped.choices[0]!.message.content, 'one');
    assert.equal(stopped.choices[0]!.finish_reason, 'stop');
    const short = await s.client.chat.completions.create({ model: 'prompt-engine', messages: [{ role: 'user', content: 'count' }], max_completion_tokens: 3 });
    assert.equal(short.choices[0]!.finish_reason, 'length');
    assert.equal(short.usage!.completion_tokens, 3);
    const capped = await s.client.chat.completions.create({ model: 'prompt-engine', messages: [{ role: 'user', content: 'count' }], max_tokens: 1000 });
    assert.equal(capped.choices[0]!.finish_reason, 'length');
    assert.equal(capped.usage!.completion_tokens, 13);
    const lpServer = await start(engine);
    const lp = await lpServer.client.chat.completions.create({ model: 'prompt-engine', messages: [{ role: 'user', content: 'count' }], logprobs: true, top_logprobs: 2 });
    await lpServer.close();
    const entries = lp.choices[0]!.logprobs!.content!;
    assert.equal(entries.map((e) => e.token).join(''), 'one two three four');
    for (const e of entries) {
      assert.ok(e.logprob <= 0);
      assert.equal(e.top_logprobs.length, 2);
    }
  } finally {
    await s.close();
  }
});

test('chat: each streamed chunk carries the logprobs of its own delta; together they equal the non-streamed ones', async () => {
  const engine = new PromptEngine(() => REASONED('Count.', 'one two three four'));
  const s = await start(engine);
  try {
    const params = { model: 'prompt-engine', messages: [{ role: 'user' as const, content: 'count' }], logprobs: true, top_logprobs: 2 };
    for (const stop of [undefined, [' four']]) {
      const whole = await s.client.chat.completions.create({ ...params, ...(stop !== undefined ? { stop } : {}) });
      const expected = whole.choices[0]!.logprobs!.content!;
      assert.equal(expected.map((e) => e.token).join(''), whole.choices[0]!.message.content);
      const stream = await s.client.chat.completions.create({ ...params, ...(stop !== undefined ? { stop } : {}), stream: true });
      const streamed: OpenAI.Chat.ChatCompletionTokenLogprob[] = [];
      let content = '';
      for await (const chunk of stream) {
        const choice = chunk.choices[0];
        if (choice === undefined) continue;
        const entries = choice.logprobs?.content ?? [];
        // The chunk's tokens spell its own delta, not the previous chunk's.
        assert.equal(entries.map((e) => e.token).join(''), choice.delta.content ?? '', JSON.stringify(chunk));
        streamed.push(...entries);
        content += choice.delta.content ?? '';
      }
      assert.equal(content, whole.choices[0]!.message.content);
      assert.deepEqual(streamed, expected, `stop ${JSON.stringify(stop)}`);
    }
  } finally {
    await s.close();
  }
});

test('auth, models, health and error shapes', async () => {
  const engine = new PromptEngine(() => REASONED('r', 'ok'), { contextLength: 300 });
  const s = await start(engine, { apiKey: 'sekret', maxBodyBytes: 20000 });
  const url = s.running.url;
  try {
    const noKey = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'wrong', maxRetries: 0 });
    await assert.rejects(noKey.models.list(), (e: unknown) => e instanceof OpenAI.AuthenticationError && (e.error as { code?: string }).code === 'invalid_api_key');
    assert.equal((await fetch(`${url}/metrics`)).status, 401);
    const health = await fetch(`${url}/health`);
    assert.equal(health.status, 200);
    assert.equal(health.headers.get('access-control-allow-origin'), null, 'no CORS unless asked');
    const models = await s.client.models.list();
    assert.deepEqual(models.data.map((m) => m.id), ['prompt-engine']);

    await assert.rejects(s.client.chat.completions.create({ model: 'nope', messages: [{ role: 'user', content: 'x' }] }), (e: unknown) => e instanceof OpenAI.NotFoundError && e.param === 'model');
    await assert.rejects(s.client.chat.completions.create({ model: 'prompt-engine', messages: [{ role: 'user', content: 'x' }], temperature: 5 }), (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === 'temperature');
    await assert.rejects(s.client.chat.completions.create({ model: 'prompt-engine', messages: [{ role: 'user', content: 'x' }], logit_bias: { '-3': 1 } }), (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === 'logit_bias');
    await assert.rejects(s.client.chat.completions.create({ model: 'prompt-engine', messages: [{ role: 'wizard', content: 'x' }] as never }), (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === 'messages[0].role');
    await assert.rejects(s.client.responses.create({ model: 'prompt-engine', input: 'x', previous_response_id: 'resp_missing' }), (e: unknown) => e instanceof OpenAI.NotFoundError && e.param === 'previous_response_id');
    await assert.rejects(
      s.client.responses.create({ model: 'prompt-engine', input: 'word '.repeat(400) }),
      (e: unknown) => e instanceof OpenAI.BadRequestError && e.code === 'context_length_exceeded' && /maximum context length is 300 tokens/.test(e.message),
    );
    const big = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { authorization: 'Bearer sekret', 'content-type': 'application/json' }, body: JSON.stringify({ messages: [{ role: 'user', content: 'x'.repeat(30000) }] }) });
    assert.equal(big.status, 413);
    const bad = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { authorization: 'Bearer sekret', 'content-type': 'application/json' }, body: '{"messages": [' });
    assert.equal(bad.status, 400);
    const badBody = (await bad.json()) as { error: { message: string; type: string; param: unknown; code: unknown } };
    assert.deepEqual(Object.keys(badBody.error).sort(), ['code', 'message', 'param', 'type']);
    assert.equal((await fetch(`${url}/v1/nothing`, { headers: { authorization: 'Bearer sekret' } })).status, 404);

    engine.failWith = new Error('secret internal detail at /home/x');
    const failed = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { authorization: 'Bearer sekret', 'content-type': 'application/json' }, body: JSON.stringify({ messages: [{ role: 'user', content: 'x' }] }) });
    assert.equal(failed.status, 500);
    const failedText = await failed.text();
    assert.ok(!failedText.includes('secret internal detail'), failedText);
    assert.equal((JSON.parse(failedText) as { error: { type: string } }).error.type, 'server_error');
    // Failing after the stream began: an error event, then the stream ends; the slot is free again.
    await assert.rejects(
      (async () => {
        for await (const _ of await s.client.chat.completions.create({ model: 'prompt-engine', messages: [{ role: 'user', content: 'x' }], stream: true })) {
          // drain
        }
      })(),
      (e: unknown) => e instanceof OpenAI.APIError && !String((e as Error).message).includes('secret internal detail'),
    );
    assert.equal(s.server.active, 0);
    const metrics = await (await fetch(`${url}/metrics`, { headers: { authorization: 'Bearer sekret' } })).text();
    // Both failures count as 500: the one before any answer and the stream that failed after its 200.
    assert.match(metrics, /gptoss_requests_total\{method="POST",path="\/v1\/chat\/completions",status="500"\} 2\n/);
    assert.match(metrics, /gptoss_active_requests 0/);
  } finally {
    await s.close();
  }
});

// The tests below hold the engine at a step and wait on events; the timeout only turns a missing
// event into a loud failure (the server closes when it fires) instead of a hang.
const EVENTS = { timeout: 60_000 };

test('429 over --max-concurrency; a client disconnect mid-stream frees the slot and the sequence', EVENTS, async (t) => {
  const engine = new PromptEngine(() => REASONED('x'.repeat(50), 'y '.repeat(200)));
  const batching = new ObservedBatchingEngine(engine);
  const s = await startServer(batching, { maxConcurrency: 1 }, t.signal);
  // The generation cannot get past its 30th step (of ~250) until the client has gone.
  const held = engine.holdAt(30);
  try {
    const controller = new AbortController();
    const stream = await s.client.chat.completions.create({ model: 'prompt-engine', messages: [{ role: 'user', content: 'long' }], stream: true }, { signal: controller.signal });
    // The slot is taken before the response begins.
    assert.equal(s.server.active, 1);
    await assert.rejects(s.client.chat.completions.create({ model: 'prompt-engine', messages: [{ role: 'user', content: 'x' }] }), (e: unknown) => e instanceof OpenAI.RateLimitError);
    const chunks = stream[Symbol.asyncIterator]();
    for (let i = 0; i < 5; i++) assert.equal((await chunks.next()).done, false);
    await held;
    controller.abort();
    await batching.discarded; // the server saw the disconnect and cancelled the sequence
    engine.resume();
    assert.match(await s.logged(/POST \/v1\/chat\/completions (?!429)/), /POST \/v1\/chat\/completions 499/);
    assert.equal(engine.stepsBegun, 30, 'no step after the disconnect');
    assert.equal(s.server.active, 0, 'slot');
    assert.equal(s.server.engine.activeSequences, 0, 'sequences in the scheduler');
    assert.equal(engine.live, s.server.engine.pooledSequences, 'the cancelled sequence was freed, not pooled');
    assert.equal(engine.live, 0, 'sequences alive in the engine');
  } finally {
    await s.close();
  }
});

test('8 concurrent streams are batched together with nothing lost or mixed', EVENTS, async (t) => {
  const engine = new PromptEngine((p) => REASONED(`Echo ${lastUser(p)}.`, `You said ${lastUser(p)}, ${lastUser(p)}!`));
  const batching = new ObservedBatchingEngine(engine, { maxBatchTokens: 1 << 20, prefillChunk: 1 << 20 });
  const s = await startServer(batching, {}, t.signal);
  // The first step waits until all eight requests are queued in the scheduler.
  const held = engine.holdAt(1);
  try {
    const names = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel'];
    const all = Promise.all(
      names.map(async (name, i) => {
        if (i % 2 === 0) {
          const stream = await s.client.chat.completions.create({ model: 'prompt-engine', messages: [{ role: 'user', content: name }], stream: true });
          let text = '';
          for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
          return text;
        }
        const stream = await s.client.responses.create({ model: 'prompt-engine', input: name, stream: true });
        let text = '';
        for await (const e of stream) if (e.type === 'response.output_text.delta') text += e.delta;
        return text;
      }),
    );
    await held;
    await batching.sequencesStepped(names.length);
    engine.resume();
    const results = await all;
    assert.deepEqual(results, names.map((n) => `You said ${n}, ${n}!`));
    // The seven that queued behind the first step share the next one (with the first one's decode).
    assert.ok(Math.max(...engine.batches) >= 7, `largest batch ${Math.max(...engine.batches)}`);
  } finally {
    await s.close();
  }
});

test('responses: code_interpreter runs server-side; stored responses can be read back and deleted; --log-content', async () => {
  const calls: string[] = [];
  const python = {
    name: 'python',
    namespace: () => ({ name: 'python', description: 'Run python code.', tools: [] }),
    run: async (call: { recipient: string; content: string }) => {
      calls.push(call.content);
      return { content: '42\n' };
    },
  };
  const engine = new PromptEngine((p) =>
    p.includes('<|start|>python to=assistant')
      ? REASONED('It printed 42.', 'The answer is 42.')
      : '<|channel|>analysis<|message|>Compute it.<|end|><|start|>assistant<|channel|>analysis to=python code<|message|>print(6*7)<|call|>',
  );
  const s = await start(engine, { tools: { python: () => python }, logContent: true });
  try {
    const stream = await s.client.responses.create({ model: 'prompt-engine', input: 'What is 6*7?', tools: [{ type: 'code_interpreter', container: { type: 'auto' } }], stream: true });
    const types: string[] = [];
    let final: OpenAI.Responses.Response | undefined;
    for await (const e of stream) {
      types.push(e.type);
      if (e.type === 'response.completed') final = e.response;
    }
    assert.deepEqual(calls, ['print(6*7)']);
    for (const t of ['response.code_interpreter_call.in_progress', 'response.code_interpreter_call_code.delta', 'response.code_interpreter_call_code.done', 'response.code_interpreter_call.interpreting', 'response.code_interpreter_call.completed']) {
      assert.ok(types.includes(t), t);
    }
    const ci = final!.output.find((o) => o.type === 'code_interpreter_call');
    assert.ok(ci !== undefined && ci.type === 'code_interpreter_call');
    assert.equal(ci.code, 'print(6*7)');
    assert.deepEqual(ci.outputs, [{ type: 'logs', logs: '42\n' }]);

    const again = await s.client.responses.retrieve(final!.id);
    assert.equal(again.id, final!.id);
    assert.equal(again.output_text, 'The answer is 42.');
    await s.client.responses.delete(final!.id);
    await assert.rejects(s.client.responses.retrieve(final!.id), (e: unknown) => e instanceof OpenAI.NotFoundError);
    assert.ok(s.logs.some((l) => l.includes('prompt: ') && l.includes('What is 6*7?')), 'prompts logged with --log-content');
  } finally {
    await s.close();
  }
});

test('tool_choice required keeps the model from answering before it calls a function', async () => {
  const { getTokenizer } = await import('../../src/tokenizer/index.ts');
  const tok = getTokenizer();
  const enc = (s: string) => tok.encode(s, { allowedSpecial: 'all' });
  // Prefers to answer directly (logit 30); calling the function is its second choice (logit 20).
  const preferred = enc('<|channel|>final<|message|>No need for tools.<|return|>');
  const fallback = enc('<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"location":"Oslo"}<|call|>');
  const generated = new Map<number, number[]>();
  const engine: Engine = {
    info: { name: 'two-paths', vocabSize: 201088, contextLength: 8192, randomWeights: false },
    createSequence: (() => {
      let id = 0;
      return () => ({ id: ++id, tokens: [] as number[] });
    })(),
    async step(batch) {
      return batch.map((r) => {
        const all = r.sequence.tokens as number[];
        all.push(...r.tokens);
        // A prompt ends with `<|start|>assistant`; anything else continues the completion.
        const promptEnd = all.at(-2) === 200006 && all.at(-1) === tok.encodeOrdinary('assistant')[0];
        const g = promptEnd ? [] : [...(generated.get(r.sequence.id) ?? []), r.tokens[0]!];
        generated.set(r.sequence.id, g);
        const logits = new Float32Array(201088).fill(-30);
        const follows = (path: number[]) => g.every((t, i) => path[i] === t);
        if (follows(fallback)) logits[fallback[g.length]!] = 20;
        if (follows(preferred)) logits[preferred[g.length]!] = 30;
        return logits;
      });
    },
    truncate: (s, n) => void ((s.tokens as number[]).length = n),
    release: () => {},
    close: async () => {},
  };
  const s = await start(engine);
  try {
    const tools: OpenAI.Chat.ChatCompletionTool[] = [{ type: 'function', function: { name: 'get_weather', parameters: WEATHER_TOOL.parameters } }];
    const free = await s.client.chat.completions.create({ model: 'two-paths', messages: [{ role: 'user', content: 'Oslo?' }], tools, temperature: 0 });
    assert.equal(free.choices[0]!.message.content, 'No need for tools.');
    const forced = await s.client.chat.completions.create({ model: 'two-paths', messages: [{ role: 'user', content: 'Oslo?' }], tools, tool_choice: 'required', temperature: 0 });
    assert.equal(forced.choices[0]!.finish_reason, 'tool_calls');
    const call = forced.choices[0]!.message.tool_calls![0]!;
    assert.deepEqual(call.type === 'function' ? JSON.parse(call.function.arguments) : null, { location: 'Oslo' });
    // logit_bias -100 bans a token: here the word `final`, with the same effect.
    const biased = await s.client.chat.completions.create({ model: 'two-paths', messages: [{ role: 'user', content: 'Oslo?' }], tools, temperature: 0, logit_bias: { [String(preferred[1])]: -100 } });
    assert.equal(biased.choices[0]!.finish_reason, 'tool_calls');
  } finally {
    await s.close();
  }
});

test('a disconnect during a long prefill drops its remaining chunks', EVENTS, async (t) => {
  const engine = new PromptEngine(() => REASONED('r', 'done'));
  const batching = new ObservedBatchingEngine(engine, { prefillChunk: 16, maxBatchTokens: 16 });
  const s = await startServer(batching, {}, t.signal);
  // The prompt takes ~40 chunks; the third is running when the client goes.
  const held = engine.holdAt(3);
  try {
    const controller = new AbortController();
    const request = s.client.chat.completions.create({ model: 'prompt-engine', messages: [{ role: 'user', content: 'word '.repeat(600) }] }, { signal: controller.signal });
    await held;
    controller.abort();
    await assert.rejects(request);
    await batching.discarded;
    engine.resume();
    assert.match(await s.logged(/POST \/v1\/chat\/completions/), /POST \/v1\/chat\/completions 499/);
    assert.equal(engine.stepsBegun, 3, 'no prefill chunk ran after the disconnect');
    assert.equal(engine.live, 0);
    assert.equal(s.server.active, 0);
  } finally {
    await s.close();
  }
});

test('CORS only for the origins given', async () => {
  const s = await start(new PromptEngine(() => REASONED('r', 'ok')), { corsOrigins: ['http://app.local'] });
  try {
    const preflight = await fetch(`${s.running.url}/v1/chat/completions`, {
      method: 'OPTIONS',
      headers: { origin: 'http://app.local', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' },
    });
    assert.equal(preflight.headers.get('access-control-allow-origin'), 'http://app.local');
    const other = await fetch(`${s.running.url}/health`, { headers: { origin: 'http://evil.example' } });
    assert.notEqual(other.headers.get('access-control-allow-origin'), 'http://evil.example');
  } finally {
    await s.close();
  }
});

test('strict function tools: the arguments are constrained to the schema', async () => {
  const engine = new PromptEngine(() => '<|channel|>analysis<|message|>Call it.<|end|><|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"location": 42, "extra": true}<|call|>');
  const s = await start(engine);
  const parameters = { type: 'object', properties: { location: { type: 'string', maxLength: 8 } }, required: ['location'], additionalProperties: false };
  try {
    for (const strict of [false, true]) {
      const r = await s.client.responses.create({ model: 'prompt-engine', input: 'Weather?', max_output_tokens: 80, tools: [{ type: 'function', name: 'get_weather', parameters, strict }] });
      const call = r.output.find((o) => o.type === 'function_call');
      assert.ok(call !== undefined && call.type === 'function_call');
      const valid = new Ajv({ strict: false }).compile(parameters)(JSON.parse(call.arguments));
      // Without strict the model's own (invalid) arguments come back; with strict they validate.
      assert.equal(valid, strict, call.arguments);
    }
  } finally {
    await s.close();
  }
});
