// One generation on one sequence: reuse the cached prefix, prefill the rest of the prompt in one
// step, then decode token by token through the sampler until a stop token, a stop string, the
// token limit, the context window, or cancellation. Uses only Engine.step/truncate on its own
// sequence, so a batching scheduler implementing Engine can serve many generations at once.
import { UserError, isUserError } from '../errors.ts';
import { SPECIAL, Utf8StreamDecoder, getTokenizer } from '../tokenizer/index.ts';
import { commonPrefixLength, type Engine, type Sequence } from './engine.ts';
import { Rng, drawsFromTopK, drawsPlain, samplingParams, sampleToken, sampleTopK, type LogitsProcessor, type SampledToken, type SamplingParams, type TokenLogprob } from './sampler.ts';

/** The sampling stop set of harmony (`stop_tokens_for_assistant_actions`): `<|return|>` and `<|call|>`. */
export const ASSISTANT_ACTION_STOP_TOKENS: readonly number[] = [SPECIAL.return, SPECIAL.call];

/**
 * Why a generation ended: `stop` (a stop token, a stop string or the onToken callback), `length`
 * (maxTokens), `context` (the context window is full), `abort` (the signal fired).
 */
export type FinishReason = 'stop' | 'length' | 'context' | 'abort';

export interface GeneratedToken {
  token: number;
  /** 0-based position in this generation. */
  index: number;
  logprob?: number;
  topLogprobs?: TokenLogprob[];
}

export interface GenerateOptions {
  sampling?: Partial<SamplingParams>;
  /** Seed of a fresh random generator (ignored when `rng` is given). */
  seed?: number;
  /** A random generator to continue (the agent loop shares one across tool calls). */
  rng?: Rng;
  /** Most tokens to generate (stop token included). Default: until the context window is full. */
  maxTokens?: number;
  /** Default ASSISTANT_ACTION_STOP_TOKENS. The stop token is part of the returned tokens. */
  stopTokens?: readonly number[];
  /** Stop as soon as the decoded text of the generated (non-special) tokens contains one of these. */
  stopStrings?: readonly string[];
  processors?: readonly LogitsProcessor[];
  logprobs?: boolean;
  topLogprobs?: number;
  signal?: AbortSignal;
  /** Called after each sampled token, before it is fed back; return true to stop there ('stop'). */
  onToken?: (token: GeneratedToken) => boolean | void;
  /**
   * Feed the uncached prompt in steps of at most this many tokens, checking the abort signal
   * between them (a long prompt on a CPU can take minutes). Default: one step for all of it.
   */
  prefillChunk?: number;
  /** With prefillChunk: called after each chunk but the last (tokens of the prompt processed so far). */
  onPrefillProgress?: (info: { done: number; total: number }) => void;
  /** Called once the prompt is processed, before the first token is sampled. */
  onPrefill?: (info: { promptTokens: number; cachedTokens: number; ms: number }) => void;
}

export interface GenerateUsage {
  promptTokens: number;
  /** Prompt tokens whose keys and values were already cached (not processed again). */
  cachedTokens: number;
  completionTokens: number;
}

export interface GenerateTimings {
  /** Time to process the uncached part of the prompt and get the first logits. */
  prefillMs: number;
  /** Time spent producing the completion tokens after the first. */
  decodeMs: number;
  /** Completion tokens per second over the decode phase (0 when fewer than two tokens). */
  tokensPerSecond: number;
}

export interface GenerateResult {
  /** The generated tokens, the stop token included when there is one. */
  tokens: number[];
  finishReason: FinishReason;
  /** What stopped a 'stop' generation. */
  stopToken?: number;
  stopString?: string;
  /** Per-token log-probabilities when asked for (parallel to `tokens`). */
  logprobs?: GeneratedToken[];
  usage: GenerateUsage;
  timings: GenerateTimings;
}

/**
 * Generates a completion of `prompt` on `sequence`. The sequence keeps whatever prefix it shares
 * with the prompt; afterwards it holds the prompt and every generated token but the last, which a
 * following call (the next turn, the prompt after a tool result) finds again as cached prefix.
 * Throws UserError('context') when the prompt leaves no room in the context window; cancellation
 * and a full window mid-completion are outcomes (finishReason), not errors.
 */
