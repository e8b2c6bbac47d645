// LoRA on the attention projections and the experts: a fresh adapter leaves the model unchanged, the adapted
// forward equals the merged weights' forward, A and B gradients equal finite differences with the
// base frozen, tensor names and shapes are PEFT's, and training moves only the adapters.
import { describe as suite, it } from 'node:test';
import assert from 'node:assert/strict';
import { EXPERT_TARGETS, freezeBase, LORA_TARGETS, LoraAdapters, type LoraTarget } from '../../src/train/lora.ts';
import { forwardTrain, lossAndGradients, lossOf, nextTokenTargets } from '../../src/train/model.ts';
import { AdamW, trainStep } from '../../src/train/optim.ts';
import { TrainableModel } from '../../src/train/params.ts';
import { maxAbsDiff } from '../model/golden-data.ts';
import { checkGradient, describe, randomArray, someIndices } from './gradcheck.ts';
import { TINY } from './tiny.ts';

const tokens = [3, 14, 15, 9, 26, 5, 35, 8, 9, 7];

/** Adapters with B drawn at random too (a fresh B is zero, which hides half the math). */
function trainedLookingAdapters(seed: number, targets?: readonly LoraTarget[]): LoraAdapters {
  const lora = new LoraAdapters(TINY, { rank: 4, alpha: 8, seed, ...(targets === undefined ? {} : { targets }) });
  lora.params().forEach((p, i) => {
    if (p.name.endsWith('lora_B.weight')) p.value.set(randomArray(p.value.length, seed * 100 + i, 0.2));
  });
  return lora;
}

