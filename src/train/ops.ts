// The gpt-oss operations for training, each as a forward that returns what its backward needs
// and a backward that turns the output's gradient into the inputs' and parameters' gradients.
// Float64 throughout: this is the reference that faster training kernels will be checked against,
// and finite-difference gradient checks need the extra precision. Arrays are row-major
// [rows, cols]; every backward ADDS into the gradient arrays it is given (a tensor used twice,
// like the residual stream, collects both contributions), so callers pass zeroed arrays.
// The math is the one the reference backend (kernels/reference.ts) computes for inference.
// The matrix products, where training spends its time, go through LinearKernels so that the
// f32 WebAssembly twins (train/wasm) can stand in for the float64 ones.
import type { AttentionShape, RopeTable } from '../kernels/backend.ts';
import { swiglu } from '../kernels/reference.ts';

/** The gating SwiGLU's sigmoid slope (the official reference's alpha). */
export const SWIGLU_ALPHA = 1.702;

// ---- linear ----------------------------------------------------------------------------------

/** out[t, r] = sum_c x[t, c] * w[r, c] + bias[r]; x [tokens, cols], w [rows, cols]. */
export function linearForward(x: Float64Array, tokens: number, w: Float64Array, rows: number, cols: number, bias: Float64Array | null): Float64Array {
  const out = new Float64Array(tokens * rows);
  for (let t = 0; t < tokens; t++) {
    for (let r = 0; r < rows; r++) {
      let sum = bias === null ? 0 : bias[r]!;
      for (let c = 0; c < cols; c++) sum += x[t * cols + c]! * w[r * cols + c]!;
      out[t * rows + r] = sum;
    }
  }
  return out;
}

/** dx += dy @ w; dw += dy^T @ x; dbias += column sums of dy. A null gradient is not wanted. */
export function linearBackward(
  dy: Float64Array, x: Float64Array, tokens: number, w: Float64Array, rows: number, cols: number,
  dx: Float64Array | null, dw: Float64Array | null, dbias: Float64Array | null,
): void {
  for (let t = 0; t < tokens; t++) {
    for (let r = 0; r < rows; r++) {
      const g = dy[t * rows + r]!;
      if (g === 0) continue;
      if (dbias !== null) dbias[r] += g;
      if (dx !== null) for (let c = 0; c < cols; c++) dx[t * cols + c] += g * w[r * cols + c]!;
      if (dw !== null) for (let c = 0; c < cols; c++) dw[r * cols + c] += g * x[t * cols + c]!;
    }
  }
}

/**
 * The linear layer's matrix products, as one precision computes them: `forward` returns
 * x W^T + b, `backward` ADDS dy W into dx and dy^T x into dw (and column sums of dy into dbias).
 * Inputs and gradients stay float64 either way; an f32 implementation rounds inside.
 */
export interface LinearKernels {
  readonly precision: 'f64' | 'f32';
  forward(x: Float64Array, tokens: number, w: Float64Array, rows: number, cols: number, bias: Float64Array | null): Float64Array;
  backward(
    dy: Float64Array, x: Float64Array, tokens: number, w: Float64Array, rows: number, cols: number,
    dx: Float64Array | null, dw: Float64Array | null, dbias: Float64Array | null,
  ): void;
}

/** The float64 reference products above. */
export const F64_LINEAR: LinearKernels = { precision: 'f64', forward: linearForward, backward: linearBackward };

// ---- RMSNorm ---------------------------------------------------------------------------------

/** out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * scale; returns out and the per-row 1/rms. */
export function rmsnormForward(x: Float64Array, tokens: number, scale: Float64Array, eps: number): { out: Float64Array; inv: Float64Array } {
  const width = scale.length;
  const out = new Float64Array(tokens * width);
  const inv = new Float64Array(tokens);
  for (let t = 0; t < tokens; t++) {
    let sumSquares = 0;
    for (let c = 0; c < width; c++) sumSquares += x[t * width + c]! ** 2;
    const r = 1 / Math.sqrt(sumSquares / width + eps);
    inv[t] = r;
    for (let c = 0; c < width; c++) out[t * width + c] = x[t * width + c]! * r * scale[c]!;
  }
  return { out, inv };
}

/**
 * With g = dy * scale and r = 1/rms: dx = r*g - x * r^3 * mean(g*x) (the normaliser depends on
 * every element of the row); dscale += dy * x * r.
 */
export function rmsnormBackward(dy: Float64Array, x: Float64Array, tokens: number, scale: Float64Array, inv: Float64Array, dx: Float64Array, dscale: Float64Array | null): void {
  const width = scale.length;
  for (let t = 0; t < tokens; t++) {
    const r = inv[t]!;
    let dot = 0;
    for (let c = 0; c < width; c++) dot += dy[t * width + c]! * scale[c]! * x[t * width + c]!;
    const coef = (r * r * r * dot) / width;
    for (let c = 0; c < width; c++) {
      const i = t * width + c;
      dx[i] += r * dy[i]! * scale[c]! - x[i]! * coef;
      if (dscale !== null) dscale[c] += dy[i]! * x[i]! * r;
    }
  }
}

