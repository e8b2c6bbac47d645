// `gptoss logits` and `gptoss generate` end to end on a golden case: the JSON shapes external
// checks rely on, golden logits and greedy continuation, and one-line errors with exit status 2.
// One run goes through bin/gptoss.js in a child process; the rest call the CLI's main() in-process
// (test/cli/in-process.ts).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { conversation, message, renderConversationForCompletion } from '../../src/harmony/index.ts';
import { runCli } from '../cli/in-process.ts';
import { FULLVOCAB_DIR, goldenCase, hasFullvocab, maxAbsDiff, readF32 } from '../model/golden-data.ts';
import { loadEngine } from '../../src/engine/local.ts';
import { UserError } from '../../src/errors.ts';

const BIN = new URL('../../bin/gptoss.js', import.meta.url).pathname;
const gold = goldenCase(new URL('../fixtures/golden/gqa4-l2-e8k4/', import.meta.url).pathname);

function gptoss(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function inProcess(...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const r = await runCli(args);
  return { status: r.code, stdout: r.stdout, stderr: r.stderr };
}

describe('gptoss logits / generate', () => {
  const seq = gold.golden.sequences[1]!;

  it('logits --all-positions prints {"logits": [[...], ...]} matching the reference', async () => {
    const r = await inProcess('logits', '--model', gold.dir, '--tokens', seq.tokens.join(','), '--all-positions', '--json', '--backend', 'reference');
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { logits: number[][] };
    assert.equal(out.logits.length, seq.length);
    assert.ok(out.logits.every((row) => row.length === 512));
    const diff = maxAbsDiff(out.logits.flat(), readF32(gold, seq.logits.fp32));
    assert.ok(diff <= gold.golden.tolerances.fp32.max_abs, `differs by ${diff}`);
  });

  it('logits --expert-activations q8 stays within the bf16 tolerance of the reference', async () => {
    const r = await inProcess('logits', '--model', gold.dir, '--tokens', String(seq.tokens[0]), '--expert-activations', 'q8', '--threads', '1');
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { logits: number[] };
    const diff = maxAbsDiff(out.logits, readF32(gold, seq.logits.fp32).subarray(0, 512));
    assert.ok(diff <= gold.golden.tolerances.bf16.max_abs, `differs by ${diff}`);
    // ...and is not the exact path: int8 activations move the logits past the f32 tolerance.
    assert.ok(diff > gold.golden.tolerances.fp32.max_abs, `q8 did not take effect (differs by only ${diff})`);
  });

  it('logits --kv-cache bf16 stays within the bf16 tolerance of the reference and takes effect', async () => {
    const run = (kv: string) => inProcess('logits', '--model', gold.dir, '--tokens', seq.tokens.join(','), '--all-positions', '--json', '--backend', 'reference', '--kv-cache', kv);
    const [bf16, f32] = await Promise.all([run('bf16'), run('f32')]);
    assert.equal(bf16.status, 0, bf16.stderr);
    assert.equal(f32.status, 0, f32.stderr);
    const ours = (JSON.parse(bf16.stdout) as { logits: number[][] }).logits.flat();
    const exact = (JSON.parse(f32.stdout) as { logits: number[][] }).logits.flat();
    const diff = maxAbsDiff(ours, readF32(gold, seq.logits.fp32));
    assert.ok(diff <= gold.golden.tolerances.bf16.max_abs, `differs by ${diff}`);
    assert.ok(maxAbsDiff(ours, exact) > 0, 'the bf16 cache did not take effect');
    assert.ok(maxAbsDiff(exact, readF32(gold, seq.logits.fp32)) <= gold.golden.tolerances.fp32.max_abs);
  });

  it('logits --unembedding int8 stays within the bf16 tolerance and takes effect (wasm and reference alike)', async () => {
    const run = (backend: string, unembedding: string) => inProcess('logits', '--model', gold.dir, '--tokens', seq.tokens.join(','), '--all-positions', '--json', '--backend', backend, '--expert-activations', 'split', '--unembedding', unembedding);
    const [wasm, reference, bf16] = await Promise.all([run('wasm', 'int8'), run('reference', 'int8'), run('wasm', 'bf16')]);
    for (const r of [wasm, reference, bf16]) assert.equal(r.status, 0, r.stderr);
    const logits = (r: { stdout: string }): number[] => (JSON.parse(r.stdout) as { logits: number[][] }).logits.flat();
    const golden = readF32(gold, seq.logits.fp32);
    const diff = maxAbsDiff(logits(wasm), golden);
    assert.ok(diff <= gold.golden.tolerances.bf16.max_abs, `differs by ${diff}`);
    assert.ok(maxAbsDiff(logits(wasm), logits(bf16)) > gold.golden.tolerances.fp32.max_abs, 'the int8 copy did not take effect');
    // Both backends read the same copy: only the wasm kernel's i16 activations tell them apart.
    assert.ok(maxAbsDiff(logits(wasm), logits(reference)) <= gold.golden.tolerances.fp32.max_abs, 'wasm and reference differ on the int8 copy');
  });

  it('loadEngine refuses an int8 unembedding on webgpu before loading anything', async () => {
    await assert.rejects(loadEngine(gold.dir, { backend: 'webgpu', unembedding: 'int8' }), (e: Error) => e instanceof UserError && /--unembedding int8 needs --backend wasm or reference/.test(e.message));
  });

  it('logits prints the last position as {"logits": [...]}', () => {
    const r = gptoss('logits', '--model', gold.dir, '--tokens', seq.tokens.join(','), '--backend', 'wasm', '--expert-activations', 'split');
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { logits: number[] };
    const ref = readF32(gold, seq.logits.fp32).subarray((seq.length - 1) * 512);
    assert.ok(maxAbsDiff(out.logits, ref) <= gold.golden.tolerances.fp32.max_abs);
  });

  it('generate --temperature 0 --json reproduces the reference greedy continuation', async () => {
    const { prompt, generated, max_new_tokens: n } = gold.golden.greedy_fp32;
    const r = await inProcess('generate', '--model', gold.dir, '--tokens', prompt.join(','), '--max-tokens', String(n), '--temperature', '0', '--json', '--backend', 'reference');
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { tokens: number[]; text: string };
    assert.deepEqual(out.tokens, generated);
    assert.equal(typeof out.text, 'string');
    // --stop ends the continuation at the first listed id (included).
    const stopped = JSON.parse((await inProcess('generate', '--model', gold.dir, '--tokens', prompt.join(','), '--max-tokens', String(n), '--temperature', '0', '--json', '--stop', String(generated[3]), '--backend', 'reference')).stdout) as { tokens: number[] };
    assert.deepEqual(stopped.tokens, generated.slice(0, 4));
    // A window that fills up ends the continuation with a note on stderr, not an error.
    const full = await inProcess('generate', '--model', gold.dir, '--tokens', prompt.join(','), '--context', String(prompt.length + 2), '--max-tokens', String(n), '--temperature', '0', '--json', '--backend', 'reference');
    assert.equal(full.status, 0, full.stderr);
    assert.deepEqual((JSON.parse(full.stdout) as { tokens: number[] }).tokens, generated.slice(0, 2));
    assert.equal(full.stderr, `gptoss generate: stopped after 2 tokens: the context window of ${prompt.length + 2} tokens is full (see --context)\n`);
  });

  it('generate --prompt wraps the text in harmony (real vocabulary: fullvocab-h32-l2)', { skip: hasFullvocab() ? false : 'fullvocab-h32-l2 not in ../shared/golden' }, async () => {
    const ids = renderConversationForCompletion(conversation([message.system(), message.user('What is 2+2?')]));
    const [wrapped, direct] = await Promise.all([
      inProcess('generate', '--model', FULLVOCAB_DIR, '--prompt', 'What is 2+2?', '--max-tokens', '4', '--temperature', '0', '--json', '--backend', 'reference'),
      inProcess('generate', '--model', FULLVOCAB_DIR, '--tokens', ids.join(','), '--max-tokens', '4', '--temperature', '0', '--json', '--backend', 'reference'),
    ]);
    assert.equal(wrapped.status, 0, wrapped.stderr);
    const a = JSON.parse(wrapped.stdout) as { tokens: number[]; text: string };
    const b = JSON.parse(direct.stdout) as { tokens: number[]; text: string };
    assert.deepEqual(a, b);
    assert.ok(a.tokens.length >= 1 && a.tokens.length <= 4);
  });

  it('bad input: one line on stderr, exit status 2', async () => {
    const cases = [
      ['logits', '--model', gold.dir, '--tokens', '1,512', '--backend', 'reference'],
      ['logits', '--model', gold.dir, '--tokens', '1,x'],
      ['generate', '--model', gold.dir, '--tokens', '1', '--top-p', '0'],
      ['generate', '--model', '/nonexistent/model', '--tokens', '1'],
      ['logits', '--model', gold.dir, '--tokens', '1,2,3,4,5', '--context', '4', '--backend', 'reference'],
      ['generate', '--model', gold.dir, '--tokens', '1', '--expert-activations', 'fp8'],
      ['logits', '--model', gold.dir, '--tokens', '1', '--kv-cache', 'f16'],
      ['logits', '--model', gold.dir, '--tokens', '1', '--unembedding', 'int4'],
    ];
    const results = await Promise.all(cases.map((args) => inProcess(...args)));
    for (const [i, args] of cases.entries()) {
      const r = results[i]!;
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.equal(r.stdout, '');
    }
    assert.equal(results[4]!.stderr, 'gptoss logits: 5 tokens do not fit the context window of 4 tokens (see --context)\n');
    assert.match(results[5]!.stderr, /--expert-activations must be one of q8, split, f32, f16, got "fp8"/);
    assert.match(results[6]!.stderr, /--kv-cache must be one of f32, bf16, got "f16"/);
    assert.match(results[7]!.stderr, /--unembedding must be one of bf16, int8, got "int4"/);
  });
});
