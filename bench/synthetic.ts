// Seeded random tensors for the op benchmarks (bench/ops.ts, bench/handoff.ts, bench/attention.ts,
// bench/kernel-ab.ts, bench/unembedding.ts): raw bytes, f32 values, bf16 words of a small magnitude
// (also into memory a bench lays out itself, fillBf16), and MXFP4 expert stacks whose scales keep
// the values near 1.
import type { ExpertWeights } from '../src/kernels/backend.ts';
import type { TensorStore } from '../src/tensor/index.ts';

/** Fills `words` with bf16 words of magnitude 2^-6..2^-5 (about N(0, 0.02)'s), random sign and fraction. */
export function fillBf16(words: Uint16Array, random: () => number): Uint16Array {
  for (let i = 0; i < words.length; i++) words[i] = (random() < 0.5 ? 0x8000 : 0) | 0x3c80 | Math.floor(random() * 128);
  return words;
}

export class SyntheticTensors {
  constructor(private readonly store: TensorStore, private readonly random: () => number) {}

  bytes(n: number): Uint8Array {
    const u = this.store.allocate(n, 'bench');
    for (let i = 0; i < n; i++) u[i] = Math.floor(this.random() * 256);
    return u;
  }

  f32(n: number, scale = 1): Float32Array {
    const u = this.store.allocate(n * 4, 'bench');
    const a = new Float32Array(u.buffer, u.byteOffset, n);
    for (let i = 0; i < n; i++) a[i] = (this.random() * 2 - 1) * scale;
    return a;
  }

  /** bf16 words of magnitude 2^-6..2^-5, random sign and fraction (fillBf16). */
  bf16(n: number): Uint16Array {
    const u = this.store.allocate(n * 2, 'bench');
    return fillBf16(new Uint16Array(u.buffer, u.byteOffset, n), this.random);
  }

  /** `experts` MXFP4 matrices of [rows, cols]: random nibbles, E8M0 scales 118-125. */
  mxfp4(experts: number, rows: number, cols: number): ExpertWeights['mlp1Weight'] {
    const scales = this.bytes(experts * rows * cols / 32);
    for (let i = 0; i < scales.length; i++) scales[i] = 118 + (scales[i]! % 8);
    return { count: experts, rows, cols, blocks: this.bytes(experts * rows * cols / 2), scales };
  }
}
