// gpt-oss-nano's shape and the recipe's training settings (scripts/train-nano.ts runs them).
import type { ModelConfig } from '../../model/config.ts';
import { VOCAB_SIZE } from '../../tokenizer/specials.ts';

/**
 * gpt-oss-nano: the gpt-oss architecture (banded and dense layers alternating, attention sinks,
 * GQA, YaRN RoPE, top-k MoE with the clamped SwiGLU, o200k_harmony's vocabulary) small enough
 * to train here in about an hour.
 */
export const NANO_CONFIG: ModelConfig = {
  numLayers: 4,
  numExperts: 8,
  expertsPerToken: 2,
  vocabSize: VOCAB_SIZE,
  hiddenSize: 128,
  intermediateSize: 128,
  swigluLimit: 7,
  headDim: 32,
  numAttentionHeads: 4,
  numKeyValueHeads: 2,
  slidingWindow: 128,
  initialContextLength: 4096,
  ropeTheta: 150000,
  ropeScalingFactor: 32,
  ropeNtkAlpha: 1,
  ropeNtkBeta: 32,
};

/** The recipe's training settings (each can be overridden by its flag). */
export const NANO_TRAINING = { epochs: 1, lr: 3e-3, batchTokens: 8192, evalSplit: 0.02, evalEvery: 100, saveEvery: 5 };
