// The WebGPU backend: every Backend op as a WGSL compute shader (shaders.ts) on a Dawn device,
// in f32 arithmetic (the exact mode). Weights are uploaded on first use and kept on the GPU, split
// into buffers of at most one storage binding each (128 MiB on portable adapters): BF16 matrices by
// whole rows, MXFP4 experts by whole experts. Activations, the KV cache (cut likewise by whole
// positions) and the routing go up per op and the op's result comes back, so a step moves
// activations both ways; keeping them (and the cache) on the GPU is the next step. Ops a shape
// makes impossible (one row or one expert larger than a binding, a head wider than 256, MXFP4 rows
// not made of whole 32-value groups) run the reference code and are counted in `fallbacks`, as on
// the wasm backend.
/// <reference types="@webgpu/types" />
import { HeapStore, type Bf16Matrix, type Mxfp4Matrices } from '../../tensor/index.ts';
import type { AttentionShape, Backend, BackendOptions, ExpertWeights, RopeTable } from '../backend.ts';
import { createReferenceBackend } from '../reference.ts';
import type { FallbackCounts } from '../wasm/index.ts';
import { BufferPool, f32, grid, openDevice, upload, type GpuHandle } from './device.ts';
import { ATTENTION_COMBINE, ATTENTION_PARTIAL, EXPERTS_COMBINE, EXPERTS_DOWN, EXPERTS_UP, LINEAR_LANES, MAX_HEAD_DIM, RMSNORM, ROPE, WORKGROUP, linearBf16, linearLanes, type LinearLanes } from './shaders.ts';

export interface WebGpuBackend extends Backend {
  /** One line naming the adapter the backend runs on. */
  readonly adapter: string;
  /** Calls per op that ran the reference code instead of a kernel (a copy). */
  readonly fallbacks: FallbackCounts;
  /** Bytes of weights uploaded to the GPU so far. */
  readonly weightBytes: number;
  /** Expert activations are f32 (the exact mode; the faster modes are not written yet). */
  readonly expertActivations: 'f32';
}

export interface WebGpuBackendOptions extends BackendOptions {
  /**
   * Largest weight or KV-cache buffer in bytes (default: the device's storage binding limit);
   * tests lower it to exercise the split.
   */
  maxBindingBytes?: number;
}

/** A weight split into GPU buffers: chunk i holds rows (or experts) [starts[i], starts[i + 1]). */
interface Chunked {
  starts: number[];
  buffers: GPUBuffer[];
}

interface ExpertChunks {
  starts: number[];
  blocks: GPUBuffer[];
  scales: GPUBuffer[];
}

/** Workgroups an attention call aims for (queries x key splits) so that a decode step fills a GPU. */
const ATTENTION_WORKGROUPS = 4096;

type Kernel = 'rmsnorm' | `linear${LinearLanes}` | 'rope' | 'attentionPartial' | 'attentionCombine' | 'expertsUp' | 'expertsDown' | 'expertsCombine';

