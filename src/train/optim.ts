// The optimiser side of training: AdamW with decoupled weight decay, the learning-rate schedule
// (linear warm-up, then cosine decay to a floor), global-norm gradient clipping, and one training
// step over a batch of sequences (those that share a prefix optionally packed behind it, so it
// runs once). Deterministic: no randomness, no clock.
import { backwardTrain, forwardTrain, tapeLoss, withTargetRows, type TrainOptions } from './model.ts';
import { IGNORE_TARGET, loadBalancingBackward, loadBalancingForward, type PackedLayout } from './ops.ts';
import type { Param, TrainableModel } from './params.ts';

export interface AdamWOptions {
  beta1?: number; // default 0.9
  beta2?: number; // default 0.95 (the usual choice for transformers; 0.999 reacts slowly to spikes)
  eps?: number; // default 1e-8
  weightDecay?: number; // default 0.1
  /** Which parameters decay; default: matrices (weights, embedding, unembedding, experts), not norms, biases or sinks. */
  decays?: (p: Param) => boolean;
}

/** Adam moments for every trainable parameter, and the update with decoupled weight decay. */
export class AdamW {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  private readonly decays: (p: Param) => boolean;
  private readonly state = new Map<Param, { m: Float64Array; v: Float64Array }>();
  /** Updates taken so far (the bias corrections use it). */
  steps = 0;

  constructor(readonly params: readonly Param[], options: AdamWOptions = {}) {
    this.beta1 = options.beta1 ?? 0.9;
    this.beta2 = options.beta2 ?? 0.95;
    this.eps = options.eps ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 0.1;
    this.decays = options.decays ?? ((p) => p.shape.length >= 2);
    for (const p of params) this.state.set(p, { m: new Float64Array(p.value.length), v: new Float64Array(p.value.length) });
  }

  /** The first and second moments kept for `p` (for saving and restoring a run). */
  moments(p: Param): { m: Float64Array; v: Float64Array } {
    const state = this.state.get(p);
    if (state === undefined) throw new Error(`the optimiser does not hold ${p.name}`);
    return state;
  }

  /**
   * One update at learning rate `lr` from the parameters' current gradients: the decay shrinks a
   * weight by lr * weightDecay * w, independent of the gradient's scale (AdamW, not L2 in Adam).
   * Frozen parameters are left alone.
   */
  step(lr: number): void {
    this.steps++;
    const c1 = 1 - this.beta1 ** this.steps;
    const c2 = 1 - this.beta2 ** this.steps;
    for (const p of this.params) {
      if (!p.trainable) continue;
      const { m, v } = this.state.get(p)!;
      const decay = this.decays(p) ? lr * this.weightDecay : 0;
      const w = p.value, g = p.grad;
      for (let i = 0; i < w.length; i++) {
        m[i] = this.beta1 * m[i]! + (1 - this.beta1) * g[i]!;
        v[i] = this.beta2 * v[i]! + (1 - this.beta2) * g[i]! ** 2;
        const update = m[i]! / c1 / (Math.sqrt(v[i]! / c2) + this.eps);
        w[i] = w[i]! - decay * w[i]! - lr * update;
      }
    }
  }
}

export interface Schedule {
  peak: number;
  warmupSteps: number;
  totalSteps: number;
  /** The rate the cosine ends at, as a fraction of peak (default 0.1). */
  minRatio?: number;
}

/**
 * The learning rate for update `step` (0-based): rising linearly to `peak` over the warm-up (the
 * first update already moves, at peak/warmupSteps), then a half cosine down to peak*minRatio at
 * totalSteps, and that floor after.
 */
export function learningRate(step: number, s: Schedule): number {
  const floor = s.peak * (s.minRatio ?? 0.1);
  if (step < s.warmupSteps) return (s.peak * (step + 1)) / s.warmupSteps;
  const span = s.totalSteps - s.warmupSteps;
  if (span <= 0 || step >= s.totalSteps) return floor;
  const progress = (step - s.warmupSteps) / span;
  return floor + (s.peak - floor) * 0.5 * (1 + Math.cos(Math.PI * progress));
}

