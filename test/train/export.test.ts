// Trained weights back to a servable checkpoint: BF16 rounding, MXFP4 quantisation (exact on
// values MXFP4 can hold, hand-checked codes, bounded error on random weights), an exact round trip
// through a golden checkpoint, and a trained model served by the engine after quantisation.
import { after, before, describe as suite, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createReferenceBackend } from '../../src/kernels/reference.ts';
import { dequantMxfp4Row, HeapStore } from '../../src/tensor/index.ts';
import { loadCheckpoint } from '../../src/checkpoint/checkpoint.ts';
import { contextLength } from '../../src/model/config.ts';
import { Transformer } from '../../src/model/forward.ts';
import { bf16Word, quantiseMxfp4, writeOriginalCheckpoint } from '../../src/train/export.ts';
import { forwardTrain, lossOf, nextTokenTargets } from '../../src/train/model.ts';
import { AdamW, learningRate, trainStep } from '../../src/train/optim.ts';
import { TrainableModel } from '../../src/train/params.ts';
import { goldenCases, maxAbsDiff } from '../model/golden-data.ts';
import { randomArray } from './gradcheck.ts';
import { TINY } from './tiny.ts';

function dequantised(blocks: Uint8Array, scales: Uint8Array, count: number, rows: number, cols: number): Float64Array {
  const out = new Float64Array(count * rows * cols);
  const row = new Float32Array(cols);
  for (let e = 0; e < count; e++) {
    for (let r = 0; r < rows; r++) {
      dequantMxfp4Row({ count, rows, cols, blocks, scales }, e, r, row);
      out.set(row, (e * rows + r) * cols);
    }
  }
  return out;
}

suite('BF16 and MXFP4 quantisation', () => {
  it('BF16 rounds to nearest, ties to even', () => {
    assert.equal(bf16Word(1), 0x3f80);
    assert.equal(bf16Word(1 + 2 ** -8), 0x3f80); // a tie: the even neighbour (1)
    assert.equal(bf16Word(1 + 3 * 2 ** -8), 0x3f82); // a tie: the even neighbour (1 + 2^-6)
    assert.equal(bf16Word(1 + 2 ** -8 + 2 ** -12), 0x3f81);
    assert.equal(bf16Word(-2), 0xc000);
  });

  it('MXFP4 codes and scales of a hand-checked group', () => {
    const group = new Float64Array(32);
    group.set([12, 6, -3, 1, 0.4, -0.6, 9]);
    const { blocks, scales } = quantiseMxfp4(group, 1, 1, 32);
    // amax 12: scale 2 (12/2 = 6) fits every value without clipping and beats scale 4 here.
    assert.equal(scales[0], 128);
    const values = dequantised(blocks, scales, 1, 1, 32);
    assert.deepEqual(Array.from(values.subarray(0, 7)), [12, 6, -3, 1, 0, -1, 8]);
    assert.ok(values.subarray(7).every((v) => v === 0));
  });

  it('values MXFP4 can hold come back exactly; random weights within a few percent', (t) => {
    const [count, rows, cols] = [2, 3, 64];
    const random = randomArray(count * rows * cols, 31, 0.05);
    const first = quantiseMxfp4(random, count, rows, cols);
    const grid = dequantised(first.blocks, first.scales, count, rows, cols);
    const again = quantiseMxfp4(grid, count, rows, cols);
    assert.deepEqual(dequantised(again.blocks, again.scales, count, rows, cols), grid);
    let err = 0, norm = 0;
    for (let i = 0; i < random.length; i++) {
      err += (grid[i]! - random[i]!) ** 2;
      norm += random[i]! ** 2;
    }
    const relative = Math.sqrt(err / norm);
    t.diagnostic(`MXFP4 relative RMS error on uniform weights: ${(relative * 100).toFixed(2)}%`);
    assert.ok(relative < 0.12, `relative error ${relative}`);
  });
});

suite('writing a checkpoint', () => {
  let tmp: string;
  before(() => {
    tmp = mkdtempSync(join(tmpdir(), 'gptoss-export-'));
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('a loaded golden checkpoint written back holds exactly the same weights', async () => {
    const c = goldenCases()[0]!;
    const original = TrainableModel.fromWeights((await loadCheckpoint(c.dir, new HeapStore())).weights);
    const dir = join(tmp, 'golden-copy');
    writeOriginalCheckpoint(original, dir);
    const copy = TrainableModel.fromWeights((await loadCheckpoint(dir, new HeapStore())).weights);
    for (const p of original.params()) assert.deepEqual(copy.param(p.name).value, p.value, p.name);
  });

  it('a trained model, quantised and loaded by the engine, still predicts its sequence', async (t) => {
    const model = TrainableModel.random(TINY, 2024);
    const tokens = [4, 19, 7, 30, 7, 12, 45, 19, 2, 30, 7, 12, 8, 41, 19, 4];
    const targets = nextTokenTargets(tokens);
    const opt = new AdamW(model.params(), { weightDecay: 0.01 });
    for (let step = 0; step < 40; step++) trainStep(model, opt, [{ tokens, targets }], learningRate(step, { peak: 1e-2, warmupSteps: 5, totalSteps: 40 }));
    const trainedLoss = lossOf(model, tokens, targets);
    const dir = join(tmp, 'trained');
    writeOriginalCheckpoint(model, dir);
    const { weights } = await loadCheckpoint(dir, new HeapStore());
    const quantised = TrainableModel.fromWeights(weights);
    const quantisedLoss = lossOf(quantised, tokens, targets);
    // The engine serves exactly the quantised model.
    const engine = new Transformer(weights, createReferenceBackend(), contextLength(TINY));
    const served = await engine.forward(engine.newCache(), tokens, { allLogits: true });
    const diff = maxAbsDiff(served, forwardTrain(quantised, tokens).logits);
    let correct = 0;
    for (let i = 0; i + 1 < tokens.length; i++) {
      const row = served.subarray(i * TINY.vocabSize, (i + 1) * TINY.vocabSize);
      if (row.indexOf(Math.max(...row)) === tokens[i + 1]) correct++;
    }
    t.diagnostic(`loss trained ${trainedLoss.toFixed(5)}, after BF16/MXFP4 ${quantisedLoss.toFixed(5)}; served vs training logits ${diff.toExponential(2)}; greedy next tokens right ${correct}/${tokens.length - 1}`);
    assert.ok(diff <= 1e-4, `served logits differ by ${diff}`);
    assert.equal(correct, tokens.length - 1);
    assert.ok(quantisedLoss < 0.1, `quantised loss ${quantisedLoss}`);
  });
});
