// Token sampling: a pure function of the logits, the sampling parameters, the tokens generated so
// far and a seeded random generator, so a seed reproduces a completion exactly. Order of the
// pipeline (as Hugging Face and vLLM apply it): penalties -> logits processors (constraints) ->
// temperature -> top-k -> top-p -> min-p -> draw. Temperature 0 is greedy decoding.
import { UserError } from '../errors.ts';
import { MAX_TOP_K } from '../model/workspace.ts';
import { splitmix32, Xoshiro128 } from '../random.ts';

export interface SamplingParams {
  /** Softmax temperature; 0 picks the most likely token (greedy). Default 1.0 (the model card's recommendation), or the checkpoint's generation_config.json. */
  temperature: number;
  /** Nucleus sampling: keep the most likely tokens whose probabilities add up to at least topP. 1 = off. */
  topP: number;
  /** Keep only the k most likely tokens. 0 = off. */
  topK: number;
  /** Drop tokens whose probability is below minP times the most likely token's. 0 = off. */
  minP: number;
  /** CTRL-style penalty on tokens already generated: positive logits divided by it, negative multiplied. 1 = off. */
  repetitionPenalty: number;
  /** OpenAI semantics: logit -= frequencyPenalty * (times the token was generated). */
  frequencyPenalty: number;
  /** OpenAI semantics: logit -= presencePenalty if the token was generated at all. */
  presencePenalty: number;
}

export const DEFAULT_SAMPLING: Readonly<SamplingParams> = Object.freeze({
  temperature: 1.0,
  topP: 1.0,
  topK: 0,
  minP: 0,
  repetitionPenalty: 1.0,
  frequencyPenalty: 0,
  presencePenalty: 0,
});

/**
 * A constraint on the next token (e.g. JSON-schema decoding): sets the logits of disallowed ids to
 * -Infinity in place. `generated` holds the tokens sampled so far in this generation.
 */
export type LogitsProcessor = (logits: Float32Array, generated: readonly number[]) => void;

/**
 * Fills in defaults and rejects out-of-range values with a one-line UserError naming the field.
 * `model` holds the checkpoint's own defaults (EngineInfo.sampling, from its generation_config.json):
 * they replace DEFAULT_SAMPLING's, and every field `partial` sets (not undefined) wins over both.
 */
export function samplingParams(partial: Partial<SamplingParams> = {}, model: Partial<SamplingParams> = {}): SamplingParams {
  const p: SamplingParams = { ...DEFAULT_SAMPLING };
  for (const layer of [model, partial]) {
    for (const [key, value] of Object.entries(layer) as [keyof SamplingParams, number | undefined][]) {
      if (value !== undefined) p[key] = value;
    }
  }
  const check = (name: keyof SamplingParams, ok: (v: number) => boolean, range: string): void => {
    const v = p[name];
    if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) throw new UserError('input', `${name} must be ${range}, got ${String(v)}`);
  };
  check('temperature', (v) => v >= 0, 'a number >= 0');
  check('topP', (v) => v > 0 && v <= 1, 'in (0, 1]');
  check('topK', (v) => Number.isInteger(v) && v >= 0, 'an integer >= 0');
  check('minP', (v) => v >= 0 && v <= 1, 'in [0, 1]');
  check('repetitionPenalty', (v) => v > 0, 'a number > 0');
  check('frequencyPenalty', (v) => v >= -2 && v <= 2, 'in [-2, 2]');
  check('presencePenalty', (v) => v >= -2 && v <= 2, 'in [-2, 2]');
  return p;
}

// ---- random numbers --------------------------------------------------------------------------

/** xoshiro128** seeded through splitmix32: small, fast, and identical on every platform. */
export class Rng extends Xoshiro128 {
  /** Any finite number is a valid seed; without one the generator is seeded from the clock and Math.random. */
  constructor(seed?: number) {
    const next = splitmix32(seed === undefined ? (Date.now() ^ Math.floor(Math.random() * 0x100000000)) >>> 0 : seedToUint32(seed));
    super(next(), next(), next(), next());
  }

  /** Uniform in [0, 1) with 53 bits of precision. */
  nextFloat(): number {
    const a = this.nextU32() >>> 5;
    const b = this.nextU32() >>> 6;
    return (a * 67108864 + b) / 9007199254740992;
  }
}

/** Folds a (possibly large or fractional) seed into 32 bits so distinct integer seeds stay distinct up to 2^53. */
function seedToUint32(seed: number): number {
  if (!Number.isFinite(seed)) throw new UserError('input', `seed must be a finite number, got ${seed}`);
  const lo = seed >>> 0;
  const hi = Math.floor(seed / 0x100000000) >>> 0;
  return (lo ^ Math.imul(hi, 0x9e3779b1)) >>> 0;
}

