// The golden parity suite (official PyTorch logits, see test/fixtures/golden/README.md) through
// the wasm backend with 1 and 2 threads in its exact mode ('split' expert activations): f32
// logits at every stored position and the greedy continuation through the KV cache, within each
// case's tolerances (the exact mode keeps an f32 KV cache). Its default mode ('q8', with a bf16 KV
// cache) is held to the bf16 tolerance below, and so is a bf16 KV cache alone. Each case also
// requires that no op fell back to the reference code (the kernels, not their twin, made the logits).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadEngine, type LocalEngine } from '../../src/engine/local.ts';
import { fallbackTotal, type WasmBackend } from '../../src/kernels/wasm/index.ts';
import { argmaxRow, goldenCases, goldenLogits, greedyContinuation, maxAbsDiff, meanAbsDiff, readF32 } from '../model/golden-data.ts';

function assertNoFallbacks(engine: LocalEngine): void {
  assert.equal(engine.backend.name, 'wasm');
  assert.equal(fallbackTotal(engine.backend), 0, `fallbacks to the reference code: ${JSON.stringify((engine.backend as WasmBackend).fallbacks)}`);
}

/** The logits at `positions` of the whole sequence run in one step, [positions.length, V]. */
async function logitsInOneStep(engine: LocalEngine, tokens: readonly number[], positions: readonly number[], V: number): Promise<Float32Array> {
  const seq = engine.createSequence();
  const all = await engine.stepAll(seq, tokens);
  engine.release(seq);
  const out = new Float32Array(positions.length * V);
  positions.forEach((p, r) => out.set(all.subarray(p * V, (p + 1) * V), r * V));
  return out;
}

/** The logits at `positions` with the sequence fed one token per step through the KV cache. */
async function logitsTokenByToken(engine: LocalEngine, tokens: readonly number[], positions: readonly number[], V: number): Promise<Float32Array> {
  const seq = engine.createSequence();
  const out = new Float32Array(positions.length * V);
  for (let p = 0; p < tokens.length; p++) {
    const [logits] = await engine.step([{ sequence: seq, tokens: [tokens[p]!] }]);
    const r = positions.indexOf(p);
    if (r >= 0) out.set(logits!.subarray(0, V), r * V);
  }
  engine.release(seq);
  return out;
}

for (const threads of [1, 2]) {
  for (const c of goldenCases()) {
    const g = c.golden;
    const V = (g as unknown as { config: { vocab_size: number } }).config.vocab_size;
    describe(`golden ${c.name} on wasm, ${threads} thread(s)`, () => {
      let engine: LocalEngine;
      before(async () => {
        engine = await loadEngine(c.dir, { backend: 'wasm', threads, expertActivations: 'split' });
        assert.equal(engine.model.kvCacheType, 'f32', 'the exact mode keeps an f32 KV cache by default');
      });
      after(async () => {
        await engine.close();
      });

      for (const s of g.sequences) {
        it(`${s.name}: f32 logits and argmax match the reference`, async (t) => {
          const { all: logits, atPositions: ours } = await goldenLogits(engine, s, V);
          const diff = maxAbsDiff(ours, readF32(c, s.logits.fp32));
          t.diagnostic(`${c.name} ${s.name} wasm/${threads}: f32 logits max abs diff ${diff.toExponential(2)} (limit ${g.tolerances.fp32.max_abs})`);
          assert.ok(diff <= g.tolerances.fp32.max_abs, `f32 logits differ by ${diff}`);
          for (let p = 0; p < s.length; p++) assert.equal(argmaxRow(logits, p, V), s.argmax_fp32[p], `argmax at position ${p}`);
          assertNoFallbacks(engine);
        });
      }

      it('greedy continuation through the KV cache equals the reference', async () => {
        assert.deepEqual(await greedyContinuation(engine, g, V), g.greedy_fp32.generated);
        assertNoFallbacks(engine);
      });
    });
  }
}

