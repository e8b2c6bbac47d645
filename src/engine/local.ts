// The in-process Engine: a checkpoint loaded into a compute backend, with one KV cache per
// sequence. step() validates the whole batch first (so a bad request changes nothing), then runs
// all the sequences' new tokens through the weights as one batch (attention per sequence). Steps
// are serialised: the activation workspace is shared, and a backend op must finish before the next.
import { UserError } from '../errors.ts';
import { EXPERT_ACTIVATIONS, UNEMBEDDING_TYPES, type UnembeddingType, type Backend, type BackendChoice, type BackendName, type BackendOptions, type ExpertActivations, type KvCacheType } from '../kernels/backend.ts';
import { createReferenceBackend } from '../kernels/reference.ts';
import { loadCheckpoint, readCheckpointConfig, type CheckpointLayout } from '../checkpoint/checkpoint.ts';
import { readGenerationDefaults } from '../checkpoint/generation.ts';
import { checkCheckpointFits } from '../checkpoint/memory.ts';
import { contextLength as modelContextLength, type ModelConfig } from '../model/config.ts';
import { DEMO_CONTEXT_LENGTH, isDemoModel } from '../checkpoint/synth.ts';
import { isEmbeddedNano } from '../checkpoint/nano.ts';
import { Transformer, type TraceHook } from '../model/forward.ts';
import type { KvCache } from '../model/kvcache.ts';
import type { Engine, EngineInfo, Picked, PickingRequest, Sequence, StepRequest, TopLogits } from './engine.ts';

export interface LoadEngineOptions {
  /** 'wasm' (WebAssembly SIMD + worker threads, the default), 'reference' (plain TypeScript, the readable oracle) or 'webgpu' (a GPU through WebGPU). */
  backend?: BackendChoice;
  /** Worker threads for the wasm backend. */
  threads?: number;
  /** The wasm backend keeps the event loop free during large ops (BackendOptions.offload; `gptoss serve` sets it). */
  offload?: boolean;
  /** Expert activations of the wasm backend: 'q8' (int8, default) or 'split' (exact as f32); see BackendOptions. */
  expertActivations?: ExpertActivations;
  /**
   * Element type of the KV caches: 'bf16' halves their memory (keys and values rounded to bf16 as
   * they are stored; logits stay within the golden cases' bf16 tolerance), 'f32' is exact. Default:
   * 'bf16' with the wasm backend's 'q8' experts, 'f32' with 'split' and with the reference backend.
   */
  kvCacheType?: KvCacheType;
  /** Serve at most this many tokens per sequence (default: defaultContextLength; maximum: the model's context length). */
  contextLength?: number;
  /** Longest chunk of tokens pushed through the weights at once (default 512). */
  prefillChunk?: number;
  /**
   * Spare positions the banded (sliding-window) layers keep per sequence so that truncate() by up
   * to this many tokens is served from the cache (default 128); deeper truncations recompute.
   */
  kvRewind?: number;
  /**
   * 'int8': the forward pass reads an int8 copy of the unembedding (per group of 32 weights, made at
   * load and kept beside the bf16 weights: +0.65 GB for gpt-oss), half the bytes per decoded
   * token, with logits inside the golden cases' bf16 tolerance. Default 'bf16' (the weights as
   * stored). The wasm and reference backends only.
   */
  unembedding?: UnembeddingType;
  /**
   * A PEFT LoRA adapter folder merged into the weights at load: each adapted attention matrix
   * becomes bf16(W + (alpha/r) B A), each adapted expert stack float (train/merge.ts).
   */
  adapter?: string;
}

/**
 * Creates a backend by name; the wasm and webgpu backends are imported only when asked for. A
 * missing WebGPU adapter or package is a UserError naming the fix.
 */
export async function createBackend(name: BackendName, options: BackendOptions = {}): Promise<Backend> {
  if (name === 'reference') return createReferenceBackend();
  if (name === 'wasm') {
    const { createWasmBackend } = await import('../kernels/wasm/index.ts');
    return createWasmBackend(options);
  }
  if (name === 'webgpu') {
    const { createWebGpuBackend } = await import('../kernels/webgpu/index.ts');
    return createWebGpuBackend(options);
  }
  throw new UserError('usage', `unknown backend "${String(name)}" (expected reference, wasm or webgpu)`);
}

/**
 * The backend `choice` names; 'auto' looks at the GPU adapter: webgpu on a real GPU, else wasm.
 * `line` says which was taken and why (for a command's start-up line).
 */
