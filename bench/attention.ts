// Attention op benchmark at the gpt-oss-20b shape (64 query heads, 8 KV heads, head size 64): one
// 512-token prefill chunk or one decoded token against a cache filled as the model fills it
// (slot = position for dense layers, a ring for the banded one), best of 3, on the wasm backend.
// Compare two commits by running it in each checkout, interleaved.
// Standalone: node --import tsx bench/attention.ts [--threads N] [--kv-cache f32|bf16]
import { parseArgs } from 'node:util';
import { createWasmBackend } from '../src/kernels/wasm/index.ts';
import { seededRandom } from '../src/random.ts';
import { SyntheticTensors } from './synthetic.ts';

const { values: flags } = parseArgs({ options: { threads: { type: 'string' }, 'kv-cache': { type: 'string' } } });
const threads = Number(flags.threads ?? 2);
const kvType = flags['kv-cache'] ?? 'f32';
if (kvType !== 'f32' && kvType !== 'bf16') throw new Error(`--kv-cache must be f32 or bf16, got "${kvType}"`);

const b = await createWasmBackend({ threads });
const heads = 64, kvHeads = 8, headDim = 64;
const synthetic = new SyntheticTensors(b.store, seededRandom(1));
const f32 = (n: number): Float32Array => synthetic.f32(n);
const kv = (n: number): Float32Array | Uint16Array => (kvType === 'f32' ? f32(n) : synthetic.bf16(n));

const cases = [
  ['prefill chunk at 1536, dense layer, 2,048 keys', 512, 2048, 0, 2048],
  ['prefill chunk at 1536, banded layer (ring of 767 slots)', 512, 767, 128, 2048],
  ['prefill chunk at 7680, dense layer, 8,192 keys', 512, 8192, 0, 8192],
  ['decode at 2047, dense layer, 2,048 keys', 1, 2048, 0, 2048],
  ['decode at 8191, dense layer, 8,192 keys', 1, 8192, 0, 8192],
] as const;

console.log(`attention, ${threads} thread(s), ${kvType} KV cache`);
for (const [name, tokens, keyCount, window, length] of cases) {
  const q = f32(tokens * heads * headDim), out = f32(tokens * heads * headDim);
  const keys = kv(keyCount * kvHeads * headDim), values = kv(keyCount * kvHeads * headDim);
  const positions = Int32Array.from({ length: tokens }, (_, i) => length - tokens + i);
  const keyPositions = new Int32Array(keyCount).fill(-1);
  for (let p = Math.max(0, length - keyCount); p < length; p++) keyPositions[p % keyCount] = p;
  const sinks = f32(heads);
  const shape = { heads, kvHeads, headDim, window };
  const reps = tokens === 1 ? 50 : 2;
  await b.attention(q, tokens, positions, keys, values, keyCount, keyPositions, sinks, shape, out);
  let best = Infinity;
  for (let round = 0; round < 3; round++) {
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) await b.attention(q, tokens, positions, keys, values, keyCount, keyPositions, sinks, shape, out);
    best = Math.min(best, (performance.now() - t0) / reps);
  }
  console.log(`${name}: ${best.toFixed(2)} ms`);
}
console.log(`fallbacks: ${JSON.stringify(b.fallbacks)}`);
await b.close();
