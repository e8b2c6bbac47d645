// Test engines for the server and scheduler tests, and startServer (a server on 127.0.0.1 with the
// official openai client pointed at it). HashEngine is a deterministic stand-in for a model: each
// sequence's next-token logits depend on its whole token history (as a transformer's would), so
// batching, chunked prefill and prefix reuse must reproduce sequential results exactly. Tests that
// need the server mid-run hold the engine at a step and wait on events (a step begun, a sequence
// discarded, a request's log line), never on the clock.
import OpenAI from 'openai';
import { UserError } from '../../src/errors.ts';
import { createServer, type ServerOptions } from '../../src/server/index.ts';
import { BatchingEngine } from '../../src/engine/scheduler.ts';
import { DelegatingEngine, type Engine, type EngineInfo, type Sequence, type StepRequest } from '../../src/engine/engine.ts';
import { tokensToText } from '../../src/harmony/index.ts';
import { getTokenizer } from '../../src/tokenizer/index.ts';

interface HashSequence extends Sequence {
  tokens: number[];
  released: boolean;
}

export class HashEngine implements Engine {
  readonly info: EngineInfo;
  readonly batches: { sequence: number; tokens: number }[][] = [];
  live = 0;
  private nextId = 1;
  private busy = false;
  constructor(vocabSize = 97, contextLength = 4096) {
    this.info = { name: 'hash', vocabSize, contextLength, randomWeights: true };
  }
  createSequence(): Sequence {
    this.live++;
    const s: HashSequence = { id: this.nextId++, tokens: [], released: false };
    return s;
  }
  async step(batch: readonly StepRequest[]): Promise<Float32Array[]> {
    if (this.busy) throw new Error('HashEngine.step is not reentrant');
    this.busy = true;
    // Yield to the event loop like a real engine's step, so that overlapping calls would show.
    await new Promise((r) => setImmediate(r));
    this.busy = false;
    this.batches.push(batch.map((r) => ({ sequence: r.sequence.id, tokens: r.tokens.length })));
    return batch.map((r) => {
      const s = r.sequence as HashSequence;
      if (s.released) throw new Error(`step on released sequence ${s.id}`);
      if (s.tokens.length + r.tokens.length > this.info.contextLength) throw new UserError('context', 'too long');
      s.tokens.push(...r.tokens);
      return HashEngine.logitsFor(s.tokens, this.info.vocabSize);
    });
  }
  static logitsFor(tokens: readonly number[], vocabSize: number): Float32Array {
    let h = 2166136261;
    for (const t of tokens) h = Math.imul(h ^ t, 16777619) >>> 0;
    const logits = new Float32Array(vocabSize);
    for (let i = 0; i < vocabSize; i++) {
      h = Math.imul(h ^ i, 16777619) >>> 0;
      logits[i] = (h % 1000) / 100;
    }
    return logits;
  }
  truncate(sequence: Sequence, length: number): void {
    (sequence as HashSequence).tokens.length = Math.min(length, sequence.tokens.length);
  }
  release(sequence: Sequence): void {
    const s = sequence as HashSequence;
    if (s.released) throw new Error(`double release of ${s.id}`);
    s.released = true;
    this.live--;
  }
  async close(): Promise<void> {}
}

export function argmax(logits: Float32Array): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
  return best;
}

/**
 * A stand-in model whose completion depends on its prompt, like a real one: `respond` maps the
 * prompt (as harmony text) to a completion (harmony text, special tokens by name). Every prompt the
 * engine saw is kept, so tests can check what the server rendered. `holdAt` stops it at a step.
 */
export class PromptEngine implements Engine {
  readonly info: EngineInfo;
  readonly prompts: string[] = [];
  readonly batches: number[] = [];
  live = 0;
  private nextId = 1;
  /** Steps the engine was asked for so far (held ones included). */
  stepsBegun = 0;
  private readonly respond: (prompt: string) => string;
  private readonly sequences = new Map<number, { tokens: number[]; script: number[] | undefined; cursor: number }>();
  private hold: { step: number; reached: () => void; opened: Promise<void>; open: () => void } | undefined;
  failWith: Error | undefined;

  constructor(respond: (prompt: string) => string, options: { contextLength?: number; name?: string } = {}) {
    this.respond = respond;
    this.info = { name: options.name ?? 'prompt-engine', vocabSize: 201088, contextLength: options.contextLength ?? 131072, randomWeights: false };
  }
  createSequence(): Sequence {
    const id = this.nextId++;
    this.live++;
    const state = { tokens: [] as number[], script: undefined as number[] | undefined, cursor: 0 };
    this.sequences.set(id, state);
    return { id, get tokens() { return state.tokens; } };
  }
  /**
   * Holds step `step` (counting from 1 over the engine's life) and every later one until resume();
   * resolves once that step has begun, when the test knows exactly how far the run got.
   */
  holdAt(step: number): Promise<void> {
    let open = (): void => {};
    const opened = new Promise<void>((resolve) => (open = resolve));
    return new Promise<void>((reached) => {
      this.hold = { step, reached, opened, open };
      if (this.stepsBegun >= step) reached();
    });
  }

  resume(): void {
    this.hold?.open();
    this.hold = undefined;
  }

