// The training loop: the seeded batch plan, a run that learns its examples with held-out
// evaluation and progress reports, and an interrupted run resuming from its state file to the
// same weights, bit for bit, as an uninterrupted one.
import { after, before, describe as suite, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UserError } from '../../src/errors.ts';
import { evaluate, fineTune, planBatches, type Progress } from '../../src/train/loop.ts';
import { nextTokenTargets } from '../../src/train/model.ts';
import { TrainableModel } from '../../src/train/params.ts';
import { TINY } from './tiny.ts';

const texts = [[1, 5, 9, 13, 17, 21], [2, 6, 10, 14], [3, 7, 11, 15, 19, 23, 27, 31], [4, 8, 12]];
const examples = texts.map((tokens) => ({ tokens, targets: nextTokenTargets(tokens) }));
let tmp: string;

suite('training loop', () => {
  before(() => {
    tmp = mkdtempSync(join(tmpdir(), 'gptoss-loop-'));
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('plans seeded batches: each example once per epoch, within the token budget', () => {
    const lengths = [5, 3, 9, 2, 4, 12];
    const plan = planBatches(lengths, 10, 3, 7);
    assert.deepEqual(planBatches(lengths, 10, 3, 7), plan, 'the same seed gives the same plan');
    assert.notDeepEqual(planBatches(lengths, 10, 3, 8), plan);
    const counts = new Array(lengths.length).fill(0);
    for (const batch of plan) {
      const tokens = batch.reduce((n, i) => n + lengths[i]!, 0);
      assert.ok(tokens <= 10 || batch.length === 1, `batch ${JSON.stringify(batch)} over budget`);
      for (const i of batch) counts[i]++;
    }
    assert.deepEqual(counts, lengths.map(() => 3));
  });

  it('plans batches within a prefix group when given keys, in a shuffled order', () => {
    const lengths = new Array(15).fill(10);
    const keys = lengths.map((_, i) => (i % 5 < 3 ? 'a' : 'b')); // nine a, six b: whole batches of three
    const plan = planBatches(lengths, 30, 4, 5, keys);
    assert.deepEqual(planBatches(lengths, 30, 4, 5, keys), plan, 'the same seed gives the same plan');
    assert.equal(plan.length, 4 * 5);
    for (const batch of plan) assert.equal(new Set(batch.map((i) => keys[i])).size, 1, `batch ${JSON.stringify(batch)} mixes groups`);
    for (let epoch = 0; epoch < 4; epoch++) {
      assert.deepEqual(plan.slice(epoch * 5, epoch * 5 + 5).flat().sort((x, y) => x - y), lengths.map((_, i) => i), `epoch ${epoch} has each example once`);
    }
    // Not every epoch runs one group's batches first and then the other's.
    const groupOrder = (epoch: number): string => plan.slice(epoch * 5, epoch * 5 + 5).map((b) => keys[b[0]!]).join('');
    assert.ok([0, 1, 2, 3].some((e) => !/^(a+b+|b+a+)$/.test(groupOrder(e))), [0, 1, 2, 3].map(groupOrder).join(' '));
    assert.throws(() => planBatches(lengths, 30, 1, 5, ['a']), /1 group keys for 15 examples/);
  });

  it('learns its examples, reporting every step and the held-out loss', async () => {
    const model = TrainableModel.random(TINY, 3);
    const held = [{ tokens: [1, 5, 9, 13], targets: nextTokenTargets([1, 5, 9, 13]) }];
    const before = evaluate(model, examples);
    const heldBefore = evaluate(model, held);
    const progress: Progress[] = [];
    const result = await fineTune(model, examples, { epochs: 25, lr: 1e-2, batchTokens: 12, seed: 1, evalExamples: held, evalEvery: 10, onProgress: (p) => progress.push(p) });
    assert.equal(progress.length, result.totalSteps);
    assert.deepEqual(progress.map((p) => p.step), progress.map((_, i) => i + 1));
    assert.ok(progress.filter((p) => p.evalLoss !== undefined).length >= 2);
    const after = evaluate(model, examples);
    assert.ok(after < 0.1 * before, `loss ${before} -> ${after}`);
    // The held-out sequence is the start of a training one: it is learnt too.
    assert.ok(result.evalLoss! < heldBefore, `held-out ${heldBefore} -> ${result.evalLoss}`);
  });

  it('an interrupted run resumes from its state to the same weights as an uninterrupted one', async () => {
    const options = { epochs: 6, lr: 1e-2, batchTokens: 12, seed: 4 };
    const straight = TrainableModel.random(TINY, 5);
    const all = await fineTune(straight, examples, options);

    const statePath = join(tmp, 'run.safetensors');
    const first = await fineTune(TrainableModel.random(TINY, 5), examples, { ...options, statePath, stopAfter: 4, saveEvery: 2 });
    assert.equal(first.steps, 4);
    const resumed = TrainableModel.random(TINY, 123);
    const second = await fineTune(resumed, examples, { ...options, statePath });
    assert.equal(second.resumedFrom, 4);
    assert.equal(second.steps, all.totalSteps);
    for (const p of straight.params()) assert.deepEqual(resumed.param(p.name).value, p.value, p.name);

    await assert.rejects(fineTune(TrainableModel.random(TINY, 5), examples, { ...options, seed: 9, statePath }), (e: unknown) => {
      assert.ok(e instanceof UserError);
      assert.match(e.message, /saved for seed 4 .* not seed 9/);
      return true;
    });
  });
});
