// Each training op's backward against central finite differences in float64, on tiny shapes:
// linear, RMSNorm, YaRN RoPE, attention with sinks (banded and dense, GQA), top-k routing,
// the clamped SwiGLU, the experts and the masked cross-entropy.
import { describe as suite, it } from 'node:test';
import assert from 'node:assert/strict';
import { buildRopeTable } from '../../src/model/rope.ts';
import {
  attentionBackward, attentionForward, crossEntropy, expertsBackward, expertsForward, IGNORE_TARGET, linearBackward,
  loadBalancingBackward, loadBalancingForward,
  linearForward, ropeApply, rmsnormBackward, rmsnormForward, routeBackward, routeForward, swigluBackward, swigluForward,
  type ExpertParams,
} from '../../src/train/ops.ts';
import { allIndices, checkGradient, describe, project, randomArray } from './gradcheck.ts';
import { TINY } from './tiny.ts';

/** Ops are smooth away from the clamp and the top-k boundary: float64 differences agree to ~1e-8. */
const BOUND = 1e-6;

function expectClose(t: { diagnostic(m: string): void }, label: string, r: ReturnType<typeof checkGradient>): void {
  t.diagnostic(`${label}: ${describe(r)}`);
  assert.ok(r.worst <= BOUND, `${label}: ${describe(r)}`);
}

