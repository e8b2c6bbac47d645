// Our o200k_harmony ids against js-tiktoken (its own copy of the o200k_base ranks and its own BPE)
// with the harmony specials added, on a hand-written corpus and on seeded random strings; and
// against gpt-tokenizer on the corpus. (bench/tokenizer.ts also compares all three on 2 MB.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tiktoken } from 'js-tiktoken/lite';
import { encode as gptTokenizerEncode } from 'gpt-tokenizer/encoding/o200k_harmony';
import o200kBase from 'js-tiktoken/ranks/o200k_base';
import { getTokenizer } from '../../src/tokenizer/index.ts';
import { samples } from './corpus.ts';
import { seededRandom } from '../../src/random.ts';

const tok = getTokenizer();
const harmonySpecials: Record<string, number> = {};
for (let id = 199998; id < tok.vocabSize; id++) harmonySpecials[tok.tokenName(id)!] = id;
const reference = new Tiktoken(o200kBase, harmonySpecials);

test('ordinary encoding matches js-tiktoken on the corpus', () => {
  for (const text of samples) {
    assert.deepEqual(tok.encodeOrdinary(text), reference.encode(text, [], []), JSON.stringify(text));
  }
});

test('ordinary encoding matches gpt-tokenizer (a third implementation) on the corpus', () => {
  const noSpecials = { disallowedSpecial: new Set<string>() };
  for (const text of samples) assert.deepEqual(tok.encodeOrdinary(text), gptTokenizerEncode(text, noSpecials), JSON.stringify(text));
});

test('ordinary encoding matches js-tiktoken on the whole corpus joined', () => {
  const text = samples.join('\n');
  const ids = tok.encodeOrdinary(text);
  assert.deepEqual(ids, reference.encode(text, [], []));
  assert.ok(ids.length > 1000);
});

test('encoding with all specials allowed matches js-tiktoken', () => {
  const texts = [
    '<|start|>user<|message|>What is 2+2?<|end|><|start|>assistant<|channel|>final<|message|>4<|return|>',
    'x<|call|>y<|constrain|>json <|reserved_200013|><|reserved_201087|>z<|endoftext|>',
    ...samples,
  ];
  for (const text of texts) assert.deepEqual(tok.encode(text, { allowedSpecial: 'all' }), reference.encode(text, 'all'), text);
});


// One or more characters from every class the split pattern distinguishes.
const alphabet = [
  'a', 'b', 's', 'e', 'z', 'A', 'S', 'T', 'Z', 'ǅ', 'ʰ', 'ª', '中', 'ア', '한', 'é', 'ß', 'Ж', 'ж',
  '\u0301', '\u0308', '0', '7', '٣', '½', 'Ⅻ', ' ', ' ', ' ', '  ', '\t', '\n', '\r', '\r\n', '\u00a0', '\u3000',
  "'", "'s", "'LL", "'re", '.', ',', '!', '/', '//', '-', '_', '<|', '|>', '$', '😀', '👍🏽', '👩‍💻', '🇯🇵', '\u200d', '€',
];

test('seeded random strings match js-tiktoken', () => {
  const next = seededRandom(20261121);
  for (let round = 0; round < 300; round++) {
    const n = 1 + Math.floor(next() * 60);
    let text = '';
    for (let i = 0; i < n; i++) text += alphabet[Math.floor(next() * alphabet.length)]!;
    assert.deepEqual(tok.encodeOrdinary(text), reference.encode(text, [], []), JSON.stringify(text));
  }
});

test('long single pieces (heap merge path) match js-tiktoken', () => {
  const next = seededRandom(7);
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  for (let round = 0; round < 12; round++) {
    const n = 65 + Math.floor(next() * 200);
    let word = '';
    // few distinct letters => many merges of repeated pairs, the tie-breaking case
    const pool = letters.slice(0, 2 + (round % 6));
    for (let i = 0; i < n; i++) word += pool[Math.floor(next() * pool.length)]!;
    assert.deepEqual(tok.encodeOrdinary(word), reference.encode(word, [], []), word);
    const spaces = ' '.repeat(n) + 'x';
    assert.deepEqual(tok.encodeOrdinary(spaces), reference.encode(spaces, [], []), `${n} spaces`);
    const cjk = '漢字かな한글'.repeat(round + 2);
    assert.deepEqual(tok.encodeOrdinary(cjk), reference.encode(cjk, [], []), cjk);
  }
});
