// The fast backend: WebAssembly SIMD kernels (assembly/, one file per op family, built to
// kernels.wasm; the numbers both sides share are in abi.ts) over
// several shared memories (store.ts), run by a thread pool with an Atomics hand-off (pool.ts).
// Weights are used in place where the store put them; activations not already in the weight's
// memory are copied into that memory's scratch for the op (a few KB per token; it is the price
// of several memories). Ops the kernels cannot take (a weight outside the store, a shape the
// kernels do not handle, a KV cache larger than the scratch) fall back to the reference code, so
// results are always defined; each fallback is counted per op (`fallbacks`) so tests can require
// none and `gptoss bench` can show them.
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { UserError } from '../../errors.ts';
import { INT8_GROUP, int8Bytes, isInt8Matrix, type Bf16Matrix, type Int8Matrix, type LinearWeight, type Mxfp4Matrices } from '../../tensor/index.ts';
import { EXPERT_ACTIVATIONS, type AttentionShape, type Backend, type BackendOptions, type ExpertActivations, type ExpertWeights, type KvArray, type RopeTable } from '../backend.ts';
export type { ExpertActivations } from '../backend.ts';
import { createReferenceBackend } from '../reference.ts';
import {
  EXPERT_ACTIVATIONS_F32, EXPERT_ACTIVATIONS_Q8, EXPERT_ACTIVATIONS_SPLIT, EXPERT_BIAS, EXPERT_BLOCKS, EXPERT_DOWN_TOKENS,
  EXPERT_DOWN_WEIGHTS, EXPERT_INPUT, EXPERT_QUANT_INPUT, EXPERT_RECORD_BYTES, EXPERT_RECORD_WORDS, EXPERT_ROWS,
  EXPERT_SCALES, EXPERT_UP_OUTPUT, KV_CACHE_BF16, KV_CACHE_F32,
} from './abi.ts';
import { ThreadPool } from './pool.ts';
import { WasmStore, type WasmMemory } from './store.ts';

type Exports = Record<string, (...args: number[]) => number>;

export interface WasmBackend extends Backend {
  readonly threads: number;
  /** Whether the main thread awaits the workers instead of computing a slice (WasmBackendOptions.offload). */
  readonly offload: boolean;
  readonly store: WasmStore;
  int8Copy(w: Bf16Matrix, label: string): Promise<Int8Matrix>;
  /** Index of the largest logit (first on ties). */
  argmax(logits: Float32Array): number;
  /**
   * Memory read bandwidth in bytes/s: every thread streams its share of `buffers` (store
   * allocations, e.g. the model's largest weights), repeated until `minBytes` were read.
   */
  readBandwidth(buffers: Uint8Array[], minBytes: number): number;
  /** Number of WebAssembly memories holding tensors. */
  readonly memoryCount: number;
  /** How the experts take a single token's activations (see BackendOptions.expertActivations). */
  readonly expertActivations: ExpertActivations;
  /** Calls per op that ran the reference code instead of a kernel since the backend was created (a copy). */
  readonly fallbacks: FallbackCounts;
}

/** The ops that can fall back to the reference code. */
export type FallbackOp = 'linear' | 'attention' | 'experts';
export type FallbackCounts = Record<FallbackOp, number>;

/** Total of a backend's fallback counts (0 for backends that never fall back, such as the reference). */
export function fallbackTotal(backend: object): number {
  const f = (backend as { fallbacks?: FallbackCounts }).fallbacks;
  return f === undefined ? 0 : Object.values(f).reduce((s, n) => s + n, 0);
}

const compiled = new Map<boolean, WebAssembly.Module>();

/**
 * Whether this runtime runs relaxed SIMD (the byte dot products of the 'q8' experts). Node 20
 * has it behind a V8 flag, which takes effect for modules compiled after it is set; newer Nodes
 * have it on. GPTOSS_RELAXED_SIMD=0 turns it off.
 */
