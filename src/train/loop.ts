// The training loop a fine-tuning command wraps: a seeded plan of batches (examples shuffled per
// epoch, packed up to a token budget), the schedule, AdamW steps, held-out evaluation, progress
// reports, and periodic state files from which an interrupted run resumes bit-identically (the
// plan is a pure function of the seed, so a resumed run skips exactly the steps already taken).
import { existsSync } from 'node:fs';
import { UserError } from '../errors.ts';
import { seededRandom } from '../random.ts';
import type { LoraAdapters } from './lora.ts';
import { evaluationSums, type TrainOptions } from './model.ts';
import { AdamW, learningRate, trainStep, type Sequence } from './optim.ts';
import { TrainingThreads } from './parallel.ts';
import type { TrainableModel } from './params.ts';
import { loadTrainingState, saveTrainingState } from './state.ts';

/**
 * Batches for `epochs` passes over `lengths.length` examples: each epoch a seeded shuffle, then
 * consecutive examples packed while their tokens fit in `batchTokens` (an example longer than
 * the budget forms a batch alone). Returns example indices per step. With `groups` (a key per
 * example), each epoch's shuffled examples are gathered by key (keys in the order they first
 * come) before packing, and the epoch's batches are shuffled after, so that a batch holds
 * examples of one key (sharing a prefix, to be packed behind it) while the order stays random.
 */
export function planBatches(lengths: readonly number[], batchTokens: number, epochs: number, seed: number, groups?: readonly string[]): number[][] {
  if (!(batchTokens >= 1)) throw new Error(`batchTokens must be at least 1, got ${batchTokens}`);
  if (groups !== undefined && groups.length !== lengths.length) throw new Error(`planBatches: ${groups.length} group keys for ${lengths.length} examples`);
  const random = seededRandom(seed);
  const shuffle = <T>(items: T[]): void => {
    for (let i = items.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [items[i], items[j]] = [items[j]!, items[i]!];
    }
  };
  const plan: number[][] = [];
  for (let epoch = 0; epoch < epochs; epoch++) {
    let order = lengths.map((_, i) => i);
    shuffle(order);
    if (groups !== undefined) {
      const byKey = new Map<string, number[]>();
      for (const i of order) {
        const members = byKey.get(groups[i]!);
        if (members === undefined) byKey.set(groups[i]!, [i]);
        else members.push(i);
      }
      order = [...byKey.values()].flat();
    }
    const epochPlan: number[][] = [];
    let batch: number[] = [];
    let tokens = 0;
    for (const i of order) {
      if (batch.length > 0 && tokens + lengths[i]! > batchTokens) {
        epochPlan.push(batch);
        batch = [];
        tokens = 0;
      }
      batch.push(i);
      tokens += lengths[i]!;
    }
    if (batch.length > 0) epochPlan.push(batch);
    if (groups !== undefined) shuffle(epochPlan);
    plan.push(...epochPlan);
  }
  return plan;
}

export interface Progress {
  step: number; // updates done, 1-based after the first
  totalSteps: number;
  loss: number;
  gradNorm: number;
  lr: number;
  /** Loss-bearing tokens in this step. */
  tokens: number;
  /** Every token the step ran through the model (prompts included): what tokens/s counts. */
  inputTokens: number;
  /** The tokens actually computed: fewer than inputTokens when shared prefixes ran once (prefixGroups). */
  computedTokens: number;
  /** Held-out loss, on the steps where it was measured. */
  evalLoss?: number;
}

export interface FineTuneOptions {
  epochs: number;
  /** Peak learning rate. */
  lr: number;
  /** Tokens per batch (examples are packed up to it). */
  batchTokens: number;
  seed: number;
  /** Warm-up updates (default: 5% of the total, at least 1). */
  warmupSteps?: number;
  /** Where the cosine ends, as a fraction of lr (default 0.1). */
  minRatio?: number;
  maxGradNorm?: number; // default 1
  weightDecay?: number; // default 0.1 for full training, 0 for LoRA
  lora?: LoraAdapters;
  vocabulary?: Int32Array;
  routerBalance?: number;
  /** Train the embedding and unembedding as one table (TrainOptions.tiedEmbeddings); they must start equal. */
  tiedEmbeddings?: boolean;
  /**
   * A key per example: examples with the same key begin with the same tokens (a system message).
   * They are batched together (planBatches) and each batch's common prefix runs once
   * (packSharedPrefixes): the same loss and gradients, far fewer tokens computed.
   */
  prefixGroups?: readonly string[];
  /** Where the matrix products run (TrainOptions.precision): 'f64' (default) or 'f32' on the WebAssembly kernels. */
  precision?: 'f64' | 'f32';
  /** Held-out examples, evaluated every `evalEvery` steps (default: at the end only) and at the end. */
  evalExamples?: readonly Sequence[];
  evalEvery?: number;
  /** A state file: resumed from when it exists, written every `saveEvery` steps and at the end. */
  statePath?: string;
  saveEvery?: number;
  /**
   * More settings the state records (e.g. the data's hash, the learning rate): a resume with any
   * of them different is refused, naming it, as one with another seed or plan is.
   */
  stateMetadata?: Record<string, string>;
  /**
   * Threads computing each step (train/parallel.ts; default 1, the main thread alone): the batch
   * is split between them by tokens, the gradients summed in a fixed order. The plan and the
   * state file do not depend on it, so a run may resume with another count.
   */
  threads?: number;
  /** Stop after this many updates in total (an interruption, for tests and time budgets). */
  stopAfter?: number;
  onProgress?: (p: Progress) => void;
}

