// The benchmarks' seeded bf16 data (bench/synthetic.ts): the words decode to the stated magnitude
// with both signs, the store-backed and the in-place fills agree for a seed, and no bench writes
// bf16 words by hand beside them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fillBf16, SyntheticTensors } from '../../bench/synthetic.ts';
import { seededRandom } from '../../src/random.ts';
import { bf16ToF32, HeapStore } from '../../src/tensor/index.ts';

const BENCH = join(import.meta.dirname, '../../bench');

test('fillBf16: words of magnitude 2^-6..2^-5 with both signs, the same as SyntheticTensors.bf16 for a seed', () => {
  const words = fillBf16(new Uint16Array(4096), seededRandom(3));
  const values = new Float32Array(words.length);
  bf16ToF32(words, 0, words.length, values);
  for (const v of values) assert.ok(Math.abs(v) >= 2 ** -6 && Math.abs(v) < 2 ** -5, String(v));
  const negative = values.filter((v) => v < 0).length;
  assert.ok(negative > 1800 && negative < 2300, `${negative} of 4096 negative`);
  assert.ok(new Set(words).size > 200, 'random fractions');
  assert.deepEqual(new SyntheticTensors(new HeapStore(), seededRandom(3)).bf16(4096), words);
});

test('the benches fill bf16 buffers with the one helper, not by hand', () => {
  // A bf16 word written by hand: a sign bit chosen at random, or'ed with exponent bits.
  const handWritten = /0x8000\s*:\s*0\)\s*\|/;
  const files = readdirSync(BENCH).filter((f) => f.endsWith('.ts') && f !== 'synthetic.ts');
  assert.ok(files.includes('attention.ts') && files.includes('kernel-ab.ts'));
  assert.deepEqual(files.filter((f) => handWritten.test(readFileSync(join(BENCH, f), 'utf8'))), []);
  assert.match(readFileSync(join(BENCH, 'synthetic.ts'), 'utf8'), handWritten, 'the pattern still finds the helper\'s own words');
});
