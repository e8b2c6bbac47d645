// The WGSL kernels of the WebGPU backend, one compute shader per Backend op (attention takes two:
// split partial sums and their combine; the experts three: the fused up projection with SwiGLU,
// the down projection, and the weighted combine), and the forward pass's glue that keeps a step on
// the GPU (residual add, strided row copy, top-k routing, the per-pair expert table, argmax).
// Arithmetic is f32 (the exact mode), except the experts' dot products in the f16 mode. Every shader reads its sizes from a uniform block
// `p` at binding 0 and finds its item from a 2D grid of workgroups (a dispatch dimension holds at
// most 65535), so `item = wid.x + wid.y * nw.x` and items past the end return at once.

/** Workgroup width of every kernel. */
export const WORKGROUP = 64;
/** Tokens one workgroup of the matrix kernels carries at once (its accumulators). */
export const TOKEN_BLOCK = 8;
/** Longest attention head the attention kernel holds in workgroup memory. */
export const MAX_HEAD_DIM = 256;

const header = /* wgsl */ `
fn itemOf(wid: vec3u, nw: vec3u) -> u32 { return wid.x + wid.y * nw.x; }
`;

export const RMSNORM = /* wgsl */ `${header}
struct P { tokens: u32, width: u32, eps: f32, pad: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> scale: array<f32>;
@group(0) @binding(3) var<storage, read_write> outp: array<f32>;
var<workgroup> partial: array<f32, ${WORKGROUP}>;

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nw: vec3u, @builtin(local_invocation_index) lid: u32) {
  let t = itemOf(wid, nw);
  if (t >= p.tokens) { return; }
  let base = t * p.width;
  var sum = 0.0;
  for (var c = lid; c < p.width; c += ${WORKGROUP}u) { let v = x[base + c]; sum += v * v; }
  partial[lid] = sum;
  workgroupBarrier();
  for (var s = ${WORKGROUP / 2}u; s > 0u; s >>= 1u) {
    if (lid < s) { partial[lid] += partial[lid + s]; }
    workgroupBarrier();
  }
  let inv = 1.0 / sqrt(partial[0] / f32(p.width) + p.eps);
  for (var c = lid; c < p.width; c += ${WORKGROUP}u) { outp[base + c] = x[base + c] * inv * scale[c]; }
}
`;

/**
 * out[t, rowBase + r] = x[t] . w[r] + bias[rowBase + r] for the rows r of one weight chunk; w holds
 * BF16 words two to a u32 (element i in the low half when i is even), widened by a shift. `lanes`
 * threads share a row (64 for gpt-oss's 2880-wide rows; fewer for narrow ones, so a workgroup
 * takes several rows instead of leaving threads idle), summed in workgroup memory.
 */
export function linearBf16(lanes: number): string {
  const rowsPerGroup = WORKGROUP / lanes;
  return /* wgsl */ `${header}
struct P { tokens: u32, rows: u32, cols: u32, hasBias: u32, rowBase: u32, outStride: u32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<u32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> outp: array<f32>;
var<workgroup> partial: array<f32, ${WORKGROUP * TOKEN_BLOCK}>;

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nw: vec3u, @builtin(local_invocation_index) lid: u32) {
  let lane = lid % ${lanes}u;
  let r = itemOf(wid, nw) * ${rowsPerGroup}u + lid / ${lanes}u;
  // Threads past the last row still take part in the barriers.
  let valid = r < p.rows;
  let rowStart = r * p.cols;
  for (var t0 = 0u; t0 < p.tokens; t0 += ${TOKEN_BLOCK}u) {
    let n = min(${TOKEN_BLOCK}u, p.tokens - t0);
    // Explicit initialisers: see ATTENTION_PARTIAL.
    var acc = array<f32, ${TOKEN_BLOCK}>();
    if (valid) {
      for (var c = lane; c < p.cols; c += ${lanes}u) {
        let i = rowStart + c;
        let word = w[i >> 1u];
        let wv = bitcast<f32>(select(word << 16u, word & 0xffff0000u, (i & 1u) == 1u));
        for (var j = 0u; j < n; j++) { acc[j] += x[(t0 + j) * p.cols + c] * wv; }
      }
    }
    for (var j = 0u; j < ${TOKEN_BLOCK}u; j++) { partial[j * ${WORKGROUP}u + lid] = acc[j]; }
    workgroupBarrier();
    for (var s = ${lanes / 2}u; s > 0u; s >>= 1u) {
      if (lane < s) {
        for (var j = 0u; j < ${TOKEN_BLOCK}u; j++) { partial[j * ${WORKGROUP}u + lid] += partial[j * ${WORKGROUP}u + lid + s]; }
      }
      workgroupBarrier();
    }
    if (valid) {
      let row = p.rowBase + r;
      var b = 0.0;
      if (p.hasBias == 1u) { b = bias[row]; }
      for (var j = lane; j < n; j += ${lanes}u) { outp[(t0 + j) * p.outStride + row] = partial[j * ${WORKGROUP}u + lid - lane] + b; }
    }
    workgroupBarrier();
  }
}
`;
}