// ---- RoPE ------------------------------------------------------------------------------------

/**
 * Rotates x [tokens, heads, headDim] in place by the table's row for each token's position (t,
 * the sequence starting at 0, or `positions[t]`), half-split as the model does. With `inverse` it rotates by the opposite angle:
 * the rotation is orthogonal up to the concentration factor, so the backward of a rotation by
 * (cos, sin) is the rotation by (cos, -sin) applied to the gradient.
 */
export function ropeApply(x: Float64Array, tokens: number, heads: number, headDim: number, table: RopeTable, inverse = false, positions?: Int32Array): void {
  const half = headDim / 2;
  const sign = inverse ? -1 : 1;
  for (let t = 0; t < tokens; t++) {
    const row = (positions === undefined ? t : positions[t]!) * table.halfDim;
    for (let h = 0; h < heads; h++) {
      const base = (t * heads + h) * headDim;
      for (let i = 0; i < half; i++) {
        const cos = table.cos[row + i]!;
        const sin = sign * table.sin[row + i]!;
        const x1 = x[base + i]!;
        const x2 = x[base + half + i]!;
        x[base + i] = x1 * cos - x2 * sin;
        x[base + half + i] = x2 * cos + x1 * sin;
      }
    }
  }
}

// ---- attention with sinks --------------------------------------------------------------------

export interface AttentionSaved {
  /** Softmax weight of key k for query t and head h: [tokens, heads, tokens], 0 where not visible (the scalar path's). */
  probs: Float64Array;
  /** The matrix products' path: per head and query block (head-major), its weights over the block's gathered keys. */
  blockProbs?: Float64Array[];
  /** The sink's share of each softmax: [tokens, heads]. */
  sinkProbs: Float64Array;
}

/**
 * Several sequences that begin with the same tokens, packed into one: the shared prefix
 * (tokens 0..prefix-1, positions 0..prefix-1) once, then each sequence's own tokens (a segment),
 * one after the other. A segment's token t is at position prefix + t - segmentStart[t] and sees
 * the prefix and the earlier tokens of its own segment only, so each sequence is computed
 * exactly as alone, while the prefix runs once and gets every segment's gradient.
 */
export interface PackedLayout {
  prefix: number;
  /** Per token, the index where its segment starts (tokens of the prefix: 0). */
  segmentStart: Int32Array;
}

/** Each token's position under `layout` (t when there is none). */
export function layoutPositions(tokens: number, layout?: PackedLayout): Int32Array {
  const positions = new Int32Array(tokens);
  for (let t = 0; t < tokens; t++) positions[t] = layout === undefined || t < layout.prefix ? t : layout.prefix + t - layout.segmentStart[t]!;
  return positions;
}

/**
 * The keys query t sees, as two index ranges [r[0], r[1]) and [r[2], r[3]): the shared prefix's
 * part (empty without a layout, or for a prefix token) and its own part up to itself; both
 * clipped to the window when it is banded.
 */
function keyRanges(t: number, window: number, layout: PackedLayout | undefined, r: Int32Array): void {
  if (layout === undefined || t < layout.prefix) {
    r[0] = r[1] = 0;
    r[2] = window === 0 ? 0 : Math.max(0, t - window + 1);
  } else {
    const start = layout.segmentStart[t]!;
    const position = layout.prefix + t - start;
    r[0] = window === 0 ? 0 : Math.max(0, position - window + 1);
    r[1] = Math.max(r[0], layout.prefix);
    r[2] = window === 0 ? start : Math.max(start, t - window + 1);
  }
  r[3] = t + 1;
}

/**
 * Causal attention with sinks over one sequence (positions 0..tokens-1), or over sequences packed
 * behind a shared prefix (`layout`): q [tokens, heads, hd],
 * k and v [tokens, kvHeads, hd] (RoPE applied). The softmax runs over the visible scores and the
 * head's sink logit; the sink's mass is dropped. Returns out [tokens, heads*hd].
 */
