// The gpt-oss forward pass for training, keeping every activation its backward needs (a tape),
// and the backward pass that walks the tape in reverse into the parameters' gradients. One
// sequence at a time, positions from 0, no KV cache: the same math as model/forward.ts (banded
// attention on even layers, dense on odd; YaRN tables from model/rope.ts), in float64, or with the
// matrix products in f32 on the WebAssembly kernels (`precision: 'f32'`; everything else float64).
import type { AttentionShape, RopeTable } from '../kernels/backend.ts';
import { isSlidingLayer, type ModelConfig } from '../model/config.ts';
import { RMSNORM_EPS } from '../model/forward.ts';
import { buildRopeTable } from '../model/rope.ts';
import {
  attentionBackward, attentionForward, crossEntropy, expertsBackward, expertsForward, F64_LINEAR, IGNORE_TARGET, layoutPositions,
  loadBalancingBackward, loadBalancingForward, ropeApply, rmsnormBackward, rmsnormForward, routeBackward, routeForward,
  type AttentionSaved, type ExpertParams, type ExpertsSaved, type LinearKernels, type PackedLayout,
} from './ops.ts';
import { wasmLinear } from './wasm/index.ts';
import type { LoraAdapters, LoraSaved } from './lora.ts';
import type { Param, TrainableBlock, TrainableModel } from './params.ts';

/** What one block's backward needs from its forward. */
interface BlockTape {
  /** The residual stream entering the block, and after its attention half. */
  xIn: Float64Array;
  xMid: Float64Array;
  attnInv: Float64Array;
  attnNormed: Float64Array;
  q: Float64Array; // after RoPE
  k: Float64Array; // after RoPE
  v: Float64Array;
  attention: AttentionSaved;
  attnOut: Float64Array; // [T, heads*hd], input of the out projection
  mlpInv: Float64Array;
  mlpNormed: Float64Array;
  gate: Float64Array; // router logits [T, E]
  indices: Int32Array;
  weights: Float64Array;
  experts: ExpertsSaved;
  /** The adapters' low-rank activations (x A^T) for the qkv and out projections, when adapted. */
  loraQkv: LoraSaved | null;
  loraOut: LoraSaved | null;
}

export interface Tape {
  tokens: readonly number[];
  rope: RopeTable;
  /** Sequences packed behind a shared prefix (TrainOptions.layout), with each token's position. */
  layout: PackedLayout | undefined;
  positions: Int32Array | undefined;
  lora: LoraAdapters | null;
  blocks: BlockTape[];
  /** The residual stream after the last block, its final norm's 1/rms and output. */
  xFinal: Float64Array;
  finalInv: Float64Array;
  finalNormed: Float64Array;
  /** [P, vocab], or [P, vocabulary.length] with a used (or compact) vocabulary; P is logitRows' length, else T. */
  logits: Float64Array;
  vocabulary: Int32Array | null;
  /** Each token's row in the embedding table (its id, or its index in a compact vocabulary). */
  tableRows: Int32Array;
  logitRows: Int32Array | null;
  /** With an adapter's unembedding token rows: the table the logits used (those rows in place) and each token row's row in it. */
  logitTable: Float64Array | null;
  tokenRowPositions: Int32Array | null;
  /** The matrix products the forward used; the backward uses the same. */
  linear: LinearKernels;
}

function attentionShape(c: ModelConfig, layer: number): AttentionShape {
  return { heads: c.numAttentionHeads, kvHeads: c.numKeyValueHeads, headDim: c.headDim, window: isSlidingLayer(layer) ? c.slidingWindow : 0 };
}

function expertParams(c: ModelConfig, b: TrainableBlock): ExpertParams {
  return {
    w1: b.mlp.mlp1Weight.value, b1: b.mlp.mlp1Bias.value, w2: b.mlp.mlp2Weight.value, b2: b.mlp.mlp2Bias.value,
    experts: c.numExperts, hidden: c.hiddenSize, intermediate: c.intermediateSize,
  };
}

/** A parameter's gradient array, or null when it is frozen (its gradient is never computed). */
function gradOf(p: Param): Float64Array | null {
  if (!p.trainable) return null;
  // A typed array drops writes past its end: a weight made trainable without a gradient would train silently wrong.
  if (p.grad.length !== p.value.length) throw new Error(`${p.name} is trainable but has no gradient (it was built frozen)`);
  return p.grad;
}

