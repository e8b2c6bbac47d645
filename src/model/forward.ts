// The gpt-oss forward pass over a Backend, reading like the model specification: embedding,
// then per block attention with sinks (banded on even layers, dense on odd) and a mixture of
// experts, then the final norm and unembedding. New tokens go through every weight matrix as one
// batch [T, hidden] (a prefill chunk, or the new tokens of several sequences stacked), attending
// to themselves and to their own sequence's KV cache. Activations live in a workspace allocated
// from the backend's store and reused across calls.
import { UserError } from '../errors.ts';
import type { Backend, RopeTable } from '../kernels/backend.ts';
import { isSlidingLayer, type ModelConfig } from './config.ts';
import { KvCache } from './kvcache.ts';
import { buildRopeTable } from './rope.ts';
import type { ModelWeights } from './weights.ts';

export const RMSNORM_EPS = 1e-5;

/**
 * Receives named activations during a forward pass (for tests and debugging): `embedding`,
 * `block.{n}.attn` / `block.{n}.mlp` (the residual stream after each sub-block), `norm` (the final
 * norm's output), `block.{n}.gate_logits`, `block.{n}.expert_indices`, `block.{n}.expert_weights`.
 * `data` is [rows, cols] for the tokens of the current chunk and is only valid during the call.
 */
export type TraceHook = (name: string, data: Float32Array | Int32Array, rows: number, cols: number) => void;

export interface ForwardOptions {
  /** Return logits for every new token ([T, vocab]) instead of only the last one. */
  allLogits?: boolean;
  trace?: TraceHook;
}

/** Reusable activation buffers for chunks of up to `tokens` tokens. */
interface Workspace {
  tokens: number;
  x: Float32Array;
  normed: Float32Array;
  qkv: Float32Array;
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  attn: Float32Array;
  projected: Float32Array;
  gate: Float32Array;
  expertIndices: Int32Array;
  expertWeights: Float32Array;
  moe: Float32Array;
  positions: Int32Array;
  /** Unembedding output rows, allocated when first needed (vocab-sized rows are large). */
  logits: Float32Array | null;
  logitsBytes: Uint8Array | null;
  buffers: Uint8Array[];
}

/** A sequence's part of a batch: its new tokens and which logits it wants. */
interface Segment {
  cache: KvCache;
  tokens: readonly number[];
  want: 'all' | 'last' | 'none';
  /** Receives [T, vocab] ('all') or [vocab] ('last'). */
  logits: Float32Array;
}

/** A loaded model bound to a backend: runs chunks of tokens against a sequence's KV cache. */
export class Transformer {
  readonly config: ModelConfig;
  readonly rope: RopeTable;
  private workspace: Workspace | null = null;

  constructor(
    readonly weights: ModelWeights,
    readonly backend: Backend,
    /** Longest sequence served (RoPE table rows, dense cache limit). */
    readonly contextLength: number,
    /** Longest chunk pushed through the weights at once; longer inputs are split. */
    readonly maxChunk = 512,
    /** Spare positions banded layers keep so truncations by up to this many tokens need no recompute. */
    readonly kvRewind = 128,
  ) {
    this.config = weights.config;
    this.rope = buildRopeTable(this.config, contextLength);
  }

  newCache(label = 'kv'): KvCache {
    return new KvCache(this.config, this.backend.store, this.contextLength, { label, rewind: this.kvRewind });
  }

  /**
   * Runs `tokens` after the `cache.length` positions already in `cache`, appends their keys and
   * values, and returns the logits of the last token ([vocab]) or of every token ([T, vocab]).
   */
  async forward(cache: KvCache, tokens: readonly number[], options: ForwardOptions = {}): Promise<Float32Array> {
    const { vocabSize } = this.config;
    this.check(cache, tokens);
    const all = options.allLogits === true;
    const logits = new Float32Array((all ? tokens.length : 1) * vocabSize);
    for (let start = 0; start < tokens.length; start += this.maxChunk) {
      const chunk = tokens.slice(start, start + this.maxChunk);
      const isLast = start + chunk.length === tokens.length;
      const segment: Segment = all
        ? { cache, tokens: chunk, want: 'all', logits: logits.subarray(start * vocabSize, (start + chunk.length) * vocabSize) }
        : { cache, tokens: chunk, want: isLast ? 'last' : 'none', logits };
      await this.run([segment], options.trace);
    }
    return logits;
  }