suite('LoRA adapters', () => {
  it('use the tensor names and shapes PEFT writes for the transformers GptOss model', () => {
    const lora = new LoraAdapters(TINY, { rank: 4, alpha: 8, targets: ['q_proj', 'v_proj', 'o_proj'] });
    const names = lora.params().map((p) => `${p.name} ${p.shape.join('x')}`);
    assert.deepEqual(names.slice(0, 6), [
      'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight 4x64',
      'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight 64x4',
      'base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight 4x64',
      'base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight 32x4',
      'base_model.model.model.layers.0.self_attn.o_proj.lora_A.weight 4x64',
      'base_model.model.model.layers.0.self_attn.o_proj.lora_B.weight 64x4',
    ]);
    assert.equal(names.length, 12);
    assert.equal(lora.scale, 2);
    assert.ok(lora.params().filter((p) => p.name.includes('lora_B')).every((p) => p.value.every((v) => v === 0)), 'B starts at zero');
  });

  it('a fresh adapter leaves the logits unchanged; a trained one equals its merged weights', (t) => {
    const base = TrainableModel.random(TINY, 21);
    const plain = forwardTrain(base, tokens).logits;
    assert.equal(maxAbsDiff(forwardTrain(base, tokens, { lora: new LoraAdapters(TINY, { rank: 4, alpha: 8 }) }).logits, plain), 0);
    const lora = trainedLookingAdapters(3);
    const adapted = forwardTrain(base, tokens, { lora }).logits;
    const merged = TrainableModel.random(TINY, 21);
    lora.mergeInto(merged);
    const diff = maxAbsDiff(forwardTrain(merged, tokens).logits, adapted);
    t.diagnostic(`adapted vs merged logits: max abs diff ${diff.toExponential(2)}; adapter moved logits by ${maxAbsDiff(adapted, plain).toFixed(3)}`);
    assert.ok(diff < 1e-12);
    assert.ok(maxAbsDiff(adapted, plain) > 0.01, 'the adapter changes the model');
  });

  it('A and B gradients equal finite differences; the frozen base gets none', (t) => {
    const model = TrainableModel.random(TINY, 22);
    freezeBase(model);
    const lora = trainedLookingAdapters(4);
    const targets = nextTokenTargets(tokens, tokens.map((_, i) => i >= 4));
    lossAndGradients(model, tokens, targets, { lora });
    const loss = () => lossOf(model, tokens, targets, { lora });
    let worst = 0;
    for (const [i, p] of lora.params().entries()) {
      const r = checkGradient(loss, p.value, p.grad, someIndices(p.value.length, 3, 50 + i));
      worst = Math.max(worst, r.worst);
      assert.ok(r.worst <= 1e-5, `${p.name}: ${describe(r)}`);
    }
    t.diagnostic(`worst relative error over ${lora.params().length} adapter tensors: ${worst.toExponential(2)}`);
    for (const p of model.params()) assert.equal(p.grad.length, 0, `${p.name} is frozen: it has no gradient to accumulate into`);
  });

  it('a base built frozen holds no gradients and trains the same adapters bit for bit', () => {
    const frozen = new TrainableModel(TINY, { frozen: true });
    const base = TrainableModel.random(TINY, 24);
    freezeBase(base);
    base.params().forEach((p) => frozen.param(p.name).value.set(p.value));
    assert.ok(frozen.params().every((p) => !p.trainable && p.grad.length === 0));
    const targets = nextTokenTargets(tokens);
    const [a, b] = [new LoraAdapters(TINY, { rank: 4, alpha: 8, seed: 2 }), new LoraAdapters(TINY, { rank: 4, alpha: 8, seed: 2 })];
    const [optA, optB] = [new AdamW(a.params(), { weightDecay: 0 }), new AdamW(b.params(), { weightDecay: 0 })];
    for (let step = 0; step < 3; step++) {
      trainStep(base, optA, [{ tokens, targets }], 1e-2, 1, { lora: a });
      trainStep(frozen, optB, [{ tokens, targets }], 1e-2, 1, { lora: b });
    }
    a.params().forEach((p, i) => assert.deepEqual(b.params()[i]!.value, p.value, p.name));
    frozen.embedding.trainable = true;
    assert.throws(() => lossAndGradients(frozen, tokens, targets), /embedding\.weight is trainable but has no gradient/);
  });

  it('training moves the adapters and lowers the loss, leaving the base bit for bit', (t) => {
    const model = TrainableModel.random(TINY, 23);
    freezeBase(model);
    const before = model.params().map((p) => p.value.slice());
    const lora = new LoraAdapters(TINY, { rank: 4, alpha: 8, seed: 1 });
    const targets = nextTokenTargets(tokens);
    const opt = new AdamW(lora.params(), { weightDecay: 0 });
    const first = lossOf(model, tokens, targets, { lora });
    for (let step = 0; step < 30; step++) trainStep(model, opt, [{ tokens, targets }], 1e-2, 1, { lora });
    const last = lossOf(model, tokens, targets, { lora });
    t.diagnostic(`LoRA r=4 on q/k/v/o, 30 steps: loss ${first.toFixed(3)} -> ${last.toFixed(3)}`);
    assert.ok(last < first * 0.5, `loss ${first} -> ${last}`);
    model.params().forEach((p, i) => assert.deepEqual(p.value, before[i], `${p.name} changed`));
  });

  it('experts: PEFT target_parameters shapes ([E*r, in], [out, r*E]) and names (gate_up_proj inside down_proj)', () => {
    const both = new LoraAdapters(TINY, { rank: 4, alpha: 8, targets: [...EXPERT_TARGETS] });
    assert.deepEqual(both.params().slice(0, 4).map((p) => `${p.name} ${p.shape.join('x')}`), [
      'base_model.model.model.layers.0.mlp.experts.base_layer.lora_A.weight 16x64',
      'base_model.model.model.layers.0.mlp.experts.base_layer.lora_B.weight 64x16',
      'base_model.model.model.layers.0.mlp.experts.lora_A.weight 16x32',
      'base_model.model.model.layers.0.mlp.experts.lora_B.weight 64x16',
    ]);
    const alone = new LoraAdapters(TINY, { rank: 4, alpha: 8, targets: ['gate_up_proj'] });
    assert.equal(alone.params()[0]!.name, 'base_model.model.model.layers.0.mlp.experts.lora_A.weight');
  });

  it('experts: expert e uses A rows e*r.. and B columns j*E+e (PEFT\'s reshapes), and equals its merged weights', (t) => {
    const lora = trainedLookingAdapters(5, [...EXPERT_TARGETS]);
    const m = lora.expertModule(1, 'down_proj')!;
    const r = lora.rank, E = m.experts, n = m.inFeatures;
    // delta_e[o, i] = scale * sum_j B[o, j, e] A[e, j, i], with B viewed [out, r, E] and A [E, r, in].
    for (const [e, o, i] of [[0, 0, 0], [3, 63, 31], [2, 10, 7]] as const) {
      let want = 0;
      for (let j = 0; j < r; j++) want += m.B.value[o * r * E + j * E + e]! * m.A.value[(e * r + j) * n + i]!;
      assert.ok(Math.abs(lora.expertDelta(m, e)[o * n + i]! - lora.scale * want) < 1e-12);
    }
    const base = TrainableModel.random(TINY, 25);
    const adapted = forwardTrain(base, tokens, { lora }).logits;
    const merged = TrainableModel.random(TINY, 25);
    lora.mergeInto(merged);
    const diff = maxAbsDiff(forwardTrain(merged, tokens).logits, adapted);
    t.diagnostic(`expert adapters: adapted vs merged ${diff.toExponential(2)}, effect ${maxAbsDiff(adapted, forwardTrain(base, tokens).logits).toFixed(3)}`);
    assert.ok(diff < 1e-12);
    assert.ok(maxAbsDiff(adapted, forwardTrain(base, tokens).logits) > 0.01, 'the expert adapters change the model');
  });

  it('experts: A and B gradients equal finite differences (with the attention adapters too), on f64 and f32 kernels', (t) => {
    const model = TrainableModel.random(TINY, 26);
    freezeBase(model);
    const lora = trainedLookingAdapters(6, [...LORA_TARGETS, ...EXPERT_TARGETS]);
    const targets = nextTokenTargets(tokens, tokens.map((_, i) => i >= 3));
    lossAndGradients(model, tokens, targets, { lora });
    const loss = () => lossOf(model, tokens, targets, { lora });
    let worst = 0;
    const experts = lora.expertModules.flatMap((m) => [m.A, m.B]);
    assert.equal(experts.length, 8);
    for (const [i, p] of experts.entries()) {
      const r = checkGradient(loss, p.value, p.grad, someIndices(p.value.length, 6, 70 + i));
      worst = Math.max(worst, r.worst);
      assert.ok(r.worst <= 1e-5, `${p.name}: ${describe(r)}`);
    }
    t.diagnostic(`worst relative error over ${experts.length} expert adapter tensors: ${worst.toExponential(2)}`);
    // The f32 kernels run the same adapter code beside their products.
    const f64 = experts.map((p) => p.grad.slice());
    lora.zeroGrad();
    lossAndGradients(model, tokens, targets, { lora, precision: 'f32' });
    experts.forEach((p, i) => assert.ok(maxAbsDiff(p.grad, f64[i]!) < 1e-3 * Math.max(1, ...f64[i]!.map(Math.abs)), p.name));
  });

  it('experts: training lowers the loss with only expert adapters, the base bit for bit', (t) => {
    const model = TrainableModel.random(TINY, 27);
    freezeBase(model);
    const before = model.params().map((p) => p.value.slice());
    const lora = new LoraAdapters(TINY, { rank: 4, alpha: 8, seed: 1, targets: [...EXPERT_TARGETS] });
    const targets = nextTokenTargets(tokens);
    const opt = new AdamW(lora.params(), { weightDecay: 0 });
    const first = lossOf(model, tokens, targets, { lora });
    for (let step = 0; step < 30; step++) trainStep(model, opt, [{ tokens, targets }], 1e-2, 1, { lora });
    const last = lossOf(model, tokens, targets, { lora });
    t.diagnostic(`LoRA r=4 on the experts, 30 steps: loss ${first.toFixed(3)} -> ${last.toFixed(3)}`);
    assert.ok(last < first * 0.7, `loss ${first} -> ${last}`);
    model.params().forEach((p, i) => assert.deepEqual(p.value, before[i], `${p.name} changed`));
  });
});
