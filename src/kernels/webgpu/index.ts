// The WebGPU backend: every Backend op as a WGSL compute shader (shaders.ts) on a Dawn device,
// in f32 arithmetic (the exact mode, `--expert-activations split`), or with the experts' dot
// products in f16 (the default where the adapter has shader-f16). Weights are uploaded on first
// use and kept on the GPU, split into buffers of at most one storage binding each (128 MiB on
// portable adapters): BF16 matrices by whole rows, MXFP4 experts by whole experts.
// Arrays from the backend's own store (the forward pass's workspace, KV caches, logits) are mirrored
// by GPU buffers ("regions"), each side marked current or stale: an op reads a region in place and
// leaves its result there, and the glue of `resident` (adds, row copies, routing, argmax, top-k,
// a draw's slice sums) keeps a whole step on the GPU, in one compute pass, so a decode step
// uploads its embedding row and positions and reads back only what the host asks for. Any other array goes up per op and its result comes back at once.
// Ops only queue work; GPU errors surface at the next read-back as one line (out of memory names
// the fix). Ops a shape makes impossible (one row or one expert larger than a binding, a head wider
// than 256, MXFP4 rows not made of whole 32-value groups) run the reference code and are counted in
// `fallbacks`, as on the wasm backend.
/// <reference types="@webgpu/types" />
import { HeapStore, isInt8Matrix, type Bf16Matrix, type LinearWeight, type Mxfp4Matrices, type TensorStore } from '../../tensor/index.ts';
import { UserError } from '../../errors.ts';
import { EXPERT_ACTIVATIONS, type AttentionShape, type Backend, type BackendOptions, type DeviceResident, type ExpertActivations, type ExpertWeights, type RopeTable } from '../backend.ts';
import { createReferenceBackend } from '../reference.ts';
import type { FallbackCounts } from '../wasm/index.ts';
import { BufferPool, MAP_READ, Usage, deviceLost, f32, gpuFailure, grid, openDevice, upload, type GpuHandle } from './device.ts';
import {
  ADD, ARGMAX, ATTENTION_COMBINE, ATTENTION_PARTIAL, COPY_ROWS, EXPERT_GROUPS, EXPERT_PAIRS, MAX_GROUPED_EXPERTS, EXPERTS_COMBINE, LINEAR_LANES, MAX_HEAD_DIM,
  RMSNORM, ROPE, ROUTE, SLICE_WEIGHTS, TOP_K, TOP_K_SLICE, WORKGROUP, expertsDown, expertsUp, linearBf16, linearLanes, type LinearLanes,
} from './shaders.ts';

export interface WebGpuBackend extends Backend {
  /** One line naming the adapter the backend runs on. */
  readonly adapter: string;
  /** Calls per op that ran the reference code instead of a kernel (a copy). */
  readonly fallbacks: FallbackCounts;
  /** Bytes of weights (and other constant tables) uploaded to the GPU so far. */
  readonly weightBytes: number;
  /**
   * Bytes moved so far between host and GPU besides the weights (activations, KV entries, op
   * parameters), the queue submissions that carried the work, and its compute passes and dispatches.
   */
  readonly transfers: { up: number; down: number; submissions: number; passes: number; dispatches: number };
  /**
   * How the experts take their activations: 'f16' (the default where the adapter has shader-f16)
   * or f32 ('split' and 'f32' name the same exact kernels).
   */
  readonly expertActivations: WebGpuExpertActivations;
  readonly resident: DeviceResident;
}

export interface WebGpuBackendOptions extends BackendOptions {
  /**
   * Largest weight or KV-cache binding in bytes (default: the device's storage binding limit);
   * tests lower it to exercise the split.
   */
  maxBindingBytes?: number;
  /** Treat the adapter as lacking shader-f16 (tests of the exact default on such adapters). */
  withoutF16?: boolean;
}

export type WebGpuExpertActivations = 'f16' | 'split' | 'f32';

/**
 * The expert activations the webgpu backend runs with: the one asked for (the option, else
 * GPTOSS_EXPERT_ACTIVATIONS), else 'f16' where the adapter has shader-f16 and 'split' where it
 * has not. A mode it cannot run is a one-line UserError, never a silent substitute.
 */
