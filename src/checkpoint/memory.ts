// How much memory a model needs before it is loaded, and whether this machine has it. The estimate
// follows what the loader and engine actually hold: weights as stored (BF16 matrices, MXFP4
// experts packed at 4.25 bits per weight, small vectors widened to f32), KV caches at their element
// size (f32 or bf16; banded
// layers bounded by the sliding window, dense layers up to the context), the RoPE cos/sin tables
// (built for every position of the context at load), the activation workspace of one prefill
// chunk, and the runtime's own overhead.
import { readFileSync } from 'node:fs';
import { freemem, totalmem } from 'node:os';
import { UserError } from '../errors.ts';
import type { KvCacheType } from '../kernels/backend.ts';
import { contextLength as modelContextLength, isSlidingLayer, type ModelConfig } from '../model/config.ts';
import { kvBytesPerPosition } from '../model/kvcache.ts';
import { int8Bytes } from '../tensor/index.ts';

export interface MemoryEstimate {
  /** A name for messages: gpt-oss-20b, gpt-oss-120b, or the shape. */
  model: string;
  weightBytes: number;
  /** Of which MXFP4 expert blocks and scales. */
  expertBytes: number;
  /** KV cache of `sequences` sequences of `contextLength` tokens. */
  kvCacheBytes: number;
  activationBytes: number;
  /** The RoPE cos/sin tables: f32, headDim/2 each per position of the context, allocated at load. */
  ropeTableBytes: number;
  /** The Node.js runtime, code, tokenizer tables, thread stacks. */
  overheadBytes: number;
  totalBytes: number;
  contextLength: number;
  sequences: number;
}

export interface EstimateOptions {
  /** Tokens per sequence the KV caches must hold (default: the model's full context). */
  contextLength?: number;
  /** Concurrent sequences (server batching); default 1. */
  sequences?: number;
  /** Tokens pushed through the weights at once during prefill (default 512). */
  prefillChunk?: number;
  /** 'wasm', 'reference' or 'webgpu': only the wasm backend keeps worker threads' own memories. */
  backend?: string;
  /** Worker threads of the wasm backend (default 2). */
  threads?: number;
  /** Element type of the KV caches (default 'f32'). */
  kvCacheType?: KvCacheType;
  /** An int8 copy of the unembedding is kept beside the bf16 one (`--unembedding int8`). */
  int8Unembedding?: boolean;
}

/** gpt-oss-20b / gpt-oss-120b when the shape is a released one, else a short description. */
export function modelLabel(c: ModelConfig): string {
  if (c.hiddenSize === 2880 && c.vocabSize === 201088 && c.numLayers === 24 && c.numExperts === 32) return 'gpt-oss-20b';
  if (c.hiddenSize === 2880 && c.vocabSize === 201088 && c.numLayers === 36 && c.numExperts === 128) return 'gpt-oss-120b';
  return `this model (${c.numLayers} layers, ${c.numExperts} experts, hidden ${c.hiddenSize})`;
}

/** The bytes the weights occupy once loaded (the embedding table stays on disk: rows are read per token). */
export function weightBytes(c: ModelConfig): { total: number; experts: number } {
  const H = c.hiddenSize, I = c.intermediateSize, E = c.numExperts, D = c.headDim;
  const qkvRows = D * (c.numAttentionHeads + 2 * c.numKeyValueHeads);
  const bf16 = 2 * (c.vocabSize * H + c.numLayers * (qkvRows * H + H * D * c.numAttentionHeads + E * H));
  // MXFP4: 16 bytes of codes + 1 scale byte per 32 weights.
  const mxfp4 = (rows: number, cols: number) => E * rows * (cols / 32) * 17;
  const experts = c.numLayers * (mxfp4(2 * I, H) + mxfp4(H, I));
  const vectors = 4 * (H + c.numLayers * (2 * H + qkvRows + c.numAttentionHeads + H + E + E * 2 * I + E * H));
  return { total: bf16 + experts + vectors, experts };
}

