// The embedded default is gpt-oss-nano: with no model named the library loads it and gives its
// chats the tools it was trained with (the browser over the documents it ships with, then python),
// other models get none; and the prompt the agent loop renders for it is, token for token, the one
// its corpus generator renders for the same question, date and effort (the same tool namespaces,
// the same model identity), else the model would see a prompt it was never trained on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModel, modelFromEngine, trainedToolDefinitions } from '../../src/api/model.ts';
import { startServer } from '../../src/api/server.ts';
import { ensureNano, nanoDocsDir } from '../../src/checkpoint/nano.ts';
import { ensureDemoModel } from '../../src/checkpoint/synth.ts';
import { ScriptedEngine } from '../../src/engine/scripted.ts';
import { REASONING_EFFORTS, renderConversationForCompletion } from '../../src/harmony/index.ts';
import { getTokenizer } from '../../src/tokenizer/index.ts';
import { BrowserSession, LocalDocsBackend, PythonTool } from '../../src/tools/index.ts';
import { generateCorpus } from '../../src/train/nano/corpus.ts';

const tok = getTokenizer();

test("the agent loop renders the embedded default's prompt exactly as the corpus generator does, at every effort", async () => {
  const cache = mkdtempSync(join(tmpdir(), 'gptoss-nano-prompt-'));
  try {
    const { dir } = ensureNano(undefined, cache);
    const tools = await trainedToolDefinitions(dir);
    assert.deepEqual(tools, [{ type: 'browser', documents: nanoDocsDir() }, { type: 'python' }]);
    const backend = await LocalDocsBackend.open(nanoDocsDir());
    await backend.indexed;
    const corpus = await generateCorpus({
      seed: 5, train: 0, heldout: 24,
      tools: { browser: new BrowserSession(backend).namespace(), python: new PythonTool().namespace() },
      browser: () => new BrowserSession(backend),
    });
    for (const effort of REASONING_EFFORTS) {
      const item = corpus.heldout.find((it) => it.effort === effort)!;
      assert.ok(item !== undefined, `no held-out item at ${effort} effort`);
      const [system, user] = item.conversation.messages;
      const date = (system!.content[0] as { conversationStartDate: string }).conversationStartDate;
      const expected = renderConversationForCompletion({ messages: [system!, user!] }, 'assistant');

      const answer = tok.encode('<|channel|>final<|message|>ok<|return|>', { allowedSpecial: 'all' });
      const engine = new ScriptedEngine([answer]);
      const model = modelFromEngine(engine, 'gpt-oss-nano', tools);
      const result = await model.complete(item.question, { reasoningEffort: effort, date });
      assert.equal(result.text, 'ok');
      const fed = engine.steps.flat().flatMap((s) => s.tokens);
      assert.equal(tok.decode(fed.slice(0, expected.length)), tok.decode(expected));
      assert.deepEqual(fed.slice(0, expected.length), expected);
      assert.equal(fed[expected.length], answer[0]);
      // The caller's own tools replace the defaults: no tools, no tool namespaces.
      const bare = new ScriptedEngine([answer]);
      await modelFromEngine(bare, 'gpt-oss-nano', tools).complete(item.question, { reasoningEffort: effort, date, tools: [] });
      assert.doesNotMatch(tok.decode(bare.steps.flat().flatMap((s) => s.tokens)), /namespace browser|namespace python/);
    }
  } finally {
    rmSync(cache, { recursive: true, force: true });
  }
});

