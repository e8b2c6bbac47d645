// Fuzzing the harmony parser with random and mutated token streams: strict parsing returns messages
// or a clear error naming the position, lenient parsing always recovers, both stay linear on long
// runs of stray tokens, and well-formed completions survive the round trip unchanged.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createMessage, parseCompletion, renderMessage, type Message } from '../../src/harmony/index.ts';
import { getTokenizer, SPECIAL } from '../../src/tokenizer/index.ts';
import { assertClearError, assertOneLine, fuzzCases, FUZZ_SEED, Rng } from './fuzz.ts';

const tok = getTokenizer();
const enc = (s: string): number[] => tok.encode(s, { allowedSpecial: 'all' });

const SPECIALS = Object.values(SPECIAL);
const WORDS = ['assistant', 'user', 'analysis', 'final', 'commentary', ' to=functions.get', ' to=python', '<|constrain|>json', 'json', '{"a":1}', 'hello', ' world', '\n', '\u0007', '\u001b[31m'].map(enc);

function randomStream(rng: Rng, length: number): number[] {
  const out: number[] = [];
  while (out.length < length) {
    const r = rng.float();
    if (r < 0.35) out.push(rng.pick(SPECIALS));
    else if (r < 0.75) out.push(...rng.pick(WORDS));
    else if (r < 0.95) out.push(rng.int(0, 199_997));
    else out.push(rng.int(199_998, 201_087)); // reserved specials
  }
  return out;
}

function randomMessage(rng: Rng): Message {
  const channel = rng.pick(['analysis', 'commentary', 'final']);
  const body = Array.from({ length: rng.int(1, 6) }, () => rng.pick(['dose', ' 5 mg/kg', ' é', ' 中文', ' {"x": [1, 2]}', '\n', ' ok'])).join('');
  const fields = channel === 'commentary' && rng.bool() ? { channel, recipient: 'functions.lookup', contentType: '<|constrain|>json' } : { channel };
  return createMessage('assistant', body, fields);
}

function completionOf(messages: readonly Message[]): number[] {
  // A completion starts after the prompt's `<|start|>assistant`: drop those two tokens of the first message.
  const tokens = messages.flatMap((m) => renderMessage(m));
  return tokens.slice(2);
}

test('random token streams: strict parse gives messages or a clear error; lenient always recovers', () => {
  const rng = new Rng(FUZZ_SEED);
  for (let i = 0; i < fuzzCases(400); i++) {
    const tokens = randomStream(rng, rng.int(0, 80));
    const what = `case ${i} (seed ${FUZZ_SEED})`;
    try {
      const { messages } = parseCompletion(tokens, { role: 'assistant', strict: true });
      for (const m of messages) assert.ok(Array.isArray(m.content), what);
    } catch (e) {
      assertClearError(e, what);
    }
    const lenient = parseCompletion(tokens, { role: 'assistant', strict: false });
    for (const d of lenient.dropped) {
      assert.ok(d.position >= 0 && d.position + d.count <= tokens.length + 1, `${what}: diagnostic out of range ${JSON.stringify(d)}`);
      assertOneLine(d.reason, what);
    }
  }
});

test('well-formed completions round-trip; mutated ones give messages or a clear error', () => {
  const rng = new Rng(FUZZ_SEED ^ 0x5eed);
  for (let i = 0; i < fuzzCases(200); i++) {
    const messages = Array.from({ length: rng.int(1, 4) }, () => randomMessage(rng));
    const tokens = completionOf(messages);
    const what = `case ${i} (seed ${FUZZ_SEED})`;
    const parsed = parseCompletion(tokens, { role: 'assistant', strict: true });
    assert.deepEqual(parsed.messages.map((m) => renderMessage(m)), messages.map((m) => renderMessage(m)), what);

    const mutated = [...tokens];
    for (let k = rng.int(1, 4); k > 0; k--) {
      const at = rng.int(0, mutated.length);
      const op = rng.int(0, 2);
      if (op === 0 && mutated.length > 0) mutated.splice(Math.min(at, mutated.length - 1), 1);
      else if (op === 1) mutated.splice(at, 0, rng.pick(SPECIALS));
      else mutated.splice(at, 0, ...rng.pick(WORDS));
    }
    try {
      parseCompletion(mutated, { role: 'assistant', strict: true });
    } catch (e) {
      assertClearError(e, `${what} mutated`);
    }
    parseCompletion(mutated, { role: 'assistant', strict: false });
  }
});

test('lenient parsing of 50,000 stray tokens after a message finishes and accounts for each', () => {
  const head = enc('<|channel|>final<|message|>4 mg<|end|>');
  const word = enc('hello')[0]!;
  const stray = Array.from({ length: 50_000 }, (_, i) => (i % 2 === 0 ? word : SPECIAL.end));
  const { messages, dropped } = parseCompletion([...head, ...stray], { role: 'assistant', strict: false });
  assert.equal(messages.length, 1);
  assert.equal(messages[0]!.channel, 'final');
  const covered = dropped.reduce((n, d) => n + d.count, 0);
  assert.equal(covered, stray.length, 'every stray token is accounted for in the diagnostics');
});
