// Public surface of the tokenizer: o200k_harmony (o200k_base byte-pair ranks and split pattern plus
// the harmony special tokens). Special tokens are only recognised where the caller allows them, so
// "<|start|>" typed by a user is ordinary text; decoding is strict about UTF-8.
import { UserError } from '../errors.ts';
import { mergePiece } from './bpe.ts';
import { loadO200kBaseRanks, O200K_BASE_RANKS } from './ranks.ts';
import { buildSpecials, FIRST_SPECIAL, VOCAB_SIZE } from './specials.ts';
import { scanPieces } from './split.ts';
import { findUtf8Problem } from './utf8.ts';

export { SPECIAL, VOCAB_SIZE } from './specials.ts';
export { Utf8StreamDecoder, findUtf8Problem } from './utf8.ts';

export interface EncodeOptions {
  /** Special tokens recognised in the text; by default none (their text is encoded as text). */
  allowedSpecial?: 'all' | ReadonlySet<string>;
}

export interface Tokenizer {
  /** 201088: ids are 0..vocabSize-1. */
  readonly vocabSize: number;
  /** Encodes text as text: special-token names in it are plain characters. */
  encodeOrdinary(text: string): number[];
  /** Like encodeOrdinary, but the allowed special-token names become their ids. Never throws. */
  encode(text: string, opts?: EncodeOptions): number[];
  /** The concatenated bytes of the tokens; throws UserError('input') for an id out of range. */
  decodeBytes(ids: readonly number[]): Uint8Array;
  /** Strict: throws UserError naming the token if the bytes are not complete, valid UTF-8. */
  decode(ids: readonly number[]): string;
  tokenBytes(id: number): Uint8Array;
  isSpecial(id: number): boolean;
  specialTokenId(name: string): number | undefined;
  /** The text of a special token ('<|reserved_200013|>'), undefined for ordinary tokens. */
  tokenName(id: number): string | undefined;
}

const PIECE_CACHE_LIMIT = 1 << 16;
const CACHED_PIECE_MAX_LENGTH = 256;
const TABLE_BITS = 19;
/** Longest special-token name ('<|reserved_201087|>' is 19 characters), with room to spare. */
const MAX_SPECIAL_LENGTH = 32;

/** FNV-1a over bytes[start..end), finished with a mix so the low bits are usable. */
function hashBytes(bytes: Uint8Array, start: number, end: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) h = Math.imul(h ^ bytes[i]!, 0x01000193);
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  return h ^ (h >>> 12);
}

class O200kHarmony implements Tokenizer {
  readonly vocabSize = VOCAB_SIZE;
  private readonly pool: Uint8Array;
  private readonly offsets: Int32Array;
  /** open addressing: rank + 1 of the token whose bytes hash to the slot, 0 = empty */
  private readonly table = new Int32Array(1 << TABLE_BITS);
  private readonly specialBytes: Uint8Array[];
  private readonly specialNames: string[];
  private readonly specialIds: Map<string, number>;
  /** pieces that are not single tokens, by text (bounded; cleared when full) */
  private readonly pieces = new Map<string, readonly number[]>();
  /** UTF-8 bytes of the piece being encoded */
  private scratch = new Uint8Array(1024);
  private readonly rangeRank = (start: number, end: number): number => this.rankOf(this.scratch, start, end);

  constructor() {
    const { pool, offsets } = loadO200kBaseRanks();
    this.pool = pool;
    this.offsets = offsets;
    const mask = (1 << TABLE_BITS) - 1;
    for (let rank = 0; rank < O200K_BASE_RANKS; rank++) {
      let slot = hashBytes(pool, offsets[rank]!, offsets[rank + 1]!) & mask;
      while (this.table[slot] !== 0) slot = (slot + 1) & mask;
      this.table[slot] = rank + 1;
    }
    const { names, ids } = buildSpecials();
    this.specialNames = names;
    this.specialIds = ids;
    const encoder = new TextEncoder();
    this.specialBytes = names.map((n) => encoder.encode(n));
  }

  /** The rank of bytes[start..end), or -1 if they are not one token. */
  private rankOf(bytes: Uint8Array, start: number, end: number): number {
    const mask = (1 << TABLE_BITS) - 1;
    const len = end - start;
    const pool = this.pool;
    const offsets = this.offsets;
    for (let slot = hashBytes(bytes, start, end) & mask; ; slot = (slot + 1) & mask) {
      const entry = this.table[slot]!;
      if (entry === 0) return -1;
      const rank = entry - 1;
      const at = offsets[rank]!;
      if (offsets[rank + 1]! - at !== len) continue;
      let i = 0;
      while (i < len && pool[at + i] === bytes[start + i]) i++;
      if (i === len) return rank;
    }
  }

  encodeOrdinary(text: string): number[] {
    const out: number[] = [];
    this.encodeOrdinaryInto(text, out);
    return out;
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    const allowed = opts.allowedSpecial;
    if (allowed === undefined || (allowed !== 'all' && allowed.size === 0)) return this.encodeOrdinary(text);
    const out: number[] = [];
    let start = 0;
    let from = 0;
    let close = -1;
    // Every special token is "<|name|>" with no "|>" inside, so a candidate runs from "<|" to the
    // first "|>" after it. `close` is reused across candidates so that text full of "<|" stays linear.
    for (;;) {
      const open = text.indexOf('<|', from);
      if (open < 0) break;
      if (close < open + 2) close = text.indexOf('|>', open + 2);
      if (close < 0) break;
      const name = close + 2 - open <= MAX_SPECIAL_LENGTH ? text.slice(open, close + 2) : '';
      const id = this.specialIds.get(name);
      if (id !== undefined && (allowed === 'all' || allowed.has(name))) {
        this.encodeOrdinaryInto(text.slice(start, open), out);
        out.push(id);
        start = from = close + 2;
      } else {
        from = open + 1;
      }
    }
    this.encodeOrdinaryInto(text.slice(start), out);
    return out;
  }