// 'q8' expert activations (int8 per group of 32, the fast decode mode) are not f32-exact; they
// are held to the tolerance the golden data gives the official reference's own bf16 run (2x the
// bf16 reference's distance from f32, in mean and in max), fed one token at a time (the
// single-row kernels) and all at once (the batched ones).
describe('q8 expert activations stay within the bf16 tolerance of the golden cases', () => {
  for (const c of goldenCases()) {
    const g = c.golden;
    const V = (g as unknown as { config: { vocab_size: number } }).config.vocab_size;
    it(c.name, async (t) => {
      const engine = await loadEngine(c.dir, { backend: 'wasm', threads: 2, expertActivations: 'q8' });
      try {
        assert.equal(engine.model.kvCacheType, 'bf16', 'q8 runs with a bf16 KV cache by default');
        for (const s of g.sequences) {
          const positions = s.logits.fp32.positions!;
          const ours = await logitsTokenByToken(engine, s.tokens, positions, V);
          // The whole sequence in one step (several tokens per expert: the batched int8 kernels).
          const oneShot = await logitsInOneStep(engine, s.tokens, positions, V);
          const f32 = readF32(c, s.logits.fp32), bf16 = readF32(c, s.logits.bf16);
          const batchedMean = meanAbsDiff(oneShot, f32), batchedMax = maxAbsDiff(oneShot, f32);
          t.diagnostic(`${c.name} ${s.name} in one step: |q8 - f32| mean ${batchedMean.toExponential(2)} max ${batchedMax.toExponential(2)}`);
          assert.ok(batchedMean <= g.tolerances.bf16.mean_abs && batchedMax <= g.tolerances.bf16.max_abs, `one-step q8 logits: mean ${batchedMean}, max ${batchedMax}`);
          const q8Mean = meanAbsDiff(ours, f32), bf16Mean = meanAbsDiff(bf16, f32);
          const q8Max = maxAbsDiff(ours, f32), bf16Max = maxAbsDiff(bf16, f32);
          t.diagnostic(`${c.name} ${s.name}: |q8 - f32| mean ${q8Mean.toExponential(2)} max ${q8Max.toExponential(2)}; |bf16 reference - f32| mean ${bf16Mean.toExponential(2)} max ${bf16Max.toExponential(2)}`);
          const tol = g.tolerances.bf16;
          assert.ok(q8Mean <= tol.mean_abs, `mean error ${q8Mean} exceeds the bf16 tolerance ${tol.mean_abs}`);
          assert.ok(q8Max <= tol.max_abs, `max error ${q8Max} exceeds the bf16 tolerance ${tol.max_abs}`);
        }
        assertNoFallbacks(engine);
      } finally {
        await engine.close();
      }
    });
  }
});

// A bf16 KV cache alone (exact experts): keys and values rounded to bf16 as they are stored keep
// the logits within the bf16 tolerance, prefilled at once and fed one token at a time.
describe('a bf16 KV cache stays within the bf16 tolerance of the golden cases', () => {
  for (const c of goldenCases()) {
    const g = c.golden;
    const V = (g as unknown as { config: { vocab_size: number } }).config.vocab_size;
    it(c.name, async (t) => {
      const engine = await loadEngine(c.dir, { backend: 'wasm', threads: 2, expertActivations: 'split', kvCacheType: 'bf16' });
      try {
        for (const s of g.sequences) {
          const positions = s.logits.fp32.positions!;
          const f32 = readF32(c, s.logits.fp32), tol = g.tolerances.bf16;
          const oneShot = await logitsInOneStep(engine, s.tokens, positions, V);
          const stepped = await logitsTokenByToken(engine, s.tokens, positions, V);
          for (const [how, ours] of [['in one step', oneShot], ['token by token', stepped]] as const) {
            const mean = meanAbsDiff(ours, f32), max = maxAbsDiff(ours, f32);
            t.diagnostic(`${c.name} ${s.name} ${how}: |bf16 cache - f32| mean ${mean.toExponential(2)} max ${max.toExponential(2)} (limits ${tol.mean_abs}, ${tol.max_abs})`);
            assert.ok(mean <= tol.mean_abs && max <= tol.max_abs, `${how}: mean ${mean}, max ${max}`);
          }
        }
        assertNoFallbacks(engine);
      } finally {
        await engine.close();
      }
    });
  }
});

// The int8 copy of the unembedding (`--unembedding int8`) keeps the logits within the bf16
// tolerance: alone (exact experts, f32 cache: its own error) and with the default q8 experts and
// bf16 cache (what a user who asks for it runs), prefilled at once over every stored position.
describe('an int8 unembedding stays within the bf16 tolerance of the golden cases', () => {
  for (const c of goldenCases()) {
    const g = c.golden;
    const V = (g as unknown as { config: { vocab_size: number } }).config.vocab_size;
    it(c.name, async (t) => {
      for (const mode of ['split', 'q8'] as const) {
        const engine = await loadEngine(c.dir, { backend: 'wasm', threads: 2, expertActivations: mode, unembedding: 'int8' });
        try {
          assert.ok(engine.model.weights.unembedding.int8 !== undefined, 'the int8 copy is made');
          for (const s of g.sequences) {
            const positions = s.logits.fp32.positions!;
            const f32 = readF32(c, s.logits.fp32), tol = g.tolerances.bf16;
            const ours = await logitsInOneStep(engine, s.tokens, positions, V);
            const mean = meanAbsDiff(ours, f32), max = maxAbsDiff(ours, f32);
            t.diagnostic(`${c.name} ${s.name} ${mode} experts: |int8 unembedding - f32| mean ${mean.toExponential(2)} max ${max.toExponential(2)} (limits ${tol.mean_abs}, ${tol.max_abs})`);
            assert.ok(mean <= tol.mean_abs && max <= tol.max_abs, `${mode}: mean ${mean}, max ${max}`);
          }
          assertNoFallbacks(engine);
        } finally {
          await engine.close();
        }
      }
    });
  }
});