export function attentionForward(
  q: Float64Array, k: Float64Array, v: Float64Array, tokens: number, sinks: Float64Array, shape: AttentionShape,
  linear?: LinearKernels, layout?: PackedLayout,
): { out: Float64Array; saved: AttentionSaved } {
  if (linear !== undefined) return attentionForwardProducts(q, k, v, tokens, sinks, shape, linear, layout);
  const r = new Int32Array(4);
  const { heads, kvHeads, headDim, window } = shape;
  const group = heads / kvHeads;
  const scale = 1 / Math.sqrt(headDim);
  const out = new Float64Array(tokens * heads * headDim);
  const probs = new Float64Array(tokens * heads * tokens);
  const sinkProbs = new Float64Array(tokens * heads);
  const scores = new Float64Array(tokens);
  for (let t = 0; t < tokens; t++) {
    for (let h = 0; h < heads; h++) {
      const kvh = Math.floor(h / group);
      const qBase = (t * heads + h) * headDim;
      keyRanges(t, window, layout, r);
      let max = sinks[h]!;
      for (let part = 0; part < 4; part += 2) for (let s = r[part]!; s < r[part + 1]!; s++) {
        const kBase = (s * kvHeads + kvh) * headDim;
        let dot = 0;
        for (let d = 0; d < headDim; d++) dot += q[qBase + d]! * k[kBase + d]!;
        scores[s] = dot * scale;
        max = Math.max(max, scores[s]!);
      }
      let denominator = Math.exp(sinks[h]! - max);
      for (let part = 0; part < 4; part += 2) for (let s = r[part]!; s < r[part + 1]!; s++) denominator += Math.exp(scores[s]! - max);
      const row = (t * heads + h) * tokens;
      sinkProbs[t * heads + h] = Math.exp(sinks[h]! - max) / denominator;
      for (let part = 0; part < 4; part += 2) for (let s = r[part]!; s < r[part + 1]!; s++) {
        const p = Math.exp(scores[s]! - max) / denominator;
        probs[row + s] = p;
        const vBase = (s * kvHeads + kvh) * headDim;
        for (let d = 0; d < headDim; d++) out[qBase + d] += p * v[vBase + d]!;
      }
    }
  }
  return { out, saved: { probs, sinkProbs } };
}

/**
 * Softmax backward with the sink as one more (value-less) entry: with dp_s = dout . v_s and
 * D = sum_s p_s dp_s, the score gradient is p_s (dp_s - D) and the sink's is -p_sink D.
 * GQA: every query head of a group adds into its shared K/V head's gradient.
 */
export function attentionBackward(
  dout: Float64Array, q: Float64Array, k: Float64Array, v: Float64Array, tokens: number, shape: AttentionShape, saved: AttentionSaved,
  dq: Float64Array, dk: Float64Array, dv: Float64Array, dsinks: Float64Array | null, linear?: LinearKernels, layout?: PackedLayout,
): void {
  if (linear !== undefined) {
    attentionBackwardProducts(dout, q, k, v, tokens, shape, saved, dq, dk, dv, dsinks, linear, layout);
    return;
  }
  const r = new Int32Array(4);
  const { heads, kvHeads, headDim, window } = shape;
  const group = heads / kvHeads;
  const scale = 1 / Math.sqrt(headDim);
  const dp = new Float64Array(tokens);
  for (let t = 0; t < tokens; t++) {
    for (let h = 0; h < heads; h++) {
      const kvh = Math.floor(h / group);
      const qBase = (t * heads + h) * headDim;
      const row = (t * heads + h) * tokens;
      let expected = 0;
      keyRanges(t, window, layout, r);
      for (let part = 0; part < 4; part += 2) for (let s = r[part]!; s < r[part + 1]!; s++) {
        const vBase = (s * kvHeads + kvh) * headDim;
        let dot = 0;
        for (let d = 0; d < headDim; d++) dot += dout[qBase + d]! * v[vBase + d]!;
        dp[s] = dot;
        expected += saved.probs[row + s]! * dot;
      }
      if (dsinks !== null) dsinks[h] += -saved.sinkProbs[t * heads + h]! * expected;
      for (let part = 0; part < 4; part += 2) for (let s = r[part]!; s < r[part + 1]!; s++) {
        const p = saved.probs[row + s]!;
        const kvBase = (s * kvHeads + kvh) * headDim;
        const dScore = p * (dp[s]! - expected) * scale;
        for (let d = 0; d < headDim; d++) {
          dv[kvBase + d] += p * dout[qBase + d]!;
          dq[qBase + d] += dScore * k[kvBase + d]!;
          dk[kvBase + d] += dScore * q[qBase + d]!;
        }
      }
    }
  }
}

// The same attention as matrix products per head and block of queries (scores = Q K^T, out =
// P V, and in the backward dP = dO V^T, dV = P^T dO, dQ = dS K, dK = dS^T Q), so that `linear`
// (the f32 WebAssembly kernels) does the work. A block of QUERY_BLOCK queries of one segment
// multiplies only the keys some of its queries see, gathered (the window's on a banded layer,
// the prefix's and its own segment's in a packed sequence), so the work grows with the visible
// keys, not with the square of the sequence; entries masked inside a block are computed and
// dropped. The scalar loops above stay the reference.