suite('training ops: backward equals finite differences', () => {
  it('linear: x, weight and bias', (t) => {
    const T = 3, rows = 4, cols = 5;
    const x = randomArray(T * cols, 1), w = randomArray(rows * cols, 2), b = randomArray(rows, 3);
    const R = randomArray(T * rows, 4);
    const loss = () => project(linearForward(x, T, w, rows, cols, b), R);
    const dx = new Float64Array(x.length), dw = new Float64Array(w.length), db = new Float64Array(b.length);
    linearBackward(R, x, T, w, rows, cols, dx, dw, db);
    expectClose(t, 'linear dx', checkGradient(loss, x, dx, allIndices(x.length)));
    expectClose(t, 'linear dw', checkGradient(loss, w, dw, allIndices(w.length)));
    expectClose(t, 'linear db', checkGradient(loss, b, db, allIndices(b.length)));
  });

  it('RMSNorm: x and scale', (t) => {
    const T = 3, width = 8;
    const x = randomArray(T * width, 5, 2), scale = randomArray(width, 6, 0.3, 1);
    const R = randomArray(T * width, 7);
    const loss = () => project(rmsnormForward(x, T, scale, 1e-5).out, R);
    const { inv } = rmsnormForward(x, T, scale, 1e-5);
    const dx = new Float64Array(x.length), dscale = new Float64Array(width);
    rmsnormBackward(R, x, T, scale, inv, dx, dscale);
    expectClose(t, 'rmsnorm dx', checkGradient(loss, x, dx, allIndices(x.length)));
    expectClose(t, 'rmsnorm dscale', checkGradient(loss, scale, dscale, allIndices(width)));
  });

  it('YaRN RoPE: the inverse rotation is the backward', (t) => {
    const T = 6, heads = 2, hd = TINY.headDim;
    const table = buildRopeTable(TINY, T);
    const x = randomArray(T * heads * hd, 8);
    const R = randomArray(x.length, 9);
    const loss = () => {
      const y = x.slice();
      ropeApply(y, T, heads, hd, table);
      return project(y, R);
    };
    const dx = R.slice();
    ropeApply(dx, T, heads, hd, table, true);
    expectClose(t, 'rope dx', checkGradient(loss, x, dx, allIndices(x.length)));
    // Position 0 does not rotate: only YaRN's concentration scales it.
    const y = x.slice();
    ropeApply(y, T, heads, hd, table);
    assert.ok(table.cos[0]! > 1, 'concentration above 1 with a YaRN factor');
    assert.ok(Math.abs(y[0]! - x[0]! * table.cos[0]!) < 1e-12);
  });

  for (const window of [3, 0]) {
    it(`attention with sinks (${window === 0 ? 'dense' : `banded, window ${window}`}, GQA 4:2): q, k, v, sinks`, (t) => {
      const T = 7, shape = { heads: 4, kvHeads: 2, headDim: 8, window };
      const q = randomArray(T * 4 * 8, 10), k = randomArray(T * 2 * 8, 11), v = randomArray(T * 2 * 8, 12);
      const sinks = randomArray(4, 13, 1.5);
      const R = randomArray(T * 4 * 8, 14);
      const loss = () => project(attentionForward(q, k, v, T, sinks, shape).out, R);
      const { saved } = attentionForward(q, k, v, T, sinks, shape);
      const dq = new Float64Array(q.length), dk = new Float64Array(k.length), dv = new Float64Array(v.length), ds = new Float64Array(4);
      attentionBackward(R, q, k, v, T, shape, saved, dq, dk, dv, ds);
      expectClose(t, 'attention dq', checkGradient(loss, q, dq, allIndices(q.length)));
      expectClose(t, 'attention dk', checkGradient(loss, k, dk, allIndices(k.length)));
      expectClose(t, 'attention dv', checkGradient(loss, v, dv, allIndices(v.length)));
      expectClose(t, 'attention dsinks', checkGradient(loss, sinks, ds, allIndices(4)));
      // The mask: a query sees itself and the window-1 keys before it (all before it when dense);
      // the weights plus the sink's share sum to 1.
      for (let tq = 0; tq < T; tq++) {
        for (let h = 0; h < 4; h++) {
          let sum = saved.sinkProbs[tq * 4 + h]!;
          for (let s = 0; s < T; s++) {
            const p = saved.probs[(tq * 4 + h) * T + s]!;
            const seen = s <= tq && (window === 0 || tq - s < window);
            assert.equal(p > 0, seen, `query ${tq} key ${s}`);
            sum += p;
          }
          assert.ok(Math.abs(sum - 1) < 1e-12);
        }
      }
    });
  }

  it('top-k router: softmax over the chosen logits', (t) => {
    const T = 5, E = 6, k = 3;
    const gate = randomArray(T * E, 15, 3);
    const R = randomArray(T * k, 16);
    const { indices, weights } = routeForward(gate, T, E, k);
    const loss = () => {
      const r = routeForward(gate, T, E, k);
      assert.deepEqual(r.indices, indices, 'a finite-difference step changed the routing');
      return project(r.weights, R);
    };
    const dgate = new Float64Array(gate.length);
    routeBackward(R, indices, weights, T, E, k, dgate);
    expectClose(t, 'router dgate', checkGradient(loss, gate, dgate, allIndices(gate.length)));
    for (let tk = 0; tk < T; tk++) {
      const chosen = new Set(Array.from(indices.subarray(tk * k, (tk + 1) * k)));
      for (let e = 0; e < E; e++) if (!chosen.has(e)) assert.equal(dgate[tk * E + e], 0, 'an unchosen expert gets no gradient');
    }
  });

  it('router load balancing: gradient through the mean probabilities, k when uniform', (t) => {
    const T = 5, E = 6, k = 2;
    const gates = [randomArray(T * E, 40, 2), randomArray(T * E, 41, 2)];
    const indices = gates.map((g) => routeForward(g, T, E, k).indices);
    const loss = () => loadBalancingForward(gates, indices, T, E, k).loss;
    const { saved } = loadBalancingForward(gates, indices, T, E, k);
    const dgates = [new Float64Array(T * E), new Float64Array(T * E)];
    loadBalancingBackward(saved, 1, T, E, dgates);
    expectClose(t, 'balance dgate layer 0', checkGradient(loss, gates[0]!, dgates[0]!, allIndices(T * E)));
    expectClose(t, 'balance dgate layer 1', checkGradient(loss, gates[1]!, dgates[1]!, allIndices(T * E)));
    // Equal logits and every expert chosen equally often: E * sum_e (k/E) * (1/E) = k.
    const flat = [new Float64Array(3 * 3)];
    const even = [new Int32Array([0, 1, 1, 2, 2, 0])];
    assert.ok(Math.abs(loadBalancingForward(flat, even, 3, 3, 2).loss - 2) < 1e-15);
  });

  it('clamped SwiGLU: both halves, clamped entries get no gradient', (t) => {
    const limit = 7;
    // Values on both sides of the clamp, kept clear of the kinks at +-limit.
    const h = randomArray(40, 17, 12).map((v) => (Math.abs(Math.abs(v) - limit) < 0.1 ? v + 0.5 : v));
    const R = randomArray(20, 18);
    const loss = () => project(swigluForward(h, limit), R);
    const dh = new Float64Array(h.length);
    swigluBackward(R, h, limit, dh);
    expectClose(t, 'swiglu dh', checkGradient(loss, h, dh, allIndices(h.length)));
    let clampedGlu = 0, clampedLin = 0;
    for (let i = 0; i < 20; i++) {
      if (h[2 * i]! > limit) { clampedGlu++; assert.equal(dh[2 * i], 0); }
      if (Math.abs(h[2 * i + 1]!) > limit) { clampedLin++; assert.equal(dh[2 * i + 1], 0); }
    }
    assert.ok(clampedGlu > 0 && clampedLin > 0, 'the sample exercises both clamps');
    // The +1 on the linear half: lin = 0 passes the gated half through unchanged.
    const a = swigluForward(new Float64Array([2, 0]), limit);
    assert.ok(Math.abs(a[0]! - 2 / (1 + Math.exp(-1.702 * 2))) < 1e-15);
  });

  it('experts: input, routing weights and every expert tensor', (t) => {
    const T = 3, H = 8, I = 6, E = 3, k = 2, limit = 1.0; // a low limit so the clamp is active
    const p: ExpertParams = {
      w1: randomArray(E * 2 * I * H, 19, 0.8), b1: randomArray(E * 2 * I, 20, 0.5),
      w2: randomArray(E * H * I, 21, 0.5), b2: randomArray(E * H, 22, 0.5),
      experts: E, hidden: H, intermediate: I,
    };
    const x = randomArray(T * H, 23);
    const indices = new Int32Array([0, 2, 1, 0, 2, 1]);
    const weights = randomArray(T * k, 24, 0.4, 0.5);
    const R = randomArray(T * H, 25);
    const loss = () => project(expertsForward(x, T, indices, weights, k, p, limit).out, R);
    const { saved } = expertsForward(x, T, indices, weights, k, p, limit);
    let clamped = 0;
    for (let i = 0; i < saved.h.length; i += 2) if (saved.h[i]! > limit || Math.abs(saved.h[i + 1]!) > limit) clamped++;
    assert.ok(clamped > 0, 'some activations are clamped');
    const dx = new Float64Array(x.length), dweights = new Float64Array(weights.length);
    const grads = { w1: new Float64Array(p.w1.length), b1: new Float64Array(p.b1.length), w2: new Float64Array(p.w2.length), b2: new Float64Array(p.b2.length) };
    expertsBackward(R, x, T, indices, weights, k, p, limit, saved, dx, dweights, grads);
    expectClose(t, 'experts dx', checkGradient(loss, x, dx, allIndices(x.length)));
    expectClose(t, 'experts dweights', checkGradient(loss, weights, dweights, allIndices(weights.length)));
    expectClose(t, 'experts dw1', checkGradient(loss, p.w1, grads.w1, allIndices(p.w1.length)));
    expectClose(t, 'experts db1', checkGradient(loss, p.b1, grads.b1, allIndices(p.b1.length)));
    expectClose(t, 'experts dw2', checkGradient(loss, p.w2, grads.w2, allIndices(p.w2.length)));
    expectClose(t, 'experts db2', checkGradient(loss, p.b2, grads.b2, allIndices(p.b2.length)));
  });

  it('masked cross-entropy: ignored positions add neither loss nor gradient', (t) => {
    const T = 4, V = 7;
    const logits = randomArray(T * V, 26, 3);
    const targets = new Int32Array([3, IGNORE_TARGET, 0, 6]);
    const loss = () => crossEntropy(logits, T, V, targets).loss;
    const { dlogits, counted } = crossEntropy(logits, T, V, targets);
    assert.equal(counted, 3);
    expectClose(t, 'cross-entropy dlogits', checkGradient(loss, logits, dlogits, allIndices(logits.length)));
    for (let i = 0; i < V; i++) assert.equal(dlogits[V + i], 0);
    // Equal logits: the loss is ln(V).
    assert.ok(Math.abs(crossEntropy(new Float64Array(V), 1, V, new Int32Array([2])).loss - Math.log(V)) < 1e-12);
    assert.throws(() => crossEntropy(logits, T, V, new Int32Array(T).fill(IGNORE_TARGET)), /no position/);
  });
});
