// Tied embeddings (`finetune --full --tie-embeddings`): the embedding and unembedding trained as
// one table. The gradient of the shared table is the sum of both tables' gradients (checked by
// finite differences moving both together), the tables stay equal through training and through an
// interrupted run's resume, and a model whose tables differ is refused.
import { after, before, describe as suite, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UserError } from '../../src/errors.ts';
import { parseSettings } from '../../src/cli/finetune.ts';
import { evaluate, fineTune } from '../../src/train/loop.ts';
import { lossAndGradients, lossOf, nextTokenTargets } from '../../src/train/model.ts';
import { TrainableModel } from '../../src/train/params.ts';
import { checkGradient, describe, someIndices } from './gradcheck.ts';
import { runCli } from '../cli/in-process.ts';
import { TINY } from './tiny.ts';

const texts = [[1, 5, 9, 13, 17, 21, 5, 9], [2, 6, 10, 14, 2, 6], [3, 7, 11, 15, 19, 23, 27, 31], [4, 8, 12, 4, 8]];
const examples = texts.map((tokens) => ({ tokens, targets: nextTokenTargets(tokens) }));

function tiedModel(seed: number): TrainableModel {
  const model = TrainableModel.random(TINY, seed);
  model.tieVocabularyTables();
  return model;
}

let tmp: string;

suite('tied embeddings', () => {
  before(() => {
    tmp = mkdtempSync(join(tmpdir(), 'gptoss-tied-'));
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('the shared table\'s gradient is the sum of the two tables\' (finite differences moving both)', () => {
    const model = tiedModel(3);
    const { tokens, targets } = examples[2]!;
    model.zeroGrad();
    lossAndGradients(model, tokens, targets);
    const shared = model.embedding.grad.map((g, i) => g + model.unembedding.grad[i]!);
    const table = model.embedding.value;
    const mirror = model.unembedding.value;
    // A loss of the one table: the unembedding follows every perturbation of the embedding.
    const loss = (): number => {
      mirror.set(table);
      return lossOf(model, tokens, targets);
    };
    // Rows of tokens that occur, where both uses contribute.
    const rows = [...new Set(tokens)].flatMap((id) => someIndices(TINY.hiddenSize, 4, id).map((j) => id * TINY.hiddenSize + j));
    const r = checkGradient(loss, table, shared, rows);
    assert.ok(r.worst < 1e-6, describe(r));
    // Neither table's gradient alone is the shared one.
    const embeddingOnly = checkGradient(loss, table, model.embedding.grad, rows);
    assert.ok(embeddingOnly.worst > 1e-3, 'the unembedding use contributes');
  });

  it('keeps the two tables equal while it trains, and learns', async () => {
    const model = tiedModel(5);
    const before = evaluate(model, examples);
    const result = await fineTune(model, examples, { epochs: 20, lr: 1e-2, batchTokens: 16, seed: 1, tiedEmbeddings: true });
    assert.deepEqual(model.unembedding.value, model.embedding.value);
    const afterLoss = evaluate(model, examples);
    assert.ok(afterLoss < 0.2 * before, `loss ${before} -> ${afterLoss} over ${result.steps} steps`);
    // Untied, the same start ends with different tables.
    const untied = tiedModel(5);
    await fineTune(untied, examples, { epochs: 2, lr: 1e-2, batchTokens: 16, seed: 1 });
    assert.notDeepEqual(untied.unembedding.value, untied.embedding.value);
  });

  it('an interrupted tied run resumes to the same weights as an uninterrupted one', async () => {
    const options = { epochs: 6, lr: 1e-2, batchTokens: 12, seed: 4, tiedEmbeddings: true };
    const straight = tiedModel(7);
    await fineTune(straight, examples, options);
    const statePath = join(tmp, 'tied.safetensors');
    await fineTune(tiedModel(7), examples, { ...options, statePath, stopAfter: 3, saveEvery: 1 });
    const resumed = tiedModel(99);
    const second = await fineTune(resumed, examples, { ...options, statePath });
    assert.equal(second.resumedFrom, 3);
    for (const p of straight.params()) assert.deepEqual(resumed.param(p.name).value, p.value, p.name);
  });

  it('refuses a model whose tables differ, and the flag without --full', async () => {
    await assert.rejects(fineTune(TrainableModel.random(TINY, 5), examples, { epochs: 1, lr: 1e-2, batchTokens: 16, seed: 1, tiedEmbeddings: true }), (e: unknown) => {
      assert.ok(e instanceof UserError);
      assert.match(e.message, /embedding and unembedding tables are equal/);
      return true;
    });
    assert.throws(() => parseSettings(['--data', 'x.jsonl', '--out', 'o', '--tie-embeddings']), /--tie-embeddings goes with --full/);
    const s = parseSettings(['--data', 'x.jsonl', '--out', 'o', '--full', '--tie-embeddings']);
    assert.ok(s !== 'help' && s.tieEmbeddings);
  });

  // The nano experiment (docs/training.md, *Tied embeddings*) found tying no help with copying
  // numbers, so the help says what the flag does and promises no effect on learning.
  it('finetune --help describes the flag by what it does, without a claim about what a model learns', async () => {
    const r = await runCli(['finetune', '--help']);
    assert.equal(r.code, 0);
    const entry = /\n {2}--tie-embeddings {3}([^]*?)\n {2}--/.exec(r.stdout)?.[1].replace(/\s+/g, ' ');
    assert.ok(entry !== undefined, r.stdout);
    assert.match(entry, /with --full, train the embedding and unembedding as one table/);
    assert.match(entry, /sum of both tables' gradients/);
    assert.match(entry, /must start equal/);
    assert.doesNotMatch(entry, /sooner|faster|better|copy|rare|numbers/i);
  });
});