export interface TrainOptions {
  /** cos/sin tables covering at least the sequence (built for it when absent or too short). */
  rope?: RopeTable;
  /** Low-rank adapters added to the attention projections and experts (usually with the base frozen). */
  lora?: LoraAdapters;
  /**
   * The used vocabulary: sorted distinct token ids whose unembedding rows are live. Every other
   * row must be zero; it stays zero (it gets no gradient), its logit is exactly 0, and the loss
   * counts those logits in closed form, so training is exact at the cost of the used rows only.
   * Logits (and their gradient) are then [T, vocabulary.length], in this order.
   */
  vocabulary?: Int32Array;
  /**
   * Weight of the router's load-balancing loss added to the cross-entropy (0: none). Full
   * training uses it so experts share the tokens; transformers' GptOss config calls it
   * router_aux_loss_coef.
   */
  routerBalance?: number;
  /**
   * The positions (ascending) whose logits are computed; default every position. A loss needs
   * only the positions that have a target (targetRows), and with a real vocabulary the
   * unembedding dominates the cost, so chat data, where most tokens are prompt, trains several
   * times faster with the same results bit for bit.
   */
  logitRows?: Int32Array;
  /**
   * Where the matrix products (projections, router, experts, unembedding) run: 'f64' (default),
   * the float64 reference; 'f32', the WebAssembly SIMD kernels, several times faster, with
   * results within f32 rounding of the reference. Everything else stays float64.
   */
  precision?: 'f64' | 'f32';
  /**
   * The tokens are several sequences packed behind their shared prefix (see PackedLayout; built
   * by `packSharedPrefix`): each is computed exactly as alone, the prefix once.
   */
  layout?: PackedLayout;
  /**
   * Train the embedding and unembedding as one table (weight tying): each update uses the sum of
   * both tables' gradients and leaves the two equal. The checkpoint still holds both tables, as
   * gpt-oss does. It lets a small model copy a token it has rarely seen (a number in the
   * question) through a shared map rather than learning each token's output row separately.
   */
  tiedEmbeddings?: boolean;
}

/** Attention as matrix products on the f32 kernels; the float64 reference keeps its scalar loops. */
function fastAttention(linear: LinearKernels): LinearKernels | undefined {
  return linear.precision === 'f32' ? linear : undefined;
}

/** The matrix products `precision` names. */
export function linearKernels(precision: 'f64' | 'f32' = 'f64'): LinearKernels {
  return precision === 'f32' ? wasmLinear() : F64_LINEAR;
}

/** The positions of `targets` that carry a loss, or undefined when every position does (or none). */
export function targetRows(targets: Int32Array): Int32Array | undefined {
  const rows: number[] = [];
  targets.forEach((t, i) => {
    if (t !== IGNORE_TARGET) rows.push(i);
  });
  return rows.length === 0 || rows.length === targets.length ? undefined : Int32Array.from(rows);
}

