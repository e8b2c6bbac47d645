// gptoss bench: the weight bytes per decoded token for the real 20b shape (hand-derived), and a
// run on a golden tiny checkpoint that returns every field with consistent values.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bytesPerToken, runBench } from '../../src/cli/bench.ts';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseOriginalConfig, type ModelConfig } from '../../src/model/config.ts';

test('bytes read per decoded token for gpt-oss-20b is 3.71 GB', () => {
  const config: ModelConfig = {
    numLayers: 24, numExperts: 32, expertsPerToken: 4, vocabSize: 201088, hiddenSize: 2880, intermediateSize: 2880,
    swigluLimit: 7, headDim: 64, numAttentionHeads: 64, numKeyValueHeads: 8, slidingWindow: 128,
    initialContextLength: 4096, ropeTheta: 150000, ropeScalingFactor: 32, ropeNtkAlpha: 1, ropeNtkBeta: 32,
  };
  // Per layer: bf16 qkv 64*(64+16)*2880 + out 2880*4096 + router 32*2880 values (2 bytes each) =
  // 53,268,480 B; 4 experts x (mlp1 5760*2880 + mlp2 2880*2880) MXFP4 values at 17/32 B each =
  // 52,876,800 B. Plus the bf16 unembedding 201088*2880*2 = 1,158,266,880 B.
  assert.equal(bytesPerToken(config), 24 * (53_268_480 + 52_876_800) + 1_158_266_880);
});

test('runBench on a tiny checkpoint reports consistent figures', async () => {
  const r = await runBench({ model: 'test/fixtures/golden/gqa4-l2-e8k4', promptTokens: 8, genTokens: 3, threads: 2, backend: 'wasm', profile: true });
  assert.equal(r.backend, 'wasm');
  assert.equal(r.layers, 2);
  assert.equal(r.prompt_tokens, 8);
  assert.equal(r.gen_tokens, 3);
  // Timings are whatever the clock says (a warm page cache reads this checkpoint in microseconds):
  // only that they are real numbers and the relations between them that hold by definition.
  for (const k of ['read_s', 'load_s', 'prefill_s', 'prefill_tok_s', 'ttft_s', 'decode_tok_s', 'bandwidth_gb_s', 'decode_ceiling_tok_s'] as const) {
    assert.ok(Number.isFinite(r[k]) && r[k] >= 0, `${k} = ${r[k]}`);
  }
  assert.equal(r.ttft_s, r.prefill_s);
  const near = (a: number, b: number): boolean => Math.abs(a - b) <= 1e-9 * Math.max(Math.abs(a), Math.abs(b));
  assert.ok(near(r.prefill_tok_s * r.prefill_s, r.prompt_tokens), 'prefill rate = tokens / seconds');
  assert.ok(near(r.decode_ceiling_tok_s, (r.bandwidth_gb_s * 1e9) / r.bytes_per_token), 'ceiling = bandwidth / bytes per token');
  const dir = 'test/fixtures/golden/gqa4-l2-e8k4';
  assert.equal(r.bytes_per_token, bytesPerToken(parseOriginalConfig(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')), 'config.json')));
  assert.equal(r.read_bytes, statSync(join(dir, 'model.safetensors')).size, 'every byte of the weight file was read');
  assert.ok(r.peak_rss_bytes > 0);
  assert.deepEqual(r.fallbacks, { linear: 0, attention: 0, experts: 0 }, 'every op ran a wasm kernel');
  // The profile saw every op kind: 8 prompt tokens in one batch, then 3 single-token steps.
  assert.ok(r.profile !== undefined);
  assert.equal(r.profile.prefill.experts!.calls, 2);
  assert.equal(r.profile.decode.experts!.calls, 2 * 3);
  assert.ok(r.profile.decode.linear!.calls >= 3 * (2 * 3 + 1));
});
