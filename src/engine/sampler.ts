// Token sampling: a pure function of the logits, the sampling parameters, the tokens generated so
// far and a seeded random generator, so a seed reproduces a completion exactly. Order of the
// pipeline (as Hugging Face and vLLM apply it): penalties -> logits processors (constraints) ->
// temperature -> top-k -> top-p -> min-p -> draw. Temperature 0 is greedy decoding.
import { UserError } from '../errors.ts';

export interface SamplingParams {
  /** Softmax temperature; 0 picks the most likely token (greedy). Default 1.0 (the model card's recommendation). */
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

/** Fills in defaults and rejects out-of-range values with a one-line UserError naming the field. */
export function samplingParams(partial: Partial<SamplingParams> = {}): SamplingParams {
  const p: SamplingParams = { ...DEFAULT_SAMPLING };
  for (const [key, value] of Object.entries(partial) as [keyof SamplingParams, number | undefined][]) {
    if (value !== undefined) p[key] = value;
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
export class Rng {
  private s0 = 0;
  private s1 = 0;
  private s2 = 0;
  private s3 = 0;

  /** Any finite number is a valid seed; without one the generator is seeded from the clock and Math.random. */
  constructor(seed?: number) {
    let x = seed === undefined ? (Date.now() ^ Math.floor(Math.random() * 0x100000000)) >>> 0 : seedToUint32(seed);
    const splitmix32 = (): number => {
      x = (x + 0x9e3779b9) | 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = splitmix32();
    this.s1 = splitmix32();
    this.s2 = splitmix32();
    this.s3 = splitmix32();
  }

  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform in [0, 1) with 53 bits of precision. */
  nextFloat(): number {
    const a = this.nextUint32() >>> 5;
    const b = this.nextUint32() >>> 6;
    return (a * 67108864 + b) / 9007199254740992;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
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
  const working = new Float32Array(logits);
  applyPenalties(working, params, generated);
  for (const processor of processors) processor(working, generated);

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

/**
 * The candidate tokens and their unnormalized weights after temperature, top-k, top-p and min-p,
 * in the order the draw walks them. Exported for tests: the masks can be checked without sampling.
 */
export function candidates(logits: Float32Array, params: SamplingParams): { ids: number[]; weights: number[] } {
  const n = logits.length;
  const top = argmax(logits);
  if (top < 0) return { ids: [], weights: [] };
  const max = logits[top]!;
  const invT = 1 / params.temperature;
  // Weights relative to the most likely token (which has weight 1), in float64.
  const weight = (i: number): number => Math.exp((logits[i]! - max) * invT);

  let ids: number[];
  let sorted = false;
  // Top-p mass is relative to all the tokens still allowed, which the nucleus superset may omit.
  let allowedMass: number | undefined;
  if (params.topK > 0 && params.topK < n) {
    ids = topIndices(logits, params.topK);
    sorted = true;
  } else if (params.topP < 1) {
    ({ ids, total: allowedMass } = nucleusSuperset(logits, max, invT, params.topP));
    sorted = true;
  } else {
    ids = [];
    for (let i = 0; i < n; i++) if (logits[i]! > -Infinity) ids.push(i);
  }
  let weights = ids.map(weight);

  if (params.topP < 1) {
    if (!sorted) throw new Error('unreachable: top-p needs sorted candidates');
    let total = allowedMass ?? 0;
    if (allowedMass === undefined) for (const w of weights) total += w;
    let cum = 0;
    let keep = ids.length;
    for (let j = 0; j < ids.length; j++) {
      cum += weights[j]!;
      if (cum >= params.topP * total) {
        keep = j + 1;
        break;
      }
    }
    ids = ids.slice(0, keep);
    weights = weights.slice(0, keep);
  }
  if (params.minP > 0) {
    const keptIds: number[] = [];
    const keptWeights: number[] = [];
    for (let j = 0; j < ids.length; j++) {
      if (weights[j]! >= params.minP) {
        keptIds.push(ids[j]!);
        keptWeights.push(weights[j]!);
      }
    }
    ids = keptIds;
    weights = keptWeights;
  }
  return { ids, weights };
}

function draw(logits: Float32Array, params: SamplingParams, rng: Rng): number {
  const { ids, weights } = candidates(logits, params);
  if (ids.length === 0) return -1;
  let total = 0;
  for (const w of weights) total += w;
  const target = rng.nextFloat() * total;
  let cum = 0;
  for (let j = 0; j < ids.length; j++) {
    cum += weights[j]!;
    if (target < cum) return ids[j]!;
  }
  return ids[ids.length - 1]!;
}

/**
 * The tokens most likely first (ties: lower id first), enough of them to contain the top-p nucleus,
 * without sorting the whole vocabulary: tokens below a probability threshold t can hold at most
 * (count below t) * t of the mass, so once the tokens above t hold topP of it they contain the nucleus.
 */
function nucleusSuperset(logits: Float32Array, max: number, invT: number, topP: number): { ids: number[]; total: number } {
  const n = logits.length;
  let total = 0;
  for (let i = 0; i < n; i++) total += Math.exp((logits[i]! - max) * invT);
  for (let threshold = 1e-3; threshold > 1e-12; threshold /= 16) {
    const ids: number[] = [];
    let mass = 0;
    const minWeight = threshold * total;
    for (let i = 0; i < n; i++) {
      const w = Math.exp((logits[i]! - max) * invT);
      if (w >= minWeight) {
        ids.push(i);
        mass += w;
      }
    }
    if (mass >= topP * total) return { ids: sortByLogit(ids, logits), total };
  }
  const all: number[] = [];
  for (let i = 0; i < n; i++) if (logits[i]! > -Infinity) all.push(i);
  return { ids: sortByLogit(all, logits), total };
}

function sortByLogit(ids: number[], logits: Float32Array): number[] {
  return ids.sort((a, b) => logits[b]! - logits[a]! || a - b);
}

/** The k ids with the largest finite logits, largest first (ties: lower id first). */
export function topIndices(logits: Float32Array, k: number): number[] {
  // A size-k min-heap keyed by (logit, -id): O(V log k).
  const heap: number[] = [];
  const worse = (a: number, b: number): boolean => logits[a]! < logits[b]! || (logits[a]! === logits[b]! && a > b);
  const siftDown = (i: number): void => {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < heap.length && worse(heap[l]!, heap[m]!)) m = l;
      if (r < heap.length && worse(heap[r]!, heap[m]!)) m = r;
      if (m === i) return;
      [heap[i], heap[m]] = [heap[m]!, heap[i]!];
      i = m;
    }
  };
  for (let id = 0; id < logits.length; id++) {
    if (!(logits[id]! > -Infinity)) continue;
    if (heap.length < k) {
      heap.push(id);
      let i = heap.length - 1;
      while (i > 0) {
        const parent = (i - 1) >> 1;
        if (!worse(heap[i]!, heap[parent]!)) break;
        [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
        i = parent;
      }
    } else if (worse(heap[0]!, id)) {
      heap[0] = id;
      siftDown(0);
    }
  }
  return sortByLogit(heap, logits);
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
