// The o200k pre-tokenizer: splits text into the pieces that byte-pair encoding works on.
//
// O200K_PATTERN is tiktoken's o200k_base pattern in JavaScript syntax. tiktoken evaluates it with
// Rust's regex, where \s is Unicode White_Space; JavaScript's \s differs (it adds U+FEFF and lacks
// U+0085), so White_Space is spelled out. Rust's case-insensitive "'s" also matches "'ſ" (U+017F
// folds to s), hence [sSſ].
//
// `scanPieces` is a hand-written matcher for the same pattern (what the regex does, branch by
// branch, including its backtracking), several times faster than running the regex. Its character
// classes are computed from the same Unicode properties by the regex engine, and a test compares
// it with the regex on random text.

const WS = '\\p{White_Space}';
const NOT_WS = '\\P{White_Space}';
const UPPERISH = '[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]';
const LOWERISH = '[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]';
const CONTRACTION = "(?:'(?:[sSſ]|[tT]|[mM]|[dD]|[rR][eE]|[vV][eE]|[lL][lL]))?";
const LEAD = '[^\\r\\n\\p{L}\\p{N}]?';

export const O200K_PATTERN = [
  `${LEAD}${UPPERISH}*${LOWERISH}+${CONTRACTION}`,
  `${LEAD}${UPPERISH}+${LOWERISH}*${CONTRACTION}`,
  '\\p{N}{1,3}',
  ` ?[^${WS}\\p{L}\\p{N}]+[\\r\\n/]*`,
  `${WS}*[\\r\\n]+`,
  `${WS}+(?!${NOT_WS})`,
  `${WS}+`,
].join('|');

/** A fresh global regex for the pattern (each caller owns its lastIndex). */
export function o200kRegex(): RegExp {
  return new RegExp(O200K_PATTERN, 'gu');
}

/** The pieces of `text` by the regex (the definition; `scanPieces` must agree with it). */
export function splitPiecesByRegex(text: string): string[] {
  return text.match(o200kRegex()) ?? [];
}

// Character classes of the pattern. Bits: U = may appear in UPPERISH, W = in LOWERISH,
// LETTER = \p{L}, NUM = \p{N}, SPACE = White_Space, NEWLINE = \r or \n; WIDE marks a code point
// written with two UTF-16 units (a surrogate pair).
const U = 1;
const W = 2;
const LETTER = 4;
const NUM = 8;
const SPACE = 16;
const NEWLINE = 32;
const WIDE = 64;
/** class given to the position just past the end of the text: matches nothing */
const END = 0;

/** classes of U+0000..U+FFFF (lone surrogates are "other", as in the regex's u mode) */
let bmp: Uint8Array | undefined;
/** classes of the astral code points seen so far (bounded: cleared when large) */
const astral = new Map<number, number>();
const ASTRAL_CACHE_LIMIT = 1 << 16;

function classify(cp: number): number {
  const c = String.fromCodePoint(cp);
  let k = 0;
  if (/[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]/u.test(c)) k |= U;
  if (/[\p{Ll}\p{Lm}\p{Lo}\p{M}]/u.test(c)) k |= W;
  if (/\p{L}/u.test(c)) k |= LETTER;
  if (/\p{N}/u.test(c)) k |= NUM;
  if (/\p{White_Space}/u.test(c)) k |= SPACE;
  if (cp === 10 || cp === 13) k |= NEWLINE;
  return k;
}

