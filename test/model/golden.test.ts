// Golden parity with the official PyTorch reference (see test/fixtures/golden/README.md): f32
// logits, activations and routing within the cases' tolerances, argmax and greedy continuations
// exact (through the KV cache), MXFP4 dequantisation exact, RoPE tables; the bf16 comparison is
// reported, not asserted (this engine computes in f32).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadEngine, type LocalEngine } from '../../src/engine/local.ts';
import { dequantMxfp4Row } from '../../src/tensor/index.ts';
import { buildRopeTable, yarnParameters } from '../../src/model/rope.ts';
import { argmaxRow, goldenCases, hasFullvocab, maxAbsDiff, meanAbsDiff, readF32} from './golden-data.ts';

if (!hasFullvocab()) console.log('# golden: fullvocab-h32-l2 not found in ../shared/golden, skipping that case');

for (const c of goldenCases()) {
  const g = c.golden;
  const V = (g as unknown as { config: { vocab_size: number } }).config.vocab_size;
  describe(`golden ${c.name}`, () => {
    let engine: LocalEngine;
    before(async () => {
      engine = await loadEngine(c.dir, { backend: 'reference' });
    });
    after(async () => {
      await engine.close();
    });

    for (const s of g.sequences) {
      it(`${s.name}: f32 logits, argmax, activations and routing match the reference`, async (t) => {
        const taps = new Map<string, Float32Array | Int32Array>();
        const seq = engine.createSequence();
        const logits = await engine.stepAll(seq, s.tokens, (name, data) => taps.set(name, data.slice()));
        engine.release(seq);
        const positions = s.logits.fp32.positions!;
        const rows = (): Float32Array => {
          const out = new Float32Array(positions.length * V);
          positions.forEach((p, r) => out.set(logits.subarray(p * V, (p + 1) * V), r * V));
          return out;
        };
        const fp32 = readF32(c, s.logits.fp32);
        const ours = rows();
        const diff = maxAbsDiff(ours, fp32);
        const bf16 = readF32(c, s.logits.bf16);
        t.diagnostic(`${c.name} ${s.name}: f32 logits max abs diff ${diff.toExponential(2)} (limit ${g.tolerances.fp32.max_abs}); vs bf16 reference max ${maxAbsDiff(ours, bf16).toFixed(3)} mean ${meanAbsDiff(ours, bf16).toFixed(4)} (reported only)`);
        assert.ok(diff <= g.tolerances.fp32.max_abs, `f32 logits differ by ${diff}`);
        for (let p = 0; p < s.length; p++) assert.equal(argmaxRow(logits, p, V), s.argmax_fp32[p], `argmax at position ${p}`);

        if (s.logits_columns !== undefined) {
          const cols = s.logits_columns.columns;
          const ref = readF32(c, s.logits_columns.fp32);
          const mine = new Float32Array(s.length * cols.length);
          for (let p = 0; p < s.length; p++) cols.forEach((id, j) => (mine[p * cols.length + j] = logits[p * V + id]!));
          const d = maxAbsDiff(mine, ref);
          t.diagnostic(`${c.name} ${s.name}: logits_columns max abs diff ${d.toExponential(2)}`);
          assert.ok(d <= g.tolerances.fp32.max_abs, `logits_columns differ by ${d}`);
        }

        if (s.activations_fp32 !== undefined) {
          let worst = 0;
          for (const [name, ref] of Object.entries(s.activations_fp32)) {
            const mine = taps.get(name);
            assert.ok(mine instanceof Float32Array, `no activation tap "${name}"`);
            const d = maxAbsDiff(mine, readF32(c, ref));
            worst = Math.max(worst, d);
            assert.ok(d <= g.tolerances.fp32_activations.max_abs, `activation ${name} differs by ${d}`);
          }
          t.diagnostic(`${c.name} ${s.name}: activations max abs diff ${worst.toExponential(2)} (limit ${g.tolerances.fp32_activations.max_abs})`);
        }
        if (s.routing_fp32 !== undefined) {
          let worst = 0;
          for (const r of s.routing_fp32) {
            const gate = taps.get(`block.${r.layer}.gate_logits`) as Float32Array;
            const indices = taps.get(`block.${r.layer}.expert_indices`) as Int32Array;
            const weights = taps.get(`block.${r.layer}.expert_weights`) as Float32Array;
            const dg = maxAbsDiff(gate, readF32(c, r.gate_logits));
            const dw = maxAbsDiff(weights, readF32(c, r.expert_weights));
            worst = Math.max(worst, dg, dw);
            assert.ok(dg <= g.tolerances.fp32.max_abs, `layer ${r.layer} gate logits differ by ${dg}`);
            assert.ok(dw <= g.tolerances.fp32.max_abs, `layer ${r.layer} expert weights differ by ${dw}`);
            assert.deepEqual([...indices], r.expert_indices.flat(), `layer ${r.layer} expert indices`);
          }
          t.diagnostic(`${c.name} ${s.name}: routing gate/weights max abs diff ${worst.toExponential(2)}; indices exact`);
        }
      });
    }

    it('greedy continuation through the KV cache equals the reference', async (t) => {
      const { prompt, generated, logprobs, max_new_tokens: n } = g.greedy_fp32;
      const seq = engine.createSequence();
      let [logits] = await engine.step([{ sequence: seq, tokens: prompt }]);
      const out: number[] = [];
      let worst = 0;
      for (let i = 0; i < n; i++) {
        const id = argmaxRow(logits!, 0, V);
        let max = -Infinity;
        for (const v of logits!) max = Math.max(max, v);
        let sum = 0;
        for (const v of logits!) sum += Math.exp(v - max);
        worst = Math.max(worst, Math.abs(logits![id]! - max - Math.log(sum) - logprobs[i]!));
        out.push(id);
        [logits] = await engine.step([{ sequence: seq, tokens: [id] }]);
      }
      engine.release(seq);
      assert.deepEqual(out, generated);
      t.diagnostic(`${c.name}: greedy ${n} tokens identical; logprobs max abs diff ${worst.toExponential(2)}`);
      assert.ok(worst <= g.tolerances.fp32.max_abs, `logprobs differ by ${worst}`);
    });

    it('MXFP4 dequantisation is exact', () => {
      for (const m of g.mxfp4_dequant) {
        const match = /^block\.(\d+)\.mlp\.(mlp1|mlp2)_weight\.blocks$/.exec(m.blocks);
        assert.ok(match !== null, m.blocks);
        const moe = engine.model.weights.blocks[Number(match[1])]!.mlp;
        const stack = match[2] === 'mlp1' ? moe.mlp1Weight : moe.mlp2Weight;
        const ref = readF32(c, m.values);
        const mine = new Float32Array(stack.rows * stack.cols);
        for (let r = 0; r < stack.rows; r++) dequantMxfp4Row(stack, m.expert, r, mine.subarray(r * stack.cols, (r + 1) * stack.cols));
        assert.deepEqual(m.values.shape, [stack.rows, stack.cols]);
        assert.equal(maxAbsDiff(mine, ref), 0, `${m.blocks} expert ${m.expert}`);
      }
    });

    it('YaRN RoPE tables match the reference', () => {
      const config = engine.config;
      const { concentration, invFreq } = yarnParameters(config);
      assert.ok(Math.abs(concentration - g.rope.concentration) < 1e-6);
      g.rope.inv_freq.forEach((f, i) => assert.ok(Math.abs(invFreq[i]! - f) <= 1e-6 * f, `inv_freq[${i}] ${invFreq[i]} vs ${f}`));
      const cos = readF32(c, g.rope.cos);
      const sin = readF32(c, g.rope.sin);
      const table = buildRopeTable(config, g.rope.cos.shape[0]!);
      assert.ok(maxAbsDiff(table.cos, cos) <= 1e-5, 'cos');
      assert.ok(maxAbsDiff(table.sin, sin) <= 1e-5, 'sin');
    });
  });
}