  decodeBytes(ids: readonly number[]): Uint8Array {
    let total = 0;
    for (let i = 0; i < ids.length; i++) total += this.tokenLength(ids[i]!, i);
    const out = new Uint8Array(total);
    let at = 0;
    for (const id of ids) {
      if (id < FIRST_SPECIAL) {
        for (let b = this.offsets[id]!, end = this.offsets[id + 1]!; b < end; b++) out[at++] = this.pool[b]!;
      } else {
        const bytes = this.specialBytes[id - FIRST_SPECIAL]!;
        out.set(bytes, at);
        at += bytes.length;
      }
    }
    return out;
  }

  decode(ids: readonly number[]): string {
    const bytes = this.decodeBytes(ids);
    const problem = findUtf8Problem(bytes);
    if (problem !== null) {
      let end = 0;
      let index = 0;
      while (index < ids.length && end + this.tokenLength(ids[index]!, index) <= problem.offset) end += this.tokenLength(ids[index++]!, index);
      const what = problem.incomplete ? 'the tokens end inside a multi-byte UTF-8 character' : 'invalid UTF-8';
      throw new UserError('input', `${what} at token ${index} (id ${ids[index]}, byte ${problem.offset})`);
    }
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('utf8');
  }

  tokenBytes(id: number): Uint8Array {
    this.tokenLength(id, undefined);
    return id < FIRST_SPECIAL ? this.pool.slice(this.offsets[id]!, this.offsets[id + 1]!) : this.specialBytes[id - FIRST_SPECIAL]!.slice();
  }

  isSpecial(id: number): boolean {
    return Number.isInteger(id) && id >= FIRST_SPECIAL && id < VOCAB_SIZE;
  }

  specialTokenId(name: string): number | undefined {
    return this.specialIds.get(name);
  }

  tokenName(id: number): string | undefined {
    return this.isSpecial(id) ? this.specialNames[id - FIRST_SPECIAL] : undefined;
  }

  /** Byte length of a token; throws the user error for ids out of range. */
  private tokenLength(id: number, position: number | undefined): number {
    if (!Number.isInteger(id) || id < 0 || id >= VOCAB_SIZE) {
      const where = position === undefined ? '' : ` at position ${position}`;
      throw new UserError('input', `token id ${id}${where} is out of range (0..${VOCAB_SIZE - 1})`);
    }
    return id < FIRST_SPECIAL ? this.offsets[id + 1]! - this.offsets[id]! : this.specialBytes[id - FIRST_SPECIAL]!.length;
  }

  private encodeOrdinaryInto(text: string, out: number[]): void {
    scanPieces(text, (start, end) => this.encodePiece(text, start, end, out));
  }

  /** Writes the UTF-8 of text[start..end) to the scratch buffer (lone surrogates as U+FFFD). */
  private utf8Into(text: string, start: number, end: number): number {
    if (this.scratch.length < (end - start) * 3) this.scratch = new Uint8Array((end - start) * 3);
    const b = this.scratch;
    let n = 0;
    for (let i = start; i < end; i++) {
      let c = text.charCodeAt(i);
      if (c < 0x80) {
        b[n++] = c;
      } else if (c < 0x800) {
        b[n++] = 0xc0 | (c >> 6);
        b[n++] = 0x80 | (c & 0x3f);
      } else {
        if (c >= 0xd800 && c <= 0xdfff) {
          const d = i + 1 < end ? text.charCodeAt(i + 1) : 0;
          if (c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff) {
            const cp = ((c - 0xd800) << 10) + (d - 0xdc00) + 0x10000;
            b[n++] = 0xf0 | (cp >> 18);
            b[n++] = 0x80 | ((cp >> 12) & 0x3f);
            b[n++] = 0x80 | ((cp >> 6) & 0x3f);
            b[n++] = 0x80 | (cp & 0x3f);
            i++;
            continue;
          }
          c = 0xfffd;
        }
        b[n++] = 0xe0 | (c >> 12);
        b[n++] = 0x80 | ((c >> 6) & 0x3f);
        b[n++] = 0x80 | (c & 0x3f);
      }
    }
    return n;
  }

  private encodePiece(text: string, start: number, end: number, out: number[]): void {
    const length = this.utf8Into(text, start, end);
    const whole = this.rankOf(this.scratch, 0, length);
    if (whole >= 0) {
      out.push(whole);
      return;
    }
    const cacheable = end - start <= CACHED_PIECE_MAX_LENGTH;
    const piece = cacheable ? text.slice(start, end) : '';
    if (cacheable) {
      const cached = this.pieces.get(piece);
      if (cached !== undefined) {
        for (const id of cached) out.push(id);
        return;
      }
    }
    const first = out.length;
    mergePiece(length, this.rangeRank, out);
    if (cacheable) {
      if (this.pieces.size >= PIECE_CACHE_LIMIT) this.pieces.clear();
      // A fresh string as the key: `piece` may be a slice that keeps the whole input text alive.
      // (Decoding the bytes turns a lone surrogate into U+FFFD, which encodes to the same bytes.)
      const key = Buffer.from(this.scratch.buffer, this.scratch.byteOffset, length).toString('utf8');
      this.pieces.set(key, out.slice(first));
    }
  }
}

let instance: Tokenizer | undefined;

/** The o200k_harmony tokenizer, built on first use (reads ~3.6 MB of ranks). */
export function getTokenizer(): Tokenizer {
  instance ??= new O200kHarmony();
  return instance;
}
