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

export function validateConfig(c: ModelConfig, source: string): void {
  const positiveInts: (keyof ModelConfig)[] = [
    'numLayers', 'numExperts', 'expertsPerToken', 'vocabSize', 'hiddenSize', 'intermediateSize',
    'headDim', 'numAttentionHeads', 'numKeyValueHeads', 'slidingWindow', 'initialContextLength',
  ];
  for (const k of positiveInts) {
    if (!Number.isInteger(c[k]) || c[k] <= 0) throw new UserError('checkpoint', `${source}: ${ORIGINAL_FIELDS[k]} must be a positive integer, got ${c[k]}`);
  }
  if (c.expertsPerToken > c.numExperts) throw new UserError('checkpoint', `${source}: experts_per_token (${c.expertsPerToken}) exceeds num_experts (${c.numExperts})`);
  if (c.numAttentionHeads % c.numKeyValueHeads !== 0) throw new UserError('checkpoint', `${source}: num_attention_heads (${c.numAttentionHeads}) is not a multiple of num_key_value_heads (${c.numKeyValueHeads})`);
  if (c.hiddenSize % 32 !== 0 || c.intermediateSize % 32 !== 0) throw new UserError('checkpoint', `${source}: hidden_size and intermediate_size must be multiples of 32 (MXFP4 groups)`);
  if (c.headDim % 2 !== 0) throw new UserError('checkpoint', `${source}: head_dim must be even (RoPE rotates half-heads)`);
}