/** Queries per block: large enough for the SIMD tiles, small enough that little is masked. */
const QUERY_BLOCK = 64;

/** A block of queries [a, b) and the keys its queries see: [lo1, hi1) then [lo2, b), as columns 0.. of its scores. */
interface QueryBlock {
  a: number;
  b: number;
  lo1: number;
  hi1: number;
  lo2: number;
}

/** Blocks of at most QUERY_BLOCK queries that never straddle the prefix or a segment (so their keys are two ranges). */
function queryBlocks(tokens: number, window: number, layout: PackedLayout | undefined): QueryBlock[] {
  const blocks: QueryBlock[] = [];
  const r = new Int32Array(4);
  let a = 0;
  while (a < tokens) {
    const segmentEnd = layout === undefined ? tokens : a < layout.prefix ? layout.prefix : nextSegment(layout, a, tokens);
    const b = Math.min(a + QUERY_BLOCK, segmentEnd);
    keyRanges(a, window, layout, r);
    blocks.push({ a, b, lo1: r[0]!, hi1: r[1]!, lo2: r[2]! });
    a = b;
  }
  return blocks;
}

/** Where the segment holding token t ends. */
function nextSegment(layout: PackedLayout, t: number, tokens: number): number {
  const start = layout.segmentStart[t]!;
  let end = t + 1;
  while (end < tokens && layout.segmentStart[end] === start) end++;
  return end;
}

/** Rows [lo1, hi1) and [lo2, hi2) of head h of x [tokens, heads, headDim], packed as [rows, headDim]. */
function gatherHead(x: Float64Array, heads: number, headDim: number, h: number, lo1: number, hi1: number, lo2: number, hi2: number): Float64Array {
  const out = new Float64Array((hi1 - lo1 + hi2 - lo2) * headDim);
  let row = 0;
  for (const [lo, hi] of [[lo1, hi1], [lo2, hi2]] as const) {
    for (let t = lo; t < hi; t++, row++) out.set(x.subarray((t * heads + h) * headDim, (t * heads + h + 1) * headDim), row * headDim);
  }
  return out;
}

/** Adds packed rows (as gatherHead gathered them) back into head h of x. */
function scatterHead(into: Float64Array, packed: Float64Array, heads: number, headDim: number, h: number, lo1: number, hi1: number, lo2: number, hi2: number): void {
  let row = 0;
  for (const [lo, hi] of [[lo1, hi1], [lo2, hi2]] as const) {
    for (let t = lo; t < hi; t++, row++) {
      const base = (t * heads + h) * headDim;
      for (let d = 0; d < headDim; d++) into[base + d] += packed[row * headDim + d]!;
    }
  }
}

const NONE = new Float64Array(0);

function attentionForwardProducts(
  q: Float64Array, k: Float64Array, v: Float64Array, tokens: number, sinks: Float64Array, shape: AttentionShape, linear: LinearKernels,
  layout: PackedLayout | undefined,
): { out: Float64Array; saved: AttentionSaved } {
  const r = new Int32Array(4);
  const { heads, kvHeads, headDim, window } = shape;
  const group = heads / kvHeads;
  const scale = 1 / Math.sqrt(headDim);
  const out = new Float64Array(tokens * heads * headDim);
  const sinkProbs = new Float64Array(tokens * heads);
  const blocks = queryBlocks(tokens, window, layout);
  const blockProbs: Float64Array[] = new Array<Float64Array>(heads * blocks.length);
  blocks.forEach((blk, bi) => {
    const { a, b, lo1, hi1, lo2 } = blk;
    const rows = b - a;
    const first = hi1 - lo1;
    const keys = first + b - lo2;
    for (let kvh = 0; kvh < kvHeads; kvh++) {
      const kg = gatherHead(k, kvHeads, headDim, kvh, lo1, hi1, lo2, b);
      const vg = gatherHead(v, kvHeads, headDim, kvh, lo1, hi1, lo2, b);
      for (let h = kvh * group; h < (kvh + 1) * group; h++) {
        const scores = linear.forward(gatherHead(q, heads, headDim, h, a, a, a, b), rows, kg, keys, headDim, null);
        const p = new Float64Array(rows * keys);
        for (let i = 0; i < rows; i++) {
          keyRanges(a + i, window, layout, r);
          // Row i's visible keys as columns of the block's scores.
          const c0 = r[0]! - lo1, c1 = r[1]! - lo1, c2 = first + r[2]! - lo2, c3 = first + r[3]! - lo2;
          const row = i * keys;
          let max = sinks[h]!;
          for (let c = c0; c < c1; c++) max = Math.max(max, scores[row + c]! * scale);
          for (let c = c2; c < c3; c++) max = Math.max(max, scores[row + c]! * scale);
          let denominator = Math.exp(sinks[h]! - max);
          for (let c = c0; c < c1; c++) denominator += p[row + c] = Math.exp(scores[row + c]! * scale - max);
          for (let c = c2; c < c3; c++) denominator += p[row + c] = Math.exp(scores[row + c]! * scale - max);
          sinkProbs[(a + i) * heads + h] = Math.exp(sinks[h]! - max) / denominator;
          for (let c = c0; c < c1; c++) p[row + c] = p[row + c]! / denominator;
          for (let c = c2; c < c3; c++) p[row + c] = p[row + c]! / denominator;
        }
        blockProbs[h * blocks.length + bi] = p;
        const oh = new Float64Array(rows * headDim);
        linear.backward(p, NONE, rows, vg, keys, headDim, oh, null, null);
        scatterHead(out, oh, heads, headDim, h, a, a, a, b);
      }
    }
  });
  return { out, saved: { probs: NONE, sinkProbs, blockProbs } };
}

