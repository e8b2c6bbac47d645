// `gptoss bench`: measures one model on one backend in one process: the time to read the
// checkpoint files, load time, prefill and decode speed, time to first token, peak RSS, and the
// decode ceiling (bytes of weights read per decoded token over the memory read bandwidth this
// same run measures). --profile adds the time per backend op kind. bench/run.ts drives it.
// Figures are returned unrounded (a warm page cache reads a small checkpoint in well under a
// millisecond); only the table rounds them for display.
import { openSync, readSync, closeSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { availableParallelism } from 'node:os';
import { UserError } from '../errors.ts';
import { boolFlag, numberFlag, parseFlags, stringFlag } from './args.ts';
import { loadEngine, resolveBackend } from '../engine/local.ts';
import type { Backend, BackendName, ExpertActivations, KvCacheType, UnembeddingType } from '../kernels/backend.ts';
import { COMPUTE_FLAG_OPTIONS, computeOptions } from './model-flags.ts';
import type { ModelConfig } from '../model/config.ts';
import type { ModelWeights } from '../model/weights.ts';
import { int8Bytes } from '../tensor/index.ts';

const HELP = `usage: gptoss bench --model DIR [options]
  --model DIR          checkpoint folder (e.g. from gptoss synth --shape 20b)
  --prompt-tokens N    prompt length for the prefill measurement (default 512)
  --gen-tokens N       tokens decoded one by one (default 64)
  --threads N          worker threads (default: the core count, ${availableParallelism()} here)
  --backend B          wasm (default), reference or webgpu
  --profile            time per backend op kind (prefill and decode)
  --expert-activations q8 (wasm default: int8 like llama.cpp, error of the bf16 reference's
                       size), split (exact integer dots), f32, or f16 (webgpu default where
                       the adapter has shader-f16)
  --kv-cache f32|bf16  KV cache element type (default bf16 with q8, f32 otherwise)
  --unembedding bf16|int8
                       int8: an int8 copy of the unembedding (default bf16, as stored)
  --json               one JSON object instead of the table`;

export interface OpProfile {
  [op: string]: { calls: number; ms: number };
}

export interface BenchResult {
  backend: string;
  expert_activations: string;
  /** Element type of the KV cache. */
  kv_cache: string;
  /** 'bf16' (as stored) or 'int8' (the copy --unembedding int8 reads). */
  unembedding: UnembeddingType;
  threads: number;
  layers: number;
  prompt_tokens: number;
  gen_tokens: number;
  read_s: number;
  read_bytes: number;
  load_s: number;
  prefill_s: number;
  prefill_tok_s: number;
  ttft_s: number;
  decode_tok_s: number;
  peak_rss_bytes: number;
  bandwidth_gb_s: number;
  bytes_per_token: number;
  decode_ceiling_tok_s: number;
  memories?: number;
  /** The GPU adapter (webgpu backend only). */
  adapter?: string;
  /** Bytes of weights uploaded to the GPU (webgpu backend only). */
  gpu_weight_bytes?: number;
  /** Calls per op the wasm backend ran through the reference code (absent for the reference backend). */
  fallbacks?: Record<string, number>;
  profile?: { prefill: OpProfile; decode: OpProfile };
}

/** Weight bytes one decoded token reads: attention, router, k experts per layer, unembedding (bf16, or its int8 copy). */
export function bytesPerToken(c: ModelConfig, unembedding: UnembeddingType = 'bf16'): number {
  const H = c.hiddenSize, I = c.intermediateSize, D = c.headDim;
  const qkv = D * (c.numAttentionHeads + 2 * c.numKeyValueHeads) * H;
  const out = H * D * c.numAttentionHeads;
  const gate = c.numExperts * H;
  const bf16 = (qkv + out + gate) * 2;
  const mxfp4 = (m: number): number => m / 2 + m / 32; // 4-bit values + one scale byte per 32
  const experts = c.expertsPerToken * (mxfp4(2 * I * H) + mxfp4(H * I));
  const copy = int8Bytes({ rows: c.vocabSize, cols: H });
  return c.numLayers * (bf16 + experts) + (unembedding === 'int8' ? copy.codes + copy.scales : c.vocabSize * H * 2);
}

/** Seconds to read every file of the checkpoint once (sequentially, 64 MiB at a time). */
function timeFileRead(dir: string): { seconds: number; bytes: number } {
  const files: string[] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith('.safetensors')) files.push(p);
    }
  };
  walk(dir);
  const buf = Buffer.allocUnsafe(64 * 2 ** 20);
  let bytes = 0;
  const t0 = performance.now();
  for (const f of files) {
    const fd = openSync(f, 'r');
    try {
      for (;;) {
        const n = readSync(fd, buf, 0, buf.length, null);
        if (n === 0) break;
        bytes += n;
      }
    } finally {
      closeSync(fd);
    }
  }
  return { seconds: (performance.now() - t0) / 1000, bytes };
}

