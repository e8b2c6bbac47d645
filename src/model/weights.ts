// The immutable model: configuration plus weights as loaded. Field names follow the `original/`
// checkpoint's tensor names (block.{n}.attn.qkv.weight -> blocks[n].attn.qkv.weight). Large
// matrices stay in their stored form (BF16 words, packed MXFP4); small vectors (norms, biases,
// sinks) are widened to f32 at load. Buffers come from the backend's TensorStore so a fast backend
// can compute on them in place.
import type { ModelConfig } from './config.ts';

/** A row-major BF16 matrix [rows, cols]; each element is the upper 16 bits of an f32. */
export interface Bf16Matrix {
  rows: number;
  cols: number;
  data: Uint16Array;
}

/**
 * `count` MXFP4 matrices [rows, cols] (one per expert). Each row is split into groups of 32
 * elements sharing one E8M0 scale: blocks [count, rows, cols/32, 16] (element 2j in the low nibble
 * of byte j), scales [count, rows, cols/32] (exponent biased by 127).
 */
export interface Mxfp4Matrices {
  count: number;
  rows: number;
  cols: number;
  blocks: Uint8Array;
  scales: Uint8Array;
}

/**
 * The embedding table [rows, cols]: a forward pass reads only the rows of its tokens, so a loader
 * may leave the table on disk (for gpt-oss-20b that keeps 1.16 GB of BF16 out of memory).
 */
export interface EmbeddingTable {
  rows: number;
  cols: number;
  /** Widens row `id` to f32 into `out` (length `cols`). */
  readRow(id: number, out: Float32Array): void;
  /** Releases what the table holds open (a file descriptor). */
  close(): void;
}

export interface AttentionWeights {
  norm: { scale: Float32Array }; // [hidden]
  qkv: { weight: Bf16Matrix; bias: Float32Array }; // [headDim*(Q+2K), hidden], [headDim*(Q+2K)]
  sinks: Float32Array; // [Q]
  out: { weight: Bf16Matrix; bias: Float32Array }; // [hidden, headDim*Q], [hidden]
}

export interface MoeWeights {
  norm: { scale: Float32Array }; // [hidden]
  gate: { weight: Bf16Matrix; bias: Float32Array }; // [E, hidden], [E]
  mlp1Weight: Mxfp4Matrices; // E x [2I, hidden], rows interleaved glu/linear
  mlp1Bias: Float32Array; // [E, 2I]
  mlp2Weight: Mxfp4Matrices; // E x [hidden, I]
  mlp2Bias: Float32Array; // [E, hidden]
}

export interface BlockWeights {
  attn: AttentionWeights;
  mlp: MoeWeights;
}

export interface ModelWeights {
  config: ModelConfig;
  embedding: { weight: EmbeddingTable }; // [vocab, hidden]
  blocks: BlockWeights[];
  norm: { scale: Float32Array }; // [hidden]
  unembedding: { weight: Bf16Matrix }; // [vocab, hidden]
}
