// The training model IS the gpt-oss model: its logits equal the inference forward pass's
// (model/forward.ts on the reference backend) for the same loaded weights, and the official
// reference's golden f32 logits; and its backward, through every block, equals finite differences
// for sampled entries of every tensor.
import { after, before, describe as suite, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UserError } from '../../src/errors.ts';
import { createReferenceBackend } from '../../src/kernels/reference.ts';
import { HeapStore } from '../../src/tensor/index.ts';
import { loadCheckpoint } from '../../src/checkpoint/checkpoint.ts';
import { contextLength } from '../../src/model/config.ts';
import { Transformer } from '../../src/model/forward.ts';
import { synthesize } from '../../src/checkpoint/synth.ts';
import type { ModelWeights } from '../../src/model/weights.ts';
import { IGNORE_TARGET } from '../../src/train/ops.ts';
import { forwardTrain, lossAndGradients, lossOf, nextTokenTargets } from '../../src/train/model.ts';
import { TrainableModel } from '../../src/train/params.ts';
import { goldenCases, maxAbsDiff, readF32 } from '../model/golden-data.ts';
import { checkGradient, describe, randomArray, someIndices } from './gradcheck.ts';
import { TINY } from './tiny.ts';

/** The inference pass's logits for every position of `tokens` (reference backend, f32). */
async function inferenceLogits(weights: ModelWeights, tokens: number[]): Promise<Float32Array> {
  const model = new Transformer(weights, createReferenceBackend(), contextLength(weights.config));
  return model.forward(model.newCache(), tokens, { allLogits: true });
}