/** Wraps every op of `backend` to record time per op kind into `sink.current`. */
function instrument(backend: Backend, sink: { current: OpProfile | null }): void {
  const ops = ['rmsnorm', 'linear', 'rope', 'attention', 'experts'] as const;
  const target = backend as unknown as Record<string, (...a: unknown[]) => unknown>;
  for (const op of ops) {
    const fn = target[op]!.bind(backend);
    target[op] = (...a: unknown[]) => {
      const prof = sink.current;
      if (prof === null) return fn(...a);
      const t0 = performance.now();
      const done = (): void => {
        const p = (prof[op] ??= { calls: 0, ms: 0 });
        p.calls++;
        p.ms += performance.now() - t0;
      };
      const r = fn(...a);
      if (r instanceof Promise) return r.then(done);
      done();
      return r;
    };
  }
}

/** Measures bandwidth by streaming the model's largest weights (already in wasm memories), or a scratch buffer. */
async function measureBandwidth(backend: Backend, weights: ModelWeights, threads: number): Promise<number> {
  const MIN = 4 * 2 ** 30;
  if ('readBandwidth' in backend) {
    const wasm = backend as unknown as { readBandwidth(b: Uint8Array[], min: number): number };
    const views: Uint8Array[] = [];
    const u8 = (a: ArrayBufferView): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    const u = weights.unembedding;
    views.push(u.int8 !== undefined ? u8(u.int8.codes) : u8(u.weight.data));
    for (const b of weights.blocks) views.push(u8(b.mlp.mlp1Weight.blocks), u8(b.mlp.mlp2Weight.blocks));
    if (views.reduce((s, v) => s + v.byteLength, 0) >= 2 ** 29) return wasm.readBandwidth(views, MIN);
    // A small model fits in the caches: stream a probe buffer larger than them instead.
    const probe = backend.store.allocate(2 ** 29, 'bandwidth.probe');
    try {
      return wasm.readBandwidth([probe], MIN);
    } finally {
      backend.store.free(probe);
    }
  }
  const { createWasmBackend } = await import('../kernels/wasm/index.ts');
  const probe = await createWasmBackend({ threads });
  try {
    const bufs = [probe.store.allocate(2 ** 29, 'bandwidth.probe')];
    return probe.readBandwidth(bufs, MIN);
  } finally {
    await probe.close();
  }
}

function argmax(x: Float32Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[best]!) best = i;
  return best;
}