/**
 * Scales the trainable gradients so their global L2 norm is at most `maxNorm`; returns the norm
 * before clipping (a diverging run shows here first).
 */
export function clipGradients(params: readonly Param[], maxNorm: number): number {
  let sumSquares = 0;
  for (const p of params) if (p.trainable) for (const g of p.grad) sumSquares += g * g;
  const norm = Math.sqrt(sumSquares);
  if (norm > maxNorm && norm > 0) {
    const factor = maxNorm / norm;
    for (const p of params) if (p.trainable) for (let i = 0; i < p.grad.length; i++) p.grad[i] = p.grad[i]! * factor;
  }
  return norm;
}

export interface Sequence {
  tokens: readonly number[];
  /** IGNORE_TARGET where no loss (model/nextTokenTargets builds these). */
  targets: Int32Array;
}

export interface StepResult {
  /** Mean loss per counted target over the batch (with routerBalance times the balance loss). */
  loss: number;
  /** The load-balancing loss alone, token-weighted over the batch (0 without routerBalance). */
  balance: number;
  counted: number;
  /** The gradient norm before clipping. */
  gradNorm: number;
  /** Tokens run through the model: the batch's, less what shared prefixes saved. */
  computed: number;
}

/** Fewer shared tokens than this are not worth packing for. */
const MIN_SHARED_PREFIX = 16;

/** A sequence, or several packed behind the prefix they share (`layout`). */
export interface PackedSequence extends Sequence {
  layout?: PackedLayout;
}

/** How many leading tokens `s` could share: positions with no target (a shared position predicts nothing), leaving one token of its own. */
function shareable(s: Sequence): number {
  let n = 0;
  while (n < s.tokens.length - 1 && s.targets[n] === IGNORE_TARGET) n++;
  return n;
}

/**
 * The batch's sequences grouped by a common prefix (of at least MIN_SHARED_PREFIX tokens with no
 * target: a system message, say) and each group packed into one sequence: the prefix once,
 * then every member's own tokens, with the layout that makes each member see only the prefix
 * and itself (PackedLayout). The loss and gradients are the unpacked sequences' (their sum in
 * another order); the prefix's forward and backward run once per group instead of per member.
 */
export function packSharedPrefixes(batch: readonly Sequence[]): PackedSequence[] {
  const groups: { members: Sequence[]; shared: number }[] = [];
  for (const s of batch) {
    const limit = shareable(s);
    let best: { members: Sequence[]; shared: number } | undefined;
    let bestShared = 0;
    for (const g of groups) {
      const first = g.members[0]!.tokens;
      const bound = Math.min(g.shared, limit);
      let n = 0;
      while (n < bound && first[n] === s.tokens[n]) n++;
      if (n >= MIN_SHARED_PREFIX && n > bestShared) {
        best = g;
        bestShared = n;
      }
    }
    if (best === undefined) {
      groups.push({ members: [s], shared: limit });
    } else {
      best.members.push(s);
      best.shared = bestShared;
    }
  }
  return groups.map(({ members, shared }) => {
    if (members.length === 1) return members[0]!;
    const length = shared + members.reduce((n, m) => n + m.tokens.length - shared, 0);
    const tokens = members[0]!.tokens.slice(0, shared);
    const targets = new Int32Array(length);
    const segmentStart = new Int32Array(length);
    targets.set(members[0]!.targets.subarray(0, shared));
    for (const m of members) {
      const start = tokens.length;
      targets.set(m.targets.subarray(shared), start);
      for (let t = shared; t < m.tokens.length; t++) tokens.push(m.tokens[t]!);
      segmentStart.fill(start, start, tokens.length);
    }
    return { tokens, targets, layout: { prefix: shared, segmentStart } };
  });
}

/** A part of a batch's loss, summed over its sequences (before dividing by the batch's targets). */
export interface GradientSums {
  lossSum: number;
  balanceSum: number;
  computed: number;
}

/**
 * Forward and backward over `sequences`, adding into the gradients (zeroed by the caller): every
 * counted target weighs 1/`total`, the batch's count of targets (a data-parallel step passes the
 * whole batch's count to each thread's part, so the parts' gradients sum to the batch's).
 */