/** Threads per row of the linear kernel for rows of `cols` values: about 8 values each, 4 to 64. */
export const LINEAR_LANES = [4, 8, 16, 32, 64] as const;
export type LinearLanes = (typeof LINEAR_LANES)[number];
export function linearLanes(cols: number): LinearLanes {
  return Math.min(WORKGROUP, Math.max(4, 2 ** Math.ceil(Math.log2(Math.ceil(cols / 8))))) as LinearLanes;
}

/**
 * x1' = x1 cos - x2 sin, x2' = x2 cos + x1 sin per (token, head, i < half); cos/sin are the rows of
 * the whole table (`tableHalf` wide) at each token's position.
 */
export const ROPE = /* wgsl */ `${header}
struct P { tokens: u32, heads: u32, half: u32, tableHalf: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> pos: array<i32>;
@group(0) @binding(3) var<storage, read> cosT: array<f32>;
@group(0) @binding(4) var<storage, read> sinT: array<f32>;

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nw: vec3u, @builtin(local_invocation_index) lid: u32) {
  let idx = itemOf(wid, nw) * ${WORKGROUP}u + lid;
  if (idx >= p.tokens * p.heads * p.half) { return; }
  let i = idx % p.half;
  let th = idx / p.half; // token * heads + head
  let t = th / p.heads;
  let base = th * 2u * p.half;
  let row = u32(pos[t]) * p.tableHalf;
  let c = cosT[row + i];
  let s = sinT[row + i];
  let x1 = x[base + i];
  let x2 = x[base + p.half + i];
  x[base + i] = x1 * c - x2 * s;
  x[base + p.half + i] = x2 * c + x1 * s;
}
`;

/**
 * Attention with sinks in two kernels, so that the keys can be split over many workgroups (a decode
 * step has only heads x 1 queries) and over several buffers (a long cache exceeds one binding).
 * ATTENTION_PARTIAL: workgroup (query item = token * heads + head, split s) takes the keys
 * [s * span, (s + 1) * span) of one key chunk; a first pass finds the largest visible score, a
 * second turns scores into weights a tile of 64 keys at a time and accumulates the values, each
 * thread owning head dimensions lid + 64m. It writes (max, sum of weights, weighted values) to
 * partial[item, splitBase + s]. ATTENTION_COMBINE rescales every split to the common maximum (the
 * sink's logit included), adds the sink to the denominator (it carries no value) and divides.
 */
