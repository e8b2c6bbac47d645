// Aggregate statistics, as the official HealthBench evaluation reports them: the mean of each
// metric clipped to [0, 1], the number of samples, and the bootstrap standard deviation of the
// clipped mean (1000 resamples). Seeded so reports are reproducible.

import { seededRandom } from '../random.ts';

export { seededRandom };

export interface MetricSummary {
  mean: number;
  n: number;
  bootstrapStd: number;
}

/** A permutation of 0..n-1 (Fisher-Yates over seededRandom(seed)): the same for the same seed. */
export function seededPermutation(n: number, seed: number): number[] {
  const rand = seededRandom(seed);
  const perm = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [perm[i], perm[j]] = [perm[j]!, perm[i]!];
  }
  return perm;
}

function clip01(v: number): number {
  return Math.min(1, Math.max(0, v));
}

function mean(values: readonly number[]): number {
  let s = 0;
  for (const v of values) s += v;
  return s / values.length;
}

export function clippedMean(values: readonly number[]): number {
  return clip01(mean(values));
}

/** Standard deviation (population, like numpy's default) of the clipped means of `resamples` bootstrap resamples. */
export function bootstrapStd(values: readonly number[], resamples = 1000, seed = 0): number {
  if (values.length === 0) return 0;
  const rand = seededRandom(seed);
  const means: number[] = [];
  const sample = new Array<number>(values.length);
  for (let r = 0; r < resamples; r++) {
    for (let i = 0; i < values.length; i++) sample[i] = values[Math.floor(rand() * values.length)]!;
    means.push(clippedMean(sample));
  }
  const m = mean(means);
  return Math.sqrt(mean(means.map((x) => (x - m) ** 2)));
}

/** Summarises every metric that appears in at least one case (cases without it are not counted). */
export function summarise(perCase: readonly Record<string, number>[], resamples = 1000): Record<string, MetricSummary> {
  const byMetric = new Map<string, number[]>();
  for (const metrics of perCase) {
    for (const [k, v] of Object.entries(metrics)) {
      let list = byMetric.get(k);
      if (list === undefined) byMetric.set(k, (list = []));
      list.push(v);
    }
  }
  const out: Record<string, MetricSummary> = {};
  for (const [k, values] of [...byMetric.entries()].sort(([a], [b]) => a.localeCompare(b))) {
    out[k] = { mean: clippedMean(values), n: values.length, bootstrapStd: bootstrapStd(values, resamples) };
  }
  return out;
}
