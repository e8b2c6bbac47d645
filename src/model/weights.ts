// The immutable model: configuration plus weights as loaded. Field names follow the `original/`
// checkpoint's tensor names (block.{n}.attn.qkv.weight -> blocks[n].attn.qkv.weight). Large
// matrices stay in their stored form (BF16 words, packed MXFP4); small vectors (norms, biases,
// sinks) are widened to f32 at load. Buffers come from the backend's TensorStore so a fast backend
// can compute on them in place.
import type { ExpertWeights } from '../kernels/backend.ts';
import type { Bf16Matrix, Int8Matrix } from '../tensor/index.ts';
import type { ModelConfig } from './config.ts';

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

/** The router and norm, plus the experts as the backend's `experts` op reads them (mlp1/mlp2 weights and biases). */
export interface MoeWeights extends ExpertWeights {
  norm: { scale: Float32Array }; // [hidden]
  gate: { weight: Bf16Matrix; bias: Float32Array }; // [E, hidden], [E]
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
  /** [vocab, hidden]; `int8`: a copy the forward pass reads instead (`--unembedding int8`). */
  unembedding: { weight: Bf16Matrix; int8?: Int8Matrix };
}