function attentionBackwardProducts(
  dout: Float64Array, q: Float64Array, k: Float64Array, v: Float64Array, tokens: number, shape: AttentionShape, saved: AttentionSaved,
  dq: Float64Array, dk: Float64Array, dv: Float64Array, dsinks: Float64Array | null, linear: LinearKernels, layout: PackedLayout | undefined,
): void {
  const r = new Int32Array(4);
  const { heads, kvHeads, headDim, window } = shape;
  const group = heads / kvHeads;
  const scale = 1 / Math.sqrt(headDim);
  const blocks = queryBlocks(tokens, window, layout);
  if (saved.blockProbs === undefined || saved.blockProbs.length !== heads * blocks.length) throw new Error('attentionBackward: the forward did not run on the matrix products');
  blocks.forEach((blk, bi) => {
    const { a, b, lo1, hi1, lo2 } = blk;
    const rows = b - a;
    const first = hi1 - lo1;
    const keys = first + b - lo2;
    for (let kvh = 0; kvh < kvHeads; kvh++) {
      const kg = gatherHead(k, kvHeads, headDim, kvh, lo1, hi1, lo2, b);
      const vg = gatherHead(v, kvHeads, headDim, kvh, lo1, hi1, lo2, b);
      const dkg = new Float64Array(keys * headDim);
      const dvg = new Float64Array(keys * headDim);
      for (let h = kvh * group; h < (kvh + 1) * group; h++) {
        const doh = gatherHead(dout, heads, headDim, h, a, a, a, b);
        const dp = linear.forward(doh, rows, vg, keys, headDim, null);
        const p = saved.blockProbs![h * blocks.length + bi]!;
        const dscores = new Float64Array(rows * keys);
        for (let i = 0; i < rows; i++) {
          keyRanges(a + i, window, layout, r);
          const c0 = r[0]! - lo1, c1 = r[1]! - lo1, c2 = first + r[2]! - lo2, c3 = first + r[3]! - lo2;
          const row = i * keys;
          let expected = 0;
          for (let c = c0; c < c1; c++) expected += p[row + c]! * dp[row + c]!;
          for (let c = c2; c < c3; c++) expected += p[row + c]! * dp[row + c]!;
          if (dsinks !== null) dsinks[h] += -saved.sinkProbs[(a + i) * heads + h]! * expected;
          for (let c = c0; c < c1; c++) dscores[row + c] = p[row + c]! * (dp[row + c]! - expected) * scale;
          for (let c = c2; c < c3; c++) dscores[row + c] = p[row + c]! * (dp[row + c]! - expected) * scale;
        }
        linear.backward(p, doh, rows, NONE, keys, headDim, null, dvg, null);
        const dqh = new Float64Array(rows * headDim);
        linear.backward(dscores, gatherHead(q, heads, headDim, h, a, a, a, b), rows, kg, keys, headDim, dqh, dkg, null);
        scatterHead(dq, dqh, heads, headDim, h, a, a, a, b);
      }
      scatterHead(dk, dkg, kvHeads, headDim, kvh, lo1, hi1, lo2, b);
      scatterHead(dv, dvg, kvHeads, headDim, kvh, lo1, hi1, lo2, b);
    }
  });
}

// ---- MoE router ------------------------------------------------------------------------------

/**
 * Top-k routing per token, as model/forward.ts's `route` does it (decreasing logit, lower expert
 * first on exact ties; softmax over the chosen k only), over float64 logits. The choice itself
 * has no gradient; the weights do.
 */
