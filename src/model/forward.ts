// The gpt-oss forward pass over a Backend, reading like the model specification: embedding,
// then per block attention with sinks (banded on even layers, dense on odd) and a mixture of
// experts, then the final norm and unembedding. New tokens go through every weight matrix as one
// batch [T, hidden] (a prefill chunk, or the new tokens of several sequences stacked), attending
// to themselves and to their own sequence's KV cache. Which rows belong to which sequence is
// batch.ts's business; the activations live in a workspace (workspace.ts) reused across calls.
// The glue between ops (adds, row copies, routing) goes through `glue`: the backend's own when it
// keeps activations on a device (so they stay there for the whole step), else host code.
import { UserError } from '../errors.ts';
import type { ActivationArray, Backend, DeviceResident, KvCacheType, RopeTable } from '../kernels/backend.ts';
import { advanceCaches, layOutBatch, logitRows, scatterLogits, type Batch, type Pick, type Segment, type TopLogits } from './batch.ts';
import { DRAW_SLICE, landingSlice, walkSlice } from './draw.ts';
export type { TopLogits } from './batch.ts';
import { isSlidingLayer, type ModelConfig } from './config.ts';
import { hostGlue } from './glue.ts';
import { KvCache } from './kvcache.ts';
import { buildRopeTable } from './rope.ts';
import type { ModelWeights } from './weights.ts';
import { MAX_TOP_K, allocateWorkspace, logitsBuffer, releaseWorkspace, type Workspace } from './workspace.ts';

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