export function accumulateGradients(model: TrainableModel, sequences: readonly PackedSequence[], total: number, options: TrainOptions = {}): GradientSums {
  let lossSum = 0;
  let balanceSum = 0;
  const coef = options.routerBalance ?? 0;
  const c = model.config;
  let computed = 0;
  for (const s of sequences) {
    let counted = 0;
    for (const t of s.targets) if (t !== IGNORE_TARGET) counted++;
    if (counted === 0) continue;
    const tape = forwardTrain(model, s.tokens, withTargetRows(s.layout === undefined ? options : { ...options, layout: s.layout }, s.targets));
    const ce = tapeLoss(model, tape, s.targets);
    const share = counted / total; // from this sequence's mean to the batch's per-token mean
    for (let i = 0; i < ce.dlogits.length; i++) ce.dlogits[i] = ce.dlogits[i]! * share;
    let dgates: Float64Array[] | undefined;
    if (coef !== 0) {
      // Each sequence's balance loss, weighted like its cross-entropy.
      const T = s.tokens.length;
      const balance = loadBalancingForward(tape.blocks.map((b) => b.gate), tape.blocks.map((b) => b.indices), T, c.numExperts, c.expertsPerToken);
      dgates = tape.blocks.map(() => new Float64Array(T * c.numExperts));
      loadBalancingBackward(balance.saved, coef * share, T, c.numExperts, dgates);
      balanceSum += balance.loss * counted;
    }
    backwardTrain(model, tape, ce.dlogits, dgates);
    lossSum += ce.loss * counted;
    computed += s.tokens.length;
  }
  return { lossSum, balanceSum, computed };
}

/** How many targets (positions with a loss) the batch holds; throws when none. */
export function countTargets(batch: readonly Sequence[]): number {
  let total = 0;
  for (const s of batch) for (const t of s.targets) if (t !== IGNORE_TARGET) total++;
  if (total === 0) throw new Error('trainStep: no sequence in the batch has a target');
  return total;
}

/**
 * The end of a step, once the batch's gradients are summed (on every thread): tied embeddings'
 * gradients merged, clipping, the AdamW update, the result.
 */
export function finishStep(model: TrainableModel, optimizer: AdamW, sums: GradientSums, total: number, lr: number, maxGradNorm: number, options: TrainOptions): StepResult {
  const coef = options.routerBalance ?? 0;
  if (options.tiedEmbeddings === true) {
    const { embedding, unembedding } = model;
    for (let i = 0; i < embedding.grad.length; i++) embedding.grad[i] = embedding.grad[i]! + unembedding.grad[i]!;
    unembedding.grad.fill(0);
  }
  const gradNorm = clipGradients([...model.params(), ...(options.lora?.params() ?? [])], maxGradNorm);
  optimizer.step(lr);
  if (options.tiedEmbeddings === true) model.unembedding.value.set(model.embedding.value);
  return { loss: (sums.lossSum + coef * sums.balanceSum) / total, balance: sums.balanceSum / total, counted: total, gradNorm, computed: sums.computed };
}

/**
 * One optimiser step on a batch (the optimiser holds whichever parameters train: the model's, an
 * adapter's, or both): every counted target of every sequence weighs the same (a long
 * sequence counts more than a short one), gradients are clipped to `maxGradNorm`, then AdamW
 * updates at `lr`. With `sharePrefix`, sequences that begin alike are packed first
 * (packSharedPrefixes): the same loss and gradients, the shared part computed once (the
 * router's load-balancing loss, a regulariser, is then taken per packed sequence, counting
 * the shared tokens once). On one thread; train/parallel.ts splits the same step over several.
 */
export function trainStep(
  model: TrainableModel, optimizer: AdamW, batch: readonly Sequence[], lr: number, maxGradNorm = 1, options: TrainOptions = {}, sharePrefix = false,
): StepResult {
  const total = countTargets(batch);
  model.zeroGrad();
  options.lora?.zeroGrad();
  const sequences: readonly PackedSequence[] = sharePrefix ? packSharedPrefixes(batch) : batch;
  const sums = accumulateGradients(model, sequences, total, options);
  return finishStep(model, optimizer, sums, total, lr, maxGradNorm, options);
}
