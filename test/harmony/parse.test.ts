// Parsing completions: the official library's inline parser tests (constrain adjacency, missing
// <|message|> in strict vs non-strict mode, UTF-8 streaming), the streaming getters and deltas,
// and our strict errors / lenient diagnostics for malformed model output.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getTokenizer, SPECIAL } from '../../src/tokenizer/index.ts';
import { UserError } from '../../src/errors.ts';
import {
  createMessage,
  message,
  parseCompletion,
  parseMessagesFromCompletionTokens,
  stopTokens,
  stopTokensForAssistantActions,
  StreamParser,
  type Message,
  type Role,
} from '../../src/harmony/index.ts';

const tok = getTokenizer();
const enc = (s: string): number[] => tok.encode(s, { allowedSpecial: 'all' });

function throwsAt(fn: () => unknown, position: number, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof UserError, `expected a UserError, got ${String(e)}`);
    assert.equal(e.kind, 'input');
    assert.match(e.message, new RegExp(`^token ${position}: `));
    assert.match(e.message, pattern);
    return true;
  });
}

test('stop token sets', () => {
  assert.deepEqual([...stopTokens()].sort(), [200002, 200007, 200012]);
  assert.deepEqual([...stopTokensForAssistantActions()].sort(), [200002, 200012]);
});

const weather = (content: string, recipient = 'functions.get_weather'): Message =>
  message.assistant(content, { channel: 'commentary', recipient, contentType: '<|constrain|>json' });

test('tool call headers: recipient before/after the channel, <|constrain|> with or without a space', () => {
  const cases: Array<[string, string]> = [
    ['<|start|>assistant to=functions.get_weather<|channel|>commentary <|constrain|>json<|message|>{"location": "Tokyo"}<|call|>', '{"location": "Tokyo"}'],
    ['<|start|>assistant to=functions.get_weather<|channel|>commentary<|constrain|>json<|message|>{"location": "Tokyo"}<|call|>', '{"location": "Tokyo"}'],
    ['<|start|>assistant<|channel|>commentary to=functions.get_weather<|constrain|>json<|message|>{"latitude":48.8566,"longitude":2.3522}<|call|>', '{"latitude":48.8566,"longitude":2.3522}'],
  ];
  for (const [text, content] of cases) {
    assert.deepEqual(parseMessagesFromCompletionTokens(enc(text)), [weather(content)], text);
  }
});

test('missing <|message|>: strict throws, lenient recovers as the official non-strict parser', () => {
  const cases: Array<[string, Message[]]> = [
    [
      "I must refuse<|end|><|start|>assistant<|channel|>analysis<|message|>We must refuse<|end|><|start|>assistant<|channel|>final<|message|>I'm sorry, but I can't help with that.<|return|>",
      [
        message.assistant('I must refuse'),
        message.assistant('We must refuse', { channel: 'analysis' }),
        message.assistant("I'm sorry, but I can't help with that.", { channel: 'final' }),
      ],
    ],
    [
      "<|channel|>analysis I must refuse<|end|><|start|>assistant<|channel|>analysis<|message|>We must refuse<|end|><|start|>assistant<|channel|>final<|message|>I'm sorry, but I can't help with that.<|return|>",
      [
        message.assistant('I must refuse', { channel: 'analysis' }),
        message.assistant('We must refuse', { channel: 'analysis' }),
        message.assistant("I'm sorry, but I can't help with that.", { channel: 'final' }),
      ],
    ],
    [
      "... Let's use the tool.<|end|><|start|>assistant to=functions.get_weather<|channel|>commentary json<|message|>{\"location\": \"Tokyo\"}<|call|>",
      [
        message.assistant("... Let's use the tool."),
        message.assistant('{"location": "Tokyo"}', { channel: 'commentary', recipient: 'functions.get_weather', contentType: 'json' }),
      ],
    ],
  ];
  for (const [text, expected] of cases) {
    const ids = enc(text);
    const end = ids.indexOf(SPECIAL.end);
    throwsAt(() => parseMessagesFromCompletionTokens(ids, 'assistant'), end, /<\|end\|> \(200007\) ends a message whose header .* has no <\|message\|>/);
    const { messages, dropped } = parseCompletion(ids, { role: 'assistant', strict: false });
    assert.deepEqual(messages, expected);
    assert.equal(dropped.length, 1);
    assert.equal(dropped[0]!.position, 0);
    assert.match(dropped[0]!.reason, /without <\|message\|>/);
  }
});

