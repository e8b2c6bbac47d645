// The seam between the model and everything above it (agent loop, chat, server, evals).
// Batch-first: one step() feeds several sequences at once, each with zero or more new tokens
// (a prefill chunk for one, a single decode token for another), and returns each sequence's
// logits at its last position. Continuous batching and prefix reuse are built on this interface.
import type { GenerationDefaults } from '../checkpoint/generation.ts';
import type { Pick, TopLogits } from '../model/batch.ts';
export type { Pick, TopLogits } from '../model/batch.ts';

/** Per-conversation state owned by an engine: the tokens already processed and their KV caches. */
export interface Sequence {
  readonly id: number;
  /** Token ids already processed (their keys and values are cached). */
  readonly tokens: readonly number[];
}

export interface StepRequest {
  sequence: Sequence;
  /** New tokens to process after `sequence.tokens`; must be non-empty. */
  tokens: readonly number[];
}


export interface PickingRequest extends StepRequest {
  pick?: Pick;
}


/** A request's result under stepPicking: its logits, its argmax, or its top k. */
export type Picked = Float32Array | number | TopLogits;

export interface EngineInfo {
  /** Model name reported to users and to API clients. */
  name: string;
  vocabSize: number;
  /** Longest sequence (prompt plus completion) the engine accepts. */
  contextLength: number;
  /** True when the weights are random (synthetic checkpoints): the UI must say so. */
  randomWeights: boolean;
  /** The checkpoint's sampling defaults (its generation_config.json); a request's own settings win. */
  sampling?: GenerationDefaults;
}

export interface Engine {
  readonly info: EngineInfo;
  createSequence(): Sequence;
  /**
   * Processes each request's tokens and returns, in the same order, the logits (length vocabSize)
   * after the last new token of each sequence. Throws UserError('context') when a sequence would
   * exceed the context length.
   */
  step(batch: readonly StepRequest[]): Promise<Float32Array[]>;
  /**
   * `step` for one request under greedy decoding: the id of the largest logit after its tokens
   * (the lowest on ties), for an engine that finds it without handing back the logits (a GPU
   * reads back 4 bytes). Optional; wrappers that change the logits must not offer it.
   */
  stepArgmax?(request: StepRequest): Promise<number>;
  /**
   * `step` for one request under top-k sampling: the k largest logits after its tokens (ids most
   * likely first, the lower id on ties, -1 past the finite logits; k at most MAX_TOP_K), for an
   * engine that finds them without handing back the logits (a GPU reads back 8k bytes). Optional;
   * wrappers that change the logits must not offer it.
   */
  stepTopK?(request: StepRequest, k: number): Promise<TopLogits>;
  /**
   * `step` for one request under plain softmax sampling (temperature only): the token drawn for
   * the uniform `u` in [0, 1), as the host sampler would draw it from the logits (up to the
   * rounding model/draw.ts states), for an engine that draws where the logits are (a GPU reads
   * back the row's weight sums by slice and one slice of logits). Optional, as stepArgmax.
   */
  stepDraw?(request: StepRequest, draw: { u: number; temperature: number }): Promise<number>;
  /**
   * `step` where each request may ask for its argmax, top k or a drawn token (`pick`) in place of
   * its logits, all in one pass (a batching scheduler serves stepArgmax, stepTopK and stepDraw of
   * several callers with it). Optional, under the same terms as stepArgmax.
   */
  stepPicking?(batch: readonly PickingRequest[]): Promise<Picked[]>;
  /** Forgets the tokens after `length` (prefix reuse: a new prompt sharing a prefix pays only for the suffix). */
  truncate(sequence: Sequence, length: number): void;
  /** Frees the sequence's caches. */
  release(sequence: Sequence): void;
  /** Frees everything (worker threads, memories). */
  close(): Promise<void>;
}

/**
 * An Engine that forwards every call to `inner`: wrappers (a delay, a recorder, edited logits)
 * extend it and override only what they change.
 */
export class DelegatingEngine implements Engine {
  constructor(protected readonly inner: Engine) {}
  get info(): EngineInfo {
    return this.inner.info;
  }
  createSequence(): Sequence {
    return this.inner.createSequence();
  }
  step(batch: readonly StepRequest[]): Promise<Float32Array[]> {
    return this.inner.step(batch);
  }
  truncate(sequence: Sequence, length: number): void {
    this.inner.truncate(sequence, length);
  }
  release(sequence: Sequence): void {
    this.inner.release(sequence);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

/** Length of the common prefix of two token lists. */
export function commonPrefixLength(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}
