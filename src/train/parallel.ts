// Data-parallel training on worker threads: a batch's sequences are cut into one contiguous part
// per thread, balanced by tokens (splitByTokens); the main thread computes the first part and each
// worker (train/step-worker.ts) one of the others, forward and backward, on the same weights. The
// model's weights live once in a SharedArrayBuffer that every worker's model views (the main
// thread copies the trained ones in after each update); each worker writes its gradients into a
// SharedArrayBuffer of its own, and the main thread adds them to its own in worker order, so a run
// is reproducible bit for bit for a given thread count. Clipping and AdamW then run on the main
// thread as on one (finishStep). Messages carry only the token sequences and the sums.
import { Worker } from 'node:worker_threads';
import type { LoraAdapters, LoraOptions } from './lora.ts';
import { evaluationSums, type EvaluationSums, type TrainOptions } from './model.ts';
import { accumulateGradients, countTargets, finishStep, packSharedPrefixes, type AdamW, type GradientSums, type PackedSequence, type Sequence, type StepResult } from './optim.ts';
import type { Param, TrainableModel } from './params.ts';

/** What a worker is built from (its workerData, after the entry's URL). */
export interface WorkerSetup {
  config: TrainableModel['config'];
  /** The model's compact vocabulary, when it has one. */
  compact: Int32Array | null;
  lora: LoraOptions | null;
  /** Every tensor of the model, then the adapter's: name, whether it trains, where its values and gradient are (-1: none). */
  tensors: { name: string; trainable: boolean; offset: number; gradOffset: number }[];
  weights: SharedArrayBuffer;
  grads: SharedArrayBuffer;
  options: WorkerTrainOptions;
}

/** The TrainOptions a worker uses (the adapter is rebuilt there). */
export interface WorkerTrainOptions {
  vocabulary?: Int32Array;
  routerBalance?: number;
  precision?: 'f64' | 'f32';
}

export type WorkerMessage =
  | { kind: 'step'; sequences: PackedSequence[]; total: number }
  | { kind: 'eval'; examples: Sequence[] };
export type WorkerRequest = WorkerMessage & { id: number };

export type WorkerReply = { id: number; ready?: true; sums?: GradientSums; eval?: EvaluationSums; error?: string };

/**
 * The batch cut into `parts` contiguous runs balanced by token count: a sequence goes to the part
 * its middle token falls in. Contiguous, so sequences that share a prefix (batched together) stay
 * together except at a cut, and each part packs them behind the prefix itself.
 */
export function splitByTokens<T extends { tokens: readonly number[] }>(batch: readonly T[], parts: number): T[][] {
  const total = batch.reduce((n, s) => n + s.tokens.length, 0);
  const out: T[][] = Array.from({ length: parts }, () => []);
  let before = 0;
  let part = 0;
  for (const s of batch) {
    const middle = before + s.tokens.length / 2;
    while (part < parts - 1 && middle > (total * (part + 1)) / parts) part++;
    out[part]!.push(s);
    before += s.tokens.length;
  }
  return out;
}

/** The options an adapter was built with (enough to build its twin on a worker; its values come from the main thread). */
function loraOptionsOf(lora: LoraAdapters): LoraOptions {
  const modules = [...lora.modules, ...lora.expertModules];
  return {
    rank: lora.rank, alpha: lora.alpha,
    targets: [...new Set(modules.map((m) => m.target))],
    layers: [...new Set(modules.map((m) => m.layer))].sort((a, b) => a - b),
    tokens: Object.fromEntries(Object.values(lora.tokens).map((t) => [t.table, [...t.ids]])),
  };
}

/** The first line of an error's message, for a one-line report. */
function firstLine(e: unknown): string {
  const text = e instanceof Error ? e.message : String(e);
  return text.split('\n', 1)[0]!;
}

