// Config values out of range are refused with one line naming the field (they used to crash in the
// RoPE table, allocate gigabytes, or compute null logits with exit status 0); a safetensors header
// length off by one byte is refused as well; `gptoss logits` turns both into exit status 2.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UserError } from '../../src/errors.ts';
import { MAX_CONTEXT_LENGTH, parseOriginalConfig } from '../../src/model/config.ts';
import { parseHfConfig, toHfConfigJson } from '../../src/checkpoint/hf.ts';
import { SHAPES } from '../../src/checkpoint/synth.ts';
import { checkCheckpointFits, estimateMemory } from '../../src/checkpoint/memory.ts';
import { SafetensorsFile } from '../../src/checkpoint/safetensors.ts';
import { runCli } from '../cli/in-process.ts';

const GOLDEN = new URL('../fixtures/golden/gqa4-l2-e8k4/', import.meta.url).pathname;
const golden = JSON.parse(readFileSync(join(GOLDEN, 'config.json'), 'utf8')) as Record<string, number>;
const work = mkdtempSync(join(tmpdir(), 'gptoss-config-'));
after(() => rmSync(work, { recursive: true, force: true }));

function refuses(edit: Record<string, number>, field: string): void {
  assert.throws(() => parseOriginalConfig({ ...golden, ...edit }, 'config.json'), (e: unknown) => {
    assert.ok(e instanceof UserError && e.kind === 'checkpoint', String(e));
    assert.ok(!e.message.includes('\n'), 'one line');
    assert.ok(e.message.startsWith('config.json: '), e.message);
    assert.ok(e.message.includes(field), `"${e.message}" should name ${field}`);
    return true;
  }, JSON.stringify(edit));
}

test('every config field out of range is refused naming the field', () => {
  assert.doesNotThrow(() => parseOriginalConfig(golden, 'config.json'));
  const cases: [Record<string, number>, string][] = [
    [{ initial_context_length: 1e12 }, 'initial_context_length'],
    [{ initial_context_length: 2_000_000 }, 'initial_context_length'],
    // Within its own range, but stretched by YaRN past what the engine can address.
    [{ initial_context_length: MAX_CONTEXT_LENGTH / 16, rope_scaling_factor: 32 }, 'initial_context_length x rope_scaling_factor'],
    [{ initial_context_length: 0 }, 'initial_context_length'],
    [{ rope_theta: 0 }, 'rope_theta'],
    [{ rope_theta: -5 }, 'rope_theta'],
    [{ rope_theta: 1 }, 'rope_theta'],
    [{ rope_theta: 1e300 }, 'rope_theta'],
    [{ swiglu_limit: -7 }, 'swiglu_limit'],
    [{ swiglu_limit: 0 }, 'swiglu_limit'],
    [{ sliding_window: 1e9 }, 'sliding_window'],
    [{ sliding_window: 0 }, 'sliding_window'],
    [{ sliding_window: 512 * 32 + 1 }, 'sliding_window'],
    [{ rope_scaling_factor: 0 }, 'rope_scaling_factor'],
    [{ rope_scaling_factor: 1e6 }, 'rope_scaling_factor'],
    [{ rope_ntk_alpha: -1 }, 'rope_ntk_alpha'],
    [{ rope_ntk_beta: 0 }, 'rope_ntk_beta'],
    [{ rope_ntk_alpha: 32, rope_ntk_beta: 32 }, 'rope_ntk_alpha'],
    [{ num_hidden_layers: 0 }, 'num_hidden_layers'],
    [{ num_hidden_layers: 1e5 }, 'num_hidden_layers'],
    [{ num_experts: 1e6 }, 'num_experts'],
    [{ experts_per_token: 9 }, 'experts_per_token'],
    [{ vocab_size: 2.5 }, 'vocab_size'],
    [{ vocab_size: 1e9 }, 'vocab_size'],
    [{ hidden_size: 48 }, 'hidden_size'],
    [{ hidden_size: 1 << 20 }, 'hidden_size'],
    [{ intermediate_size: 1 << 20 }, 'intermediate_size'],
    [{ head_dim: 15 }, 'head_dim'],
    [{ head_dim: 1e5 }, 'head_dim'],
    [{ num_attention_heads: 1e5 }, 'num_attention_heads'],
    [{ num_key_value_heads: 16 }, 'num_key_value_heads'],
  ];
  for (const [edit, field] of cases) refuses(edit, field);
});

