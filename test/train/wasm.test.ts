// The f32 WebAssembly training kernels against the float64 reference: each matrix product on
// ragged shapes (dimensions that are not multiples of the SIMD width or the register tiles), the
// attention and expert layers built on them, a whole training step's loss and gradients, and a
// fine-tuning run that learns as the float64 one does.
import { describe as suite, it } from 'node:test';
import assert from 'node:assert/strict';
import { evaluate, fineTune } from '../../src/train/loop.ts';
import { linearKernels, lossAndGradients, nextTokenTargets } from '../../src/train/model.ts';
import {
  attentionBackward, attentionForward, expertsBackward, expertsForward, F64_LINEAR, linearBackward, linearForward, routeForward,
  type LinearKernels, type PackedLayout,
} from '../../src/train/ops.ts';
import { freezeBase, LoraAdapters } from '../../src/train/lora.ts';
import { TrainableModel } from '../../src/train/params.ts';
import { randomArray } from './gradcheck.ts';
import { TINY } from './tiny.ts';

const f32 = linearKernels('f32');

/** Largest |a - b| / (1 + |b|): f32 rounding of sums of up to a few hundred terms of size ~1 stays well under 1e-5. */
function worstError(a: Float64Array, b: Float64Array): number {
  assert.equal(a.length, b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!) / (1 + Math.abs(b[i]!)));
  return worst;
}

/** ||a - b|| / ||b||. */
function relativeError(a: Float64Array, b: Float64Array): number {
  let diff = 0, norm = 0;
  for (let i = 0; i < a.length; i++) {
    diff += (a[i]! - b[i]!) ** 2;
    norm += b[i]! ** 2;
  }
  return Math.sqrt(diff / norm);
}

// [tokens, rows, cols]: ones, below one vector, odd everywhere, tile edges +-1, and one large
// enough to grow the kernels' memory past its first megabyte.
const SHAPES: [number, number, number][] = [[1, 1, 1], [3, 5, 7], [2, 4, 8], [5, 9, 13], [4, 3, 9], [17, 6, 33], [9, 11, 130], [1, 257, 5], [1100, 7, 300]];