export const ATTENTION_PARTIAL = /* wgsl */ `${header}
struct P {
  items: u32, heads: u32, kvHeads: u32, headDim: u32, keyCount: u32, window: u32, group: u32, scale: f32,
  span: u32, splits: u32, splitBase: u32, splitsTotal: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> keys: array<f32>;
@group(0) @binding(3) var<storage, read> vals: array<f32>;
@group(0) @binding(4) var<storage, read> keyPos: array<i32>;
@group(0) @binding(5) var<storage, read> pos: array<i32>;
@group(0) @binding(6) var<storage, read_write> partial: array<f32>;
var<workgroup> qs: array<f32, ${MAX_HEAD_DIM}>;
var<workgroup> red: array<f32, ${WORKGROUP}>;
var<workgroup> wts: array<f32, ${WORKGROUP}>;
const SLOTS = ${MAX_HEAD_DIM / WORKGROUP}u;
const NONE = -3.0e38; // below any score: no visible key yet

fn visible(k: u32, qp: i32) -> bool {
  let kp = keyPos[k];
  return kp >= 0 && kp <= qp && (p.window == 0u || u32(qp - kp) < p.window);
}

fn score(k: u32, kvh: u32) -> f32 {
  let kb = (k * p.kvHeads + kvh) * p.headDim;
  var dot = 0.0;
  for (var d = 0u; d < p.headDim; d++) { dot += qs[d] * keys[kb + d]; }
  return dot * p.scale;
}

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nw: vec3u, @builtin(local_invocation_index) lid: u32) {
  let idx = itemOf(wid, nw);
  if (idx >= p.items * p.splits) { return; }
  let item = idx / p.splits;
  let split = idx % p.splits;
  let t = item / p.heads;
  let h = item % p.heads;
  let kvh = h / p.group;
  let qp = pos[t];
  let qb = item * p.headDim;
  let k0 = split * p.span;
  let k1 = min(p.keyCount, k0 + p.span);
  for (var d = lid; d < p.headDim; d += ${WORKGROUP}u) { qs[d] = q[qb + d]; }
  workgroupBarrier();

  var m = NONE;
  for (var k = k0 + lid; k < k1; k += ${WORKGROUP}u) {
    if (visible(k, qp)) { m = max(m, score(k, kvh)); }
  }
  red[lid] = m;
  workgroupBarrier();
  for (var s = ${WORKGROUP / 2}u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] = max(red[lid], red[lid + s]); }
    workgroupBarrier();
  }
  m = red[0];
  workgroupBarrier();

  // Explicit initialisers: Dawn's Vulkan path on llvmpipe was seen to keep a loop-local array's
  // old contents across iterations without them.
  var acc = array<f32, SLOTS>();
  var den = 0.0;
  for (var kt = k0; kt < k1; kt += ${WORKGROUP}u) {
    let k = kt + lid;
    var wk = 0.0;
    if (k < k1 && visible(k, qp)) { wk = exp(score(k, kvh) - m); }
    den += wk;
    wts[lid] = wk;
    workgroupBarrier();
    let n = min(${WORKGROUP}u, k1 - kt);
    for (var j = 0u; j < n; j++) {
      let wj = wts[j];
      if (wj != 0.0) {
        let vb = ((kt + j) * p.kvHeads + kvh) * p.headDim;
        for (var s = 0u; s < SLOTS; s++) {
          let d = lid + s * ${WORKGROUP}u;
          if (d < p.headDim) { acc[s] += wj * vals[vb + d]; }
        }
      }
    }
    workgroupBarrier();
  }
  red[lid] = den;
  workgroupBarrier();
  for (var s = ${WORKGROUP / 2}u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] += red[lid + s]; }
    workgroupBarrier();
  }
  let base = (item * p.splitsTotal + p.splitBase + split) * (p.headDim + 2u);
  if (lid == 0u) {
    partial[base] = m;
    partial[base + 1u] = red[0];
  }
  for (var s = 0u; s < SLOTS; s++) {
    let d = lid + s * ${WORKGROUP}u;
    if (d < p.headDim) { partial[base + 2u + d] = acc[s]; }
  }
}
`;

export const ATTENTION_COMBINE = /* wgsl */ `${header}
struct P { items: u32, heads: u32, headDim: u32, splitsTotal: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> partial: array<f32>;
@group(0) @binding(2) var<storage, read> sinks: array<f32>;
@group(0) @binding(3) var<storage, read_write> outp: array<f32>;

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nw: vec3u, @builtin(local_invocation_index) lid: u32) {
  let item = itemOf(wid, nw);
  if (item >= p.items) { return; }
  let sink = sinks[item % p.heads];
  let stride = p.headDim + 2u;
  let first = item * p.splitsTotal * stride;
  var m = sink;
  for (var s = 0u; s < p.splitsTotal; s++) { m = max(m, partial[first + s * stride]); }
  var den = exp(sink - m);
  for (var s = 0u; s < p.splitsTotal; s++) {
    let b = first + s * stride;
    den += partial[b + 1u] * exp(partial[b] - m);
  }
  for (var d = lid; d < p.headDim; d += ${WORKGROUP}u) {
    var sum = 0.0;
    for (var s = 0u; s < p.splitsTotal; s++) {
      let b = first + s * stride;
      sum += partial[b + 2u + d] * exp(partial[b] - m);
    }
    outp[item * p.headDim + d] = sum / den;
  }
}
`;

