// The thread pool's ways of waiting, side by side in one process: every op offloaded (the workers
// compute every slice while the main thread awaits Atomics.waitAsync, its event loop free),
// offload (gptoss serve's: ops of 2^28 multiply-adds and more offloaded, smaller ones inline beside
// the workers) and inline (the default; the main thread computes a slice, then blocks in Atomics.wait). The
// backends hold the same seeded weights at gpt-oss-20b's shapes; rounds alternate between them
// and each op reports the median wall time per call of each and the median of the per-round ratios
// against inline (adjacent runs see the same load). Ops: the smallest linear the pool hands off (the hand-off's
// own cost), decode's QKV projection and a 16,384-row slice of the unembedding, one decoded
// token's experts, decode attention at 2,048 keys, one decoded token's whole unembedding (offloaded
// with offload). Last, how many event-loop turns the main thread ran during a 64-token experts call
// (offloaded with offload) in each mode (inline: none can run).
// Alone: node --import tsx bench/handoff.ts [--threads N] [--rounds N]
import { parseArgs } from 'node:util';
import { createWasmBackend, type WasmBackend } from '../src/kernels/wasm/index.ts';
import type { ExpertWeights } from '../src/kernels/backend.ts';
import type { Bf16Matrix } from '../src/tensor/index.ts';
import { seededRandom } from '../src/random.ts';
import { SyntheticTensors } from './synthetic.ts';

const { values: flags } = parseArgs({ options: { threads: { type: 'string' }, rounds: { type: 'string' } } });
const threads = Number(flags.threads ?? 2);
const rounds = Number(flags.rounds ?? 9);
if (!Number.isInteger(threads) || threads < 1) throw new Error(`--threads must be a positive integer, got "${flags.threads}"`);
if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds must be a positive integer, got "${flags.rounds}"`);
const hidden = 2880, experts = 32, k = 4, heads = 64, kvHeads = 8, headDim = 64, keyCount = 2048;

/** One backend and its ops over seeded data (the same for both modes). */
async function setup(pool: { offload?: boolean; offloadWork?: number }) {
  const b = await createWasmBackend({ threads, ...pool, expertActivations: 'q8' });
  const r = seededRandom(3);
  const synthetic = new SyntheticTensors(b.store, r);
  const f32 = (n: number, scale = 1): Float32Array => synthetic.f32(n, scale);
  const bf16 = (rows: number, cols: number): Bf16Matrix => ({ rows, cols, data: synthetic.bf16(rows * cols) });
  const mxfp4 = (rows: number, cols: number): ExpertWeights['mlp1Weight'] => synthetic.mxfp4(experts, rows, cols);
  const moe: ExpertWeights = {
    mlp1Weight: mxfp4(2 * hidden, hidden), mlp1Bias: f32(experts * 2 * hidden, 0.1),
    mlp2Weight: mxfp4(hidden, hidden), mlp2Bias: f32(experts * hidden, 0.1),
  };
  const tiny = bf16(96, hidden), qkv = bf16((heads + 2 * kvHeads) * headDim, hidden), slice = bf16(16384, hidden), unembed = bf16(201088, hidden);
  const x = f32(64 * hidden), y = f32(64 * hidden), wide = f32(201088);
  const keys = f32(keyCount * kvHeads * headDim), values = f32(keyCount * kvHeads * headDim), sinks = f32(heads);
  const q = f32(heads * headDim), att = f32(heads * headDim);
  const keyPositions = Int32Array.from({ length: keyCount }, (_, i) => i), at = Int32Array.of(keyCount - 1);
  const indices = Int32Array.from({ length: 64 * k }, (_, i) => (i * 7 + Math.floor(i / k) * 3) % experts);
  const weights = f32(64 * k);
  const ops: [string, number, () => unknown][] = [
    ['linear 96 x 2,880, 1 token (hand-off floor)', 200, () => b.linear(x, 1, tiny, null, wide)],
    ['linear QKV 5,120 x 2,880, 1 token', 50, () => b.linear(x, 1, qkv, null, wide)],
    ['linear 16,384 x 2,880, 1 token', 10, () => b.linear(x, 1, slice, null, wide)],
    ['experts, 1 token (4 of 32)', 20, () => b.experts(x, 1, indices, weights, k, moe, 7, y)],
    ['attention, 1 token, 2,048 keys', 50, () => b.attention(q, 1, at, keys, values, keyCount, keyPositions, sinks, { heads, kvHeads, headDim, window: 0 }, att)],
    ['unembedding 201,088 x 2,880, 1 token', 2, () => b.linear(x, 1, unembed, null, wide)],
  ];
  const chunk = (): unknown => b.experts(x, 64, indices, weights, k, moe, 7, y);
  return { b, ops, chunk };
}

const median = (a: number[]): number => {
  const s = [...a].sort((p, q) => p - q);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

const modes = [['all offloaded', await setup({ offload: true, offloadWork: 0 })], ['offload', await setup({ offload: true })], ['inline', await setup({})]] as const;
const times = modes.map(() => modes[0][1].ops.map(() => [] as number[]));
const perCall = async (reps: number, op: () => unknown): Promise<number> => {
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) await op();
  return (performance.now() - t0) / reps;
};
for (const [, s] of modes) for (const [, , op] of s.ops) await op();
for (let round = 0; round < rounds; round++) {
  for (const [i, [, reps]] of modes[0][1].ops.entries()) {
    for (const [m, [, s]] of modes.entries()) times[m]![i]!.push(await perCall(reps, s.ops[i]![2]));
  }
}

/** Event-loop turns (setImmediate callbacks) the main thread ran while `op` was pending. */
async function turnsDuring(op: () => unknown): Promise<number> {
  let turns = 0, done = false;
  const tick = (): void => {
    if (done) return;
    turns++;
    setImmediate(tick);
  };
  setImmediate(tick);
  await op();
  done = true;
  return turns;
}
const turns: number[] = [];
for (const [, s] of modes) turns.push(await turnsDuring(s.chunk));

const { loadavg } = await import('node:os');
console.log(`hand-off, ${threads} thread(s), ${rounds} interleaved rounds, load average ${loadavg()[0]!.toFixed(1)} at the end`);
console.log(`| op | ${modes.map(([n]) => `${n} ms`).join(' | ')} | inline/all offloaded, inline/offload (per-round medians) |`);
console.log(`|---|${modes.map(() => '---:|').join('')}---:|`);
const inline = modes.length - 1;
for (const [i, [name]] of modes[0][1].ops.entries()) {
  const ratio = (m: number): string => `${median(times[inline]![i]!.map((t, j) => t / times[m]![i]![j]!)).toFixed(2)}x`;
  console.log(`| ${name} | ${modes.map((_, m) => median(times[m]![i]!).toFixed(3)).join(' | ')} | ${ratio(0)}, ${ratio(1)} |`);
}
console.log(`event-loop turns during a 64-token experts call: ${modes.map(([n], m) => `${n} ${turns[m]}`).join(', ')}`);
for (const [, s] of modes) await s.b.close();
