// The compute backend interface, sized to gpt-oss. Three implementations share these signatures:
// `reference` (plain TypeScript, the specification in code), the fast WebAssembly SIMD one, and
// WebGPU (WGSL compute shaders).
// Tests compare them op by op. Activations are f32 row-major [tokens, width]; weights are the
// stored forms of tensor/ (BF16 words, packed MXFP4), allocated through the backend's
// TensorStore so a fast backend can place them in its own (possibly several) WebAssembly memories
// and compute on them without copies. The forward pass (model/forward.ts) also takes its
// activations and KV caches from the store, so a backend that recognises its own buffers
// (same ArrayBuffer) can skip copying them; any other Float32Array must be accepted too.
//
// Ops may run synchronously or return a promise (a backend with worker threads); callers always
// `await` each op and never start the next one before the previous resolved. Ops never keep a
// reference to their arguments after they return/resolve.
import type { Bf16Matrix, Int8Matrix, LinearWeight, Mxfp4Matrices, TensorStore } from '../tensor/index.ts';

/** cos/sin tables for YaRN RoPE: [positions, headDim/2] each, concentration already applied. */
export interface RopeTable {
  cos: Float32Array;
  sin: Float32Array;
  halfDim: number;
  /** Rows in the tables (the largest position + 1 they cover). */
  positions: number;
}

/**
 * A KV cache's keys or values: f32, or bf16 words (the upper halves of f32, rounded to nearest
 * even when stored) for the 16-bit cache.
 */
export type KvArray = Float32Array | Uint16Array;

/** Element type of the KV cache: 'f32' (exact) or 'bf16' (half the memory). */
export type KvCacheType = 'f32' | 'bf16';
export const KV_CACHE_TYPES: readonly KvCacheType[] = ['f32', 'bf16'];

/** How the unembedding is read at each step: the bf16 weights as stored, or an int8 copy of them. */
export type UnembeddingType = 'bf16' | 'int8';
export const UNEMBEDDING_TYPES: readonly UnembeddingType[] = ['bf16', 'int8'];

export interface AttentionShape {
  heads: number; // query heads
  kvHeads: number; // query head h uses K/V head floor(h / (heads / kvHeads))
  headDim: number;
  /** Sliding window (a query at p sees keys at kp with p - kp < window), or 0 for dense attention. */
  window: number;
}

/**
 * One layer's experts as the `experts` op reads them (the model's MoeWeights carries these plus
 * the router and norm): `count` = E matrices each.
 */
export interface ExpertWeights {
  mlp1Weight: Mxfp4Matrices; // E x [2I, hidden], rows interleaved glu/linear
  mlp1Bias: Float32Array; // [E, 2I]
  mlp2Weight: Mxfp4Matrices; // E x [hidden, I]
  mlp2Bias: Float32Array; // [E, hidden]
}

/** A backend op's result: backends with worker threads return a promise, others return nothing. */
export type OpResult = void | Promise<void>;

export interface Backend {
  readonly name: string;
  readonly store: TensorStore;

  /** out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * scale, for t < tokens; x [tokens, scale.length]. out may alias x. */
  rmsnorm(x: Float32Array, tokens: number, scale: Float32Array, eps: number, out: Float32Array): OpResult;

  /**
   * out[t, r] = sum_c x[t, c] * w[r, c] + bias[r]; x [tokens, w.cols], out [tokens, w.rows].
   * Each row of w is read once for all `tokens` (prefill goes through the weights once). w is
   * bf16, or an int8 copy (the unembedding under `--unembedding int8`) whose weights are its codes
   * times their group's scale.
   */
  linear(x: Float32Array, tokens: number, w: LinearWeight, bias: Float32Array | null, out: Float32Array): OpResult;

  /**
   * Rotates x [tokens, heads, headDim] in place by the rows of `table` at `positions[t]`: with
   * x1 = first half of a head and x2 = second half (half-split, not interleaved pairs),
   * x1' = x1*cos - x2*sin, x2' = x2*cos + x1*sin.
   */
  rope(x: Float32Array, tokens: number, heads: number, headDim: number, positions: Int32Array, table: RopeTable): OpResult;

