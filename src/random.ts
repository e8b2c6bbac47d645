// A tiny seeded generator for reproducible choices that need no statistical strength (resampling
// indices, choice shuffles, random test inputs). Sampling and synthetic weights use xoshiro128**
// (engine/sampler.ts, model/synth.ts) instead.

/** mulberry32: uniform floats in [0, 1), the same sequence for the same seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