function buildBmpTable(): Uint8Array {
  const table = new Uint8Array(0x10000);
  // All BMP scalar values in one string; each property regex marks its runs (few, long matches).
  const codes: number[] = [];
  for (let cp = 0; cp < 0x10000; cp++) if (cp < 0xd800 || cp > 0xdfff) codes.push(cp);
  let all = '';
  for (let i = 0; i < codes.length; i += 4096) all += String.fromCharCode(...codes.slice(i, i + 4096));
  const mark = (re: RegExp, bit: number): void => {
    for (const m of all.matchAll(re)) {
      const start = m.index!;
      for (let i = start; i < start + m[0].length; i++) table[codes[i]!]! |= bit;
    }
  };
  mark(/[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+/gu, U);
  mark(/[\p{Ll}\p{Lm}\p{Lo}\p{M}]+/gu, W);
  mark(/\p{L}+/gu, LETTER);
  mark(/\p{N}+/gu, NUM);
  mark(/\p{White_Space}+/gu, SPACE);
  table[10]! |= NEWLINE;
  table[13]! |= NEWLINE;
  return table;
}

/** Class of the code point at i (END at the end of the text). */
function classAt(text: string, i: number, n: number, table: Uint8Array): number {
  if (i >= n) return END;
  const c = text.charCodeAt(i);
  if (c < 0xd800 || c > 0xdbff || i + 1 >= n) return table[c]!;
  const d = text.charCodeAt(i + 1);
  if (d < 0xdc00 || d > 0xdfff) return table[c]!;
  const cp = ((c - 0xd800) << 10) + (d - 0xdc00) + 0x10000;
  let k = astral.get(cp);
  if (k === undefined) {
    k = classify(cp) | WIDE;
    if (astral.size >= ASTRAL_CACHE_LIMIT) astral.clear();
    astral.set(cp, k);
  }
  return k;
}

function widthOf(k: number): number {
  return (k & WIDE) === 0 ? 1 : 2;
}

/** End of an optional contraction ('s 't 'm 'd 're 've 'll in any case, or 'ſ) starting at i. */
function contraction(text: string, i: number, n: number): number {
  if (i + 1 >= n || text.charCodeAt(i) !== 0x27) return i;
  const a = text.charCodeAt(i + 1) | 0x20;
  if (a === 0x73 || a === 0x74 || a === 0x6d || a === 0x64 || text.charCodeAt(i + 1) === 0x17f) return i + 2;
  if (i + 2 >= n) return i;
  const b = text.charCodeAt(i + 2) | 0x20;
  if ((a === 0x72 && b === 0x65) || (a === 0x76 && b === 0x65) || (a === 0x6c && b === 0x6c)) return i + 3;
  return i;
}

/** UPPERISH* LOWERISH+ CONTRACTION? from s, as the regex backtracks: the end, or -1. */
function upperThenLower(text: string, s: number, n: number, table: Uint8Array): number {
  // greedy UPPERISH run; on failure the regex gives characters back, and LOWERISH+ can only start
  // at a given-back character that is also LOWERISH: the last such one in the run
  let e = s;
  let lastW = -1;
  let k = classAt(text, e, n, table);
  while ((k & U) !== 0) {
    if ((k & W) !== 0) lastW = e;
    e += widthOf(k);
    k = classAt(text, e, n, table);
  }
  let f: number;
  if ((k & W) !== 0) f = e;
  else if (lastW >= 0) f = lastW;
  else return -1;
  k = classAt(text, f, n, table);
  while ((k & W) !== 0) {
    f += widthOf(k);
    k = classAt(text, f, n, table);
  }
  return contraction(text, f, n);
}

/** UPPERISH+ LOWERISH* CONTRACTION? from s: the end, or -1. */
function upperThenMaybeLower(text: string, s: number, n: number, table: Uint8Array): number {
  let e = s;
  let k = classAt(text, e, n, table);
  while ((k & U) !== 0) {
    e += widthOf(k);
    k = classAt(text, e, n, table);
  }
  if (e === s) return -1;
  while ((k & W) !== 0) {
    e += widthOf(k);
    k = classAt(text, e, n, table);
  }
  return contraction(text, e, n);
}

/** End of the piece that starts at p (p < text.length). */
function pieceEnd(text: string, p: number, n: number, table: Uint8Array): number {
  const k0 = classAt(text, p, n, table);
  const w0 = widthOf(k0);
  let end = -1;

  if ((k0 & NUM) === 0) {
    // alternatives 1 and 2, each first with a leading character [^\r\n\p{L}\p{N}], then without
    const lead = (k0 & (LETTER | NEWLINE)) === 0;
    if (lead) end = upperThenLower(text, p + w0, n, table);
    if (end < 0 && (k0 & (U | W)) !== 0) end = upperThenLower(text, p, n, table);
    if (end < 0 && lead) end = upperThenMaybeLower(text, p + w0, n, table);
    if (end < 0 && (k0 & U) !== 0) end = upperThenMaybeLower(text, p, n, table);
    if (end >= 0) return end;
  } else {
    // alternative 3: one to three digits
    end = p + w0;
    for (let count = 1; count < 3; count++) {
      const k = classAt(text, end, n, table);
      if ((k & NUM) === 0) break;
      end += widthOf(k);
    }
    return end;
  }

  // alternative 4: optional space, a run of [^\s\p{L}\p{N}], then any of \r \n /
  const PUNCT_EXCLUDES = LETTER | NUM | SPACE;
  let s = -1;
  if ((k0 & PUNCT_EXCLUDES) === 0) s = p;
  else if (text.charCodeAt(p) === 0x20 && p + 1 < n && (classAt(text, p + 1, n, table) & PUNCT_EXCLUDES) === 0) s = p + 1;
  if (s >= 0) {
    end = s;
    let k = classAt(text, end, n, table);
    while (end < n && (k & PUNCT_EXCLUDES) === 0) {
      end += widthOf(k);
      k = classAt(text, end, n, table);
    }
    for (let c = text.charCodeAt(end); end < n && (c === 10 || c === 13 || c === 0x2f); c = text.charCodeAt(end)) end++;
    return end;
  }

  // alternatives 5-7 on the whitespace run starting here (k0 is SPACE: every other class matched above)
  let e = p;
  let lastNewline = -1;
  let lastStart = p; // start of the run's last code point
  let k = k0;
  while ((k & SPACE) !== 0) {
    if ((k & NEWLINE) !== 0) lastNewline = e;
    lastStart = e;
    e += widthOf(k);
    k = classAt(text, e, n, table);
  }
  if (lastNewline >= 0) return lastNewline + 1; // \s*[\r\n]+
  if (e >= n) return e; // \s+(?!\S) at the end of the text
  if (lastStart > p) return lastStart; // \s+(?!\S): the last space goes with what follows
  return Math.max(e, p + w0); // \s+ (max: never an empty piece, whatever the tables say)
}

/** Scans `text` and calls `piece(start, end)` (UTF-16 indices) for every piece, in order. */
export function scanPieces(text: string, piece: (start: number, end: number) => void): void {
  const table = (bmp ??= buildBmpTable());
  const n = text.length;
  let p = 0;
  while (p < n) {
    const end = pieceEnd(text, p, n, table);
    piece(p, end);
    p = end;
  }
}

/** The pieces of `text`, in order (their concatenation is `text`). */
export function splitPieces(text: string): string[] {
  const out: string[] = [];
  scanPieces(text, (s, e) => out.push(text.slice(s, e)));
  return out;
}