// ---- sampling --------------------------------------------------------------------------------

export interface TokenLogprob {
  token: number;
  /** Natural log of the token's probability under the model (raw logits, before penalties, constraints and temperature). */
  logprob: number;
}

export interface SampledToken {
  token: number;
  /** Present when `logprobs` was asked for. */
  logprob?: number;
  /** The `topLogprobs` most likely tokens, most likely first. */
  topLogprobs?: TokenLogprob[];
}

export interface SampleOptions {
  /** Tokens generated so far (penalties count these; processors receive them). */
  generated?: readonly number[];
  processors?: readonly LogitsProcessor[];
  /** Report the chosen token's log-probability. */
  logprobs?: boolean;
  /** Report this many alternatives with their log-probabilities (implies logprobs). */
  topLogprobs?: number;
}

/**
 * Picks the next token. `logits` is not modified. Throws a UserError when the processors leave no
 * token allowed. Deterministic given (logits, params, rng state, options).
 */
export function sampleToken(logits: Float32Array, params: SamplingParams, rng: Rng, options: SampleOptions = {}): SampledToken {
  const generated = options.generated ?? [];
  const processors = options.processors ?? [];
  const modifies = processors.length > 0 || (generated.length > 0 && (params.repetitionPenalty !== 1 || params.frequencyPenalty !== 0 || params.presencePenalty !== 0));
  const working = modifies ? new Float32Array(logits) : logits;
  if (modifies) {
    applyPenalties(working, params, generated);
    for (const processor of processors) processor(working, generated);
  }

  const token = params.temperature === 0 ? argmax(working) : draw(working, params, rng);
  if (token < 0) throw new UserError('input', 'no token is allowed: the constraints masked out the whole vocabulary');

  const result: SampledToken = { token };
  const top = options.topLogprobs ?? 0;
  if (options.logprobs === true || top > 0) {
    const logZ = logSumExp(logits);
    result.logprob = logits[token]! - logZ;
    if (top > 0) result.topLogprobs = topIndices(logits, top).map((i) => ({ token: i, logprob: logits[i]! - logZ }));
  }
  return result;
}

/** Applies the repetition, frequency and presence penalties in place. */
export function applyPenalties(logits: Float32Array, params: SamplingParams, generated: readonly number[]): void {
  if (generated.length === 0) return;
  if (params.repetitionPenalty === 1 && params.frequencyPenalty === 0 && params.presencePenalty === 0) return;
  const counts = new Map<number, number>();
  for (const t of generated) counts.set(t, (counts.get(t) ?? 0) + 1);
  for (const [t, count] of counts) {
    if (t < 0 || t >= logits.length) continue;
    let v = logits[t]!;
    if (params.repetitionPenalty !== 1) v = v > 0 ? v / params.repetitionPenalty : v * params.repetitionPenalty;
    v -= params.frequencyPenalty * count + params.presencePenalty;
    logits[t] = v;
  }
}

/** Index of the largest finite logit (lowest index on ties); -1 if none is finite. */
export function argmax(logits: Float32Array): number {
  let best = -1;
  let bestValue = -Infinity;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i]!;
    if (v > bestValue) {
      bestValue = v;
      best = i;
    }
  }
  return best;
}

/** Reused per-token weight buffer (one float64 per vocabulary entry), so sampling allocates nothing per token. */
let scratch = new Float64Array(0);

/**
 * exp((logit - max) / T) for every token into the scratch buffer (the most likely token has
 * weight 1; masked tokens 0), and their sum.
 */
function weightsOf(logits: Float32Array, max: number, invT: number): { w: Float64Array; total: number } {
  const n = logits.length;
  if (scratch.length < n) scratch = new Float64Array(n);
  const w = scratch;
  let total = 0;
  for (let i = 0; i < n; i++) {
    const x = Math.exp((logits[i]! - max) * invT);
    w[i] = x;
    total += x;
  }
  return { w, total };
}

/**
 * The candidate tokens and their unnormalized weights after temperature, top-k, top-p and min-p,
 * in the order the draw walks them (most likely first once top-k or top-p sorted them, else by id).
 * Exported for tests: the masks can be checked without sampling.
 */