export function routeForward(gate: Float64Array, tokens: number, experts: number, k: number): { indices: Int32Array; weights: Float64Array } {
  const indices = new Int32Array(tokens * k);
  const weights = new Float64Array(tokens * k);
  for (let t = 0; t < tokens; t++) {
    const g = gate.subarray(t * experts, (t + 1) * experts);
    const order = Array.from(g.keys()).sort((a, b) => g[b]! - g[a]! || a - b);
    const max = g[order[0]!]!;
    let sum = 0;
    for (let j = 0; j < k; j++) sum += Math.exp(g[order[j]!]! - max);
    for (let j = 0; j < k; j++) {
      indices[t * k + j] = order[j]!;
      weights[t * k + j] = Math.exp(g[order[j]!]! - max) / sum;
    }
  }
  return { indices, weights };
}

/** Softmax backward over each token's k chosen logits; unchosen logits get no gradient. */
export function routeBackward(dweights: Float64Array, indices: Int32Array, weights: Float64Array, tokens: number, experts: number, k: number, dgate: Float64Array): void {
  for (let t = 0; t < tokens; t++) {
    let expected = 0;
    for (let j = 0; j < k; j++) expected += weights[t * k + j]! * dweights[t * k + j]!;
    for (let j = 0; j < k; j++) {
      const i = t * k + j;
      dgate[t * experts + indices[i]!] += weights[i]! * (dweights[i]! - expected);
    }
  }
}

// ---- router load balancing -----------------------------------------------------------------

export interface LoadBalanceSaved {
  /** Per layer, the softmax over all experts of each token's gate logits [tokens, experts]. */
  probs: Float64Array[];
  /** f_e: per expert, the routings (slots) it received per (layer, token). */
  fraction: Float64Array;
  /** Number of (layer, token) pairs. */
  count: number;
}

/**
 * The Switch Transformer load-balancing loss as transformers computes it for MoE models, over
 * all layers' tokens together: with f_e the mean over (layer, token) of how many of the token's
 * k slots chose expert e, and P_e the mean over (layer, token) of softmax(all gate logits)_e,
 * loss = E * sum_e f_e * P_e (1 * k when routing is uniform). Only P carries a gradient.
 */
export function loadBalancingForward(gates: readonly Float64Array[], indices: readonly Int32Array[], tokens: number, experts: number, k: number): { loss: number; saved: LoadBalanceSaved } {
  const count = gates.length * tokens;
  const fraction = new Float64Array(experts);
  const meanProb = new Float64Array(experts);
  const probs: Float64Array[] = [];
  gates.forEach((gate, layer) => {
    const p = new Float64Array(tokens * experts);
    for (let t = 0; t < tokens; t++) {
      let max = -Infinity;
      for (let e = 0; e < experts; e++) max = Math.max(max, gate[t * experts + e]!);
      let sum = 0;
      for (let e = 0; e < experts; e++) sum += Math.exp(gate[t * experts + e]! - max);
      for (let e = 0; e < experts; e++) {
        p[t * experts + e] = Math.exp(gate[t * experts + e]! - max) / sum;
        meanProb[e] += p[t * experts + e]! / count;
      }
      for (let j = 0; j < k; j++) fraction[indices[layer]![t * k + j]!] += 1 / count;
    }
    probs.push(p);
  });
  let loss = 0;
  for (let e = 0; e < experts; e++) loss += fraction[e]! * meanProb[e]!;
  return { loss: experts * loss, saved: { probs, fraction, count } };
}

/** dgates[layer] += d(scale * loss)/d(gate logits): softmax backward of E * f / count. */
export function loadBalancingBackward(saved: LoadBalanceSaved, scale: number, tokens: number, experts: number, dgates: readonly Float64Array[]): void {
  const coef = (scale * experts) / saved.count;
  saved.probs.forEach((p, layer) => {
    const dgate = dgates[layer]!;
    for (let t = 0; t < tokens; t++) {
      let expected = 0;
      for (let e = 0; e < experts; e++) expected += p[t * experts + e]! * saved.fraction[e]!;
      for (let e = 0; e < experts; e++) dgate[t * experts + e] += coef * p[t * experts + e]! * (saved.fraction[e]! - expected);
    }
  });
}

// ---- clamped SwiGLU --------------------------------------------------------------------------

/** a = swiglu(h) (kernels/reference.ts's, shared so inference and training cannot drift apart). */
export function swigluForward(h: Float64Array, limit: number): Float64Array {
  const a = new Float64Array(h.length / 2);
  swiglu(h, limit, a);
  return a;
}

/**
 * With glu = min(h[2i], limit), lin = clamp(h[2i+1], -limit, limit), s = sigmoid(alpha*glu):
 * da/dglu = (lin + 1) * s * (1 + alpha*glu*(1 - s)); da/dlin = glu * s. A clamped input gets no
 * gradient (the clamp is flat there).
 */
