// The forward pass's glue between backend ops (residual adds, row copies, top-k routing, argmax,
// a row's top-k) on host
// arrays: the DeviceResident contract for the backends whose results land in host memory. A
// backend that keeps activations on a device brings its own (Backend.resident), so the forward
// pass has one code path for both.
import type { ActivationArray, DeviceResident } from '../kernels/backend.ts';

export const hostGlue: DeviceResident = {
  add(x, y, count) {
    for (let i = 0; i < count; i++) x[i] = x[i]! + y[i]!;
  },
  copyRows(src, srcStride, dst, dstStride, width, rows) {
    const from = words(src), to = words(dst);
    for (let r = 0; r < rows; r++) to.set(from.subarray(r * srcStride, r * srcStride + width), r * dstStride);
  },
  route(gate, tokens, experts, k, indices, weights) {
    for (let t = 0; t < tokens; t++) {
      route(gate.subarray(t * experts, (t + 1) * experts), k, indices.subarray(t * k, (t + 1) * k), weights.subarray(t * k, (t + 1) * k));
    }
  },
  argmax(x, rows, width, out) {
    for (let r = 0; r < rows; r++) {
      let best = 0;
      for (let c = 1; c < width; c++) if (x[r * width + c]! > x[r * width + best]!) best = c;
      out[r] = best;
    }
  },
  topK(x, width, k, ids, values) {
    // A list of the best k so far, most likely first: most values fall below its last and cost one compare.
    const best: number[] = [];
    for (let c = 0; c < width; c++) {
      const v = x[c]!;
      if (!(v > -Infinity) || (best.length === k && !(v > x[best[k - 1]!]!))) continue;
      let at = best.length;
      while (at > 0 && v > x[best[at - 1]!]!) at--;
      best.splice(at, 0, c);
      if (best.length > k) best.pop();
    }
    for (let j = 0; j < k; j++) {
      ids[j] = best[j] ?? -1;
      values[j] = best[j] === undefined ? 0 : x[best[j]!]!;
    }
  },
  sliceWeights(x, width, slice, invT, top, sums) {
    const max = x[top[0]!]!;
    let g = 0;
    for (; g * slice < width; g++) {
      let sum = 0;
      for (let c = g * slice; c < Math.min(width, (g + 1) * slice); c++) sum += Math.exp((x[c]! - max) * invT);
      sums[g] = sum;
    }
    sums[g] = max;
  },
  written() {},
  toHost: () => Promise.resolve(),
};

/** The 32-bit words under `a` (copies keep f32 bit patterns and i32 values alike). */
function words(a: ActivationArray): Uint32Array {
  return new Uint32Array(a.buffer, a.byteOffset, a.length);
}

/**
 * Top-k routing for one token: the k largest gate logits in decreasing order (lower expert index
 * first on exact ties), and their softmax over those k only.
 */
export function route(gate: Float32Array, k: number, indices: Int32Array, weights: Float32Array): void {
  const order = Array.from(gate.keys()).sort((a, b) => gate[b]! - gate[a]! || a - b);
  const max = gate[order[0]!]!;
  let sum = 0;
  for (let j = 0; j < k; j++) {
    indices[j] = order[j]!;
    sum += Math.exp(gate[order[j]!]! - max);
  }
  for (let j = 0; j < k; j++) weights[j] = Math.exp(gate[indices[j]!]! - max) / sum;
}
