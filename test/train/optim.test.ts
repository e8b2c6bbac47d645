// AdamW, the warm-up + cosine schedule, global-norm clipping and the batch step, checked against
// hand-computed values; and the whole loop overfitting a short fixed sequence in seeded steps.
import { describe as suite, it } from 'node:test';
import assert from 'node:assert/strict';
import { lossAndGradients, lossOf, nextTokenTargets } from '../../src/train/model.ts';
import { AdamW, clipGradients, learningRate, trainStep } from '../../src/train/optim.ts';
import { TrainableModel, type Param } from '../../src/train/params.ts';
import { TINY } from './tiny.ts';

function param(name: string, shape: number[], value: number[], grad: number[]): Param {
  return { name, shape, value: new Float64Array(value), grad: new Float64Array(grad), trainable: true };
}

suite('AdamW', () => {
  it('first two steps equal the formulas, decay only on matrices, frozen untouched', () => {
    const w = param('w', [1, 2], [0.5, -2], [0.1, -0.3]);
    const b = param('b', [2], [0.5, -2], [0.1, -0.3]);
    const frozen = param('f', [1, 2], [1, 1], [5, 5]);
    frozen.trainable = false;
    const opt = new AdamW([w, b, frozen], { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 });
    const lr = 0.01;
    opt.step(lr);
    // Step 1: the bias-corrected moments are g and g^2, so the update is g/(|g| + eps).
    const step1 = (x: number, g: number, decay: boolean) => x - (decay ? lr * 0.1 * x : 0) - lr * g / (Math.abs(g) + 1e-8);
    assert.ok(Math.abs(w.value[0]! - step1(0.5, 0.1, true)) < 1e-15);
    assert.ok(Math.abs(w.value[1]! - step1(-2, -0.3, true)) < 1e-15);
    assert.ok(Math.abs(b.value[0]! - step1(0.5, 0.1, false)) < 1e-15);
    assert.deepEqual(Array.from(frozen.value), [1, 1]);
    // Step 2 with a new gradient.
    const before = w.value[0]!;
    w.grad[0] = -0.2;
    opt.step(lr);
    const m = 0.9 * (0.1 * 0.1) + 0.1 * -0.2;
    const v = 0.95 * (0.05 * 0.01) + 0.05 * 0.04;
    const expected = before - lr * 0.1 * before - lr * (m / (1 - 0.81)) / (Math.sqrt(v / (1 - 0.9025)) + 1e-8);
    assert.ok(Math.abs(w.value[0]! - expected) < 1e-15, `${w.value[0]} vs ${expected}`);
    assert.equal(opt.steps, 2);
  });
});

suite('learning-rate schedule', () => {
  const s = { peak: 1e-3, warmupSteps: 10, totalSteps: 110, minRatio: 0.1 };
  it('warms up linearly, decays by a half cosine to the floor, then stays there', () => {
    assert.ok(Math.abs(learningRate(0, s) - 1e-4) < 1e-18);
    assert.ok(Math.abs(learningRate(4, s) - 5e-4) < 1e-18);
    assert.ok(Math.abs(learningRate(9, s) - 1e-3) < 1e-18);
    assert.ok(Math.abs(learningRate(10, s) - 1e-3) < 1e-18);
    assert.ok(Math.abs(learningRate(60, s) - (1e-4 + 0.9e-3 / 2)) < 1e-15);
    assert.ok(Math.abs(learningRate(110, s) - 1e-4) < 1e-18);
    assert.ok(Math.abs(learningRate(500, s) - 1e-4) < 1e-18);
    for (let i = 10; i < 110; i++) assert.ok(learningRate(i + 1, s) <= learningRate(i, s), `non-increasing at ${i}`);
  });
});

suite('gradient clipping', () => {
  it('scales to the global norm across tensors, leaves small gradients alone', () => {
    const a = param('a', [2], [0, 0], [3, 0]);
    const b = param('b', [1], [0], [4]);
    assert.equal(clipGradients([a, b], 10), 5);
    assert.deepEqual(Array.from(a.grad), [3, 0]);
    assert.equal(clipGradients([a, b], 1), 5);
    assert.ok(Math.abs(a.grad[0]! - 0.6) < 1e-15 && Math.abs(b.grad[0]! - 0.8) < 1e-15);
  });
});

suite('training step and loop', () => {
  it('a batch weighs every counted token alike', () => {
    const tokens1 = [1, 2, 3, 4, 5], tokens2 = [7, 8, 9];
    const t1 = nextTokenTargets(tokens1), t2 = nextTokenTargets(tokens2, [false, false, true]);
    const model = TrainableModel.random(TINY, 3);
    // Expected: (4 * grad of seq1's mean + 1 * grad of seq2's mean) / 5.
    model.zeroGrad();
    lossAndGradients(model, tokens1, t1);
    const g1 = model.unembedding.grad.slice();
    model.zeroGrad();
    lossAndGradients(model, tokens2, t2);
    const g2 = model.unembedding.grad.slice();
    const expectedLoss = (4 * lossOf(model, tokens1, t1) + lossOf(model, tokens2, t2)) / 5;
    const opt = new AdamW(model.params(), { weightDecay: 0 });
    const r = trainStep(model, opt, [{ tokens: tokens1, targets: t1 }, { tokens: tokens2, targets: t2 }], 0, 1e9);
    assert.equal(r.counted, 5);
    assert.ok(Math.abs(r.loss - expectedLoss) < 1e-12);
    for (let i = 0; i < g1.length; i++) assert.ok(Math.abs(model.unembedding.grad[i]! - (4 * g1[i]! + g2[i]!) / 5) < 1e-14);
  });

  it('the step\'s loss includes the weighted load-balancing loss', () => {
    const model = TrainableModel.random(TINY, 4);
    const tokens = [1, 2, 3, 4, 5, 6];
    const targets = nextTokenTargets(tokens);
    const expected = lossOf(model, tokens, targets, { routerBalance: 0.25 });
    const plain = lossOf(model, tokens, targets);
    const r = trainStep(model, new AdamW(model.params()), [{ tokens, targets }], 0, 1e9, { routerBalance: 0.25 });
    assert.ok(Math.abs(r.loss - expected) < 1e-12);
    assert.ok(Math.abs(r.loss - (plain + 0.25 * r.balance)) < 1e-12);
    assert.ok(r.balance > 0);
  });

  it('overfits a short fixed sequence: loss from above 3 to below 0.01 in 40 seeded steps', (t) => {
    const model = TrainableModel.random(TINY, 2024);
    const tokens = [4, 19, 7, 30, 7, 12, 45, 19, 2, 30, 7, 12, 8, 41, 19, 4];
    const targets = nextTokenTargets(tokens);
    const opt = new AdamW(model.params(), { weightDecay: 0.01 });
    const schedule = { peak: 1e-2, warmupSteps: 5, totalSteps: 40 };
    const losses: number[] = [];
    for (let step = 0; step < 40; step++) losses.push(trainStep(model, opt, [{ tokens, targets }], learningRate(step, schedule), 1).loss);
    const final = lossOf(model, tokens, targets);
    t.diagnostic(`loss ${losses[0]!.toFixed(3)} -> ${losses[29]!.toFixed(3)} (step 30) -> ${final.toFixed(5)} (after 40)`);
    assert.ok(losses[0]! > 3, `the untrained loss is above 3 (ln 48 = 3.87), got ${losses[0]}`);
    assert.ok(final < 0.01, `final loss ${final}`);
  });
});