/** A loaded model bound to a backend: runs chunks of tokens against a sequence's KV cache. */
export class Transformer {
  readonly config: ModelConfig;
  readonly rope: RopeTable;
  private readonly glue: DeviceResident;
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
    /** Element type of the KV caches this model creates. */
    readonly kvCacheType: KvCacheType = 'f32',
  ) {
    this.config = weights.config;
    this.rope = buildRopeTable(this.config, contextLength);
    this.glue = backend.resident ?? hostGlue;
  }

  newCache(label = 'kv'): KvCache {
    return new KvCache(this.config, this.backend.store, this.contextLength, { label, rewind: this.kvRewind, type: this.kvCacheType, device: this.backend.resident });
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
   * `forward` for greedy decoding: the id of the last token's largest logit (the lowest id on
   * ties), found where the logits are, so a device backend reads back 4 bytes, not the vocabulary's.
   */
  async forwardArgmax(cache: KvCache, tokens: readonly number[]): Promise<number> {
    return (await this.forwardPicking(cache, tokens, 'argmax')) as number;
  }

  /** A pick's k, checked. */
  private checkPick(pick: Pick | undefined): void {
    if (typeof pick === 'number' && (!Number.isInteger(pick) || pick < 1 || pick > MAX_TOP_K)) throw new Error(`top-k pick: k must be an integer in [1, ${MAX_TOP_K}], got ${pick}`);
    if (typeof pick === 'object' && !(pick.u >= 0 && pick.u < 1 && pick.temperature > 0)) throw new Error(`draw pick: u must be in [0, 1) and the temperature > 0, got ${pick.u}, ${pick.temperature}`);
  }

  /** `forward` for plain softmax sampling: the token drawn for `u` at `temperature` (model/draw.ts). */
  async forwardDraw(cache: KvCache, tokens: readonly number[], draw: { u: number; temperature: number }): Promise<number> {
    return (await this.forwardPicking(cache, tokens, draw)) as number;
  }

  /**
   * `forward` for top-k sampling: the last token's k largest logits (k <= MAX_TOP_K), most likely
   * first (the lower id on ties), found where the logits are, so a device backend reads back k
   * (id, logit) pairs; ids past the finite logits are -1.
   */
  async forwardTopK(cache: KvCache, tokens: readonly number[], k: number): Promise<TopLogits> {
    return (await this.forwardPicking(cache, tokens, k)) as TopLogits;
  }

  private async forwardPicking(cache: KvCache, tokens: readonly number[], pick: Pick): Promise<number | TopLogits> {
    this.check(cache, tokens);
    this.checkPick(pick);
    const scratch = new Float32Array(0);
    let last: Segment | undefined;
    for (let start = 0; start < tokens.length; start += this.maxChunk) {
      const chunk = tokens.slice(start, start + this.maxChunk);
      const isLast = start + chunk.length === tokens.length;
      last = isLast ? { cache, tokens: chunk, want: 'last', logits: scratch, pick } : { cache, tokens: chunk, want: 'none', logits: scratch };
      await this.run([last], undefined);
    }
    return last!.picked!;
  }

  /**
   * Runs several sequences' new tokens together: their rows share every pass through the weights
   * (projections, router, experts, unembedding); only attention is per sequence, against each
   * one's own cache. Returns each sequence's last logits. Segments are packed into batches of at
   * most `maxChunk` tokens; a longer one runs alone in chunks.
   */
  async forwardBatch(items: readonly { cache: KvCache; tokens: readonly number[] }[]): Promise<Float32Array[]> {
    return (await this.forwardBatchPicking(items)) as Float32Array[];
  }

  /**
   * `forwardBatch` where an item may ask for its last row's argmax or top k (`pick`) in place of
   * its logits: each result is the logits, the argmax, or the top k.
   */
  async forwardBatchPicking(items: readonly { cache: KvCache; tokens: readonly number[]; pick?: Pick }[]): Promise<(Float32Array | number | TopLogits)[]> {
    const { vocabSize } = this.config;
    for (const item of items) {
      this.check(item.cache, item.tokens);
      this.checkPick(item.pick);
    }
    if (new Set(items.map((i) => i.cache)).size !== items.length) throw new Error('forwardBatch: a cache appears twice');
    const noLogits = new Float32Array(0);
    const results: (Float32Array | number | TopLogits)[] = items.map((item) => item.pick === undefined ? new Float32Array(vocabSize) : noLogits);
    const segments = new Map<number, Segment>();
    let pending: Segment[] = [];
    let pendingTokens = 0;
    const flush = async (): Promise<void> => {
      if (pending.length > 0) await this.run(pending, undefined);
      pending = [];
      pendingTokens = 0;
    };
    for (const [i, item] of items.entries()) {
      if (item.tokens.length > this.maxChunk) {
        results[i] = item.pick === undefined ? await this.forward(item.cache, item.tokens) : await this.forwardPicking(item.cache, item.tokens, item.pick);
        continue;
      }
      if (pendingTokens + item.tokens.length > this.maxChunk) await flush();
      const segment: Segment = { cache: item.cache, tokens: item.tokens, want: 'last', logits: results[i] as Float32Array };
      if (item.pick !== undefined) segment.pick = item.pick;
      segments.set(i, segment);
      pending.push(segment);
      pendingTokens += item.tokens.length;
    }
    await flush();
    for (const [i, segment] of segments) if (segment.pick !== undefined) results[i] = segment.picked!;
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

  /**
   * One pass through the model for the segments' tokens, stacked as rows [T, hidden]; the segments
   * that ask for a pick get it in `picked` instead of their logits.
   */
  private async run(segments: readonly Segment[], trace: TraceHook | undefined): Promise<void> {
    const H = this.config.hiddenSize;
    const ws = this.workspaceFor(segments.reduce((n, s) => n + s.tokens.length, 0));
    const batch = layOutBatch(segments, ws.positions);
    const T = batch.rows;
    this.glue.written(batch.positions);
    const x = ws.x.subarray(0, T * H); // the residual stream
    this.embed(batch, x);
    this.glue.written(x);
    const traced = trace === undefined ? undefined : this.hostTrace(trace);
    await traced?.('embedding', x, T, H);
    for (let n = 0; n < this.config.numLayers; n++) {
      await this.attentionBlock(n, batch, x, ws);
      await traced?.(`block.${n}.attn`, x, T, H);
      await this.moeBlock(n, T, x, ws, traced);
      await traced?.(`block.${n}.mlp`, x, T, H);
    }
    advanceCaches(batch);
    await this.unembed(batch, x, ws, traced);
  }

  /** `trace`, handed host copies that are current. */
  private hostTrace(trace: TraceHook): HostTrace {
    return async (name, data, rows, cols) => {
      await this.glue.toHost(data);
      trace(name, data, rows, cols);
    };
  }

  /** x = the embedding rows of the batch's tokens, widened from BF16. */
  private embed(batch: Batch, x: Float32Array): void {
    const H = this.config.hiddenSize;
    batch.segments.forEach((s, si) => {
      s.tokens.forEach((id, i) => {
        const r = batch.firstRow[si]! + i;
        this.weights.embedding.weight.readRow(id, x.subarray(r * H, (r + 1) * H));
      });
    });
  }

  /**
   * x += attention(rmsnorm(x)) for block n: fused qkv projection, RoPE on q and k, each sequence's
   * keys and values appended to its own cache, attention with sinks (banded on sliding layers),
   * out projection.
   */
  private async attentionBlock(n: number, batch: Batch, x: Float32Array, ws: Workspace): Promise<void> {
    const c = this.config, b = this.backend, attn = this.weights.blocks[n]!.attn;
    const T = batch.rows, H = c.hiddenSize;
    const qWidth = c.numAttentionHeads * c.headDim, kvWidth = c.numKeyValueHeads * c.headDim;
    const normed = ws.normed.subarray(0, T * H);
    await b.rmsnorm(x, T, attn.norm.scale, RMSNORM_EPS, normed);
    const qkvWidth = qWidth + 2 * kvWidth;
    const qkv = ws.qkv.subarray(0, T * qkvWidth);
    await b.linear(normed, T, attn.qkv.weight, attn.qkv.bias, qkv);
    const q = ws.q.subarray(0, T * qWidth), k = ws.k.subarray(0, T * kvWidth), v = ws.v.subarray(0, T * kvWidth);
    // Fused qkv rows [T, Q*D + 2*K*D] split into q [T, Q*D], k [T, K*D], v [T, K*D].
    this.glue.copyRows(qkv, qkvWidth, q, qWidth, qWidth, T);
    this.glue.copyRows(qkv.subarray(qWidth), qkvWidth, k, kvWidth, kvWidth, T);
    this.glue.copyRows(qkv.subarray(qWidth + kvWidth), qkvWidth, v, kvWidth, kvWidth, T);
    await b.rope(q, T, c.numAttentionHeads, c.headDim, batch.positions, this.rope);
    await b.rope(k, T, c.numKeyValueHeads, c.headDim, batch.positions, this.rope);
    const out = ws.attn.subarray(0, T * qWidth);
    const shape = { heads: c.numAttentionHeads, kvHeads: c.numKeyValueHeads, headDim: c.headDim, window: isSlidingLayer(n) ? c.slidingWindow : 0 };
    for (const [si, s] of batch.segments.entries()) {
      const r0 = batch.firstRow[si]!, r1 = r0 + s.tokens.length;
      const cache = s.cache.layers[n]!;
      cache.reserve(s.cache.length, s.tokens.length);
      cache.write(s.cache.length, s.tokens.length, k.subarray(r0 * kvWidth, r1 * kvWidth), v.subarray(r0 * kvWidth, r1 * kvWidth), batch.positions.subarray(r0, r1));
      await b.attention(
        q.subarray(r0 * qWidth, r1 * qWidth), s.tokens.length, batch.positions.subarray(r0, r1),
        cache.keys, cache.values, cache.used, cache.positions, attn.sinks, shape, out.subarray(r0 * qWidth, r1 * qWidth),
      );
    }
    const projected = ws.projected.subarray(0, T * H);
    await b.linear(out, T, attn.out.weight, attn.out.bias, projected);
    this.glue.add(x, projected, T * H);
  }

  /** x += moe(rmsnorm(x)) for block n: router, top-k with softmax over the chosen k, experts. */
  private async moeBlock(n: number, T: number, x: Float32Array, ws: Workspace, trace: HostTrace | undefined): Promise<void> {
    const c = this.config, b = this.backend, mlp = this.weights.blocks[n]!.mlp;
    const H = c.hiddenSize, E = c.numExperts, k = c.expertsPerToken;
    const normed = ws.normed.subarray(0, T * H);
    await b.rmsnorm(x, T, mlp.norm.scale, RMSNORM_EPS, normed);
    const gate = ws.gate.subarray(0, T * E);
    await b.linear(normed, T, mlp.gate.weight, mlp.gate.bias, gate);
    const indices = ws.expertIndices.subarray(0, T * k), weights = ws.expertWeights.subarray(0, T * k);
    this.glue.route(gate, T, E, k, indices, weights);
    if (trace !== undefined) {
      await trace(`block.${n}.gate_logits`, gate, T, E);
      await trace(`block.${n}.expert_indices`, indices, T, k);
      await trace(`block.${n}.expert_weights`, weights, T, k);
    }
    const moe = ws.moe.subarray(0, T * H);
    await b.experts(normed, T, indices, weights, k, mlp, c.swigluLimit, moe);
    this.glue.add(x, moe, T * H);
  }

  /**
   * Final norm and unembedding, only for the rows whose logits are wanted (every row when traced),
   * gathered first so the vocabulary-sized matrix is read once for all of them.
   */
  private async unembed(batch: Batch, x: Float32Array, ws: Workspace, trace: HostTrace | undefined): Promise<void> {
    const b = this.backend, H = this.config.hiddenSize, V = this.config.vocabSize;
    const traced = trace !== undefined;
    const wanted = logitRows(batch, traced);
    if (wanted.length === 0) return;
    const rows = wanted.length;
    const gathered = ws.projected.subarray(0, rows * H);
    // Runs of consecutive rows are copied at once (all of them when every row is wanted).
    for (let i = 0; i < rows;) {
      let n = 1;
      while (i + n < rows && wanted[i + n] === wanted[i]! + n) n++;
      this.glue.copyRows(x.subarray(wanted[i]! * H), H, gathered.subarray(i * H), H, H * n, 1);
      i += n;
    }
    const normed = ws.normed.subarray(0, rows * H);
    await b.rmsnorm(gathered, rows, this.weights.norm.scale, RMSNORM_EPS, normed);
    await trace?.('norm', normed, rows, H);
    const out = logitsBuffer(ws, b.store, rows, V).subarray(0, rows * V);
    await b.linear(normed, rows, this.weights.unembedding.int8 ?? this.weights.unembedding.weight, null, out);
    // Picks where the logits are: argmaxes into `picked` by row, top k (ids, then values' bits)
    // packed into `top`, draws' slice sums into `drawSums`; each kind read back at once, then the
    // one slice of logits each draw lands in, and all the logits only when a segment wants them.
    let i = 0, topWords = 0, argmaxes = 0, sumWords = 0, logitRowsWanted = traced;
    const picks: (() => number | TopLogits | Promise<number>)[] = [];
    const slices = Math.ceil(V / DRAW_SLICE);
    for (const s of batch.segments) {
      const n = traced || s.want === 'all' ? s.tokens.length : s.want === 'last' ? 1 : 0;
      if (s.want === 'last' && s.pick !== undefined) {
        const pick = s.pick;
        const at = i + n - 1;
        const row = out.subarray(at * V, (at + 1) * V);
        if (pick === 'argmax' || typeof pick === 'object') {
          this.glue.argmax(row, 1, V, ws.picked.subarray(at, at + 1));
          argmaxes = at + 1;
        }
        if (pick === 'argmax') picks.push(() => (s.picked = ws.picked[at]!));
        else if (typeof pick === 'object') {
          const sums = ws.drawSums.subarray(sumWords, sumWords + slices + 1), invT = 1 / pick.temperature;
          this.glue.sliceWeights(row, V, DRAW_SLICE, invT, ws.picked.subarray(at, at + 1), sums);
          sumWords += slices + 1;
          picks.push(async () => {
            const { slice, before, target } = landingSlice(sums.subarray(0, slices), pick.u);
            const first = slice * DRAW_SLICE, logits = row.subarray(first, Math.min(V, first + DRAW_SLICE));
            await this.glue.toHost(logits);
            const token = walkSlice(logits, first, sums[slices]!, invT, before, target);
            return (s.picked = token < 0 ? ws.picked[at]! : token);
          });
        } else {
          const k = pick, from = topWords;
          const ids = ws.top.subarray(from, from + k), values = new Float32Array(ws.top.buffer, ws.top.byteOffset + (from + k) * 4, k);
          this.glue.topK(row, V, k, ids, values);
          topWords += 2 * k;
          picks.push(() => (s.picked = { ids: ids.slice(), values: values.slice() }));
        }
      } else if (s.want !== 'none') logitRowsWanted = true;
      i += n;
    }
    if (argmaxes > 0) await this.glue.toHost(ws.picked.subarray(0, argmaxes));
    if (topWords > 0) await this.glue.toHost(ws.top.subarray(0, topWords));
    if (sumWords > 0) await this.glue.toHost(ws.drawSums.subarray(0, sumWords));
    for (const take of picks) await take();
    if (logitRowsWanted) {
      await this.glue.toHost(out);
      scatterLogits(batch, traced, out, V);
    }
  }

  private workspaceFor(tokens: number): Workspace {
    if (this.workspace !== null && this.workspace.tokens >= tokens) return this.workspace;
    this.releaseWorkspace();
    this.workspace = allocateWorkspace(this.config, this.backend.store, Math.min(Math.max(tokens, 16), this.maxChunk));
    return this.workspace;
  }

  private releaseWorkspace(): void {
    if (this.workspace === null) return;
    releaseWorkspace(this.workspace, this.backend.store);
    this.workspace = null;
  }

  /** Frees the workspace (the weights belong to whoever loaded them). */
  dispose(): void {
    this.releaseWorkspace();
    this.weights.embedding.weight.close();
  }
}

/** A trace hook that first makes the traced array current on the host. */
type HostTrace = (name: string, data: ActivationArray, rows: number, cols: number) => Promise<void>;
