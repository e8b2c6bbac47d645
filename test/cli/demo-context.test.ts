// The embedded demo model runs with one context window in every command: `chat` and `serve` with no
// model (the demo is what they resolve to) and `loadEngine` in the library all report
// DEMO_CONTEXT_LENGTH, though the demo's config would allow 131,072.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEMO_CONTEXT_LENGTH, ensureDemoModel } from '../../src/checkpoint/synth.ts';
import { contextLength } from '../../src/model/config.ts';
import { readCheckpointConfig } from '../../src/checkpoint/checkpoint.ts';
import { loadEngine } from '../../src/engine/local.ts';
import { runCli } from './in-process.ts';

const CLI = join(import.meta.dirname, '../../bin/gptoss.js');
const work = mkdtempSync(join(tmpdir(), 'gptoss-demo-context-'));
after(() => rmSync(work, { recursive: true, force: true }));
const cache = join(work, 'cache');
const emptyHub = join(work, 'hub');
mkdirSync(emptyHub);
const demoDir = ensureDemoModel(cache);
// No model named anywhere: both commands resolve the demo model from this cache.
const env = { GPTOSS_CACHE: cache, GPTOSS_MODEL: '', HF_HUB_CACHE: emptyHub };

test('the demo model\'s own config allows a longer window than the demo runs with', async () => {
  const { config } = await readCheckpointConfig(demoDir);
  assert.ok(contextLength(config) > DEMO_CONTEXT_LENGTH, `${contextLength(config)}`);
});

test('chat, serve and loadEngine run the demo model with the same context window', async () => {
  const chat = await runCli(['chat', '--backend', 'reference', '--max-tokens', '1', 'Hi'], '', env);
  assert.equal(chat.code, 0, chat.stderr);
  const chatContext = /loaded demo-tiny in [\d.]+ s \(context (\d+) tokens\)/.exec(chat.stderr)?.[1];
  assert.ok(chatContext !== undefined, chat.stderr);

  const child = spawn(process.execPath, [CLI, 'serve', '--port', '0', '--backend', 'reference'], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  let serveContext: string;
  try {
    serveContext = await new Promise<string>((resolve, reject) => {
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        const m = /serving demo-tiny on http:\/\/\S+ \(context (\d+) tokens/.exec(stderr);
        if (m !== null) resolve(m[1]!);
      });
      child.on('exit', (code) => reject(new Error(`serve exited ${code}: ${stderr}`)));
    });
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
  }

  const engine = await loadEngine(demoDir, { backend: 'reference' });
  const libraryContext = engine.info.contextLength;
  await engine.close();

  assert.equal(Number(chatContext), DEMO_CONTEXT_LENGTH, 'chat');
  assert.equal(Number(serveContext), DEMO_CONTEXT_LENGTH, 'serve');
  assert.equal(libraryContext, DEMO_CONTEXT_LENGTH, 'loadEngine');
});