/** Runs `tokens` (positions 0..T-1) through the model; returns the logits [T, vocab] and the tape. */
export function forwardTrain(model: TrainableModel, tokens: readonly number[], options: TrainOptions = {}): Tape {
  const { rope, lora } = options;
  const linear = linearKernels(options.precision);
  const c = model.config;
  const T = tokens.length;
  const H = c.hiddenSize;
  if (T === 0) throw new Error('forwardTrain: no tokens');
  const tableRows = new Int32Array(T);
  for (const [i, id] of tokens.entries()) {
    if (!Number.isInteger(id) || id < 0 || id >= c.vocabSize) throw new Error(`forwardTrain: token id ${id} at index ${i} is outside the vocabulary`);
    tableRows[i] = model.tableRow(id);
    if (tableRows[i]! < 0) throw new Error(`forwardTrain: token id ${id} at index ${i} is outside the model's compact vocabulary`);
  }
  const { layout } = options;
  const positions = layout === undefined ? undefined : layoutPositions(T, layout);
  const span = positions === undefined ? T : Math.max(...positions) + 1;
  const table = rope !== undefined && rope.positions >= span ? rope : buildRopeTable(c, span);
  const qWidth = c.numAttentionHeads * c.headDim;
  const kvWidth = c.numKeyValueHeads * c.headDim;
  const width = qWidth + 2 * kvWidth;

  let x = new Float64Array(T * H);
  tableRows.forEach((row, t) => x.set(model.embedding.value.subarray(row * H, (row + 1) * H), t * H));
  lora?.embedTokens(tokens, x);

  const blocks: BlockTape[] = [];
  model.blocks.forEach((b, n) => {
    const xIn = x;
    const attnNorm = rmsnormForward(xIn, T, b.attn.normScale.value, RMSNORM_EPS);
    const qkv = linear.forward(attnNorm.out, T, b.attn.qkvWeight.value, width, H, b.attn.qkvBias.value);
    const loraQkv = lora?.forwardQkv(n, attnNorm.out, T, qkv) ?? null;
    const q = new Float64Array(T * qWidth);
    const k = new Float64Array(T * kvWidth);
    const v = new Float64Array(T * kvWidth);
    for (let t = 0; t < T; t++) {
      q.set(qkv.subarray(t * width, t * width + qWidth), t * qWidth);
      k.set(qkv.subarray(t * width + qWidth, t * width + qWidth + kvWidth), t * kvWidth);
      v.set(qkv.subarray(t * width + qWidth + kvWidth, (t + 1) * width), t * kvWidth);
    }
    ropeApply(q, T, c.numAttentionHeads, c.headDim, table, false, positions);
    ropeApply(k, T, c.numKeyValueHeads, c.headDim, table, false, positions);
    const attention = attentionForward(q, k, v, T, b.attn.sinks.value, attentionShape(c, n), fastAttention(linear), layout);
    const projected = linear.forward(attention.out, T, b.attn.outWeight.value, H, qWidth, b.attn.outBias.value);
    const loraOut = lora?.forwardOut(n, attention.out, T, projected) ?? null;
    const xMid = new Float64Array(T * H);
    for (let i = 0; i < T * H; i++) xMid[i] = xIn[i]! + projected[i]!;

    const mlpNorm = rmsnormForward(xMid, T, b.mlp.normScale.value, RMSNORM_EPS);
    const gate = linear.forward(mlpNorm.out, T, b.mlp.gateWeight.value, c.numExperts, H, b.mlp.gateBias.value);
    const routing = routeForward(gate, T, c.numExperts, c.expertsPerToken);
    const experts = expertsForward(mlpNorm.out, T, routing.indices, routing.weights, c.expertsPerToken, expertParams(c, b), c.swigluLimit, linear, lora?.expertAdapter(n));
    const xOut = new Float64Array(T * H);
    for (let i = 0; i < T * H; i++) xOut[i] = xMid[i]! + experts.out[i]!;

    blocks.push({
      xIn, xMid, attnInv: attnNorm.inv, attnNormed: attnNorm.out, q, k, v, attention: attention.saved, attnOut: attention.out,
      mlpInv: mlpNorm.inv, mlpNormed: mlpNorm.out, gate, indices: routing.indices, weights: routing.weights, experts: experts.saved,
      loraQkv, loraOut,
    });
    x = xOut;
  });

  const finalNorm = rmsnormForward(x, T, model.norm.value, RMSNORM_EPS);
  // A compact model's tables hold only its vocabulary: the shortcut is built in.
  const vocabulary = model.vocabulary ?? options.vocabulary ?? null;
  const logitRows = options.logitRows ?? null;
  if (logitRows !== null && logitRows.some((t, i) => t < 0 || t >= T || (i > 0 && t <= logitRows[i - 1]!))) throw new Error('forwardTrain: logitRows must be ascending positions of the sequence');
  const P = logitRows === null ? T : logitRows.length;
  const rowsIn = logitRows === null ? finalNorm.out : gatherRows(finalNorm.out, H, logitRows);
  const tokenRows = lora?.tokens.unembedding;
  let logitTable: Float64Array | null = null;
  let tokenRowPositions: Int32Array | null = null;
  let logits: Float64Array;
  if (tokenRows !== undefined) {
    // The adapter's rows replace the base's in a copy of the rows the logits use.
    logitTable = vocabulary === null || model.vocabulary !== null ? model.unembedding.value.slice() : gatherRows(model.unembedding.value, H, vocabulary);
    tokenRowPositions = Int32Array.from(tokenRows.ids, (id) => {
      const row = vocabulary === null ? id : model.vocabulary !== null ? model.tableRow(id) : sortedIndex(vocabulary, id);
      if (row < 0) throw new Error(`forwardTrain: the adapter's unembedding row for token ${id} is outside the used vocabulary`);
      return row;
    });
    tokenRowPositions.forEach((row, i) => logitTable!.set(tokenRows.rows.value.subarray(i * H, (i + 1) * H), row * H));
    logits = linear.forward(rowsIn, P, logitTable, vocabulary?.length ?? c.vocabSize, H, null);
  } else {
    logits = vocabulary === null || model.vocabulary !== null
      ? linear.forward(rowsIn, P, model.unembedding.value, vocabulary?.length ?? c.vocabSize, H, null)
      : linear.forward(rowsIn, P, gatherRows(model.unembedding.value, H, vocabulary), vocabulary.length, H, null);
  }
  return {
    tokens, rope: table, layout, positions, lora: lora ?? null, blocks, xFinal: x, finalInv: finalNorm.inv, finalNormed: finalNorm.out, logits,
    vocabulary, tableRows, logitRows, logitTable, tokenRowPositions, linear,
  };
}