export function swigluBackward(da: Float64Array, h: Float64Array, limit: number, dh: Float64Array): void {
  for (let i = 0; i < da.length; i++) {
    const rawGlu = h[2 * i]!;
    const rawLin = h[2 * i + 1]!;
    const glu = Math.min(rawGlu, limit);
    const lin = Math.min(Math.max(rawLin, -limit), limit);
    const s = 1 / (1 + Math.exp(-SWIGLU_ALPHA * glu));
    if (rawGlu < limit) dh[2 * i] += da[i]! * (lin + 1) * s * (1 + SWIGLU_ALPHA * glu * (1 - s));
    if (rawLin > -limit && rawLin < limit) dh[2 * i + 1] += da[i]! * glu * s;
  }
}

// ---- experts ---------------------------------------------------------------------------------

/** One MoE layer's expert parameters in float: w1 [E, 2I, H], b1 [E, 2I], w2 [E, H, I], b2 [E, H]. */
export interface ExpertParams {
  w1: Float64Array;
  b1: Float64Array;
  w2: Float64Array;
  b2: Float64Array;
  experts: number;
  hidden: number;
  intermediate: number;
}

/**
 * Low-rank adapters beside one layer's frozen experts (LoRA's gate_up_proj on mlp1, down_proj on
 * mlp2): `forward` adds expert e's update into its output rows, `backward` takes their gradient
 * dy, accumulates the adapter's own gradients and adds its share into dx.
 */
export interface ExpertAdapter {
  forward(matrix: 'mlp1' | 'mlp2', expert: number, x: Float64Array, tokens: number, out: Float64Array): void;
  backward(matrix: 'mlp1' | 'mlp2', expert: number, dy: Float64Array, x: Float64Array, tokens: number, dx: Float64Array): void;
}

export interface ExpertsSaved {
  /** Per (token, slot): the first projection h [2I], the activation a [I] and the output y [H]. */
  h: Float64Array;
  a: Float64Array;
  y: Float64Array;
}

/** The slots (t * k + j) routed to expert `e`, ascending: the rows one expert runs as a batch. */
function slotsOf(indices: Int32Array, e: number): number[] {
  const slots: number[] = [];
  for (let slot = 0; slot < indices.length; slot++) if (indices[slot] === e) slots.push(slot);
  return slots;
}

/** Rows `slots` (of `width` each, row = slot or slot / k) of `from`, packed. */
function gatherSlots(from: Float64Array, width: number, slots: readonly number[], divisor: number): Float64Array {
  const out = new Float64Array(slots.length * width);
  slots.forEach((slot, i) => {
    const row = Math.floor(slot / divisor);
    out.set(from.subarray(row * width, (row + 1) * width), i * width);
  });
  return out;
}

function scatterSlots(packed: Float64Array, width: number, slots: readonly number[], into: Float64Array): void {
  slots.forEach((slot, i) => into.set(packed.subarray(i * width, (i + 1) * width), slot * width));
}

/**
 * out[t] = sum_j weights[t,j] * expert_{indices[t,j]}(x[t]); x [tokens, H]. Each expert runs
 * once on all the tokens routed to it (a matrix product rather than one per token).
 */
export function expertsForward(
  x: Float64Array, tokens: number, indices: Int32Array, weights: Float64Array, k: number, p: ExpertParams, limit: number,
  linear: LinearKernels = F64_LINEAR, adapter?: ExpertAdapter,
): { out: Float64Array; saved: ExpertsSaved } {
  const { hidden: H, intermediate: I } = p;
  const out = new Float64Array(tokens * H);
  const hAll = new Float64Array(tokens * k * 2 * I);
  const aAll = new Float64Array(tokens * k * I);
  const yAll = new Float64Array(tokens * k * H);
  for (let e = 0; e < p.experts; e++) {
    const slots = slotsOf(indices.subarray(0, tokens * k), e);
    if (slots.length === 0) continue;
    const n = slots.length;
    const xe = gatherSlots(x, H, slots, k);
    const h = linear.forward(xe, n, p.w1.subarray(e * 2 * I * H, (e + 1) * 2 * I * H), 2 * I, H, p.b1.subarray(e * 2 * I, (e + 1) * 2 * I));
    adapter?.forward('mlp1', e, xe, n, h);
    const a = swigluForward(h, limit);
    const y = linear.forward(a, n, p.w2.subarray(e * H * I, (e + 1) * H * I), H, I, p.b2.subarray(e * H, (e + 1) * H));
    adapter?.forward('mlp2', e, a, n, y);
    scatterSlots(h, 2 * I, slots, hAll);
    scatterSlots(a, I, slots, aAll);
    scatterSlots(y, H, slots, yAll);
  }
  for (let t = 0; t < tokens; t++) {
    for (let j = 0; j < k; j++) {
      const slot = t * k + j;
      for (let c = 0; c < H; c++) out[t * H + c] += weights[slot]! * yAll[slot * H + c]!;
    }
  }
  return { out, saved: { h: hAll, a: aAll, y: yAll } };
}