class TrainingWorker {
  private readonly pending = new Map<number, { resolve: (r: WorkerReply) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  failure: Error | undefined;

  constructor(readonly index: number, readonly worker: Worker, readonly grads: Float64Array[]) {
    worker.on('message', (r: WorkerReply) => {
      const waiting = this.pending.get(r.id);
      if (waiting === undefined) return;
      this.pending.delete(r.id);
      if (this.pending.size === 0) worker.unref();
      if (r.error !== undefined) waiting.reject(this.fail(r.error));
      else waiting.resolve(r);
    });
    worker.on('error', (e) => this.failAll(this.fail(firstLine(e))));
    worker.on('exit', (code) => this.failAll(this.fail(`it exited (code ${code})`)));
  }

  private fail(reason: string): Error {
    if (this.failure === undefined) {
      this.failure = new Error(`training thread ${this.index} failed: ${reason}`);
      // The main thread's stack says nothing about where the worker failed: the error stays one line.
      this.failure.stack = `Error: ${this.failure.message}`;
    }
    return this.failure;
  }

  private failAll(e: Error): void {
    for (const { reject } of this.pending.values()) reject(e);
    this.pending.clear();
  }

  /** The reply to request 0 (the worker's start-up), or to a request sent now. */
  request(message?: WorkerMessage): Promise<WorkerReply> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    const id = message === undefined ? 0 : this.nextId++;
    const reply = new Promise<WorkerReply>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    // A pending request keeps the process alive; an idle worker does not.
    this.worker.ref();
    if (message !== undefined) this.worker.postMessage({ ...message, id });
    return reply;
  }
}

/** `threads` - 1 workers beside the main thread, training one model (or one adapter on a frozen model). */
export class TrainingThreads {
  private closed = false;

  private constructor(
    readonly threads: number,
    private readonly model: TrainableModel,
    private readonly lora: LoraAdapters | undefined,
    private readonly workers: TrainingWorker[],
    /** Each tensor's values in the shared weights, the main thread's tensors in the same order. */
    private readonly shared: { param: Param; view: Float64Array }[],
  ) {}

  /**
   * Starts the workers on `model`'s current weights (and `options.lora`'s); resolves when each
   * has built its model, rejects with the first start-up failure.
   */
  static async start(model: TrainableModel, threads: number, options: TrainOptions = {}): Promise<TrainingThreads> {
    if (!Number.isInteger(threads) || threads < 2) throw new Error(`TrainingThreads needs at least 2 threads, got ${threads}`);
    const lora = options.lora;
    const params = [...model.params(), ...(lora?.params() ?? [])];
    let weightCount = 0;
    let gradCount = 0;
    const tensors = params.map((p) => {
      const t = { name: p.name, trainable: p.trainable, offset: weightCount, gradOffset: p.trainable ? gradCount : -1 };
      weightCount += p.value.length;
      if (p.trainable) gradCount += p.value.length;
      return t;
    });
    const weights = new SharedArrayBuffer(weightCount * 8);
    const shared = params.map((p, i) => {
      const view = new Float64Array(weights, tensors[i]!.offset * 8, p.value.length);
      view.set(p.value);
      return { param: p, view };
    });
    const workerOptions: WorkerTrainOptions = {
      ...(options.vocabulary !== undefined ? { vocabulary: options.vocabulary } : {}),
      ...(options.routerBalance !== undefined ? { routerBalance: options.routerBalance } : {}),
      ...(options.precision !== undefined ? { precision: options.precision } : {}),
    };
    // Run from source, the worker's entry is TypeScript: worker.mjs registers the loader first.
    const source = import.meta.url.endsWith('.ts');
    const entry = new URL(source ? './step-worker.ts' : './step-worker.js', import.meta.url).href;
    const workers: TrainingWorker[] = [];
    for (let index = 1; index < threads; index++) {
      const grads = new SharedArrayBuffer(gradCount * 8);
      const setup: WorkerSetup = { config: model.config, compact: model.vocabulary, lora: lora === undefined ? null : loraOptionsOf(lora), tensors, weights, grads, options: workerOptions };
      const worker = new Worker(new URL('./worker.mjs', import.meta.url), { workerData: { entry, setup }, execArgv: [] });
      const gradViews = params.map((p, i) => (p.trainable ? new Float64Array(grads, tensors[i]!.gradOffset * 8, p.value.length) : new Float64Array(0)));
      workers.push(new TrainingWorker(index, worker, gradViews));
    }
    const pool = new TrainingThreads(threads, model, lora, workers, shared);
    try {
      await Promise.all(workers.map((w) => w.request()));
    } catch (e) {
      await pool.close();
      throw e;
    }
    return pool;
  }

