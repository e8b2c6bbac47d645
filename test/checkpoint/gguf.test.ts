// `gptoss convert --to gguf`: the file reads back (header, metadata, tensor table, aligned
// offsets); every expert row dequantised the way ggml reads block_mxfp4 equals the checkpoint's
// row; q/k/v, gate/up and biases are the right slices; both layouts convert to the same bytes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, openSync, readSync, closeSync, statSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { synthesize, SHAPES } from '../../src/checkpoint/synth.ts';
import { convertToGguf, buildVocab } from '../../src/checkpoint/gguf-convert.ts';
import { readGgufHeader, GGML_TYPE, type GgufHeader, type GgufTensorInfo } from '../../src/checkpoint/gguf.ts';
import { loadCheckpoint } from '../../src/checkpoint/checkpoint.ts';
import { HeapStore, dequantMxfp4Row, FP4_VALUES } from '../../src/tensor/index.ts';
import type { ModelConfig } from '../../src/model/config.ts';
import type { ModelWeights } from '../../src/model/weights.ts';
import { main } from '../../src/cli/main.ts';

let work: string;
let header: GgufHeader;
let weights: ModelWeights;
let ggufPath: string;
const config: ModelConfig = { ...SHAPES.tiny, vocabSize: 600, numLayers: 2, hiddenSize: 64, intermediateSize: 96, numExperts: 4, expertsPerToken: 2 };

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'gptoss-gguf-'));
  synthesize(config, join(work, 'orig'), { seed: 11 });
  ggufPath = join(work, 'model.gguf');
  await convertToGguf(join(work, 'orig'), ggufPath, { name: 'tiny-test' });
  header = readGgufHeader(ggufPath);
  weights = (await loadCheckpoint(join(work, 'orig'), new HeapStore())).weights;
});
after(() => rmSync(work, { recursive: true, force: true }));

function tensor(name: string): GgufTensorInfo {
  const t = header.tensors.find((x) => x.name === name);
  assert.ok(t !== undefined, `missing ${name}`);
  return t;
}

function bytesOf(t: GgufTensorInfo, length: number): Buffer {
  const fd = openSync(ggufPath, 'r');
  try {
    const b = Buffer.alloc(length);
    readSync(fd, b, 0, length, t.offset);
    return b;
  } finally {
    closeSync(fd);
  }
}

function f32s(t: GgufTensorInfo, count: number): Float32Array {
  const b = bytesOf(t, count * 4);
  return new Float32Array(b.buffer, b.byteOffset, count);
}

function bf16s(t: GgufTensorInfo, count: number): Uint16Array {
  const b = bytesOf(t, count * 2);
  return new Uint16Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
}

/** One row of a GGUF MXFP4 tensor as ggml decodes block_mxfp4: byte j holds elements j (low) and j+16 (high). */
function ggmlMxfp4Row(t: GgufTensorInfo, row: number, cols: number): Float32Array {
  const rowBytes = (cols / 32) * 17;
  const fd = openSync(ggufPath, 'r');
  const b = Buffer.alloc(rowBytes);
  readSync(fd, b, 0, rowBytes, t.offset + row * rowBytes);
  closeSync(fd);
  const out = new Float32Array(cols);
  for (let g = 0; g < cols / 32; g++) {
    const scale = 2 ** (b[g * 17]! - 127);
    for (let j = 0; j < 16; j++) {
      const q = b[g * 17 + 1 + j]!;
      out[g * 32 + j] = FP4_VALUES[q & 15]! * scale;
      out[g * 32 + j + 16] = FP4_VALUES[q >> 4]! * scale;
    }
  }
  return out;
}

