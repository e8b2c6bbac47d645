// The `gptoss` dispatcher: usage, help, and an unknown command as one line with exit status 2.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCli } from './in-process.ts';

test('an unknown command is one line naming it and listing the commands, exit status 2', async () => {
  const r = await runCli(['tokenise']);
  assert.equal(r.code, 2);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /^gptoss: unknown command "tokenise"; the commands are tokenize, detokenize, render, .*, eval \(gptoss --help describes them\)\n$/);
});

test('no command prints the usage with status 2; --help prints it with status 0', async () => {
  const none = await runCli([]);
  assert.equal(none.code, 2);
  assert.match(none.stdout, /^usage: gptoss <command> \[options\]\n/);
  const help = await runCli(['--help']);
  assert.equal(help.code, 0);
  assert.equal(help.stdout, none.stdout);
  for (const name of ['tokenize', 'chat', 'serve', 'eval']) assert.match(help.stdout, new RegExp(`\\n  ${name} +\\S`));
});

test('a user error inside a command is one line prefixed with the command, status 2', async () => {
  const r = await runCli(['detokenize', 'x']);
  assert.equal(r.code, 2);
  assert.equal(r.stderr, 'gptoss detokenize: arguments: "x" at position 0 is not a token id\n');
});
