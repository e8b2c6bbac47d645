// Continuous batching over one Engine. Callers (one generation loop per request) call step() for
// their own sequence as if they had the engine to themselves; the BatchingEngine gathers the calls
// that arrive while the engine is busy into one batched inner step: decode tokens of running
// sequences first, then prefill chunks of new ones (a long prompt is split over several steps so it
// never stalls the decodes). A pool of finished sequences gives prefix caching across requests:
// acquire(prompt) hands out the cached sequence sharing the longest prefix with the new prompt.
// Over an engine that picks tokens where the logits are (stepPicking: a GPU), it offers stepArgmax,
// stepTopK and stepDraw too, batched with the other callers' steps, so greedy, top-k and plain
// sampling requests read back a few bytes (a few KB for a draw) per token instead of the logits.
import { UserError } from '../errors.ts';
import { commonPrefixLength, type Engine, type EngineInfo, type Pick, type Picked, type Sequence, type StepRequest, type TopLogits } from './engine.ts';

export interface BatchingOptions {
  /** Tokens processed by one inner step at most (decodes plus prefill chunks). Default 512. */
  maxBatchTokens?: number;
  /** Longest prefill chunk of one sequence per step. Default 256. */
  prefillChunk?: number;
  /** Finished sequences kept for prefix reuse (each holds its KV cache). */
  poolSize?: number;
  /** A cached sequence is reused only when it shares at least this many tokens with the prompt. */
  minReuse?: number;
}

export interface BatchingStats {
  /** Inner engine steps run. */
  steps: number;
  /** Largest number of sequences in one inner step. */
  maxSequencesPerStep: number;
  /** Tokens processed by the inner engine. */
  tokensProcessed: number;
  /** Prompt tokens skipped because a cached sequence already held them. */
  tokensReused: number;
}

/** Thrown to a step() whose sequence was released while it waited. */
export class CancelledError extends Error {
  constructor() {
    super('sequence released while a step was pending');
    this.name = 'CancelledError';
  }
}

interface Work {
  sequence: Sequence;
  tokens: readonly number[];
  /** The argmax or top k wanted in place of the logits. */
  pick?: Pick;
  done: number;
  resolve: (result: Picked) => void;
  reject: (e: unknown) => void;
}

export class BatchingEngine implements Engine {
  readonly info: EngineInfo;
  readonly stats: BatchingStats = { steps: 0, maxSequencesPerStep: 0, tokensProcessed: 0, tokensReused: 0 };
  private readonly inner: Engine;
  private readonly maxBatchTokens: number;
  private readonly prefillChunk: number;
  private readonly poolSize: number;
  private readonly minReuse: number;
  private pending: Work[] = [];
  /** Sequences inside the running inner step; a release() waits for the step to end. */
  private inflight = new Set<Sequence>();
  private doomed = new Set<Sequence>();
  /** Sequences already given back to the inner engine (release/discard are idempotent). */
  private freed = new WeakSet<Sequence>();
  /** Released sequences kept for prefix reuse, least recently used first. */
  private pool: Sequence[] = [];
  private looping = false;
  private closed = false;
  /** Present when the inner engine has stepPicking. */
  readonly stepArgmax?: (request: StepRequest) => Promise<number>;
  readonly stepTopK?: (request: StepRequest, k: number) => Promise<TopLogits>;
  readonly stepDraw?: (request: StepRequest, draw: { u: number; temperature: number }) => Promise<number>;

  constructor(inner: Engine, options: BatchingOptions = {}) {
    this.inner = inner;
    this.info = inner.info;
    this.maxBatchTokens = options.maxBatchTokens ?? 512;
    this.prefillChunk = Math.min(options.prefillChunk ?? 256, this.maxBatchTokens);
    this.poolSize = options.poolSize ?? 8;
    this.minReuse = options.minReuse ?? 1;
    if (inner.stepPicking !== undefined) {
      this.stepArgmax = async (request) => (await this.enqueueOne(request, 'argmax')) as number;
      this.stepTopK = async (request, k) => (await this.enqueueOne(request, k)) as TopLogits;
      this.stepDraw = async (request, draw) => (await this.enqueueOne(request, draw)) as number;
    }
  }

