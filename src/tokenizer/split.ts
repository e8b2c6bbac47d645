// The o200k pre-tokenizer: splits text into the pieces that byte-pair encoding works on, with the
// o200k_base pattern. tiktoken evaluates it with Rust's regex, where \s is Unicode White_Space;
// JavaScript's \s differs (it adds U+FEFF, lacks U+0085), so White_Space is spelled out here.
// Rust's case-insensitive "'s" also matches "'ſ" (U+017F folds to s), hence [sSſ].

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

/** A fresh global regex (each caller owns its lastIndex). */
export function o200kRegex(): RegExp {
  return new RegExp(O200K_PATTERN, 'gu');
}

/** The pieces of `text`, in order (their concatenation is `text`). */
export function splitPieces(text: string): string[] {
  return text.match(o200kRegex()) ?? [];
}