// MXFP4 decoding shared by the expert kernels: a u32 word of a row holds 8 values (4 bytes, low
// nibble first), its group's E8M0 scale byte is 2^(s - 127).
const mxfp4 = /* wgsl */ `
var<private> FP4: array<f32, 16> = array<f32, 16>(0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0);

fn scaleOf(index: u32) -> f32 {
  let s = (scales[index >> 2u] >> ((index & 3u) * 8u)) & 0xffu;
  return ldexp(1.0, i32(s) - 127);
}

/** The 8 values of word wi (columns 8wi..8wi+7) of chunk row R, with cols columns per row. */
fn decode8(R: u32, wi: u32, cols: u32) -> array<f32, 8> {
  let word = blocks[R * (cols / 8u) + wi];
  let sc = scaleOf(R * (cols / 32u) + wi / 4u);
  var v: array<f32, 8>;
  for (var b = 0u; b < 4u; b++) {
    let byte = (word >> (b * 8u)) & 0xffu;
    v[2u * b] = FP4[byte & 15u] * sc;
    v[2u * b + 1u] = FP4[byte >> 4u] * sc;
  }
  return v;
}
`;

// The f16 form (the fast mode): a word's 8 values unscaled (FP4 values are exact in f16) as two
// vec4<f16>, so that a word's dot product runs in f16 and its scale is applied in f32.
const mxfp4Half = /* wgsl */ `
var<private> FP4H: array<f16, 16> = array<f16, 16>(0.0h, 0.5h, 1.0h, 1.5h, 2.0h, 3.0h, 4.0h, 6.0h, -0.0h, -0.5h, -1.0h, -1.5h, -2.0h, -3.0h, -4.0h, -6.0h);

fn scaleOf(index: u32) -> f32 {
  let s = (scales[index >> 2u] >> ((index & 3u) * 8u)) & 0xffu;
  return ldexp(1.0, i32(s) - 127);
}

fn nibbles(word: u32, half: u32) -> vec4<f16> {
  let lo = (word >> (half * 16u)) & 0xffffu;
  return vec4<f16>(FP4H[lo & 15u], FP4H[(lo >> 4u) & 15u], FP4H[(lo >> 8u) & 15u], FP4H[lo >> 12u]);
}
`;

// The expert groups of one dispatch: groups[g] = (unused, first gathered row, row count, expert
// index in the layer), one group per wid.y; the dispatch covers the weight chunk holding experts
// [expertBase, expertEnd), and a group of another chunk returns at once.
const expertBindings = /* wgsl */ `
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> groups: array<vec4u>;
@group(0) @binding(2) var<storage, read> blocks: array<u32>;
@group(0) @binding(3) var<storage, read> scales: array<u32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
`;

/**
 * Up projection and SwiGLU: workgroup (i, g) computes rows 2i (glu) and 2i+1 (linear) of group g's
 * expert for the group's tokens (x rows found through `rowToken`) and writes act[row, i]. With
 * `half` (the f16 mode) each word's 8 products are summed in f16 (x rounded to f16), scaled and
 * accumulated in f32, and act is stored in f16.
 */
