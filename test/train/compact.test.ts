// Compact vocabulary tables: a model holding only its used vocabulary's embedding and
// unembedding rows trains exactly as the full-table model whose other rows are zero (same loss,
// gradients and updated weights), and exports the full tables with zero rows.
import { describe as suite, it } from 'node:test';
import assert from 'node:assert/strict';
import { checkpointTensors } from '../../src/train/export.ts';
import { forwardTrain, lossAndGradients, nextTokenTargets, usedVocabulary, zeroUnusedRows } from '../../src/train/model.ts';
import { AdamW, trainStep } from '../../src/train/optim.ts';
import { compactVocabulary, TrainableModel } from '../../src/train/params.ts';
import { TINY } from './tiny.ts';

const H = TINY.hiddenSize;
const first = [3, 14, 15, 9, 26, 5, 35, 8, 9, 7, 9, 32];
const second = [3, 14, 40, 2, 26, 5, 11, 8];
const batch = [first, second].map((tokens) => ({ tokens, targets: nextTokenTargets(tokens, tokens.map((_, i) => i >= 3)) }));
const vocabulary = usedVocabulary(batch.map((s) => s.tokens));

function models(seed: number): { full: TrainableModel; compact: TrainableModel } {
  const full = TrainableModel.random(TINY, seed);
  zeroUnusedRows(full, vocabulary, 'both');
  const source = TrainableModel.random(TINY, seed);
  zeroUnusedRows(source, vocabulary, 'both');
  return { full, compact: compactVocabulary(source, vocabulary) };
}

/** `compact`'s value (or gradient) of `name` as the full model lays it out. */
function widened(compact: TrainableModel, name: string, which: 'value' | 'grad'): Float64Array {
  const p = compact.param(name);
  if (p !== compact.embedding && p !== compact.unembedding) return p[which];
  const out = new Float64Array(TINY.vocabSize * H);
  vocabulary.forEach((id, i) => out.set(p[which].subarray(i * H, (i + 1) * H), id * H));
  return out;
}

function assertClose(a: Float64Array, b: Float64Array, what: string): void {
  assert.equal(a.length, b.length, what);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= 1e-12 * Math.max(1, Math.abs(a[i]!)), `${what}[${i}]: ${a[i]} vs ${b[i]}`);
}

suite('compact vocabulary', () => {
  it('holds only the used rows', () => {
    const { compact } = models(5);
    assert.deepEqual(compact.embedding.shape, [vocabulary.length, H]);
    assert.deepEqual(compact.unembedding.shape, [vocabulary.length, H]);
    assert.equal(compact.tableRow(vocabulary[2]!), 2);
    assert.equal(compact.tableRow(0), vocabulary.includes(0) ? 0 : -1);
  });

  it('gives the full tables\' loss and gradients, and the same AdamW updates, step after step', () => {
    const { full, compact } = models(7);
    const fullOpt = new AdamW(full.params(), { weightDecay: 0.1 });
    const compactOpt = new AdamW(compact.params(), { weightDecay: 0.1 });
    for (let step = 0; step < 3; step++) {
      const a = trainStep(full, fullOpt, batch, 1e-2, 1, { vocabulary });
      const b = trainStep(compact, compactOpt, batch, 1e-2, 1);
      assert.ok(Math.abs(a.loss - b.loss) <= 1e-12, `step ${step}: loss ${a.loss} vs ${b.loss}`);
      assert.ok(Math.abs(a.gradNorm - b.gradNorm) <= 1e-12 * a.gradNorm, `step ${step}: gradient norm`);
      for (const p of full.params()) {
        assertClose(p.grad, widened(compact, p.name, 'grad'), `step ${step} grad ${p.name}`);
        assertClose(p.value, widened(compact, p.name, 'value'), `step ${step} value ${p.name}`);
      }
    }
    // The unused rows of the full model stayed exactly zero: the compact one lost nothing.
    const used = new Set(vocabulary);
    for (let id = 0; id < TINY.vocabSize; id++) {
      if (used.has(id)) continue;
      for (const table of [full.embedding, full.unembedding]) assert.ok(table.value.subarray(id * H, (id + 1) * H).every((x) => x === 0), `${table.name} row ${id}`);
    }
  });

  it('matches on the f32 kernels too', () => {
    const { full, compact } = models(8);
    const a = lossAndGradients(full, first, batch[0]!.targets, { vocabulary, precision: 'f32' });
    const b = lossAndGradients(compact, first, batch[0]!.targets, { precision: 'f32' });
    assert.ok(Math.abs(a.loss - b.loss) <= 1e-12, `${a.loss} vs ${b.loss}`);
  });

  it('exports full tables, zero outside the vocabulary', () => {
    const { compact } = models(9);
    const tensors = checkpointTensors(compact);
    for (const name of ['embedding.weight', 'unembedding.weight']) {
      const t = tensors.find((x) => x.name === name)!;
      assert.deepEqual(t.shape, [TINY.vocabSize, H], name);
      const words = t.data as Uint16Array;
      const row = (id: number): Uint16Array => words.subarray(id * H, (id + 1) * H);
      const unused = [...Array(TINY.vocabSize).keys()].find((id) => !vocabulary.includes(id))!;
      assert.ok(row(unused).every((w) => w === 0), `${name}: an unused row is zero`);
      assert.ok(row(vocabulary[0]!).some((w) => w !== 0), `${name}: a used row is written`);
    }
  });

  it('refuses a token outside it and a model whose other rows are not zero', () => {
    const { compact } = models(10);
    const outside = [...Array(TINY.vocabSize).keys()].find((id) => !vocabulary.includes(id))!;
    assert.throws(() => forwardTrain(compact, [3, outside]), /outside the model's compact vocabulary/);
    assert.throws(() => compactVocabulary(TrainableModel.random(TINY, 1), vocabulary), /embedding.weight row \d+ is outside the compact vocabulary but is not zero/);
  });
});