  /**
   * Runs several sequences' new tokens together: their rows share every pass through the weights
   * (projections, router, experts, unembedding); only attention is per sequence, against each
   * one's own cache. Returns each sequence's last logits. Segments are packed into batches of at
   * most `maxChunk` tokens; a longer one runs alone in chunks.
   */
  async forwardBatch(items: readonly { cache: KvCache; tokens: readonly number[] }[]): Promise<Float32Array[]> {
    const { vocabSize } = this.config;
    for (const item of items) this.check(item.cache, item.tokens);
    if (new Set(items.map((i) => i.cache)).size !== items.length) throw new Error('forwardBatch: a cache appears twice');
    const results: Float32Array[] = items.map(() => new Float32Array(vocabSize));
    let pending: Segment[] = [];
    let pendingTokens = 0;
    const flush = async (): Promise<void> => {
      if (pending.length > 0) await this.run(pending, undefined);
      pending = [];
      pendingTokens = 0;
    };
    for (const [i, item] of items.entries()) {
      if (item.tokens.length > this.maxChunk) {
        results[i] = await this.forward(item.cache, item.tokens);
        continue;
      }
      if (pendingTokens + item.tokens.length > this.maxChunk) await flush();
      pending.push({ cache: item.cache, tokens: item.tokens, want: 'last', logits: results[i]! });
      pendingTokens += item.tokens.length;
    }
    await flush();
    return results;
  }

