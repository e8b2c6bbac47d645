// YaRN rotary position embeddings: the per-frequency inverse wavelengths and the cos/sin tables
// (concentration applied) that the backend's rope op reads by absolute position.
import type { RopeTable } from '../kernels/backend.ts';
import type { ModelConfig } from './config.ts';

export interface YarnParameters {
  /** Multiplies cos and sin (YaRN's attention temperature): 0.1*ln(factor) + 1, or 1 without scaling. */
  concentration: number;
  /** headDim/2 inverse frequencies, blended between interpolation and extrapolation by YaRN's ramp. */
  invFreq: Float64Array;
}

export function yarnParameters(config: ModelConfig): YarnParameters {
  const { headDim, ropeTheta: theta, ropeScalingFactor: factor, initialContextLength, ropeNtkAlpha: alpha, ropeNtkBeta: beta } = config;
  const half = headDim / 2;
  const invFreq = new Float64Array(half);
  // The reference computes these in float32; rounding each step the same way keeps our tables
  // within an ulp of its own (positions reach 131072, where argument rounding matters).
  const freq = (i: number): number => Math.fround(theta ** Math.fround((2 * i) / headDim));
  if (factor <= 1) {
    for (let i = 0; i < half; i++) invFreq[i] = Math.fround(1 / freq(i));
    return { concentration: 1, invFreq };
  }
  const concentration = 0.1 * Math.log(factor) + 1;
  // Frequencies that complete fewer than `beta` turns over the original context are interpolated
  // (divided by factor); those with more than `alpha` turns keep their value; a linear ramp between.
  const low = (half * Math.log(initialContextLength / (beta * 2 * Math.PI))) / Math.log(theta);
  const high = (half * Math.log(initialContextLength / (alpha * 2 * Math.PI))) / Math.log(theta);
  for (let i = 0; i < half; i++) {
    const ramp = Math.min(1, Math.max(0, (i - low) / (high - low)));
    const mask = 1 - ramp;
    const f = freq(i);
    const interpolation = Math.fround(1 / Math.fround(factor * f));
    const extrapolation = Math.fround(1 / f);
    invFreq[i] = Math.fround(interpolation * (1 - mask) + extrapolation * mask);
  }
  return { concentration, invFreq };
}

/** cos/sin tables for positions 0..positions-1. */
export function buildRopeTable(config: ModelConfig, positions: number): RopeTable {
  const { concentration, invFreq } = yarnParameters(config);
  const half = invFreq.length;
  const cos = new Float32Array(positions * half);
  const sin = new Float32Array(positions * half);
  for (let p = 0; p < positions; p++) {
    for (let i = 0; i < half; i++) {
      const angle = Math.fround(p * invFreq[i]!);
      cos[p * half + i] = Math.cos(angle) * concentration;
      sin[p * half + i] = Math.sin(angle) * concentration;
    }
  }
  return { cos, sin, halfDim: half, positions };
}