test('header: GGUF v3, gpt-oss hyper-parameters, tensor table with aligned, non-overlapping offsets', () => {
  assert.equal(header.version, 3);
  const m = header.metadata;
  assert.equal(m.get('general.architecture'), 'gpt-oss');
  assert.equal(m.get('general.name'), 'tiny-test');
  assert.equal(m.get('gpt-oss.block_count'), 2);
  assert.equal(m.get('gpt-oss.embedding_length'), 64);
  assert.equal(m.get('gpt-oss.expert_feed_forward_length'), 96);
  assert.equal(m.get('gpt-oss.expert_count'), 4);
  assert.equal(m.get('gpt-oss.expert_used_count'), 2);
  assert.equal(m.get('gpt-oss.attention.head_count'), 4);
  assert.equal(m.get('gpt-oss.attention.head_count_kv'), 2);
  assert.equal(m.get('gpt-oss.attention.sliding_window'), 128);
  assert.equal(m.get('gpt-oss.context_length'), 131072);
  assert.equal(m.get('gpt-oss.rope.freq_base'), 150000);
  assert.equal(m.get('gpt-oss.rope.scaling.type'), 'yarn');
  assert.equal(m.get('gpt-oss.rope.scaling.factor'), 32);
  assert.equal(m.get('gpt-oss.rope.scaling.original_context_length'), 4096);
  assert.equal(m.get('tokenizer.ggml.model'), 'gpt2');
  assert.equal((m.get('tokenizer.ggml.tokens') as string[]).length, 600);
  assert.equal(header.tensors.length, 3 + 2 * 19); // embd, output_norm, output + 19 per layer
  const sorted = [...header.tensors].sort((a, b) => a.offset - b.offset);
  const size = (t: GgufTensorInfo) => {
    const cols = t.dims[0]!, rows = t.dims.slice(1).reduce((p, d) => p * d, 1);
    return rows * (t.type === GGML_TYPE.MXFP4 ? (cols / 32) * 17 : t.type === GGML_TYPE.F32 ? cols * 4 : cols * 2);
  };
  for (let i = 0; i < sorted.length; i++) {
    assert.equal(sorted[i]!.offset % 32, 0);
    const end = sorted[i]!.offset + size(sorted[i]!);
    assert.ok(end <= (i + 1 < sorted.length ? sorted[i + 1]!.offset : header.fileSize), sorted[i]!.name);
  }
  assert.deepEqual(tensor('token_embd.weight').dims, [64, 600]);
  assert.deepEqual(tensor('blk.1.ffn_gate_exps.weight').dims, [64, 96, 4]);
  assert.deepEqual(tensor('blk.1.ffn_down_exps.weight').dims, [96, 64, 4]);
  assert.equal(tensor('blk.0.ffn_up_exps.weight').type, GGML_TYPE.MXFP4);
  assert.equal(tensor('blk.0.attn_q.weight').type, GGML_TYPE.BF16);
  assert.equal(tensor('blk.0.ffn_gate_inp.weight').type, GGML_TYPE.F32);
  assert.equal(tensor('blk.0.attn_sinks.weight').type, GGML_TYPE.F32);
});

test('experts: gate = mlp1 even rows, up = odd rows, down = mlp2, decoded as ggml reads block_mxfp4', () => {
  const H = config.hiddenSize, I = config.intermediateSize;
  for (const layer of [0, 1]) {
    const mlp = weights.blocks[layer]!.mlp;
    for (const [expert, row] of [[0, 0], [3, 95], [2, 41]] as const) {
      const expected = new Float32Array(H);
      dequantMxfp4Row(mlp.mlp1Weight, expert, 2 * row, expected);
      assert.deepEqual(ggmlMxfp4Row(tensor(`blk.${layer}.ffn_gate_exps.weight`), expert * I + row, H), expected);
      dequantMxfp4Row(mlp.mlp1Weight, expert, 2 * row + 1, expected);
      assert.deepEqual(ggmlMxfp4Row(tensor(`blk.${layer}.ffn_up_exps.weight`), expert * I + row, H), expected);
    }
    const down = new Float32Array(I);
    dequantMxfp4Row(mlp.mlp2Weight, 1, 63, down);
    assert.deepEqual(ggmlMxfp4Row(tensor(`blk.${layer}.ffn_down_exps.weight`), 1 * H + 63, I), down);
    const gateBias = f32s(tensor(`blk.${layer}.ffn_gate_exps.bias`), 4 * I);
    const upBias = f32s(tensor(`blk.${layer}.ffn_up_exps.bias`), 4 * I);
    assert.equal(gateBias[2 * I + 5], mlp.mlp1Bias[2 * 2 * I + 10]);
    assert.equal(upBias[2 * I + 5], mlp.mlp1Bias[2 * 2 * I + 11]);
  }
});