export function expertsUp(half: boolean): string {
  const dot = half
    ? /* wgsl */ `
    for (var wi = lid; wi < words; wi += ${WORKGROUP}u) {
      let wg = blocks[Rg * words + wi];
      let wl = blocks[(Rg + 1u) * words + wi];
      let sg = scaleOf(Rg * (p.hidden / 32u) + wi / 4u);
      let sl = scaleOf((Rg + 1u) * (p.hidden / 32u) + wi / 4u);
      let g0 = nibbles(wg, 0u); let g1 = nibbles(wg, 1u);
      let l0 = nibbles(wl, 0u); let l1 = nibbles(wl, 1u);
      for (var j = 0u; j < n; j++) {
        let xb = rowToken[g.y + t0 + j] * p.hidden + wi * 8u;
        let x0 = vec4<f16>(vec4f(x[xb], x[xb + 1u], x[xb + 2u], x[xb + 3u]));
        let x1 = vec4<f16>(vec4f(x[xb + 4u], x[xb + 5u], x[xb + 6u], x[xb + 7u]));
        accG[j] += f32(dot(x0, g0) + dot(x1, g1)) * sg;
        accL[j] += f32(dot(x0, l0) + dot(x1, l1)) * sl;
      }
    }`
    : /* wgsl */ `
    for (var wi = lid; wi < words; wi += ${WORKGROUP}u) {
      let vg = decode8(Rg, wi, p.hidden);
      let vl = decode8(Rg + 1u, wi, p.hidden);
      for (var j = 0u; j < n; j++) {
        let xb = rowToken[g.y + t0 + j] * p.hidden + wi * 8u;
        for (var e = 0u; e < 8u; e++) {
          let xv = x[xb + e];
          accG[j] += xv * vg[e];
          accL[j] += xv * vl[e];
        }
      }
    }`;
  return /* wgsl */ `${half ? 'enable f16;' : ''}
struct P { hidden: u32, inter: u32, groupBase: u32, expertBase: u32, limit: f32, expertEnd: u32, pad2: u32, pad3: u32 }
${expertBindings}
@group(0) @binding(5) var<storage, read> x: array<f32>;
@group(0) @binding(6) var<storage, read> rowToken: array<u32>;
@group(0) @binding(7) var<storage, read_write> act: array<${half ? 'f16' : 'f32'}>;
${half ? mxfp4Half : mxfp4}
var<workgroup> partial: array<f32, ${2 * WORKGROUP * TOKEN_BLOCK}>;

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = wid.x;
  let g = groups[p.groupBase + wid.y];
  if (g.w < p.expertBase || g.w >= p.expertEnd) { return; }
  let rowsPerExpert = 2u * p.inter;
  let Rg = (g.w - p.expertBase) * rowsPerExpert + 2u * i;
  let words = p.hidden / 8u;
  for (var t0 = 0u; t0 < g.z; t0 += ${TOKEN_BLOCK}u) {
    let n = min(${TOKEN_BLOCK}u, g.z - t0);
    var accG = array<f32, ${TOKEN_BLOCK}>();
    var accL = array<f32, ${TOKEN_BLOCK}>();${dot}
    for (var j = 0u; j < ${TOKEN_BLOCK}u; j++) {
      partial[(2u * j) * ${WORKGROUP}u + lid] = accG[j];
      partial[(2u * j + 1u) * ${WORKGROUP}u + lid] = accL[j];
    }
    workgroupBarrier();
    for (var s = ${WORKGROUP / 2}u; s > 0u; s >>= 1u) {
      if (lid < s) {
        for (var j = 0u; j < ${2 * TOKEN_BLOCK}u; j++) { partial[j * ${WORKGROUP}u + lid] += partial[j * ${WORKGROUP}u + lid + s]; }
      }
      workgroupBarrier();
    }
    if (lid < n) {
      let b = g.w * rowsPerExpert + 2u * i;
      let glu = min(partial[(2u * lid) * ${WORKGROUP}u] + bias[b], p.limit);
      let lin = clamp(partial[(2u * lid + 1u) * ${WORKGROUP}u] + bias[b + 1u], -p.limit, p.limit);
      act[(g.y + t0 + lid) * p.inter + i] = ${half ? 'f16' : ''}(glu / (1.0 + exp(-1.702 * glu)) * (lin + 1.0));
    }
    workgroupBarrier();
  }
}
`;
}

/**
 * Down projection: workgroup (r, g) writes y[row, r] = act[row] . w2[e, r] + bias2[e, r] for group
 * g's rows; with `half`, act is f16 and each word's products are summed in f16 as in expertsUp.
 */
export function expertsDown(half: boolean): string {
  const dot = half
    ? /* wgsl */ `
    for (var wi = lid; wi < words; wi += ${WORKGROUP}u) {
      let w = blocks[R * words + wi];
      let sc = scaleOf(R * (p.inter / 32u) + wi / 4u);
      let v0 = nibbles(w, 0u); let v1 = nibbles(w, 1u);
      for (var j = 0u; j < n; j++) {
        let ab = (g.y + t0 + j) * p.inter + wi * 8u;
        let a0 = vec4<f16>(act[ab], act[ab + 1u], act[ab + 2u], act[ab + 3u]);
        let a1 = vec4<f16>(act[ab + 4u], act[ab + 5u], act[ab + 6u], act[ab + 7u]);
        acc[j] += f32(dot(a0, v0) + dot(a1, v1)) * sc;
      }
    }`
    : /* wgsl */ `
    for (var wi = lid; wi < words; wi += ${WORKGROUP}u) {
      let v = decode8(R, wi, p.inter);
      for (var j = 0u; j < n; j++) {
        let ab = (g.y + t0 + j) * p.inter + wi * 8u;
        for (var e = 0u; e < 8u; e++) { acc[j] += act[ab + e] * v[e]; }
      }
    }`;
  return /* wgsl */ `${half ? 'enable f16;' : ''}
struct P { hidden: u32, inter: u32, groupBase: u32, expertBase: u32, expertEnd: u32, pad0: u32, pad1: u32, pad2: u32 }
${expertBindings}
@group(0) @binding(5) var<storage, read> act: array<${half ? 'f16' : 'f32'}>;
@group(0) @binding(6) var<storage, read_write> y: array<f32>;
${half ? mxfp4Half : mxfp4}
var<workgroup> partial: array<f32, ${WORKGROUP * TOKEN_BLOCK}>;

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let r = wid.x;
  let g = groups[p.groupBase + wid.y];
  if (g.w < p.expertBase || g.w >= p.expertEnd) { return; }
  let R = (g.w - p.expertBase) * p.hidden + r;
  let words = p.inter / 8u;
  for (var t0 = 0u; t0 < g.z; t0 += ${TOKEN_BLOCK}u) {
    let n = min(${TOKEN_BLOCK}u, g.z - t0);
    var acc = array<f32, ${TOKEN_BLOCK}>();${dot}
    for (var j = 0u; j < ${TOKEN_BLOCK}u; j++) { partial[j * ${WORKGROUP}u + lid] = acc[j]; }
    workgroupBarrier();
    for (var s = ${WORKGROUP / 2}u; s > 0u; s >>= 1u) {
      if (lid < s) {
        for (var j = 0u; j < ${TOKEN_BLOCK}u; j++) { partial[j * ${WORKGROUP}u + lid] += partial[j * ${WORKGROUP}u + lid + s]; }
      }
      workgroupBarrier();
    }
    if (lid < n) { y[(g.y + t0 + lid) * p.hidden + r] = partial[lid * ${WORKGROUP}u] + bias[g.w * p.hidden + r]; }
    workgroupBarrier();
  }
}
`;
}

