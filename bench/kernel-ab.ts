// Interleaved A/B of two builds of the kernels, one thread, at gpt-oss-20b's shapes: the q8
// experts (quantise, mlp1 + SwiGLU, quantise, mlp2 + scatter) for one decoded token, decode
// batches of 4, 8 and 12 tokens and a 64-token chunk, the bf16 linear for one token (the QKV
// projection and a 16,384-row slice of the unembedding), with the memory-bandwidth probe reading
// that slice's bytes for comparison, and the bf16 linear for decode batches of 4 and 8 tokens,
// a 64-token prefill chunk (the QKV and output projections) and the QKV projection of 256
// tokens. Each build gets its own memories holding the same seeded data, two copies set up in
// the order A, B, B, A (see below); rounds alternate A, B, B, A.
// Times are the process's CPU time (one thread computes), not wall time: on a machine shared
// with other work the wall clock mostly measures the scheduler. Each op reports both medians and
// the ratios A/B (> 1: B is faster) of the medians, the median of the per-round ratios (adjacent
// runs see the same load: the figure to quote on a shared machine) and of the best runs.
// Alone: node --import tsx bench/kernel-ab.ts --base DIR_WITH_OLD_WASM [--rounds N] [--relaxed 0|1]
//        [--ops NAME,...] (substrings of the op names: experts, linear, decode, prefill, ...)
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { EXPERT_ACTIVATIONS_Q8, EXPERT_BIAS, EXPERT_BLOCKS, EXPERT_DOWN_TOKENS, EXPERT_DOWN_WEIGHTS, EXPERT_INPUT, EXPERT_QUANT_INPUT, EXPERT_RECORD_WORDS, EXPERT_ROWS, EXPERT_SCALES, EXPERT_UP_OUTPUT } from '../src/kernels/wasm/abi.ts';
import { seededRandom } from '../src/random.ts';
import { fillBf16 } from './synthetic.ts';

const { values: flags } = parseArgs({ options: { base: { type: 'string' }, rounds: { type: 'string' }, relaxed: { type: 'string' }, ops: { type: 'string' } } });
const rounds = Number(flags.rounds ?? 9);
const relaxed = flags.relaxed !== '0';
function fail(msg: string): never {
  console.error(`kernel-ab: ${msg}`);
  process.exit(2);
}
if (flags.base === undefined) fail('--base DIR is required (a folder with the kernels.wasm and kernels-relaxed.wasm to compare against)');
if (!Number.isInteger(rounds) || rounds < 1) fail(`--rounds must be a positive integer, got "${flags.rounds}"`);
const only = flags.ops?.split(',');
setFlagsFromString('--no-liftoff');
if (relaxed) setFlagsFromString('--experimental-wasm-relaxed-simd');
const file = relaxed ? 'kernels-relaxed.wasm' : 'kernels.wasm';
if (!existsSync(join(flags.base, file))) fail(`no ${file} in ${flags.base}`);
const here = new URL('../src/kernels/wasm/', import.meta.url).pathname;

type Kernels = Record<string, (...args: number[]) => number>;
const hidden = 2880, inter = 2880, experts = 8, k = 4, linearRows = 16384, qkvRows = 5120, attnWidth = 4096, prefillTokens = 64, longTokens = 256;