  private enqueueOne(request: StepRequest, pick: Pick): Promise<Picked> {
    try {
      return this.enqueue([request], pick).then((r) => r[0]!);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  createSequence(): Sequence {
    return this.inner.createSequence();
  }

  /**
   * A sequence ready for `prompt`: the pooled one sharing the longest prefix (truncated to that
   * prefix, keeping at least one prompt token to feed so the caller gets logits), or a new one.
   */
  acquire(prompt: readonly number[]): Sequence {
    let best = -1;
    let bestLength = 0;
    for (let i = 0; i < this.pool.length; i++) {
      const n = Math.min(commonPrefixLength(this.pool[i]!.tokens, prompt), prompt.length - 1);
      if (n > bestLength) {
        best = i;
        bestLength = n;
      }
    }
    if (best < 0 || bestLength < this.minReuse) return this.inner.createSequence();
    const [sequence] = this.pool.splice(best, 1);
    this.inner.truncate(sequence!, bestLength);
    this.stats.tokensReused += bestLength;
    return sequence!;
  }

  step(batch: readonly StepRequest[]): Promise<Float32Array[]> {
    try {
      return this.enqueue(batch) as Promise<Float32Array[]>;
    } catch (e) {
      return Promise.reject(e);
    }
  }

  private enqueue(batch: readonly StepRequest[], pick?: Pick): Promise<Picked[]> {
    if (this.closed) throw new Error('engine closed');
    const works = batch.map((request) => {
      if (this.freed.has(request.sequence)) throw new CancelledError();
      if (request.tokens.length === 0) throw new Error('step: empty token list');
      const total = request.sequence.tokens.length + request.tokens.length;
      if (total > this.info.contextLength) {
        throw new UserError('context', `${total} tokens exceed the context window of ${this.info.contextLength}`);
      }
      if (this.pending.some((w) => w.sequence === request.sequence)) throw new Error(`sequence ${request.sequence.id} already has a pending step`);
      return new Promise<Picked>((resolve, reject) => {
        this.pending.push({ sequence: request.sequence, tokens: request.tokens, ...(pick === undefined ? {} : { pick }), done: 0, resolve, reject });
      });
    });
    this.kick();
    return Promise.all(works);
  }

  truncate(sequence: Sequence, length: number): void {
    this.inner.truncate(sequence, length);
  }

  /** Returns the sequence to the prefix-cache pool (evicting the least recently used one). */
  release(sequence: Sequence): void {
    if (this.freed.has(sequence)) return;
    if (this.cancelPending(sequence)) {
      this.discard(sequence);
      return;
    }
    if (this.inflight.has(sequence)) {
      this.doomed.add(sequence);
      return;
    }
    if (this.poolSize === 0 || sequence.tokens.length === 0) {
      this.free(sequence);
      return;
    }
    if (!this.pool.includes(sequence)) this.pool.push(sequence);
    while (this.pool.length > this.poolSize) this.free(this.pool.shift()!);
  }

  /** Frees the sequence at once (a cancelled request): its pending step is rejected, its cache dropped. */
  discard(sequence: Sequence): void {
    if (this.freed.has(sequence)) return;
    this.cancelPending(sequence);
    const i = this.pool.indexOf(sequence);
    if (i >= 0) this.pool.splice(i, 1);
    if (this.inflight.has(sequence)) this.doomed.add(sequence);
    else this.free(sequence);
  }

  private free(sequence: Sequence): void {
    if (this.freed.has(sequence)) return;
    this.freed.add(sequence);
    this.inner.release(sequence);
  }

  /** Sequences currently waiting for or inside a step. */
  get activeSequences(): number {
    return this.pending.length + this.inflight.size;
  }

  get pooledSequences(): number {
    return this.pool.length;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.pending) w.reject(new CancelledError());
    this.pending = [];
    for (const s of this.pool) this.free(s);
    this.pool = [];
    await this.inner.close();
  }

  private cancelPending(sequence: Sequence): boolean {
    const i = this.pending.findIndex((w) => w.sequence === sequence);
    if (i < 0) return false;
    const [work] = this.pending.splice(i, 1);
    work!.reject(new CancelledError());
    return true;
  }

  private kick(): void {
    if (this.looping) return;
    this.looping = true;
    void this.loop();
  }

  private async loop(): Promise<void> {
    try {
      for (;;) {
        // Let every caller whose step just resolved sample and submit its next token first, so the
        // next inner step carries all of them.
        await new Promise<void>((resolve) => setImmediate(resolve));
        if (this.pending.length === 0) return;
        await this.runOneStep();
      }
    } finally {
      this.looping = false;
      if (this.pending.length > 0 && !this.closed) this.kick();
    }
  }

  private async runOneStep(): Promise<void> {
    // Decodes (one token left) first, then prefill chunks in arrival order, within the token budget.
    const ordered = [...this.pending.filter((w) => w.tokens.length - w.done === 1), ...this.pending.filter((w) => w.tokens.length - w.done > 1)];
    const chosen: { work: Work; count: number }[] = [];
    let budget = this.maxBatchTokens;
    for (const work of ordered) {
      const count = Math.min(work.tokens.length - work.done, this.prefillChunk, budget);
      if (count <= 0) break;
      chosen.push({ work, count });
      budget -= count;
    }
    for (const { work } of chosen) this.inflight.add(work.sequence);
    const requests = chosen.map(({ work, count }) => ({ sequence: work.sequence, tokens: work.tokens.slice(work.done, work.done + count) }));
    this.stats.steps++;
    this.stats.maxSequencesPerStep = Math.max(this.stats.maxSequencesPerStep, requests.length);
    this.stats.tokensProcessed += requests.reduce((s, r) => s + r.tokens.length, 0);
    // A pick is asked for only with the work's last tokens (earlier chunks' results are dropped).
    const picking = chosen.map(({ work, count }, i) => ({ ...requests[i]!, ...(work.pick !== undefined && work.done + count === work.tokens.length ? { pick: work.pick } : {}) }));
    let results: Picked[] | undefined;
    let failure: unknown;
    try {
      results = picking.some((r) => r.pick !== undefined) ? await this.inner.stepPicking!(picking) : await this.inner.step(requests);
    } catch (e) {
      failure = e;
    }
    for (const [i, { work, count }] of chosen.entries()) {
      this.inflight.delete(work.sequence);
      const stillPending = this.pending.includes(work);
      if (this.doomed.delete(work.sequence)) {
        if (stillPending) this.pending.splice(this.pending.indexOf(work), 1);
        this.free(work.sequence);
        work.reject(new CancelledError());
        continue;
      }
      if (!stillPending) continue; // cancelled while in flight; already rejected
      if (failure !== undefined) {
        this.pending.splice(this.pending.indexOf(work), 1);
        work.reject(failure);
        continue;
      }
      work.done += count;
      if (work.done === work.tokens.length) {
        this.pending.splice(this.pending.indexOf(work), 1);
        work.resolve(results![i]!);
      }
    }
  }
}
