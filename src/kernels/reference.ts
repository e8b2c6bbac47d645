// The reference backend: each op of the Backend interface as plain, readable TypeScript that
// reads like the model specification (one function per op, no tricks). It is the specification in code;
// faster backends are tested against it op by op. Sums are accumulated in doubles and stored as
// f32, which keeps it well inside the golden fp32 tolerances.
import { UserError } from '../errors.ts';
import type { Bf16Matrix, MoeWeights, Mxfp4Matrices } from '../model/weights.ts';
import type { AttentionShape, Backend, RopeTable, TensorStore } from './backend.ts';

/** Plain ArrayBuffers; the garbage collector frees them. */
export class HeapStore implements TensorStore {
  allocate(bytes: number, label: string): Uint8Array {
    try {
      return new Uint8Array(bytes);
    } catch {
      throw new UserError('memory', `cannot allocate ${(bytes / 2 ** 20).toFixed(1)} MiB for ${label}`);
    }
  }

  free(_buffer: Uint8Array): void {
    // Nothing to do: the buffer is collected once unreferenced.
  }
}

/** The FP4 (E2M1) code points of MXFP4, indexed by the 4-bit code. */
export const FP4_VALUES: readonly number[] = [+0, +0.5, +1, +1.5, +2, +3, +4, +6, -0, -0.5, -1, -1.5, -2, -3, -4, -6];

/** Widens `count` BF16 words starting at `offset` into `out` (bf16 is the upper half of an f32). */
export function bf16ToF32(src: Uint16Array, offset: number, count: number, out: Float32Array): void {
  const bits = new Uint32Array(out.buffer, out.byteOffset, count);
  for (let i = 0; i < count; i++) bits[i] = src[offset + i]! << 16;
}

/** Dequantises row `row` of expert `expert` of an MXFP4 stack into `out` (length m.cols). */
export function dequantMxfp4Row(m: Mxfp4Matrices, expert: number, row: number, out: Float32Array): void {
  const groups = m.cols / 32;
  const rowIndex = expert * m.rows + row;
  for (let g = 0; g < groups; g++) {
    const scale = 2 ** (m.scales[rowIndex * groups + g]! - 127);
    const blockStart = (rowIndex * groups + g) * 16;
    for (let j = 0; j < 16; j++) {
      const byte = m.blocks[blockStart + j]!;
      out[g * 32 + 2 * j] = FP4_VALUES[byte & 0x0f]! * scale;
      out[g * 32 + 2 * j + 1] = FP4_VALUES[byte >> 4]! * scale;
    }
  }
}

function rmsnorm(x: Float32Array, tokens: number, scale: Float32Array, eps: number, out: Float32Array): void {
  const width = scale.length;
  for (let t = 0; t < tokens; t++) {
    let sumSquares = 0;
    for (let c = 0; c < width; c++) sumSquares += x[t * width + c]! ** 2;
    const inv = 1 / Math.sqrt(sumSquares / width + eps);
    for (let c = 0; c < width; c++) out[t * width + c] = x[t * width + c]! * inv * scale[c]!;
  }
}

function linear(x: Float32Array, tokens: number, w: Bf16Matrix, bias: Float32Array | null, out: Float32Array): void {
  const row = new Float32Array(w.cols);
  for (let r = 0; r < w.rows; r++) {
    bf16ToF32(w.data, r * w.cols, w.cols, row); // each weight row is widened once for all tokens
    for (let t = 0; t < tokens; t++) {
      let sum = 0;
      for (let c = 0; c < w.cols; c++) sum += x[t * w.cols + c]! * row[c]!;
      out[t * w.rows + r] = sum + (bias === null ? 0 : bias[r]!);
    }
  }
}

function rope(x: Float32Array, tokens: number, heads: number, headDim: number, positions: Int32Array, table: RopeTable): void {
  const half = headDim / 2;
  for (let t = 0; t < tokens; t++) {
    const p = positions[t]!;
    for (let h = 0; h < heads; h++) {
      const base = (t * heads + h) * headDim;
      for (let i = 0; i < half; i++) {
        const cos = table.cos[p * table.halfDim + i]!;
        const sin = table.sin[p * table.halfDim + i]!;
        const x1 = x[base + i]!;
        const x2 = x[base + half + i]!;
        x[base + i] = x1 * cos - x2 * sin;
        x[base + half + i] = x2 * cos + x1 * sin;
      }
    }
  }
}

