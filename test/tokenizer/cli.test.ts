// `gptoss tokenize` / `gptoss detokenize` through the real entry point, as a user runs them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { getTokenizer, SPECIAL } from '../../src/tokenizer/index.ts';

function gptoss(args: string[], input?: string | Buffer): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['bin/gptoss.js', ...args], { input: input ?? '', encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const tok = getTokenizer();
const text = 'Hello <|start|> 世界 👩‍💻\nline two';

test('tokenize prints the ids of stdin on one line; --json prints an array', () => {
  const plain = gptoss(['tokenize'], text);
  assert.equal(plain.status, 0, plain.stderr);
  assert.equal(plain.stdout, `${tok.encodeOrdinary(text).join(' ')}\n`);
  const json = gptoss(['tokenize', '--json'], text);
  assert.deepEqual(JSON.parse(json.stdout), tok.encodeOrdinary(text));
  assert.ok(!JSON.parse(json.stdout).includes(SPECIAL.start));
});

test('tokenize --allow-special recognises special tokens', () => {
  const r = gptoss(['tokenize', '--json', '--allow-special'], text);
  assert.deepEqual(JSON.parse(r.stdout), tok.encode(text, { allowedSpecial: 'all' }));
  assert.ok(JSON.parse(r.stdout).includes(SPECIAL.start));
});

test('tokenize rejects input that is not UTF-8 with one line and status 2', () => {
  const r = gptoss(['tokenize'], Buffer.from([0x61, 0xff, 0x62]));
  assert.equal(r.status, 2);
  assert.match(r.stderr, /^gptoss tokenize: stdin is not valid UTF-8 at byte 1\n$/);
});

test('detokenize takes ids as arguments or on stdin, separated by spaces or commas', () => {
  const ids = tok.encode(text, { allowedSpecial: 'all' });
  const args = gptoss(['detokenize', ...ids.map(String)]);
  assert.equal(args.status, 0, args.stderr);
  assert.equal(args.stdout, text);
  const stdin = gptoss(['detokenize'], ids.join(', ') + '\n');
  assert.equal(stdin.stdout, text);
  const array = gptoss(['detokenize'], JSON.stringify(ids));
  assert.equal(array.stdout, text);
  const json = gptoss(['detokenize', '--json', ids.join(',')]);
  const parsed = JSON.parse(json.stdout) as { text: string; tokens: { id: number; text?: string; bytes?: string; special?: boolean }[] };
  assert.equal(parsed.text, text);
  assert.equal(parsed.tokens.length, ids.length);
  assert.deepEqual(parsed.tokens.find((t) => t.id === SPECIAL.start), { id: SPECIAL.start, text: '<|start|>', special: true });
  assert.ok(parsed.tokens.some((t) => t.bytes !== undefined), 'the emoji spans byte-level tokens');
});

test('detokenize errors: out of range, not a number, ending inside a character', () => {
  const range = gptoss(['detokenize', '13225', '201088']);
  assert.equal(range.status, 2);
  assert.equal(range.stderr, 'gptoss detokenize: token id 201088 at position 1 is out of range (0..201087)\n');
  const word = gptoss(['detokenize'], '1 2 x3');
  assert.equal(word.status, 2);
  assert.match(word.stderr, /"x3" at position 2 is not a token id/);
  const emoji = tok.encodeOrdinary('👩‍💻');
  const cut = gptoss(['detokenize', String(emoji[0])]);
  assert.equal(cut.status, 2);
  assert.match(cut.stderr, /^gptoss detokenize: the tokens end inside a multi-byte UTF-8 character at token 0/);
  assert.ok(!cut.stderr.includes('    at '), 'no stack trace');
});

test('tokenize | detokenize round-trips a file byte for byte', () => {
  const ids = gptoss(['tokenize'], text).stdout;
  assert.equal(gptoss(['detokenize'], ids).stdout, text);
});