/**
 * Adds the gradients of the loss whose logit gradient is `dlogits` [T, vocab] into every
 * trainable parameter's grad (and the adapters' of the forward, when it had some). `dgates`,
 * per layer [T, E], is a further gradient on the router logits (the load-balancing loss's).
 */
export function backwardTrain(model: TrainableModel, tape: Tape, dlogits: Float64Array, dgates?: readonly Float64Array[]): void {
  const c = model.config;
  const T = tape.tokens.length;
  const H = c.hiddenSize;
  const qWidth = c.numAttentionHeads * c.headDim;
  const kvWidth = c.numKeyValueHeads * c.headDim;
  const width = qWidth + 2 * kvWidth;
  const k = c.expertsPerToken;
  const linear = tape.linear;

  const dnormed = new Float64Array(T * H);
  // With logitRows the unembedding saw only those positions: its gradients are theirs, scattered back.
  const rows = tape.logitRows;
  const P = rows === null ? T : rows.length;
  const rowsIn = rows === null ? tape.finalNormed : gatherRows(tape.finalNormed, H, rows);
  const dRowsIn = rows === null ? dnormed : new Float64Array(P * H);
  const used = tape.vocabulary;
  const tokenRows = tape.lora?.tokens.unembedding;
  if (tokenRows !== undefined && tape.logitTable !== null && tape.tokenRowPositions !== null) {
    const n = used?.length ?? c.vocabSize;
    const dRows = new Float64Array(n * H);
    linear.backward(dlogits, rowsIn, P, tape.logitTable, n, H, dRowsIn, dRows, null);
    const positions = tape.tokenRowPositions;
    if (tokenRows.rows.trainable) {
      positions.forEach((row, i) => {
        for (let col = 0; col < H; col++) tokenRows.rows.grad[i * H + col] += dRows[row * H + col]!;
      });
    }
    if (model.unembedding.trainable) {
      // The base rows the adapter replaces were not used: they get no gradient.
      const replaced = new Set(positions);
      for (let row = 0; row < n; row++) {
        if (replaced.has(row)) continue;
        const target = (used === null || model.vocabulary !== null ? row : used[row]!) * H;
        for (let col = 0; col < H; col++) model.unembedding.grad[target + col] += dRows[row * H + col]!;
      }
    }
  } else if (used === null || model.vocabulary !== null) {
    linear.backward(dlogits, rowsIn, P, model.unembedding.value, used?.length ?? c.vocabSize, H, dRowsIn, gradOf(model.unembedding), null);
  } else {
    // Unused rows are zero: they add nothing to dnormed, and they get no gradient.
    const dRows = model.unembedding.trainable ? new Float64Array(used.length * H) : null;
    linear.backward(dlogits, rowsIn, P, gatherRows(model.unembedding.value, H, used), used.length, H, dRowsIn, dRows, null);
    if (dRows !== null) {
      used.forEach((id, i) => {
        for (let col = 0; col < H; col++) model.unembedding.grad[id * H + col] += dRows[i * H + col]!;
      });
    }
  }
  if (rows !== null) rows.forEach((t, i) => dnormed.set(dRowsIn.subarray(i * H, (i + 1) * H), t * H));
  // dx is the gradient of the residual stream, carried down through the blocks.
  let dx = new Float64Array(T * H);
  rmsnormBackward(dnormed, tape.xFinal, T, model.norm.value, tape.finalInv, dx, gradOf(model.norm));

  for (let n = c.numLayers - 1; n >= 0; n--) {
    const b = model.blocks[n]!;
    const s = tape.blocks[n]!;

    // MoE half: x_out = x_mid + experts(norm(x_mid)); the residual passes dx through unchanged.
    const dxMid = dx.slice();
    const dmlpNormed = new Float64Array(T * H);
    const dweights = new Float64Array(T * k);
    expertsBackward(dx, s.mlpNormed, T, s.indices, s.weights, k, expertParams(c, b), c.swigluLimit, s.experts, dmlpNormed, dweights, {
      w1: gradOf(b.mlp.mlp1Weight), b1: gradOf(b.mlp.mlp1Bias), w2: gradOf(b.mlp.mlp2Weight), b2: gradOf(b.mlp.mlp2Bias),
    }, linear, tape.lora?.expertAdapter(n));
    const dgate = dgates?.[n] ?? new Float64Array(T * c.numExperts);
    routeBackward(dweights, s.indices, s.weights, T, c.numExperts, k, dgate);
    linear.backward(dgate, s.mlpNormed, T, b.mlp.gateWeight.value, c.numExperts, H, dmlpNormed, gradOf(b.mlp.gateWeight), gradOf(b.mlp.gateBias));
    rmsnormBackward(dmlpNormed, s.xMid, T, b.mlp.normScale.value, s.mlpInv, dxMid, gradOf(b.mlp.normScale));

    // Attention half: x_mid = x_in + out(attention(rope(qkv(norm(x_in))))).
    const dxIn = dxMid.slice();
    const dattn = new Float64Array(T * qWidth);
    linear.backward(dxMid, s.attnOut, T, b.attn.outWeight.value, H, qWidth, dattn, gradOf(b.attn.outWeight), gradOf(b.attn.outBias));
    if (s.loraOut !== null) tape.lora!.backward(s.loraOut, dxMid, s.attnOut, T, dattn);
    const dq = new Float64Array(T * qWidth);
    const dk = new Float64Array(T * kvWidth);
    const dv = new Float64Array(T * kvWidth);
    attentionBackward(dattn, s.q, s.k, s.v, T, attentionShape(c, n), s.attention, dq, dk, dv, gradOf(b.attn.sinks), fastAttention(linear), tape.layout);
    ropeApply(dq, T, c.numAttentionHeads, c.headDim, tape.rope, true, tape.positions);
    ropeApply(dk, T, c.numKeyValueHeads, c.headDim, tape.rope, true, tape.positions);
    const dqkv = new Float64Array(T * width);
    for (let t = 0; t < T; t++) {
      dqkv.set(dq.subarray(t * qWidth, (t + 1) * qWidth), t * width);
      dqkv.set(dk.subarray(t * kvWidth, (t + 1) * kvWidth), t * width + qWidth);
      dqkv.set(dv.subarray(t * kvWidth, (t + 1) * kvWidth), t * width + qWidth + kvWidth);
    }
    const dattnNormed = new Float64Array(T * H);
    linear.backward(dqkv, s.attnNormed, T, b.attn.qkvWeight.value, width, H, dattnNormed, gradOf(b.attn.qkvWeight), gradOf(b.attn.qkvBias));
    if (s.loraQkv !== null) tape.lora!.backward(s.loraQkv, dqkv, s.attnNormed, T, dattnNormed);
    rmsnormBackward(dattnNormed, s.xIn, T, b.attn.normScale.value, s.attnInv, dxIn, gradOf(b.attn.normScale));
    dx = dxIn;
  }

  const dEmbedding = gradOf(model.embedding);
  const embeddingRows = tape.lora?.tokens.embedding;
  tape.lora?.embedTokensBackward(tape.tokens, dx);
  if (dEmbedding !== null) {
    tape.tableRows.forEach((row, t) => {
      // A token whose row the adapter replaces did not read the base row.
      if (embeddingRows?.index.has(tape.tokens[t]!) === true) return;
      for (let i = 0; i < H; i++) dEmbedding[row * H + i] += dx[t * H + i]!;
    });
  }
}

