// Byte-pair encoding of one pre-tokenized piece with tiktoken's rule: repeatedly merge the adjacent
// pair whose concatenation has the lowest rank (leftmost on ties) until no pair is a token.
// Short pieces use the simple scan; long pieces use a heap over a linked list, O(n log n), so a
// hostile input such as 'x' repeated 50 000 times cannot stall the process.

/** Rank of the token made of tokens `a` then `b`, or -1 when that concatenation is not a token. */
export type PairRank = (a: number, b: number) => number;

const NONE = 0x7fffffff;
/** Above this many bytes a piece is merged with the heap; below it the scan is cheaper. */
const HEAP_THRESHOLD = 64;

/** `ids` holds the single-byte tokens of the piece on entry; returns the merged tokens. */
export function mergePiece(ids: number[], pairRank: PairRank): number[] {
  return ids.length > HEAP_THRESHOLD ? mergeWithHeap(ids, pairRank) : mergeByScan(ids, pairRank);
}

function mergeByScan(ids: number[], pairRank: PairRank): number[] {
  const n = ids.length;
  if (n < 2) return ids;
  // ranks[i] = rank of merging ids[i] with ids[i + 1]
  const ranks: number[] = new Array<number>(n - 1);
  for (let i = 0; i < n - 1; i++) {
    const r = pairRank(ids[i]!, ids[i + 1]!);
    ranks[i] = r < 0 ? NONE : r;
  }
  for (;;) {
    let best = NONE;
    let at = -1;
    for (let i = 0; i < ranks.length; i++) {
      if (ranks[i]! < best) {
        best = ranks[i]!;
        at = i;
      }
    }
    if (at < 0) return ids;
    ids[at] = best;
    ids.splice(at + 1, 1);
    ranks.splice(at, 1);
    if (at > 0) {
      const r = pairRank(ids[at - 1]!, best);
      ranks[at - 1] = r < 0 ? NONE : r;
    }
    if (at < ranks.length) {
      const r = pairRank(best, ids[at + 1]!);
      ranks[at] = r < 0 ? NONE : r;
    }
  }
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

function mergeWithHeap(ids: number[], pairRank: PairRank): number[] {
  const n = ids.length;
  const tok = Int32Array.from(ids);
  const next = new Int32Array(n);
  const prev = new Int32Array(n);
  const alive = new Uint8Array(n).fill(1);
  const heap = new PairHeap();
  for (let i = 0; i < n; i++) {
    next[i] = i + 1 < n ? i + 1 : -1;
    prev[i] = i - 1;
    if (i + 1 < n) {
      const r = pairRank(tok[i]!, tok[i + 1]!);
      if (r >= 0) heap.push(r * POS + i);
    }
  }
  while (heap.size > 0) {
    const top = heap.pop();
    const rank = Math.floor(top / POS);
    const i = top - rank * POS;
    const j = next[i]!;
    // Entries are never removed when a neighbour changes; one is still good exactly when the pair
    // now at i merges to the same token (pair ranks are a function of the two tokens).
    if (alive[i] === 0 || j < 0 || pairRank(tok[i]!, tok[j]!) !== rank) continue;
    tok[i] = rank;
    alive[j] = 0;
    const k = next[j]!;
    next[i] = k;
    if (k >= 0) prev[k] = i;
    const h = prev[i]!;
    if (h >= 0) {
      const r = pairRank(tok[h]!, rank);
      if (r >= 0) heap.push(r * POS + h);
    }
    if (k >= 0) {
      const r = pairRank(rank, tok[k]!);
      if (r >= 0) heap.push(r * POS + i);
    }
  }
  const out: number[] = [];
  for (let i = 0; i >= 0; i = next[i]!) out.push(tok[i]!);
  return out;
}
