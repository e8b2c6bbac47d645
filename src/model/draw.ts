// A plain softmax draw (temperature only) from a logit row that stays on a device: the device sums
// the weights exp((logit - max) / T) by slices of DRAW_SLICE columns, the host finds the slice
// where u times the total lands from those sums, reads back that slice's logits only, and walks it
// as the host sampler walks the whole row (engine/sampler.ts, `draw`). The token is the host
// sampler's for the same u unless u * total lands within the sums' f32 rounding of a boundary
// between two tokens (the host sums in f64 one token at a time).

/** Columns per slice: a draw reads back the row's slice sums (4 bytes each) and one slice (for gpt-oss: 3.1 KB and 1 KB, not 804 KB). */
export const DRAW_SLICE = 256;

/** The slice where the draw lands: its index, the weight of the slices before it, and the target. */
export function landingSlice(sums: Float32Array, u: number): { slice: number; before: number; target: number } {
  let total = 0;
  for (const s of sums) total += s;
  const target = u * total;
  let before = 0, slice = 0;
  while (slice < sums.length - 1 && !(target < before + sums[slice]!)) before += sums[slice++]!;
  // Never a slice of zero weight (rounding past the last positive one): step back to one with weight.
  while (slice > 0 && !(sums[slice]! > 0)) before -= sums[--slice]!;
  return { slice, before, target };
}

/**
 * Walks one slice's logits (its first column `first`) from the weight `before` of the slices
 * before it: the first column where the cumulative weight passes `target`, else the slice's last
 * column of positive weight.
 */
export function walkSlice(logits: Float32Array, first: number, max: number, invT: number, before: number, target: number): number {
  let cum = before, last = -1;
  for (let i = 0; i < logits.length; i++) {
    const w = Math.exp((logits[i]! - max) * invT);
    if (w > 0) {
      cum += w;
      last = first + i;
      if (target < cum) return first + i;
    }
  }
  return last;
}