  /**
   * Attention with sinks. q [tokens, heads, headDim] (RoPE applied) at absolute `positions`;
   * keys/values [keyCount, kvHeads, headDim] (RoPE applied to keys; both f32 or both bf16 words)
   * at absolute `keyPositions`,
   * in any order (a ring buffer); entries with keyPositions[i] < 0 are empty slots, never attended.
   * A query at p sees keys at kp with 0 <= kp <= p (and p - kp < window when window > 0).
   * Scores are q.k / sqrt(headDim); the softmax runs over the visible scores plus the per-head
   * sink logit sinks[h], whose probability mass is then dropped (it has no value).
   * out [tokens, heads*headDim] = sum_k p_k v_k.
   */
  attention(
    q: Float32Array, tokens: number, positions: Int32Array,
    keys: KvArray, values: KvArray, keyCount: number, keyPositions: Int32Array,
    sinks: Float32Array, shape: AttentionShape, out: Float32Array,
  ): OpResult;

  /**
   * The MoE experts for a batch: x [tokens, hidden] (the normed input). For token t and slot
   * j < k, expert e = indices[t*k + j] with weight weights[t*k + j]:
   * h = x[t] @ mlp1[e]^T + mlp1Bias[e] (width 2I); glu = h[0::2] clamped above at swigluLimit,
   * lin = h[1::2] clamped to [-swigluLimit, swigluLimit]; a = glu * sigmoid(1.702 * glu) * (lin + 1)
   * (width I); y = a @ mlp2[e]^T + mlp2Bias[e]. out[t] = sum_j weight_j * y_j (overwritten, not
   * accumulated). Tokens routed to the same expert are processed together so each expert's packed
   * MXFP4 weights are read (and dequantised group by group) once per batch; experts no token
   * chose are never touched.
   */
  experts(
    x: Float32Array, tokens: number, indices: Int32Array, weights: Float32Array, k: number,
    moe: ExpertWeights, swigluLimit: number, out: Float32Array,
  ): OpResult;

  /**
   * The int8 copy of `w` in the backend's store, for `linear` (`--unembedding int8`): per group of
   * 32 columns of a row, scale = max|w| / 127 (f32) and code = w * (127 / max|w|) in f32, rounded
   * to nearest even. The reference backend's is the specification; a backend without it (webgpu)
   * does not take int8 weights.
   */
  int8Copy?(w: Bf16Matrix, label: string): Promise<Int8Matrix>;

  /**
   * Present on a backend that keeps activations and KV caches on a device between ops (webgpu):
   * the forward pass then runs its own glue there too, so a step moves only its inputs and result.
   */
  readonly resident?: DeviceResident;

  /** Frees worker threads and memories. The backend is unusable afterwards. */
  close(): Promise<void>;
}

/** Any array the forward pass hands to a backend. */
export type ActivationArray = Float32Array | Int32Array;

/**
 * The forward pass's glue as device ops, for a backend whose op results stay on its device. Arrays
 * from the backend's store are then held on the device too, and their host copies may be stale:
 * the host reads one only after `toHost`, and reports what it wrote itself with `written`. Every
 * op here only queues work (errors surface at the next `toHost` or read-back), in order with the
 * Backend ops. The model's `hostGlue` (model/glue.ts) is the same contract on host arrays.
 */
