// The copying circuit gpt-oss-nano's initial model holds (src/train/nano/copying.ts): before any
// training, a model of the recipe's shape with the circuit repeats a list of numbers it has seen
// (o200k splits each number from its space, so only a two-token match can tell them apart), while
// the same model without it does not; the positional heads attend to their offsets; rows of tokens
// the model does not hold stay zero; the circuit is deterministic for a seed.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { seededRandom } from '../../src/random.ts';
import { getTokenizer } from '../../src/tokenizer/index.ts';
import { checkUnusedRowsZero, forwardTrain, usedVocabulary, zeroUnusedRows } from '../../src/train/model.ts';
import { NANO_CONFIG } from '../../src/train/nano/config.ts';
import { seedCopyingCircuit } from '../../src/train/nano/copying.ts';
import { TrainableModel } from '../../src/train/params.ts';

/** Token lists "n1 n2 ... nk\nn1 n2 ... nk" of seeded numbers (whole and with one decimal). */
function repeatedLists(count: number, seed: number): { tokens: number[]; copyFrom: number }[] {
  const tokenizer = getTokenizer();
  const random = seededRandom(seed);
  const number = (): string => String(random() < 0.7 ? Math.floor(random() * 1000) : Math.floor(random() * 100000) / 10);
  return Array.from({ length: count }, () => {
    const list = Array.from({ length: 8 + Math.floor(random() * 8) }, number).join(' ');
    const first = tokenizer.encode(`${list}\n`);
    return { tokens: [...first, ...tokenizer.encode(list)], copyFrom: first.length + 1 };
  });
}

/** Share of the second list's tokens (after its first) that the model predicts greedily. */
function copiedShare(model: TrainableModel, lists: { tokens: number[]; copyFrom: number }[], vocabulary: Int32Array): number {
  let right = 0, total = 0;
  for (const { tokens, copyFrom } of lists) {
    const tape = forwardTrain(model, tokens, { vocabulary, precision: 'f32' });
    const V = vocabulary.length;
    for (let t = copyFrom - 1; t < tokens.length - 1; t++) {
      const row = tape.logits.subarray(t * V, (t + 1) * V);
      let best = 0;
      for (let j = 1; j < V; j++) if (row[j]! > row[best]!) best = j;
      // A token the model does not hold has logit 0: the prediction counts only above it.
      if (vocabulary[best] === tokens[t + 1] && row[best]! > 0) right++;
      total++;
    }
  }
  return right / total;
}

function nanoModel(vocabulary: Int32Array, circuit: boolean): TrainableModel {
  const model = TrainableModel.random(NANO_CONFIG, 0);
  zeroUnusedRows(model, vocabulary, 'both');
  if (circuit) seedCopyingCircuit(model);
  return model;
}

describe('the copying circuit (gpt-oss-nano\'s initial model)', () => {
  const lists = repeatedLists(6, 3);
  const vocabulary = usedVocabulary(lists.map((l) => l.tokens));

  it('repeats a list of numbers before any training; the same model without it does not', () => {
    const withCircuit = copiedShare(nanoModel(vocabulary, true), lists, vocabulary);
    const without = copiedShare(nanoModel(vocabulary, false), lists, vocabulary);
    assert.ok(withCircuit >= 0.7, `with the circuit ${withCircuit}`);
    assert.ok(without <= 0.1, `without it ${without}`);
  });

  it('its positional heads attend to the previous token and the one before it', () => {
    const report = seedCopyingCircuit(nanoModel(vocabulary, false));
    assert.equal(report.codeDims, 10);
    assert.ok(report.previousTokenShare > 0.95, `offset 1: ${report.previousTokenShare}`);
    assert.ok(report.secondPreviousTokenShare > 0.95, `offset 2: ${report.secondPreviousTokenShare}`);
  });

  it('leaves the rows of tokens the model does not hold zero, and is the same for the same seed', () => {
    const a = nanoModel(vocabulary, true), b = nanoModel(vocabulary, true);
    assert.doesNotThrow(() => checkUnusedRowsZero(a, vocabulary));
    for (const [p, q] of a.params().map((p, i) => [p, b.params()[i]!] as const)) assert.deepEqual(p.value, q.value, p.name);
    const other = TrainableModel.random(NANO_CONFIG, 0);
    zeroUnusedRows(other, vocabulary, 'both');
    seedCopyingCircuit(other, { seed: 6 });
    assert.notDeepEqual(other.blocks[1]!.attn.qkvWeight.value, a.blocks[1]!.attn.qkvWeight.value);
  });

  it('refuses a model too small to hold it', () => {
    const model = TrainableModel.random({ ...NANO_CONFIG, numLayers: 1 }, 0);
    assert.throws(() => seedCopyingCircuit(model), /at least two layers/);
  });
});