export async function runBench(opts: {
  model: string; promptTokens: number; genTokens: number; threads: number; backend: BackendName; profile: boolean;
  expertActivations?: ExpertActivations;
  kvCacheType?: KvCacheType;
  unembedding?: UnembeddingType;
}): Promise<BenchResult> {
  const read = timeFileRead(opts.model);
  const t0 = performance.now();
  const engine = await loadEngine(opts.model, {
    backend: opts.backend, threads: opts.threads, contextLength: opts.promptTokens + opts.genTokens + 1,
    ...(opts.expertActivations !== undefined ? { expertActivations: opts.expertActivations } : {}),
    ...(opts.kvCacheType !== undefined ? { kvCacheType: opts.kvCacheType } : {}),
    ...(opts.unembedding !== undefined ? { unembedding: opts.unembedding } : {}),
  });
  const loadS = (performance.now() - t0) / 1000;
  try {
    const config = engine.config;
    const sink: { current: OpProfile | null } = { current: null };
    if (opts.profile) instrument(engine.backend, sink);
    // A fixed pseudo-random prompt (ids below 200000 avoid the special tokens).
    let s = 12345;
    const prompt = Array.from({ length: opts.promptTokens }, () => {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      return s % Math.min(200000, config.vocabSize);
    });
    const seq = engine.createSequence();
    const prefillProfile: OpProfile = {};
    sink.current = opts.profile ? prefillProfile : null;
    const p0 = performance.now();
    let [logits] = await engine.step([{ sequence: seq, tokens: prompt }]);
    let next = argmax(logits!);
    const prefillS = (performance.now() - p0) / 1000;
    const decodeProfile: OpProfile = {};
    sink.current = opts.profile ? decodeProfile : null;
    const d0 = performance.now();
    for (let i = 0; i < opts.genTokens; i++) {
      [logits] = await engine.step([{ sequence: seq, tokens: [next] }]);
      next = argmax(logits!);
    }
    const decodeS = (performance.now() - d0) / 1000;
    sink.current = null;
    engine.release(seq);
    const bandwidth = await measureBandwidth(engine.backend, engine.model.weights, opts.threads);
    const bpt = bytesPerToken(config, engine.model.weights.unembedding.int8 !== undefined ? 'int8' : 'bf16');
    const memories = (engine.backend as unknown as { memoryCount?: number }).memoryCount;
    const fallbacks = (engine.backend as unknown as { fallbacks?: Record<string, number> }).fallbacks;
    const adapter = (engine.backend as { adapter?: string }).adapter;
    const gpuWeightBytes = (engine.backend as { weightBytes?: number }).weightBytes;
    return {
      backend: engine.backend.name,
      // The mode the backend runs (the wasm backend says which; the reference backend is exact).
      expert_activations: (engine.backend as { expertActivations?: string }).expertActivations ?? 'f64',
      kv_cache: engine.model.kvCacheType,
      unembedding: engine.model.weights.unembedding.int8 !== undefined ? 'int8' : 'bf16',
      threads: opts.threads,
      layers: config.numLayers,
      prompt_tokens: opts.promptTokens,
      gen_tokens: opts.genTokens,
      read_s: read.seconds,
      read_bytes: read.bytes,
      load_s: loadS,
      prefill_s: prefillS,
      prefill_tok_s: opts.promptTokens / prefillS,
      ttft_s: prefillS,
      decode_tok_s: opts.genTokens / decodeS,
      peak_rss_bytes: process.resourceUsage().maxRSS * 1024,
      bandwidth_gb_s: bandwidth / 1e9,
      bytes_per_token: bpt,
      decode_ceiling_tok_s: bandwidth / bpt,
      ...(memories === undefined ? {} : { memories }),
      ...(adapter === undefined ? {} : { adapter }),
      ...(gpuWeightBytes === undefined ? {} : { gpu_weight_bytes: gpuWeightBytes }),
      ...(fallbacks === undefined ? {} : { fallbacks }),
      ...(opts.profile ? { profile: { prefill: prefillProfile, decode: decodeProfile } } : {}),
    };
  } finally {
    await engine.close();
  }
}

function formatProfile(p: OpProfile, total: number): string {
  const rows = Object.entries(p).sort((a, b) => b[1].ms - a[1].ms);
  const sum = rows.reduce((s, [, v]) => s + v.ms, 0);
  const lines = rows.map(([op, v]) => `    ${op.padEnd(10)} ${v.ms.toFixed(1).padStart(10)} ms  ${((100 * v.ms) / total).toFixed(1).padStart(5)}%  ${String(v.calls).padStart(6)} calls`);
  lines.push(`    ${'other'.padEnd(10)} ${(total - sum).toFixed(1).padStart(10)} ms  ${((100 * (total - sum)) / total).toFixed(1).padStart(5)}%  (embedding, routing, glue)`);
  return lines.join('\n');
}