export interface ExpertGrads {
  w1: Float64Array | null;
  b1: Float64Array | null;
  w2: Float64Array | null;
  b2: Float64Array | null;
}

/** dx += d/dx; dweights += dout . y per slot; expert parameter gradients into `grads`. */
export function expertsBackward(
  dout: Float64Array, x: Float64Array, tokens: number, indices: Int32Array, weights: Float64Array, k: number,
  p: ExpertParams, limit: number, saved: ExpertsSaved, dx: Float64Array, dweights: Float64Array, grads: ExpertGrads,
  linear: LinearKernels = F64_LINEAR, adapter?: ExpertAdapter,
): void {
  const { hidden: H, intermediate: I } = p;
  const sub = (a: Float64Array | null, e: number, size: number): Float64Array | null => (a === null ? null : a.subarray(e * size, (e + 1) * size));
  // Per slot: the gradient reaching the expert's output, and the weight's own gradient.
  const dyAll = new Float64Array(tokens * k * H);
  for (let t = 0; t < tokens; t++) {
    for (let j = 0; j < k; j++) {
      const slot = t * k + j;
      let dot = 0;
      for (let c = 0; c < H; c++) {
        dot += dout[t * H + c]! * saved.y[slot * H + c]!;
        dyAll[slot * H + c] = weights[slot]! * dout[t * H + c]!;
      }
      dweights[slot] += dot;
    }
  }
  const dxAll = new Float64Array(tokens * k * H);
  for (let e = 0; e < p.experts; e++) {
    const slots = slotsOf(indices.subarray(0, tokens * k), e);
    if (slots.length === 0) continue;
    const n = slots.length;
    const da = new Float64Array(n * I);
    const dy = gatherSlots(dyAll, H, slots, 1), ae = gatherSlots(saved.a, I, slots, 1);
    linear.backward(dy, ae, n, p.w2.subarray(e * H * I, (e + 1) * H * I), H, I, da, sub(grads.w2, e, H * I), sub(grads.b2, e, H));
    adapter?.backward('mlp2', e, dy, ae, n, da);
    const dh = new Float64Array(n * 2 * I);
    swigluBackward(da, gatherSlots(saved.h, 2 * I, slots, 1), limit, dh);
    const dxe = new Float64Array(n * H);
    const xe = gatherSlots(x, H, slots, k);
    linear.backward(dh, xe, n, p.w1.subarray(e * 2 * I * H, (e + 1) * 2 * I * H), 2 * I, H, dxe, sub(grads.w1, e, 2 * I * H), sub(grads.b1, e, 2 * I));
    adapter?.backward('mlp1', e, dh, xe, n, dxe);
    scatterSlots(dxe, H, slots, dxAll);
  }
  for (let t = 0; t < tokens; t++) {
    for (let j = 0; j < k; j++) {
      const slot = t * k + j;
      for (let c = 0; c < H; c++) dx[t * H + c] += dxAll[slot * H + c]!;
    }
  }
}

// ---- loss ------------------------------------------------------------------------------------

/** A target that contributes no loss (a prompt token, padding). */
export const IGNORE_TARGET = -1;

/**
 * Mean cross-entropy of logits [tokens, vocab] against `targets` over the positions whose target
 * is not IGNORE_TARGET, and its gradient (softmax - one-hot) / counted. `zeroLogits` more logits,
 * all exactly 0 and never targets, join each softmax in closed form (the rows of an unused
 * vocabulary); they need no gradient.
 */
export function crossEntropy(logits: Float64Array, tokens: number, vocab: number, targets: Int32Array, zeroLogits = 0): { loss: number; counted: number; dlogits: Float64Array } {
  const dlogits = new Float64Array(tokens * vocab);
  let counted = 0;
  for (let t = 0; t < tokens; t++) if (targets[t] !== IGNORE_TARGET) counted++;
  if (counted === 0) throw new Error('crossEntropy: no position has a target');
  let loss = 0;
  for (let t = 0; t < tokens; t++) {
    const target = targets[t]!;
    if (target === IGNORE_TARGET) continue;
    if (!Number.isInteger(target) || target < 0 || target >= vocab) throw new Error(`crossEntropy: target ${target} at ${t} is outside the vocabulary`);
    const row = logits.subarray(t * vocab, (t + 1) * vocab);
    let max = zeroLogits > 0 ? 0 : -Infinity;
    for (const z of row) max = Math.max(max, z);
    let sum = zeroLogits * Math.exp(-max);
    for (const z of row) sum += Math.exp(z - max);
    const logSum = max + Math.log(sum);
    loss += logSum - row[target]!;
    for (let i = 0; i < vocab; i++) dlogits[t * vocab + i] = Math.exp(row[i]! - logSum) / counted;
    dlogits[t * vocab + target] -= 1 / counted;
  }
  return { loss: loss / counted, counted, dlogits };
}