/** out[t, c] = sum_j weight[t, j] * y[slotRow[t, j], c], slots in order. */
export const EXPERTS_COMBINE = /* wgsl */ `${header}
struct P { tokens: u32, hidden: u32, k: u32, pad: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read> slotRow: array<u32>;
@group(0) @binding(3) var<storage, read> weights: array<f32>;
@group(0) @binding(4) var<storage, read_write> outp: array<f32>;

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nw: vec3u, @builtin(local_invocation_index) lid: u32) {
  let idx = itemOf(wid, nw) * ${WORKGROUP}u + lid;
  if (idx >= p.tokens * p.hidden) { return; }
  let t = idx / p.hidden;
  let c = idx % p.hidden;
  var sum = 0.0;
  for (var j = 0u; j < p.k; j++) { sum += weights[t * p.k + j] * y[slotRow[t * p.k + j] * p.hidden + c]; }
  outp[idx] = sum;
}
`;

/** x[i] += y[i] for i < count (the residual connection). */
export const ADD = /* wgsl */ `${header}
struct P { count: u32, pad0: u32, pad1: u32, pad2: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nw: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = itemOf(wid, nw) * ${WORKGROUP}u + lid;
  if (i < p.count) { x[i] = x[i] + y[i]; }
}
`;

/** dst[dstOffset + r * dstStride + c] = src[srcOffset + r * srcStride + c], 32-bit words. */
export const COPY_ROWS = /* wgsl */ `${header}
struct P { rows: u32, width: u32, srcStride: u32, dstStride: u32, srcOffset: u32, dstOffset: u32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nw: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = itemOf(wid, nw) * ${WORKGROUP}u + lid;
  if (i >= p.rows * p.width) { return; }
  let r = i / p.width;
  let c = i % p.width;
  dst[p.dstOffset + r * p.dstStride + c] = src[p.srcOffset + r * p.srcStride + c];
}
`;

/**
 * Top-k routing, one thread per token: the j-th pick is the largest gate logit ordered after the
 * (j-1)-th (by value, then lower expert first, as the host's sort), then the softmax over the k.
 */
export const ROUTE = /* wgsl */ `${header}
struct P { tokens: u32, experts: u32, k: u32, pad: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> gate: array<f32>;
@group(0) @binding(2) var<storage, read_write> indices: array<i32>;
@group(0) @binding(3) var<storage, read_write> weights: array<f32>;

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nw: vec3u, @builtin(local_invocation_index) lid: u32) {
  let t = itemOf(wid, nw) * ${WORKGROUP}u + lid;
  if (t >= p.tokens) { return; }
  let g = t * p.experts;
  var lastV = 0.0;
  var lastE = -1;
  for (var j = 0u; j < p.k; j++) {
    var bestE = -1;
    var bestV = 0.0;
    for (var e = 0; e < i32(p.experts); e++) {
      let v = gate[g + u32(e)];
      let after = lastE < 0 || v < lastV || (v == lastV && e > lastE);
      if (after && (bestE < 0 || v > bestV)) { bestE = e; bestV = v; }
    }
    indices[t * p.k + j] = bestE;
    lastE = bestE;
    lastV = bestV;
  }
  let top = gate[g + u32(indices[t * p.k])];
  var sum = 0.0;
  for (var j = 0u; j < p.k; j++) { sum += exp(gate[g + u32(indices[t * p.k + j])] - top); }
  for (var j = 0u; j < p.k; j++) { weights[t * p.k + j] = exp(gate[g + u32(indices[t * p.k + j])] - top) / sum; }
}
`;