export async function run(argv: string[]): Promise<number> {
  const p = parseFlags(argv, {
    model: { type: 'string' }, 'prompt-tokens': { type: 'string' }, 'gen-tokens': { type: 'string' },
    ...COMPUTE_FLAG_OPTIONS, json: { type: 'boolean' }, profile: { type: 'boolean' }, help: { type: 'boolean' },
  }, false);
  if (boolFlag(p, 'help')) {
    console.log(HELP);
    return 0;
  }
  const model = stringFlag(p, 'model');
  if (model === undefined) throw new UserError('usage', '--model DIR is required (see gptoss bench --help)');
  const compute = computeOptions(p);
  const opts = {
    model,
    promptTokens: numberFlag(p, 'prompt-tokens', { min: 1, integer: true }) ?? 512,
    genTokens: numberFlag(p, 'gen-tokens', { min: 1, integer: true }) ?? 64,
    threads: compute.threads ?? availableParallelism(),
    backend: compute.backend === 'auto' ? (await resolveBackend('auto')).backend : compute.backend ?? 'wasm',
    ...(compute.expertActivations !== undefined ? { expertActivations: compute.expertActivations } : {}),
    ...(compute.kvCacheType !== undefined ? { kvCacheType: compute.kvCacheType } : {}),
    ...(compute.unembedding !== undefined ? { unembedding: compute.unembedding } : {}),
    profile: boolFlag(p, 'profile'),
  };
  const r = await runBench(opts);
  if (boolFlag(p, 'json')) {
    console.log(JSON.stringify(r));
    return 0;
  }
  const gb = (b: number): string => (b / 1e9).toFixed(2);
  console.log(`backend ${r.backend} (expert activations ${r.expert_activations}, KV cache ${r.kv_cache}${r.unembedding === 'int8' ? ', int8 unembedding' : ''}), ${r.threads} thread(s), ${r.layers} layers${r.memories === undefined ? '' : `, ${r.memories} wasm memories`}${r.adapter === undefined ? '' : `, adapter ${r.adapter}`}`);
  console.log(`read files        ${r.read_s.toFixed(2)} s (${gb(r.read_bytes)} GB)`);
  console.log(`load              ${r.load_s.toFixed(2)} s (${(r.load_s / Math.max(r.read_s, 1e-9)).toFixed(2)}x the file read)`);
  console.log(`prefill           ${r.prefill_tok_s.toFixed(2)} tok/s (${r.prompt_tokens} tokens in ${r.prefill_s.toFixed(2)} s)`);
  console.log(`time to 1st token ${r.ttft_s.toFixed(2)} s`);
  console.log(`decode            ${r.decode_tok_s.toFixed(2)} tok/s (${r.gen_tokens} tokens)`);
  console.log(`decode ceiling    ${r.decode_ceiling_tok_s.toFixed(2)} tok/s (${gb(r.bytes_per_token)} GB read per token at ${r.bandwidth_gb_s.toFixed(1)} GB/s measured)`);
  console.log(`peak RSS          ${gb(r.peak_rss_bytes)} GB`);
  const fell = Object.entries(r.fallbacks ?? {}).filter(([, n]) => n > 0);
  if (fell.length > 0) console.log(`reference fallbacks ${fell.map(([op, n]) => `${op} ${n}`).join(', ')} (ops the kernels could not take)`);
  if (r.profile !== undefined) {
    console.log(`profile, prefill (${(r.prefill_s * 1000).toFixed(0)} ms):\n${formatProfile(r.profile.prefill, r.prefill_s * 1000)}`);
    const decodeMs = (r.gen_tokens / r.decode_tok_s) * 1000;
    console.log(`profile, decode (${decodeMs.toFixed(0)} ms):\n${formatProfile(r.profile.decode, decodeMs)}`);
  }
  return 0;
}
