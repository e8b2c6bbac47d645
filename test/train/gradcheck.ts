// Finite-difference gradient checking for the training tests: central differences in float64
// against an analytic gradient, reported as the worst relative error over the checked entries.
import { seededRandom } from '../../src/random.ts';

/** Step of the central differences: small enough for O(h^2) truncation, large enough for rounding. */
export const STEP = 1e-5;
/** Below this size a gradient entry is compared absolutely (both sides are rounding noise). */
const FLOOR = 1e-4;

export interface CheckResult {
  worst: number;
  checked: number;
  /** The entry with the worst error: its index, analytic and numeric values. */
  at: { index: number; analytic: number; numeric: number };
}

/**
 * Perturbs `x` at each of `indices` by +-STEP, evaluates `loss`, and compares the central
 * difference with `analytic[index]`. The relative error is |a - n| / max(|a|, |n|, FLOOR).
 */
export function checkGradient(loss: () => number, x: Float64Array, analytic: Float64Array, indices: Iterable<number>): CheckResult {
  const result: CheckResult = { worst: 0, checked: 0, at: { index: -1, analytic: 0, numeric: 0 } };
  for (const i of indices) {
    const saved = x[i]!;
    x[i] = saved + STEP;
    const plus = loss();
    x[i] = saved - STEP;
    const minus = loss();
    x[i] = saved;
    const numeric = (plus - minus) / (2 * STEP);
    const a = analytic[i]!;
    const err = Math.abs(a - numeric) / Math.max(Math.abs(a), Math.abs(numeric), FLOOR);
    result.checked++;
    if (!(err <= result.worst)) {
      result.worst = Number.isNaN(err) ? Infinity : err;
      result.at = { index: i, analytic: a, numeric };
    }
  }
  return result;
}

/** Every index of an array of `length` entries. */
export function allIndices(length: number): number[] {
  return Array.from({ length }, (_, i) => i);
}

/** `count` distinct seeded indices below `length` (all of them when count >= length). */
export function someIndices(length: number, count: number, seed: number): number[] {
  if (count >= length) return allIndices(length);
  const random = seededRandom(seed);
  const chosen = new Set<number>();
  while (chosen.size < count) chosen.add(Math.floor(random() * length));
  return [...chosen].sort((a, b) => a - b);
}

/** Seeded uniform values in [-spread, spread] (plus `center`). */
export function randomArray(length: number, seed: number, spread = 1, center = 0): Float64Array {
  const random = seededRandom(seed);
  const out = new Float64Array(length);
  for (let i = 0; i < length; i++) out[i] = center + (2 * random() - 1) * spread;
  return out;
}

/** sum(out * weights): a scalar whose gradient with respect to `out` is `weights`. */
export function project(out: Float64Array, weights: Float64Array): number {
  let s = 0;
  for (let i = 0; i < out.length; i++) s += out[i]! * weights[i]!;
  return s;
}

export function describe(r: CheckResult): string {
  return `max rel err ${r.worst.toExponential(2)} over ${r.checked} entries (worst at ${r.at.index}: analytic ${r.at.analytic.toExponential(4)}, numeric ${r.at.numeric.toExponential(4)})`;
}
