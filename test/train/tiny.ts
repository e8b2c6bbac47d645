// The tiny gpt-oss shape the training tests use: every architectural feature (banded and dense
// layers, GQA, YaRN, sinks, top-k MoE, the SwiGLU clamp) at a size finite differences can afford.
import type { ModelConfig } from '../../src/model/config.ts';

export const TINY: ModelConfig = {
  numLayers: 2,
  numExperts: 4,
  expertsPerToken: 2,
  vocabSize: 48,
  hiddenSize: 64,
  intermediateSize: 32,
  swigluLimit: 7,
  headDim: 16,
  numAttentionHeads: 4,
  numKeyValueHeads: 2,
  slidingWindow: 4,
  initialContextLength: 64,
  ropeTheta: 150000,
  ropeScalingFactor: 32,
  ropeNtkAlpha: 1,
  ropeNtkBeta: 32,
};
