// `gptoss chat` in script mode (stdin not a terminal) over a scripted engine (test/cli/scripted.ts):
// the answer alone on stdout, reasoning and tool lines on stderr, the random weights warning, the
// browser tool over a real docs folder (citations resolved, the files it left out named), user
// errors. The first case runs as a child process (test/cli/scripted-gptoss.ts); the others call the
// CLI's main() in-process (test/cli/in-process.ts) with the engine in its CommandContext.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createConversation } from '../../src/harmony/index.ts';
import type { CommandContext } from '../../src/cli/main.ts';
import { runCli, runCliProcess } from './in-process.ts';
import { scriptedEngine, type Script } from './scripted.ts';
import { argmax } from '../../src/engine/sampler.ts';
import { renderConversationForCompletion, tokensToText } from '../../src/harmony/index.ts';

const root = mkdtempSync(join(tmpdir(), 'gptoss-chat-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));

/** A script file for the child process. */
function scriptFile(name: string, completions: string[]): string {
  const path = join(root, `${name}.json`);
  writeFileSync(path, JSON.stringify({ completions } satisfies Script));
  return path;
}

/** A scripted engine for main() in-process. */
function script(completions: string[], extra: Omit<Script, 'completions'> = {}): CommandContext {
  return { engine: scriptedEngine({ completions, ...extra }) };
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function chat(args: string[], input: string, scriptPath: string): Promise<Run> {
  return runCliProcess(['chat', ...args], input, { NO_COLOR: '1' }, scriptPath);
}

/** `gptoss chat` in-process, with the child process's environment defaults (no colour), on `context`'s engine when given. */
async function chatInProcess(args: string[], input: string, context: CommandContext = {}, env: Record<string, string> = {}): Promise<Run> {
  return runCli(['chat', ...args], input, { NO_COLOR: '1', ...env }, context);
}

const hello = '<|channel|>analysis<|message|>The user greets me. Reply briefly.<|end|><|start|>assistant<|channel|>final<|message|>Hello! How can I help?<|return|>';

test('one prompt on stdin: the final answer alone on stdout, exit 0', async () => {
  const r = await chat([], 'Hi there\n', scriptFile('hello', [hello]));
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'Hello! How can I help?\n');
  assert.equal(r.stderr, '');
});

test('--show-reasoning puts the reasoning and statistics on stderr; a prompt argument works too', async () => {
  const r = await chatInProcess(['--show-reasoning', '-r', 'high', 'Hi', 'there'], '', script([hello]));
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'Hello! How can I help?\n');
  assert.match(r.stderr, /The user greets me\. Reply briefly\./);
  assert.match(r.stderr, /\(\d+ tokens, [\d.]+ tok\/s, \d+ reasoning; prompt \d+ tokens, 0 cached, \d+ ms\)/);
});

test('random weights are announced plainly', async () => {
  const r = await chatInProcess([], 'Hi', script([hello], { randomWeights: true, name: 'demo-tiny' }));
  assert.equal(r.code, 0);
  assert.match(r.stderr, /demo-tiny has RANDOM weights/);
  assert.equal(r.stdout, 'Hello! How can I help?\n');
  // Random weights never end an answer: without --max-tokens it stops after 256 tokens, and says so.
  assert.match(r.stderr, /Answers stop after 256 tokens \(--max-tokens N to change\)/);
  const endless = `<|channel|>final<|message|>${' go'.repeat(400)}<|return|>`;
  const capped = await chatInProcess([], 'Hi', script([endless], { randomWeights: true }));
  assert.equal(capped.code, 0);
  assert.ok(capped.stdout.startsWith(' go go'), capped.stdout.slice(0, 40));
  assert.ok(capped.stdout.split('go').length - 1 < 256, 'the answer was cut');
  assert.match(capped.stderr, /max-tokens/);
  const uncapped = await chatInProcess(['--max-tokens', '1000'], 'Hi', script([endless], { randomWeights: true }));
  assert.equal(uncapped.stdout, `${' go'.repeat(400)}\n`);
  assert.doesNotMatch(uncapped.stderr, /Answers stop after/);
  // --raw shows the completion exactly as written, special tokens by name.
  const raw = await chatInProcess(['--raw'], 'Hi', script([hello], { randomWeights: true }));
  assert.equal(raw.code, 0);
  assert.equal(raw.stdout, `${hello}\n`);
});

test('--browser: the model searches and opens local documents, and its citation becomes a link', async () => {
  const docs = join(root, 'docs');
  mkdirSync(docs, { recursive: true });
  writeFileSync(join(docs, 'hygiene.md'), '# Hand hygiene\n\nWash hands for at least 20 seconds with soap and water.\nUse alcohol-based rub when hands are not visibly soiled.\n');
  writeFileSync(join(docs, 'sterile.md'), '# Sterilization\n\nAutoclave at 121 C for 15 minutes.\n');
  writeFileSync(join(docs, 'scan.txt'), Buffer.from([0x25, 0x50, 0x44, 0x46, 0x00]));
  const completions = [
    '<|channel|>analysis<|message|>Search the protocols.<|end|><|start|>assistant<|channel|>analysis to=browser.search code<|message|>{"query":"hand washing soap"}<|call|>',
    '<|channel|>analysis to=browser.open code<|message|>{"id":0}<|call|>',
    '<|channel|>final<|message|>Wash for 20 seconds 【1†L4】.<|return|>',
  ];
  const r = await chatInProcess(['--browser', docs], 'How long should I wash my hands?', script(completions));
  assert.equal(r.code, 0, r.stderr);
  // Display line L4 is line 3 of the file.
  assert.equal(r.stdout, 'Wash for 20 seconds ([Hand hygiene](hygiene.md#L3)).\n');
  assert.match(r.stderr, /→ browser\.search \{"query":"hand washing soap"\}/);
  assert.match(r.stderr, /← browser\.search \[0\] hand washing soap \(\d+ lines\)\n/);
  assert.match(r.stderr, /← browser\.open \[1\] Hand hygiene \(local:\/\/docs\/hygiene\.md\) \(\d+ lines\)\n/);
  // The search waited for the index, so the file it left out has been named by then, once.
  assert.equal(r.stderr.split('browser: left out').length - 1, 1, r.stderr);
  assert.match(r.stderr, /^browser: left out scan\.txt \(binary \(contains NUL bytes\)\)$/m);
});

test('user errors: one line, exit 2', async () => {
  const empty = await chatInProcess([], '', script([hello]));
  assert.equal(empty.code, 2);
  assert.equal(empty.stderr, 'gptoss chat: no prompt: pass one as an argument or on stdin\n');
  const effort = await chatInProcess(['-r', 'extreme', 'hi'], '', script([hello]));
  assert.equal(effort.code, 2);
  assert.equal(effort.stderr, 'gptoss chat: --reasoning-effort must be low, medium or high, got "extreme"\n');
  const small = await chatInProcess(['hi'], '', script([hello], { contextLength: 40 }));
  assert.equal(small.code, 2);
  assert.match(small.stderr, /^gptoss chat: the prompt has \d+ tokens; the context window holds 40 \(prompt plus completion\)\n$/);
  const model = await chatInProcess(['--model', 'openai/gpt-oss-120b', 'hi'], '', {}, { HF_HUB_CACHE: join(root, 'empty-hub') });
  assert.equal(model.code, 2);
  assert.match(model.stderr, /^gptoss chat: --model "openai\/gpt-oss-120b" is not in the hub cache .*gptoss pull openai\/gpt-oss-120b\n$/);
});

const golden = '../shared/golden/fullvocab-h32-l2';

test('through the real engine: --model DIR loads the checkpoint and the greedy tokens match the engine', { skip: existsSync(golden) ? false : `${golden} not present` }, async () => {
  const r = await chatInProcess(['--model', golden, '--backend', 'reference', '--max-tokens', '4', '--temperature', '0', '--raw', 'hi'], '');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /^loading \.\.\/shared\/golden\/fullvocab-h32-l2 \(backend reference\)…\nloaded fullvocab-h32-l2 in [\d.]+ s \(context 8192 tokens\)\n/);
  // The same prompt (default system message with today's date, effort medium) run in-process.
  const { loadEngine } = await import('../../src/engine/local.ts');
  const engine = await loadEngine(golden, { backend: 'reference', contextLength: 8192 });
  try {
    const convo = createConversation({ reasoningEffort: 'medium' });
    convo.messages.push({ author: { role: 'user' }, content: [{ type: 'text', text: 'hi' }] });
    const seq = engine.createSequence();
    let [logits] = await engine.step([{ sequence: seq, tokens: renderConversationForCompletion(convo) }]);
    const expected: number[] = [];
    while (expected.length < 4) {
      expected.push(argmax(logits!));
      if (expected.length < 4) [logits] = await engine.step([{ sequence: seq, tokens: [expected.at(-1)!] }]);
    }
    assert.equal(r.stdout, `${tokensToText(expected)}\n`);
  } finally {
    await engine.close();
  }
});