/**
 * The targets for next-token training on `tokens`: position t predicts tokens[t+1] when
 * `trained[t+1]` (an assistant token, say), else IGNORE_TARGET; the last position predicts nothing.
 * Without `trained` every next token counts.
 */
export function nextTokenTargets(tokens: readonly number[], trained?: readonly boolean[]): Int32Array {
  if (trained !== undefined && trained.length !== tokens.length) throw new Error(`nextTokenTargets: ${trained.length} mask entries for ${tokens.length} tokens`);
  const targets = new Int32Array(tokens.length).fill(IGNORE_TARGET);
  for (let t = 0; t + 1 < tokens.length; t++) if (trained === undefined || trained[t + 1] === true) targets[t] = tokens[t + 1]!;
  return targets;
}

/**
 * Mean cross-entropy of the model on `tokens` against `targets` (IGNORE_TARGET where no loss),
 * plus routerBalance times the load-balancing loss (`balance`, reported unweighted), with the
 * gradients ADDED into the parameters' grads (call model.zeroGrad() between steps).
 */
export function lossAndGradients(model: TrainableModel, tokens: readonly number[], targets: Int32Array, options: TrainOptions = {}): { loss: number; counted: number; balance: number } {
  if (targets.length !== tokens.length) throw new Error(`lossAndGradients: ${targets.length} targets for ${tokens.length} tokens`);
  const tape = forwardTrain(model, tokens, withTargetRows(options, targets));
  const { loss, counted, dlogits } = tapeLoss(model, tape, targets);
  const coef = options.routerBalance ?? 0;
  if (coef === 0) {
    backwardTrain(model, tape, dlogits);
    return { loss, counted, balance: 0 };
  }
  const c = model.config;
  const balance = loadBalancingForward(tape.blocks.map((b) => b.gate), tape.blocks.map((b) => b.indices), tokens.length, c.numExperts, c.expertsPerToken);
  const dgates = tape.blocks.map(() => new Float64Array(tokens.length * c.numExperts));
  loadBalancingBackward(balance.saved, coef, tokens.length, c.numExperts, dgates);
  backwardTrain(model, tape, dlogits, dgates);
  return { loss: loss + coef * balance.loss, counted, balance: balance.loss };
}