test('streaming: one token at a time, getters follow the header, deltas add up to the content', () => {
  const text = '<|channel|>analysis<|message|>Need weather.<|end|><|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city": "Oslo"}<|call|>';
  const p = new StreamParser({ role: 'assistant' });
  assert.equal(p.state, 'header');
  assert.equal(p.currentRole, 'assistant');
  const seen: Array<[string, string | undefined, string | undefined, string | undefined]> = [];
  const deltas: string[] = [];
  const completed: Message[] = [];
  for (const t of enc(text)) {
    const e = p.process(t);
    if (e.delta !== undefined) deltas.push(e.delta);
    assert.equal(e.delta, p.lastContentDelta);
    if (e.completed !== undefined) completed.push(e.completed);
    if ((p.state as string) === 'content') seen.push([p.currentRole!, p.currentChannel, p.currentRecipient, p.currentContentType]);
  }
  assert.equal(p.state as string, 'expect-start');
  assert.deepEqual(
    [...new Set(seen.map((s) => s.join('|')))],
    ['assistant|analysis||', 'assistant|commentary|functions.get_weather|<|constrain|>json'],
  );
  assert.equal(deltas.join(''), 'Need weather.{"city": "Oslo"}');
  assert.deepEqual(completed, [message.assistant('Need weather.', { channel: 'analysis' }), weather('{"city": "Oslo"}')]);
  assert.deepEqual(p.messages, completed);
  assert.equal(p.currentContent, '');
  assert.equal(p.tokens.length, enc(text).length);
});

test('streaming: a multi-token emoji is held back until complete', () => {
  const p = new StreamParser();
  for (const t of enc('<|start|>assistant<|message|>')) p.process(t);
  const emoji = tok.encodeOrdinary('💖');
  assert.ok(emoji.length >= 2, 'expected a multi-token emoji');
  p.process(emoji[0]!);
  assert.equal(p.lastContentDelta, undefined);
  assert.equal(p.currentContent, '');
  p.process(emoji[1]!);
  assert.equal(p.lastContentDelta, '💖');
  assert.equal(p.currentContent, '💖');
  p.process(SPECIAL.end);
  assert.deepEqual(p.messages, [message.assistant('💖')]);
});

test('streaming: invalid UTF-8 becomes U+FFFD exactly as the official parser, and never leaks into the next message', () => {
  // Token 9552 is the bytes [32, 240, 159]: a space and the start of a 4-byte character.
  const prefix = enc('<|start|>assistant<|message|>');
  const one = parseMessagesFromCompletionTokens([...prefix, 9552, 9552, ...enc('worked<|end|>')]);
  assert.deepEqual(one, [message.assistant(' \uFFFD \uFFFDworked')]);
  assert.deepEqual(parseMessagesFromCompletionTokens([...prefix, 9552, ...tok.encodeOrdinary('XY'), SPECIAL.end]), [message.assistant(' \uFFFDXY')]);
  assert.deepEqual(parseMessagesFromCompletionTokens([...prefix, 9552, ...tok.encodeOrdinary(' interesting'), SPECIAL.end]), [message.assistant(' \uFFFD interesting')]);
  const two = parseMessagesFromCompletionTokens([...prefix, 9552, 9552, SPECIAL.end, ...prefix, ...tok.encodeOrdinary('Hi'), SPECIAL.end]);
  assert.equal(two.length, 2);
  assert.deepEqual(two[1], message.assistant('Hi'));
  // Flushed at EOS.
  const p = new StreamParser();
  for (const t of [...prefix, 9552, ...tok.encodeOrdinary('Hi')]) p.process(t);
  p.processEos();
  assert.deepEqual(p.messages, [message.assistant(' \uFFFDHi')]);
  assert.equal(p.lastContentDelta, undefined);
  assert.equal(p.currentContent, '');
});