/** One build over its own memory, with the experts' weights, activations and work lists laid out. */
function setup(dir: string) {
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 65536, shared: true });
  const kern = new WebAssembly.Instance(new WebAssembly.Module(readFileSync(join(dir, file))), { env: { memory } }).exports as Kernels;
  let top = 1 << 20;
  const take = (bytes: number): number => {
    const p = top;
    top += Math.ceil(bytes / 64) * 64;
    const need = Math.ceil(top / 65536) - memory.buffer.byteLength / 65536;
    if (need > 0) memory.grow(need);
    return p;
  };
  const r = seededRandom(7);
  const u8 = (p: number, n: number, f: () => number): void => { const a = new Uint8Array(memory.buffer, p, n); for (let i = 0; i < n; i++) a[i] = f(); };
  const f32 = (p: number, n: number, scale: number): void => { const a = new Float32Array(memory.buffer, p, n); for (let i = 0; i < n; i++) a[i] = (r() * 2 - 1) * scale; };
  const up = { blocks: take(experts * 2 * inter * hidden / 2), scales: take(experts * 2 * inter * hidden / 32), bias: take(experts * 2 * inter * 4) };
  const down = { blocks: take(experts * hidden * inter / 2), scales: take(experts * hidden * inter / 32), bias: take(experts * hidden * 4) };
  for (const m of [up, down]) {
    const n = m === up ? 2 * inter * hidden : hidden * inter;
    u8(m.blocks, experts * n / 2, () => Math.floor(r() * 256));
    u8(m.scales, experts * n / 32, () => 118 + Math.floor(r() * 8));
    f32(m.bias, experts * (m === up ? 2 * inter : hidden), 0.1);
  }
  const maxTokens = 64;
  const x = take(maxTokens * hidden * 4), xq = take(maxTokens * kern.f32_quantize_i8_row_bytes!(hidden));
  const act = take(maxTokens * k * inter * 4), aq = take(maxTokens * k * kern.f32_quantize_i8_row_bytes!(inter));
  const out = take(maxTokens * hidden * 4), rowbuf = take(kern.f32_mf4w_moe_row_buffer_bytes!(Math.max(hidden, inter)));
  f32(x, maxTokens * hidden, 1);
  const w = new Linear(memory, take, r);
  /** Work lists for `tokens` tokens, token t routed to experts (t + j) % experts (j < k); returns the lists. */
  const route = (tokens: number): { entries: number; listUp: number; listDown: number } => {
    const listUp = take(experts * EXPERT_RECORD_WORDS * 4), listDown = take(experts * EXPERT_RECORD_WORDS * 4);
    const tok = take(tokens * k * 4), wgt = take(tokens * k * 4);
    const rows: number[][] = Array.from({ length: experts }, () => []);
    for (let t = 0; t < tokens; t++) for (let j = 0; j < k; j++) rows[(t * 3 + j) % experts]!.push(t);
    const words = new Uint32Array(memory.buffer);
    const tokens32 = new Int32Array(memory.buffer), weights = new Float32Array(memory.buffer);
    let entries = 0, row = 0;
    const aRow = kern.f32_quantize_i8_row_bytes!(inter);
    for (let e = 0; e < experts; e++) {
      const n = rows[e]!.length;
      if (n === 0) continue;
      // Each expert reads its own copy of its tokens' rows: x rows [row, row + n).
      const u = (listUp >> 2) + entries * EXPERT_RECORD_WORDS, d = (listDown >> 2) + entries * EXPERT_RECORD_WORDS;
      words[u + EXPERT_BLOCKS] = up.blocks + e * inter * hidden; words[u + EXPERT_SCALES] = up.scales + e * 2 * inter * hidden / 32;
      words[u + EXPERT_BIAS] = up.bias + e * 2 * inter * 4; words[u + EXPERT_INPUT] = x; words[u + EXPERT_ROWS] = n;
      words[u + EXPERT_QUANT_INPUT] = xq; words[u + EXPERT_UP_OUTPUT] = act + row * inter * 4;
      words[d + EXPERT_BLOCKS] = down.blocks + e * hidden * inter / 2; words[d + EXPERT_SCALES] = down.scales + e * hidden * inter / 32;
      words[d + EXPERT_BIAS] = down.bias + e * hidden * 4; words[d + EXPERT_INPUT] = act + row * inter * 4; words[d + EXPERT_ROWS] = n;
      words[d + EXPERT_QUANT_INPUT] = aq + row * aRow; words[d + EXPERT_DOWN_TOKENS] = tok + row * 4; words[d + EXPERT_DOWN_WEIGHTS] = wgt + row * 4;
      for (let i = 0; i < n; i++) { tokens32[(tok >> 2) + row + i] = rows[e]![i]!; weights[(wgt >> 2) + row + i] = 0.25; }
      entries++;
      row += n;
    }
    return { entries, listUp, listDown };
  };
  const experts1 = (tokens: number) => {
    const { entries, listUp, listDown } = route(tokens);
    const rowsTotal = tokens * k;
    return () => {
      kern.f32_quantize_i8!(x, xq, tokens, hidden);
      kern.f32_mf4w_moe_matmul_swiglu!(listUp, entries, hidden, inter, rowbuf, 7, EXPERT_ACTIVATIONS_Q8, 0, 1);
      kern.f32_quantize_i8!(act, aq, rowsTotal, inter);
      kern.f32_mf4w_moe_matmul_scatter!(listDown, entries, hidden, inter, out, rowbuf, EXPERT_ACTIVATIONS_Q8, 0, 1);
    };
  };
  // The matmul's widening buffer for one thread (builds before it took none: 9 parameters).
  const wbuf = take(kern.f32_bf16w_matmul_buffer_bytes?.() ?? 0);
  const matmul = (...args: number[]): number => kern.f32_bf16w_matmul!.length === 9 ? kern.f32_bf16w_matmul!(...args) : kern.f32_bf16w_matmul!(...args.slice(0, 7), wbuf, 0, 1);
  const lin = (rows: number) => {
    const wp = rows === qkvRows ? w.qkv : w.big;
    return () => matmul(w.x, 1, hidden, wp, rows, 0, w.out, 0, 1);
  };
  // A prefill chunk: x is taken as already pair-permuted (the kernel's input order; timing only).
  const linPrefill = (rows: number, cols: number, wp: number, tokens = prefillTokens) => () => matmul(w.xs, tokens, cols, wp, rows, 0, w.out, 0, 1);
  const ops: Record<string, () => void> = {
    'experts decode (1 token)': experts1(1),
    'experts prefill (64 tokens)': experts1(64),
    // Decode batches of several sequences: two, four and six tokens per expert.
    'experts batch (4 tokens)': experts1(4),
    'experts batch (8 tokens)': experts1(8),
    'experts batch (12 tokens)': experts1(12),
    'linear decode qkv (5120 rows)': lin(qkvRows),
    'linear decode 16384 rows': lin(linearRows),
    // The memory-bandwidth probe over the same 94 MB: what a matvec streaming at the limit would take.
    'stream read of the 16384-row weights': () => kern.mem_stream_read!(w.big, linearRows * hidden * 2, w.out, 0, 1),
    // Decode batches of several sequences.
    'linear batch qkv (4 tokens)': () => matmul(w.xs, 4, hidden, w.qkv, qkvRows, 0, w.out, 0, 1),
    'linear batch qkv (8 tokens)': () => matmul(w.xs, 8, hidden, w.qkv, qkvRows, 0, w.out, 0, 1),
    'linear prefill qkv (64 tokens, 5120 x 2880)': linPrefill(qkvRows, hidden, w.qkv),
    'linear prefill out (64 tokens, 2880 x 4096)': linPrefill(hidden, attnWidth, w.attnOut),
    'linear prefill qkv (256 tokens, 5120 x 2880)': linPrefill(qkvRows, hidden, w.qkv, longTokens),
  };
  return { ops, memory, kern, out, w };
}

