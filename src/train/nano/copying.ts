// The copying circuit that gpt-oss-nano's initial model holds: layer 0 has two positional heads
// that write the codes of tokens i-1 and i-2 into their own slices of the residual stream, and
// layer 1 an induction head that, at token i, attends to the position j whose two previous tokens
// (t[j-1], t[j-2]) equal (t[i], t[i-1]) and writes t[j] where the unembedding reads it.
//
// Why a hand-set circuit: o200k_harmony splits a number from the space before it ("70 kg" is
// "70", " kg"; " 70" is " ", "70"), so a one-token induction head cannot tell numbers apart (every
// number follows " "), and copying numbers from the question into the python call and from the
// tool's output into the answer is what the nano's tasks need. Trained from a random start, a
// model this small learns no copying within the recipe's hour (docs/training.md measures it); with
// the circuit in place at the start, training refines it instead of having to discover it.
//
// The construction (all in an orthonormal basis of the residual stream drawn from the seed):
//   Q1, Q2  (code dims each)  where the positional heads write the codes of t[i-1] and t[i-2];
//   R       (headDim dims)    where the induction head writes what it copies;
//   T       (the rest)        where the token embeddings live (projected out of Q1, Q2 and R).
// A token's code is M e(t), M = the first `code` basis vectors of T. The positional heads get
// their attention pattern from RoPE alone: constant query and key biases whose rotary phases
// peak at relative offset 1 (or 2), using the frequencies that turn fast enough to tell nearby
// positions apart. The induction head's query and key use only the slow-turning frequencies, so
// its match does not depend on the distance. Every other head's output projection and every
// expert's second matrix start at zero, so that nothing else writes into those slices at the start.
import type { ModelConfig } from '../../model/config.ts';
import { yarnParameters } from '../../model/rope.ts';
import { seededRandom } from '../../random.ts';
import type { TrainableModel } from '../params.ts';

/** The circuit's settings (the recipe uses these defaults). */
export interface CopyingCircuitOptions {
  /** Seed of the basis (its own stream, apart from the weights' streams). */
  seed: number;
  /** Scale of the positional heads' output (the code written into Q1, Q2). */
  codeScale: number;
  /** Product of the induction head's query and key scales: how sharply it attends to a match. */
  matchSharpness: number;
  /** Scale of the induction head's output into R. */
  copyScale: number;
  /** How strongly each token's unembedding row reads its own copy in R. */
  readScale: number;
  /** The positional heads' query amplitude budget (the norm of their RoPE phase pattern). */
  positionalBudget: number;
  /** RoPE inverse frequencies at or below this count as slow (the induction head's dims). */
  slowFrequency: number;
  /** Share of the random unembedding kept beside the copy-reading part. */
  unembeddingKeep: number;
}

export const COPYING_CIRCUIT_DEFAULTS: CopyingCircuitOptions = {
  seed: 5, codeScale: 1, matchSharpness: 4, copyScale: 1, readScale: 1, positionalBudget: 40, slowFrequency: 7e-3, unembeddingKeep: 0.3,
};

/** What was built: dims per token code and each positional head's attention share at its offset. */
export interface CopyingCircuitReport {
  codeDims: number;
  previousTokenShare: number;
  secondPreviousTokenShare: number;
}

/**
 * Query amplitudes, one per fast RoPE frequency, for a head whose key is the constant unit phase
 * rotated by `offset` steps: the score at distance d is scale * sum_i a_i cos((d - offset) w_i).
 * Chosen by gradient ascent (finite differences, fixed steps: deterministic) on the log of the
 * softmax share at d = offset over the window (with the sink at score 0), the norm capped at `budget`.
 */
function positionalAmplitudes(omega: readonly number[], window: number, budget: number, scale: number, offset: number): number[] {
  const a = omega.map(() => budget / Math.sqrt(omega.length));
  const rate = 0.5, h = 1e-4;
  for (let step = 0; step < 3000; step++) {
    const base = logShareAtOffset(a, omega, window, scale, offset);
    const gradient = a.map((_, i) => {
      const moved = a.slice();
      moved[i]! += h;
      return (logShareAtOffset(moved, omega, window, scale, offset) - base) / h;
    });
    for (let i = 0; i < a.length; i++) a[i]! += rate * gradient[i]!;
    const norm = Math.hypot(...a);
    if (norm > budget) for (let i = 0; i < a.length; i++) a[i]! *= budget / norm;
  }
  return a;
}