/** Estimates the memory needed to run `config` with the given context and batch. */
export function estimateMemory(config: ModelConfig, opts: EstimateOptions = {}): MemoryEstimate {
  const ctx = Math.min(opts.contextLength ?? modelContextLength(config), modelContextLength(config));
  const sequences = opts.sequences ?? 1;
  const chunk = Math.min(opts.prefillChunk ?? 512, ctx);
  const w = weightBytes(config);
  if (opts.int8Unembedding === true) {
    const copy = int8Bytes({ rows: config.vocabSize, cols: config.hiddenSize });
    w.total += copy.codes + copy.scales;
  }
  // Keys and values at their element size plus one position per slot; banded layers keep the window plus the chunk being processed.
  const perPosition = kvBytesPerPosition(config.numKeyValueHeads * config.headDim, opts.kvCacheType ?? 'f32');
  let kvPerSequence = 0;
  for (let n = 0; n < config.numLayers; n++) {
    const slots = isSlidingLayer(n) ? Math.min(ctx, config.slidingWindow + chunk) : ctx;
    kvPerSequence += slots * perPosition;
  }
  const H = config.hiddenSize;
  const qkvRows = config.headDim * (config.numAttentionHeads + 2 * config.numKeyValueHeads);
  // Per token in a chunk: residual, norms, qkv, attention output, router logits, the k experts'
  // 2I-wide hidden states and outputs; plus attention scores of one head row and the logits row.
  const perToken = 4 * (6 * H + qkvRows + config.numAttentionHeads * config.headDim + config.numExperts + config.expertsPerToken * (3 * config.intermediateSize + H));
  const activationBytes = chunk * perToken + 4 * config.vocabSize * 2 + 4 * config.numAttentionHeads * ctx;
  const threads = opts.backend === 'reference' || opts.backend === 'webgpu' ? 0 : opts.threads ?? 2;
  const overheadBytes = 200e6 + threads * 40e6;
  const kvCacheBytes = kvPerSequence * sequences;
  const ropeTableBytes = ctx * config.headDim * 4;
  return {
    model: modelLabel(config),
    weightBytes: w.total,
    expertBytes: w.experts,
    kvCacheBytes,
    activationBytes,
    ropeTableBytes,
    overheadBytes,
    totalBytes: w.total + kvCacheBytes + activationBytes + ropeTableBytes + overheadBytes,
    contextLength: ctx,
    sequences,
  };
}

export interface AvailableMemory {
  bytes: number;
  /** Where the figure comes from, for the message. */
  source: string;
}

function readNumber(path: string): number | undefined {
  try {
    const text = readFileSync(path, 'utf8').trim();
    if (text === 'max') return undefined;
    const v = Number(text);
    return Number.isFinite(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Memory this process can still use: MemAvailable (free plus reclaimable page cache) from
 * /proc/meminfo where it exists, else os.freemem(); capped by a cgroup v2 limit
 * (memory.max - memory.current) or a cgroup v1 limit when one applies.
 */
export function availableMemory(): AvailableMemory {
  let bytes = freemem();
  let source = 'free memory';
  try {
    const m = /^MemAvailable:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'));
    if (m !== null) {
      bytes = Number(m[1]) * 1024;
      source = 'available memory';
    }
  } catch {
    // not Linux
  }
  const limits: [string, string | undefined][] = [
    ['/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory.current'],
    ['/sys/fs/cgroup/memory/memory.limit_in_bytes', '/sys/fs/cgroup/memory/memory.usage_in_bytes'],
  ];
  for (const [limitPath, usagePath] of limits) {
    const limit = readNumber(limitPath);
    // cgroup v1 reports "no limit" as a huge number.
    if (limit === undefined || limit >= totalmem() * 4) continue;
    const used = usagePath !== undefined ? readNumber(usagePath) ?? 0 : 0;
    const room = Math.max(0, limit - used);
    if (room < bytes) {
      bytes = room;
      source = `container memory limit (${gb(limit)} GB)`;
    }
    break;
  }
  return { bytes, source };
}

function gb(n: number): string {
  return (n / 1e9).toFixed(1);
}

/**
 * Throws UserError('memory') when `estimate` does not fit in the available memory, saying how much
 * is needed and available and what to do. `available` is injectable for tests.
 */
export function checkFits(estimate: MemoryEstimate, available: AvailableMemory = availableMemory()): void {
  if (estimate.totalBytes <= available.bytes) return;
  const parts = [`weights ${gb(estimate.weightBytes)} GB`, `KV cache ${gb(estimate.kvCacheBytes)} GB for ${estimate.contextLength} tokens${estimate.sequences > 1 ? ` x ${estimate.sequences} sequences` : ''}`, `activations, RoPE tables and runtime ${gb(estimate.activationBytes + estimate.ropeTableBytes + estimate.overheadBytes)} GB`];
  let hint = 'close other programs or use a machine with more memory';
  const perContext = estimate.kvCacheBytes + estimate.ropeTableBytes;
  const fixed = estimate.totalBytes - perContext;
  if (fixed < available.bytes && perContext > 0) {
    // KV memory and the RoPE tables grow linearly with the context: suggest the longest context that fits.
    const perToken = perContext / estimate.contextLength;
    const fits = Math.floor((available.bytes - fixed) / perToken / 1024) * 1024;
    if (fits >= 1024) hint = `use a shorter context (e.g. --context ${fits})`;
  }
  throw new UserError('memory', `${estimate.model} needs about ${gb(estimate.totalBytes)} GB (${parts.join(', ')}), only ${gb(available.bytes)} GB available (${available.source}); ${hint}`);
}

/**
 * The loader's pre-flight check: refuses, before anything is read, a model whose weights plus the
 * context it will run with (opts.contextLength, else the model's full context) cannot fit.
 * GPTOSS_SKIP_MEMORY_CHECK=1 disables it (e.g. when swap is known to be enough).
 */
export function checkCheckpointFits(config: ModelConfig, opts: EstimateOptions = {}): MemoryEstimate {
  const estimate = estimateMemory(config, opts);
  if (process.env['GPTOSS_SKIP_MEMORY_CHECK'] !== '1') checkFits(estimate);
  return estimate;
}