  private check(cache: KvCache, tokens: readonly number[]): void {
    const { vocabSize } = this.config;
    if (tokens.length === 0) throw new Error('forward: no tokens');
    for (const [i, id] of tokens.entries()) {
      if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
        throw new UserError('input', `token id ${id} at index ${i} is outside the vocabulary (0..${vocabSize - 1})`);
      }
    }
    if (cache.length + tokens.length > this.contextLength) {
      throw new UserError('context', `sequence of ${cache.length + tokens.length} tokens exceeds the context length ${this.contextLength}`);
    }
  }

  /** One pass through the model for the segments' tokens, stacked as rows [T, hidden]. */
  private async run(segments: readonly Segment[], trace: TraceHook | undefined): Promise<void> {
    const c = this.config;
    const b = this.backend;
    const H = c.hiddenSize;
    const kvWidth = c.numKeyValueHeads * c.headDim;
    const qWidth = c.numAttentionHeads * c.headDim;
    const k = c.expertsPerToken;
    const T = segments.reduce((n, s) => n + s.tokens.length, 0);
    const ws = this.workspaceFor(T);
    // Row offset and first position of each segment.
    const rowOf: number[] = [];
    let row = 0;
    for (const s of segments) {
      rowOf.push(row);
      for (let i = 0; i < s.tokens.length; i++) ws.positions[row + i] = s.cache.length + i;
      row += s.tokens.length;
    }
    const positions = ws.positions.subarray(0, T);
    const x = ws.x.subarray(0, T * H);
    const normed = ws.normed.subarray(0, T * H);

    // Embedding: the rows of the tokens, widened from BF16.
    segments.forEach((s, si) => {
      s.tokens.forEach((id, i) => {
        const r = rowOf[si]! + i;
        this.weights.embedding.weight.readRow(id, x.subarray(r * H, (r + 1) * H));
      });
    });
    trace?.('embedding', x, T, H);

    for (let n = 0; n < c.numLayers; n++) {
      const block = this.weights.blocks[n]!;

      // Attention: norm, fused qkv projection, split, RoPE, cache, attention with sinks, out projection.
      await b.rmsnorm(x, T, block.attn.norm.scale, RMSNORM_EPS, normed);
      const qkv = ws.qkv.subarray(0, T * (qWidth + 2 * kvWidth));
      await b.linear(normed, T, block.attn.qkv.weight, block.attn.qkv.bias, qkv);
      const q = ws.q.subarray(0, T * qWidth);
      const kk = ws.k.subarray(0, T * kvWidth);
      const v = ws.v.subarray(0, T * kvWidth);
      const width = qWidth + 2 * kvWidth;
      for (let t = 0; t < T; t++) {
        q.set(qkv.subarray(t * width, t * width + qWidth), t * qWidth);
        kk.set(qkv.subarray(t * width + qWidth, t * width + qWidth + kvWidth), t * kvWidth);
        v.set(qkv.subarray(t * width + qWidth + kvWidth, (t + 1) * width), t * kvWidth);
      }
      await b.rope(q, T, c.numAttentionHeads, c.headDim, positions, this.rope);
      await b.rope(kk, T, c.numKeyValueHeads, c.headDim, positions, this.rope);
      const attn = ws.attn.subarray(0, T * qWidth);
      const shape = { heads: c.numAttentionHeads, kvHeads: c.numKeyValueHeads, headDim: c.headDim, window: isSlidingLayer(n) ? c.slidingWindow : 0 };
      for (const [si, s] of segments.entries()) {
        const r0 = rowOf[si]!;
        const r1 = r0 + s.tokens.length;
        const layerCache = s.cache.layers[n]!;
        layerCache.reserve(s.cache.length, s.tokens.length);
        layerCache.write(s.cache.length, s.tokens.length, kk.subarray(r0 * kvWidth, r1 * kvWidth), v.subarray(r0 * kvWidth, r1 * kvWidth));
        await b.attention(
          q.subarray(r0 * qWidth, r1 * qWidth), s.tokens.length, positions.subarray(r0, r1),
          layerCache.keys, layerCache.values, layerCache.used, layerCache.positions, block.attn.sinks,
          shape, attn.subarray(r0 * qWidth, r1 * qWidth),
        );
      }
      const projected = ws.projected.subarray(0, T * H);
      await b.linear(attn, T, block.attn.out.weight, block.attn.out.bias, projected);
      for (let i = 0; i < T * H; i++) x[i] = x[i]! + projected[i]!;
      trace?.(`block.${n}.attn`, x, T, H);

      // Mixture of experts: norm, router, top-k with softmax over the chosen k, experts.
      await b.rmsnorm(x, T, block.mlp.norm.scale, RMSNORM_EPS, normed);
      const gate = ws.gate.subarray(0, T * c.numExperts);
      await b.linear(normed, T, block.mlp.gate.weight, block.mlp.gate.bias, gate);
      const indices = ws.expertIndices.subarray(0, T * k);
      const weights = ws.expertWeights.subarray(0, T * k);
      for (let t = 0; t < T; t++) route(gate.subarray(t * c.numExperts, (t + 1) * c.numExperts), k, indices.subarray(t * k, (t + 1) * k), weights.subarray(t * k, (t + 1) * k));
      if (trace !== undefined) {
        trace(`block.${n}.gate_logits`, gate, T, c.numExperts);
        trace(`block.${n}.expert_indices`, indices, T, k);
        trace(`block.${n}.expert_weights`, weights, T, k);
      }
      const moe = ws.moe.subarray(0, T * H);
      await b.experts(normed, T, indices, weights, k, block.mlp, c.swigluLimit, moe);
      for (let i = 0; i < T * H; i++) x[i] = x[i]! + moe[i]!;
      trace?.(`block.${n}.mlp`, x, T, H);
    }
    for (const s of segments) s.cache.length += s.tokens.length;

    // Final norm and unembedding, only for the rows whose logits are wanted (gathered in `normed`).
    const wanted: number[] = [];
    segments.forEach((s, si) => {
      const r0 = rowOf[si]!;
      if (s.want === 'all' || trace !== undefined) for (let i = 0; i < s.tokens.length; i++) wanted.push(r0 + i);
      else if (s.want === 'last') wanted.push(r0 + s.tokens.length - 1);
    });
    if (wanted.length === 0) return;
    const rows = wanted.length;
    const gathered = ws.projected.subarray(0, rows * H);
    wanted.forEach((r, i) => gathered.set(x.subarray(r * H, (r + 1) * H), i * H));
    await b.rmsnorm(gathered, rows, this.weights.norm.scale, RMSNORM_EPS, normed.subarray(0, rows * H));
    trace?.('norm', normed, rows, H);
    const V = c.vocabSize;
    let logitRows = ws.logits;
    if (logitRows === null || logitRows.length < rows * V) logitRows = this.logitsBuffer(rows);
    const out = logitRows.subarray(0, rows * V);
    await b.linear(normed.subarray(0, rows * H), rows, this.weights.unembedding.weight, null, out);
    let i = 0;
    for (const s of segments) {
      if (s.want === 'all') {
        s.logits.set(out.subarray(i * V, (i + s.tokens.length) * V));
        i += s.tokens.length;
      } else if (trace !== undefined) {
        if (s.want === 'last') s.logits.set(out.subarray((i + s.tokens.length - 1) * V, (i + s.tokens.length) * V));
        i += s.tokens.length;
      } else if (s.want === 'last') {
        s.logits.set(out.subarray(i * V, (i + 1) * V));
        i += 1;
      }
    }
  }

  /** Logit rows live in the store too (a fast backend writes them in place); grown on demand. */
  private logitsBuffer(rows: number): Float32Array {
    const ws = this.workspace!;
    if (ws.logitsBytes !== null) this.backend.store.free(ws.logitsBytes);
    const bytes = this.backend.store.allocate(rows * this.config.vocabSize * 4, 'workspace.logits');
    ws.logitsBytes = bytes;
    ws.logits = new Float32Array(bytes.buffer, bytes.byteOffset, rows * this.config.vocabSize);
    return ws.logits;
  }

  private workspaceFor(tokens: number): Workspace {
    if (this.workspace !== null && this.workspace.tokens >= tokens) return this.workspace;
    this.releaseWorkspace();
    const c = this.config;
    const n = Math.min(Math.max(tokens, 16), this.maxChunk);
    const store = this.backend.store;
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
    const qWidth = c.numAttentionHeads * c.headDim;
    const kvWidth = c.numKeyValueHeads * c.headDim;
    this.workspace = {
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
      logits: null,
      logitsBytes: null,
      buffers,
    };
    return this.workspace;
  }

  private releaseWorkspace(): void {
    if (this.workspace === null) return;
    for (const buf of this.workspace.buffers) this.backend.store.free(buf);
    if (this.workspace.logitsBytes !== null) this.backend.store.free(this.workspace.logitsBytes);
    this.workspace = null;
  }

  /** Frees the workspace (the weights belong to whoever loaded them). */
  dispose(): void {
    this.releaseWorkspace();
    this.weights.embedding.weight.close();
  }
}

/**
 * Top-k routing for one token: the k largest gate logits in decreasing order (lower expert index
 * first on exact ties), and their softmax over those k only.
 */
export function route(gate: Float32Array, k: number, indices: Int32Array, weights: Float32Array): void {
  const order = Array.from(gate.keys()).sort((a, b) => gate[b]! - gate[a]! || a - b);
  const max = gate[order[0]!]!;
  let sum = 0;
  for (let j = 0; j < k; j++) {
    indices[j] = order[j]!;
    sum += Math.exp(gate[order[j]!]! - max);
  }
  for (let j = 0; j < k; j++) weights[j] = Math.exp(gate[indices[j]!]! - max) / sum;
}