export interface FineTuneResult {
  steps: number;
  totalSteps: number;
  /** The last step's training loss. */
  loss: number;
  evalLoss?: number;
  resumedFrom: number;
}

function tablesEqual(a: Float64Array, b: Float64Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Token-weighted mean loss over `examples` (no gradients). */
export function evaluate(model: TrainableModel, examples: readonly Sequence[], options: TrainOptions = {}): number {
  const { sum, count } = evaluationSums(model, examples, options);
  if (count === 0) throw new Error('evaluate: no example has a target');
  return sum / count;
}

/** Trains `model` (or `options.lora` on a frozen model) on `examples`. */
export async function fineTune(model: TrainableModel, examples: readonly Sequence[], options: FineTuneOptions): Promise<FineTuneResult> {
  if (examples.length === 0) throw new Error('fineTune: no examples');
  const plan = planBatches(examples.map((e) => e.tokens.length), options.batchTokens, options.epochs, options.seed, options.prefixGroups);
  const totalSteps = plan.length;
  const schedule = {
    peak: options.lr,
    warmupSteps: options.warmupSteps ?? Math.max(1, Math.round(totalSteps * 0.05)),
    totalSteps,
    minRatio: options.minRatio ?? 0.1,
  };
  const tied = options.tiedEmbeddings === true;
  if (tied && !tablesEqual(model.embedding.value, model.unembedding.value)) {
    throw new UserError('checkpoint', 'tied embeddings need a model whose embedding and unembedding tables are equal; this one\'s differ');
  }
  // Tied, the unembedding is a copy of the embedding: the optimiser holds (and the state saves) one table.
  const params = options.lora !== undefined ? options.lora.params() : model.params().filter((p) => p.trainable && !(tied && p === model.unembedding));
  const optimizer = new AdamW(params, { weightDecay: options.weightDecay ?? (options.lora !== undefined ? 0 : 0.1) });
  const { precision } = options;
  const trainOptions: TrainOptions = { lora: options.lora, vocabulary: options.vocabulary, routerBalance: options.routerBalance, precision, ...(tied ? { tiedEmbeddings: true } : {}) };
  const evalOptions: TrainOptions = { lora: options.lora, vocabulary: options.vocabulary, precision };

  let resumedFrom = 0;
  if (options.statePath !== undefined && existsSync(options.statePath)) {
    const meta = loadTrainingState(options.statePath, params, optimizer);
    if (meta['seed'] !== String(options.seed) || meta['total_steps'] !== String(totalSteps)) {
      throw new UserError('checkpoint', `${options.statePath}: saved for seed ${meta['seed']} and ${meta['total_steps']} steps, not seed ${options.seed} and ${totalSteps}; resume with the same data and settings or start over`);
    }
    for (const [key, value] of Object.entries(options.stateMetadata ?? {})) {
      if (meta[key] !== value) {
        throw new UserError('checkpoint', `${options.statePath}: saved with ${key} ${JSON.stringify(meta[key] ?? null)}, not ${JSON.stringify(value)}; resume with the same data and settings or start over`);
      }
    }
    resumedFrom = optimizer.steps;
    if (tied) model.unembedding.value.set(model.embedding.value);
  }
  const save = (): void => {
    if (options.statePath !== undefined) saveTrainingState(options.statePath, params, optimizer, { ...options.stateMetadata, seed: String(options.seed), total_steps: String(totalSteps) });
  };

  let loss = NaN;
  let evalLoss: number | undefined;
  const stop = Math.min(totalSteps, options.stopAfter ?? totalSteps);
  const threads = options.threads ?? 1;
  if (!Number.isInteger(threads) || threads < 1) throw new Error(`fineTune: threads must be a positive integer, got ${threads}`);
  // Started after a resume has restored the weights: the workers begin from the main thread's.
  const pool = threads > 1 && resumedFrom < stop ? await TrainingThreads.start(model, threads, trainOptions) : undefined;
  try {
    for (let step = resumedFrom; step < stop; step++) {
      const lr = learningRate(step, schedule);
      const batch = plan[step]!.map((i) => examples[i]!);
      const sharePrefix = options.prefixGroups !== undefined;
      const result = pool === undefined
        ? trainStep(model, optimizer, batch, lr, options.maxGradNorm ?? 1, trainOptions, sharePrefix)
        : await pool.step(optimizer, batch, lr, options.maxGradNorm ?? 1, trainOptions, sharePrefix);
      loss = result.loss;
      const done = step + 1;
      const evalNow = options.evalExamples !== undefined && options.evalExamples.length > 0 &&
        (done === totalSteps || (options.evalEvery !== undefined && done % options.evalEvery === 0));
      if (evalNow) evalLoss = pool === undefined ? evaluate(model, options.evalExamples!, evalOptions) : await pool.evaluate(options.evalExamples!, evalOptions);
      options.onProgress?.({ step: done, totalSteps, loss, gradNorm: result.gradNorm, lr, tokens: result.counted, inputTokens: batch.reduce((n, e) => n + e.tokens.length, 0), computedTokens: result.computed, ...(evalNow ? { evalLoss } : {}) });
      if (options.saveEvery !== undefined && done % options.saveEvery === 0) save();
    }
  } finally {
    await pool?.close();
  }
  save();
  return { steps: Math.max(resumedFrom, stop), totalSteps, loss, ...(evalLoss !== undefined ? { evalLoss } : {}), resumedFrom };
}
