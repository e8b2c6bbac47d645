// KV cache bookkeeping at full scale without a model: dense layers grow to the whole context
// (131072 positions, slot = position), banded rings stay bounded and hold exactly the positions a
// window can still see, truncation invalidates the tail or reports that a recompute is needed.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { HeapStore } from '../../src/tensor/index.ts';
import { KvCache, LayerCache } from '../../src/model/kvcache.ts';
import { buildRopeTable } from '../../src/model/rope.ts';
import { SHAPES } from '../../src/checkpoint/synth.ts';

const CONTEXT = 131072;

/** Writes positions start..start+count-1 with key = value = position (width 1). */
function append(layer: LayerCache, start: number, count: number): void {
  const k = Float32Array.from({ length: count }, (_, i) => start + i);
  layer.reserve(start, count);
  layer.write(start, count, k, k);
}

function held(layer: LayerCache): number[] {
  const out: number[] = [];
  for (let s = 0; s < layer.used; s++) if (layer.positions[s]! >= 0) out.push(layer.positions[s]!);
  return out.sort((a, b) => a - b);
}

describe('KV cache', () => {
  it('a dense layer grows to the full 131072-token context with slot = position', () => {
    const layer = new LayerCache(new HeapStore(), 'dense', 1, 0, CONTEXT);
    const capacities = new Set<number>();
    for (let p = 0; p < CONTEXT; p += 4096) {
      append(layer, p, 4096);
      capacities.add(layer.capacity);
    }
    assert.equal(layer.capacity, CONTEXT);
    assert.ok(capacities.size <= 10, `grew ${capacities.size} times`);
    assert.equal(layer.used, CONTEXT);
    for (const p of [0, 1, 4095, 65536, CONTEXT - 1]) {
      assert.equal(layer.positions[p], p);
      assert.equal(layer.keys[p], p);
      assert.equal(layer.values[p], p);
    }
  });

  it('a bf16 layer stores keys and values rounded to bf16 (nearest even) and keeps them through regrowth', () => {
    const width = 3;
    const layer = new LayerCache(new HeapStore(), 'bf16', width, 0, 1000, 0, 'bf16');
    assert.ok(layer.keys instanceof Uint16Array && layer.values instanceof Uint16Array);
    // bf16 keeps 7 fraction bits. 1 + 2^-8 is halfway between 1 and 1 + 2^-7: the tie goes to the even
    // one (1); 1 + 3 * 2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6 and goes up to the even 1 + 2^-6.
    const k = Float32Array.from({ length: 300 * width }, (_, i) => [1 + 2 ** -8, 1 + 3 * 2 ** -8, -(i + 0.5)][i % 3]!);
    const v = Float32Array.from(k, (x) => -x);
    for (let p = 0; p < 300; p += 100) {
      layer.reserve(p, 100);
      layer.write(p, 100, k.subarray(p * width, (p + 100) * width), v.subarray(p * width, (p + 100) * width));
    }
    assert.ok(layer.capacity >= 300);
    const widen = (w: number): number => new Float32Array(new Uint32Array([w << 16]).buffer)[0]!;
    /** Within half a bf16 step of x. */
    const near = (w: number, x: number): boolean => Math.abs(widen(w) - x) <= Math.abs(x) * 2 ** -8;
    for (const p of [0, 99, 100, 299]) {
      assert.equal(widen(layer.keys[p * width]!), 1);
      assert.equal(widen(layer.keys[p * width + 1]!), 1 + 2 ** -6);
      assert.ok(near(layer.keys[p * width + 2]!, -(p * width + 2.5)), `key at ${p}`);
      assert.ok(near(layer.values[p * width + 2]!, p * width + 2.5), `value at ${p}`);
      assert.equal(widen(layer.values[p * width]!), -1);
    }
  });

  it('a banded ring stays bounded and holds the window plus the rewind, at any position', () => {
    const window = 128;
    const rewind = 16;
    const layer = new LayerCache(new HeapStore(), 'banded', 1, window, CONTEXT, rewind);
    let p = 0;
    for (const count of [1000, 1, 1, 37, 1, 512]) {
      append(layer, p, count);
      p += count;
      assert.ok(layer.capacity <= window - 1 + rewind + 1000, `capacity ${layer.capacity}`);
      const positions = held(layer);
      // Every position a query in the next chunk can see is still there.
      assert.ok(positions[0]! <= p - (window - 1 + rewind), `oldest ${positions[0]} at length ${p}`);
      assert.deepEqual(positions, Array.from({ length: positions.length }, (_, i) => positions[0]! + i));
      assert.equal(positions.at(-1), p - 1);
    }
    for (let i = 0; i < 5000; i++) append(layer, p++, 1); // long decode: no growth
    assert.ok(layer.capacity <= window - 1 + rewind + 1000);
    assert.equal(held(layer).at(-1), p - 1);
  });

  it('truncation keeps what a banded window still needs, or asks for a recompute', () => {
    const config = { ...SHAPES.tiny, numLayers: 2, slidingWindow: 8, numKeyValueHeads: 1, headDim: 2 };
    const cache = new KvCache(config, new HeapStore(), 1000, { rewind: 4 });
    const width = config.numKeyValueHeads * config.headDim;
    const feed = (count: number): void => {
      for (const layer of cache.layers) {
        layer.reserve(cache.length, count);
        const k = new Float32Array(count * width).fill(1);
        layer.write(cache.length, count, k, k);
      }
      cache.length += count;
    };
    for (let i = 0; i < 40; i++) feed(1);
    const [banded, dense] = cache.layers;
    assert.ok(banded!.capacity < 40 && dense!.capacity >= 40);
    assert.equal(cache.truncate(37), true); // 3 back: inside the 4-position rewind
    assert.equal(cache.length, 37);
    assert.ok(held(banded!).every((p) => p < 37) && held(dense!).every((p) => p < 37));
    assert.equal(held(dense!).length, 37);
    assert.equal(cache.truncate(20), false); // the ring no longer holds positions 13..19
    assert.equal(cache.length, 37, 'a refused truncation changes nothing');
    cache.reset();
    assert.equal(cache.length, 0);
    assert.equal(cache.bytes(), 0);
  });

  it('the RoPE table covers the whole context with bounded, finite entries', () => {
    const config = SHAPES['20b'];
    const table = buildRopeTable(config, CONTEXT);
    assert.equal(table.positions, CONTEXT);
    assert.equal(table.cos.length, CONTEXT * config.headDim / 2);
    const concentration = 0.1 * Math.log(config.ropeScalingFactor) + 1;
    for (const p of [0, 1, 4096, CONTEXT - 1]) {
      for (let i = 0; i < table.halfDim; i++) {
        const c = table.cos[p * table.halfDim + i]!;
        const s = table.sin[p * table.halfDim + i]!;
        assert.ok(Math.abs(c * c + s * s - concentration ** 2) < 1e-5, `p=${p} i=${i}`);
      }
    }
    assert.equal(table.cos[0], Math.fround(concentration));
  });
});