/** The log of the softmax share a positional head with these amplitudes gives its offset (window and sink included). */
function logShareAtOffset(a: readonly number[], omega: readonly number[], window: number, scale: number, offset: number): number {
  let z = 1; // the sink
  let target = 0;
  for (let d = 0; d < window; d++) {
    let s = 0;
    for (let i = 0; i < a.length; i++) s += a[i]! * Math.cos((d - offset) * omega[i]!);
    s *= scale;
    if (d === offset) target = s;
    z += Math.exp(s);
  }
  return target - Math.log(z);
}

/** An orthonormal basis of R^n by Gram-Schmidt over seeded Gaussian vectors. */
function orthonormalBasis(n: number, seed: number): Float64Array[] {
  const random = seededRandom(seed);
  const gauss = (): number => {
    const u = 1 - random(), v = random();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  };
  const basis: Float64Array[] = [];
  while (basis.length < n) {
    const v = Float64Array.from({ length: n }, gauss);
    for (const b of basis) {
      const d = dot(v, b);
      for (let k = 0; k < n; k++) v[k]! -= d * b[k]!;
    }
    const norm = Math.sqrt(dot(v, v));
    for (let k = 0; k < n; k++) v[k]! /= norm;
    basis.push(v);
  }
  return basis;
}

function dot(a: Float64Array, b: Float64Array): number {
  let d = 0;
  for (let k = 0; k < a.length; k++) d += a[k]! * b[k]!;
  return d;
}

/** Layers 0 and 1 carry the circuit; the first must be banded (the positional heads' window). */
function checkShape(c: ModelConfig): void {
  if (c.numLayers < 2) throw new Error('the copying circuit needs at least two layers');
  if (c.numAttentionHeads % c.numKeyValueHeads !== 0 || c.numKeyValueHeads < 2) throw new Error('the copying circuit needs at least two key/value heads');
  if (c.slidingWindow <= 2) throw new Error('the copying circuit needs a sliding window above 2');
}

/**
 * Writes the copying circuit into a freshly initialised model (see the file header), in place.
 * Rows of the vocabulary tables that are zero (tokens the model does not hold) stay zero.
 */
