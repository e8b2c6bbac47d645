// The embedded models run with one context window in every command: `chat` and `serve` and
// `loadEngine` in the library all report DEMO_CONTEXT_LENGTH for the random demo model (though its
// config would allow 131,072) and for gpt-oss-nano, the default when no model is named, which
// chat and serve also run with the tools it was trained with (serve giving them to a Chat
// Completions request, which cannot name them), and which eval answers with.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEMO_CONTEXT_LENGTH, ensureDemoModel } from '../../src/checkpoint/synth.ts';
import { contextLength } from '../../src/model/config.ts';
import { readCheckpointConfig } from '../../src/checkpoint/checkpoint.ts';
import { loadEngine } from '../../src/engine/local.ts';
import { nanoDocsDir } from '../../src/checkpoint/nano.ts';
import { message, promptHead, renderConversationForCompletion } from '../../src/harmony/index.ts';
import { BrowserSession, LocalDocsBackend, PythonTool } from '../../src/tools/index.ts';
import { runCli } from './in-process.ts';

const CLI = join(import.meta.dirname, '../../bin/gptoss.js');
const work = mkdtempSync(join(tmpdir(), 'gptoss-demo-context-'));
after(() => rmSync(work, { recursive: true, force: true }));
const cache = join(work, 'cache');
const emptyHub = join(work, 'hub');
mkdirSync(emptyHub);
const demoDir = ensureDemoModel(cache);
// The demo model named through the environment (the default is gpt-oss-nano, last test).
const env = { GPTOSS_CACHE: cache, GPTOSS_MODEL: demoDir, HF_HUB_CACHE: emptyHub };

test('the demo model\'s own config allows a longer window than the demo runs with', async () => {
  const { config } = await readCheckpointConfig(demoDir);
  assert.ok(contextLength(config) > DEMO_CONTEXT_LENGTH, `${contextLength(config)}`);
});

test('chat, serve and loadEngine run the demo model with the same context window', async () => {
  const chat = await runCli(['chat', '--backend', 'reference', '--max-tokens', '1', 'Hi'], '', env);
  assert.equal(chat.code, 0, chat.stderr);
  const chatContext = /loaded demo-tiny in [\d.]+ s \(context (\d+) tokens\)/.exec(chat.stderr)?.[1];
  assert.ok(chatContext !== undefined, chat.stderr);

  const serveContext = await serveWindow(env, 'demo-tiny');

  const engine = await loadEngine(demoDir, { backend: 'reference' });
  const libraryContext = engine.info.contextLength;
  await engine.close();

  assert.equal(Number(chatContext), DEMO_CONTEXT_LENGTH, 'chat');
  assert.equal(Number(serveContext), DEMO_CONTEXT_LENGTH, 'serve');
  assert.equal(libraryContext, DEMO_CONTEXT_LENGTH, 'loadEngine');
});

/** Starts `gptoss serve` with `env`, returns the context window it reports for `name` and its stderr, and stops it. */
async function serveWindow(env: Record<string, string>, name: string): Promise<string> {
  return (await serveLog(env, name)).context;
}

/**
 * As serveWindow, with its stderr; `args` go to serve, and `ask` runs against its /v1 URL before it
 * stops, which then waits until its stderr matches `ask.until` (a log line written after the reply).
 */
async function serveLog(env: Record<string, string>, name: string, args: string[] = [], ask?: { run: (baseUrl: string) => Promise<void>; until: RegExp }): Promise<{ context: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, 'serve', '--port', '0', '--threads', '1', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  let logged: () => void = () => {};
  try {
    const [context, baseUrl] = await new Promise<[string, string]>((resolve, reject) => {
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        if (ask !== undefined && ask.until.test(stderr)) logged();
        const m = new RegExp(`serving ${name} on (http://\\S+) \\(context (\\d+) tokens`).exec(stderr);
        if (m !== null) resolve([m[2]!, m[1]!]);
      });
      child.on('exit', (code) => reject(new Error(`serve exited ${code}: ${stderr}`)));
    });
    if (ask !== undefined) {
      const seen = new Promise<void>((resolve) => {
        logged = resolve;
      });
      await ask.run(baseUrl);
      if (!ask.until.test(stderr)) await seen;
    }
    return { context, stderr };
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
  }
}