test('loadModel() with no model named loads the embedded gpt-oss-nano with its tools; another model gets none', async () => {
  const cache = mkdtempSync(join(tmpdir(), 'gptoss-nano-default-'));
  const saved = { ...process.env };
  try {
    process.env['GPTOSS_CACHE'] = cache;
    process.env['GPTOSS_MODEL'] = '';
    process.env['HF_HUB_CACHE'] = join(cache, 'empty-hub');
    const nano = await loadModel({ threads: 1, contextLength: 1024 });
    try {
      assert.match(nano.description, /^the embedded gpt-oss-nano/);
      assert.deepEqual(nano.defaultTools, [{ type: 'browser', documents: nanoDocsDir() }, { type: 'python' }]);
    } finally {
      await nano.close();
    }
    const demo = await loadModel({ model: ensureDemoModel(cache), threads: 1, contextLength: 256 });
    try {
      assert.deepEqual(demo.defaultTools, []);
    } finally {
      await demo.close();
    }
  } finally {
    process.env = saved;
    rmSync(cache, { recursive: true, force: true });
  }
});

test("startServer offers the embedded model's tools to requests by default; another model's server offers none", async () => {
  const cache = mkdtempSync(join(tmpdir(), 'gptoss-nano-server-'));
  try {
    const tools = await trainedToolDefinitions(ensureNano(undefined, cache).dir);
    const answer = tok.encode('<|channel|>final<|message|>ok<|return|>', { allowedSpecial: 'all' });
    const ask = async (url: string): Promise<Response> => fetch(`${url}/v1/responses`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-oss-nano', input: 'What is 2 + 2?', tools: [{ type: 'code_interpreter', container: { type: 'auto' } }, { type: 'browser_search' }] }),
    });
    for (const [defaults, status] of [[tools, 200], [[], 400]] as const) {
      const model = modelFromEngine(new ScriptedEngine([answer], { name: 'gpt-oss-nano' }), 'gpt-oss-nano', defaults);
      const server = await startServer(model);
      try {
        const r = await ask(server.url);
        const body = await r.text();
        assert.equal(r.status, status, body);
        if (status === 400) assert.match(body, /tool is not enabled on this server/);
      } finally {
        await server.close();
        await model.close();
      }
    }
  } finally {
    rmSync(cache, { recursive: true, force: true });
  }
});

test("a request that names no tools gets the embedded model's tools on both APIs; one naming its own gets only those; another model's server gives none", async () => {
  const cache = mkdtempSync(join(tmpdir(), 'gptoss-nano-server-defaults-'));
  try {
    const tools = await trainedToolDefinitions(ensureNano(undefined, cache).dir);
    const answer = tok.encode('<|channel|>final<|message|>ok<|return|>', { allowedSpecial: 'all' });
    const fn = { type: 'function', function: { name: 'lookup', description: 'Looks up', parameters: { type: 'object', properties: {} } } };
    const requests = [
      { path: 'chat/completions', body: { messages: [{ role: 'user', content: 'hi' }] }, namespaces: true },
      { path: 'chat/completions', body: { messages: [{ role: 'user', content: 'hi' }], tools: [fn] }, namespaces: false },
      { path: 'responses', body: { input: 'hi' }, namespaces: true },
      { path: 'responses', body: { input: 'hi', tools: [] }, namespaces: false },
    ];
    for (const [defaults, trained] of [[tools, true], [[], false]] as const) {
      for (const r of requests) {
        const engine = new ScriptedEngine([answer], { name: 'gpt-oss-nano' });
        const model = modelFromEngine(engine, 'gpt-oss-nano', defaults);
        const server = await startServer(model);
        try {
          const res = await fetch(`${server.baseUrl}/${r.path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'gpt-oss-nano', ...r.body }) });
          assert.equal(res.status, 200, await res.text());
          const prompt = tok.decode(engine.steps.flat().flatMap((s) => s.tokens));
          const expected = trained && r.namespaces;
          const where = `${trained ? 'embedded' : 'other'} model, ${r.path} ${JSON.stringify(r.body)}`;
          assert.equal(/## browser\n[\s\S]*## python\n/.test(prompt), expected, `${where}: ${prompt}`);
          assert.equal(/namespace browser|## python/.test(prompt), expected, where);
        } finally {
          await server.close();
          await model.close();
        }
      }
    }
  } finally {
    rmSync(cache, { recursive: true, force: true });
  }
});
