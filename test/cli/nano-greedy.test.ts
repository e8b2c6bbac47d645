// The embedded gpt-oss-nano decodes greedily by default (its shipped generation_config.json): at
// temperature 1 its ~199k unused vocabulary rows (logit 0) would put stray tokens in an answer.
// `gptoss chat` with no sampling flag answers as `--temperature 0` does, whatever the seed, and
// `--temperature` still chooses sampling. Chat says at start-up that the model chose greedy decoding.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureNano } from '../../src/checkpoint/nano.ts';
import { readGenerationDefaults } from '../../src/checkpoint/generation.ts';
import { runCli } from './in-process.ts';

const work = mkdtempSync(join(tmpdir(), 'gptoss-nano-greedy-'));
after(() => rmSync(work, { recursive: true, force: true }));
const emptyHub = join(work, 'hub');
mkdirSync(emptyHub);
const env = { GPTOSS_CACHE: join(work, 'cache'), GPTOSS_MODEL: '', HF_HUB_CACHE: emptyHub, NO_COLOR: '1' };

test('the shipped gpt-oss-nano carries do_sample: false into its expanded checkpoint', () => {
  const { dir } = ensureNano(undefined, env.GPTOSS_CACHE);
  assert.deepEqual(readGenerationDefaults(dir), { temperature: 0 });
});

test("chat with the embedded gpt-oss-nano: the default answer is --temperature 0's, whatever the seed; --temperature 1 samples", async () => {
  const question = 'A patient weighs 42 kg and the dose is 15 mg/kg. What is the dose?';
  const chat = async (...flags: string[]): Promise<string> => {
    const r = await runCli(['chat', '--threads', '1', '--raw', '--max-tokens', '40', ...flags, question], '', env);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /^loading the embedded gpt-oss-nano/m);
    // The model's own choice is announced, and only when no flag overrides it.
    const announced = /^sampling: greedy, as the model's generation_config\.json asks \(--temperature T to change\)$/m.test(r.stderr);
    assert.equal(announced, !flags.includes('--temperature'), r.stderr);
    return r.stdout;
  };
  const greedy = await chat('--temperature', '0');
  assert.ok(greedy.length > 0);
  assert.equal(await chat('--seed', '1'), greedy);
  assert.equal(await chat('--seed', '2'), greedy);
  assert.notEqual(await chat('--temperature', '1', '--seed', '1'), greedy);
});