/** out[r] = the column of row r's largest value, the lowest on ties: one workgroup per row. */
export const ARGMAX = /* wgsl */ `${header}
struct P { rows: u32, width: u32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> outp: array<i32>;
var<workgroup> bestV: array<f32, ${WORKGROUP}>;
var<workgroup> bestI: array<u32, ${WORKGROUP}>;
const NONE = 0xffffffffu;

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nw: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = itemOf(wid, nw);
  if (row >= p.rows) { return; }
  var v = 0.0;
  var i = NONE;
  // Columns ascend within a thread, so a strict > keeps its lowest on ties.
  for (var c = lid; c < p.width; c += ${WORKGROUP}u) {
    let xv = x[row * p.width + c];
    if (i == NONE || xv > v) { v = xv; i = c; }
  }
  bestV[lid] = v;
  bestI[lid] = i;
  workgroupBarrier();
  for (var s = ${WORKGROUP / 2}u; s > 0u; s >>= 1u) {
    if (lid < s) {
      let ov = bestV[lid + s];
      let oi = bestI[lid + s];
      if (oi != NONE && (bestI[lid] == NONE || ov > bestV[lid] || (ov == bestV[lid] && oi < bestI[lid]))) {
        bestV[lid] = ov;
        bestI[lid] = oi;
      }
    }
    workgroupBarrier();
  }
  if (lid == 0u) { outp[row] = i32(bestI[0]); }
}
`;

/** The expert table of routed pairs taken one by one: groups[i] = (0, row i, one row, expert of pair i). */
export const EXPERT_PAIRS = /* wgsl */ `${header}
struct P { pairs: u32, pad0: u32, pad1: u32, pad2: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> indices: array<i32>;
@group(0) @binding(2) var<storage, read_write> groups: array<vec4u>;

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nw: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = itemOf(wid, nw) * ${WORKGROUP}u + lid;
  if (i < p.pairs) { groups[i] = vec4u(0u, i, 1u, u32(indices[i])); }
}
`;

/** Values of one row a workgroup of the first top-k pass takes. */
export const TOP_K_SLICE = 4096;

/**
 * The k largest finite values of a row, largest first (lower id first on ties), in two passes of
 * this kernel: each workgroup picks the k best of its slice of the row (ids are the columns), then
 * one workgroup picks the k best of those candidates (ids read from `ids`). Each pick is the best
 * ordered after the previous one, found by a workgroup reduction; ids past the finite values are
 * NONE (-1 as i32).
 */
export const TOP_K = /* wgsl */ `${header}
struct P { count: u32, k: u32, slice: u32, hasIds: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> vals: array<f32>;
@group(0) @binding(2) var<storage, read> ids: array<u32>;
@group(0) @binding(3) var<storage, read_write> outV: array<f32>;
@group(0) @binding(4) var<storage, read_write> outI: array<u32>;
var<workgroup> bestV: array<f32, ${WORKGROUP}>;
var<workgroup> bestI: array<u32, ${WORKGROUP}>;
const NONE = 0xffffffffu;
const LOWEST = -0x1.fffffep+127f; // -FLT_MAX: values below (-inf) and NaN are never picked

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nw: vec3u, @builtin(local_invocation_index) lid: u32) {
  let g = itemOf(wid, nw);
  let start = g * p.slice;
  let end = min(p.count, start + p.slice);
  var lastV = 0.0;
  var lastI = NONE;
  for (var j = 0u; j < p.k; j++) {
    var v = 0.0;
    var i = NONE;
    if (j == 0u || lastI != NONE) {
      for (var c = start + lid; c < end; c += ${WORKGROUP}u) {
        let cv = vals[c];
        var ci = c;
        if (p.hasIds == 1u) { ci = ids[c]; }
        let after = j == 0u || cv < lastV || (cv == lastV && ci > lastI);
        if (ci != NONE && cv >= LOWEST && after && (i == NONE || cv > v || (cv == v && ci < i))) { v = cv; i = ci; }
      }
    }
    bestV[lid] = v;
    bestI[lid] = i;
    workgroupBarrier();
    for (var s = ${WORKGROUP / 2}u; s > 0u; s >>= 1u) {
      if (lid < s) {
        let ov = bestV[lid + s];
        let oi = bestI[lid + s];
        if (oi != NONE && (bestI[lid] == NONE || ov > bestV[lid] || (ov == bestV[lid] && oi < bestI[lid]))) {
          bestV[lid] = ov;
          bestI[lid] = oi;
        }
      }
      workgroupBarrier();
    }
    lastV = bestV[0];
    lastI = bestI[0];
    if (lid == 0u) {
      outV[g * p.k + j] = lastV;
      outI[g * p.k + j] = lastI;
    }
    workgroupBarrier();
  }
}
`;

