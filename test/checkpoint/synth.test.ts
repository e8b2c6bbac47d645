// `gptoss synth` and the Hugging Face layout: deterministic random checkpoints in the real dtypes,
// loadable by the engine's loader, with the same logits from the original and HF layouts (single
// and multi-shard) of the same seed, and finite activations.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { synthesize, SHAPES, ensureDemoModel, DEMO_SEED, originalRecipes, tensorBytes, generateTensorBytes } from '../../src/checkpoint/synth.ts';
import { SafetensorsCheckpoint } from '../../src/checkpoint/safetensors.ts';
import { loadCheckpoint } from '../../src/checkpoint/checkpoint.ts';
import { HeapStore } from '../../src/tensor/index.ts';
import { loadEngine } from '../../src/engine/local.ts';
import { parseHfConfig, toHfConfigJson, hfTensorName, originalTensorName } from '../../src/checkpoint/hf.ts';
import type { ModelConfig } from '../../src/model/config.ts';
import { main } from '../../src/cli/main.ts';

let work: string;
const small: ModelConfig = { ...SHAPES.tiny, vocabSize: 1000, numLayers: 4, hiddenSize: 64, intermediateSize: 96, numExperts: 6, expertsPerToken: 3, slidingWindow: 4 };

before(() => {
  work = mkdtempSync(join(tmpdir(), 'gptoss-synth-'));
});
after(() => rmSync(work, { recursive: true, force: true }));

test('same seed gives identical bytes; another seed different weights', () => {
  const a = synthesize(small, join(work, 'a'), { seed: 5 });
  const b = synthesize(small, join(work, 'b'), { seed: 5 });
  const c = synthesize(small, join(work, 'c'), { seed: 6 });
  const bytes = (dir: string) => readFileSync(join(dir, 'model.safetensors'));
  assert.ok(bytes(a.dir).equals(bytes(b.dir)));
  assert.ok(!bytes(a.dir).equals(bytes(c.dir)));
  assert.equal(statSync(join(a.dir, 'model.safetensors')).size, a.bytes);
  // Chunking does not change the stream: a tensor generated alone equals its bytes in the file.
  const ckpt = SafetensorsCheckpoint.open(a.dir);
  try {
    const recipe = originalRecipes(small).find((r) => r.name === 'block.2.mlp.mlp1_weight.scales')!;
    assert.ok(Buffer.from(ckpt.readBytes(recipe.name)).equals(Buffer.from(generateTensorBytes(recipe, 5))));
  } finally {
    ckpt.close();
  }
});

test('the original layout has the real names, dtypes and shapes, realistic values, and the random-weights marker', async () => {
  const dir = join(work, 'orig');
  synthesize(small, dir, { seed: 1 });
  const ckpt = SafetensorsCheckpoint.open(dir);
  try {
    for (const r of originalRecipes(small)) {
      const info = ckpt.info(r.name);
      assert.ok(info !== undefined, r.name);
      assert.equal(info.dtype, r.name.endsWith('.blocks') || r.name.endsWith('.scales') ? 'U8' : 'BF16', r.name);
      assert.equal(info.byteLength, tensorBytes(r));
    }
    assert.equal(ckpt.names().length, originalRecipes(small).length);
    // E8M0 scales sit around 2^-8 (weights of std ~1/sqrt(fan_in)), never near the extremes.
    const scales = ckpt.readBytes('block.0.mlp.mlp1_weight.scales');
    const min = Math.min(...scales), max = Math.max(...scales);
    assert.ok(min >= 115 && max <= 127, `scales ${min}..${max}`);
    assert.ok(max - min >= 2, 'scales vary');
  } finally {
    ckpt.close();
  }
  const loaded = await loadCheckpoint(dir, new HeapStore());
  assert.equal(loaded.layout, 'original');
  assert.equal(loaded.randomWeights, true);
  assert.deepEqual(loaded.weights.config, small);
  const norm = loaded.weights.blocks[0]!.attn.norm.scale;
  assert.ok(norm.every((v) => v > 0.75 && v < 1.25));
  assert.ok(loaded.weights.blocks[1]!.attn.sinks.some((v) => v < -0.5) && loaded.weights.blocks[1]!.attn.sinks.some((v) => v > 0.5));
});