/** The loss only (no tape kept beyond the call, no gradients): for evaluation and finite differences. */
export function lossOf(model: TrainableModel, tokens: readonly number[], targets: Int32Array, options: TrainOptions = {}): number {
  const tape = forwardTrain(model, tokens, withTargetRows(options, targets));
  const loss = tapeLoss(model, tape, targets).loss;
  const coef = options.routerBalance ?? 0;
  if (coef === 0) return loss;
  const c = model.config;
  return loss + coef * loadBalancingForward(tape.blocks.map((b) => b.gate), tape.blocks.map((b) => b.indices), tokens.length, c.numExperts, c.expertsPerToken).loss;
}

export interface EvaluationSums {
  /** The loss times the counted targets, summed over the examples. */
  sum: number;
  count: number;
}

/** Held-out loss sums over `examples` (no gradients, no balance loss): evaluate() divides them; a thread's share adds to the others'. */
export function evaluationSums(model: TrainableModel, examples: readonly { tokens: readonly number[]; targets: Int32Array }[], options: TrainOptions = {}): EvaluationSums {
  let sum = 0;
  let count = 0;
  for (const e of examples) {
    let counted = 0;
    for (const t of e.targets) if (t !== IGNORE_TARGET) counted++;
    if (counted === 0) continue;
    sum += lossOf(model, e.tokens, e.targets, { ...options, routerBalance: 0 }) * counted;
    count += counted;
  }
  return { sum, count };
}

/** `options` with logitRows set to the positions that have a target, unless the caller chose them. */
export function withTargetRows(options: TrainOptions, targets: Int32Array): TrainOptions {
  if (options.logitRows !== undefined) return options;
  const rows = targetRows(targets);
  return rows === undefined ? options : { ...options, logitRows: rows };
}