export function webGpuExpertActivations(requested: ExpertActivations | undefined, hasF16: boolean, adapter: string): WebGpuExpertActivations {
  const env = process.env.GPTOSS_EXPERT_ACTIVATIONS as ExpertActivations | undefined;
  const mode = requested ?? (env !== undefined && EXPERT_ACTIVATIONS.includes(env) ? env : undefined);
  if (mode === 'q8') throw new UserError('usage', "the webgpu backend has no 'q8' expert activations: use f16 (its default where the adapter has shader-f16) or split (exact)");
  if (mode === 'f16' && !hasF16) throw new UserError('usage', `expert activations f16 need a WebGPU adapter with shader-f16, and ${adapter} has none: use --expert-activations split`);
  return mode ?? (hasF16 ? 'f16' : 'split');
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

/** The GPU mirror of one store allocation, and which side holds its current contents. */
interface Region {
  host: ArrayBuffer;
  buffer: GPUBuffer;
  hostCurrent: boolean;
  gpuCurrent: boolean;
}

/** What one op binds: a whole buffer or a range of one. */
type Binding = GPUBuffer | GPUBufferBinding;

/** Workgroups an attention call aims for (queries x key splits) so that a decode step fills a GPU. */
const ATTENTION_WORKGROUPS = 4096;

type Kernel =
  | 'rmsnorm' | `linear${LinearLanes}` | 'rope' | 'attentionPartial' | 'attentionCombine' | 'expertsUp' | 'expertsDown' | 'expertsCombine'
  | 'add' | 'copyRows' | 'route' | 'expertPairs' | 'expertGroups' | 'argmax' | 'topK' | 'sliceWeights';

const pad4 = (bytes: number): number => Math.ceil(bytes / 4) * 4;

export async function createWebGpuBackend(options: WebGpuBackendOptions = {}): Promise<WebGpuBackend> {
  const gpu: GpuHandle = await openDevice();
  const { device } = gpu;
  let mode: WebGpuExpertActivations;
  try {
    mode = webGpuExpertActivations(options.expertActivations, gpu.f16 && options.withoutF16 !== true, gpu.adapterName);
  } catch (e) {
    device.destroy();
    throw e;
  }
  const half = mode === 'f16';
  // Weights and the KV cache are cut to `maxBinding`; activations only need to fit the device's own limit.
  const maxBinding = Math.min(gpu.maxBinding, options.maxBindingBytes ?? Infinity);
  const activationLimit = gpu.maxBinding;
  const offsetAlignment = device.limits.minStorageBufferOffsetAlignment;
  const heap = new HeapStore();
  const reference = createReferenceBackend(heap);
  const fallbacks: FallbackCounts = { linear: 0, attention: 0, experts: 0 };
  let weightBytes = 0, uploaded = 0, downloaded = 0;
  let lost: string | null = null;
  void device.lost.then((info) => { lost = info.message || info.reason; });

  const sources: Record<Kernel, string> = {
    rmsnorm: RMSNORM, rope: ROPE,
    ...Object.fromEntries(LINEAR_LANES.map((lanes) => [`linear${lanes}`, linearBf16(lanes)])) as Record<`linear${LinearLanes}`, string>,
    attentionPartial: ATTENTION_PARTIAL, attentionCombine: ATTENTION_COMBINE,
    expertsUp: expertsUp(half), expertsDown: expertsDown(half), expertsCombine: EXPERTS_COMBINE,
    add: ADD, copyRows: COPY_ROWS, route: ROUTE, expertPairs: EXPERT_PAIRS, expertGroups: EXPERT_GROUPS, argmax: ARGMAX, topK: TOP_K, sliceWeights: SLICE_WEIGHTS,
  };
  device.pushErrorScope('validation');
  const pipelines = {} as Record<Kernel, GPUComputePipeline>;
  for (const [name, code] of Object.entries(sources) as [Kernel, string][]) {
    const module = device.createShaderModule({ code, label: name });
    pipelines[name] = await device.createComputePipelineAsync({ layout: 'auto', compute: { module, entryPoint: 'main' }, label: name });
  }
  const compileError = await device.popErrorScope();
  if (compileError !== null) throw new Error(`webgpu: kernel compilation failed: ${compileError.message}`);

  // ---- Recording: queued ops share one command encoder, and their dispatches one compute pass,
  // which a buffer copy ends (copies go between passes) and the next dispatch reopens, so a decode
  // step takes a handful of passes instead of one per kernel (dispatches in one pass still see each
  // other's writes: each is its own usage scope).
  let recording: { encoder: GPUCommandEncoder; pass: GPUComputePassEncoder | null } | null = null;
  let passes = 0, dispatches = 0;
  /** The shared encoder, for copies: the open compute pass ends first. */
  const copyEncoder = (): GPUCommandEncoder => {
    recording ??= { encoder: device.createCommandEncoder(), pass: null };
    recording.pass?.end();
    recording.pass = null;
    return recording.encoder;
  };
  const computePass = (): GPUComputePassEncoder => {
    recording ??= { encoder: device.createCommandEncoder(), pass: null };
    if (recording.pass === null) {
      recording.pass = recording.encoder.beginComputePass();
      passes++;
    }
    dispatches++;
    return recording.pass;
  };
  /** Ends the shared encoder: its commands join `pending`. */
  const closeRecording = (): void => {
    if (recording === null) return;
    copyEncoder();
    pending.push(recording.encoder.finish());
    recording = null;
  };

  /** Records one dispatch of `kernel` with bindings 0.. in order. */
  const dispatch = (kernel: Kernel, bindings: Binding[], groups: [number, number]): void => {
    const pipeline = pipelines[kernel];
    const bindGroup = device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: bindings.map((b, binding) => ({ binding, resource: 'buffer' in b ? b : { buffer: b } })),
    });
    const pass = computePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(groups[0], groups[1]);
  };

  /**
   * Copies `bytes` (a multiple of 4) between two different buffers inside the compute pass, by the
   * copyRows kernel, so that the copies of views and of the KV cache writes do not end the pass.
   */
  const copyWords = (src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void => {
    const words = bytes / 4;
    dispatch('copyRows', [pool.uniforms([1, words, words, words, srcOffset / 4, dstOffset / 4, 0, 0]), src, dst], grid(Math.ceil(words / WORKGROUP)));
  };

  // ---- Submission and errors: the queued commands wait (in the shared encoder, then `pending`)
  // and go to the queue together at the next read-back (one submission per decode step), or before
  // the host writes into or frees a buffer they may use. One pair of error scopes (validation, out
  // of memory) spans each batch; their errors are checked at the next read-back.
  let pending: GPUCommandBuffer[] = [];
  let submissions = 0;
  let scopeOpen = false;
  let pendingErrors: Promise<GPUError | null>[] = [];
  const checkLost = (): void => {
    if (lost !== null) throw deviceLost(lost);
  };
  const openScope = (): void => {
    checkLost();
    if (scopeOpen) return;
    device.pushErrorScope('out-of-memory');
    device.pushErrorScope('validation');
    scopeOpen = true;
  };
  const queued = (): boolean => pending.length > 0 || recording !== null;
  const flush = (): void => {
    closeRecording();
    if (pending.length > 0) {
      device.queue.submit(pending);
      submissions++;
    }
    pending = [];
    if (!scopeOpen) return;
    const validation = device.popErrorScope();
    pendingErrors.push(validation, device.popErrorScope());
    scopeOpen = false;
  };
  /** Before the host writes into a GPU buffer: the queued work, which may use it, goes first. */
  const beforeWrite = (): void => {
    if (queued()) flush();
    openScope();
  };
  const settle = async (): Promise<void> => {
    const waiting = pendingErrors;
    pendingErrors = [];
    const errors = await Promise.all(waiting);
    checkLost();
    const error = errors.find((e) => e !== null);
    if (error !== undefined && error !== null) throw gpuFailure(error);
  };

  // ---- Regions: GPU mirrors of the store's allocations.
  const regions = new WeakMap<ArrayBuffer, Region>();
  /** Allocations nothing has written yet: zero on the host, as a new GPU buffer is. */
  const fresh = new WeakSet<ArrayBuffer>();
  const store: TensorStore = {
    allocate(bytes, label) {
      const b = heap.allocate(bytes, label);
      fresh.add(b.buffer as ArrayBuffer);
      return b;
    },
    free(b) {
      const r = regions.get(b.buffer as ArrayBuffer);
      if (r !== undefined) {
        regions.delete(r.host);
        if (queued()) flush();
        r.buffer.destroy(); // work already submitted on it still runs
      }
      heap.free(b);
    },
  };
  /** The region mirroring `a`'s allocation (made on first use), or null for an array from elsewhere. */
  const regionOf = (a: ArrayBufferView): Region | null => {
    const host = a.buffer as ArrayBuffer;
    let r = regions.get(host);
    if (r === undefined && fresh.has(host)) {
      fresh.delete(host);
      openScope();
      const buffer = device.createBuffer({ size: Math.max(4, pad4(host.byteLength)), usage: Usage.STORAGE | Usage.COPY_SRC | Usage.COPY_DST });
      regions.set(host, (r = { host, buffer, hostCurrent: true, gpuCurrent: true }));
    }
    return r ?? null;
  };
  const toGpu = (r: Region): void => {
    if (r.gpuCurrent) return;
    beforeWrite();
    device.queue.writeBuffer(r.buffer, 0, r.host, 0, r.host.byteLength - (r.host.byteLength % 4));
    if (r.host.byteLength % 4 !== 0) {
      const tail = new Uint8Array(4);
      tail.set(new Uint8Array(r.host, r.host.byteLength - (r.host.byteLength % 4)));
      device.queue.writeBuffer(r.buffer, r.host.byteLength - (r.host.byteLength % 4), tail);
    }
    uploaded += r.host.byteLength;
    r.gpuCurrent = true;
  };

  const pool = new BufferPool(device, gpu.maxBinding);
  type Read = { src: GPUBuffer; srcOffset: number; dst: ArrayBufferView };
  type Staged = { staging: GPUBuffer; bytes: number; dst: ArrayBufferView };
  /** Records copies of `reads` into mappable buffers (before the encoder is submitted). */
  const stage = (encoder: GPUCommandEncoder, reads: Read[]): Staged[] => reads.map((r) => {
    const bytes = Math.max(4, pad4(r.dst.byteLength));
    const staging = pool.staging(bytes);
    encoder.copyBufferToBuffer(r.src, r.srcOffset, staging, 0, bytes);
    return { staging, bytes, dst: r.dst };
  });
  /**
   * Submits the queued work, waits for it, reports its errors, and copies the staged results to the
   * host; then the pool's buffers are free again (nothing queued uses them).
   */
  const collect = async (staged: Staged[]): Promise<void> => {
    flush();
    try {
      await settle();
      for (const s of staged) {
        await s.staging.mapAsync(MAP_READ, 0, s.bytes);
        new Uint8Array(s.dst.buffer, s.dst.byteOffset, s.dst.byteLength).set(new Uint8Array(s.staging.getMappedRange(0, s.bytes), 0, s.dst.byteLength));
        s.staging.unmap();
        downloaded += s.dst.byteLength;
      }
    } catch (e) {
      checkLost(); // a read-back cut short by a lost device says so
      throw e;
    } finally {
      pool.release();
    }
  };

  /**
   * One op's recording: `in`/`out`/`inOut` give the buffer a kernel binds for an array (its region
   * when it starts the allocation, else a pool buffer filled by a GPU copy or an upload), and
   * `finish` records the copies back and the read-backs of results that have no region.
   */
  class Recording {
    /** The shared encoder for this op's copies (see copyEncoder). */
    get encoder(): GPUCommandEncoder {
      return copyEncoder();
    }
    private readonly bound = new Set<GPUBuffer>();
    private readonly copiesBack: (() => void)[] = [];
    private readonly reads: Read[] = [];
    private readonly written: Region[] = [];

    in(a: ArrayBufferView): GPUBuffer {
      const r = regionOf(a);
      if (r === null) return pool.input(a);
      toGpu(r);
      if (a.byteOffset === 0) {
        this.bound.add(r.buffer);
        return r.buffer;
      }
      const t = pool.output(a.byteLength);
      copyWords(r.buffer, a.byteOffset, t, 0, Math.max(4, pad4(a.byteLength)));
      return t;
    }

    out(a: ArrayBufferView): GPUBuffer {
      const r = regionOf(a);
      if (r === null) {
        const t = pool.output(a.byteLength);
        this.reads.push({ src: t, srcOffset: 0, dst: a });
        return t;
      }
      if (a.byteOffset !== 0 || a.byteLength < r.host.byteLength) toGpu(r);
      this.written.push(r);
      if (a.byteOffset === 0 && !this.bound.has(r.buffer)) {
        this.bound.add(r.buffer);
        return r.buffer;
      }
      const t = pool.output(a.byteLength);
      this.copiesBack.push(() => copyWords(t, 0, r.buffer, a.byteOffset, Math.max(4, pad4(a.byteLength))));
      return t;
    }

    /** A buffer read and written in place. */
    inOut(a: ArrayBufferView): GPUBuffer {
      const r = regionOf(a);
      if (r === null) {
        const t = pool.input(a);
        this.reads.push({ src: t, srcOffset: 0, dst: a });
        return t;
      }
      const t = this.in(a);
      this.written.push(r);
      if (t !== r.buffer) this.copiesBack.push(() => copyWords(t, 0, r.buffer, a.byteOffset, Math.max(4, pad4(a.byteLength))));
      return t;
    }

    /** Marks `r` as written by this op's work (for ops that write a region by a copy). */
    wrote(r: Region): void {
      this.written.push(r);
    }

    finish(): Staged[] {
      for (const copy of this.copiesBack) copy();
      for (const r of this.written) {
        r.gpuCurrent = true;
        r.hostCurrent = false;
      }
      return this.reads.length === 0 ? [] : stage(this.encoder, this.reads);
    }
  }

  /**
   * Records and queues one op. Returns a promise only when results without a region are read back
   * (resolving once they are on the host); else the work stays queued, its errors reported by the
   * next read-back.
   */
  const op = (record: (rec: Recording) => void): Promise<void> | undefined => {
    openScope();
    const rec = new Recording();
    record(rec);
    const staged = rec.finish();
    return staged.length > 0 ? collect(staged) : undefined;
  };

  /** Makes the host copy of `a` current. */
  const toHost = async (a: ArrayBufferView): Promise<void> => {
    const r = regions.get(a.buffer as ArrayBuffer);
    if (r === undefined || r.hostCurrent || a.byteLength === 0) {
      flush();
      return settle();
    }
    openScope();
    const staged = stage(copyEncoder(), [{ src: r.buffer, srcOffset: a.byteOffset, dst: a }]);
    await collect(staged);
    if (a.byteOffset === 0 && a.byteLength >= r.host.byteLength) r.hostCurrent = true;
  };

  /** The host wrote `a`: its GPU copy (when current elsewhere) gets the same bytes. */
  const written = (a: ArrayBufferView): void => {
    const r = regionOf(a);
    if (r === null || !r.gpuCurrent || a.byteLength === 0) return;
    beforeWrite();
    device.queue.writeBuffer(r.buffer, a.byteOffset, a.buffer, a.byteOffset, pad4(a.byteLength));
    uploaded += a.byteLength;
  };

  /** Runs a reference op on host copies of its inputs; its output goes back to the GPU. */
  const onHost = async (inputs: ArrayBufferView[], output: ArrayBufferView, run: () => void): Promise<void> => {
    for (const a of inputs) await toHost(a);
    run();
    written(output);
  };

  // Constant tensors (weights, biases, norm scales, sinks, RoPE tables) stay on the GPU, keyed by their array.
  const constants = new WeakMap<object, GPUBuffer>();
  const constant = (a: Float32Array | Uint32Array): GPUBuffer => {
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
    await op((rec) => {
      const xb = rec.in(x.subarray(0, tokens * n));
      const o = rec.out(out.subarray(0, tokens * n));
      dispatch('rmsnorm', [pool.uniforms([tokens, n, f32(eps), 0]), xb, constant(scale), o], grid(tokens));
    });
  }

  async function linear(x: Float32Array, tokens: number, w: LinearWeight, bias: Float32Array | null, out: Float32Array): Promise<void> {
    // An int8 copy has no WGSL kernel (loadEngine refuses it on this backend): the host computes it.
    const chunks = isInt8Matrix(w) ? null : bf16Weight(w);
    if (chunks === null) {
      fallbacks.linear++;
      return onHost([x.subarray(0, tokens * w.cols)], out.subarray(0, tokens * w.rows), () => reference.linear(x, tokens, w, bias, out));
    }
    await op((rec) => {
      const xb = rec.in(x.subarray(0, tokens * w.cols));
      const o = rec.out(out.subarray(0, tokens * w.rows));
      const bb = bias === null ? zero : constant(bias);
      const lanes = linearLanes(w.cols);
      chunks.buffers.forEach((buffer, i) => {
        const r0 = chunks.starts[i]!, rows = chunks.starts[i + 1]! - r0;
        const u = pool.uniforms([tokens, rows, w.cols, bias === null ? 0 : 1, r0, w.rows, 0, 0]);
        dispatch(`linear${lanes}`, [u, xb, buffer, bb, o], grid(Math.ceil(rows / (WORKGROUP / lanes))));
      });
    });
  }

  async function rope(x: Float32Array, tokens: number, heads: number, headDim: number, positions: Int32Array, table: RopeTable): Promise<void> {
    const half = headDim / 2, floats = tokens * heads * headDim;
    if (table.cos.byteLength > activationLimit) {
      // A table longer than one binding (a context of millions of positions): the reference code.
      return onHost([x.subarray(0, floats), positions.subarray(0, tokens)], x.subarray(0, floats), () => reference.rope(x, tokens, heads, headDim, positions, table));
    }
    await op((rec) => {
      const pb = rec.in(positions.subarray(0, tokens));
      const xb = rec.inOut(x.subarray(0, floats));
      const u = pool.uniforms([tokens, heads, half, table.halfDim]);
      dispatch('rope', [u, xb, pb, constant(table.cos), constant(table.sin)], grid(Math.ceil((tokens * heads * half) / WORKGROUP)));
    });
  }

  async function attention(
    q: Float32Array, tokens: number, positions: Int32Array,
    keys: Float32Array, values: Float32Array, keyCount: number, keyPositions: Int32Array,
    sinks: Float32Array, shape: AttentionShape, out: Float32Array,
  ): Promise<void> {
    const { heads, kvHeads, headDim, window } = shape;
    const items = tokens * heads, width = heads * headDim;
    const keyFloats = kvHeads * headDim;
    const outView = out.subarray(0, tokens * width);
    if (keyCount === 0) {
      // Nothing visible: the sink takes all the mass.
      outView.fill(0);
      return void written(outView);
    }
    // Keys per binding (a cache longer than one binding is cut into chunks of whole positions; a
    // cache in regions of its own is bound in place, so its chunks start where a binding offset
    // can), and keys per workgroup: enough splits that a decode step (heads x 1 queries) fills the GPU.
    const kr = regionOf(keys), vr = regionOf(values), pr = regionOf(keyPositions);
    const keysPerBinding = Math.floor(maxBinding / (keyFloats * 4));
    const keyStep = Math.max(1, offsetAlignment / 4);
    const aligned = Math.floor(keysPerBinding / keyStep) * keyStep;
    const inPlace = kr !== null && vr !== null && pr !== null && keys.byteOffset === 0 && values.byteOffset === 0 && keyPositions.byteOffset === 0 &&
      (keyCount <= keysPerBinding || aligned >= 1);
    const chunkKeys = inPlace && keyCount > keysPerBinding ? aligned : keysPerBinding;
    const splitsWanted = Math.max(1, Math.min(Math.ceil(keyCount / WORKGROUP), Math.ceil(ATTENTION_WORKGROUPS / items)));
    const span = Math.ceil(Math.ceil(keyCount / splitsWanted) / WORKGROUP) * WORKGROUP;
    const chunks: { k0: number; k1: number; splits: number; splitBase: number }[] = [];
    let splitsTotal = 0;
    for (let k0 = 0; chunkKeys >= 1 && k0 < keyCount; k0 += chunkKeys) {
      const k1 = Math.min(keyCount, k0 + chunkKeys);
      const splits = Math.ceil((k1 - k0) / span);
      chunks.push({ k0, k1, splits, splitBase: splitsTotal });
      splitsTotal += splits;
    }
    if (headDim > MAX_HEAD_DIM || chunkKeys < 1 || tokens * width * 4 > activationLimit || items * splitsTotal * (headDim + 2) * 4 > activationLimit) {
      fallbacks.attention++;
      return onHost(
        [q.subarray(0, tokens * width), positions.subarray(0, tokens), keys.subarray(0, keyCount * keyFloats), values.subarray(0, keyCount * keyFloats), keyPositions.subarray(0, keyCount)],
        outView, () => reference.attention(q, tokens, positions, keys, values, keyCount, keyPositions, sinks, shape, out),
      );
    }
    await op((rec) => {
      const qb = rec.in(q.subarray(0, tokens * width));
      const pb = rec.in(positions.subarray(0, tokens));
      const partial = pool.output(items * splitsTotal * (headDim + 2) * 4);
      for (const c of chunks) {
        const u = pool.uniforms([
          items, heads, kvHeads, headDim, c.k1 - c.k0, window, heads / kvHeads, f32(1 / Math.sqrt(headDim)),
          span, c.splits, c.splitBase, splitsTotal,
        ]);
        const range = (r: Region, start: number, bytes: number): GPUBufferBinding => {
          toGpu(r);
          return { buffer: r.buffer, offset: start, size: Math.max(4, bytes) };
        };
        const kb = inPlace ? range(kr!, c.k0 * keyFloats * 4, (c.k1 - c.k0) * keyFloats * 4) : rec.in(keys.subarray(c.k0 * keyFloats, c.k1 * keyFloats));
        const vb = inPlace ? range(vr!, c.k0 * keyFloats * 4, (c.k1 - c.k0) * keyFloats * 4) : rec.in(values.subarray(c.k0 * keyFloats, c.k1 * keyFloats));
        const kp = inPlace ? range(pr!, c.k0 * 4, (c.k1 - c.k0) * 4) : rec.in(keyPositions.subarray(c.k0, c.k1));
        dispatch('attentionPartial', [u, qb, kb, vb, kp, pb, partial], grid(items * c.splits));
      }
      const o = rec.out(outView);
      const u = pool.uniforms([items, heads, headDim, splitsTotal]);
      dispatch('attentionCombine', [u, partial, constant(sinks), o], grid(items));
    });
  }

  /** Identity row tables of the per-pair expert path, by (pairs, k): pair i is row i, of token i / k. */
  const pairTables = new Map<string, { rowToken: GPUBuffer; slotRow: GPUBuffer }>();
  const pairTable = (pairs: number, k: number): { rowToken: GPUBuffer; slotRow: GPUBuffer } => {
    const key = `${pairs}:${k}`;
    let t = pairTables.get(key);
    if (t === undefined) {
      const rowToken = new Uint32Array(pairs).map((_, i) => Math.floor(i / k));
      const slotRow = new Uint32Array(pairs).map((_, i) => i);
      pairTables.set(key, (t = { rowToken: constant(rowToken), slotRow: constant(slotRow) }));
    }
    return t;
  };

  async function experts(
    x: Float32Array, tokens: number, indices: Int32Array, weights: Float32Array, k: number,
    moe: ExpertWeights, swigluLimit: number, out: Float32Array,
  ): Promise<void> {
    const w1 = moe.mlp1Weight, w2 = moe.mlp2Weight;
    const hidden = w1.cols, inter = w2.cols;
    const c1 = w1.cols % 32 === 0 && w2.cols % 32 === 0 ? mxfp4Weight(w1) : null;
    const c2 = c1 === null ? null : mxfp4Weight(w2);
    const pairs = tokens * k;
    const indexView = indices.subarray(0, pairs), weightView = weights.subarray(0, pairs);
    const outView = out.subarray(0, tokens * hidden);
    if (c1 === null || c2 === null || inter > 65535 || hidden > 65535 || pairs * Math.max(hidden, inter) * 4 > activationLimit) {
      fallbacks.experts++;
      return onHost([x.subarray(0, tokens * hidden), indexView, weightView], outView, () => reference.experts(x, tokens, indices, weights, k, moe, swigluLimit, out));
    }
    // Routing the GPU computed stays there: with no more pairs than experts (a decode step) each
    // pair is its own group, else a kernel groups the pairs by expert (every expert a group, so
    // each expert's weights are read once for all its rows). Routing from the host is grouped there.
    const ir = regionOf(indices);
    const onGpu = ir !== null && !ir.hostCurrent;
    const perPair = onGpu && pairs <= w1.count;
    const gpuGroups = onGpu && !perPair && w1.count <= MAX_GROUPED_EXPERTS;
    if (!perPair && !gpuGroups) await toHost(indexView);
    const groups: { expert: number; start: number; count: number }[] = [];
    const rowToken = new Uint32Array(pairs), slotRow = new Uint32Array(pairs);
    if (!perPair && !gpuGroups) {
      const byExpert = new Map<number, number[]>();
      for (let i = 0; i < pairs; i++) {
        const e = indices[i]!;
        let list = byExpert.get(e);
        if (list === undefined) byExpert.set(e, (list = []));
        list.push(i);
      }
      let row = 0;
      for (const e of [...byExpert.keys()].sort((a, b) => a - b)) {
        const list = byExpert.get(e)!;
        groups.push({ expert: e, start: row, count: list.length });
        for (const pair of list) {
          rowToken[row] = Math.floor(pair / k);
          slotRow[pair] = row++;
        }
      }
    }
    /** Per weight chunk, the groups [first, first + count) of its experts (every group per pair). */
    const spansFor = (starts: number[]): { chunk: number; first: number; count: number }[] => {
      if (perPair) return starts.slice(1).map((_, chunk) => ({ chunk, first: 0, count: pairs }));
      if (gpuGroups) return starts.slice(1).map((end, chunk) => ({ chunk, first: starts[chunk]!, count: end - starts[chunk]! }));
      const spans: { chunk: number; first: number; count: number }[] = [];
      groups.forEach((g, i) => {
        let c = 0;
        while (starts[c + 1]! <= g.expert) c++;
        const last = spans[spans.length - 1];
        if (last !== undefined && last.chunk === c) last.count++;
        else spans.push({ chunk: c, first: i, count: 1 });
      });
      return spans;
    };
    await op((rec) => {
      const xb = rec.in(x.subarray(0, tokens * hidden));
      const act = pool.output(pairs * inter * (half ? 2 : 4));
      const y = pool.output(pairs * hidden * 4);
      let table: GPUBuffer, rt: GPUBuffer, sr: GPUBuffer;
      if (perPair) {
        table = pool.output(pairs * 16);
        dispatch('expertPairs', [pool.uniforms([pairs, 0, 0, 0]), rec.in(indexView), table], grid(Math.ceil(pairs / WORKGROUP)));
        ({ rowToken: rt, slotRow: sr } = pairTable(pairs, k));
      } else if (gpuGroups) {
        table = pool.output(w1.count * 16);
        rt = pool.output(pairs * 4);
        sr = pool.output(pairs * 4);
        dispatch('expertGroups', [pool.uniforms([pairs, w1.count, k, 0]), rec.in(indexView), table, rt, sr], [1, 1]);
      } else {
        table = pool.input(new Uint32Array(groups.flatMap((g) => [0, g.start, g.count, g.expert])));
        rt = pool.input(rowToken);
        sr = pool.input(slotRow);
      }
      for (const s of spansFor(c1.starts)) {
        const u = pool.uniforms([hidden, inter, s.first, c1.starts[s.chunk]!, f32(swigluLimit), c1.starts[s.chunk + 1]!, 0, 0]);
        dispatch('expertsUp', [u, table, c1.blocks[s.chunk]!, c1.scales[s.chunk]!, constant(moe.mlp1Bias), xb, rt, act], [inter, s.count]);
      }
      for (const s of spansFor(c2.starts)) {
        const u = pool.uniforms([hidden, inter, s.first, c2.starts[s.chunk]!, c2.starts[s.chunk + 1]!, 0, 0, 0]);
        dispatch('expertsDown', [u, table, c2.blocks[s.chunk]!, c2.scales[s.chunk]!, constant(moe.mlp2Bias), act, y], [hidden, s.count]);
      }
      const wb = rec.in(weightView);
      const o = rec.out(outView);
      dispatch('expertsCombine', [pool.uniforms([tokens, hidden, k, 0]), y, sr, wb, o], grid(Math.ceil((tokens * hidden) / WORKGROUP)));
    });
  }

  /** The glue ops need their arrays in regions: only the store's arrays can stay on the GPU. */
  const regionFor = (a: ArrayBufferView, what: string): Region => {
    const r = regionOf(a);
    if (r === null) throw new Error(`webgpu: ${what} on an array that is not from the backend's store`);
    return r;
  };

  const resident: DeviceResident = {
    add(x, y, count) {
      regionFor(x, 'add');
      op((rec) => {
        const xb = rec.inOut(x.subarray(0, count));
        const yb = rec.in(y.subarray(0, count));
        dispatch('add', [pool.uniforms([count, 0, 0, 0]), xb, yb], grid(Math.ceil(count / WORKGROUP)));
      });
    },
    copyRows(src, srcStride, dst, dstStride, width, rows) {
      if (rows === 0 || width === 0) return;
      const sr = regionFor(src, 'copyRows'), dr = regionFor(dst, 'copyRows');
      op((rec) => {
        toGpu(sr);
        if (!(dst.byteOffset === 0 && dstStride === width && rows * width * 4 >= dr.host.byteLength)) toGpu(dr);
        rec.wrote(dr);
        if ((rows === 1 || (srcStride === width && dstStride === width)) && sr !== dr) {
          copyWords(sr.buffer, src.byteOffset, dr.buffer, dst.byteOffset, rows * width * 4);
          return;
        }
        // Strided rows: a kernel over the whole allocations (a copy within one allocation goes through a temporary).
        const from = sr === dr ? pool.output(sr.host.byteLength) : sr.buffer;
        if (from !== sr.buffer) rec.encoder.copyBufferToBuffer(sr.buffer, 0, from, 0, pad4(sr.host.byteLength));
        const u = pool.uniforms([rows, width, srcStride, dstStride, src.byteOffset / 4, dst.byteOffset / 4, 0, 0]);
        dispatch('copyRows', [u, from, dr.buffer], grid(Math.ceil((rows * width) / WORKGROUP)));
      });
    },
    route(gate, tokens, experts, k, indices, weights) {
      regionFor(indices, 'route');
      regionFor(weights, 'route');
      op((rec) => {
        const gb = rec.in(gate.subarray(0, tokens * experts));
        const ib = rec.out(indices.subarray(0, tokens * k));
        const wb = rec.out(weights.subarray(0, tokens * k));
        dispatch('route', [pool.uniforms([tokens, experts, k, 0]), gb, ib, wb], grid(Math.ceil(tokens / WORKGROUP)));
      });
    },
    argmax(x, rows, width, out) {
      regionFor(out, 'argmax');
      op((rec) => {
        const xb = rec.in(x.subarray(0, rows * width));
        const ob = rec.out(out.subarray(0, rows));
        dispatch('argmax', [pool.uniforms([rows, width, 0, 0]), xb, ob], grid(rows));
      });
    },
    topK(x, width, k, ids, values) {
      regionFor(ids, 'topK');
      regionFor(values, 'topK');
      op((rec) => {
        const xb = rec.in(x.subarray(0, width));
        // The k best of each slice, then the k best of those: k (id, value) pairs stay for the host.
        const slices = Math.ceil(width / TOP_K_SLICE);
        const sv = pool.output(slices * k * 4), si = pool.output(slices * k * 4);
        dispatch('topK', [pool.uniforms([width, k, TOP_K_SLICE, 0]), xb, zero, sv, si], grid(slices));
        const vb = rec.out(values.subarray(0, k)), ib = rec.out(ids.subarray(0, k));
        dispatch('topK', [pool.uniforms([slices * k, k, slices * k, 1]), sv, si, vb, ib], grid(1));
      });
    },
    sliceWeights(x, width, slice, invT, top, sums) {
      regionFor(sums, 'sliceWeights');
      op((rec) => {
        const xb = rec.in(x.subarray(0, width));
        const tb = rec.in(top.subarray(0, 1));
        const slices = Math.ceil(width / slice);
        const sb = rec.out(sums.subarray(0, slices + 1));
        dispatch('sliceWeights', [pool.uniforms([width, slice, f32(invT), 0]), xb, tb, sb], grid(slices));
      });
    },
    written,
    toHost,
  };

  return {
    name: 'webgpu',
    store,
    adapter: gpu.adapterName,
    expertActivations: mode,
    resident,
    get fallbacks() {
      return { ...fallbacks };
    },
    get weightBytes() {
      return weightBytes;
    },
    get transfers() {
      return { up: uploaded + pool.uploaded, down: downloaded, submissions, passes, dispatches };
    },
    rmsnorm,
    linear,
    rope,
    attention,
    experts,
    close: async () => {
      if (lost === null) flush();
      await device.queue.onSubmittedWorkDone();
      device.destroy();
      await device.lost;
      // Keeps the create() result reachable until the device is gone (see device.ts).
      void gpu.gpu;
    },
  };
}

