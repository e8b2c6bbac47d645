// The harmony special tokens of o200k_harmony: the named ones gpt-oss uses, and `<|reserved_N|>`
// for every other id up to the end of the model's 201088-row vocabulary.

export const VOCAB_SIZE = 201088;
/** First id after the mergeable o200k_base ranks. */
export const FIRST_SPECIAL = 199998;

export const SPECIAL = {
  startoftext: 199998,
  endoftext: 199999,
  return: 200002,
  constrain: 200003,
  channel: 200005,
  start: 200006,
  end: 200007,
  message: 200008,
  call: 200012,
} as const;

/** 200018 is `<|endofprompt|>` in o200k_base (and in gpt-oss's tokenizer_config.json), while the
 *  gpt-oss tokenizer also lists it as `<|reserved_200018|>`: both names encode to it. */
const ENDOFPROMPT = 200018;

/** name of every special id (index = id - FIRST_SPECIAL) and the id of every accepted name. */
export function buildSpecials(): { names: string[]; ids: Map<string, number> } {
  const named = new Map<number, string>(Object.entries(SPECIAL).map(([k, v]) => [v, `<|${k}|>`]));
  named.set(ENDOFPROMPT, '<|endofprompt|>');
  const names: string[] = [];
  const ids = new Map<string, number>();
  for (let id = FIRST_SPECIAL; id < VOCAB_SIZE; id++) {
    const reserved = `<|reserved_${id}|>`;
    const name = named.get(id) ?? reserved;
    names.push(name);
    ids.set(name, id);
    if (id === ENDOFPROMPT) ids.set(reserved, id);
  }
  return { names, ids };
}