test('the HF layout of the same seed gives the same weights and the same logits (single and multiple shards)', async () => {
  const orig = join(work, 'l-orig');
  const hf = join(work, 'l-hf');
  const hfSharded = join(work, 'l-hf-sharded');
  synthesize(small, orig, { seed: 9 });
  synthesize(small, hf, { seed: 9, layout: 'hf' });
  const sharded = synthesize(small, hfSharded, { seed: 9, layout: 'hf', shardBytes: 150_000 });
  assert.ok(sharded.files.filter((f) => f.endsWith('.safetensors')).length >= 3);
  assert.ok(existsSync(join(hfSharded, 'model-00000-of-' + String(sharded.files.filter((f) => f.endsWith('.safetensors')).length - 1).padStart(5, '0') + '.safetensors')));

  const a = await loadCheckpoint(orig, new HeapStore());
  const b = await loadCheckpoint(hf, new HeapStore());
  assert.equal(b.layout, 'hf');
  assert.equal(b.randomWeights, true);
  assert.deepEqual(b.weights.config, a.weights.config);
  assert.deepEqual(b.weights.blocks[3]!.attn.qkv.weight.data, a.weights.blocks[3]!.attn.qkv.weight.data);
  assert.deepEqual(b.weights.blocks[3]!.attn.qkv.bias, a.weights.blocks[3]!.attn.qkv.bias);
  assert.deepEqual(b.weights.blocks[2]!.mlp.mlp1Weight.blocks, a.weights.blocks[2]!.mlp.mlp1Weight.blocks);
  assert.deepEqual(b.weights.unembedding.weight.data, a.weights.unembedding.weight.data);

  const tokens = [1, 17, 999, 4, 250, 250, 3, 600, 42, 7];
  const logitsOf = async (dir: string) => {
    const engine = await loadEngine(dir, { backend: 'reference', contextLength: 64 });
    try {
      const seq = engine.createSequence();
      const [logits] = await engine.step([{ sequence: seq, tokens }]);
      return logits!;
    } finally {
      await engine.close();
    }
  };
  const la = await logitsOf(orig);
  const lb = await logitsOf(hf);
  const lc = await logitsOf(hfSharded);
  assert.equal(la.length, small.vocabSize);
  assert.ok(la.every(Number.isFinite), 'finite logits');
  const spread = Math.max(...la) - Math.min(...la);
  assert.ok(spread > 0.5 && spread < 1e4, `logit spread ${spread}`);
  assert.deepEqual(lb, la);
  assert.deepEqual(lc, la);
});

test('HF config and tensor names round-trip', () => {
  assert.deepEqual(parseHfConfig(toHfConfigJson(SHAPES['20b']), 'config.json'), SHAPES['20b']);
  for (const r of originalRecipes(small)) {
    if (r.name.includes('.attn.qkv.')) continue;
    assert.equal(originalTensorName(hfTensorName(r.name)), r.name);
  }
  assert.equal(hfTensorName('block.3.mlp.mlp1_weight.blocks'), 'model.layers.3.mlp.experts.gate_up_proj_blocks');
  assert.throws(() => parseHfConfig({ ...toHfConfigJson(small), quantization_config: { quant_method: 'bitsandbytes' } }, 'c.json'), /only mxfp4/);
});

test('ensureDemoModel writes the seeded tiny model once, with the real vocabulary and the marker', () => {
  const cache = join(work, 'demo-cache');
  const dir = ensureDemoModel(cache);
  const marker = JSON.parse(readFileSync(join(dir, 'gptoss.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(marker['random_weights'], true);
  assert.equal(marker['seed'], DEMO_SEED);
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, number>;
  assert.equal(config['vocab_size'], 201088);
  const mtime = statSync(join(dir, 'model.safetensors')).mtimeMs;
  assert.equal(ensureDemoModel(cache), dir);
  assert.equal(statSync(join(dir, 'model.safetensors')).mtimeMs, mtime);
});

test('synth CLI: bad flags and bad shapes are one-line errors with exit status 2', async () => {
  const errors: string[] = [];
  const orig = console.error;
  console.error = (...args: unknown[]) => { errors.push(args.join(' ')); };
  const bad = join(work, 'bad.json');
  writeFileSync(bad, '{"num_hidden_layers": 2');
  try {
    assert.equal(await main(['synth', '--shape', 'tiny', '--out', join(work, 'x'), '--layout', 'gguf']), 2);
    assert.equal(await main(['synth', '--shape', 'huge', '--out', join(work, 'x')]), 2);
    assert.equal(await main(['synth', '--shape', bad, '--out', join(work, 'x')]), 2);
    assert.equal(await main(['synth', '--shape', 'tiny']), 2);
  } finally {
    console.error = orig;
  }
  assert.equal(errors.length, 4);
  assert.match(errors[0]!, /--layout must be original or hf/);
  assert.match(errors[1]!, /--shape must be tiny, 20b, 120b or a config\.json/);
  assert.match(errors[2]!, /bad\.json: invalid JSON/);
  assert.ok(errors.every((e) => !e.includes('\n')));
});
