// The golden parity suite (official PyTorch logits, see test/fixtures/golden/README.md) through
// the webgpu backend (f32 kernels, its exact mode): f32 logits at every stored position and the
// greedy continuation through the KV cache, within each case's tolerances, with no op run by the
// reference code. Skips with the reason when no WebGPU adapter exists at all, unless
// GPTOSS_REQUIRE_WEBGPU=1 (CI with its software adapter), where a missing adapter fails.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadEngine, type LocalEngine } from '../../src/engine/local.ts';
import { fallbackTotal } from '../../src/kernels/wasm/index.ts';
import { webGpuAvailable } from '../../src/kernels/webgpu/device.ts';
import type { WebGpuBackend } from '../../src/kernels/webgpu/index.ts';
import { argmaxRow, goldenCases, goldenLogits, greedyContinuation, maxAbsDiff, meanAbsDiff, readF32 } from '../model/golden-data.ts';

const available = await webGpuAvailable();
if (!available.ok && process.env.GPTOSS_REQUIRE_WEBGPU === '1') throw new Error(`GPTOSS_REQUIRE_WEBGPU=1 but ${available.reason}`);
const skip = available.ok ? false : `no WebGPU adapter: ${available.reason}`;

function assertNoFallbacks(engine: LocalEngine): void {
  assert.equal(engine.backend.name, 'webgpu');
  assert.equal(fallbackTotal(engine.backend), 0, `fallbacks to the reference code: ${JSON.stringify((engine.backend as WebGpuBackend).fallbacks)}`);
}

for (const c of goldenCases()) {
  const g = c.golden;
  const V = (g as unknown as { config: { vocab_size: number } }).config.vocab_size;
  describe(`golden ${c.name} on webgpu`, { skip }, () => {
    let engine: LocalEngine;
    before(async () => {
      engine = await loadEngine(c.dir, { backend: 'webgpu', expertActivations: 'split' });
    });
    after(async () => {
      await engine?.close();
    });

    for (const s of g.sequences) {
      it(`${s.name}: f32 logits and argmax match the reference`, async (t) => {
        const { all: logits, atPositions: ours } = await goldenLogits(engine, s, V);
        const diff = maxAbsDiff(ours, readF32(c, s.logits.fp32));
        t.diagnostic(`${c.name} ${s.name} webgpu (${(engine.backend as WebGpuBackend).adapter}): f32 logits max abs diff ${diff.toExponential(2)} (limit ${g.tolerances.fp32.max_abs})`);
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

// The default mode where the adapter has shader-f16 ('f16' expert activations) is not f32-exact:
// it is held to the bf16 tolerance of each case (fed one token at a time and all at once) with the
// f32 greedy continuation, as the CPU's default 'q8' is.
describe('f16 expert activations on webgpu stay within the bf16 tolerance of the golden cases', { skip }, () => {
  for (const c of goldenCases()) {
    const g = c.golden;
    const V = (g as unknown as { config: { vocab_size: number } }).config.vocab_size;
    it(c.name, async (t) => {
      const engine = await loadEngine(c.dir, { backend: 'webgpu' });
      try {
        const mode = (engine.backend as WebGpuBackend).expertActivations;
        if (mode !== 'f16') return t.skip(`the adapter has no shader-f16: the default is ${mode}`);
        const tol = g.tolerances.bf16;
        for (const s of g.sequences) {
          const positions = s.logits.fp32.positions!;
          const seq = engine.createSequence();
          const ours = new Float32Array(positions.length * V);
          for (let p = 0; p < s.length; p++) {
            const [logits] = await engine.step([{ sequence: seq, tokens: [s.tokens[p]!] }]);
            const r = positions.indexOf(p);
            if (r >= 0) ours.set(logits!.subarray(0, V), r * V);
          }
          engine.release(seq);
          const { atPositions: oneShot } = await goldenLogits(engine, s, V);
          const f32 = readF32(c, s.logits.fp32);
          for (const [how, got] of [['one token a step', ours], ['in one step', oneShot]] as const) {
            const mean = meanAbsDiff(got, f32), max = maxAbsDiff(got, f32);
            t.diagnostic(`${c.name} ${s.name} ${how}: |f16 - f32| mean ${mean.toExponential(2)} max ${max.toExponential(2)} (limits ${tol.mean_abs}, ${tol.max_abs})`);
            assert.ok(mean <= tol.mean_abs && max <= tol.max_abs, `${how}: mean ${mean}, max ${max}`);
          }
        }
        assert.deepEqual(await greedyContinuation(engine, g, V), g.greedy_fp32.generated);
        assertNoFallbacks(engine);
      } finally {
        await engine.close();
      }
    });
  }
});
