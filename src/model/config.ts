// The model's hyper-parameters, in the domain's own names, read from either checkpoint layout's
// config.json. Every other module takes a ModelConfig; nothing else parses config files.
import { UserError } from '../errors.ts';

export interface ModelConfig {
  numLayers: number;
  numExperts: number;
  expertsPerToken: number;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  swigluLimit: number;
  headDim: number;
  numAttentionHeads: number;
  numKeyValueHeads: number;
  slidingWindow: number;
  initialContextLength: number;
  ropeTheta: number;
  ropeScalingFactor: number;
  ropeNtkAlpha: number;
  ropeNtkBeta: number;
}

/** The longest sequence the model supports: YaRN stretches the initial context by the scaling factor. */
export function contextLength(config: ModelConfig): number {
  return Math.round(config.initialContextLength * Math.max(1, config.ropeScalingFactor));
}

/** Layer n uses banded (sliding-window) attention when n is even, dense attention when odd. */
export function isSlidingLayer(layer: number): boolean {
  return layer % 2 === 0;
}

const ORIGINAL_FIELDS: Record<keyof ModelConfig, string> = {
  numLayers: 'num_hidden_layers',
  numExperts: 'num_experts',
  expertsPerToken: 'experts_per_token',
  vocabSize: 'vocab_size',
  hiddenSize: 'hidden_size',
  intermediateSize: 'intermediate_size',
  swigluLimit: 'swiglu_limit',
  headDim: 'head_dim',
  numAttentionHeads: 'num_attention_heads',
  numKeyValueHeads: 'num_key_value_heads',
  slidingWindow: 'sliding_window',
  initialContextLength: 'initial_context_length',
  ropeTheta: 'rope_theta',
  ropeScalingFactor: 'rope_scaling_factor',
  ropeNtkAlpha: 'rope_ntk_alpha',
  ropeNtkBeta: 'rope_ntk_beta',
};

/** Parses the `original/` layout's config.json object; `source` names the file in errors. */
export function parseOriginalConfig(json: unknown, source: string): ModelConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new UserError('checkpoint', `${source}: expected a JSON object`);
  }
  const obj = json as Record<string, unknown>;
  const out: Partial<ModelConfig> = {};
  for (const [key, field] of Object.entries(ORIGINAL_FIELDS) as [keyof ModelConfig, string][]) {
    const v = obj[field];
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw new UserError('checkpoint', `${source}: field "${field}" is missing or not a number`);
    }
    out[key] = v;
  }
  const config = out as ModelConfig;
  validateConfig(config, source);
  return config;
}

/** Writes a ModelConfig back in the `original/` layout's field names. */
export function toOriginalConfigJson(config: ModelConfig): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [key, field] of Object.entries(ORIGINAL_FIELDS) as [keyof ModelConfig, string][]) out[field] = config[key];
  return out;
}

/** The most positions a model may address: 8x gpt-oss's 131,072 (the RoPE table is built for all of them). */
export const MAX_CONTEXT_LENGTH = 1 << 20;

/**
 * Integer fields and their ranges. The bounds are far beyond any gpt-oss shape (20b: 24 layers, 32
 * experts, hidden 2880, vocabulary 201,088) but keep every tensor, table and kernel index finite
 * and addressable, so a corrupt or hostile config is refused before anything is allocated.
 */
const INTEGER_RANGES: [keyof ModelConfig, number, number][] = [
  ['numLayers', 1, 4096],
  ['numExperts', 1, 4096],
  ['expertsPerToken', 1, 4096],
  ['vocabSize', 1, 1 << 22],
  ['hiddenSize', 32, 1 << 16],
  ['intermediateSize', 32, 1 << 16],
  ['headDim', 2, 4096],
  ['numAttentionHeads', 1, 4096],
  ['numKeyValueHeads', 1, 4096],
  ['initialContextLength', 1, MAX_CONTEXT_LENGTH],
  ['slidingWindow', 1, MAX_CONTEXT_LENGTH],
];

/**
 * Checks every field against the range the engine can run: one UserError('checkpoint') naming the
 * file, the field and the value. Values outside these ranges used to crash (a RoPE table of 1e12
 * positions), allocate gigabytes, or compute NaN logits (rope_theta <= 1, a negative swiglu_limit).
 */
export function validateConfig(c: ModelConfig, source: string): void {
  const bad = (field: keyof ModelConfig, rule: string): never => {
    throw new UserError('checkpoint', `${source}: ${ORIGINAL_FIELDS[field]} must be ${rule}, got ${c[field]}`);
  };
  for (const [k, min, max] of INTEGER_RANGES) {
    if (!Number.isInteger(c[k]) || c[k] < min || c[k] > max) bad(k, `an integer from ${min} to ${max}`);
  }
  if (c.expertsPerToken > c.numExperts) throw new UserError('checkpoint', `${source}: experts_per_token (${c.expertsPerToken}) exceeds num_experts (${c.numExperts})`);
  if (c.numKeyValueHeads > c.numAttentionHeads || c.numAttentionHeads % c.numKeyValueHeads !== 0) throw new UserError('checkpoint', `${source}: num_attention_heads (${c.numAttentionHeads}) is not a multiple of num_key_value_heads (${c.numKeyValueHeads})`);
  if (c.hiddenSize % 32 !== 0 || c.intermediateSize % 32 !== 0) throw new UserError('checkpoint', `${source}: hidden_size and intermediate_size must be multiples of 32 (MXFP4 groups)`);
  if (c.headDim % 2 !== 0) throw new UserError('checkpoint', `${source}: head_dim must be even (RoPE rotates half-heads)`);
  // Real numbers: NaN and infinities fail every comparison below.
  if (!(c.swigluLimit > 0 && c.swigluLimit <= 1e6)) bad('swigluLimit', 'a number above 0 and at most 1e6 (gpt-oss: 7)');
  // theta^(2i/d) must grow with i, and YaRN divides by ln(theta).
  if (!(c.ropeTheta > 1 && c.ropeTheta <= 1e12)) bad('ropeTheta', 'a number above 1 and at most 1e12 (gpt-oss: 150000)');
  if (!(c.ropeScalingFactor > 0 && c.ropeScalingFactor <= 1024)) bad('ropeScalingFactor', 'a number above 0 and at most 1024 (1: no scaling; gpt-oss: 32)');
  if (!(c.ropeNtkAlpha > 0 && c.ropeNtkAlpha <= 1e6)) bad('ropeNtkAlpha', 'a number above 0 and at most 1e6 (gpt-oss: 1)');
  if (!(c.ropeNtkBeta > 0 && c.ropeNtkBeta <= 1e6)) bad('ropeNtkBeta', 'a number above 0 and at most 1e6 (gpt-oss: 32)');
  // YaRN's ramp runs from the beta boundary to the alpha one: equal or crossed gives 0/0.
  if (c.ropeScalingFactor > 1 && !(c.ropeNtkAlpha < c.ropeNtkBeta)) {
    throw new UserError('checkpoint', `${source}: rope_ntk_alpha (${c.ropeNtkAlpha}) must be below rope_ntk_beta (${c.ropeNtkBeta}) when rope_scaling_factor is above 1`);
  }
  const positions = contextLength(c);
  if (positions > MAX_CONTEXT_LENGTH) {
    throw new UserError('checkpoint', `${source}: initial_context_length x rope_scaling_factor (${c.initialContextLength} x ${c.ropeScalingFactor}) is ${positions} positions, more than the ${MAX_CONTEXT_LENGTH} this engine supports`);
  }
  if (c.slidingWindow > positions) bad('slidingWindow', `at most the context length (${positions})`);
}