test('with no model named, chat, serve and generate run the embedded gpt-oss-nano (chat and serve with its browser and python tools) and the same window', async () => {
  const nanoEnv = { ...env, GPTOSS_MODEL: '' };
  const chat = await runCli(['chat', '--threads', '1', '--max-tokens', '1', 'Hi'], '', nanoEnv);
  assert.equal(chat.code, 0, chat.stderr);
  assert.match(chat.stderr, /^loading the embedded gpt-oss-nano/m);
  assert.match(chat.stderr, /^tools: browser \(the documents gpt-oss-nano ships with\) and python/m);
  assert.equal(/loaded gpt-oss-nano in [\d.]+ s \(context (\d+) tokens\)/.exec(chat.stderr)?.[1], String(DEMO_CONTEXT_LENGTH), chat.stderr);
  const bare = await runCli(['chat', '--threads', '1', '--max-tokens', '1', '--no-tools', 'Hi'], '', nanoEnv);
  assert.equal(bare.code, 0, bare.stderr);
  assert.doesNotMatch(bare.stderr, /^tools:/m);

  const generated = await runCli(['generate', '--threads', '1', '--prompt', 'Hi', '--max-tokens', '2', '--json'], '', nanoEnv);
  assert.equal(generated.code, 0, generated.stderr);
  const out = JSON.parse(generated.stdout) as { model: string; tokens: number[] };
  assert.equal(out.model, 'gpt-oss-nano');
  assert.equal(out.tokens.length, 2);

  // A Chat Completions request (it cannot name built-in tools) is prompted with both, as the model was trained.
  const served = await serveLog(nanoEnv, 'gpt-oss-nano', [], {
    run: async (baseUrl) => {
      const r = await fetch(`${baseUrl}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'gpt-oss-nano', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 1 }) });
      assert.equal(r.status, 200, await r.text());
    },
    until: /POST \/v1\/chat\/completions 200 in=/,
  });
  assert.equal(served.context, String(DEMO_CONTEXT_LENGTH));
  assert.match(served.stderr, /^tools: browser \(the documents gpt-oss-nano ships with\) and python/m);
  // Its prompt is exactly as long as the one with both tools' namespaces (a date's tokens are as many whatever the date).
  const tools = [new BrowserSession(await LocalDocsBackend.open(nanoDocsDir())), new PythonTool()];
  const withTools = renderConversationForCompletion({ messages: [...promptHead({ toolNamespaces: tools.map((t) => t.namespace()) }), message.user('Hi')] }, 'assistant');
  assert.equal(/POST \/v1\/chat\/completions 200 in=(\d+)/.exec(served.stderr)?.[1], String(withTools.length), served.stderr);
});

test('with no model named, eval answers with the embedded gpt-oss-nano in-process, as chat and serve would', async () => {
  const nanoEnv = { ...env, GPTOSS_MODEL: '' };
  const out = join(work, 'eval-nano');
  const data = join(import.meta.dirname, '../../examples/evals/exact-sample.jsonl');
  // It used to stop at "--model is required".
  const r = await runCli(['eval', 'exact', '--data', data, '--out', out, '--max-tokens', '4', '--temperature', '0', '--concurrency', '1'], '', nanoEnv);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /^model: the embedded gpt-oss-nano .*\(in-process\)$/m);
  assert.match(r.stdout, /score: \d\.\d{3} ± \d\.\d{3} \(n=3\)\s*$/);
  const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as { model: string; complete: boolean };
  assert.match(summary.model, /^the embedded gpt-oss-nano /);
  assert.equal(summary.complete, true);
});