test('attention: q/k/v are the fused qkv rows in order; sinks, norms and router widened to f32', () => {
  const attn = weights.blocks[1]!.attn;
  const H = 64, D = 16, Q = 4, K = 2;
  const qkv = attn.qkv.weight.data;
  assert.deepEqual(bf16s(tensor('blk.1.attn_q.weight'), Q * D * H), qkv.subarray(0, Q * D * H));
  assert.deepEqual(bf16s(tensor('blk.1.attn_k.weight'), K * D * H), qkv.subarray(Q * D * H, (Q + K) * D * H));
  assert.deepEqual(bf16s(tensor('blk.1.attn_v.weight'), K * D * H), qkv.subarray((Q + K) * D * H));
  assert.deepEqual(f32s(tensor('blk.1.attn_v.bias'), K * D), attn.qkv.bias.subarray((Q + K) * D));
  assert.deepEqual(f32s(tensor('blk.1.attn_sinks.weight'), Q), attn.sinks);
  assert.deepEqual(f32s(tensor('blk.1.attn_norm.weight'), H), attn.norm.scale);
  assert.deepEqual(f32s(tensor('blk.1.post_attention_norm.weight'), H), weights.blocks[1]!.mlp.norm.scale);
  const router = f32s(tensor('blk.1.ffn_gate_inp.weight'), 4 * H);
  assert.equal(router[3 * H + 7], new Float32Array(new Uint32Array([weights.blocks[1]!.mlp.gate.weight.data[3 * H + 7]! << 16]).buffer)[0]);
  assert.deepEqual(bf16s(tensor('output.weight'), 600 * H), weights.unembedding.weight.data);
});

test('the HF layout converts to the same file as the original layout', async () => {
  synthesize(config, join(work, 'hf'), { seed: 11, layout: 'hf', shardBytes: 200_000 });
  const out = join(work, 'hf.gguf');
  await convertToGguf(join(work, 'hf'), out, { name: 'tiny-test' });
  assert.equal(statSync(out).size, statSync(ggufPath).size);
  assert.ok(readFileSync(out).equals(readFileSync(ggufPath)));
});

test('vocabulary: GPT-2 byte-unicode tokens, control specials, merges ordered by merged rank', async () => {
  const vocab = await buildVocab(201088);
  assert.equal(vocab.tokens.length, 201088);
  assert.equal(vocab.tokens[200006], '<|start|>');
  assert.equal(vocab.tokens[200013], '<|reserved_200013|>');
  assert.equal(vocab.types[200006], 3);
  assert.equal(vocab.types[1000], 1);
  // ' the' is byte 0x20 (U+0120 'Ġ' in GPT-2's table) followed by 'the'.
  assert.ok(vocab.tokens.includes('Ġthe'));
  assert.ok(vocab.merges.length > 199998 && vocab.merges.length < 1_000_000, `${vocab.merges.length}`);
  assert.ok(vocab.merges.every((m) => m.split(' ').length === 2));
  // Every merge's two parts concatenate to a token of higher rank than both parts.
  const rank = new Map(vocab.tokens.map((t, i) => [t, i]));
  for (const m of vocab.merges.slice(0, 2000)) {
    const [a, b] = m.split(' ') as [string, string];
    const merged = rank.get(a + b);
    assert.ok(merged !== undefined && merged > rank.get(a)! && merged > rank.get(b)!, m);
  }
});

test('convert CLI: bad input is a one-line error with exit status 2', async () => {
  const errors: string[] = [];
  const orig = console.error;
  console.error = (...a: unknown[]) => { errors.push(a.join(' ')); };
  try {
    assert.equal(await main(['convert', '--to', 'onnx', '--model', join(work, 'orig'), '--out', join(work, 'x')]), 2);
    assert.equal(await main(['convert', '--to', 'gguf', '--model', join(work, 'nope'), '--out', join(work, 'x')]), 2);
  } finally {
    console.error = orig;
  }
  assert.match(errors[0]!, /only gguf/);
  assert.match(errors[1]!, /no such model folder/);
});
