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
// LETTER = \p{L}, NUM = \p{N}, SPACE = White_Space, NEWLINE = \r or \n.
const U = 1;
const W = 2;
const LETTER = 4;
const NUM = 8;
const SPACE = 16;
const NEWLINE = 32;

/** classes of U+0000..U+FFFF (lone surrogates are "other", as in the regex's u mode) */
let bmp: Uint8Array | undefined;
const astral = new Map<number, number>();

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

/** Scans `text` and calls `piece(start, end)` (UTF-16 indices) for every piece, in order. */
export function scanPieces(text: string, piece: (start: number, end: number) => void): void {
  const table = (bmp ??= buildBmpTable());
  const n = text.length;

  // class and width (1 or 2 code units) of the code point at i; n => 0 (end of text)
  let width = 1;
  const at = (i: number): number => {
    width = 1;
    if (i >= n) return 0;
    const c = text.charCodeAt(i);
    if (c < 0xd800 || c > 0xdbff || i + 1 >= n) return table[c]!;
    const d = text.charCodeAt(i + 1);
    if (d < 0xdc00 || d > 0xdfff) return table[c]!;
    width = 2;
    const cp = ((c - 0xd800) << 10) + (d - 0xdc00) + 0x10000;
    let k = astral.get(cp);
    if (k === undefined) {
      k = classify(cp);
      astral.set(cp, k);
    }
    return k;
  };
  const isLead = (k: number, i: number): boolean => i < n && (k & (LETTER | NUM | NEWLINE)) === 0;
  const isPunct = (k: number, i: number): boolean => i < n && (k & (LETTER | NUM | SPACE)) === 0;

  // optional contraction ('s 't 'm 'd 're 've 'll, any case; 'ſ) at i: returns the end
  const contraction = (i: number): number => {
    if (i + 1 >= n || text.charCodeAt(i) !== 0x27) return i;
    const a = text.charCodeAt(i + 1) | 0x20;
    if (a === 0x73 || a === 0x74 || a === 0x6d || a === 0x64 || text.charCodeAt(i + 1) === 0x17f) return i + 2;
    if (i + 2 >= n) return i;
    const b = text.charCodeAt(i + 2) | 0x20;
    if ((a === 0x72 && b === 0x65) || (a === 0x76 && b === 0x65) || (a === 0x6c && b === 0x6c)) return i + 3;
    return i;
  };

  // UPPERISH* LOWERISH+ from s; returns the end, or -1
  const upperThenLower = (s: number): number => {
    // maximal UPPERISH run, remembering where each code point starts for backtracking
    let e = s;
    let lastW = -1; // start of the last code point in the run that is also LOWERISH
    for (;;) {
      const k = at(e);
      if (e >= n || (k & U) === 0) break;
      if ((k & W) !== 0) lastW = e;
      e += width;
    }
    let j: number;
    if (e < n && (at(e) & W) !== 0) j = e;
    else if (lastW >= 0) j = lastW;
    else return -1;
    // LOWERISH+ from j, greedy
    let f = j;
    for (;;) {
      const k = at(f);
      if (f >= n || (k & W) === 0) break;
      f += width;
    }
    return contraction(f);
  };

  // UPPERISH+ LOWERISH* from s; returns the end, or -1
  const upperThenMaybeLower = (s: number): number => {
    let e = s;
    for (;;) {
      const k = at(e);
      if (e >= n || (k & U) === 0) break;
      e += width;
    }
    if (e === s) return -1;
    for (;;) {
      const k = at(e);
      if (e >= n || (k & W) === 0) break;
      e += width;
    }
    return contraction(e);
  };

  let p = 0;
  while (p < n) {
    const k0 = at(p);
    const w0 = width;
    let end = -1;

    if ((k0 & (LETTER | NUM | SPACE)) === 0 || (k0 & SPACE) !== 0 || (k0 & (U | W)) !== 0) {
      // alternatives 1 and 2, each first with a leading character, then without
      const lead = isLead(k0, p);
      if (lead) end = upperThenLower(p + w0);
      if (end < 0 && (k0 & (U | W)) !== 0) end = upperThenLower(p);
      if (end < 0 && lead) end = upperThenMaybeLower(p + w0);
      if (end < 0 && (k0 & U) !== 0) end = upperThenMaybeLower(p);
    }
    if (end < 0 && (k0 & NUM) !== 0) {
      // alternative 3: one to three digits
      end = p + w0;
      for (let count = 1; count < 3; count++) {
        const k = at(end);
        if (end >= n || (k & NUM) === 0) break;
        end += width;
      }
    }
    if (end < 0) {
      // alternative 4: optional space, punctuation run, then any \r \n /
      let s = -1;
      if (isPunct(k0, p)) s = p;
      else if (text.charCodeAt(p) === 0x20 && isPunct(at(p + 1), p + 1)) s = p + 1;
      if (s >= 0) {
        end = s;
        for (;;) {
          const k = at(end);
          if (!isPunct(k, end)) break;
          end += width;
        }
        for (;;) {
          const c = text.charCodeAt(end);
          if (end >= n || (c !== 10 && c !== 13 && c !== 0x2f)) break;
          end++;
        }
      }
    }
    if (end < 0 && (k0 & SPACE) !== 0) {
      // alternatives 5-7 on the whitespace run starting here
      let e = p;
      let lastNewline = -1;
      let beforeLast = p; // start of the run's last code point
      for (;;) {
        const k = at(e);
        if (e >= n || (k & SPACE) === 0) break;
        if ((k & NEWLINE) !== 0) lastNewline = e;
        beforeLast = e;
        e += width;
      }
      if (lastNewline >= 0) end = lastNewline + 1; // \s*[\r\n]+
      else if (e >= n) end = e; // \s+(?!\S) at the end of the text
      else if (beforeLast > p) end = beforeLast; // \s+(?!\S): leave one space for the next piece
      else end = e; // \s+
    }
    if (end < 0) end = p + w0; // unreachable for valid classes; never loop forever
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
