// The library API (src/index.ts) over ScriptedEngine replaying real harmony completions: chat events
// in order, a user function answered by its handler, abort by signal and by a consumer that stops
// reading, errors as GptossError with a code, the tokenizer and harmony functions, the server, an
// evaluation and policy classification (plain and against gold labels) on a Model; and chat with
// structured output on the random demo model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DelegatingEngine, type Sequence, type StepRequest } from '../../src/engine/engine.ts';
import { ScriptedEngine } from '../../src/engine/scripted.ts';
import { modelFromEngine } from '../../src/api/model.ts';
import { ensureDemoModel } from '../../src/checkpoint/synth.ts';
import { GptossError, classify, decode, encode, loadModel, parseCompletion, renderPrompt, runEval, startServer, type ChatEvent, type Classification, type JsonObject } from '../../src/index.ts';
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

/** Counts close() calls on the engine under a Model. */
class CloseCounter extends DelegatingEngine {
  closed = 0;
  override async close(): Promise<void> {
    this.closed++;
    await super.close();
  }
}

test('`await using` closes the model when its scope ends, also when the scope throws; close() is idempotent', async () => {
  const engine = new CloseCounter(new ScriptedEngine([reasoningThenAnswer]));
  {
    await using model = modelFromEngine(engine);
    assert.equal((await model.complete('Hi', { date: null })).text, 'Hello there, friend.');
    assert.equal(engine.closed, 0);
  }
  assert.equal(engine.closed, 1);

  const thrown = new CloseCounter(new ScriptedEngine([]));
  await assert.rejects(async () => {
    await using model = modelFromEngine(thrown);
    void model;
    throw new Error('the scope failed');
  }, /the scope failed/);
  assert.equal(thrown.closed, 1);

  const twice = new CloseCounter(new ScriptedEngine([]));
  const model = modelFromEngine(twice);
  await model.close();
  await model[Symbol.asyncDispose]();
  assert.equal(twice.closed, 1);
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

test('startServer with the browser: the log names each document left out, once the index is ready', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gptoss-api-docs-'));
  const model = modelFromEngine(new ScriptedEngine([]));
  try {
    writeFileSync(join(dir, 'guide.md'), '# Guide\n\nWash hands.\n');
    writeFileSync(join(dir, 'scan.txt'), Buffer.from([0x25, 0x50, 0x44, 0x46, 0x00]));
    let told!: (line: string) => void;
    const skippedLine = new Promise<string>((resolve) => (told = resolve));
    const server = await startServer(model, { tools: { browser: { documents: dir } }, log: (line) => line.startsWith('browser:') && told(line) });
    try {
      assert.equal(await skippedLine, 'browser: left out scan.txt (binary (contains NUL bytes))');
    } finally {
      await server.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
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
    // The data is checked before a model named by path is loaded (an empty folder: loading it fails).
    const bad = join(dir, 'bad.jsonl');
    writeFileSync(bad, '{"question": [oops\n');
    await assert.rejects(runEval({ kind: 'exact', data: bad, model: dir, outDir: join(dir, 'out3') }), (e: unknown) => e instanceof GptossError && e.code === 'input' && /bad\.jsonl:1: invalid JSON/.test(e.message));
    // The prompt style is checked by the same function as the CLI's --prompt.
    await assert.rejects(runEval({ kind: 'exact', data, model, outDir: join(dir, 'out4'), exactPrompt: 'fancy' as 'plain' }), (e: unknown) => e instanceof GptossError && e.code === 'usage' && e.message === 'exactPrompt must be boxed or plain, got "fancy"');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const PHI_POLICY = '# PHI\n\nDoes the message identify a patient together with health information? Answer with JSON: {"violation": 0 or 1, "rationale": "..."}.';
const final = (analysis: string, answer: string): number[] => ids(`<|channel|>analysis<|message|>${analysis}<|end|><|start|>assistant<|channel|>final<|message|>${answer}<|return|>`);

test('classify labels texts on a Model: JSON fields, reasoning, a format failure with its answer, label counts; a rerun resumes', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gptoss-api-classify-'));
  try {
    const resultsPath = join(dir, 'results.jsonl');
    const scripted = new ScriptedEngine([
      final('Names a patient and a diagnosis.', '{"violation": 1, "rationale": "patient and diagnosis"}'),
      final('General question.', '{"violation": 0, "rationale": "no patient"}'),
      final('Unsure.', 'maybe'),
    ]);
    const inputs = [{ id: 'm1', text: 'Ms. Alvarez in room 12 tested positive for influenza A.' }, 'What does HbA1c measure?', { id: 'm3', text: 'Call me back.' }];
    const seen: Classification[] = [];
    const progress: number[] = [];
    const run = await classify(inputs, {
      model: modelFromEngine(scripted), policy: PHI_POLICY, labels: ['0', '1'], concurrency: 1, resultsPath,
      onResult: (r) => seen.push(r), onProgress: (done) => progress.push(done),
    });
    assert.deepEqual(run.results.map((r) => [r.id, r.label]), [['m1', '1'], [run.results[1]!.id, '0']]);
    assert.match(run.results[1]!.id, /^sha256:/);
    assert.deepEqual(run.results[0]!.fields, { violation: 1, rationale: 'patient and diagnosis' });
    assert.equal(run.results[0]!.reasoning, 'Names a patient and a diagnosis.');
    assert.equal(run.results[0]!.text, 'Ms. Alvarez in room 12 tested positive for influenza A.');
    assert.ok(run.results[0]!.usage !== undefined && run.results[0]!.usage.outputTokens > 0);
    assert.deepEqual(seen.map((r) => r.label), ['1', '0']);
    assert.deepEqual(progress, [0, 1, 2, 3]);
    assert.equal(run.failed.length, 1);
    assert.equal(run.failed[0]!.id, 'm3');
    assert.equal(run.failed[0]!.answer, 'maybe');
    assert.match(run.failed[0]!.error, /^input:3 \(id "m3"\): the answer does not follow the policy's output format: expected one of "0", "1", got "maybe"$/);
    assert.deepEqual(run.labelCounts, [{ label: '0', count: 1 }, { label: '1', count: 1 }]);
    assert.equal(run.classified, 2);
    // The policy went in as the instructions and the text as the user message.
    const prompt = getTokenizer().decode(scripted.steps[0]![0]!.tokens);
    assert.ok(prompt.includes('Does the message identify a patient') && prompt.includes('<|start|>user<|message|>Ms. Alvarez in room 12'), prompt);
    assert.equal(readFileSync(resultsPath, 'utf8').trim().split('\n').length, 2);

    // The rerun classifies only the text that failed.
    const again = await classify(inputs, { model: modelFromEngine(new ScriptedEngine([final('A request.', '{"violation": 0}')])), policy: PHI_POLICY, labels: ['0', '1'], resultsPath });
    assert.equal(again.resumed, 2);
    assert.equal(again.classified, 1);
    assert.deepEqual(again.results.map((r) => r.label), ['1', '0', '0']);
    assert.deepEqual(again.failed, []);
    // Another policy never reuses these results.
    await assert.rejects(classify(inputs, { model: modelFromEngine(new ScriptedEngine([])), policy: 'Another policy.', resultsPath }), (e: unknown) => e instanceof GptossError && e.code === 'usage' && /another policy/.test(e.message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Aborts `controller` when the engine is first asked for a step: the abort lands while a text is in flight. */
class AbortOnStep extends DelegatingEngine {
  constructor(
    inner: ScriptedEngine,
    private readonly controller: AbortController,
  ) {
    super(inner);
  }
  override step(batch: readonly StepRequest[]): Promise<Float32Array[]> {
    this.controller.abort();
    return super.step(batch);
  }
}

test('classify: bad options are GptossErrors with a code; an AbortSignal rejects the run with its reason', async () => {
  const model = modelFromEngine(new ScriptedEngine([]));
  const bad: [Parameters<typeof classify>, string, RegExp][] = [
    [[['x'], { model, policy: '  ' }], 'usage', /policy/],
    [[['x'], { model, policy: 'P', labels: ['0', '0'] }], 'usage', /"0" twice/],
    [[[], { model, policy: 'P' }], 'input', /no texts/],
    [[[{ text: 5 } as unknown as string], { model, policy: 'P' }], 'input', /inputs\[0\]/],
    [[['x'], { model: 'not-a-url', policy: 'P' }], 'usage', /not an http\(s\) URL/],
    [[['x'], { model, policy: 'P', concurrency: 0 }], 'usage', /concurrency/],
    [[['x'], { model, policy: 'P', reasoningEffort: 'max' as 'low' }], 'usage', /reasoningEffort/],
  ];
  for (const [args, code, message] of bad) {
    await assert.rejects(classify(...args), (e: unknown) => e instanceof GptossError && e.code === code && message.test(e.message), message.source);
  }
  const before = new AbortController();
  before.abort();
  await assert.rejects(classify(['x'], { model, policy: 'P', signal: before.signal }), (e: unknown) => (e as Error).name === 'AbortError');
  const during = new AbortController();
  const aborting = modelFromEngine(new AbortOnStep(new ScriptedEngine([final('r', '0'), final('r', '1')]), during));
  await assert.rejects(classify(['a', 'b'], { model: aborting, policy: 'P', concurrency: 1, signal: during.signal }), (e: unknown) => (e as Error).name === 'AbortError');
});

test('runEval classify scores gold labels: accuracy, per-label precision and recall, the confusion table; another policy is refused', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gptoss-api-eval-classify-'));
  try {
    const data = join(dir, 'gold.jsonl');
    writeFileSync(data, [
      { id: 'a', text: 'Patient J. Smith, DOB 1970-01-02, has diabetes.', label: 1 },
      { id: 'b', text: 'How long should I wash my hands?', label: 0 },
      { id: 'c', text: 'Bed 4 is stable.', label: 1 },
    ].map((r) => JSON.stringify(r)).join('\n') + '\n');
    const model = modelFromEngine(new ScriptedEngine([final('Identifies a patient.', '{"violation": 1}'), final('No patient.', '{"violation": 0}'), final('No name.', '{"violation": 0}')]));
    const outDir = join(dir, 'out');
    const result = await runEval({ kind: 'classify', policy: PHI_POLICY, labels: ['0', '1'], data, model, outDir, concurrency: 1 });
    assert.equal(result.cases, 3);
    assert.ok(Math.abs(result.score.mean - 2 / 3) < 1e-12, String(result.score.mean));
    const c = result.classification!;
    assert.equal(c.n, 3);
    assert.deepEqual(c.labels.map((l) => [l.label, l.support, l.predicted, l.precision, l.recall]), [['0', 1, 2, 0.5, 1], ['1', 2, 1, 1, 0.5]]);
    assert.deepEqual(c.confusion, { '0': { '0': 1 }, '1': { '1': 1, '0': 1 } });
    const summary = JSON.parse(readFileSync(join(outDir, 'summary.json'), 'utf8')) as { classification: unknown; settings: Record<string, unknown> };
    assert.deepEqual(summary.classification, c);
    assert.equal(summary.settings['labels'], '0,1');
    await assert.rejects(runEval({ kind: 'classify', policy: 'Another policy.', data, model, outDir }), (e: unknown) => e instanceof GptossError && e.code === 'usage' && /another policy/.test(e.message));
    await assert.rejects(runEval({ kind: 'classify', data, model, outDir: join(dir, 'out2') }), (e: unknown) => e instanceof GptossError && e.code === 'usage' && /needs policy/.test(e.message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('on the random demo model, chat streams to usage and done, and outputSchema makes the answer valid JSON of the schema', async () => {
  const model = await loadModel({ model: ensureDemoModel(), threads: 1, contextLength: 512 });
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
