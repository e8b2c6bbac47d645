// The memory estimate matches what synth writes (weights) and what the KV cache holds, and the
// refusal message states the need, the availability and a context that would fit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { estimateMemory, checkFits, weightBytes, modelLabel } from '../../src/checkpoint/memory.ts';
import { SHAPES, originalRecipes, tensorBytes } from '../../src/checkpoint/synth.ts';
import { UserError } from '../../src/errors.ts';
import { HeapStore } from '../../src/tensor/index.ts';
import { LayerCache, kvBytesPerPosition } from '../../src/model/kvcache.ts';

test('weights: the stored bytes (MXFP4 at 4.25 bits per weight) plus small vectors widened to f32, minus the embedding table left on disk', () => {
  for (const shape of ['tiny', '20b', '120b'] as const) {
    const c = SHAPES[shape];
    const stored = originalRecipes(c).reduce((s, r) => s + tensorBytes(r), 0);
    const w = weightBytes(c);
    const widened = originalRecipes(c).filter((r) => r.dtype === 'BF16' && r.shape.length === 1 || /bias$/.test(r.name)).reduce((s, r) => s + tensorBytes(r), 0);
    const embedding = tensorBytes(originalRecipes(c).find((r) => r.name === 'embedding.weight')!);
    assert.equal(w.total, stored + widened - embedding, shape);
    const expertWeights = c.numLayers * c.numExperts * 3 * c.hiddenSize * c.intermediateSize;
    assert.equal(w.experts * 8 / expertWeights, 4.25);
  }
  assert.equal(modelLabel(SHAPES['20b']), 'gpt-oss-20b');
  assert.equal(modelLabel(SHAPES['120b']), 'gpt-oss-120b');
});

test('KV cache: dense layers grow with the context, banded layers stay bounded by the window', () => {
  const c = SHAPES['20b'];
  const short = estimateMemory(c, { contextLength: 4096 });
  const long = estimateMemory(c, { contextLength: 131072 });
  const perPos = 2 * c.numKeyValueHeads * c.headDim * 4 + 4;
  assert.equal(long.kvCacheBytes - short.kvCacheBytes, (c.numLayers / 2) * (131072 - 4096) * perPos);
  assert.equal(estimateMemory(c, { contextLength: 4096, sequences: 3 }).kvCacheBytes, 3 * short.kvCacheBytes);
  assert.ok(long.totalBytes > 19e9 && short.totalBytes < 14e9, `${short.totalBytes} ${long.totalBytes}`);
});

test('KV cache in bf16: counted at 2 bytes per entry, as the cache allocates it (half the f32 cache)', () => {
  const c = SHAPES['20b'];
  const width = c.numKeyValueHeads * c.headDim;
  // What a bf16 layer really allocates per position: keys and values of 2-byte entries plus a position.
  const layer = new LayerCache(new HeapStore(), 'probe', width, 0, 1000, 0, 'bf16');
  layer.reserve(0, 300);
  assert.equal(layer.keys.byteLength + layer.values.byteLength + layer.positions.byteLength, layer.capacity * (2 * width * 2 + 4));
  assert.equal(kvBytesPerPosition(width, 'bf16'), 2 * width * 2 + 4);
  const f32 = estimateMemory(c, { contextLength: 131072 });
  const bf16 = estimateMemory(c, { contextLength: 131072, kvCacheType: 'bf16' });
  const shortBf16 = estimateMemory(c, { contextLength: 4096, kvCacheType: 'bf16' });
  assert.equal(bf16.kvCacheBytes - shortBf16.kvCacheBytes, (c.numLayers / 2) * (131072 - 4096) * kvBytesPerPosition(width, 'bf16'));
  assert.ok(f32.kvCacheBytes > 6.4e9 && bf16.kvCacheBytes < 3.3e9, `${f32.kvCacheBytes} ${bf16.kvCacheBytes}`);
  assert.equal(f32.totalBytes - bf16.totalBytes, f32.kvCacheBytes - bf16.kvCacheBytes);
});

test('checkFits refuses with the needed and available sizes and a context that fits', () => {
  const e = estimateMemory(SHAPES['20b'], { contextLength: 131072 });
  assert.doesNotThrow(() => checkFits(e, { bytes: 24e9, source: 'test' }));
  assert.throws(() => checkFits(e, { bytes: 16e9, source: 'available memory' }), (err: unknown) =>
    err instanceof UserError && err.kind === 'memory' &&
    /^gpt-oss-20b needs about 19\.6 GB \(weights 12\.6 GB, KV cache 6\.5 GB for 131072 tokens, .*\), only 16\.0 GB available \(available memory\); use a shorter context \(e\.g\. --context \d+\)$/.test(err.message));
  const big = estimateMemory(SHAPES['120b'], { contextLength: 4096 });
  assert.throws(() => checkFits(big, { bytes: 24e9, source: 'available memory' }), /gpt-oss-120b needs about 65\.\d GB .*close other programs/);
});