/**
 * sums[g] = the sum of exp((x[c] - x[top]) * invT) over slice g of a logit row (columns
 * [g * slice, (g + 1) * slice)), where `top` (read from `picked`) is the row's argmax, and after
 * the last slice's sum x[top] itself: the softmax weights of a plain draw by slice, one workgroup
 * per slice.
 */
export const SLICE_WEIGHTS = /* wgsl */ `${header}
struct P { width: u32, slice: u32, invT: f32, pad: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> picked: array<i32>;
@group(0) @binding(3) var<storage, read_write> sums: array<f32>;
var<workgroup> partial: array<f32, ${WORKGROUP}>;

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nw: vec3u, @builtin(local_invocation_index) lid: u32) {
  let g = itemOf(wid, nw);
  let start = g * p.slice;
  if (start >= p.width) { return; }
  let end = min(p.width, start + p.slice);
  let top = x[u32(picked[0])];
  var sum = 0.0;
  for (var c = start + lid; c < end; c += ${WORKGROUP}u) { sum += exp((x[c] - top) * p.invT); }
  partial[lid] = sum;
  workgroupBarrier();
  for (var s = ${WORKGROUP / 2}u; s > 0u; s >>= 1u) {
    if (lid < s) { partial[lid] += partial[lid + s]; }
    workgroupBarrier();
  }
  if (lid == 0u) { sums[g] = partial[0]; }
  // After the sums, the largest logit itself: the host weighs the slice it reads back against it.
  if (g == 0u && lid == 0u) { sums[(p.width + p.slice - 1u) / p.slice] = top; }
}
`;

/** Most experts EXPERT_GROUPS takes (its counters live in workgroup memory). */
export const MAX_GROUPED_EXPERTS = 256;

/**
 * The routed pairs grouped by expert on the GPU, so that a prefill chunk needs no read-back of its
 * routing: groups[e] = (0, first row, row count, e) for every expert e (empty groups included),
 * rows of one expert consecutive in expert order; rowToken[row] = the pair's token and
 * slotRow[pair] = its row. Rows within a group come in any order (atomics): each row's result is
 * the same wherever it sits. One workgroup.
 */
export const EXPERT_GROUPS = /* wgsl */ `
struct P { pairs: u32, experts: u32, k: u32, pad: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> indices: array<i32>;
@group(0) @binding(2) var<storage, read_write> groups: array<vec4u>;
@group(0) @binding(3) var<storage, read_write> rowToken: array<u32>;
@group(0) @binding(4) var<storage, read_write> slotRow: array<u32>;
var<workgroup> counts: array<atomic<u32>, ${MAX_GROUPED_EXPERTS}>;
var<workgroup> starts: array<u32, ${MAX_GROUPED_EXPERTS}>;

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(local_invocation_index) lid: u32) {
  for (var e = lid; e < p.experts; e += ${WORKGROUP}u) { atomicStore(&counts[e], 0u); }
  workgroupBarrier();
  for (var i = lid; i < p.pairs; i += ${WORKGROUP}u) { atomicAdd(&counts[u32(indices[i])], 1u); }
  workgroupBarrier();
  if (lid == 0u) {
    var s = 0u;
    for (var e = 0u; e < p.experts; e++) {
      let c = atomicLoad(&counts[e]);
      starts[e] = s;
      groups[e] = vec4u(0u, s, c, e);
      s += c;
      atomicStore(&counts[e], 0u);
    }
  }
  workgroupBarrier();
  for (var i = lid; i < p.pairs; i += ${WORKGROUP}u) {
    let e = u32(indices[i]);
    let row = starts[e] + atomicAdd(&counts[e], 1u);
    rowToken[row] = i / p.k;
    slotRow[i] = row;
  }
}
`;
