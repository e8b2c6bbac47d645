// Public surface of the tokenizer: o200k_harmony (o200k_base byte-pair ranks and split pattern plus
// the harmony special tokens). Special tokens are only recognised where the caller allows them, so
// "<|start|>" typed by a user is ordinary text; decoding is strict about UTF-8.
import { UserError } from '../errors.ts';
import { mergePiece } from './bpe.ts';
import { loadO200kBaseRanks, O200K_BASE_RANKS } from './ranks.ts';
import { buildSpecials, FIRST_SPECIAL, VOCAB_SIZE } from './specials.ts';
import { o200kRegex } from './split.ts';
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

class O200kHarmony implements Tokenizer {
  readonly vocabSize = VOCAB_SIZE;
  private readonly bytes: Uint8Array[];
  /** token bytes as a latin1 string (one char per byte), the key of `rankOf`. */
  private readonly binary: string[];
  private readonly rankOf = new Map<string, number>();
  private readonly byteToken = new Int32Array(256);
  private readonly pairs = new Map<number, number>();
  private readonly pieces = new Map<string, readonly number[]>();
  private readonly specialNames: string[];
  private readonly specialIds: Map<string, number>;
  private readonly regex = o200kRegex();
  private readonly pairRank = (a: number, b: number): number => {
    const key = a * 262144 + b;
    let r = this.pairs.get(key);
    if (r === undefined) {
      r = this.rankOf.get(this.binary[a]! + this.binary[b]!) ?? -1;
      this.pairs.set(key, r);
    }
    return r;
  };

  constructor() {
    const ranks = loadO200kBaseRanks();
    const { names, ids } = buildSpecials();
    this.specialNames = names;
    this.specialIds = ids;
    const encoder = new TextEncoder();
    this.bytes = [...ranks, ...names.map((n) => encoder.encode(n))];
    this.binary = new Array<string>(O200K_BASE_RANKS);
    for (let rank = 0; rank < O200K_BASE_RANKS; rank++) {
      const s = Buffer.from(ranks[rank]!.buffer, ranks[rank]!.byteOffset, ranks[rank]!.length).toString('latin1');
      this.binary[rank] = s;
      this.rankOf.set(s, rank);
      if (s.length === 1) this.byteToken[s.charCodeAt(0)] = rank;
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
    // Every special token is "<|name|>" with no "|>" inside, so a candidate runs from "<|" to the
    // first "|>" after it.
    for (;;) {
      const open = text.indexOf('<|', from);
      if (open < 0) break;
      const close = text.indexOf('|>', open + 2);
      if (close < 0) break;
      const name = text.slice(open, close + 2);
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
    for (let i = 0; i < ids.length; i++) total += this.checkedBytes(ids[i]!, i).length;
    const out = new Uint8Array(total);
    let at = 0;
    for (const id of ids) {
      const b = this.bytes[id]!;
      out.set(b, at);
      at += b.length;
    }
    return out;
  }

  decode(ids: readonly number[]): string {
    const bytes = this.decodeBytes(ids);
    const problem = findUtf8Problem(bytes);
    if (problem !== null) {
      let end = 0;
      let index = 0;
      while (index < ids.length && end + this.bytes[ids[index]!]!.length <= problem.offset) end += this.bytes[ids[index++]!]!.length;
      const what = problem.incomplete ? 'the tokens end inside a multi-byte UTF-8 character' : 'invalid UTF-8';
      throw new UserError('input', `${what} at token ${index} (id ${ids[index]}, byte ${problem.offset})`);
    }
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('utf8');
  }

  tokenBytes(id: number): Uint8Array {
    return this.checkedBytes(id, undefined).slice();
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

  private checkedBytes(id: number, position: number | undefined): Uint8Array {
    if (!Number.isInteger(id) || id < 0 || id >= VOCAB_SIZE) {
      const where = position === undefined ? '' : ` at position ${position}`;
      throw new UserError('input', `token id ${id}${where} is out of range (0..${VOCAB_SIZE - 1})`);
    }
    return this.bytes[id]!;
  }

  private encodeOrdinaryInto(text: string, out: number[]): void {
    const re = this.regex;
    re.lastIndex = 0;
    let m: RegExpExecArray | null;
    while ((m = re.exec(text)) !== null) this.encodePiece(m[0], out);
  }

  private encodePiece(piece: string, out: number[]): void {
    let ascii = true;
    for (let i = 0; i < piece.length; i++) {
      if (piece.charCodeAt(i) >= 0x80) {
        ascii = false;
        break;
      }
    }
    const binary = ascii ? piece : Buffer.from(piece, 'utf8').toString('latin1');
    const whole = this.rankOf.get(binary);
    if (whole !== undefined) {
      out.push(whole);
      return;
    }
    const cached = this.pieces.get(piece);
    if (cached !== undefined) {
      for (const id of cached) out.push(id);
      return;
    }
    const ids: number[] = new Array<number>(binary.length);
    for (let i = 0; i < binary.length; i++) ids[i] = this.byteToken[binary.charCodeAt(i)]!;
    const merged = mergePiece(ids, this.pairRank);
    if (piece.length <= CACHED_PIECE_MAX_LENGTH) {
      if (this.pieces.size >= PIECE_CACHE_LIMIT) this.pieces.clear();
      this.pieces.set(piece, merged);
    }
    for (const id of merged) out.push(id);
  }
}

let instance: Tokenizer | undefined;

/** The o200k_harmony tokenizer, built on first use (reads ~3.6 MB of ranks). */
export function getTokenizer(): Tokenizer {
  instance ??= new O200kHarmony();
  return instance;
}