  async step(batch: readonly StepRequest[]): Promise<Float32Array[]> {
    this.stepsBegun++;
    const hold = this.hold;
    if (hold !== undefined && this.stepsBegun >= hold.step) {
      hold.reached();
      await hold.opened;
    }
    if (this.failWith !== undefined) throw this.failWith;
    this.batches.push(batch.length);
    return batch.map((r) => {
      const s = this.sequences.get(r.sequence.id);
      if (s === undefined) throw new Error(`step on released sequence ${r.sequence.id}`);
      const continuing = s.script !== undefined && r.tokens.length === 1 && r.tokens[0] === s.script[s.cursor - 1];
      s.tokens.push(...r.tokens);
      if (!continuing) {
        const prompt = tokensToText(s.tokens);
        this.prompts.push(prompt);
        s.script = getTokenizer().encode(this.respond(prompt), { allowedSpecial: 'all' });
        s.cursor = 0;
      }
      const next = s.script![s.cursor++];
      if (next === undefined) throw new Error('PromptEngine: completion exhausted');
      const logits = new Float32Array(this.info.vocabSize).fill(-30);
      logits[next] = 30;
      return logits;
    });
  }
  truncate(sequence: Sequence, length: number): void {
    const s = this.sequences.get(sequence.id)!;
    s.tokens.length = Math.min(length, s.tokens.length);
    s.script = undefined;
  }
  release(sequence: Sequence): void {
    if (!this.sequences.delete(sequence.id)) throw new Error(`double release of ${sequence.id}`);
    this.live--;
  }
  async close(): Promise<void> {}
}

/** Logits from a seeded hash of the sequence: a deterministic "random weights" model over the full vocabulary. */
export class RandomLogitEngine implements Engine {
  readonly info: EngineInfo = { name: 'random', vocabSize: 201088, contextLength: 4096, randomWeights: true };
  private nextId = 1;
  private readonly sequences = new Map<number, number[]>();
  constructor(private readonly seed: number) {}
  createSequence(): Sequence {
    const id = this.nextId++;
    const tokens: number[] = [];
    this.sequences.set(id, tokens);
    return { id, tokens };
  }
  async step(batch: readonly StepRequest[]): Promise<Float32Array[]> {
    return batch.map((r) => {
      const tokens = this.sequences.get(r.sequence.id)!;
      tokens.push(...r.tokens);
      let h = (2166136261 ^ this.seed) >>> 0;
      for (const t of tokens) h = Math.imul(h ^ t, 16777619) >>> 0;
      const logits = new Float32Array(this.info.vocabSize);
      for (let i = 0; i < logits.length; i++) {
        h ^= h << 13;
        h ^= h >>> 17;
        h ^= h << 5;
        logits[i] = ((h >>> 0) % 10000) / 1000;
      }
      return logits;
    });
  }
  truncate(sequence: Sequence, length: number): void {
    const t = this.sequences.get(sequence.id)!;
    t.length = Math.min(length, t.length);
  }
  release(sequence: Sequence): void {
    this.sequences.delete(sequence.id);
  }
  async close(): Promise<void> {}
}

/** Wraps an engine and records every token each sequence was fed (the prompts the server rendered). */
export class RecordingEngine extends DelegatingEngine {
  readonly fed = new Map<number, number[]>();
  override step(batch: readonly StepRequest[]): Promise<Float32Array[]> {
    for (const r of batch) {
      const list = this.fed.get(r.sequence.id) ?? [];
      if (list.length > r.sequence.tokens.length) list.length = r.sequence.tokens.length;
      list.push(...r.tokens);
      this.fed.set(r.sequence.id, list);
    }
    return this.inner.step(batch);
  }
}

/**
 * A BatchingEngine that reports what the server does with it: `discarded` resolves when a sequence
 * is first discarded (a disconnect reached the engine), `sequencesStepped(n)` once n different
 * sequences have asked for a step (n requests are waiting in the scheduler).
 */
export class ObservedBatchingEngine extends BatchingEngine {
  readonly discarded: Promise<void>;
  private onDiscard: () => void = () => {};
  private readonly stepped = new Set<number>();
  private readonly waiters: { n: number; resolve: () => void }[] = [];

  constructor(...args: ConstructorParameters<typeof BatchingEngine>) {
    super(...args);
    this.discarded = new Promise((resolve) => (this.onDiscard = resolve));
  }

  override discard(sequence: Sequence): void {
    super.discard(sequence);
    this.onDiscard();
  }

  override step(batch: readonly StepRequest[]): Promise<Float32Array[]> {
    const result = super.step(batch);
    for (const r of batch) this.stepped.add(r.sequence.id);
    for (const w of this.waiters) if (this.stepped.size >= w.n) w.resolve();
    return result;
  }

  sequencesStepped(n: number): Promise<void> {
    return new Promise((resolve) => {
      if (this.stepped.size >= n) resolve();
      else this.waiters.push({ n, resolve });
    });
  }
}

/**
 * A server for `engine` on a free port of 127.0.0.1, the openai client for it, and its log lines;
 * `logged(pattern)` resolves with the first line matching (one is written when a request ends).
 * `cancelled` (a test's signal) closes the server when the test times out, so that an event that
 * never came fails the test instead of keeping the process alive.
 */
export async function startServer(engine: Engine, options: Partial<ServerOptions> = {}, cancelled?: AbortSignal) {
  const logs: string[] = [];
  const waiters: { pattern: RegExp; resolve: (line: string) => void }[] = [];
  const log = (line: string): void => {
    logs.push(line);
    for (const w of waiters.splice(0)) {
      if (w.pattern.test(line)) w.resolve(line);
      else waiters.push(w);
    }
  };
  const logged = (pattern: RegExp): Promise<string> =>
    new Promise((resolve) => {
      const line = logs.find((l) => pattern.test(l));
      if (line !== undefined) resolve(line);
      else waiters.push({ pattern, resolve });
    });
  const server = createServer({ engine, log, ...options });
  const running = await server.listen(0, '127.0.0.1');
  cancelled?.addEventListener('abort', () => void running.close(), { once: true });
  const client = new OpenAI({ baseURL: `${running.url}/v1`, apiKey: options.apiKey ?? 'unused', maxRetries: 0 });
  return { server, running, client, logs, logged, close: () => running.close() };
}
