// `gptoss render` and `gptoss parse` as a user runs them: output matches the library functions,
// and bad input is one line on stderr with exit status 2. One call goes through bin/gptoss.js in a
// child process; the rest call the CLI's main() in-process (test/cli/in-process.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getTokenizer } from '../../src/tokenizer/index.ts';
import { conversationFromJSONText, renderConversationForCompletion, tokensToText } from '../../src/harmony/index.ts';
import { runCli, runCliProcess } from '../cli/in-process.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const tok = getTokenizer();

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function gptoss(args: string[], stdin = ''): Promise<Result> {
  return runCliProcess(args, stdin);
}

function assertOneLineError(r: Result, pattern: RegExp): void {
  assert.equal(r.code, 2, `exit status (stderr: ${r.stderr})`);
  assert.equal(r.stdout, '');
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, pattern);
}

const tmp = mkdtempSync(join(tmpdir(), 'gptoss-harmony-cli-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = join(tmp, name);
  writeFileSync(path, text);
  return path;
}

test('gptoss render: examples/chat.json as text and as ids, --for training, --reasoning-effort', async () => {
  const convo = conversationFromJSONText(readFileSync(join(root, 'examples/chat.json'), 'utf8'));
  const ids = renderConversationForCompletion(convo);
  const answered = file('answered.json', JSON.stringify({ messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', channel: 'final', content: 'hello' }] }));
  const [text, tokens, training, effort] = await Promise.all([
    gptoss(['render', 'examples/chat.json']),
    runCli(['render', '--tokens', join(root, 'examples/chat.json')]),
    runCli(['render', answered, '--for', 'training']),
    runCli(['render', '-', '--reasoning-effort', 'high'], readFileSync(join(root, 'examples/chat.json'), 'utf8')),
  ]);
  assert.equal(text.code, 0, text.stderr);
  assert.equal(text.stdout, `${tokensToText(ids)}\n`);
  assert.ok(text.stdout.startsWith('<|start|>system<|message|>') && text.stdout.endsWith('<|start|>assistant\n'));
  assert.equal(tokens.stdout, `${ids.join(' ')}\n`);
  assert.equal(training.stdout, '<|start|>user<|message|>hi<|end|><|start|>assistant<|channel|>final<|message|>hello<|return|>\n');
  assert.match(effort.stdout, /\nReasoning: high\n/);
});

test('gptoss render: bad input is one line naming the problem, exit status 2', async () => {
  const robot = file('robot.json', JSON.stringify({ messages: [{ role: 'user', content: 'a' }, { role: 'user', content: 'b' }, { role: 'robot', content: 'c' }] }));
  const broken = file('broken.json', '{"messages": [\n  {"role": "user" "content": "x"}\n]}');
  const schema = file('schema.json', JSON.stringify({
    messages: [{ role: 'developer', content: [{ type: 'developer_content', tools: { functions: { name: 'functions', tools: [{ name: 'f', description: 'd', parameters: { type: 'object', properties: { n: { type: { bad: 1 } } } } }] } } }] }],
  }));
  const [r1, r2, r3, r4, r5, r6] = await Promise.all([
    runCli(['render', robot]),
    runCli(['render', broken]),
    runCli(['render', schema]),
    runCli(['render', join(tmp, 'missing.json')]),
    runCli(['render', robot, '--for', 'nonsense']),
    runCli(['render', tmp]),
  ]);
  assertOneLineError(r1, /^gptoss render: .*robot\.json: messages\[2\]\.role: unknown role "robot"/);
  assertOneLineError(r2, /^gptoss render: .*broken\.json: invalid JSON at line 2, column \d+/);
  assertOneLineError(r3, /^gptoss render: .*schema\.json: messages\[0\]\.content\[0\]\.tools\.functions\.tools\[0\]\.parameters\.properties\.n\.type: expected a type name/);
  assertOneLineError(r4, /^gptoss render: .*missing\.json: no such file/);
  assertOneLineError(r5, /^gptoss render: --for must be completion, training or history/);
  assertOneLineError(r6, /^gptoss render: .*gptoss-harmony-cli-\w+: is a folder, not a file$/);
});

const completion = '<|channel|>analysis<|message|>Simple.<|end|><|start|>assistant<|channel|>final<|message|>4<|return|>';
const expectedMessages = [
  { role: 'assistant', content: 'Simple.', channel: 'analysis' },
  { role: 'assistant', content: '4', channel: 'final' },
];

test('gptoss parse: ids or text on stdin -> messages JSON; --stream prints one event per token', async () => {
  const ids = tok.encode(completion, { allowedSpecial: 'all' });
  const [fromIds, fromText, stream, fullText] = await Promise.all([
    runCli(['parse'], ids.join(', ')),
    runCli(['parse'], `${completion}\n`),
    runCli(['parse', '--stream'], ids.join(' ')),
    runCli(['parse'], `<|start|>assistant${completion}`),
  ]);
  for (const r of [fromIds, fromText, fullText]) {
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { messages: expectedMessages });
  }
  const lines = stream.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(lines.length, ids.length + 2); // one per token, one for the end, then the result
  assert.deepEqual(lines.slice(0, -2).map((l) => l['token']), ids);
  assert.equal(lines.slice(0, -1).map((l) => l['delta'] ?? '').join(''), 'Simple.4');
  assert.deepEqual(lines.filter((l) => l['message'] !== undefined).map((l) => l['message']), expectedMessages);
  assert.deepEqual(lines[2], { position: 2, token: ids[2], state: 'content', role: 'assistant', channel: 'analysis' });
  assert.deepEqual(lines[lines.length - 1], { messages: expectedMessages });
});

test('gptoss parse: malformed completions fail in strict mode with the token position, --lenient recovers', async () => {
  const stray = `${completion}<|return|>`;
  const [strict, lenient, outOfRange, notIds] = await Promise.all([
    runCli(['parse'], stray),
    runCli(['parse', '--lenient'], stray),
    runCli(['parse'], '200005 17196 200008 19 999999'),
    runCli(['parse', '--ids'], '200005 abc'),
  ]);
  const position = tok.encode(completion, { allowedSpecial: 'all' }).length;
  assertOneLineError(strict, new RegExp(`^gptoss parse: token ${position}: unexpected <\\|return\\|> \\(200002\\) after a finished message`));
  assert.equal(lenient.code, 0, lenient.stderr);
  assert.deepEqual(JSON.parse(lenient.stdout), {
    messages: expectedMessages,
    dropped: [{ position, count: 1, reason: 'stray tokens outside a message dropped', text: '<|return|>' }],
  });
  assertOneLineError(outOfRange, /^gptoss parse: token 4: token id 999999 is out of range \(0\.\.201087\)$/);
  assertOneLineError(notIds, /^gptoss parse: stdin: "abc" at position 1 is not a token id$/);
});

test('gptoss parse --lenient: 50,000 stray tokens between two messages end in one diagnostic', async () => {
  const ids = [
    ...tok.encode('<|start|>assistant<|channel|>final<|message|>4<|end|>', { allowedSpecial: 'all' }),
    ...Array.from({ length: 50_000 }, () => tok.encode('x')[0]!),
    ...tok.encode('<|start|>assistant<|channel|>final<|message|>5<|return|>', { allowedSpecial: 'all' }),
  ];
  const r = await runCli(['parse', '--lenient'], ids.join(' '));
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { messages: { content: string }[]; dropped: { position: number; count: number; text: string }[] };
  assert.deepEqual(out.messages.map((m) => m.content), ['4', '5']);
  assert.equal(out.dropped.length, 1);
  assert.equal(out.dropped[0]!.count, 50_000);
  assert.equal(out.dropped[0]!.text, 'x'.repeat(50_000));
});

test('gptoss parse: control bytes from the input are escaped in the error line, and a huge header is cut short', async () => {
  // An OSC sequence (set the terminal title) and a colour code hidden in a header word.
  const hostile = '<|start|>assistant<|channel|>final \u001b]0;pwned\u0007\u001b[31m extra words<|message|>hi<|end|>';
  const escaped = await runCli(['parse'], hostile);
  assertOneLineError(escaped, /^gptoss parse: token 0: unexpected words "\\u001b\]0;pwned\\u0007\\u001b\[31m" in message header /);
  assert.ok(!/[\u0000-\u0008\u000b-\u001f\u007f]/.test(escaped.stderr), JSON.stringify(escaped.stderr));

  // A 400 KB header ("assistant a a a ..."), given as token ids.
  const word = tok.encode(' a');
  assert.equal(word.length, 1);
  const ids = [...tok.encode('<|start|>assistant', { allowedSpecial: 'all' }), ...Array.from({ length: 200_000 }, () => word[0]!), ...tok.encode('<|message|>hi<|end|>', { allowedSpecial: 'all' })];
  const huge = await runCli(['parse'], ids.join(' '));
  assertOneLineError(huge, /^gptoss parse: token 0: unexpected words "a a a .*…" in message header "assistant a a .*…"$/);
  assert.ok(huge.stderr.length < 600, `${huge.stderr.length} characters`);
});