/** bf16 weights for the linear cases. */
class Linear {
  x: number; xs: number; out: number; qkv: number; big: number; attnOut: number;
  constructor(memory: WebAssembly.Memory, take: (n: number) => number, r: () => number) {
    // The multi-token activations, as many as the widest prefill op reads.
    const xsLength = Math.max(prefillTokens * attnWidth, longTokens * hidden);
    this.x = take(hidden * 4); this.xs = take(xsLength * 4);
    this.out = take(Math.max(linearRows, longTokens * qkvRows) * 4);
    this.qkv = take(qkvRows * hidden * 2); this.big = take(linearRows * hidden * 2); this.attnOut = take(hidden * attnWidth * 2);
    const x1 = new Float32Array(memory.buffer, this.x, hidden);
    for (let i = 0; i < hidden; i++) x1[i] = r() * 2 - 1;
    const xs = new Float32Array(memory.buffer, this.xs, xsLength);
    for (let i = 0; i < xs.length; i++) xs[i] = r() * 2 - 1;
    for (const [p, n] of [[this.qkv, qkvRows * hidden], [this.big, linearRows * hidden], [this.attnOut, hidden * attnWidth]] as const) fillBf16(new Uint16Array(memory.buffer, p, n), r);
  }
}

// Each build twice, set up in the order A, B, B, A: the memory set up later runs faster here
// (identical builds read 1.05-1.15x in favour of the second), so each build's time per round is
// the mean of its two copies, one early and one late.
const A = setup(flags.base), B = setup(here), B2 = setup(here), A2 = setup(flags.base);
const median = (a: number[]): number => { const s = [...a].sort((p, q) => p - q); return s[s.length >> 1]!; };
console.log(`kernel A/B, 1 thread, ${file}: A = ${flags.base}, B = this checkout; ${rounds} interleaved rounds (A, B, B, A), medians (CPU ms per call)`);
for (const name of Object.keys(A.ops)) {
  if (only !== undefined && !only.some((o) => name.includes(o))) continue;
  const reps = name.includes('prefill') ? 1 : name.includes('16384') || name.includes('batch') ? 5 : 20;
  const ta: number[] = [], tb: number[] = [];
  for (const s of [A, B, B2, A2]) s.ops[name]!();
  const time = (s: typeof A): number => {
    const c0 = process.cpuUsage();
    for (let j = 0; j < reps; j++) s.ops[name]!();
    const c = process.cpuUsage(c0);
    return (c.user + c.system) / 1000 / reps;
  };
  for (let i = 0; i < rounds; i++) {
    const a1 = time(A), b1 = time(B), b2 = time(B2), a2 = time(A2);
    ta.push((a1 + a2) / 2);
    tb.push((b1 + b2) / 2);
  }
  // Same inputs, so the outputs must agree (to rounding: a kernel may sum in another order).
  const oa = new Float32Array(A.memory.buffer, name.includes('linear') ? A.w.out : A.out, 256);
  const ob = new Float32Array(B.memory.buffer, name.includes('linear') ? B.w.out : B.out, 256);
  let diff = 0, mag = 0;
  for (let i = 0; i < 256; i++) { diff = Math.max(diff, Math.abs(oa[i]! - ob[i]!)); mag = Math.max(mag, Math.abs(oa[i]!)); }
  const ma = median(ta), mb = median(tb);
  const paired = median(ta.map((a, i) => a / tb[i]!)), best = Math.min(...ta) / Math.min(...tb);
  console.log(`${name}: A ${ma.toFixed(3)}  B ${mb.toFixed(3)}  A/B medians ${(ma / mb).toFixed(3)}, per round ${paired.toFixed(3)}, best ${best.toFixed(3)}  (max |A-B| ${diff.toExponential(1)} of ${mag.toExponential(1)})`);
}