export async function generate(engine: Engine, sequence: Sequence, prompt: readonly number[], options: GenerateOptions = {}): Promise<GenerateResult> {
  const contextLength = engine.info.contextLength;
  if (prompt.length === 0) throw new UserError('input', 'cannot generate from an empty prompt');
  if (prompt.length >= contextLength) {
    throw new UserError('context', `the prompt has ${prompt.length} tokens; the context window holds ${contextLength} (prompt plus completion)`);
  }
  const params = samplingParams(options.sampling, engine.info.sampling);
  const rng = options.rng ?? new Rng(options.seed);
  const stopTokens = new Set(options.stopTokens ?? ASSISTANT_ACTION_STOP_TOKENS);
  const maxTokens = options.maxTokens ?? Infinity;
  const stopMatcher = options.stopStrings !== undefined && options.stopStrings.length > 0 ? new StopStringMatcher(options.stopStrings) : undefined;
  const textDecoder = stopMatcher === undefined ? undefined : tokenTextDecoder();
  const aborted = (): boolean => options.signal?.aborted === true;
  const wantLogprobs = options.logprobs === true || (options.topLogprobs ?? 0) > 0;
  // Plain greedy decoding needs only the largest logit: an engine that finds it itself (on a GPU)
  // hands back its id instead of the logits.
  const engineArgmax = engine.stepArgmax !== undefined && params.temperature === 0 && !wantLogprobs && (options.processors ?? []).length === 0 &&
    params.repetitionPenalty === 1 && params.frequencyPenalty === 0 && params.presencePenalty === 0;
  // Top-k sampling needs only the k largest logits: such an engine hands back those (and the draw
  // on them picks what the whole logits would).
  const engineTopK = !engineArgmax && engine.stepTopK !== undefined && !wantLogprobs && (options.processors ?? []).length === 0 &&
    drawsFromTopK(params, engine.info.vocabSize);
  // Plain sampling: such an engine draws the token where the logits are, for our random number.
  const engineDraw = !engineArgmax && !engineTopK && engine.stepDraw !== undefined && !wantLogprobs && (options.processors ?? []).length === 0 &&
    drawsPlain(params, engine.info.vocabSize);

  const tokens: number[] = [];
  const logprobs: GeneratedToken[] = [];
  const started = performance.now();
  let decodeStarted = started;
  let prefillMs = 0;
  let cachedTokens = 0;

  const finish = (finishReason: FinishReason, stop: { token?: number; string?: string } = {}): GenerateResult => {
    const now = performance.now();
    const decodeMs = tokens.length > 0 ? now - decodeStarted : 0;
    const result: GenerateResult = {
      tokens,
      finishReason,
      usage: { promptTokens: prompt.length, cachedTokens, completionTokens: tokens.length },
      timings: { prefillMs, decodeMs, tokensPerSecond: tokens.length > 1 && decodeMs > 0 ? ((tokens.length - 1) * 1000) / decodeMs : 0 },
    };
    if (stop.token !== undefined) result.stopToken = stop.token;
    if (stop.string !== undefined) result.stopString = stop.string;
    if (wantLogprobs) result.logprobs = logprobs;
    return result;
  };

  if (aborted()) return finish('abort');

  // Prefix reuse: keep what the sequence shares with the prompt, but always feed at least the last
  // prompt token, since its logits are what the first sample needs.
  cachedTokens = Math.min(commonPrefixLength(sequence.tokens, prompt), prompt.length - 1);
  if (sequence.tokens.length > cachedTokens) engine.truncate(sequence, cachedTokens);
  const chunk = options.prefillChunk !== undefined && options.prefillChunk > 0 ? Math.floor(options.prefillChunk) : prompt.length;
  let logits: Float32Array | undefined;
  let picked: number | undefined; // the engine's argmax or top-k draw, in place of logits
  for (let at = cachedTokens; at < prompt.length; at += chunk) {
    if (at > cachedTokens && aborted()) return finish('abort');
    const end = Math.min(prompt.length, at + chunk);
    [logits] = await engine.step([{ sequence, tokens: prompt.slice(at, end) }]);
    if (end < prompt.length) options.onPrefillProgress?.({ done: end, total: prompt.length });
  }
  prefillMs = performance.now() - started;
  options.onPrefill?.({ promptTokens: prompt.length, cachedTokens, ms: prefillMs });

  for (;;) {
    if (aborted()) return finish('abort');
    if (tokens.length >= maxTokens) return finish('length');
    if (sequence.tokens.length >= contextLength) return finish('context');
    if (logits === undefined && picked === undefined) throw new Error('engine.step returned no logits');

    const sampled: SampledToken = picked !== undefined ? { token: picked } : sampleToken(logits!, params, rng, {
      generated: tokens,
      processors: options.processors,
      logprobs: wantLogprobs,
      topLogprobs: options.topLogprobs,
    });
    if (tokens.length === 0) decodeStarted = performance.now();
    const token = sampled.token;
    const generated: GeneratedToken = { token, index: tokens.length };
    if (sampled.logprob !== undefined) generated.logprob = sampled.logprob;
    if (sampled.topLogprobs !== undefined) generated.topLogprobs = sampled.topLogprobs;
    tokens.push(token);
    if (wantLogprobs) logprobs.push(generated);

    const callbackStop = options.onToken?.(generated) === true;
    if (stopTokens.has(token)) return finish('stop', { token });
    if (stopMatcher !== undefined && textDecoder !== undefined) {
      const hit = stopMatcher.push(textDecoder(token));
      if (hit !== undefined) return finish('stop', { string: hit.stop });
    }
    if (callbackStop) return finish('stop');
    if (tokens.length >= maxTokens) return finish('length');
    if (sequence.tokens.length + 1 > contextLength) return finish('context');
    if (aborted()) return finish('abort');

    try {
      if (engineArgmax) picked = await engine.stepArgmax!({ sequence, tokens: [token] });
      else if (engineTopK) {
        const top = await engine.stepTopK!({ sequence, tokens: [token] }, params.topK);
        picked = sampleTopK(top.ids, top.values, params, rng);
      } else if (engineDraw) picked = await engine.stepDraw!({ sequence, tokens: [token] }, { u: rng.nextFloat(), temperature: params.temperature });
      else [logits] = await engine.step([{ sequence, tokens: [token] }]);
    } catch (e) {
      // Another user of a shared engine may have changed the limits; a full window is an outcome.
      if (isUserError(e) && e.kind === 'context') return finish('context');
      throw e;
    }
  }
}

