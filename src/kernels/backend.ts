// The compute backend interface, sized to gpt-oss. Two implementations share these signatures:
// `reference` (plain TypeScript, the specification in code) and the fast WebAssembly SIMD one.
// Tests compare them op by op. Activations are f32 row-major [tokens, width]; weights are the
// stored forms from model/weights.ts, allocated through the backend's TensorStore so a fast
// backend can place them in its own (possibly several) WebAssembly memories.
//
// DRAFT (skeleton): the engine work owns this file and may refine it; the fast backend follows.
import type { Bf16Matrix, MoeWeights } from '../model/weights.ts';

/** Where weights and caches live. The reference store uses plain ArrayBuffers. */
export interface TensorStore {
  /** A zeroed byte buffer of `bytes` bytes; `label` (a tensor name) is for error messages and profiles. */
  allocate(bytes: number, label: string): Uint8Array;
}

/** cos/sin tables for YaRN RoPE: [positions, headDim/2] each, concentration already applied. */
export interface RopeTable {
  cos: Float32Array;
  sin: Float32Array;
  halfDim: number;
}

export interface AttentionShape {
  heads: number; // query heads
  kvHeads: number;
  headDim: number;
  /** Sliding window (keys with q - k < window), or 0 for dense attention. */
  window: number;
}

export interface Backend {
  readonly name: string;
  readonly store: TensorStore;

  /** out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * scale, for t < tokens. */
  rmsnorm(x: Float32Array, tokens: number, scale: Float32Array, eps: number, out: Float32Array): void;

  /** out[t, r] = sum_c x[t, c] * w[r, c] + bias[r]; x [tokens, w.cols], out [tokens, w.rows]. */
  linear(x: Float32Array, tokens: number, w: Bf16Matrix, bias: Float32Array | null, out: Float32Array): void;

  /** Rotates x [tokens, heads, headDim] in place by the rows of `table` at `positions[t]` (half-split, not interleaved). */
  rope(x: Float32Array, tokens: number, heads: number, positions: Int32Array, table: RopeTable): void;

  /**
   * Attention with sinks. q [tokens, heads, headDim] at absolute `positions`; keys/values
   * [keyCount, kvHeads, headDim] at absolute `keyPositions`. A query at p sees keys at kp <= p
   * (and p - kp < window when window > 0). Softmax includes the per-head sink logit, whose
   * probability mass is then dropped. Scores are scaled by 1/sqrt(headDim). out [tokens, heads*headDim].
   */
  attention(
    q: Float32Array, tokens: number, positions: Int32Array,
    keys: Float32Array, values: Float32Array, keyCount: number, keyPositions: Int32Array,
    sinks: Float32Array, shape: AttentionShape, out: Float32Array,
  ): void;

  /**
   * The MoE experts for a batch: for token t and slot j < k, expert e = indices[t*k + j] with
   * weight weights[t*k + j]: h = x[t] @ mlp1[e]^T + b1[e]; clamped SwiGLU on (even, odd) columns;
   * y = a @ mlp2[e]^T + b2[e]; out[t] += weight * y. Tokens routed to the same expert are
   * processed together so each expert's weights are read once per batch.
   */
  experts(
    x: Float32Array, tokens: number, indices: Int32Array, weights: Float32Array, k: number,
    moe: MoeWeights, swigluLimit: number, out: Float32Array,
  ): void;
}