suite('f32 WebAssembly training kernels equal the float64 ones', () => {
  it('selects the wasm kernels for f32 and the reference for f64', () => {
    assert.equal(f32.precision, 'f32');
    assert.equal(linearKernels('f64'), F64_LINEAR);
    assert.equal(linearKernels(), F64_LINEAR);
  });

  for (const [tokens, rows, cols] of SHAPES) {
    it(`linear forward and backward, tokens ${tokens}, rows ${rows}, cols ${cols}`, () => {
      const seed = tokens * 1000 + rows * 10 + cols;
      const x = randomArray(tokens * cols, seed), w = randomArray(rows * cols, seed + 1), bias = randomArray(rows, seed + 2);
      for (const b of [bias, null]) {
        const got = f32.forward(x, tokens, w, rows, cols, b);
        const want = linearForward(x, tokens, w, rows, cols, b);
        assert.ok(worstError(got, want) < 1e-5, `forward${b === null ? '' : ' with bias'}: ${worstError(got, want)}`);
      }
      // Backward adds into what the gradients already hold.
      const dy = randomArray(tokens * rows, seed + 3);
      const start = { dx: randomArray(tokens * cols, seed + 4), dw: randomArray(rows * cols, seed + 5), db: randomArray(rows, seed + 6) };
      const got = { dx: start.dx.slice(), dw: start.dw.slice(), db: start.db.slice() };
      const want = { dx: start.dx.slice(), dw: start.dw.slice(), db: start.db.slice() };
      f32.backward(dy, x, tokens, w, rows, cols, got.dx, got.dw, got.db);
      linearBackward(dy, x, tokens, w, rows, cols, want.dx, want.dw, want.db);
      for (const key of ['dx', 'dw', 'db'] as const) assert.ok(worstError(got[key], want[key]) < 1e-5, `${key}: ${worstError(got[key], want[key])}`);
      // Each gradient alone (the others not wanted) is the same.
      const dxOnly = start.dx.slice();
      f32.backward(dy, x, tokens, w, rows, cols, dxOnly, null, null);
      assert.ok(worstError(dxOnly, want.dx) < 1e-5);
      const dwOnly = start.dw.slice();
      f32.backward(dy, x, tokens, w, rows, cols, null, dwOnly, null);
      assert.ok(worstError(dwOnly, want.dw) < 1e-5);
    });
  }

  it('rounds to f32: results differ from float64 in the last bits, not more', () => {
    const x = randomArray(6 * 37, 1), w = randomArray(5 * 37, 2);
    const got = f32.forward(x, 6, w, 5, 37, null);
    const want = linearForward(x, 6, w, 5, 37, null);
    assert.ok(got.some((g, i) => g !== want[i]), 'some entry carries f32 rounding');
    assert.ok(got.every((g) => Math.fround(g) === g), 'every result is an f32 value');
  });

  // Long enough for several query blocks; packed behind a 70-token prefix, two segments of 40 (the second straddling a block edge).
  const segmentStart = Int32Array.from({ length: 150 }, (_, t) => (t < 70 ? 0 : t < 110 ? 70 : 110));
  const packed: PackedLayout = { prefix: 70, segmentStart };
  for (const [window, layout] of [[3, undefined], [0, undefined], [40, packed], [0, packed]] as const) {
    it(`attention as matrix products (${window === 0 ? 'dense' : `window ${window}`}${layout === undefined ? '' : ', packed behind a prefix'}, GQA 4:2, ragged head size): float64 products equal the loops, f32 within rounding`, () => {
      const T = 150, shape = { heads: 4, kvHeads: 2, headDim: 6, window };
      const q = randomArray(T * 4 * 6, 20), k = randomArray(T * 2 * 6, 21), v = randomArray(T * 2 * 6, 22), sinks = randomArray(4, 23, 1.5);
      const dout = randomArray(T * 4 * 6, 24);
      const run = (linear?: LinearKernels) => {
        const { out, saved } = attentionForward(q, k, v, T, sinks, shape, linear, layout);
        const dq = new Float64Array(q.length), dk = new Float64Array(k.length), dv = new Float64Array(v.length), ds = new Float64Array(4);
        attentionBackward(dout, q, k, v, T, shape, saved, dq, dk, dv, ds, linear, layout);
        return { out, sinkProbs: saved.sinkProbs, dq, dk, dv, ds };
      };
      const loops = run();
      const products = run(F64_LINEAR);
      const wasm = run(f32);
      for (const key of ['out', 'sinkProbs', 'dq', 'dk', 'dv', 'ds'] as const) {
        assert.ok(worstError(products[key], loops[key]) < 1e-13, `${key} (f64 products): ${worstError(products[key], loops[key])}`);
        assert.ok(worstError(wasm[key], loops[key]) < 1e-5, `${key} (f32): ${worstError(wasm[key], loops[key])}`);
      }
    });
  }

  it('experts batched per expert on the f32 kernels, forward and backward', () => {
    const T = 9, E = 4, k = 2, H = 10, I = 7, limit = 7;
    const p = { w1: randomArray(E * 2 * I * H, 30, 0.3), b1: randomArray(E * 2 * I, 31, 0.1), w2: randomArray(E * H * I, 32, 0.3), b2: randomArray(E * H, 33, 0.1), experts: E, hidden: H, intermediate: I };
    const x = randomArray(T * H, 34);
    const { indices, weights } = routeForward(randomArray(T * E, 35), T, E, k);
    const dout = randomArray(T * H, 36);
    const run = (linear: LinearKernels) => {
      const { out, saved } = expertsForward(x, T, indices, weights, k, p, limit, linear);
      const dx = new Float64Array(T * H), dweights = new Float64Array(T * k);
      const grads = { w1: new Float64Array(p.w1.length), b1: new Float64Array(p.b1.length), w2: new Float64Array(p.w2.length), b2: new Float64Array(p.b2.length) };
      expertsBackward(dout, x, T, indices, weights, k, p, limit, saved, dx, dweights, grads, linear);
      return { out, dx, dweights, ...grads };
    };
    const want = run(F64_LINEAR);
    const got = run(f32);
    for (const key of ['out', 'dx', 'dweights', 'w1', 'b1', 'w2', 'b2'] as const) assert.ok(worstError(got[key], want[key]) < 1e-5, `${key}: ${worstError(got[key], want[key])}`);
  });
});