export async function resolveBackend(choice: BackendChoice | undefined): Promise<{ backend: BackendName; line: string }> {
  if (choice !== 'auto') return { backend: choice ?? 'wasm', line: `backend ${choice ?? 'wasm'}` };
  const { chooseAutoBackend, probeAdapter } = await import('../kernels/webgpu/device.ts');
  const picked = chooseAutoBackend(await probeAdapter());
  return { backend: picked.backend, line: picked.backend === 'webgpu' ? `backend auto: webgpu on ${picked.reason}` : `backend auto: wasm (${picked.reason})` };
}

/**
 * The context window a checkpoint runs with when the caller names none: DEMO_CONTEXT_LENGTH for
 * the embedded gpt-oss-nano and the random demo model (trained on, or only fit for, short
 * conversations), else the model's own (its config's initial context stretched by YaRN).
 */
export async function defaultContextLength(modelDir: string): Promise<number> {
  const { found, config } = await readCheckpointConfig(modelDir);
  return defaultContextOf(found.dir, config);
}

function defaultContextOf(dir: string, config: ModelConfig): number {
  return Math.min(isDemoModel(dir) || isEmbeddedNano(dir) ? DEMO_CONTEXT_LENGTH : Infinity, modelContextLength(config));
}

/** The KV cache type `options` asks for, or the default for its backend and expert activations. */
export function resolveKvCacheType(options: Pick<LoadEngineOptions, 'backend' | 'expertActivations' | 'kvCacheType'>): KvCacheType {
  if (options.kvCacheType === 'bf16' && options.backend === 'webgpu') {
    // The WGSL attention reads an f32 cache; a bf16 one would be read as the wrong words.
    throw new UserError('usage', 'the webgpu backend keeps an f32 KV cache: --kv-cache bf16 needs --backend wasm or reference');
  }
  if (options.kvCacheType !== undefined) return options.kvCacheType;
  if ((options.backend ?? 'wasm') !== 'wasm') return 'f32';
  // The wasm backend's own default: GPTOSS_EXPERT_ACTIVATIONS when it names a mode, else 'q8'.
  const env = process.env.GPTOSS_EXPERT_ACTIVATIONS as ExpertActivations | undefined;
  const acts = options.expertActivations ?? (env !== undefined && EXPERT_ACTIVATIONS.includes(env) ? env : 'q8');
  return acts === 'q8' ? 'bf16' : 'f32';
}

/** Loads the checkpoint in `modelDir` (either layout) onto the chosen backend. */
export async function loadEngine(modelDir: string, given: LoadEngineOptions = {}): Promise<LocalEngine> {
  const options = given.backend === 'auto' ? { ...given, backend: (await resolveBackend('auto')).backend } : given as LoadEngineOptions & { backend?: BackendName };
  // Refuse a model that cannot fit before reading gigabytes (GPTOSS_SKIP_MEMORY_CHECK=1 skips it).
  const { found, config } = await readCheckpointConfig(modelDir);
  const sampling = readGenerationDefaults(found.dir);
  const requested = options.contextLength ?? defaultContextOf(found.dir, config);
  if (!Number.isInteger(requested) || requested < 1) {
    throw new UserError('usage', `context length must be a positive integer, got ${requested}`);
  }
  const kvCacheType = resolveKvCacheType(options);
  if (options.unembedding !== undefined && !UNEMBEDDING_TYPES.includes(options.unembedding)) {
    throw new UserError('usage', `unembedding must be one of ${UNEMBEDDING_TYPES.join(', ')}, got "${String(options.unembedding)}"`);
  }
  if (options.unembedding === 'int8' && options.backend === 'webgpu') {
    throw new UserError('usage', 'the webgpu backend reads the bf16 unembedding: --unembedding int8 needs --backend wasm or reference');
  }
  checkCheckpointFits(config, {
    contextLength: requested,
    kvCacheType,
    ...(options.prefillChunk === undefined ? {} : { prefillChunk: options.prefillChunk }),
    backend: options.backend ?? 'wasm',
    ...(options.threads === undefined ? {} : { threads: options.threads }),
    int8Unembedding: options.unembedding === 'int8',
  });
  // The adapter is read (and checked against the model's shapes) before gigabytes are loaded.
  const adapter = options.adapter === undefined ? undefined : (await import('../train/peft.ts')).readPeftAdapter(options.adapter, config);
  const backend = await createBackend(options.backend ?? 'wasm', {
    ...(options.threads === undefined ? {} : { threads: options.threads }),
    ...(options.offload === undefined ? {} : { offload: options.offload }),
    ...(options.expertActivations === undefined ? {} : { expertActivations: options.expertActivations }),
  });
  try {
    const loaded = await loadCheckpoint(modelDir, backend.store);
    // An adapter on the experts makes its layers' expert stacks float (see train/merge.ts).
    if (adapter !== undefined) (await import('../train/merge.ts')).mergeLoraIntoWeights(loaded.weights, adapter);
    if (backend.name === 'webgpu' && loaded.weights.blocks.some((b) => b.mlp.mlp1Weight.dense !== undefined || b.mlp.mlp2Weight.dense !== undefined)) {
      // The WGSL experts read packed MXFP4 only; the other backends compute float experts with the reference code.
      const why = adapter !== undefined && adapter.expertModules.length > 0 ? `the adapter ${options.adapter} adapts the experts (they run unquantised)` : `${modelDir} stores its experts unquantised (a float export)`;
      throw new UserError('usage', `${why}: run it with --backend wasm or reference`);
    }
    if (options.unembedding === 'int8') {
      const u = loaded.weights.unembedding;
      u.int8 = await backend.int8Copy!(u.weight, 'unembedding.int8');
    }
    const limit = modelContextLength(loaded.weights.config);
    const ctx = Math.min(requested, limit);
    const model = new Transformer(loaded.weights, backend, ctx, options.prefillChunk, options.kvRewind, kvCacheType);
    return new LocalEngine(model, { name: loaded.name, vocabSize: loaded.weights.config.vocabSize, contextLength: ctx, randomWeights: loaded.randomWeights, sampling }, loaded.layout);
  } catch (e) {
    await backend.close();
    throw e;
  }
}