  /**
   * trainStep's update, with the batch split over the threads (see the header): the same loss
   * and gradients up to rounding, except that a group of sequences sharing a prefix that a cut
   * divides is packed on each side, so the router's balance loss (taken per packed sequence)
   * counts it as two. `options` must be the ones the threads were started with; the workers see
   * the weights as of the start and of each step's update (nothing else reaches them).
   */
  async step(optimizer: AdamW, batch: readonly Sequence[], lr: number, maxGradNorm: number, options: TrainOptions, sharePrefix: boolean): Promise<StepResult> {
    this.assertOpen();
    const total = countTargets(batch);
    const parts = splitByTokens(batch, this.threads).map((part) => (sharePrefix ? packSharedPrefixes(part) : part));
    const replies = this.workers.map((w, i) =>
      parts[i + 1]!.length === 0 ? undefined : w.request({ kind: 'step', sequences: parts[i + 1]!, total }));
    this.model.zeroGrad();
    this.lora?.zeroGrad();
    const sums = await this.afterWorkers(replies, () => accumulateGradients(this.model, parts[0]!, total, options));
    for (let i = 0; i < this.workers.length; i++) {
      const reply = await replies[i];
      if (reply === undefined) continue;
      const grads = this.workers[i]!.grads;
      this.shared.forEach(({ param }, t) => {
        if (!param.trainable) return;
        const g = param.grad, h = grads[t]!;
        for (let k = 0; k < g.length; k++) g[k] = g[k]! + h[k]!;
      });
      sums.lossSum += reply.sums!.lossSum;
      sums.balanceSum += reply.sums!.balanceSum;
      sums.computed += reply.sums!.computed;
    }
    const result = finishStep(this.model, optimizer, sums, total, lr, maxGradNorm, options);
    for (const { param, view } of this.shared) if (param.trainable) view.set(param.value);
    return result;
  }

  /** evaluate()'s token-weighted mean loss, the examples split over the threads. */
  async evaluate(examples: readonly Sequence[], options: TrainOptions = {}): Promise<number> {
    this.assertOpen();
    const parts = splitByTokens(examples, this.threads);
    const replies = this.workers.map((w, i) => (parts[i + 1]!.length === 0 ? undefined : w.request({ kind: 'eval', examples: parts[i + 1]! })));
    const sums = await this.afterWorkers(replies, () => evaluationSums(this.model, parts[0]!, options));
    for (const reply of replies) {
      const r = await reply;
      if (r === undefined) continue;
      sums.sum += r.eval!.sum;
      sums.count += r.eval!.count;
    }
    if (sums.count === 0) throw new Error('evaluate: no example has a target');
    return sums.sum / sums.count;
  }

  /**
   * Runs the main thread's part while the workers run theirs; when it throws, waits for the
   * workers to finish first (so no reply is left behind to be read as the next one's).
   */
  private async afterWorkers<T>(replies: (Promise<WorkerReply> | undefined)[], own: () => T): Promise<T> {
    let result: T;
    try {
      result = own();
    } catch (e) {
      await Promise.allSettled(replies);
      throw e;
    }
    const failed = (await Promise.allSettled(replies)).find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
    return result;
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('the training threads are closed');
  }

  /** Stops the workers (idempotent). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.workers) w.failure ??= new Error(`training thread ${w.index} failed: the threads were closed`);
    await Promise.all(this.workers.map((w) => w.worker.terminate()));
  }
}