export function relaxedSimdAvailable(): boolean {
  if (process.env.GPTOSS_RELAXED_SIMD === '0') return false;
  if (relaxedRuntime === undefined) {
    const probe = readFileSync(new URL('./kernels-relaxed.wasm', import.meta.url));
    if (!WebAssembly.validate(probe)) {
      try {
        setFlagsFromString('--experimental-wasm-relaxed-simd');
      } catch { /* flag unknown to this V8 */ }
    }
    relaxedRuntime = WebAssembly.validate(probe);
  }
  return relaxedRuntime;
}
let relaxedRuntime: boolean | undefined;

function kernelModule(relaxed: boolean): WebAssembly.Module {
  let m = compiled.get(relaxed);
  if (m === undefined) {
    // Compile with the optimising tier up front: V8 otherwise starts with its baseline compiler
    // and a long-running call (a prefill's first matmul) stays in baseline code until it returns,
    // which made the first 512-token prefill 1.6x slower.
    try {
      setFlagsFromString('--no-liftoff');
    } catch { /* flag unknown to this V8 */ }
    const bytes = readFileSync(new URL(relaxed ? './kernels-relaxed.wasm' : './kernels.wasm', import.meta.url));
    compiled.set(relaxed, (m = new WebAssembly.Module(bytes)));
  }
  return m;
}

/** A bump allocator over one memory's scratch region, reset per op. */
class Scratch {
  private next: number;
  constructor(private readonly m: WasmMemory) {
    this.next = m.scratch;
  }
  take(bytes: number): number {
    const p = this.next;
    this.next += Math.ceil(bytes / 64) * 64;
    if (this.next > this.m.scratchEnd) throw new Error(`wasm scratch overflow (${this.next - this.m.scratch} bytes)`);
    return p;
  }
  get left(): number {
    return this.m.scratchEnd - this.next;
  }
  mark(): number {
    return this.next;
  }
  reset(mark: number): void {
    this.next = mark;
  }
}

export interface WasmBackendOptions extends BackendOptions {
  /** Bytes one WebAssembly memory may hold (default: the 4 GiB maximum); tests lower it. */
  memoryBytes?: number;
  /** Use the relaxed-SIMD build when the runtime has it (default true). */
  relaxedSimd?: boolean;
  /** With offload: the smallest op handed off whole (default OFFLOAD_WORK, 2^28; 0: every op). */
  offloadWork?: number;
}