class LocalSequence implements Sequence {
  readonly tokens: number[] = [];
  released = false;
  /** Steps asked for and not yet done: a release waits for them before freeing the cache. */
  pendingSteps = 0;
  constructor(readonly id: number, readonly cache: KvCache) {}
}

export class LocalEngine implements Engine {
  private nextId = 1;
  private readonly mine = new WeakSet<LocalSequence>();
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  /** Full recomputations forced by truncations a banded ring could not serve (for tests and profiles). */
  recomputations = 0;

  constructor(
    readonly model: Transformer,
    readonly info: EngineInfo,
    readonly layout: CheckpointLayout,
  ) {}

  get config(): ModelConfig {
    return this.model.config;
  }

  get backend(): Backend {
    return this.model.backend;
  }

  createSequence(): Sequence {
    this.assertOpen();
    const id = this.nextId++;
    const seq = new LocalSequence(id, this.model.newCache(`kv.seq${id}`));
    this.mine.add(seq);
    return seq;
  }

  async step(batch: readonly StepRequest[]): Promise<Float32Array[]> {
    const sequences = this.checkStep(batch);
    return this.stepping(sequences, async () => {
      for (const seq of sequences) await this.recomputeIfNeeded(seq);
      // All sequences' new tokens go through the weights together; attention stays per sequence.
      const logits = await this.model.forwardBatch(batch.map((r, i) => ({ cache: sequences[i]!.cache, tokens: r.tokens })));
      batch.forEach((r, i) => sequences[i]!.tokens.push(...r.tokens));
      return logits;
    });
  }

  async stepArgmax(request: StepRequest): Promise<number> {
    const [seq] = this.checkStep([request]);
    return this.stepping([seq!], async () => {
      await this.recomputeIfNeeded(seq!);
      const token = await this.model.forwardArgmax(seq!.cache, request.tokens);
      seq!.tokens.push(...request.tokens);
      return token;
    });
  }

  async stepPicking(batch: readonly PickingRequest[]): Promise<Picked[]> {
    const sequences = this.checkStep(batch);
    return this.stepping(sequences, async () => {
      for (const seq of sequences) await this.recomputeIfNeeded(seq);
      const results = await this.model.forwardBatchPicking(batch.map((r, i) => ({ cache: sequences[i]!.cache, tokens: r.tokens, ...(r.pick === undefined ? {} : { pick: r.pick }) })));
      batch.forEach((r, i) => sequences[i]!.tokens.push(...r.tokens));
      return results;
    });
  }

  async stepDraw(request: StepRequest, draw: { u: number; temperature: number }): Promise<number> {
    const [seq] = this.checkStep([request]);
    return this.stepping([seq!], async () => {
      await this.recomputeIfNeeded(seq!);
      const token = await this.model.forwardDraw(seq!.cache, request.tokens, draw);
      seq!.tokens.push(...request.tokens);
      return token;
    });
  }

  async stepTopK(request: StepRequest, k: number): Promise<TopLogits> {
    const [seq] = this.checkStep([request]);
    return this.stepping([seq!], async () => {
      await this.recomputeIfNeeded(seq!);
      const top = await this.model.forwardTopK(seq!.cache, request.tokens, k);
      seq!.tokens.push(...request.tokens);
      return top;
    });
  }