export function candidates(logits: Float32Array, params: SamplingParams): { ids: number[]; weights: number[] } {
  const n = logits.length;
  const top = argmax(logits);
  if (top < 0) return { ids: [], weights: [] };
  const max = logits[top]!;
  const invT = 1 / params.temperature;
  // Weights relative to the most likely token (weight 1), computed only for the tokens kept.
  const weight = (id: number): number => Math.exp((logits[id]! - max) * invT);

  if (params.topK > 0 && params.topK < n) return fromTopK(topIndices(logits, params.topK), (id) => logits[id]!, params);
  let ids: number[];
  if (params.topP < 1) {
    const { w, total } = weightsOf(logits, max, invT);
    const sorted = nucleusSuperset(logits, w, total, params.topP);
    ids = nucleus(sorted, (j) => w[sorted[j]!]!, total, params.topP);
  } else {
    // min-p alone (or nothing): a logit threshold avoids an exp per token; slack keeps it a superset.
    const floor = params.minP > 0 ? max + Math.log(params.minP) / invT - 1e-3 : -Infinity;
    ids = [];
    for (let i = 0; i < n; i++) {
      const x = logits[i]!;
      if (x > -Infinity && x >= floor) ids.push(i);
    }
  }
  if (params.minP > 0) ids = ids.filter((id) => weight(id) >= params.minP);
  return { ids, weights: ids.map(weight) };
}

/**
 * Top-p and min-p over the top-k tokens `ids` (most likely first, ties by lower id; `logit` gives
 * each one's logit) and their weights relative to the first.
 */
function fromTopK(ids: number[], logit: (id: number) => number, params: SamplingParams): { ids: number[]; weights: number[] } {
  if (ids.length === 0) return { ids, weights: [] };
  const max = logit(ids[0]!), invT = 1 / params.temperature;
  const weight = (id: number): number => Math.exp((logit(id) - max) * invT);
  if (params.topP < 1) {
    const ws = ids.map(weight);
    let kept = 0;
    for (const x of ws) kept += x;
    ids = nucleus(ids, (j) => ws[j]!, kept, params.topP);
  }
  if (params.minP > 0) ids = ids.filter((id) => weight(id) >= params.minP);
  return { ids, weights: ids.map(weight) };
}


/**
 * Whether `params` draw from the topK most likely tokens with nothing else changing the logits, so
 * that an engine's top-k candidates decide the token as the whole logits would (`sampleTopK`).
 */
export function drawsFromTopK(params: SamplingParams, vocabSize: number): boolean {
  return params.temperature > 0 && params.topK > 0 && params.topK <= MAX_TOP_K && params.topK < vocabSize &&
    params.repetitionPenalty === 1 && params.frequencyPenalty === 0 && params.presencePenalty === 0;
}

/**
 * Whether `params` are plain softmax sampling (a temperature, no top-k, top-p, min-p or
 * penalties): an engine's stepDraw then draws the token sampleToken would (see model/draw.ts).
 */
export function drawsPlain(params: SamplingParams, vocabSize: number): boolean {
  return params.temperature > 0 && !(params.topK > 0 && params.topK < vocabSize) && params.topP === 1 && params.minP === 0 &&
    params.repetitionPenalty === 1 && params.frequencyPenalty === 0 && params.presencePenalty === 0;
}

/**
 * `sampleToken`'s draw from the top-k candidates alone (`ids` most likely first, ties by lower id,
 * with their logits `values`): the same token for the same logits and random state.
 */
export function sampleTopK(ids: Int32Array, values: Float32Array, params: SamplingParams, rng: Rng): number {
  const logitOf = new Map<number, number>();
  const order: number[] = [];
  for (let j = 0; j < Math.min(ids.length, params.topK); j++) {
    if (ids[j]! < 0) break; // fewer tokens than k have a finite logit
    order.push(ids[j]!);
    logitOf.set(ids[j]!, values[j]!);
  }
  const c = fromTopK(order, (id) => logitOf.get(id)!, params);
  const token = walk(c.ids, c.weights, rng);
  if (token < 0) throw new UserError('input', 'no token is allowed: the constraints masked out the whole vocabulary');
  return token;
}

/** Draws from `ids` in order with probabilities proportional to `weights`; -1 when there are none. */
function walk(ids: readonly number[], weights: readonly number[], rng: Rng): number {
  if (ids.length === 0) return -1;
  let total = 0;
  for (const x of weights) total += x;
  const target = rng.nextFloat() * total;
  let cum = 0;
  for (let j = 0; j < ids.length; j++) {
    cum += weights[j]!;
    if (target < cum) return ids[j]!;
  }
  return ids[ids.length - 1]!;
}

/** The shortest prefix of `sorted` (most likely first) whose weight reaches topP of `total`. */
function nucleus(sorted: number[], weightAt: (j: number) => number, total: number, topP: number): number[] {
  let cum = 0;
  for (let j = 0; j < sorted.length; j++) {
    cum += weightAt(j);
    if (cum >= topP * total) return sorted.slice(0, j + 1);
  }
  return sorted;
}