export async function createWasmBackend(options: WasmBackendOptions = {}): Promise<WasmBackend> {
  const threads = Math.max(1, Math.floor(options.threads ?? availableParallelism()));
  const relaxed = options.relaxedSimd !== false && relaxedSimdAvailable();
  const module = kernelModule(relaxed);
  const envMode = process.env.GPTOSS_EXPERT_ACTIVATIONS as ExpertActivations | undefined;
  const mode = options.expertActivations ?? (envMode !== undefined && EXPERT_ACTIVATIONS.includes(envMode) ? envMode : 'q8');
  if (mode === 'f16') throw new UserError('usage', "expert activations 'f16' are the webgpu backend's: the wasm backend takes q8, split or f32");
  const quant = { f32: EXPERT_ACTIVATIONS_F32, split: EXPERT_ACTIVATIONS_SPLIT, q8: EXPERT_ACTIVATIONS_Q8 }[mode];
  const store = new WasmStore(options.memoryBytes === undefined ? undefined : Math.floor(options.memoryBytes / 65536));
  const instances: Exports[] = [];
  const instantiate = (m: WasmMemory): void => {
    instances.push(new WebAssembly.Instance(module, { env: { memory: m.memory } }).exports as Exports);
  };
  instantiate(store.memories[0]!);
  const pool = new ThreadPool(module, store.memories.map((m) => m.memory), threads, instances, options.offload === true, options.offloadWork);
  store.onNewMemory = (i) => {
    instantiate(store.memories[i]!);
    pool.addMemory(store.memories[i]!.memory);
  };
  await pool.ready;
  const reference = createReferenceBackend(store);
  const fallbacks: FallbackCounts = { linear: 0, attention: 0, experts: 0 };
  /** Pointer to `src` inside memory `mem`: in place when it already lives there, else a scratch copy. */
  const place = (mem: number, s: Scratch, src: Float32Array | Int32Array, count = src.length): number => {
    const loc = store.locate(src);
    if (loc !== null && loc.memory === mem) return loc.ptr;
    const p = s.take(count * 4);
    const m = store.memories[mem]!;
    if (src instanceof Float32Array) m.f32().set(src.subarray(0, count), p >>> 2);
    else new Int32Array(m.buffer, p, count).set(src.subarray(0, count));
    return p;
  };
  /** Pointer to the first `bytes` of a typed array inside memory `mem`: in place when it lives there, else a scratch copy. */
  const placeBytes = (mem: number, s: Scratch, src: KvArray, bytes: number): number => {
    const loc = store.locate(src);
    if (loc !== null && loc.memory === mem) return loc.ptr;
    const p = s.take(bytes);
    new Uint8Array(store.memories[mem]!.buffer, p, bytes).set(new Uint8Array(src.buffer, src.byteOffset, bytes));
    return p;
  };

  /** Pointer for an op's output: in place when `dst` lives in `mem`, else scratch (copied back by the caller). */
  const outPtr = (mem: number, s: Scratch, dst: Float32Array, count: number): { ptr: number; copy: boolean } => {
    const loc = store.locate(dst);
    if (loc !== null && loc.memory === mem) return { ptr: loc.ptr, copy: false };
    return { ptr: s.take(count * 4), copy: true };
  };

  const copyOut = (mem: number, ptr: number, dst: Float32Array, offset: number, count: number): void => {
    dst.set(store.memories[mem]!.f32().subarray(ptr >>> 2, (ptr >>> 2) + count), offset);
  };

  function rmsnorm(x: Float32Array, tokens: number, scale: Float32Array, eps: number, out: Float32Array): void {
    const n = scale.length;
    const mem = store.locate(x)?.memory ?? 0;
    const s = new Scratch(store.memories[mem]!);
    const sp = place(mem, s, scale);
    const per = Math.max(1, Math.floor((s.left - 256) / (8 * n)));
    const mark = s.mark();
    for (let t0 = 0; t0 < tokens; t0 += per) {
      const tc = Math.min(per, tokens - t0);
      s.reset(mark);
      const xp = place(mem, s, x.subarray(t0 * n, (t0 + tc) * n));
      const o = outPtr(mem, s, out.subarray(t0 * n), tc * n);
      instances[mem]!.f32_rmsnorm!(xp, tc, n, sp, eps, o.ptr);
      if (o.copy) copyOut(mem, o.ptr, out, t0 * n, tc * n);
    }
  }

  async function linear(x: Float32Array, tokens: number, w: LinearWeight, bias: Float32Array | null, out: Float32Array): Promise<void> {
    if (isInt8Matrix(w)) return linearInt8(x, tokens, w, bias, out);
    const wl = store.locate(w.data);
    // A weight the store did not allocate (a caller's own array) has no pointer the kernel can read.
    if (wl === null) {
      fallbacks.linear++;
      return void reference.linear(x, tokens, w, bias, out);
    }
    const mem = wl.memory;
    const m = store.memories[mem]!;
    const s = new Scratch(m);
    const bp = bias === null ? 0 : place(mem, s, bias);
    // Each thread widens a block of weights to f32 in its own part of wbuf.
    const wbuf = s.take(pool.parts * instances[mem]!.f32_bf16w_matmul_buffer_bytes!());
    const per = Math.max(1, Math.floor((s.left - 256) / ((2 * w.cols + w.rows) * 4)));
    const mark = s.mark();
    for (let t0 = 0; t0 < tokens; t0 += per) {
      const tc = Math.min(per, tokens - t0);
      s.reset(mark);
      const xs = place(mem, s, x.subarray(t0 * w.cols, (t0 + tc) * w.cols));
      const xp = s.take(tc * w.cols * 4);
      instances[mem]!.f32_pair_permute!(xs, xp, tc, w.cols);
      const o = outPtr(mem, s, out.subarray(t0 * w.rows), tc * w.rows);
      await pool.run('f32_bf16w_matmul', mem, [xp, tc, w.cols, wl.ptr, w.rows, bp, o.ptr, wbuf], tc * w.rows * w.cols);
      if (o.copy) copyOut(mem, o.ptr, out, t0 * w.rows, tc * w.rows);
    }
  }

  /** `linear` on an int8 copy: x quantised to i16 per row, then integer dots (kernels/wasm/assembly/linear-i8.ts). */
  async function linearInt8(x: Float32Array, tokens: number, w: Int8Matrix, bias: Float32Array | null, out: Float32Array): Promise<void> {
    const cl = store.locate(w.codes);
    // Codes from the store (the kernel needs a pointer), in whole groups; no bias (the unembedding has none).
    if (cl === null || w.cols % INT8_GROUP !== 0 || bias !== null) {
      fallbacks.linear++;
      return void reference.linear(x, tokens, w, bias, out);
    }
    const mem = cl.memory;
    const sp = scalesIn(w.scales, mem);
    const s = new Scratch(store.memories[mem]!);
    const qRow = instances[mem]!.f32_quantize_i16_row_bytes!(w.cols);
    const per = Math.max(1, Math.floor((s.left - 256) / ((w.cols + w.rows + 1) * 4 + qRow)));
    const mark = s.mark();
    for (let t0 = 0; t0 < tokens; t0 += per) {
      const tc = Math.min(per, tokens - t0);
      s.reset(mark);
      const xp = place(mem, s, x.subarray(t0 * w.cols, (t0 + tc) * w.cols));
      const xq = s.take(tc * qRow), xs = s.take(tc * 4);
      instances[mem]!.f32_quantize_i16!(xp, xq, xs, tc, w.cols);
      const o = outPtr(mem, s, out.subarray(t0 * w.rows), tc * w.rows);
      await pool.run('f32_i8w_matmul', mem, [xq, xs, tc, w.cols, cl.ptr, sp, w.rows, o.ptr], tc * w.rows * w.cols);
      if (o.copy) copyOut(mem, o.ptr, out, t0 * w.rows, tc * w.rows);
    }
  }

  /** The int8 copy of a bf16 matrix (Backend.int8Copy), made by the pool; the reference code takes what the kernel cannot. */
  async function int8Copy(w: Bf16Matrix, label: string): Promise<Int8Matrix> {
    const wl = store.locate(w.data);
    const bytes = int8Bytes(w);
    const codes = wl === null ? null : store.allocateIn(wl.memory, Math.ceil(bytes.codes / 64) * 64, bytes.codes);
    const scales = wl === null ? null : store.allocateIn(wl.memory, Math.ceil(bytes.scales / 64) * 64, bytes.scales);
    if (wl === null || codes === null || scales === null || w.cols % INT8_GROUP !== 0) {
      if (codes !== null) store.free(codes);
      if (scales !== null) store.free(scales);
      fallbacks.linear++; // (the copy is the linear op's weight)
      return reference.int8Copy!(w, label);
    }
    await pool.run('bf16_quantize_i8w', wl.memory, [wl.ptr, codes.byteOffset, scales.byteOffset, w.rows, w.cols]);
    return {
      rows: w.rows, cols: w.cols,
      codes: new Int8Array(codes.buffer, codes.byteOffset, bytes.codes),
      scales: new Float32Array(scales.buffer, scales.byteOffset, bytes.scales / 4),
    };
  }

  function rope(x: Float32Array, tokens: number, heads: number, headDim: number, positions: Int32Array, table: RopeTable): void {
    const half = headDim / 2;
    const loc = store.locate(x);
    const mem = loc?.memory ?? 0;
    const m = store.memories[mem]!;
    const s = new Scratch(m);
    const width = heads * headDim;
    // Tokens per pass so one pass's cos/sin rows (and x, when copied in) fit the scratch.
    const per = Math.max(1, Math.floor((s.left - 256) / ((width + 2 * half) * 4)));
    const mark = s.mark();
    for (let t0 = 0; t0 < tokens; t0 += per) {
      const tc = Math.min(per, tokens - t0);
      s.reset(mark);
      const cp = s.take(tc * half * 4), sp = s.take(tc * half * 4);
      const f = m.f32();
      for (let t = 0; t < tc; t++) {
        const row = positions[t0 + t]! * table.halfDim;
        f.set(table.cos.subarray(row, row + half), (cp >>> 2) + t * half);
        f.set(table.sin.subarray(row, row + half), (sp >>> 2) + t * half);
      }
      const xp = place(mem, s, x.subarray(t0 * width, (t0 + tc) * width));
      instances[mem]!.f32_rope!(xp, tc, heads, half, cp, sp);
      if (loc === null) copyOut(mem, xp, x, t0 * width, tc * width);
    }
  }

  async function attention(
    q: Float32Array, tokens: number, positions: Int32Array,
    keys: KvArray, values: KvArray, keyCount: number, keyPositions: Int32Array,
    sinks: Float32Array, shape: AttentionShape, out: Float32Array,
  ): Promise<void> {
    const { heads, kvHeads, headDim, window } = shape;
    const kl = store.locate(keys), vl = store.locate(values);
    const mem = kl !== null && vl !== null && kl.memory === vl.memory ? kl.memory : (kl?.memory ?? 0);
    const m = store.memories[mem]!;
    const s = new Scratch(m);
    const bf16 = keys instanceof Uint16Array;
    const kvBytes = keyCount * kvHeads * headDim * (bf16 ? 2 : 4);
    const copies = (kl?.memory === mem ? 0 : kvBytes) + (vl?.memory === mem ? 0 : kvBytes);
    const perThread = instances[mem]!.f32_attention_sinks_scratch_bytes!(heads, kvHeads, headDim);
    const fixed = copies + (keyCount + heads) * 4 + perThread * pool.parts + 1024;
    const perToken = (2 * heads * headDim + 1) * 4 + 256;
    if (fixed + perToken > s.left || (values instanceof Uint16Array) !== bf16) {
      // The key positions and each thread's tile buffers (plus the whole cache, copied in when
      // keys or values sit in another memory) must fit one memory's 64 MiB scratch; a cache too
      // long for that (about 16k keys of gpt-oss's 8 x 64 f32 when copied) runs the reference
      // code, as do keys and values of different element types.
      fallbacks.attention++;
      return void reference.attention(q, tokens, positions, keys, values, keyCount, keyPositions, sinks, shape, out);
    }
    const kp = placeBytes(mem, s, keys, kvBytes);
    const vp = placeBytes(mem, s, values, kvBytes);
    const kposp = place(mem, s, keyPositions, keyCount);
    const sinkp = place(mem, s, sinks, heads);
    const tiles = s.take(perThread * pool.parts);
    const per = Math.max(1, Math.floor((s.left - 1024) / perToken));
    const width = heads * headDim;
    const mark = s.mark();
    for (let t0 = 0; t0 < tokens; t0 += per) {
      const tc = Math.min(per, tokens - t0);
      s.reset(mark);
      const qp = place(mem, s, q.subarray(t0 * width, (t0 + tc) * width));
      const pp = place(mem, s, positions.subarray(t0, t0 + tc));
      const o = outPtr(mem, s, out.subarray(t0 * width), tc * width);
      await pool.run('f32_attention_sinks', mem, [qp, tc, pp, kp, vp, keyCount, kposp, sinkp, heads, kvHeads, headDim, window, o.ptr, tiles, bf16 ? KV_CACHE_BF16 : KV_CACHE_F32], tc * keyCount * width);
      if (o.copy) copyOut(mem, o.ptr, out, t0 * width, tc * width);
    }
  }

  // Scales (of MXFP4 experts, of an int8 copy) that the store placed in another memory than their
  // weights get a copy beside them.
  const colocated = new WeakMap<Uint8Array | Float32Array, Map<number, number>>();
  const scalesIn = (scales: Uint8Array | Float32Array, mem: number): number => {
    const loc = store.locate(scales);
    if (loc !== null && loc.memory === mem) return loc.ptr;
    let byMem = colocated.get(scales);
    if (byMem === undefined) colocated.set(scales, (byMem = new Map()));
    const have = byMem.get(mem);
    if (have !== undefined) return have;
    const size = Math.ceil(scales.byteLength / 64) * 64;
    const copy = store.allocateIn(mem, size, scales.byteLength, true);
    if (copy === null) throw new Error('no room to co-locate weight scales with their weights');
    copy.set(new Uint8Array(scales.buffer, scales.byteOffset, scales.byteLength));
    byMem.set(mem, copy.byteOffset);
    return copy.byteOffset;
  };

  async function experts(
    x: Float32Array, tokens: number, indices: Int32Array, weights: Float32Array, k: number,
    moe: ExpertWeights, swigluLimit: number, out: Float32Array,
  ): Promise<void> {
    const w1 = moe.mlp1Weight, w2 = moe.mlp2Weight;
    const l1 = store.locate(w1.blocks), l2 = store.locate(w2.blocks);
    // Weights outside the store have no pointer; rows not made of whole 32-value MXFP4 groups are
    // a shape the kernels do not handle.
    if (l1 === null || l2 === null || w1.cols % 32 !== 0 || w2.cols % 32 !== 0) {
      fallbacks.experts++;
      return void reference.experts(x, tokens, indices, weights, k, moe, swigluLimit, out);
    }
    const hidden = w1.cols, width1 = w1.rows, inter = w2.cols;
    const memA = l1.memory, memB = l2.memory;
    const sclA = scalesIn(w1.scales, memA), sclB = scalesIn(w2.scales, memB);
    const mA = store.memories[memA]!, mB = store.memories[memB]!;
    // Tokens per chunk so one chunk's activations fit the scratch of both memories.
    const E = w1.count;
    // Bytes of one quantised row of the experts' input and of their activations, as the mode's quantiser writes it.
    const k0 = instances[0]!;
    const rowBytes = quant === EXPERT_ACTIVATIONS_Q8 ? k0.f32_quantize_i8_row_bytes! : k0.f32_quantize_i16x2_row_bytes!;
    const qHidden = rowBytes(hidden), qInter = rowBytes(inter);
    // Each thread's buffer for the rows a multi-token expert expands.
    const rowBufA = pool.parts * k0.f32_mf4w_moe_row_buffer_bytes!(hidden), rowBufB = pool.parts * k0.f32_mf4w_moe_row_buffer_bytes!(inter);
    // 'q8' quantises every row, 'split' only the rows of single-token experts.
    const everyRow = quant === EXPERT_ACTIVATIONS_Q8;
    const perTokenA = k * (2 * hidden + inter) * 4 + (everyRow ? k * qHidden : 0) + 256;
    const perTokenB = (k * (inter + 2) + hidden) * 4 + (everyRow ? k * qInter : 0) + 256;
    const fixedA = rowBufA + E * width1 * 4 + E * EXPERT_RECORD_BYTES + (quant === EXPERT_ACTIVATIONS_SPLIT ? E * qHidden : 0) + 4096;
    const fixedB = rowBufB + E * hidden * 4 + E * EXPERT_RECORD_BYTES + (quant === EXPERT_ACTIVATIONS_SPLIT ? E * qInter : 0) + 4096;
    const per = memA === memB
      ? Math.floor((new Scratch(mA).left - fixedA - fixedB) / (perTokenA + perTokenB))
      : Math.min(Math.floor((new Scratch(mA).left - fixedA) / perTokenA), Math.floor((new Scratch(mB).left - fixedB) / perTokenB));
    if (per < 1) {
      // Even one token's activations for every chosen expert do not fit the scratch (a width far
      // beyond gpt-oss's): the reference code takes it.
      fallbacks.experts++;
      return void reference.experts(x, tokens, indices, weights, k, moe, swigluLimit, out);
    }
    const block1 = (w1.rows * w1.cols) / 2, block2 = (w2.rows * w2.cols) / 2;
    const scale1 = (w1.rows * w1.cols) / 32, scale2 = (w2.rows * w2.cols) / 32;

    for (let t0 = 0; t0 < tokens; t0 += per) {
      const tc = Math.min(per, tokens - t0);
      // Group the chunk's (token, slot) pairs by expert.
      const groups = new Map<number, number[]>();
      for (let i = t0 * k; i < (t0 + tc) * k; i++) {
        const e = indices[i]!;
        let g = groups.get(e);
        if (g === undefined) groups.set(e, (g = []));
        g.push(i);
      }
      const order = [...groups.keys()].sort((a, b) => a - b);
      const rows = tc * k;

      const sA = new Scratch(mA);
      const sB = memA === memB ? sA : new Scratch(mB);
      const fA = mA.f32();
      // Gather each expert's tokens contiguously, then permute the 32-groups for the MXFP4 kernels.
      const raw = sA.take(rows * hidden * 4), xp = sA.take(rows * hidden * 4);
      const listA = sA.take(order.length * EXPERT_RECORD_BYTES), actA = sA.take(rows * inter * 4);
      const biasA = sA.take(order.length * width1 * 4);
      const rowbufA = sA.take(rowBufA);
      const listB = sB.take(order.length * EXPERT_RECORD_BYTES), biasB = sB.take(order.length * hidden * 4);
      const actB = memA === memB ? actA : sB.take(rows * inter * 4);
      const tokB = sB.take(rows * 4), wgtB = sB.take(rows * 4);
      const outB = sB.take(tc * hidden * 4), rowbufB = sB.take(rowBufB);
      const fB = mB.f32();
      const uA = new Uint32Array(mA.buffer), uB = new Uint32Array(mB.buffer), iB = new Int32Array(mB.buffer);
      const splitRows: number[] = [];
      const singles = quant === EXPERT_ACTIVATIONS_SPLIT ? order.filter((e) => groups.get(e)!.length === 1).length : rows;
      const qx = quant === EXPERT_ACTIVATIONS_F32 ? 0 : sA.take(singles * qHidden);
      const qa = quant === EXPERT_ACTIVATIONS_F32 ? 0 : sB.take(singles * qInter);
      let single = 0;
      let row = 0;
      order.forEach((e, j) => {
        const pairs = groups.get(e)!;
        for (let r = 0; r < pairs.length; r++) {
          const t = Math.floor(pairs[r]! / k);
          fA.set(x.subarray(t * hidden, (t + 1) * hidden), (raw >>> 2) + (row + r) * hidden);
          iB[(tokB >>> 2) + row + r] = t - t0;
          fB[(wgtB >>> 2) + row + r] = weights[pairs[r]!]!;
        }
        fA.set(moe.mlp1Bias.subarray(e * width1, (e + 1) * width1), (biasA >>> 2) + j * width1);
        fB.set(moe.mlp2Bias.subarray(e * hidden, (e + 1) * hidden), (biasB >>> 2) + j * hidden);
        const a = (listA >>> 2) + j * EXPERT_RECORD_WORDS;
        uA[a + EXPERT_BLOCKS] = l1.ptr + e * block1; uA[a + EXPERT_SCALES] = sclA + e * scale1;
        uA[a + EXPERT_BIAS] = biasA + j * width1 * 4; uA[a + EXPERT_INPUT] = xp + row * hidden * 4;
        uA[a + EXPERT_ROWS] = pairs.length; uA[a + EXPERT_QUANT_INPUT] = 0; uA[a + EXPERT_UP_OUTPUT] = actA + row * inter * 4;
        const b = (listB >>> 2) + j * EXPERT_RECORD_WORDS;
        uB[b + EXPERT_BLOCKS] = l2.ptr + e * block2; uB[b + EXPERT_SCALES] = sclB + e * scale2;
        uB[b + EXPERT_BIAS] = biasB + j * hidden * 4; uB[b + EXPERT_INPUT] = actB + row * inter * 4;
        uB[b + EXPERT_ROWS] = pairs.length; uB[b + EXPERT_QUANT_INPUT] = 0;
        uB[b + EXPERT_DOWN_TOKENS] = tokB + row * 4; uB[b + EXPERT_DOWN_WEIGHTS] = wgtB + row * 4;
        if (everyRow) {
          uA[a + EXPERT_QUANT_INPUT] = qx + row * qHidden;
          uB[b + EXPERT_QUANT_INPUT] = qa + row * qInter;
        } else if (quant === EXPERT_ACTIVATIONS_SPLIT && pairs.length === 1) {
          uA[a + EXPERT_QUANT_INPUT] = qx + single * qHidden;
          uB[b + EXPERT_QUANT_INPUT] = qa + single * qInter;
          splitRows.push(row, single++);
        }
        row += pairs.length;
      });
      instances[memA]!.f32_block_permute!(raw, xp, rows, hidden);
      if (everyRow) instances[memA]!.f32_quantize_i8!(xp, qx, rows, hidden);
      for (let i = 0; i < splitRows.length; i += 2) {
        instances[memA]!.f32_quantize_i16x2!(xp + splitRows[i]! * hidden * 4, qx + splitRows[i + 1]! * qHidden, 1, hidden);
      }
      await pool.run('f32_mf4w_moe_matmul_swiglu', memA, [listA, order.length, hidden, inter, rowbufA, swigluLimit, quant], rows * width1 * hidden);
      if (memA !== memB) fB.set(mA.f32().subarray(actA >>> 2, (actA >>> 2) + rows * inter), actB >>> 2);
      if (everyRow) instances[memB]!.f32_quantize_i8!(actB, qa, rows, inter);
      for (let i = 0; i < splitRows.length; i += 2) {
        instances[memB]!.f32_quantize_i16x2!(actB + splitRows[i]! * inter * 4, qa + splitRows[i + 1]! * qInter, 1, inter);
      }
      fB.fill(0, outB >>> 2, (outB >>> 2) + tc * hidden);
      await pool.run('f32_mf4w_moe_matmul_scatter', memB, [listB, order.length, hidden, inter, outB, rowbufB, quant], rows * hidden * inter);
      copyOut(memB, outB, out, t0 * hidden, tc * hidden);
    }
  }

  function argmax(logits: Float32Array): number {
    const loc = store.locate(logits);
    const mem = loc?.memory ?? 0;
    const s = new Scratch(store.memories[mem]!);
    if (loc !== null) return instances[mem]!.f32_argmax!(loc.ptr, logits.length);
    // Copied in by pieces that fit the scratch; a later piece wins only with a strictly larger
    // value, so the first maximum is kept.
    const per = Math.floor(s.left / 4);
    const mark = s.mark();
    let best = 0;
    for (let i0 = 0; i0 < logits.length; i0 += per) {
      s.reset(mark);
      const piece = logits.subarray(i0, Math.min(logits.length, i0 + per));
      const i = i0 + instances[mem]!.f32_argmax!(place(mem, s, piece), piece.length);
      if (i0 === 0 || logits[i]! > logits[best]!) best = i;
    }
    return best;
  }

  function readBandwidth(buffers: Uint8Array[], minBytes: number): number {
    const located = buffers.map((b) => ({ b, loc: store.locate(b) })).filter((x) => x.loc !== null && x.b.byteLength >= 64);
    if (located.length === 0) throw new Error('readBandwidth: no store buffers given');
    const outs = located.map(({ loc }) => new Scratch(store.memories[loc!.memory]!).take(16 * pool.parts));
    let bytes = 0;
    const t0 = performance.now();
    while (bytes < minBytes) {
      located.forEach(({ b, loc }, i) => {
        // Kernels take an i32 length: stream large tensors in 1 GiB pieces.
        for (let off = 0; off < b.byteLength; off += 2 ** 30) {
          const len = Math.min(2 ** 30, b.byteLength - off) & ~63;
          pool.runBlocking('mem_stream_read', loc!.memory, [loc!.ptr + off, len, outs[i]!]);
          bytes += len;
        }
      });
    }
    return bytes / ((performance.now() - t0) / 1000);
  }

  return {
    name: 'wasm',
    expertActivations: mode,
    get fallbacks() {
      return { ...fallbacks };
    },
    readBandwidth,
    store,
    threads,
    offload: pool.offload,
    get memoryCount() {
      return store.memories.length;
    },
    rmsnorm,
    linear,
    rope,
    attention,
    experts,
    int8Copy,
    argmax,
    close: () => pool.close(),
  };
}