  /** The requests' sequences, once their tokens are valid and fit the context. */
  private checkStep(batch: readonly StepRequest[]): LocalSequence[] {
    const sequences = batch.map((r) => this.own(r.sequence));
    if (new Set(sequences).size !== sequences.length) throw new Error('step: a sequence appears twice in one batch');
    for (const [i, r] of batch.entries()) {
      if (r.tokens.length === 0) throw new Error('step: a request has no tokens');
      this.checkTokens(r.tokens);
      const total = sequences[i]!.tokens.length + r.tokens.length;
      if (total > this.info.contextLength) {
        throw new UserError('context', `sequence ${sequences[i]!.id} would hold ${total} tokens, more than the context length ${this.info.contextLength}`);
      }
    }
    return sequences;
  }

  /**
   * Feeds `tokens` to `sequence` and returns the logits at every new position ([T, vocab] row-major),
   * for `gptoss logits --all-positions` and tests. `trace` receives named activations.
   */
  async stepAll(sequence: Sequence, tokens: readonly number[], trace?: TraceHook): Promise<Float32Array> {
    const seq = this.own(sequence);
    this.checkTokens(tokens);
    if (seq.tokens.length + tokens.length > this.info.contextLength) {
      throw new UserError('context', `sequence would hold ${seq.tokens.length + tokens.length} tokens, more than the context length ${this.info.contextLength}`);
    }
    return this.stepping([seq], () => this.feed(seq, tokens, true, trace));
  }

  truncate(sequence: Sequence, length: number): void {
    const seq = this.own(sequence);
    if (!Number.isInteger(length) || length < 0) throw new Error(`truncate: invalid length ${length}`);
    if (length >= seq.tokens.length) return;
    const kept = seq.tokens.slice(0, length);
    seq.tokens.length = length;
    if (seq.cache.truncate(length)) return;
    // A banded layer's ring has already overwritten keys the new end still needs: the next step
    // recomputes the kept prefix from position 0 before its own tokens (see pendingRecompute).
    seq.cache.reset();
    this.pendingRecompute.set(seq, kept);
    this.recomputations++;
  }

  private pendingRecompute = new Map<LocalSequence, number[]>();

  release(sequence: Sequence): void {
    const seq = this.own(sequence);
    seq.released = true;
    this.pendingRecompute.delete(seq);
    // A step already asked for still reads and writes this cache (steps run one after another,
    // and with offload the event loop runs while one computes): the last of them frees it.
    if (seq.pendingSteps === 0) seq.cache.release();
  }

  /** Runs a step of `sequences` exclusively, holding their caches until it is done. */
  private stepping<T>(sequences: readonly LocalSequence[], fn: () => Promise<T>): Promise<T> {
    for (const seq of sequences) seq.pendingSteps++;
    return this.exclusive(fn).finally(() => {
      for (const seq of sequences) {
        seq.pendingSteps--;
        if (seq.pendingSteps === 0 && seq.released) seq.cache.release();
      }
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue.catch(() => undefined);
    this.model.dispose();
    await this.model.backend.close();
  }

  private async feed(seq: LocalSequence, tokens: readonly number[], all: boolean, trace?: TraceHook): Promise<Float32Array> {
    await this.recomputeIfNeeded(seq);
    const logits = await this.model.forward(seq.cache, tokens, all || trace !== undefined ? { allLogits: all, ...(trace === undefined ? {} : { trace }) } : {});
    seq.tokens.push(...tokens);
    return logits;
  }

  private async recomputeIfNeeded(seq: LocalSequence): Promise<void> {
    const pending = this.pendingRecompute.get(seq);
    if (pending === undefined) return;
    this.pendingRecompute.delete(seq);
    if (pending.length > 0) await this.model.forward(seq.cache, pending);
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(() => {
      this.assertOpen();
      return fn();
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  private checkTokens(tokens: readonly number[]): void {
    const vocab = this.info.vocabSize;
    for (const [i, id] of tokens.entries()) {
      if (!Number.isInteger(id) || id < 0 || id >= vocab) {
        throw new UserError('input', `token id ${id} at index ${i} is outside the vocabulary (0..${vocab - 1})`);
      }
    }
  }

  private own(sequence: Sequence): LocalSequence {
    this.assertOpen();
    if (!(sequence instanceof LocalSequence) || !this.mine.has(sequence)) throw new Error('sequence was not created by this engine');
    if (sequence.released) throw new Error(`sequence ${sequence.id} was released`);
    return sequence;
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('engine is closed');
  }
}