export async function createWebGpuBackend(options: WebGpuBackendOptions = {}): Promise<WebGpuBackend> {
  const gpu: GpuHandle = await openDevice();
  const { device } = gpu;
  // Weights and the KV cache are cut to `maxBinding`; activations only need to fit the device's own limit.
  const maxBinding = Math.min(gpu.maxBinding, options.maxBindingBytes ?? Infinity);
  const activationLimit = gpu.maxBinding;
  const store = new HeapStore();
  const reference = createReferenceBackend(store);
  const fallbacks: FallbackCounts = { linear: 0, attention: 0, experts: 0 };
  let weightBytes = 0;
  let lost = false;
  void device.lost.then(() => { lost = true; });

  const sources: Record<Kernel, string> = {
    rmsnorm: RMSNORM, rope: ROPE,
    ...Object.fromEntries(LINEAR_LANES.map((lanes) => [`linear${lanes}`, linearBf16(lanes)])) as Record<`linear${LinearLanes}`, string>,
    attentionPartial: ATTENTION_PARTIAL, attentionCombine: ATTENTION_COMBINE,
    expertsUp: EXPERTS_UP, expertsDown: EXPERTS_DOWN, expertsCombine: EXPERTS_COMBINE,
  };
  device.pushErrorScope('validation');
  const pipelines = {} as Record<Kernel, GPUComputePipeline>;
  for (const [name, code] of Object.entries(sources) as [Kernel, string][]) {
    const module = device.createShaderModule({ code, label: name });
    pipelines[name] = await device.createComputePipelineAsync({ layout: 'auto', compute: { module, entryPoint: 'main' }, label: name });
  }
  const compileError = await device.popErrorScope();
  if (compileError !== null) throw new Error(`webgpu: kernel compilation failed: ${compileError.message}`);

  /** Records one dispatch of `kernel` with bindings 0.. in order. */
  const dispatch = (encoder: GPUCommandEncoder, kernel: Kernel, buffers: GPUBuffer[], groups: [number, number]): void => {
    const pipeline = pipelines[kernel];
    const bindGroup = device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: buffers.map((buffer, binding) => ({ binding, resource: { buffer } })),
    });
    const pass = encoder.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(groups[0], groups[1]);
    pass.end();
  };

  /**
   * Runs `record` (which queues dispatches on buffers from `pool` and returns the buffer holding
   * the result) and copies the result into `out`; the op's buffers go back to the pool after.
   * GPU validation and out-of-memory errors become exceptions.
   */
  const pool = new BufferPool(device, gpu.maxBinding);
  const run = async (record: (encoder: GPUCommandEncoder) => GPUBuffer, out: Float32Array, floats: number): Promise<void> => {
    if (lost) throw new Error('webgpu: the device was lost');
    device.pushErrorScope('out-of-memory');
    device.pushErrorScope('validation');
    let failure: unknown = null;
    try {
      const encoder = device.createCommandEncoder();
      await pool.readBack(encoder, record(encoder), out, floats);
    } catch (e) {
      failure = e;
    }
    const validation = await device.popErrorScope();
    const memory = await device.popErrorScope();
    pool.release();
    const error = validation ?? memory;
    if (error !== null) throw new Error(`webgpu: ${error.message}`);
    if (failure !== null) throw failure;
  };

  // Constant tensors (weights, biases, norm scales, sinks) stay on the GPU, keyed by their array.
  const constants = new WeakMap<object, GPUBuffer>();
  const constant = (a: Float32Array): GPUBuffer => {
    let b = constants.get(a);
    if (b === undefined) {
      constants.set(a, (b = upload(device, a)));
      weightBytes += a.byteLength;
    }
    return b;
  };
  const zero = upload(device, new Float32Array(1));

  const bf16Chunks = new WeakMap<Uint16Array, Chunked>();
  /** The GPU chunks of `w` (uploaded on first use), or null when one row exceeds a binding. */
  const bf16Weight = (w: Bf16Matrix): Chunked | null => {
    const have = bf16Chunks.get(w.data);
    if (have !== undefined) return have;
    const rowBytes = w.cols * 2;
    if (rowBytes + 4 > maxBinding) return null;
    const perChunk = Math.max(1, Math.floor((maxBinding - 4) / rowBytes));
    const chunked: Chunked = { starts: [], buffers: [] };
    for (let r0 = 0; r0 < w.rows; r0 += perChunk) {
      const r1 = Math.min(w.rows, r0 + perChunk);
      // A chunk starting at an odd element gets its own copy so its first element is word-aligned.
      chunked.starts.push(r0);
      chunked.buffers.push(upload(device, w.data.subarray(r0 * w.cols, r1 * w.cols).slice()));
      weightBytes += (r1 - r0) * rowBytes;
    }
    chunked.starts.push(w.rows);
    bf16Chunks.set(w.data, chunked);
    return chunked;
  };

  const expertChunks = new WeakMap<Uint8Array, ExpertChunks>();
  const mxfp4Weight = (m: Mxfp4Matrices): ExpertChunks | null => {
    const have = expertChunks.get(m.blocks);
    if (have !== undefined) return have;
    const blockBytes = (m.rows * m.cols) / 2, scaleBytes = (m.rows * m.cols) / 32;
    if (blockBytes > maxBinding) return null;
    const perChunk = Math.max(1, Math.floor(maxBinding / blockBytes));
    const chunks: ExpertChunks = { starts: [], blocks: [], scales: [] };
    for (let e0 = 0; e0 < m.count; e0 += perChunk) {
      const e1 = Math.min(m.count, e0 + perChunk);
      chunks.starts.push(e0);
      chunks.blocks.push(upload(device, m.blocks.subarray(e0 * blockBytes, e1 * blockBytes)));
      chunks.scales.push(upload(device, m.scales.subarray(e0 * scaleBytes, e1 * scaleBytes)));
      weightBytes += (e1 - e0) * (blockBytes + scaleBytes);
    }
    chunks.starts.push(m.count);
    expertChunks.set(m.blocks, chunks);
    return chunks;
  };

  async function rmsnorm(x: Float32Array, tokens: number, scale: Float32Array, eps: number, out: Float32Array): Promise<void> {
    const n = scale.length;
    await run((encoder) => {
      const o = pool.output(tokens * n * 4);
      const u = pool.uniforms([tokens, n, f32(eps), 0]);
      dispatch(encoder, 'rmsnorm', [u, pool.input(x.subarray(0, tokens * n)), constant(scale), o], grid(tokens));
      return o;
    }, out, tokens * n);
  }

  async function linear(x: Float32Array, tokens: number, w: Bf16Matrix, bias: Float32Array | null, out: Float32Array): Promise<void> {
    const chunks = bf16Weight(w);
    if (chunks === null) {
      fallbacks.linear++;
      return void reference.linear(x, tokens, w, bias, out);
    }
    await run((encoder) => {
      const xb = pool.input(x.subarray(0, tokens * w.cols));
      const o = pool.output(tokens * w.rows * 4);
      const bb = bias === null ? zero : constant(bias);
      const lanes = linearLanes(w.cols);
      chunks.buffers.forEach((buffer, i) => {
        const r0 = chunks.starts[i]!, rows = chunks.starts[i + 1]! - r0;
        const u = pool.uniforms([tokens, rows, w.cols, bias === null ? 0 : 1, r0, w.rows, 0, 0]);
        dispatch(encoder, `linear${lanes}`, [u, xb, buffer, bb, o], grid(Math.ceil(rows / (WORKGROUP / lanes))));
      });
      return o;
    }, out, tokens * w.rows);
  }

  async function rope(x: Float32Array, tokens: number, heads: number, headDim: number, positions: Int32Array, table: RopeTable): Promise<void> {
    const half = headDim / 2;
    const cos = new Float32Array(tokens * half), sin = new Float32Array(tokens * half);
    for (let t = 0; t < tokens; t++) {
      const row = positions[t]! * table.halfDim;
      cos.set(table.cos.subarray(row, row + half), t * half);
      sin.set(table.sin.subarray(row, row + half), t * half);
    }
    const floats = tokens * heads * headDim;
    await run((encoder) => {
      const xb = pool.input(x.subarray(0, floats));
      const u = pool.uniforms([tokens, heads, half, 0]);
      dispatch(encoder, 'rope', [u, xb, pool.input(cos), pool.input(sin)], grid(Math.ceil((tokens * heads * half) / WORKGROUP)));
      return xb;
    }, x, floats);
  }

  async function attention(
    q: Float32Array, tokens: number, positions: Int32Array,
    keys: Float32Array, values: Float32Array, keyCount: number, keyPositions: Int32Array,
    sinks: Float32Array, shape: AttentionShape, out: Float32Array,
  ): Promise<void> {
    const { heads, kvHeads, headDim, window } = shape;
    const items = tokens * heads, width = heads * headDim;
    const keyFloats = kvHeads * headDim;
    // Keys per buffer (a cache longer than one binding is cut into chunks of whole positions), and
    // keys per workgroup: enough splits that a decode step (heads x 1 queries) fills the GPU.
    const chunkKeys = Math.floor(maxBinding / (keyFloats * 4));
    const splitsWanted = Math.max(1, Math.min(Math.ceil(keyCount / WORKGROUP), Math.ceil(ATTENTION_WORKGROUPS / items)));
    const span = Math.ceil(Math.ceil(keyCount / splitsWanted) / WORKGROUP) * WORKGROUP;
    const chunks: { k0: number; k1: number; splits: number; splitBase: number }[] = [];
    let splitsTotal = 0;
    for (let k0 = 0; k0 < keyCount; k0 += chunkKeys) {
      const k1 = Math.min(keyCount, k0 + chunkKeys);
      const splits = Math.ceil((k1 - k0) / span);
      chunks.push({ k0, k1, splits, splitBase: splitsTotal });
      splitsTotal += splits;
    }
    if (keyCount === 0) return void out.fill(0, 0, tokens * width); // nothing visible: the sink takes all the mass
    if (headDim > MAX_HEAD_DIM || chunkKeys < 1 || tokens * width * 4 > activationLimit || items * splitsTotal * (headDim + 2) * 4 > activationLimit) {
      fallbacks.attention++;
      return void reference.attention(q, tokens, positions, keys, values, keyCount, keyPositions, sinks, shape, out);
    }
    await run((encoder) => {
      const qb = pool.input(q.subarray(0, tokens * width));
      const pb = pool.input(positions.subarray(0, tokens));
      const partial = pool.output(items * splitsTotal * (headDim + 2) * 4);
      for (const c of chunks) {
        const u = pool.uniforms([
          items, heads, kvHeads, headDim, c.k1 - c.k0, window, heads / kvHeads, f32(1 / Math.sqrt(headDim)),
          span, c.splits, c.splitBase, splitsTotal,
        ]);
        dispatch(encoder, 'attentionPartial', [
          u, qb,
          pool.input(keys.subarray(c.k0 * keyFloats, c.k1 * keyFloats)), pool.input(values.subarray(c.k0 * keyFloats, c.k1 * keyFloats)),
          pool.input(keyPositions.subarray(c.k0, c.k1)), pb, partial,
        ], grid(items * c.splits));
      }
      const o = pool.output(tokens * width * 4);
      const u = pool.uniforms([items, heads, headDim, splitsTotal]);
      dispatch(encoder, 'attentionCombine', [u, partial, constant(sinks), o], grid(items));
      return o;
    }, out, tokens * width);
  }

  async function experts(
    x: Float32Array, tokens: number, indices: Int32Array, weights: Float32Array, k: number,
    moe: ExpertWeights, swigluLimit: number, out: Float32Array,
  ): Promise<void> {
    const w1 = moe.mlp1Weight, w2 = moe.mlp2Weight;
    const hidden = w1.cols, inter = w2.cols;
    const c1 = w1.cols % 32 === 0 && w2.cols % 32 === 0 ? mxfp4Weight(w1) : null;
    const c2 = c1 === null ? null : mxfp4Weight(w2);
    const pairs = tokens * k;
    if (c1 === null || c2 === null || inter > 65535 || hidden > 65535 || pairs * Math.max(hidden, inter) * 4 > activationLimit) {
      fallbacks.experts++;
      return void reference.experts(x, tokens, indices, weights, k, moe, swigluLimit, out);
    }
    // The (token, slot) pairs gathered by expert: rows of one expert are contiguous.
    const byExpert = new Map<number, number[]>();
    for (let i = 0; i < pairs; i++) {
      const e = indices[i]!;
      let list = byExpert.get(e);
      if (list === undefined) byExpert.set(e, (list = []));
      list.push(i);
    }
    const order = [...byExpert.keys()].sort((a, b) => a - b);
    const rowToken = new Uint32Array(pairs), slotRow = new Uint32Array(pairs);
    const groups: { expert: number; start: number; count: number }[] = [];
    let row = 0;
    for (const e of order) {
      const list = byExpert.get(e)!;
      groups.push({ expert: e, start: row, count: list.length });
      for (const pair of list) {
        rowToken[row] = Math.floor(pair / k);
        slotRow[pair] = row++;
      }
    }
    /** Group table per weight chunk: (expert within the chunk, first row, rows, expert). */
    const tableFor = (starts: number[]): { table: Uint32Array; spans: { chunk: number; first: number; count: number }[] } => {
      const table = new Uint32Array(groups.length * 4);
      const spans: { chunk: number; first: number; count: number }[] = [];
      groups.forEach((g, i) => {
        let c = 0;
        while (starts[c + 1]! <= g.expert) c++;
        table.set([g.expert - starts[c]!, g.start, g.count, g.expert], i * 4);
        const last = spans[spans.length - 1];
        if (last !== undefined && last.chunk === c) last.count++;
        else spans.push({ chunk: c, first: i, count: 1 });
      });
      return { table, spans };
    };
    const up = tableFor(c1.starts), down = tableFor(c2.starts);
    await run((encoder) => {
      const xb = pool.input(x.subarray(0, tokens * hidden));
      const act = pool.output(pairs * inter * 4);
      const y = pool.output(pairs * hidden * 4);
      const o = pool.output(tokens * hidden * 4);
      const upTable = pool.input(up.table), downTable = pool.input(down.table);
      const rt = pool.input(rowToken);
      for (const s of up.spans) {
        const u = pool.uniforms([hidden, inter, s.first, 0, f32(swigluLimit), 0, 0, 0]);
        dispatch(encoder, 'expertsUp', [u, upTable, c1.blocks[s.chunk]!, c1.scales[s.chunk]!, constant(moe.mlp1Bias), xb, rt, act], [inter, s.count]);
      }
      for (const s of down.spans) {
        const u = pool.uniforms([hidden, inter, s.first, 0]);
        dispatch(encoder, 'expertsDown', [u, downTable, c2.blocks[s.chunk]!, c2.scales[s.chunk]!, constant(moe.mlp2Bias), act, y], [hidden, s.count]);
      }
      const u = pool.uniforms([tokens, hidden, k, 0]);
      dispatch(encoder, 'expertsCombine', [u, y, pool.input(slotRow), pool.input(weights.subarray(0, pairs)), o], grid(Math.ceil((tokens * hidden) / WORKGROUP)));
      return o;
    }, out, tokens * hidden);
  }

  return {
    name: 'webgpu',
    store,
    adapter: gpu.adapterName,
    expertActivations: 'f32',
    get fallbacks() {
      return { ...fallbacks };
    },
    get weightBytes() {
      return weightBytes;
    },
    rmsnorm,
    linear,
    rope,
    attention,
    experts,
    close: async () => {
      await device.queue.onSubmittedWorkDone();
      device.destroy();
      // Keeps the create() result reachable until the device is gone (see device.ts).
      void gpu.gpu;
    },
  };
}
