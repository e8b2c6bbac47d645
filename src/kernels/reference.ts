// The reference backend: each op of the Backend interface as plain, readable TypeScript that
// reads like the model specification (one function per op, no tricks). It is the specification in code;
// faster backends are tested against it op by op. Sums are accumulated in doubles and stored as
// f32, which keeps it well inside the golden fp32 tolerances.
import { HeapStore, INT8_GROUP, bf16ToF32, dequantInt8Row, dequantMxfp4Row, int8Bytes, isInt8Matrix, type Bf16Matrix, type Int8Matrix, type LinearWeight, type TensorStore } from '../tensor/index.ts';
import type { AttentionShape, Backend, ExpertWeights, KvArray, RopeTable } from './backend.ts';

function rmsnorm(x: Float32Array, tokens: number, scale: Float32Array, eps: number, out: Float32Array): void {
  const width = scale.length;
  for (let t = 0; t < tokens; t++) {
    let sumSquares = 0;
    for (let c = 0; c < width; c++) sumSquares += x[t * width + c]! ** 2;
    const inv = 1 / Math.sqrt(sumSquares / width + eps);
    for (let c = 0; c < width; c++) out[t * width + c] = x[t * width + c]! * inv * scale[c]!;
  }
}

function linear(x: Float32Array, tokens: number, w: LinearWeight, bias: Float32Array | null, out: Float32Array): void {
  const row = new Float32Array(w.cols);
  for (let r = 0; r < w.rows; r++) {
    // Each weight row is widened once for all tokens.
    if (isInt8Matrix(w)) dequantInt8Row(w, r, row);
    else bf16ToF32(w.data, r * w.cols, w.cols, row);
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

/** The first `count` entries of a KV array as f32 (bf16 words widened). */
function kvAsF32(a: KvArray, count: number): Float32Array {
  if (a instanceof Float32Array) return a;
  const f = new Float32Array(count);
  bf16ToF32(a, 0, count, f);
  return f;
}

function attention(
  q: Float32Array, tokens: number, positions: Int32Array,
  kvKeys: KvArray, kvValues: KvArray, keyCount: number, keyPositions: Int32Array,
  sinks: Float32Array, shape: AttentionShape, out: Float32Array,
): void {
  const { heads, kvHeads, headDim, window } = shape;
  const keys = kvAsF32(kvKeys, keyCount * kvHeads * headDim);
  const values = kvAsF32(kvValues, keyCount * kvHeads * headDim);
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
  moe: ExpertWeights, swigluLimit: number, out: Float32Array,
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
const ROUNDER = 6755399441055744;

/** Every bf16 word's value (256 KB, made once): a table read is the fastest widening in JavaScript. */
let bf16Values: Float32Array | undefined;
function bf16Table(): Float32Array {
  if (bf16Values === undefined) {
    const bits = new Uint32Array(65536);
    for (let i = 0; i < 65536; i++) bits[i] = i << 16;
    bf16Values = new Float32Array(bits.buffer);
  }
  return bf16Values;
}

/**
 * The int8 copy of a bf16 matrix (`--unembedding int8`): per group of 32 columns of a row, scale =
 * max|w| / 127 and code = round(w / scale), so each weight is off by at most half a step (0.4% of
 * its group's largest). Computed in f32 like the wasm backend's kernel, whose copy equals this one.
 */
function int8Copy(store: TensorStore, w: Bf16Matrix, label: string): Int8Matrix {
  const { rows, cols, data } = w;
  const bytes = int8Bytes(w);
  const cb = store.allocate(bytes.codes, `${label}.codes`), sb = store.allocate(bytes.scales, `${label}.scales`);
  const codes = new Int8Array(cb.buffer, cb.byteOffset, rows * cols);
  const scales = new Float32Array(sb.buffer, sb.byteOffset, bytes.scales / 4);
  const groups = Math.ceil(cols / INT8_GROUP);
  const value = bf16Table();
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < groups; g++) {
      const c0 = r * cols + g * INT8_GROUP, c1 = Math.min((r + 1) * cols, c0 + INT8_GROUP);
      // The largest magnitude: without the sign bit, bf16 words order as their magnitudes (no NaNs in weights).
      let top = 0;
      for (let i = c0; i < c1; i++) {
        const m = data[i]! & 0x7fff;
        if (m > top) top = m;
      }
      const m = value[top]!;
      scales[r * groups + g] = m / 127;
      // The product is rounded to nearest, ties to even, by adding and removing 1.5 * 2^52.
      const inv = m > 0 ? Math.fround(127 / m) : 0;
      for (let i = c0; i < c1; i++) codes[i] = Math.fround(value[data[i]!]! * inv) + ROUNDER - ROUNDER;
    }
  }
  return { rows, cols, codes, scales };
}

export function createReferenceBackend(store: TensorStore = new HeapStore()): Backend {
  return {
    name: 'reference',
    store,
    rmsnorm,
    linear,
    rope,
    attention,
    experts,
    int8Copy: async (w, label) => int8Copy(store, w, label),
    close: async () => {},
  };
}