// ---- stop strings ------------------------------------------------------------------------------

export interface StopStringHit {
  stop: string;
  /** The text up to (not including) the stop string, counted from the first push. */
  textBefore: string;
}

/**
 * Finds the first of several stop strings in text that arrives in pieces. `safeText()` tells how
 * much of the text can be shown now without risking a stop string that is still being completed,
 * so streamed output never shows a stop string or part of one.
 */
export class StopStringMatcher {
  private text = '';
  private readonly stops: string[];
  private readonly longest: number;
  private hit: StopStringHit | undefined;

  constructor(stops: readonly string[]) {
    this.stops = stops.filter((s) => s.length > 0);
    this.longest = Math.max(0, ...this.stops.map((s) => s.length));
  }

  /** Appends text; returns the hit when a stop string is now complete (and on every later call). */
  push(piece: string): StopStringHit | undefined {
    if (this.hit !== undefined) return this.hit;
    const searchFrom = Math.max(0, this.text.length - this.longest + 1);
    this.text += piece;
    let best: StopStringHit | undefined;
    let bestAt = Infinity;
    for (const stop of this.stops) {
      const at = this.text.indexOf(stop, searchFrom);
      if (at >= 0 && at < bestAt) {
        bestAt = at;
        best = { stop, textBefore: this.text.slice(0, at) };
      }
    }
    this.hit = best;
    return best;
  }

  /** Length of the prefix of the text pushed so far that cannot be part of a stop string. */
  safeLength(): number {
    if (this.hit !== undefined) return this.hit.textBefore.length;
    let safe = this.text.length;
    for (const stop of this.stops) {
      for (let k = Math.min(stop.length - 1, this.text.length); k > 0; k--) {
        if (this.text.endsWith(stop.slice(0, k))) {
          safe = Math.min(safe, this.text.length - k);
          break;
        }
      }
    }
    return safe;
  }
}

/** Decodes generated tokens to text incrementally; special tokens contribute no text. */
function tokenTextDecoder(): (token: number) => string {
  const tokenizer = getTokenizer();
  const utf8 = new Utf8StreamDecoder();
  return (token) => (tokenizer.isSpecial(token) ? '' : utf8.push(tokenizer.tokenBytes(token)));
}
