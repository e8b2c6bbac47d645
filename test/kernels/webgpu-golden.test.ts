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
import { argmaxRow, goldenCases, goldenLogits, greedyContinuation, maxAbsDiff, readF32 } from '../model/golden-data.ts';

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
      engine = await loadEngine(c.dir, { backend: 'webgpu' });
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
