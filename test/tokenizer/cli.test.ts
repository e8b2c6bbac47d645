// `gptoss tokenize` / `gptoss detokenize` as a user runs them: two runs go through the real entry
// point (bin/gptoss.js, stdin and stdout of a child process), the rest call the CLI's main()
// in-process (test/cli/in-process.ts), which gives the same output without a second of startup each.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { getTokenizer, SPECIAL } from '../../src/tokenizer/index.ts';
import { runCli, runCliProcess } from '../cli/in-process.ts';

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function gptoss(args: string[], input: string | Buffer = ''): Promise<Run> {
  return runCliProcess(args, input).then((r) => ({ status: r.code, stdout: r.stdout, stderr: r.stderr }));
}

function inProcess(args: string[], input: string | Buffer = ''): Promise<Run> {
  return runCli(args, input).then((r) => ({ status: r.code, stdout: r.stdout, stderr: r.stderr }));
}

const tok = getTokenizer();
const text = 'Hello <|start|> 世界 👩‍💻\nline two';
const ids = tok.encode(text, { allowedSpecial: 'all' });
const emoji = tok.encodeOrdinary('👩‍💻');

const runs = {
  plain: gptoss(['tokenize'], text),
  json: inProcess(['tokenize', '--json'], text),
  special: inProcess(['tokenize', '--json', '--allow-special'], text),
  notUtf8: inProcess(['tokenize'], Buffer.from([0x61, 0xff, 0x62])),
  args: inProcess(['detokenize', ...ids.map(String)]),
  stdin: gptoss(['detokenize'], ids.join(', ') + '\n'),
  array: inProcess(['detokenize'], JSON.stringify(ids)),
  detokJson: inProcess(['detokenize', '--json', ids.join(',')]),
  range: inProcess(['detokenize', '13225', '201088']),
  word: inProcess(['detokenize'], '1 2 x3'),
  cut: inProcess(['detokenize', String(emoji[0])]),
};
const r = {} as Record<keyof typeof runs, Run>;
before(async () => {
  for (const [k, v] of Object.entries(runs)) r[k as keyof typeof runs] = await v;
});

test('tokenize prints the ids of stdin on one line; --json prints an array', () => {
  assert.equal(r.plain.status, 0, r.plain.stderr);
  assert.equal(r.plain.stdout, `${tok.encodeOrdinary(text).join(' ')}\n`);
  assert.deepEqual(JSON.parse(r.json.stdout), tok.encodeOrdinary(text));
  assert.ok(!(JSON.parse(r.json.stdout) as number[]).includes(SPECIAL.start));
});

test('tokenize --allow-special recognises special tokens', () => {
  assert.deepEqual(JSON.parse(r.special.stdout), ids);
  assert.ok(ids.includes(SPECIAL.start));
});

test('tokenize rejects input that is not UTF-8 with one line and status 2', () => {
  assert.equal(r.notUtf8.status, 2);
  assert.match(r.notUtf8.stderr, /^gptoss tokenize: stdin is not valid UTF-8 at byte 1\n$/);
});

test('detokenize takes ids as arguments or on stdin, separated by spaces or commas', () => {
  assert.equal(r.args.status, 0, r.args.stderr);
  assert.equal(r.args.stdout, text);
  assert.equal(r.stdin.stdout, text);
  assert.equal(r.array.stdout, text);
  const parsed = JSON.parse(r.detokJson.stdout) as { text: string; tokens: { id: number; text?: string; bytes?: string; special?: boolean }[] };
  assert.equal(parsed.text, text);
  assert.equal(parsed.tokens.length, ids.length);
  assert.deepEqual(parsed.tokens.find((t) => t.id === SPECIAL.start), { id: SPECIAL.start, text: '<|start|>', special: true });
  assert.ok(parsed.tokens.some((t) => t.bytes !== undefined), 'the emoji spans byte-level tokens');
});

test('detokenize errors: out of range, not a number, ending inside a character', () => {
  assert.equal(r.range.status, 2);
  assert.equal(r.range.stderr, 'gptoss detokenize: token id 201088 at position 1 is out of range (0..201087)\n');
  assert.equal(r.word.status, 2);
  assert.match(r.word.stderr, /"x3" at position 2 is not a token id/);
  assert.equal(r.cut.status, 2);
  assert.match(r.cut.stderr, /^gptoss detokenize: the tokens end inside a multi-byte UTF-8 character at token 0/);
  assert.ok(!r.cut.stderr.includes('    at '), 'no stack trace');
});

test('tokenize output fed to detokenize gives the text back byte for byte', async () => {
  assert.equal((await inProcess(['detokenize'], r.plain.stdout)).stdout, text);
});

test('a reader that closes the pipe early ends the command quietly (no EPIPE stack trace)', async () => {
  // detokenize --json of many ids writes megabytes; the reader takes the first chunk and leaves.
  const many = tok.encodeOrdinary('Hello 世界 '.repeat(50_000)).join(' ');
  const result = await new Promise<{ status: number | null; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, ['bin/gptoss.js', 'detokenize', '--json']);
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.stdout.once('data', () => child.stdout.destroy());
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stderr }));
    child.stdin.end(many);
  });
  assert.equal(result.stderr, '');
  assert.equal(result.status, 0);
});
