// Batch bookkeeping for the forward pass: several sequences' new tokens are stacked as rows
// [T, hidden] so every weight matrix is read once for all of them. This file knows which rows
// belong to which sequence, at which absolute positions, and which rows' logits each one wants;
// the forward pass itself (forward.ts) only sees rows.
import type { KvCache } from './kvcache.ts';

/** A sequence's part of a batch: its new tokens and which logits it wants. */
export interface Segment {
  cache: KvCache;
  tokens: readonly number[];
  want: 'all' | 'last' | 'none';
  /** Receives [T, vocab] ('all') or [vocab] ('last', without `pick`). */
  logits: Float32Array;
  /**
   * With want 'last': hand back the last row's argmax, top k or drawn token in `picked`
   * instead of its logits (a device backend then reads back a few bytes).
   */
  pick?: Pick;
  picked?: number | TopLogits;
}

/**
 * What a segment may ask for in place of its last logits: the argmax, the top k (a number), or a
 * plain softmax draw at `temperature` for the uniform number `u` in [0, 1) (model/draw.ts).
 */
export type Pick = 'argmax' | number | { u: number; temperature: number };

/** A logit row's k largest logits (ids most likely first, -1 past the finite ones) and their values. */
export interface TopLogits {
  ids: Int32Array;
  values: Float32Array;
}

/** The segments' tokens as rows: segment s owns rows [firstRow[s], firstRow[s] + its token count). */
export interface Batch {
  segments: readonly Segment[];
  /** Rows in the batch (T). */
  rows: number;
  firstRow: number[];
  /** Absolute position of each row in its sequence [T]. */
  positions: Int32Array;
}

/** Lays the segments out as rows, writing their positions (after each cache's length) into `positions`. */
export function layOutBatch(segments: readonly Segment[], positions: Int32Array): Batch {
  const firstRow: number[] = [];
  let row = 0;
  for (const s of segments) {
    firstRow.push(row);
    for (let i = 0; i < s.tokens.length; i++) positions[row + i] = s.cache.length + i;
    row += s.tokens.length;
  }
  return { segments, rows: row, firstRow, positions: positions.subarray(0, row) };
}

/** Each sequence's cache now counts the batch's tokens (after every layer has written their keys and values). */
export function advanceCaches(batch: Batch): void {
  for (const s of batch.segments) s.cache.length += s.tokens.length;
}

/**
 * The rows to unembed, in order: every row of an 'all' segment, the last row of a 'last' one.
 * With `everyRow` (a trace is attached, so the final norm is seen for each token) all rows are.
 */
export function logitRows(batch: Batch, everyRow: boolean): number[] {
  const wanted: number[] = [];
  batch.segments.forEach((s, si) => {
    const r0 = batch.firstRow[si]!;
    if (s.want === 'all' || everyRow) for (let i = 0; i < s.tokens.length; i++) wanted.push(r0 + i);
    else if (s.want === 'last') wanted.push(r0 + s.tokens.length - 1);
  });
  return wanted;
}

/** Copies each segment's logits out of `out` ([rows, vocab] for the rows `logitRows` chose, in its order). */
export function scatterLogits(batch: Batch, everyRow: boolean, out: Float32Array, vocab: number): void {
  let i = 0;
  for (const s of batch.segments) {
    const n = s.tokens.length;
    if (s.want === 'all') {
      s.logits.set(out.subarray(i * vocab, (i + n) * vocab));
      i += n;
    } else if (everyRow) {
      if (s.want === 'last' && s.pick === undefined) s.logits.set(out.subarray((i + n - 1) * vocab, (i + n) * vocab));
      i += n;
    } else if (s.want === 'last') {
      if (s.pick === undefined) s.logits.set(out.subarray(i * vocab, (i + 1) * vocab));
      i += 1;
    }
  }
}
