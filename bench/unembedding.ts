// The unembedding of one decoded token at gpt-oss's shape (201,088 x 2,880): the bf16 weights as
// stored against their int8 copy (`--unembedding int8`), on the wasm backend, in one process.
// Rounds alternate bf16, int8, bf16, int8, ...; each reports the median wall time per call and the
// median process CPU time per call (all threads; on a shared machine the CPU time is the steadier
// figure), and the median of the per-round ratios. Also: the time the int8 copy takes (once, at load).
// Alone: node --import tsx bench/unembedding.ts [--threads N] [--rounds N] [--tokens N]
import { parseArgs } from 'node:util';
import { loadavg } from 'node:os';
import { createWasmBackend } from '../src/kernels/wasm/index.ts';
import { seededRandom } from '../src/random.ts';
import type { Bf16Matrix } from '../src/tensor/index.ts';
import { fillBf16 } from './synthetic.ts';

const { values: flags } = parseArgs({ options: { threads: { type: 'string' }, rounds: { type: 'string' }, tokens: { type: 'string' } } });
const threads = Number(flags.threads ?? 2), rounds = Number(flags.rounds ?? 9), tokens = Number(flags.tokens ?? 1);
for (const [name, v] of [['threads', threads], ['rounds', rounds], ['tokens', tokens]] as const) {
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} must be a positive integer, got "${flags[name]}"`);
}
const vocab = 201088, hidden = 2880;

const b = await createWasmBackend({ threads });
const r = seededRandom(5);
const u = b.store.allocate(vocab * hidden * 2, 'unembedding');
const w: Bf16Matrix = { rows: vocab, cols: hidden, data: fillBf16(new Uint16Array(u.buffer, u.byteOffset, vocab * hidden), r) };
const t0 = performance.now();
const w8 = await b.int8Copy(w, 'unembedding.int8');
const copyS = (performance.now() - t0) / 1000;
const xu = b.store.allocate(tokens * hidden * 4, 'x'), ou = b.store.allocate(tokens * vocab * 4, 'out');
const x = new Float32Array(xu.buffer, xu.byteOffset, tokens * hidden);
for (let i = 0; i < x.length; i++) x[i] = r() * 2 - 1;
const out = new Float32Array(ou.buffer, ou.byteOffset, tokens * vocab);

const cpuMs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const reps = 5;
async function time(weight: Bf16Matrix | typeof w8): Promise<{ wall: number; cpu: number }> {
  const c0 = cpuMs(), w0 = performance.now();
  for (let i = 0; i < reps; i++) await b.linear(x, tokens, weight, null, out);
  return { wall: (performance.now() - w0) / reps, cpu: (cpuMs() - c0) / reps };
}
const median = (a: number[]): number => {
  const s = [...a].sort((p, q) => p - q);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
await time(w);
await time(w8);
const A: { wall: number; cpu: number }[] = [], B: { wall: number; cpu: number }[] = [];
for (let i = 0; i < rounds; i++) {
  A.push(await time(w));
  B.push(await time(w8));
}
const row = (what: 'wall' | 'cpu'): string => {
  const a = median(A.map((x) => x[what])), c = median(B.map((x) => x[what]));
  const perRound = median(A.map((x, i) => x[what] / B[i]![what]));
  return `| ${what === 'wall' ? 'wall' : 'CPU (all threads)'} | ${a.toFixed(2)} | ${c.toFixed(2)} | ${(a / c).toFixed(2)}x | ${perRound.toFixed(2)}x |`;
};
console.log(`unembedding ${vocab} x ${hidden}, ${tokens} token(s), ${threads} thread(s), ${rounds} interleaved rounds of ${reps} calls, load average ${loadavg()[0]!.toFixed(1)} at the end`);
console.log(`int8 copy made in ${copyS.toFixed(2)} s; bytes read per call: bf16 ${(w.data.byteLength / 1e9).toFixed(2)} GB, int8 ${((w8.codes.byteLength + w8.scales.byteLength) / 1e9).toFixed(2)} GB`);
console.log('| time per call | bf16 ms | int8 ms | bf16/int8 (medians) | per-round median |');
console.log('|---|---:|---:|---:|---:|');
console.log(row('wall'));
console.log(row('cpu'));
console.log(`fallbacks: ${JSON.stringify(b.fallbacks)}`);
await b.close();
