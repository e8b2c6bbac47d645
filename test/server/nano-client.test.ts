// The server end to end on the embedded default, through the official openai client: loadModel()
// with no model named loads the shipped gpt-oss-nano, startServer serves it on a free port with the
// tools it was trained with, and each question of NANO_QUESTIONS is asked greedily through the
// Responses API (naming the tools) and Chat Completions (which cannot name built-in tools: the
// server gives them to a request that names no tools), whole and streamed. With the corpus's date
// (the system message's clock is pinned to it) and the same tools, the prompt is the one the agent
// loop renders, so the server must answer exactly what the agent loop answers (both APIs turning
// citations into links to the documents, with url_citation annotations); the answers the shipped
// weights get right are judged by the corpus scorer.
import { after, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import OpenAI from 'openai';
import { engineOf, loadModel } from '../../src/api/model.ts';
import { startServer } from '../../src/api/server.ts';
import { askNano } from '../../src/evals/nano.ts';
import { BrowserSession, PythonTool, resolveCitations, type Citation } from '../../src/tools/index.ts';
import { answerStates } from '../../src/train/nano/score.ts';
import { expandNano, nanoCases, openNanoDocs, type NanoCase } from '../nano-questions.ts';

const cases = await nanoCases();
const nano = expandNano();
const saved = { ...process.env };
process.env['GPTOSS_CACHE'] = nano.cache;
process.env['GPTOSS_MODEL'] = '';
process.env['HF_HUB_CACHE'] = join(nano.cache, 'empty-hub');
const model = await loadModel({ threads: 1, contextLength: 4096 });
const server = await startServer(model);
const client = new OpenAI({ baseURL: server.baseUrl, apiKey: 'none', maxRetries: 0 });
const backend = await openNanoDocs();
const python = new PythonTool();
after(async () => {
  await server.close();
  await model.close();
  await python.close();
  process.env = saved;
  nano.remove();
});

/** The system message's date is "today": pinned to the one the corpus gave the question. */
function onCorpusDate(t: TestContext, c: NanoCase): void {
  t.mock.timers.enable({ apis: ['Date'], now: new Date(`${c.date}T12:00:00`) });
}

/** What the agent loop answers, with its citations resolved as the server resolves them, and those citations. */
async function agentAnswer(c: NanoCase): Promise<{ linked: string; citations: Citation[] }> {
  const browser = new BrowserSession(backend);
  const { result } = await askNano(engineOf(model), c.question, { effort: c.effort, date: c.date, tools: [browser, python], maxTokens: 1024 });
  const resolved = resolveCitations(result.finalText, browser);
  return { linked: resolved.text, citations: resolved.citations };
}

/** The answer's text outside its citation links (their file names and line anchors are no answer). */
function withoutLinks(text: string, annotations: readonly { start_index: number; end_index: number }[]): string {
  let out = text;
  for (const a of [...annotations].sort((x, y) => y.start_index - x.start_index)) out = out.slice(0, a.start_index) + out.slice(a.end_index);
  return out;
}

/** The calls a Responses output reports, as the agent loop names them. */
function calledTools(output: readonly OpenAI.Responses.ResponseOutputItem[]): string[] {
  return output.flatMap((item) => {
    if (item.type === 'code_interpreter_call') return ['python'];
    if (item.type !== 'web_search_call') return [];
    const action = (item as { action?: { type?: string } }).action?.type;
    return [action === 'search' ? 'browser.search' : action === 'open_page' ? 'browser.open' : `browser.${String(action)}`];
  });
}

/** The output message's text and its citations. */
function answerOf(r: OpenAI.Responses.Response): OpenAI.Responses.ResponseOutputText {
  const message = r.output.find((item): item is OpenAI.Responses.ResponseOutputMessage => item.type === 'message');
  assert.ok(message !== undefined, `no message in ${JSON.stringify(r.output)}`);
  return message.content[0] as OpenAI.Responses.ResponseOutputText;
}

function request(c: NanoCase) {
  return {
    model: 'gpt-oss-nano', input: c.question, reasoning: { effort: c.effort }, temperature: 0, max_output_tokens: 1024,
    // The tools in the order the corpus declares them: the prompt is then the one the model was trained on.
    tools: [{ type: 'web_search_preview' as const }, { type: 'code_interpreter' as const, container: { type: 'auto' as const } }],
  };
}

test('loadModel() with no model named serves the embedded gpt-oss-nano', async () => {
  assert.match(model.description, /^the embedded gpt-oss-nano/);
  const models = await client.models.list();
  assert.deepEqual(models.data.map((m) => m.id), ['gpt-oss-nano']);
});

for (const c of cases) {
  test(`gpt-oss-nano through the Responses API, whole and streamed (${c.id}, ${c.expect}): ${c.question}`, async (t) => {
    onCorpusDate(t, c);
    const expected = (await agentAnswer(c)).linked;

    const r = await client.responses.create(request(c));
    assert.equal(r.status, 'completed');
    assert.equal(r.output_text, expected);
    const called = calledTools(r.output);
    for (const needed of c.calls) assert.ok(called.includes(needed), `needed ${needed}, the response reports ${called.join(', ') || 'no call'}`);
    if (c.calls.length === 0) assert.deepEqual(called, []);
    const content = answerOf(r);
    const links = content.annotations.filter((a): a is OpenAI.Responses.ResponseOutputText.URLCitation => a.type === 'url_citation');
    assert.equal(links.length, content.annotations.length);
    for (const a of links) assert.match(a.url, /^local:\/\/nano-docs\/[a-z]+\.md$/);
    if (c.expect === 'right') assert.ok(answerStates(c, withoutLinks(content.text, links)), content.text);

    const stream = await client.responses.create({ ...request(c), stream: true });
    let deltas = '';
    let completed: OpenAI.Responses.Response | undefined;
    for await (const event of stream) {
      if (event.type === 'response.output_text.delta') deltas += event.delta;
      else if (event.type === 'response.completed') completed = event.response;
    }
    assert.equal(deltas, expected);
    assert.equal(answerOf(completed!).text, expected);
    assert.deepEqual(calledTools(completed!.output), called);
  });
}

for (const c of cases) {
  test(`gpt-oss-nano through Chat Completions with no tools named, whole and streamed (${c.id}, ${c.expect}): ${c.question}`, async (t) => {
    onCorpusDate(t, c);
    const { linked: expected, citations } = await agentAnswer(c);
    const expectedAnnotations = citations.map((x) => ({ type: 'url_citation', url_citation: { start_index: x.start, end_index: x.end, url: x.url, title: x.title } }));
    const body = { model: 'gpt-oss-nano', messages: [{ role: 'user' as const, content: c.question }], reasoning_effort: c.effort, temperature: 0, max_tokens: 1024 };

    const r = await client.chat.completions.create(body);
    const choice = r.choices[0]!;
    assert.equal(choice.finish_reason, 'stop');
    assert.equal(choice.message.content, expected);
    assert.deepEqual(choice.message.annotations, expectedAnnotations);
    assert.equal(choice.message.tool_calls, undefined, 'built-in calls run on the server; only function calls come back');
    if (c.expect === 'right') assert.ok(answerStates(c, withoutLinks(expected, choice.message.annotations!.map((a) => a.url_citation))), expected);

    const stream = await client.chat.completions.create({ ...body, stream: true });
    let content = '';
    const annotations: unknown[] = [];
    let finish: string | null = null;
    for await (const chunk of stream) {
      const delta = chunk.choices[0]?.delta as (OpenAI.Chat.ChatCompletionChunk.Choice.Delta & { annotations?: unknown[] }) | undefined;
      content += delta?.content ?? '';
      annotations.push(...(delta?.annotations ?? []));
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    assert.equal(content, expected);
    assert.deepEqual(annotations, expectedAnnotations);
    assert.equal(finish, 'stop');
  });
}
