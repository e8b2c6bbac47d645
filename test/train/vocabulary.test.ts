// The used-vocabulary shortcut: with the unembedding rows of unused tokens at zero, training over
// the used rows only gives the same loss and the same gradients as the full vocabulary (those
// rows' own gradients aside: they stay zero, frozen), and the rows stay zero through training.
// And logits computed only at the positions that have a target give the same loss and gradients
// bit for bit.
import { describe as suite, it } from 'node:test';
import assert from 'node:assert/strict';
import { checkUnusedRowsZero, forwardTrain, liveVocabulary, lossAndGradients, lossOf, nextTokenTargets, targetRows, usedVocabulary, zeroUnusedRows } from '../../src/train/model.ts';
import { AdamW, trainStep } from '../../src/train/optim.ts';
import { TrainableModel } from '../../src/train/params.ts';
import { TINY } from './tiny.ts';

const H = TINY.hiddenSize;
const tokens = [3, 14, 15, 9, 26, 5, 35, 8, 9, 7, 9, 32];
const targets = nextTokenTargets(tokens, tokens.map((_, i) => i >= 3));

suite('used vocabulary', () => {
  it('lists the sorted distinct ids of a corpus', () => {
    assert.deepEqual(Array.from(usedVocabulary([[5, 3, 5], [9, 3]])), [3, 5, 9]);
  });

  it('liveVocabulary: the ids whose unembedding row is not zero (what a base trained here uses)', () => {
    const model = TrainableModel.random(TINY, 8);
    assert.equal(liveVocabulary(model).length, TINY.vocabSize);
    zeroUnusedRows(model, Int32Array.from([2, 7, 40]));
    model.unembedding.value[7 * H + H - 1] = 0.5; // one non-zero entry keeps a row live
    assert.deepEqual(Array.from(liveVocabulary(model)), [2, 7, 40]);
    model.unembedding.value.fill(0, 40 * H, 41 * H);
    assert.deepEqual(Array.from(liveVocabulary(model)), [2, 7]);
  });

  it('gives the full vocabulary\'s loss, logits and gradients when unused rows are zero', () => {
    const vocabulary = usedVocabulary([tokens]);
    const full = TrainableModel.random(TINY, 31);
    assert.equal(zeroUnusedRows(full, vocabulary), TINY.vocabSize - vocabulary.length);
    checkUnusedRowsZero(full, vocabulary);
    const short = TrainableModel.random(TINY, 31);
    zeroUnusedRows(short, vocabulary);

    const fullLogits = forwardTrain(full, tokens).logits;
    const shortLogits = forwardTrain(short, tokens, { vocabulary }).logits;
    for (let t = 0; t < tokens.length; t++) {
      for (let v = 0; v < TINY.vocabSize; v++) {
        const i = vocabulary.indexOf(v);
        const expected = fullLogits[t * TINY.vocabSize + v]!;
        if (i < 0) assert.equal(expected, 0, 'an unused token\'s logit is exactly 0');
        else assert.equal(shortLogits[t * vocabulary.length + i], expected);
      }
    }
    const fullLoss = lossAndGradients(full, tokens, targets).loss;
    const shortLoss = lossAndGradients(short, tokens, targets, { vocabulary }).loss;
    assert.ok(Math.abs(fullLoss - shortLoss) < 1e-12, `${fullLoss} vs ${shortLoss}`);
    for (const p of full.params()) {
      const q = short.param(p.name);
      for (let i = 0; i < p.grad.length; i++) {
        const unusedRow = p === full.unembedding && !vocabulary.includes(Math.floor(i / H));
        if (unusedRow) assert.equal(q.grad[i], 0, 'an unused row gets no gradient');
        else assert.ok(Math.abs(p.grad[i]! - q.grad[i]!) <= 1e-12 * Math.max(1, Math.abs(p.grad[i]!)), `${p.name}[${i}]`);
      }
    }
  });

  it('keeps unused rows zero through training, and refuses targets outside it', () => {
    const vocabulary = usedVocabulary([tokens]);
    const model = TrainableModel.random(TINY, 32);
    zeroUnusedRows(model, vocabulary);
    const opt = new AdamW(model.params(), { weightDecay: 0.1 });
    const first = lossOf(model, tokens, targets, { vocabulary });
    for (let step = 0; step < 10; step++) trainStep(model, opt, [{ tokens, targets }], 1e-2, 1, { vocabulary });
    assert.ok(lossOf(model, tokens, targets, { vocabulary }) < first);
    checkUnusedRowsZero(model, vocabulary);
    const outside = Int32Array.from(targets);
    outside[5] = 47;
    assert.throws(() => lossOf(model, tokens, outside, { vocabulary }), /47 at 5 is not in the used vocabulary/);
  });
});

suite('logits only where a target is', () => {
  it('gives the same loss and gradients, bit for bit, as every position\'s logits (with and without a used vocabulary)', () => {
    const sparse = nextTokenTargets(tokens, tokens.map((_, i) => i === 4 || i === 5 || i === 9));
    for (const vocabulary of [undefined, usedVocabulary([tokens])]) {
      const all = TrainableModel.random(TINY, 41);
      const rows = TrainableModel.random(TINY, 41);
      if (vocabulary !== undefined) {
        zeroUnusedRows(all, vocabulary);
        zeroUnusedRows(rows, vocabulary);
      }
      const everyRow = Int32Array.from(tokens.keys());
      const a = lossAndGradients(all, tokens, sparse, { logitRows: everyRow, ...(vocabulary !== undefined ? { vocabulary } : {}) });
      const b = lossAndGradients(rows, tokens, sparse, vocabulary !== undefined ? { vocabulary } : {});
      assert.deepEqual(Array.from(targetRows(sparse)!), [3, 4, 8]);
      assert.equal(forwardTrain(rows, tokens, { logitRows: targetRows(sparse)! }).logits.length, 3 * TINY.vocabSize);
      assert.equal(b.loss, a.loss);
      for (const p of all.params()) assert.deepEqual(rows.param(p.name).grad, p.grad, p.name);
    }
  });
});
