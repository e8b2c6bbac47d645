// Op-level benchmark of the wasm backend at gpt-oss-20b's shapes (hidden 2880, 32 experts of
// 2880 x 2880 in MXFP4 with 4 chosen per token, attention 64/8 heads of 64): rmsnorm, the bf16
// linear (the QKV projection), rope, the experts and attention, each for one decoded token and a
// 64-token prefill chunk, random weights in the backend's store, best of 5 rounds. Compare two
// commits by running it in each checkout, interleaved (the figures move with the machine's load).
// Standalone: node --import tsx bench/ops.ts [--threads N] [--expert-activations q8|split|f32]
import { parseArgs } from 'node:util';
import { createWasmBackend } from '../src/kernels/wasm/index.ts';
import { EXPERT_ACTIVATIONS, type ExpertActivations, type ExpertWeights } from '../src/kernels/backend.ts';
import { seededRandom } from '../src/random.ts';
import { SyntheticTensors } from './synthetic.ts';

const { values: flags } = parseArgs({ options: { threads: { type: 'string' }, 'expert-activations': { type: 'string' } } });
const threads = Number(flags.threads ?? 2);
const mode = (flags['expert-activations'] ?? 'q8') as ExpertActivations;
if (!EXPERT_ACTIVATIONS.includes(mode)) throw new Error(`--expert-activations must be one of ${EXPERT_ACTIVATIONS.join(', ')}, got "${mode}"`);

const b = await createWasmBackend({ threads, expertActivations: mode });
const r = seededRandom(1);
const hidden = 2880, experts = 32, k = 4, heads = 64, kvHeads = 8, headDim = 64, keyCount = 2048;

const synthetic = new SyntheticTensors(b.store, r);
const f32 = (n: number, scale = 1): Float32Array => synthetic.f32(n, scale);
const bf16 = (n: number): Uint16Array => synthetic.bf16(n);
const mxfp4 = (rows: number, cols: number): ExpertWeights['mlp1Weight'] => synthetic.mxfp4(experts, rows, cols);

const moe: ExpertWeights = {
  mlp1Weight: mxfp4(2 * hidden, hidden), mlp1Bias: f32(experts * 2 * hidden, 0.1),
  mlp2Weight: mxfp4(hidden, hidden), mlp2Bias: f32(experts * hidden, 0.1),
};
const qkv = { rows: (heads + 2 * kvHeads) * headDim, cols: hidden, data: bf16((heads + 2 * kvHeads) * headDim * hidden) };
const qkvBias = f32(qkv.rows, 0.1), normScale = f32(hidden);
const rope = { halfDim: headDim / 2, positions: keyCount, cos: f32(keyCount * headDim / 2), sin: f32(keyCount * headDim / 2) };
const keys = f32(keyCount * kvHeads * headDim), values = f32(keyCount * kvHeads * headDim), sinks = f32(heads);
const keyPositions = Int32Array.from({ length: keyCount }, (_, i) => i);

async function time(reps: number, op: () => unknown): Promise<number> {
  await op();
  let best = Infinity;
  for (let round = 0; round < 5; round++) {
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) await op();
    best = Math.min(best, (performance.now() - t0) / reps);
  }
  return best;
}

console.log(`ops, ${threads} thread(s), ${mode} expert activations (ms per call, best of 5)`);
for (const tokens of [1, 64]) {
  const reps = tokens === 1 ? 20 : 2;
  const x = f32(tokens * hidden), y = f32(tokens * hidden), q = f32(tokens * qkv.rows), att = f32(tokens * heads * headDim);
  const indices = Int32Array.from({ length: tokens * k }, (_, i) => (i * 7 + Math.floor(i / k) * 3) % experts);
  const weights = f32(tokens * k);
  const positions = Int32Array.from({ length: tokens }, (_, i) => keyCount - tokens + i);
  const ops: [string, () => unknown][] = [
    ['rmsnorm', () => b.rmsnorm(x, tokens, normScale, 1e-5, y)],
    ['linear (qkv)', () => b.linear(x, tokens, qkv, qkvBias, q)],
    ['rope (q)', () => b.rope(att, tokens, heads, headDim, positions, rope)],
    ['experts', () => b.experts(x, tokens, indices, weights, k, moe, 7, y)],
    ['attention (2,048 keys)', () => b.attention(att, tokens, positions, keys, values, keyCount, keyPositions, sinks, { heads, kvHeads, headDim, window: 0 }, att)],
  ];
  for (const [name, op] of ops) console.log(`${tokens === 1 ? 'decode' : 'prefill 64'} ${name}: ${(await time(reps, op)).toFixed(3)}`);
}
console.log(`fallbacks: ${JSON.stringify(b.fallbacks)}`);
await b.close();