/** The masked cross-entropy of a forward's logits, over the full or the used vocabulary. */
export function tapeLoss(model: TrainableModel, tape: Tape, allTargets: Int32Array): { loss: number; counted: number; dlogits: Float64Array } {
  const rows = tape.logitRows;
  const targets = rows === null ? allTargets : rows.map((t) => allTargets[t]!);
  const T = rows === null ? tape.tokens.length : rows.length;
  const used = tape.vocabulary;
  if (used === null) return crossEntropy(tape.logits, T, model.config.vocabSize, targets);
  const position = new Map<number, number>();
  if (used !== model.vocabulary) used.forEach((id, i) => position.set(id, i));
  const compact = targets.map((id, t) => {
    if (id === IGNORE_TARGET) return IGNORE_TARGET;
    const i = used === model.vocabulary ? (model.tableRow(id) < 0 ? undefined : model.tableRow(id)) : position.get(id);
    if (i === undefined) throw new Error(`target token ${id} at ${rows === null ? t : rows[t]} is not in the used vocabulary`);
    return i;
  });
  return crossEntropy(tape.logits, T, used.length, compact, model.config.vocabSize - used.length);
}

/** Rows `ids` of a [rows, width] matrix, gathered into [ids.length, width]. */
function gatherRows(matrix: Float64Array, width: number, ids: Int32Array): Float64Array {
  const out = new Float64Array(ids.length * width);
  ids.forEach((id, i) => out.set(matrix.subarray(id * width, (id + 1) * width), i * width));
  return out;
}

/** The index of `id` in the ascending `sorted`, or -1. */
function sortedIndex(sorted: Int32Array, id: number): number {
  let lo = 0, hi = sorted.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid] === id) return mid;
    if (sorted[mid]! < id) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

/** The sorted distinct ids of `sequences`' tokens: the used vocabulary of a corpus. */
export function usedVocabulary(sequences: readonly (readonly number[])[]): Int32Array {
  const ids = new Set<number>();
  for (const s of sequences) for (const id of s) ids.add(id);
  return Int32Array.from([...ids].sort((a, b) => a - b));
}

/**
 * Zeroes the unembedding rows outside `vocabulary` (for a model trained from scratch on a corpus
 * that uses only those tokens), so the used-vocabulary shortcut applies; with 'both' the
 * embedding's too, so the model can be made compact. Returns the rows zeroed.
 */
export function zeroUnusedRows(model: TrainableModel, vocabulary: Int32Array, tables: 'unembedding' | 'both' = 'unembedding'): number {
  const H = model.config.hiddenSize;
  const used = new Set(vocabulary);
  let zeroed = 0;
  for (let id = 0; id < model.config.vocabSize; id++) {
    if (used.has(id)) continue;
    model.unembedding.value.fill(0, id * H, (id + 1) * H);
    // The embedding's too, for a compact model (compactVocabulary): a row never seen gets no gradient either.
    if (tables === 'both') model.embedding.value.fill(0, id * H, (id + 1) * H);
    zeroed++;
  }
  return zeroed;
}

/**
 * The sorted token ids whose unembedding row is not all zero. A model trained here from scratch
 * keeps the rows of tokens its corpus never used at zero, so fine-tuning it on other data stays
 * exact with the used-vocabulary shortcut over these rows plus the data's tokens.
 */
export function liveVocabulary(model: TrainableModel): Int32Array {
  const H = model.config.hiddenSize;
  const table = model.unembedding.value;
  const ids: number[] = [];
  for (let row = 0; row < table.length / H; row++) {
    for (let c = 0; c < H; c++) {
      if (table[row * H + c] !== 0) {
        ids.push(model.vocabulary === null ? row : model.vocabulary[row]!);
        break;
      }
    }
  }
  return Int32Array.from(ids);
}

/** Throws unless every unembedding row outside `vocabulary` is exactly zero (the shortcut's premise). */
export function checkUnusedRowsZero(model: TrainableModel, vocabulary: Int32Array): void {
  const H = model.config.hiddenSize;
  const used = new Set(vocabulary);
  for (let id = 0; id < model.config.vocabSize; id++) {
    if (used.has(id)) continue;
    for (let c = 0; c < H; c++) {
      if (model.unembedding.value[id * H + c] !== 0) throw new Error(`unembedding row ${id} is not in the used vocabulary but is not zero`);
    }
  }
}