suite('training in f32 on the WebAssembly kernels', () => {
  it('a whole training step: loss within 1e-6 and every gradient within 1e-4 (relative) of float64', (t) => {
    const tokens = [3, 14, 15, 9, 26, 5, 35, 8, 9, 7, 9, 3, 2, 38];
    const targets = nextTokenTargets(tokens);
    const vocabulary = Int32Array.from(new Set(tokens)).sort();
    const run = (precision: 'f64' | 'f32') => {
      const model = TrainableModel.random(TINY, 21);
      for (let id = 0; id < TINY.vocabSize; id++) if (!vocabulary.includes(id)) model.unembedding.value.fill(0, id * TINY.hiddenSize, (id + 1) * TINY.hiddenSize);
      const { loss } = lossAndGradients(model, tokens, targets, { vocabulary, routerBalance: 0.01, precision });
      return { model, loss };
    };
    const want = run('f64');
    const got = run('f32');
    assert.ok(Math.abs(got.loss - want.loss) / want.loss < 1e-6, `loss ${got.loss} vs ${want.loss}`);
    let worst = 0;
    for (const p of want.model.params()) {
      const g = got.model.param(p.name).grad;
      if (p.grad.every((v) => v === 0)) {
        assert.ok(g.every((v) => v === 0), `${p.name}: a gradient where float64 has none`);
        continue;
      }
      const error = relativeError(g, p.grad);
      worst = Math.max(worst, error);
      assert.ok(error < 1e-4, `${p.name}: relative gradient error ${error}`);
    }
    t.diagnostic(`worst relative gradient error over all tensors: ${worst.toExponential(2)}`);
  });

  it('a LoRA step on a frozen base: the adapters\' gradients within 1e-4 (relative) of float64', () => {
    const tokens = [7, 1, 30, 22, 4, 4, 19, 40, 11];
    const targets = nextTokenTargets(tokens);
    const run = (precision: 'f64' | 'f32') => {
      const model = TrainableModel.random(TINY, 8);
      freezeBase(model);
      const lora = new LoraAdapters(TINY, { rank: 3, alpha: 6, seed: 2 });
      // B starts at zero (no gradient reaches A then): give it values so both matrices train.
      lora.params().forEach((p, i) => {
        if (p.value.every((v) => v === 0)) p.value.set(randomArray(p.value.length, 90 + i, 0.2));
      });
      const { loss } = lossAndGradients(model, tokens, targets, { lora, precision });
      return { lora, loss };
    };
    const want = run('f64');
    const got = run('f32');
    assert.ok(Math.abs(got.loss - want.loss) / want.loss < 1e-6, `loss ${got.loss} vs ${want.loss}`);
    const gotParams = got.lora.params();
    want.lora.params().forEach((p, i) => {
      const error = relativeError(gotParams[i]!.grad, p.grad);
      assert.ok(error < 1e-4, `${p.name}: relative gradient error ${error}`);
    });
  });

  it('fine-tuning learns its examples as the float64 run does (same seed, losses within 1%)', async () => {
    const texts = [[1, 5, 9, 13, 17, 21], [2, 6, 10, 14], [3, 7, 11, 15, 19, 23, 27, 31], [4, 8, 12]];
    const examples = texts.map((tokens) => ({ tokens, targets: nextTokenTargets(tokens) }));
    const train = async (precision: 'f64' | 'f32') => {
      const model = TrainableModel.random(TINY, 3);
      const before = evaluate(model, examples, { precision });
      await fineTune(model, examples, { epochs: 25, lr: 1e-2, batchTokens: 12, seed: 1, precision });
      return { before, after: evaluate(model, examples) };
    };
    const f64 = await train('f64');
    const f32run = await train('f32');
    assert.ok(f32run.after < 0.1 * f32run.before, `f32: loss ${f32run.before} -> ${f32run.after}`);
    assert.ok(Math.abs(f32run.after - f64.after) < 0.01 * f64.before, `f32 ends at ${f32run.after}, float64 at ${f64.after}`);
  });
});