test('streaming: deltas of tricky UTF-8 text join to the exact text', () => {
  const text = 'Hello Müller, Γειά σου, Привет, שלום, مرحبا, नमस्ते, こんにちは, 안녕하세요, 你好. Normalized (naïve) vs. decomposed (naïve) characters. Some emojis: 😊👋🏾👨‍👩‍👧‍👦🇺🇸.';
  const p = new StreamParser();
  const deltas: string[] = [];
  for (const t of [...enc('<|start|>assistant<|message|>'), ...tok.encodeOrdinary(text), SPECIAL.end]) {
    const e = p.process(t);
    if (e.delta !== undefined) deltas.push(e.delta);
  }
  assert.equal(deltas.join(''), text);
  assert.deepEqual(p.messages, [message.assistant(text)]);
});

test('header grammar: tool authors, bare recipients, content types', () => {
  const cases: Array<[string, Role | undefined, Message]> = [
    ['<|start|>browser.search to=assistant<|channel|>commentary<|message|>{}<|end|>', undefined, createMessage({ role: 'tool', name: 'browser.search' }, '{}', { channel: 'commentary', recipient: 'assistant' })],
    ['<|channel|>analysis to=python code<|message|>print(1)<|call|>', 'assistant', message.assistant('print(1)', { channel: 'analysis', recipient: 'python', contentType: 'code' })],
    ['<|start|>user<|message|>hi<|end|>', undefined, message.user('hi')],
  ];
  for (const [text, role, expected] of cases) assert.deepEqual(parseMessagesFromCompletionTokens(enc(text), role), [expected], text);
  // A lone unknown word is not a role (nor a tool, which needs "to=..." after its name).
  throwsAt(() => parseMessagesFromCompletionTokens(enc('<|start|>functions.f<|message|>42<|end|>')), 0, /unknown role "functions\.f"/);
});

test('strict errors name the token position', () => {
  const done = enc('<|channel|>final<|message|>4<|return|>');
  // A stray token after a finished message (vllm#50690).
  throwsAt(() => parseMessagesFromCompletionTokens([...done, SPECIAL.return], 'assistant'), done.length, /unexpected <\|return\|> \(200002\) after a finished message/);
  // Unknown words in the header.
  throwsAt(() => parseMessagesFromCompletionTokens(enc('<|start|>assistant<|channel|>commentary to=functions.f extra json<|message|>{}<|call|>')), 0, /unexpected words "to=functions\.f"/);
  // Out-of-range ids.
  throwsAt(() => parseMessagesFromCompletionTokens([...enc('<|channel|>final<|message|>'), 999999], 'assistant'), 3, /token id 999999 is out of range \(0\.\.201087\)/);
  // A new message inside content.
  const noEnd = enc('<|channel|>final<|message|>4<|start|>assistant<|channel|>final<|message|>5<|return|>');
  throwsAt(() => parseMessagesFromCompletionTokens(noEnd, 'assistant'), noEnd.indexOf(SPECIAL.start), /<\|start\|> inside message content/);
  // EOS inside a header.
  throwsAt(() => parseMessagesFromCompletionTokens(enc('<|start|>assistant<|channel|>ana')), 0, /ended inside a message header/);
  // <|channel|> without a name.
  throwsAt(() => parseMessagesFromCompletionTokens(enc('<|start|>assistant<|channel|><|message|>x<|end|>')), 0, /<\|channel\|> without a channel name/);
});