test('the Hugging Face layout\'s config is held to the same ranges', () => {
  const hf = toHfConfigJson(SHAPES.tiny) as Record<string, unknown>;
  assert.doesNotThrow(() => parseHfConfig(hf, 'config.json'));
  assert.throws(() => parseHfConfig({ ...hf, rope_theta: -1 }, 'config.json'), /config\.json: rope_theta must be/);
  assert.throws(() => parseHfConfig({ ...hf, swiglu_limit: -1 }, 'config.json'), /config\.json: swiglu_limit must be/);
});

test('the memory pre-flight counts the RoPE tables of the context it is given', () => {
  const c = SHAPES['20b'];
  const short = estimateMemory(c, { contextLength: 4096 }), long = estimateMemory(c, { contextLength: 131072 });
  assert.equal(short.ropeTableBytes, 4096 * c.headDim * 4);
  assert.equal(long.ropeTableBytes, 131072 * c.headDim * 4);
  assert.equal(long.totalBytes - long.kvCacheBytes - long.ropeTableBytes - long.activationBytes, short.totalBytes - short.kvCacheBytes - short.ropeTableBytes - short.activationBytes);
});

test('the loader\'s pre-flight estimates the context it is given, else the model\'s whole context (not a fixed 4096)', () => {
  const saved = process.env['GPTOSS_SKIP_MEMORY_CHECK'];
  process.env['GPTOSS_SKIP_MEMORY_CHECK'] = '1'; // the estimate only, whatever this machine has
  try {
    assert.equal(checkCheckpointFits(SHAPES['20b']).contextLength, 131072);
    assert.equal(checkCheckpointFits(SHAPES['20b'], { contextLength: 8192 }).contextLength, 8192);
  } finally {
    if (saved === undefined) delete process.env['GPTOSS_SKIP_MEMORY_CHECK'];
    else process.env['GPTOSS_SKIP_MEMORY_CHECK'] = saved;
  }
});

/** The golden checkpoint with its safetensors header length lowered by one (the JSON padded so it still parses). */
function headerOneByteShort(dir: string): void {
  const original = readFileSync(join(GOLDEN, 'model.safetensors'));
  const n = Number(original.readBigUInt64LE(0));
  const json = original.subarray(8, 8 + n).toString('utf8').trimEnd();
  const padded = Buffer.from(json + ' ');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(padded.length - 1));
  writeFileSync(join(dir, 'model.safetensors'), Buffer.concat([len, padded, original.subarray(8 + n)]));
}

test('a safetensors header length one byte short is refused (the data section no longer matches the tensors)', () => {
  const dir = join(work, 'short-header');
  mkdirSync(dir);
  headerOneByteShort(dir);
  const path = join(dir, 'model.safetensors');
  assert.throws(() => SafetensorsFile.open(path), (e: unknown) => e instanceof UserError && e.message.startsWith(`${path}: `) && /belong to no tensor|the tensors end at byte/.test(e.message) && !e.message.includes('\n'));
});

test('gptoss logits: an out-of-range config or a short header length is one line and exit status 2', async () => {
  const cases: [string, (dir: string) => void, RegExp][] = [
    ['context', (d) => writeFileSync(join(d, 'config.json'), JSON.stringify({ ...golden, initial_context_length: 1e12 })), /initial_context_length must be/],
    ['big-context', (d) => writeFileSync(join(d, 'config.json'), JSON.stringify({ ...golden, initial_context_length: 2_000_000 })), /initial_context_length must be/],
    ['theta', (d) => writeFileSync(join(d, 'config.json'), JSON.stringify({ ...golden, rope_theta: 0 })), /rope_theta must be/],
    ['swiglu', (d) => writeFileSync(join(d, 'config.json'), JSON.stringify({ ...golden, swiglu_limit: -7 })), /swiglu_limit must be/],
    ['window', (d) => writeFileSync(join(d, 'config.json'), JSON.stringify({ ...golden, sliding_window: 1e9 })), /sliding_window must be/],
    ['header', (d) => { copyFileSync(join(GOLDEN, 'config.json'), join(d, 'config.json')); headerOneByteShort(d); }, /model\.safetensors: .*(belong to no tensor|the tensors end at byte)/],
  ];
  for (const [name, make, message] of cases) {
    const dir = join(work, `cli-${name}`);
    mkdirSync(dir);
    if (name !== 'header') copyFileSync(join(GOLDEN, 'model.safetensors'), join(dir, 'model.safetensors'));
    make(dir);
    const r = await runCli(['logits', '--model', dir, '--tokens', '1,2,3', '--backend', 'reference']);
    assert.equal(r.code, 2, `${name}: ${r.stderr}`);
    assert.equal(r.stdout, '', name);
    assert.equal(r.stderr.trim().split('\n').length, 1, `${name}: ${r.stderr}`);
    assert.match(r.stderr, message, name);
  }
});