function attention(
  q: Float32Array, tokens: number, positions: Int32Array,
  keys: Float32Array, values: Float32Array, keyCount: number, keyPositions: Int32Array,
  sinks: Float32Array, shape: AttentionShape, out: Float32Array,
): void {
  const { heads, kvHeads, headDim, window } = shape;
  const groupSize = heads / kvHeads;
  const scale = 1 / Math.sqrt(headDim);
  const scores = new Float64Array(keyCount);
  const visible = new Uint8Array(keyCount);
  for (let t = 0; t < tokens; t++) {
    const p = positions[t]!;
    for (let k = 0; k < keyCount; k++) {
      const kp = keyPositions[k]!;
      visible[k] = kp >= 0 && kp <= p && (window === 0 || p - kp < window) ? 1 : 0;
    }
    for (let h = 0; h < heads; h++) {
      const kvh = Math.floor(h / groupSize);
      const qBase = (t * heads + h) * headDim;
      let max = sinks[h]!;
      for (let k = 0; k < keyCount; k++) {
        if (visible[k] === 0) continue;
        const kBase = (k * kvHeads + kvh) * headDim;
        let dot = 0;
        for (let d = 0; d < headDim; d++) dot += q[qBase + d]! * keys[kBase + d]!;
        scores[k] = dot * scale;
        if (scores[k]! > max) max = scores[k]!;
      }
      // The sink joins the softmax's denominator but contributes no value.
      let denominator = Math.exp(sinks[h]! - max);
      const acc = new Float64Array(headDim);
      for (let k = 0; k < keyCount; k++) {
        if (visible[k] === 0) continue;
        const weight = Math.exp(scores[k]! - max);
        denominator += weight;
        const vBase = (k * kvHeads + kvh) * headDim;
        for (let d = 0; d < headDim; d++) acc[d] += weight * values[vBase + d]!;
      }
      for (let d = 0; d < headDim; d++) out[qBase + d] = acc[d]! / denominator;
    }
  }
}

/** SwiGLU with clamp on interleaved (glu = even, linear = odd) columns of h; a has half h's width. */
export function swiglu(h: Float32Array | Float64Array, limit: number, a: Float32Array | Float64Array): void {
  const alpha = 1.702;
  for (let i = 0; i < a.length; i++) {
    const glu = Math.min(h[2 * i]!, limit);
    const lin = Math.min(Math.max(h[2 * i + 1]!, -limit), limit);
    a[i] = (glu / (1 + Math.exp(-alpha * glu))) * (lin + 1);
  }
}

function experts(
  x: Float32Array, tokens: number, indices: Int32Array, weights: Float32Array, k: number,
  moe: MoeWeights, swigluLimit: number, out: Float32Array,
): void {
  const { mlp1Weight: w1, mlp2Weight: w2 } = moe;
  const hidden = w1.cols;
  const width1 = w1.rows; // 2I
  const intermediate = w2.cols;
  const acc = new Float64Array(tokens * hidden);
  const row1 = new Float32Array(hidden);
  const row2 = new Float32Array(intermediate);
  for (let e = 0; e < w1.count; e++) {
    // The (token, slot) pairs routed to expert e, processed as one batch.
    const routed: number[] = [];
    for (let i = 0; i < tokens * k; i++) if (indices[i] === e) routed.push(i);
    if (routed.length === 0) continue;
    const n = routed.length;
    const h = new Float32Array(n * width1);
    for (let r = 0; r < width1; r++) {
      dequantMxfp4Row(w1, e, r, row1);
      const bias = moe.mlp1Bias[e * width1 + r]!;
      for (let j = 0; j < n; j++) {
        const t = Math.floor(routed[j]! / k);
        let sum = 0;
        for (let c = 0; c < hidden; c++) sum += x[t * hidden + c]! * row1[c]!;
        h[j * width1 + r] = sum + bias;
      }
    }
    const a = new Float32Array(n * intermediate);
    for (let j = 0; j < n; j++) swiglu(h.subarray(j * width1, (j + 1) * width1), swigluLimit, a.subarray(j * intermediate, (j + 1) * intermediate));
    for (let r = 0; r < hidden; r++) {
      dequantMxfp4Row(w2, e, r, row2);
      const bias = moe.mlp2Bias[e * hidden + r]!;
      for (let j = 0; j < n; j++) {
        let sum = 0;
        for (let c = 0; c < intermediate; c++) sum += a[j * intermediate + c]! * row2[c]!;
        const y = Math.fround(sum + bias);
        const t = Math.floor(routed[j]! / k);
        acc[t * hidden + r] += weights[routed[j]!]! * y;
      }
    }
  }
  for (let i = 0; i < tokens * hidden; i++) out[i] = acc[i]!;
}

/** The reference backend (synchronous, single-threaded). */
export function createReferenceBackend(store: TensorStore = new HeapStore()): Backend {
  return {
    name: 'reference',
    store,
    rmsnorm,
    linear,
    rope,
    attention,
    experts,
    close: async () => {},
  };
}