test('lenient: stray tokens, unknown header words, a missing <|start|> or <|end|> are repaired and reported', () => {
  const done = enc('<|channel|>final<|message|>4<|return|>');
  let r = parseCompletion([...done, SPECIAL.return, SPECIAL.end], { role: 'assistant', strict: false });
  assert.deepEqual(r.messages, [message.assistant('4', { channel: 'final' })]);
  assert.deepEqual(r.dropped, [{ position: done.length, count: 2, reason: 'stray tokens outside a message dropped', text: '<|return|><|end|>' }]);

  r = parseCompletion(enc('<|start|>assistant<|channel|>commentary to=functions.f extra json<|message|>{}<|call|>'), { strict: false });
  assert.deepEqual(r.messages, [message.assistant('{}', { channel: 'commentary', recipient: 'functions.f', contentType: 'json' })]);
  assert.equal(r.dropped.length, 1);
  assert.match(r.dropped[0]!.reason, /unexpected words "extra" dropped/);

  // The model skipped "<|start|>assistant" before its second message.
  r = parseCompletion(enc('<|channel|>analysis<|message|>think<|end|><|channel|>final<|message|>4<|return|>'), { role: 'assistant', strict: false });
  assert.deepEqual(r.messages, [message.assistant('think', { channel: 'analysis' }), message.assistant('4', { channel: 'final' })]);
  assert.match(r.dropped[0]!.reason, /without <\|start\|>/);

  // The model skipped <|end|>.
  const noEnd = enc('<|channel|>analysis<|message|>think<|start|>assistant<|channel|>final<|message|>5<|return|>');
  r = parseCompletion(noEnd, { role: 'assistant', strict: false });
  assert.deepEqual(r.messages, [message.assistant('think', { channel: 'analysis' }), message.assistant('5', { channel: 'final' })]);
  assert.deepEqual(r.dropped.map((d) => d.position), [noEnd.indexOf(SPECIAL.start)]);

  // Unknown role, out-of-range id inside content, a special token inside content.
  r = parseCompletion([...enc('<|start|>robot<|message|>a'), 999999, SPECIAL.channel, ...enc('b<|end|>')], { strict: false });
  assert.deepEqual(r.messages, [message.assistant('a\uFFFDb')]);
  assert.equal(r.dropped.length, 3);
  assert.match(r.dropped[0]!.reason, /unknown role "robot"/);
  assert.match(r.dropped[1]!.reason, /out of range/);
  assert.match(r.dropped[2]!.reason, /<\|channel\|> \(200005\) inside message content dropped/);

  // A valid completion has nothing to report.
  r = parseCompletion(done, { role: 'assistant', strict: false });
  assert.deepEqual(r.dropped, []);
});

test('a completion ending mid-message (max tokens) still yields the partial message', () => {
  const msgs = parseMessagesFromCompletionTokens(enc('<|channel|>final<|message|>The answer is'), 'assistant');
  assert.deepEqual(msgs, [message.assistant('The answer is', { channel: 'final' })]);
});

test('lenient: a run of 50,000 stray tokens is one diagnostic with the run\'s text (the run is decoded once, not per token)', () => {
  const first = enc('<|channel|>final<|message|>4<|end|>');
  const x = enc('x');
  assert.equal(x.length, 1);
  const run = Array.from({ length: 50_000 }, (_, i) => (i % 2 === 0 ? x[0]! : SPECIAL.return));
  const second = enc('<|start|>assistant<|channel|>final<|message|>5<|return|>');
  const r = parseCompletion([...first, ...run, ...second], { role: 'assistant', strict: false });
  assert.deepEqual(r.messages, [message.assistant('4', { channel: 'final' }), message.assistant('5', { channel: 'final' })]);
  assert.deepEqual(r.dropped, [{ position: first.length, count: 50_000, reason: 'stray tokens outside a message dropped', text: 'x<|return|>'.repeat(25_000) }]);
});

test('lenient streaming: `dropped` read mid-run shows the run so far, and later reads the whole run', () => {
  const p = new StreamParser({ role: 'assistant', strict: false });
  for (const t of enc('<|channel|>final<|message|>4<|end|>ab')) p.process(t);
  const mid = p.dropped.map((d) => ({ ...d }));
  for (const t of enc('cd')) p.process(t);
  p.processEos();
  assert.equal(mid.length, 1);
  assert.equal(mid[0]!.text, 'ab');
  assert.equal(p.dropped.length, 1);
  assert.equal(p.dropped[0]!.text, 'abcd');
  assert.equal(p.dropped[0]!.count, enc('ab').length + enc('cd').length);
});