suite('training forward equals the inference forward', () => {
  let tmp: string;
  before(() => {
    tmp = mkdtempSync(join(tmpdir(), 'gptoss-train-'));
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('on a synthetic tiny checkpoint (BF16 weights, MXFP4 experts), 12 tokens past the window of 4', async (t) => {
    const dir = join(tmp, 'tiny');
    synthesize(TINY, dir, { seed: 7 });
    const { weights } = await loadCheckpoint(dir, new HeapStore());
    const tokens = [1, 17, 5, 42, 5, 9, 0, 33, 47, 12, 17, 3];
    const expected = await inferenceLogits(weights, tokens);
    const model = TrainableModel.fromWeights(weights);
    const ours = forwardTrain(model, tokens).logits;
    const diff = maxAbsDiff(ours, expected);
    t.diagnostic(`max abs logit diff ${diff.toExponential(2)} (logits up to ${Math.max(...expected.map(Math.abs)).toFixed(2)})`);
    assert.ok(diff <= 1e-4, `logits differ by ${diff}`);
  });

  for (const c of goldenCases().filter((g) => g.name !== 'fullvocab-h32-l2')) {
    it(`on golden case ${c.name}: the official reference's f32 logits within the case's tolerance`, async (t) => {
      const { weights } = await loadCheckpoint(c.dir, new HeapStore());
      const model = TrainableModel.fromWeights(weights);
      const V = weights.config.vocabSize;
      let worstGolden = 0, worstInference = 0;
      for (const s of c.golden.sequences) {
        const ours = forwardTrain(model, s.tokens).logits;
        const golden = readF32(c, s.logits.fp32);
        const positions = s.logits.fp32.positions!;
        const rows = new Float64Array(positions.length * V);
        positions.forEach((p, r) => rows.set(ours.subarray(p * V, (p + 1) * V), r * V));
        worstGolden = Math.max(worstGolden, maxAbsDiff(rows, golden));
        worstInference = Math.max(worstInference, maxAbsDiff(ours, await inferenceLogits(weights, s.tokens)));
      }
      t.diagnostic(`${c.name}: max abs diff vs golden ${worstGolden.toExponential(2)} (tolerance ${c.golden.tolerances.fp32.max_abs}), vs inference ${worstInference.toExponential(2)}`);
      assert.ok(worstGolden <= c.golden.tolerances.fp32.max_abs, `golden logits differ by ${worstGolden}`);
      assert.ok(worstInference <= 1e-4, `inference logits differ by ${worstInference}`);
    });
  }
});

suite('whole-model gradient equals finite differences', () => {
  it('for sampled entries of every tensor (2 layers: banded then dense, 12 tokens, masked loss)', (t) => {
    const model = TrainableModel.random(TINY, 11);
    // Non-trivial values everywhere (the random init leaves biases and sinks at 0, norms at 1).
    model.params().forEach((p, i) => {
      const noise = randomArray(p.value.length, 1000 + i, p.name.endsWith('norm.scale') ? 0.3 : 0.1);
      for (let j = 0; j < p.value.length; j++) p.value[j] += noise[j]!;
    });
    const tokens = [3, 14, 15, 9, 26, 5, 35, 8, 9, 7, 9, 32];
    // Loss on the second half only, as assistant tokens after a prompt.
    const targets = nextTokenTargets(tokens, tokens.map((_, i) => i >= 6));
    assert.equal(targets.filter((x) => x !== IGNORE_TARGET).length, 6);
    model.zeroGrad();
    lossAndGradients(model, tokens, targets);
    const loss = () => lossOf(model, tokens, targets);
    const used = [...new Set(tokens)];
    let worst = 0;
    for (const [i, p] of model.params().entries()) {
      // Embedding rows of tokens that do not occur have exactly zero gradient; sample used ones.
      const indices = p.name === 'embedding.weight'
        ? someIndices(used.length * TINY.hiddenSize, 4, i).map((j) => used[Math.floor(j / TINY.hiddenSize)]! * TINY.hiddenSize + (j % TINY.hiddenSize))
        : someIndices(p.value.length, 4, i);
      const r = checkGradient(loss, p.value, p.grad, indices);
      t.diagnostic(`${p.name}: ${describe(r)}`);
      assert.ok(r.worst <= 1e-5, `${p.name}: ${describe(r)}`);
      worst = Math.max(worst, r.worst);
    }
    t.diagnostic(`worst over all tensors: ${worst.toExponential(2)}`);
    const unused = TINY.vocabSize - 1; // not in `tokens`
    assert.ok(!tokens.includes(unused));
    assert.ok(model.embedding.grad.subarray(unused * TINY.hiddenSize, (unused + 1) * TINY.hiddenSize).every((g) => g === 0));
  });

  it('with the router load-balancing loss added (coefficient 0.5), for the tensors that reach the routers', (t) => {
    const model = TrainableModel.random(TINY, 13);
    model.params().forEach((p, i) => {
      const noise = randomArray(p.value.length, 2000 + i, p.name.endsWith('norm.scale') ? 0.3 : 0.1);
      for (let j = 0; j < p.value.length; j++) p.value[j] += noise[j]!;
    });
    const tokens = [3, 14, 15, 9, 26, 5, 35, 8];
    const targets = nextTokenTargets(tokens);
    const options = { routerBalance: 0.5 };
    const { loss, balance } = lossAndGradients(model, tokens, targets, options);
    assert.ok(Math.abs(loss - lossOf(model, tokens, targets, options)) < 1e-12);
    assert.ok(Number.isFinite(balance) && balance > 0, `balance loss ${balance}`);
    const names = ['block.0.attn.qkv.weight', 'block.0.mlp.gate.weight', 'block.0.mlp.gate.bias', 'block.1.mlp.norm.scale', 'block.1.mlp.gate.weight', 'embedding.weight'];
    for (const [i, name] of names.entries()) {
      const p = model.param(name);
      const indices = name === 'embedding.weight' ? [3 * TINY.hiddenSize + 5, 26 * TINY.hiddenSize + 1] : someIndices(p.value.length, 4, 70 + i);
      const r = checkGradient(() => lossOf(model, tokens, targets, options), p.value, p.grad, indices);
      t.diagnostic(`${name}: ${describe(r)}`);
      assert.ok(r.worst <= 1e-5, `${name}: ${describe(r)}`);
    }
  });

  it('frozen parameters get no gradient and the others are unchanged by freezing', () => {
    const model = TrainableModel.random(TINY, 12);
    const tokens = [1, 2, 3, 4, 5, 6];
    const targets = nextTokenTargets(tokens);
    lossAndGradients(model, tokens, targets);
    const full = model.blocks[1]!.attn.qkvWeight.grad.slice();
    model.zeroGrad();
    for (const p of model.params()) p.trainable = p.name.startsWith('block.1.attn.qkv');
    lossAndGradients(model, tokens, targets);
    assert.deepEqual(model.blocks[1]!.attn.qkvWeight.grad, full);
    assert.ok(model.embedding.grad.every((g) => g === 0));
    assert.ok(model.blocks[0]!.mlp.mlp1Weight.grad.every((g) => g === 0));
  });
});

suite('trainable model construction', () => {
  it('random weights are seeded and reproducible', () => {
    const a = TrainableModel.random(TINY, 5), b = TrainableModel.random(TINY, 5), c = TrainableModel.random(TINY, 6);
    assert.deepEqual(a.unembedding.value, b.unembedding.value);
    assert.notDeepEqual(a.unembedding.value, c.unembedding.value);
    assert.ok(a.norm.value.every((v) => v === 1));
  });

  it('refuses a model too large for float64 training, naming the size', () => {
    assert.throws(() => new TrainableModel({ ...TINY, vocabSize: 201088, hiddenSize: 2880, numLayers: 24, numExperts: 32, intermediateSize: 2880 }), (e: unknown) => {
      assert.ok(e instanceof UserError && e.kind === 'memory');
      assert.match(e.message, /GiB/);
      return true;
    });
  });

  it('next-token targets: the mask picks the trained tokens', () => {
    assert.deepEqual(Array.from(nextTokenTargets([5, 6, 7, 8], [false, false, true, true])), [IGNORE_TARGET, 7, 8, IGNORE_TARGET]);
    assert.deepEqual(Array.from(nextTokenTargets([5, 6, 7])), [6, 7, IGNORE_TARGET]);
  });
});
