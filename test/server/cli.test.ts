// `gptoss serve` as a user runs it: flags, the startup line, a request, shutdown on SIGTERM.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliCommand } from '../cli/in-process.ts';

const CLI = join(import.meta.dirname, '../../bin/gptoss.js');

test('serve: bad flags are one-line usage errors with exit status 2', () => {
  for (const args of [['--port', 'eighty'], ['--max-concurrency', '0'], ['--reasoning-effort', 'max'], ['--nope']]) {
    const r = spawnSync(process.execPath, [CLI, 'serve', ...args], { encoding: 'utf8' });
    assert.equal(r.status, 2, args.join(' '));
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /^gptoss serve: /);
  }
});

test('serve: starts on a free port with an API key, answers, and stops on SIGTERM', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gptoss-serve-cli-'));
  const script = join(dir, 'script.json');
  writeFileSync(script, JSON.stringify({ completions: ['<|channel|>analysis<|message|>Greet.<|end|><|start|>assistant<|channel|>final<|message|>Hi from the CLI.<|return|>'], name: 'scripted' }));
  const child = spawn(process.execPath, [...cliCommand(script), 'serve', '--port', '0', '--api-key', 'k1'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  try {
    const url = await new Promise<string>((resolve, reject) => {
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        const m = /serving scripted on (http:\/\/127\.0\.0\.1:\d+)\/v1/.exec(stderr);
        if (m !== null) resolve(m[1]!);
      });
      child.on('exit', (code) => reject(new Error(`exited ${code}: ${stderr}`)));
    });
    // The chat page loads without the key (its API calls carry it).
    const page = await fetch(`${url}/`);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<title>gptoss chat<\/title>/);
    const unauthorized = await fetch(`${url}/v1/models`);
    assert.equal(unauthorized.status, 401);
    const r = await fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: 'Bearer k1', 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'scripted', messages: [{ role: 'user', content: 'private words' }] }),
    });
    const body = (await r.json()) as { choices: { message: { content: string; reasoning: string } }[] };
    assert.equal(body.choices[0]!.message.content, 'Hi from the CLI.');
    assert.equal(body.choices[0]!.message.reasoning, 'Greet.');
    child.kill('SIGTERM');
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    assert.equal(code, 0);
    assert.match(stderr, /POST \/v1\/chat\/completions 200 in=\d+ out=\d+/);
    assert.ok(stderr.includes(`chat page: ${url}/\n`), stderr);
    assert.ok(!stderr.includes('private words'), 'no prompt text in the log');
  } finally {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});