export interface DeviceResident {
  /** x[i] += y[i] for i < count. */
  add(x: Float32Array, y: Float32Array, count: number): void;
  /**
   * dst[r * dstStride + c] = src[r * srcStride + c] for r < rows, c < width (views start at their
   * first element; words are copied as they are, so f32 and i32 alike).
   */
  copyRows(src: ActivationArray, srcStride: number, dst: ActivationArray, dstStride: number, width: number, rows: number): void;
  /**
   * Top-k routing per token: gate [tokens, experts] → indices [tokens, k] (largest first, lower
   * expert on exact ties) and weights [tokens, k] (softmax over those k).
   */
  route(gate: Float32Array, tokens: number, experts: number, k: number, indices: Int32Array, weights: Float32Array): void;
  /** out[r] = the column of the largest x[r, c] (the lowest on ties), for r < rows; x [rows, width]. */
  argmax(x: Float32Array, rows: number, width: number, out: Int32Array): void;
  /**
   * The k largest finite values of one row x [width], largest first (the lower column on ties):
   * columns into ids[0..k) and values into values[0..k); ids past the finite values are -1.
   */
  topK(x: Float32Array, width: number, k: number, ids: Int32Array, values: Float32Array): void;
  /**
   * The softmax weights of one row x [width] at temperature 1 / invT, summed by slices of `slice`
   * columns: sums[g] = sum of exp((x[c] - x[top[0]]) * invT) over slice g, where top[0] is the
   * row's argmax (f32 sums on a device), and sums[slices] = x[top[0]] (the largest value itself).
   */
  sliceWeights(x: Float32Array, width: number, slice: number, invT: number, top: Int32Array, sums: Float32Array): void;
  /** The host wrote `a` (a view of a store array): the device copy of that range is brought up to date. */
  written(a: ActivationArray): void;
  /** Makes the host copy of `a` current (reads it back when the device wrote it last). */
  toHost(a: ActivationArray): Promise<void>;
}

/**
 * The backends `loadEngine` can select by name: 'reference' is `createReferenceBackend()` from
 * kernels/reference.ts; 'wasm' is `createWasmBackend(options: BackendOptions): Promise<Backend>`
 * exported by kernels/wasm/index.ts; 'webgpu' is `createWebGpuBackend(options)` from
 * kernels/webgpu/index.ts (WGSL kernels on a WebGPU device, through the optional `webgpu` package).
 */
export type BackendName = 'reference' | 'wasm' | 'webgpu';
export const BACKEND_NAMES: readonly BackendName[] = ['wasm', 'reference', 'webgpu'];
/** What `--backend` accepts: a backend, or 'auto' (webgpu on a real GPU adapter, else wasm). */
export type BackendChoice = BackendName | 'auto';
export const BACKEND_CHOICES: readonly BackendChoice[] = [...BACKEND_NAMES, 'auto'];

export interface BackendOptions {
  /** Worker threads for backends that use them (default: the number of cores). */
  threads?: number;
  /**
   * How the fast backend feeds a single token's activations to the MXFP4 experts (several tokens
   * use f32; the reference backend is always exact). 'q8' (default): int8 per group of 32, as
   * llama.cpp does for MXFP4; decode ~1.4x faster than 'split', with logits as far from the f32
   * reference as the official bf16 reference's are (golden tests: within their bf16 tolerance).
   * 'split': two i16 halves per group of 32 (~31 bits) into integer dot products, as accurate as
   * f32 (the golden f32 parity suite runs the fast backend in this mode). 'f32': f32 everywhere.
   * 'f16' (the webgpu backend only, its default where the adapter has shader-f16): the experts'
   * inputs rounded to f16 and each 8 products summed in f16, accumulated in f32; held to the bf16
   * tolerance. The webgpu backend has no 'q8'; its 'split' and 'f32' are both its f32 kernels.
   * GPTOSS_EXPERT_ACTIVATIONS sets the default.
   */
  expertActivations?: ExpertActivations;
  /**
   * The wasm backend's worker pool: true makes ops of 2^28 multiply-adds and more (prefill chunks,
   * the unembedding) run on `threads` workers while the main thread awaits them, so its event loop
   * serves I/O during a step (and gets a turn every ~10 ms between smaller ops); `gptoss serve`
   * sets it. Default false: the main thread computes a slice of every op and blocks meanwhile.
   */
  offload?: boolean;
}

export type ExpertActivations = 'q8' | 'split' | 'f32' | 'f16';
export const EXPERT_ACTIVATIONS: readonly ExpertActivations[] = ['q8', 'split', 'f32', 'f16'];
