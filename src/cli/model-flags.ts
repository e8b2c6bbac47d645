// Flags shared by the commands that load a model (logits, generate; chat, serve and bench take
// some of them): --model, --adapter, --backend, --threads, --context, --expert-activations,
// --kv-cache, --unembedding, token-id lists.
import { UserError } from '../errors.ts';
import { BACKEND_CHOICES, EXPERT_ACTIVATIONS, KV_CACHE_TYPES, UNEMBEDDING_TYPES, type BackendChoice, type ExpertActivations, type KvCacheType, type UnembeddingType } from '../kernels/backend.ts';
import type { LoadEngineOptions } from '../engine/local.ts';
import { numberFlag, stringFlag, type Parsed } from './args.ts';

/** The flags that choose how a model computes (chat, serve and bench take these alone). */
export const COMPUTE_FLAG_OPTIONS = {
  backend: { type: 'string' },
  threads: { type: 'string' },
  'expert-activations': { type: 'string' },
  'kv-cache': { type: 'string' },
  unembedding: { type: 'string' },
} as const;

/** --adapter DIR: a PEFT LoRA adapter merged into the model at load (chat, serve, generate, logits). */
export const ADAPTER_FLAG_OPTIONS = {
  adapter: { type: 'string' },
} as const;

export const ADAPTER_FLAG_HELP = `  --adapter DIR      a LoRA adapter folder (PEFT: adapter_config.json + adapter_model.safetensors,
                     e.g. from gptoss finetune) merged into the weights at load`;

export const MODEL_FLAG_OPTIONS = {
  model: { type: 'string' },
  ...ADAPTER_FLAG_OPTIONS,
  ...COMPUTE_FLAG_OPTIONS,
  context: { type: 'string' },
} as const;

export const EXPERT_ACTIVATIONS_HELP = `  --expert-activations q8|split|f16
                     how the MXFP4 experts take their activations: on wasm q8 (default; int8
                     like llama.cpp, error of the size of the official bf16 reference's) or
                     split (exact as f32, ~1.4x slower decode); on webgpu f16 (default where
                     the adapter has shader-f16, same error bound) or split (exact)
  --kv-cache f32|bf16
                     element type of the KV cache: bf16 halves its memory (default with q8) and
                     f32 is exact (default with split and with the reference backend)
  --unembedding bf16|int8
                     int8: read an int8 copy of the unembedding (made at load, +0.65 GB for
                     gpt-oss; decode reads half the bytes there, logits within the bf16
                     tolerance); default bf16, the weights as stored. wasm and reference only`;

export const MODEL_FLAG_HELP = `  --model DIR        checkpoint folder (original/ or Hugging Face layout, or config.json +
                     model.safetensors at its root)
${ADAPTER_FLAG_HELP}
  --backend NAME     wasm (WebAssembly SIMD + worker threads, default), reference (plain TS),
                     webgpu (a GPU through WebGPU; see docs/models.md) or auto (webgpu when
                     a real GPU adapter exists, else wasm)
  --threads N        worker threads of the wasm backend (default: all cores)
  --context N        serve at most N tokens per sequence (default: the model's context length)
${EXPERT_ACTIVATIONS_HELP}`;

export function modelDir(p: Parsed): string {
  const dir = stringFlag(p, 'model');
  if (dir === undefined || dir === '') throw new UserError('usage', '--model DIR is required');
  return dir;
}

export function engineOptions(p: Parsed): LoadEngineOptions {
  const options: LoadEngineOptions = { ...computeOptions(p), ...adapterOption(p) };
  const context = numberFlag(p, 'context', { min: 1, integer: true });
  if (context !== undefined) options.contextLength = context;
  return options;
}

/** --adapter, when given (an empty value is a mistake, not "no adapter"). */
export function adapterOption(p: Parsed): Pick<LoadEngineOptions, 'adapter'> {
  const adapter = stringFlag(p, 'adapter');
  if (adapter === undefined) return {};
  if (adapter === '') throw new UserError('usage', '--adapter is empty: give the adapter\'s folder');
  return { adapter };
}

/** --backend, --threads, --expert-activations, --kv-cache and --unembedding, checked; absent flags stay absent. */
export function computeOptions(p: Parsed): Pick<LoadEngineOptions, 'backend' | 'threads' | 'expertActivations' | 'kvCacheType' | 'unembedding'> {
  const options: Pick<LoadEngineOptions, 'backend' | 'threads' | 'expertActivations' | 'kvCacheType' | 'unembedding'> = {};
  const backend = stringFlag(p, 'backend');
  if (backend !== undefined) {
    if (!(BACKEND_CHOICES as readonly string[]).includes(backend)) throw new UserError('usage', `--backend must be wasm, reference, webgpu or auto, got "${backend}"`);
    options.backend = backend as BackendChoice;
  }
  const threads = numberFlag(p, 'threads', { min: 1, max: 256, integer: true });
  if (threads !== undefined) options.threads = threads;
  const acts = expertActivationsFlag(p);
  if (acts !== undefined) options.expertActivations = acts;
  const kv = stringFlag(p, 'kv-cache');
  if (kv !== undefined) {
    if (!(KV_CACHE_TYPES as readonly string[]).includes(kv)) throw new UserError('usage', `--kv-cache must be one of ${KV_CACHE_TYPES.join(', ')}, got "${kv}"`);
    options.kvCacheType = kv as KvCacheType;
  }
  const unembedding = stringFlag(p, 'unembedding');
  if (unembedding !== undefined) {
    if (!(UNEMBEDDING_TYPES as readonly string[]).includes(unembedding)) throw new UserError('usage', `--unembedding must be one of ${UNEMBEDDING_TYPES.join(', ')}, got "${unembedding}"`);
    options.unembedding = unembedding as UnembeddingType;
  }
  return options;
}

/** --expert-activations, checked. */
function expertActivationsFlag(p: Parsed): ExpertActivations | undefined {
  const acts = stringFlag(p, 'expert-activations');
  if (acts !== undefined && !(EXPERT_ACTIVATIONS as readonly string[]).includes(acts)) {
    throw new UserError('usage', `--expert-activations must be one of ${EXPERT_ACTIVATIONS.join(', ')}, got "${acts}"`);
  }
  return acts as ExpertActivations | undefined;
}

/** Parses "1,2,3" (commas and/or spaces) into token ids; anything else is a usage error. */
export function parseTokenList(raw: string, flag: string): number[] {
  const parts = raw.split(/[\s,]+/).filter((s) => s !== '');
  if (parts.length === 0) throw new UserError('usage', `--${flag} expects a list of token ids like 1,2,3`);
  return parts.map((s) => {
    if (!/^\d+$/.test(s)) throw new UserError('usage', `--${flag}: "${s}" is not a token id (non-negative integer)`);
    return Number(s);
  });
}