export function seedCopyingCircuit(model: TrainableModel, options: Partial<CopyingCircuitOptions> = {}): CopyingCircuitReport {
  const o = { ...COPYING_CIRCUIT_DEFAULTS, ...options };
  const c = model.config;
  checkShape(c);
  const H = c.hiddenSize, hd = c.headDim, half = hd / 2, heads = c.numAttentionHeads, kvHeads = c.numKeyValueHeads;
  const basis = orthonormalBasis(H, o.seed);
  const { concentration, invFreq } = yarnParameters(c);
  const slowPairs = [...invFreq.keys()].filter((i) => invFreq[i]! <= o.slowFrequency);
  const fastPairs = [...invFreq.keys()].filter((i) => invFreq[i]! > o.slowFrequency);
  const code = slowPairs.length;
  if (code === 0 || fastPairs.length === 0) throw new Error('the copying circuit needs both fast and slow RoPE frequencies');
  const slowDims = [...slowPairs, ...slowPairs.map((i) => i + half)];
  const Q1 = basis.slice(0, code), Q2 = basis.slice(code, 2 * code);
  const R = basis.slice(2 * code, 2 * code + hd), T = basis.slice(2 * code + hd);
  if (T.length < hd) throw new Error('the copying circuit needs a wider residual stream');
  const M = T.slice(0, code), N = T.slice(0, hd);

  // Embeddings move into T (their rms kept); zero rows stay zero.
  const V = model.embedding.shape[0]!;
  const embedding = model.embedding.value;
  const keep = Math.sqrt(H / T.length);
  const live = (row: Float64Array): boolean => row.some((x) => x !== 0);
  for (let t = 0; t < V; t++) {
    const row = embedding.subarray(t * H, (t + 1) * H);
    if (!live(row)) continue;
    const z = T.map((b) => dot(row, b));
    row.fill(0);
    T.forEach((b, j) => { for (let k = 0; k < H; k++) row[k]! += keep * z[j]! * b[k]!; });
  }

  const qWidth = heads * hd;
  const qOffset = (h: number): number => h * hd;
  const kOffset = (g: number): number => qWidth + g * hd;
  const vOffset = (g: number): number => qWidth + kvHeads * hd + g * hd;
  const qkvWeight = (n: number): Float64Array => model.blocks[n]!.attn.qkvWeight.value;
  const qkvBias = (n: number): Float64Array => model.blocks[n]!.attn.qkvBias.value;
  const outWeight = (n: number): Float64Array => model.blocks[n]!.attn.outWeight.value; // [H, qWidth]
  const setRow = (w: Float64Array, row: number, vector: Float64Array | null, scale = 1): void => {
    for (let k = 0; k < H; k++) w[row * H + k] = vector === null ? 0 : scale * vector[k]!;
  };
  const clearHead = (n: number, qHead: number, kvHead: number): void => {
    for (let d = 0; d < hd; d++) {
      for (const offset of [qOffset(qHead), kOffset(kvHead), vOffset(kvHead)]) {
        setRow(qkvWeight(n), offset + d, null);
        qkvBias(n)[offset + d] = 0;
      }
    }
  };
  const setOutput = (n: number, qHead: number, vectors: Float64Array[], scale: number): void => {
    vectors.forEach((v, r) => { for (let k = 0; k < H; k++) outWeight(n)[k * qWidth + qOffset(qHead) + r] = scale * v[k]!; });
  };
  for (const block of model.blocks) {
    block.attn.outWeight.value.fill(0);
    block.mlp.mlp2Weight.value.fill(0);
  }

  // Layer 0: q head 0 (key/value head 0) looks one token back and writes M e(t[i-1]) into Q1;
  // the first q head of key/value head 1 looks two back and writes M e(t[i-2]) into Q2.
  const softmaxScale = (concentration * concentration) / Math.sqrt(hd);
  const omega = fastPairs.map((i) => invFreq[i]!);
  const shares: number[] = [];
  const group = heads / kvHeads;
  for (const [qHead, kvHead, offset, codes] of [[0, 0, 1, Q1], [group, 1, 2, Q2]] as const) {
    clearHead(0, qHead, kvHead);
    const a = positionalAmplitudes(omega, c.slidingWindow, o.positionalBudget, softmaxScale, offset);
    fastPairs.forEach((i, j) => {
      qkvBias(0)[qOffset(qHead) + i] = a[j]!;
      qkvBias(0)[kOffset(kvHead) + i] = Math.cos(offset * invFreq[i]!);
      qkvBias(0)[kOffset(kvHead) + i + half] = Math.sin(offset * invFreq[i]!);
    });
    M.forEach((m, r) => setRow(qkvWeight(0), vOffset(kvHead) + r, m));
    setOutput(0, qHead, codes, o.codeScale);
    shares.push(Math.exp(logShareAtOffset(a, omega, c.slidingWindow, softmaxScale, offset)));
  }

  // Layer 1: q head 0 (key/value head 0) matches [M e(t[i]); Q1 code of t[i-1]] against
  // [Q1 code of t[j-1]; Q2 code of t[j-2]] on the slow dims, and copies N e(t[j]) into R.
  clearHead(1, 0, 0);
  const sharpness = Math.sqrt(o.matchSharpness);
  slowDims.forEach((d, r) => {
    if (r < code) {
      setRow(qkvWeight(1), qOffset(0) + d, M[r]!, sharpness);
      setRow(qkvWeight(1), kOffset(0) + d, Q1[r]!, sharpness);
    } else {
      setRow(qkvWeight(1), qOffset(0) + d, Q1[r - code]!, sharpness);
      setRow(qkvWeight(1), kOffset(0) + d, Q2[r - code]!, sharpness);
    }
  });
  N.forEach((v, r) => setRow(qkvWeight(1), vOffset(0) + r, v));
  setOutput(1, 0, R, o.copyScale);

  // Each live unembedding row reads its own token's copy in R, beside a share of its random start.
  const unembedding = model.unembedding.value;
  for (let t = 0; t < V; t++) {
    const e = embedding.subarray(t * H, (t + 1) * H);
    if (!live(e)) continue;
    const z = N.map((b) => dot(e, b));
    const row = unembedding.subarray(t * H, (t + 1) * H);
    for (let k = 0; k < H; k++) row[k]! *= o.unembeddingKeep;
    R.forEach((v, r) => { for (let k = 0; k < H; k++) row[k]! += o.readScale * z[r]! * v[k]!; });
  }
  return { codeDims: code, previousTokenShare: shares[0]!, secondPreviousTokenShare: shares[1]! };
}