function draw(logits: Float32Array, params: SamplingParams, rng: Rng): number {
  const truncated = (params.topK > 0 && params.topK < logits.length) || params.topP < 1 || params.minP > 0;
  if (truncated) {
    const { ids, weights } = candidates(logits, params);
    return walk(ids, weights, rng);
  }
  // Plain softmax sampling: one pass for the weights, one for the cumulative walk; no arrays.
  const top = argmax(logits);
  if (top < 0) return -1;
  const { w, total } = weightsOf(logits, logits[top]!, 1 / params.temperature);
  const target = rng.nextFloat() * total;
  let cum = 0;
  let lastPositive = top;
  for (let i = 0; i < logits.length; i++) {
    const x = w[i]!;
    if (x > 0) {
      cum += x;
      lastPositive = i;
      if (target < cum) return i;
    }
  }
  return lastPositive;
}

/**
 * The tokens most likely first (ties: lower id first), enough of them to contain the top-p nucleus,
 * without sorting the whole vocabulary: tokens below a weight threshold t hold at most
 * (count below t) * t of the mass, so once the tokens above t hold topP of it they contain the nucleus.
 */
function nucleusSuperset(logits: Float32Array, w: Float64Array, total: number, topP: number): number[] {
  const n = logits.length;
  for (let threshold = 1e-3; threshold > 1e-12; threshold /= 16) {
    const ids: number[] = [];
    let mass = 0;
    const minWeight = threshold * total;
    for (let i = 0; i < n; i++) {
      const x = w[i]!;
      if (x >= minWeight) {
        ids.push(i);
        mass += x;
      }
    }
    if (mass >= topP * total) return sortByLogit(ids, logits);
  }
  const all: number[] = [];
  for (let i = 0; i < n; i++) if (logits[i]! > -Infinity) all.push(i);
  return sortByLogit(all, logits);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Sorts ids by logit, largest first, ties by lower id. Large lists go through a native numeric sort. */
function sortByLogit(ids: number[], logits: Float32Array): number[] {
  if (ids.length < 2048 || logits.length > 1 << 18) return ids.sort((a, b) => logits[b]! - logits[a]! || a - b);
  // Key = (descending order-preserving image of the float32 bits) * 2^18 + id: exact in float64 (< 2^50).
  const keys = new Float64Array(ids.length);
  for (let j = 0; j < ids.length; j++) {
    const id = ids[j]!;
    f32[0] = logits[id]!;
    const bits = u32[0]!;
    const ascending = bits & 0x80000000 ? ~bits >>> 0 : (bits | 0x80000000) >>> 0;
    keys[j] = (0xffffffff - ascending) * 262144 + id;
  }
  keys.sort();
  for (let j = 0; j < keys.length; j++) ids[j] = keys[j]! % 262144;
  return ids;
}

/** The k ids with the largest finite logits, largest first (ties: lower id first). */
export function topIndices(logits: Float32Array, k: number): number[] {
  // A size-k min-heap of ids keyed by (logit, -id), in a typed array: O(V log k), no allocation per id.
  const heap = new Int32Array(Math.max(1, Math.min(k, logits.length)));
  let size = 0;
  const worse = (a: number, b: number): boolean => {
    const la = logits[a]!;
    const lb = logits[b]!;
    return la < lb || (la === lb && a > b);
  };
  const siftDown = (start: number): void => {
    let i = start;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < size && worse(heap[l]!, heap[m]!)) m = l;
      if (r < size && worse(heap[r]!, heap[m]!)) m = r;
      if (m === i) return;
      const t = heap[i]!;
      heap[i] = heap[m]!;
      heap[m] = t;
      i = m;
    }
  };
  for (let id = 0; id < logits.length; id++) {
    const v = logits[id]!;
    if (!(v > -Infinity)) continue;
    if (size < k) {
      let i = size++;
      heap[i] = id;
      while (i > 0) {
        const parent = (i - 1) >> 1;
        if (!worse(heap[i]!, heap[parent]!)) break;
        const t = heap[i]!;
        heap[i] = heap[parent]!;
        heap[parent] = t;
        i = parent;
      }
    } else if (v > logits[heap[0]!]!) {
      // Strictly greater: on a tie the heap's (lower) id stays.
      heap[0] = id;
      siftDown(0);
    }
  }
  return sortByLogit(Array.from(heap.subarray(0, size)), logits);
}

function logSumExp(logits: Float32Array): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i]! > max) max = logits[i]!;
  if (max === -Infinity) return -Infinity;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i]! - max);
  return max + Math.log(sum);
}

/** A sampler bound to its parameters, random generator and processors: one per generation. */
export class Sampler {
  readonly params: SamplingParams;
  readonly rng: Rng;
  constructor(params: Partial<SamplingParams> = {}, seed?: number) {
    this.params = samplingParams(params);
    this.rng = new Rng(seed);
  }
  sample(logits: Float32Array, options: SampleOptions = {}): SampledToken {
    return sampleToken(logits, this.params, this.rng, options);
  }
}
