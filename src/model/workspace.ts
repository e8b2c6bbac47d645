// The forward pass's activation buffers, allocated once from the backend's store (so a fast
// backend computes on them in place) and reused across calls; grown only when a longer chunk
// arrives. Shapes are per row: a chunk of T tokens uses the first T rows of each.
import type { TensorStore } from '../tensor/index.ts';
import type { ModelConfig } from './config.ts';
import { DRAW_SLICE } from './draw.ts';

/** The most top-k candidates one forward pass hands back in place of the logits (forwardTopK). */
export const MAX_TOP_K = 256;

/** Reusable activation buffers for chunks of up to `tokens` tokens. */
export interface Workspace {
  tokens: number;
  x: Float32Array; // [T, hidden], the residual stream
  normed: Float32Array; // [T, hidden]
  qkv: Float32Array; // [T, headDim*(Q+2K)]
  q: Float32Array; // [T, Q*headDim]
  k: Float32Array; // [T, K*headDim]
  v: Float32Array; // [T, K*headDim]
  attn: Float32Array; // [T, Q*headDim]
  projected: Float32Array; // [T, hidden]
  gate: Float32Array; // [T, E]
  expertIndices: Int32Array; // [T, k]
  expertWeights: Float32Array; // [T, k]
  moe: Float32Array; // [T, hidden]
  positions: Int32Array; // [T]
  picked: Int32Array; // [T], the argmax of logit rows
  drawSums: Float32Array; // [T, ceil(vocab / DRAW_SLICE) + 1] at most: per drawing row its slice sums and largest logit
  top: Int32Array; // [T, 2 * MAX_TOP_K] at most: per picking row its top-k ids, then their logits' f32 bits (one read-back)
  /** Unembedding output rows [rows, vocab], allocated when first needed (vocab-sized rows are large). */
  logits: Float32Array | null;
  logitsBytes: Uint8Array | null;
  buffers: Uint8Array[];
}

/** Allocates a workspace for chunks of up to `tokens` tokens. */
export function allocateWorkspace(c: ModelConfig, store: TensorStore, tokens: number): Workspace {
  const buffers: Uint8Array[] = [];
  const f32 = (count: number, label: string): Float32Array => {
    const bytes = store.allocate(count * 4, `workspace.${label}`);
    buffers.push(bytes);
    return new Float32Array(bytes.buffer, bytes.byteOffset, count);
  };
  const i32 = (count: number, label: string): Int32Array => {
    const bytes = store.allocate(count * 4, `workspace.${label}`);
    buffers.push(bytes);
    return new Int32Array(bytes.buffer, bytes.byteOffset, count);
  };
  const n = tokens;
  const qWidth = c.numAttentionHeads * c.headDim;
  const kvWidth = c.numKeyValueHeads * c.headDim;
  return {
    tokens: n,
    x: f32(n * c.hiddenSize, 'x'),
    normed: f32(n * c.hiddenSize, 'normed'),
    qkv: f32(n * (qWidth + 2 * kvWidth), 'qkv'),
    q: f32(n * qWidth, 'q'),
    k: f32(n * kvWidth, 'k'),
    v: f32(n * kvWidth, 'v'),
    attn: f32(n * qWidth, 'attn'),
    projected: f32(n * c.hiddenSize, 'projected'),
    gate: f32(n * c.numExperts, 'gate'),
    expertIndices: i32(n * c.expertsPerToken, 'expert_indices'),
    expertWeights: f32(n * c.expertsPerToken, 'expert_weights'),
    moe: f32(n * c.hiddenSize, 'moe'),
    positions: i32(n, 'positions'),
    picked: i32(n, 'picked'),
    top: i32(n * 2 * MAX_TOP_K, 'top'),
    drawSums: f32(n * (Math.ceil(c.vocabSize / DRAW_SLICE) + 1), 'draw_sums'),
    logits: null,
    logitsBytes: null,
    buffers,
  };
}

/** Logit rows [rows, vocab] of at least `rows` rows, in the store (a fast backend writes them in place); grown on demand. */
export function logitsBuffer(ws: Workspace, store: TensorStore, rows: number, vocab: number): Float32Array {
  if (ws.logits !== null && ws.logits.length >= rows * vocab) return ws.logits;
  if (ws.logitsBytes !== null) store.free(ws.logitsBytes);
  const bytes = store.allocate(rows * vocab * 4, 'workspace.logits');
  ws.logitsBytes = bytes;
  ws.logits = new Float32Array(bytes.buffer, bytes.byteOffset, rows * vocab);
  return ws.logits;
}

/** Returns every buffer of the workspace to the store. */
export function releaseWorkspace(ws: Workspace, store: TensorStore): void {
  for (const buf of ws.buffers) store.free(buf);
  if (ws.logitsBytes !== null) store.free(ws.logitsBytes);
}
