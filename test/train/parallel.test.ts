// Data-parallel training (train/parallel.ts): a step split over two threads gives the one-thread
// step's loss and gradients (float64 within 1e-12, f32 within 1e-5) for full training with a
// compact vocabulary and the router's balance loss, for an adapter on a frozen model, and with
// shared-prefix packing; the held-out loss split the same way; a fine-tune on two threads follows
// the one-thread run (tied embeddings staying tied), is reproducible bit for bit, and resumes a
// one-thread run's state (and the reverse); a worker's error comes back as one line and the step
// rejects instead of hanging.
import { after, before, describe as suite, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { evaluate, fineTune, planBatches } from '../../src/train/loop.ts';
import { freezeBase, LoraAdapters } from '../../src/train/lora.ts';
import { nextTokenTargets, usedVocabulary, zeroUnusedRows, type TrainOptions } from '../../src/train/model.ts';
import { AdamW, trainStep, type Sequence } from '../../src/train/optim.ts';
import { splitByTokens, TrainingThreads } from '../../src/train/parallel.ts';
import { compactVocabulary, TrainableModel, type Param } from '../../src/train/params.ts';
import { TINY } from './tiny.ts';

const texts = [
  [3, 14, 15, 9, 26, 5, 35, 8, 9, 7, 9, 32], [2, 7, 18, 28, 18, 28, 4], [1, 4, 1, 42, 13, 5, 6, 2, 3, 7],
  [30, 31, 32, 33, 34, 35], [11, 22, 33, 44, 45, 46, 47, 1, 2], [6, 12, 24, 36, 40],
];
const batch: Sequence[] = texts.map((tokens) => ({ tokens, targets: nextTokenTargets(tokens, tokens.map((_, i) => i >= 1)) }));
const vocabulary = usedVocabulary(texts);

const prefix = [1, 4, 9, 16, 25, 36, 2, 7, 14, 21, 28, 35, 3, 11, 19, 27, 43, 5];
/** `prefix` then `own`, the loss on `own` only: the sequences packing shares the prefix of. */
function prompted(own: readonly number[]): Sequence {
  const all = [...prefix, ...own];
  return { tokens: all, targets: nextTokenTargets(all, all.map((_, i) => i >= prefix.length)) };
}
const promptedBatch = [[6, 8, 10, 12, 30, 31], [44, 45, 46, 47, 1, 2, 3], [13, 17, 23, 29], [20, 22, 24, 26, 27]].map(prompted);

/** sqrt(sum (a-b)^2 / sum b^2): the relative error of a whole tensor. */
function relativeError(a: Float64Array, b: Float64Array): number {
  let diff = 0, norm = 0;
  for (let i = 0; i < a.length; i++) {
    diff += (a[i]! - b[i]!) ** 2;
    norm += b[i]! ** 2;
  }
  return norm === 0 ? Math.sqrt(diff) : Math.sqrt(diff / norm);
}

interface Setup {
  model: TrainableModel;
  options: TrainOptions;
  /** The parameters that train (the optimiser's). */
  params: Param[];
}

/** A full model (unused unembedding rows zero, for the vocabulary shortcut). */
function fullSetup(precision: 'f64' | 'f32', used = vocabulary): Setup {
  const model = TrainableModel.random(TINY, 11);
  zeroUnusedRows(model, used);
  return { model, options: { vocabulary: used, routerBalance: 0.01, precision }, params: model.params() };
}

/** A model trained from scratch: both tables compact. */
function compactSetup(precision: 'f64' | 'f32'): Setup {
  const source = TrainableModel.random(TINY, 12);
  zeroUnusedRows(source, vocabulary, 'both');
  const model = compactVocabulary(source, vocabulary);
  return { model, options: { routerBalance: 0.01, precision }, params: model.params() };
}

/** An adapter on every projection and the experts of a frozen model, its B non-zero (so A has a gradient). */
function loraSetup(precision: 'f64' | 'f32'): Setup {
  const model = TrainableModel.random(TINY, 13);
  freezeBase(model);
  const lora = new LoraAdapters(TINY, { rank: 4, alpha: 8, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_up_proj', 'down_proj'], seed: 2 });
  for (const p of lora.params()) if (p.name.includes('lora_B')) p.value.forEach((_, i) => { p.value[i] = Math.sin(i + p.value.length) * 0.05; });
  return { model, options: { lora, precision }, params: lora.params() };
}

/** An adapter with token rows (PEFT trainable tokens) for tokens whose base rows are zero, over the used vocabulary. */
function tokenRowsSetup(precision: 'f64' | 'f32'): Setup {
  const known = vocabulary.slice(0, -3);
  const model = TrainableModel.random(TINY, 14);
  zeroUnusedRows(model, known, 'both');
  freezeBase(model);
  const unknown = [...vocabulary.slice(-3)];
  const lora = new LoraAdapters(TINY, { rank: 4, alpha: 8, targets: ['q_proj', 'o_proj'], seed: 3, tokens: { embedding: unknown, unembedding: unknown } });
  for (const p of lora.params()) if (!p.name.includes('lora_A')) p.value.forEach((_, i) => { p.value[i] = Math.sin(i + p.value.length) * 0.05; });
  return { model, options: { lora, precision, vocabulary }, params: lora.params() };
}

/** The one-thread step and the two-thread step on twin setups: losses and every trained gradient. */
async function compareStep(make: () => Setup, sequences: readonly Sequence[], sharePrefix: boolean, tolerance: number): Promise<void> {
  const one = make();
  const two = make();
  // lr 0 and no clipping: the step leaves the weights alone and its gradients in place.
  const want = trainStep(one.model, new AdamW(one.params, { weightDecay: 0 }), sequences, 0, Infinity, one.options, sharePrefix);
  const pool = await TrainingThreads.start(two.model, 2, two.options);
  try {
    const got = await pool.step(new AdamW(two.params, { weightDecay: 0 }), sequences, 0, Infinity, two.options, sharePrefix);
    assert.ok(Math.abs(got.loss - want.loss) <= tolerance * want.loss, `loss ${got.loss} vs ${want.loss}`);
    assert.equal(got.counted, want.counted);
    assert.ok(Math.abs(got.gradNorm - want.gradNorm) <= tolerance * want.gradNorm, `gradient norm ${got.gradNorm} vs ${want.gradNorm}`);
    let compared = 0;
    one.params.forEach((p, i) => {
      if (!p.trainable) return;
      const error = relativeError(two.params[i]!.grad, p.grad);
      assert.ok(error <= tolerance, `${p.name}: relative gradient error ${error}`);
      compared++;
    });
    assert.ok(compared > 0);
    // The held-out loss, split the same way.
    const evalOptions = { ...two.options, routerBalance: 0 };
    const held = await pool.evaluate(sequences, evalOptions);
    const alone = evaluate(one.model, sequences, { ...one.options, routerBalance: 0 });
    assert.ok(Math.abs(held - alone) <= tolerance * alone, `eval loss ${held} vs ${alone}`);
  } finally {
    await pool.close();
  }
}

function modelError(a: TrainableModel, b: TrainableModel): number {
  return Math.max(...a.params().map((p) => relativeError(b.param(p.name).value, p.value)));
}

const runOptions = { epochs: 3, lr: 1e-2, batchTokens: 30, seed: 4, routerBalance: 0.01 };
let tmp: string;

suite('data-parallel training', () => {
  before(() => {
    tmp = mkdtempSync(join(tmpdir(), 'gptoss-parallel-'));
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('splits a batch into contiguous parts balanced by tokens', () => {
    const parts = splitByTokens(batch, 2);
    assert.deepEqual(parts.flat(), batch, 'every sequence once, in order');
    const tokens = parts.map((p) => p.reduce((n, s) => n + s.tokens.length, 0));
    assert.deepEqual(tokens, [29, 20], 'the third sequence\'s middle is before the half');
    assert.deepEqual(splitByTokens(batch.slice(0, 1), 2).map((p) => p.length), [1, 0], 'one sequence: the second part is empty');
    assert.deepEqual(splitByTokens(batch, 3).map((p) => p.length), [2, 2, 2]);
  });

  it('gives the one-thread step\'s loss and gradients: full training, float64 and f32', async () => {
    await compareStep(() => fullSetup('f64'), batch, false, 1e-12);
    await compareStep(() => fullSetup('f32'), batch, false, 1e-5);
  });

  it('gives the one-thread step\'s loss and gradients: compact vocabulary tables', async () => {
    await compareStep(() => compactSetup('f64'), batch, false, 1e-12);
    await compareStep(() => compactSetup('f32'), batch, false, 1e-5);
  });

  it('gives the one-thread step\'s loss and gradients: an adapter on a frozen model', async () => {
    await compareStep(() => loraSetup('f64'), batch, false, 1e-12);
    await compareStep(() => loraSetup('f32'), batch, false, 1e-5);
  });

  it('gives the one-thread step\'s loss and gradients: an adapter with token rows over the used vocabulary', async () => {
    await compareStep(() => tokenRowsSetup('f64'), batch, false, 1e-12);
    await compareStep(() => tokenRowsSetup('f32'), batch, false, 1e-5);
  });

  it('gives the one-thread step\'s loss and gradients with shared-prefix packing (a group cut in two packs on each side)', async () => {
    const noBalance = (): Setup => {
      const s = fullSetup('f64', usedVocabulary(promptedBatch.map((p) => p.tokens)));
      return { ...s, options: { ...s.options, routerBalance: 0 } };
    };
    await compareStep(noBalance, promptedBatch, true, 1e-12);
    const split = splitByTokens(promptedBatch, 2);
    assert.ok(split[0]!.length > 0 && split[1]!.length > 0, 'the one prefix group is divided between the threads');
  });

  it('a fine-tune on two threads follows the one-thread run and repeats itself bit for bit', async () => {
    const losses = (threads: number): Promise<{ model: TrainableModel; losses: number[] }> => {
      const model = TrainableModel.random(TINY, 21);
      zeroUnusedRows(model, vocabulary);
      const seen: number[] = [];
      return fineTune(model, batch, { ...runOptions, vocabulary, threads, evalExamples: batch.slice(0, 2), onProgress: (p) => seen.push(p.loss) })
        .then(() => ({ model, losses: seen }));
    };
    const one = await losses(1);
    const two = await losses(2);
    const again = await losses(2);
    assert.ok(one.losses.length >= 6, `${one.losses.length} steps`);
    two.losses.forEach((l, i) => assert.ok(Math.abs(l - one.losses[i]!) <= 1e-9 * one.losses[i]!, `step ${i + 1}: loss ${l} vs ${one.losses[i]}`));
    const error = modelError(one.model, two.model);
    assert.ok(error <= 1e-9, `weights after ${one.losses.length} steps: relative error ${error}`);
    assert.deepEqual(again.losses, two.losses);
    for (const p of two.model.params()) assert.deepEqual(again.model.param(p.name).value, p.value, p.name);
  });

  it('tied embeddings on two threads: the tables stay equal and follow the one-thread run', async () => {
    const run = async (threads: number): Promise<TrainableModel> => {
      const model = TrainableModel.random(TINY, 24);
      model.unembedding.value.set(model.embedding.value);
      await fineTune(model, batch, { ...runOptions, tiedEmbeddings: true, threads });
      return model;
    };
    const [one, two] = [await run(1), await run(2)];
    assert.deepEqual(two.unembedding.value, two.embedding.value);
    const error = modelError(one, two);
    assert.ok(error <= 1e-9, `relative error ${error}`);
  });

  it('a run saved on one thread resumes on two, and the reverse, ending where one thread ends', async () => {
    const fresh = (): TrainableModel => {
      const model = TrainableModel.random(TINY, 22);
      zeroUnusedRows(model, vocabulary);
      return model;
    };
    const options = { ...runOptions, vocabulary };
    const straight = fresh();
    const all = await fineTune(straight, batch, options);
    for (const [first, second] of [[1, 2], [2, 1]] as const) {
      const statePath = join(tmp, `run-${first}-${second}.safetensors`);
      const stopped = await fineTune(fresh(), batch, { ...options, threads: first, statePath, stopAfter: 3 });
      assert.equal(stopped.steps, 3);
      const resumed = TrainableModel.random(TINY, 99); // every trained value comes from the state
      zeroUnusedRows(resumed, vocabulary);
      const result = await fineTune(resumed, batch, { ...options, threads: second, statePath });
      assert.equal(result.resumedFrom, 3);
      assert.equal(result.steps, all.totalSteps);
      const error = modelError(straight, resumed);
      assert.ok(error <= 1e-9, `${first} then ${second} thread(s): relative error ${error}`);
    }
  });

  it('a worker\'s error rejects the step with one line, and the run with it', async () => {
    const model = TrainableModel.random(TINY, 23);
    const broken: Sequence[] = [...batch.slice(0, 3), { tokens: [1, 2, 999, 3], targets: nextTokenTargets([1, 2, 999, 3]) }];
    assert.deepEqual(splitByTokens(broken, 2)[1]!.at(-1), broken[3], 'the bad sequence is the worker\'s');
    const pool = await TrainingThreads.start(model, 2);
    try {
      await assert.rejects(pool.step(new AdamW(model.params()), broken, 1e-3, 1, {}, false), (e: unknown) => {
        assert.ok(e instanceof Error);
        assert.match(e.message, /^training thread 1 failed: forwardTrain: token id 999 at index 2 is outside the vocabulary$/);
        assert.equal(e.stack, `Error: ${e.message}`, 'printed, it is one line');
        return true;
      });
    } finally {
      await pool.close();
    }
    // A seed whose one batch ends with the bad sequence: the worker's part.
    const seed = [1, 2, 3, 4, 5, 6, 7, 8].find((s) => planBatches(broken.map((b) => b.tokens.length), 1000, 1, s)[0]!.at(-1) === 3)!;
    await assert.rejects(fineTune(TrainableModel.random(TINY, 23), broken, { epochs: 1, lr: 1e-3, batchTokens: 1000, seed, threads: 2 }),
      (e: unknown) => e instanceof Error && /^training thread 1 failed: forwardTrain: token id 999 at index 2 is outside the vocabulary$/.test(e.message));
  });
});
