// Byte-pair encoding of one pre-tokenized piece with tiktoken's rule: repeatedly merge the adjacent
// pair of parts whose concatenated bytes have the lowest rank (leftmost on ties) until no adjacent
// pair is a token. Short pieces use the simple scan; long pieces use a heap over a linked list,
// O(n log n), so a hostile input such as 'x' repeated 50 000 times cannot stall the process.

/** Rank of bytes[start..end) of the piece being merged, or -1 when those bytes are not a token. */
export type RangeRank = (start: number, end: number) => number;

/** Above this many bytes a piece is merged with the heap; below it the scan is cheaper. */
const HEAP_THRESHOLD = 512;
const NONE = 0x7fffffff;

/** Merges a piece of `length` bytes; appends its tokens to `out`. */
export function mergePiece(length: number, rank: RangeRank, out: number[]): void {
  if (length > HEAP_THRESHOLD) mergeWithHeap(length, rank, out);
  else mergeByScan(length, rank, out);
}

// scratch for the scan: part starts and the rank of merging part i with part i + 1
let starts = new Int32Array(HEAP_THRESHOLD + 2);
let ranks = new Int32Array(HEAP_THRESHOLD + 2);

function mergeByScan(length: number, rank: RangeRank, out: number[]): void {
  if (starts.length < length + 2) {
    starts = new Int32Array(length + 2);
    ranks = new Int32Array(length + 2);
  }
  let parts = length; // parts are [starts[i], starts[i + 1])
  for (let i = 0; i <= length; i++) starts[i] = i;
  for (let i = 0; i + 1 < parts; i++) {
    const r = rank(i, i + 2);
    ranks[i] = r < 0 ? NONE : r;
  }
  while (parts > 1) {
    let best = NONE;
    let at = -1;
    for (let i = 0; i + 1 < parts; i++) {
      if (ranks[i]! < best) {
        best = ranks[i]!;
        at = i;
      }
    }
    if (at < 0) break;
    // part at absorbs part at + 1
    starts.copyWithin(at + 1, at + 2, parts + 1);
    ranks.copyWithin(at, at + 1, parts - 1);
    parts--;
    if (at > 0) {
      const r = rank(starts[at - 1]!, starts[at + 1]!);
      ranks[at - 1] = r < 0 ? NONE : r;
    }
    if (at + 1 < parts) {
      const r = rank(starts[at]!, starts[at + 2]!);
      ranks[at] = r < 0 ? NONE : r;
    }
  }
  for (let i = 0; i < parts; i++) out.push(rank(starts[i]!, starts[i + 1]!));
}

/** Min-heap of (rank, position) packed in one float: rank * 2^32 + position. */
class PairHeap {
  private items: number[] = [];
  get size(): number {
    return this.items.length;
  }
  push(v: number): void {
    const a = this.items;
    let i = a.length;
    a.push(v);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p]! <= v) break;
      a[i] = a[p]!;
      i = p;
    }
    a[i] = v;
  }
  pop(): number {
    const a = this.items;
    const top = a[0]!;
    const last = a.pop()!;
    const n = a.length;
    if (n > 0) {
      let i = 0;
      for (;;) {
        let c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && a[c + 1]! < a[c]!) c++;
        if (a[c]! >= last) break;
        a[i] = a[c]!;
        i = c;
      }
      a[i] = last;
    }
    return top;
  }
}

const POS = 2 ** 32;

function mergeWithHeap(length: number, rank: RangeRank, out: number[]): void {
  // parts form a linked list by start byte: part i is [i, next[i]); prev[i] is the part before
  const next = new Int32Array(length);
  const prev = new Int32Array(length);
  const heap = new PairHeap();
  for (let i = 0; i < length; i++) {
    next[i] = i + 1;
    prev[i] = i - 1;
  }
  const pairEnd = (i: number): number => {
    const j = next[i]!;
    return j >= length ? -1 : next[j]!;
  };
  for (let i = 0; i + 1 < length; i++) {
    const r = rank(i, i + 2);
    if (r >= 0) heap.push(r * POS + i);
  }
  while (heap.size > 0) {
    const top = heap.pop();
    const r = Math.floor(top / POS);
    const i = top - r * POS;
    // Entries are never removed when a neighbour changes. One is still good exactly when part i
    // is still a part start (prev[i] !== -2) and the bytes of its pair now form that same token.
    if (prev[i] === -2) continue;
    const end = pairEnd(i);
    if (end < 0 || rank(i, end) !== r) continue;
    const j = next[i]!;
    next[i] = end;
    prev[j] = -2;
    if (end < length) prev[end] = i;
    const h = prev[i]!;
    if (h >= 0) {
      const rh = rank(h, end);
      if (rh >= 0) heap.push(rh * POS + h);
    }
    const after = pairEnd(i);
    if (after >= 0) {
      const ra = rank(i, after);
      if (ra >= 0) heap.push(ra * POS + i);
    }
  }
  for (let i = 0; i < length; i = next[i]!) out.push(rank(i, next[i]!));
}
