// A LoRA adapter folded into loaded (inference) weights, and a merged model written back as a
// checkpoint. The attention matrices are BF16, so the merge is W' = bf16(W + (alpha/r) B A): the
// sum in float64, rounded once to the nearest BF16 (ties to even). That rounding is the merge's
// only error, at most half a BF16 unit in the last place of each merged entry (2^-9 relative);
// an update smaller than that on an entry is lost there. Adapters on the experts cannot be folded
// into MXFP4 without losing most of a small update (a 4-bit code's step is a quarter to a half of
// its group's largest value), so an adapted layer's expert stack becomes float: its MXFP4 values
// dequantised plus the update, in f32 (the backends compute such experts with the reference code,
// as for a float export); unadapted layers stay packed. `gptoss merge` then re-quantises those
// stacks to MXFP4 (`requantiseExperts`) and measures what that loses. An adapter's token rows
// (PEFT's trainable tokens) replace their tokens' rows of the embedding and the unembedding,
// rounded once to BF16 as the tables are stored. The router, the norms and every other row of
// both vocabulary tables are carried over bit for bit.
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { toOriginalConfigJson } from '../model/config.ts';
import type { EmbeddingTable, ModelWeights } from '../model/weights.ts';
import { dequantMxfp4Row, type Bf16Matrix, type Mxfp4Matrices } from '../tensor/index.ts';
import { writeSafetensors, type TensorToWrite } from '../checkpoint/safetensors.ts';
import { bf16Word, quantiseMxfp4 } from './export.ts';
import type { LoraAdapters } from './lora.ts';

export interface MergeReport {
  /** Adapted modules (one per layer and target). */
  modules: number;
  /** Entries changed by the merge (W + delta rounded to another BF16 value than W). */
  changed: number;
  /** Entries of the adapted matrices. */
  entries: number;
  /** Largest |bf16(W + delta) - (W + delta)| over the adapted entries: the merge's rounding error. */
  maxError: number;
  /** Root mean square of that error, and of the adapter's update delta, over the adapted entries. */
  rmsError: number;
  rmsDelta: number;
  /** Adapted expert stacks (one per layer and gate_up_proj/down_proj), now float, and their update's size. */
  expertStacks: number;
  expertEntries: number;
  expertRmsDelta: number;
  /** Token rows put in place of the base's: the embedding's and the unembedding's. */
  embeddingRows: number;
  unembeddingRows: number;
}

export interface RequantiseReport {
  /** Float expert stacks packed back to MXFP4. */
  stacks: number;
  entries: number;
  /** Largest and root-mean-square |mxfp4(W') - W'| over their entries. */
  maxError: number;
  rmsError: number;
  /** Root mean square of the entries themselves, for scale. */
  rmsValue: number;
}

const word = new Uint32Array(1);
const wide = new Float32Array(word.buffer);

function bf16Value(w: number): number {
  word[0] = w << 16;
  return wide[0]!;
}

/** Folds `lora` into `weights` in place: attention in BF16, adapted expert stacks made float (see the file header). */
export function mergeLoraIntoWeights(weights: ModelWeights, lora: LoraAdapters): MergeReport {
  const r = lora.rank;
  let changed = 0, entries = 0, maxError = 0, sumError2 = 0, sumDelta2 = 0;
  for (const m of lora.modules) {
    const attn = weights.blocks[m.layer]!.attn;
    const matrix: Bf16Matrix = m.target === 'o_proj' ? attn.out.weight : attn.qkv.weight;
    if (matrix.cols !== m.inFeatures || matrix.rows < m.rowOffset + m.outFeatures) {
      throw new Error(`merge: ${m.path} is [${m.outFeatures}, ${m.inFeatures}] at row ${m.rowOffset}, the matrix is [${matrix.rows}, ${matrix.cols}]`);
    }
    const A = m.A.value, B = m.B.value;
    for (let o = 0; o < m.outFeatures; o++) {
      const rowStart = (m.rowOffset + o) * matrix.cols;
      for (let c = 0; c < m.inFeatures; c++) {
        let sum = 0;
        for (let j = 0; j < r; j++) sum += B[o * r + j]! * A[j * m.inFeatures + c]!;
        const delta = lora.scale * sum;
        const before = matrix.data[rowStart + c]!;
        const exact = bf16Value(before) + delta;
        const after = bf16Word(exact);
        matrix.data[rowStart + c] = after;
        const error = Math.abs(bf16Value(after) - exact);
        if (after !== before) changed++;
        if (error > maxError) maxError = error;
        sumError2 += error * error;
        sumDelta2 += delta * delta;
        entries++;
      }
    }
  }
  let expertEntries = 0, expertDelta2 = 0;
  for (const m of lora.expertModules) {
    const mlp = weights.blocks[m.layer]!.mlp;
    const stack = m.target === 'gate_up_proj' ? mlp.mlp1Weight : mlp.mlp2Weight;
    if (stack.count !== m.experts || stack.rows !== m.outFeatures || stack.cols !== m.inFeatures) {
      throw new Error(`merge: ${m.path}.${m.target} is [${m.experts}, ${m.outFeatures}, ${m.inFeatures}], the stack is [${stack.count}, ${stack.rows}, ${stack.cols}]`);
    }
    const dense = denseExperts(stack);
    const size = stack.rows * stack.cols;
    for (let e = 0; e < stack.count; e++) {
      const delta = lora.expertDelta(m, e);
      for (let i = 0; i < size; i++) {
        dense[e * size + i] += delta[i]!;
        expertDelta2 += delta[i]! * delta[i]!;
      }
    }
    expertEntries += dense.length;
    const float: Mxfp4Matrices = { count: stack.count, rows: stack.rows, cols: stack.cols, blocks: new Uint8Array(0), scales: new Uint8Array(0), dense };
    if (m.target === 'gate_up_proj') mlp.mlp1Weight = float;
    else mlp.mlp2Weight = float;
  }
  const H = weights.config.hiddenSize;
  const embeddingRows = lora.tokens.embedding;
  if (embeddingRows !== undefined) {
    const words = new Uint16Array(embeddingRows.rows.value.length);
    embeddingRows.rows.value.forEach((v, i) => { words[i] = bf16Word(v); });
    weights.embedding.weight = withRows(weights.embedding.weight, embeddingRows.index, words);
  }
  const unembeddingRows = lora.tokens.unembedding;
  if (unembeddingRows !== undefined) {
    const table = weights.unembedding.weight;
    unembeddingRows.ids.forEach((id, i) => {
      for (let c = 0; c < H; c++) table.data[id * H + c] = bf16Word(unembeddingRows.rows.value[i * H + c]!);
    });
  }
  return {
    embeddingRows: embeddingRows?.ids.length ?? 0, unembeddingRows: unembeddingRows?.ids.length ?? 0,
    modules: lora.modules.length, changed, entries, maxError,
    rmsError: entries > 0 ? Math.sqrt(sumError2 / entries) : 0,
    rmsDelta: entries > 0 ? Math.sqrt(sumDelta2 / entries) : 0,
    expertStacks: lora.expertModules.length, expertEntries,
    expertRmsDelta: expertEntries > 0 ? Math.sqrt(expertDelta2 / expertEntries) : 0,
  };
}

/** `table` with the rows of `index`'s tokens read from `words` (BF16, [rows, cols]) instead. */
function withRows(table: EmbeddingTable, index: ReadonlyMap<number, number>, words: Uint16Array): EmbeddingTable {
  const cols = table.cols;
  return {
    rows: table.rows, cols,
    readRow(id, out) {
      const i = index.get(id);
      if (i === undefined) return table.readRow(id, out);
      for (let c = 0; c < cols; c++) out[c] = bf16Value(words[i * cols + c]!);
    },
    close: () => table.close(),
  };
}

/** An expert stack's values in f32 [count, rows, cols] (a copy when packed). */
function denseExperts(m: Mxfp4Matrices): Float32Array {
  if (m.dense !== undefined) return m.dense;
  const out = new Float32Array(m.count * m.rows * m.cols);
  for (let e = 0; e < m.count; e++) {
    for (let r = 0; r < m.rows; r++) dequantMxfp4Row(m, e, r, out.subarray((e * m.rows + r) * m.cols, (e * m.rows + r + 1) * m.cols));
  }
  return out;
}

/** Packs every float expert stack of `weights` (a merged expert adapter, a float export) back to MXFP4, measuring the error. */
export function requantiseExperts(weights: ModelWeights): RequantiseReport {
  let stacks = 0, entries = 0, maxError = 0, sumError2 = 0, sumValue2 = 0;
  for (const b of weights.blocks) {
    for (const key of ['mlp1Weight', 'mlp2Weight'] as const) {
      const m = b.mlp[key];
      if (m.dense === undefined) continue;
      const values = Float64Array.from(m.dense);
      const packed: Mxfp4Matrices = { count: m.count, rows: m.rows, cols: m.cols, ...quantiseMxfp4(values, m.count, m.rows, m.cols) };
      const row = new Float32Array(m.cols);
      for (let e = 0; e < m.count; e++) {
        for (let r = 0; r < m.rows; r++) {
          dequantMxfp4Row(packed, e, r, row);
          const start = (e * m.rows + r) * m.cols;
          for (let c = 0; c < m.cols; c++) {
            const error = Math.abs(row[c]! - values[start + c]!);
            if (error > maxError) maxError = error;
            sumError2 += error * error;
            sumValue2 += values[start + c]! * values[start + c]!;
          }
        }
      }
      b.mlp[key] = packed;
      stacks++;
      entries += values.length;
    }
  }
  return { stacks, entries, maxError, rmsError: entries > 0 ? Math.sqrt(sumError2 / entries) : 0, rmsValue: entries > 0 ? Math.sqrt(sumValue2 / entries) : 0 };
}

/**
 * Loaded weights as the `original/` layout's tensors, stored forms unchanged: BF16 matrices as
 * their words, MXFP4 experts as their blocks and scales, vectors in F32 (what the loader widened
 * them to, so exact). The embedding is streamed row by row from wherever the loader left it.
 */
export function weightsTensors(weights: ModelWeights): TensorToWrite[] {
  const c = weights.config;
  const H = c.hiddenSize;
  const bf16 = (name: string, m: Bf16Matrix): TensorToWrite => ({ name, dtype: 'BF16', shape: [m.rows, m.cols], data: m.data });
  const f32 = (name: string, v: Float32Array, shape: number[] = [v.length]): TensorToWrite => ({ name, dtype: 'F32', shape, data: v });
  const table = weights.embedding.weight;
  const out: TensorToWrite[] = [{
    name: 'embedding.weight', dtype: 'BF16', shape: [table.rows, table.cols],
    data: (write) => {
      const row = new Float32Array(table.cols);
      const words = new Uint16Array(table.cols);
      for (let id = 0; id < table.rows; id++) {
        table.readRow(id, row);
        for (let i = 0; i < table.cols; i++) words[i] = bf16Word(row[i]!); // exact: the rows were BF16
        write(words);
      }
    },
  }];
  weights.blocks.forEach((b, n) => {
    const p = `block.${n}`;
    out.push(
      f32(`${p}.attn.norm.scale`, b.attn.norm.scale),
      bf16(`${p}.attn.qkv.weight`, b.attn.qkv.weight),
      f32(`${p}.attn.qkv.bias`, b.attn.qkv.bias),
      f32(`${p}.attn.sinks`, b.attn.sinks),
      bf16(`${p}.attn.out.weight`, b.attn.out.weight),
      f32(`${p}.attn.out.bias`, b.attn.out.bias),
      f32(`${p}.mlp.norm.scale`, b.mlp.norm.scale),
      bf16(`${p}.mlp.gate.weight`, b.mlp.gate.weight),
      f32(`${p}.mlp.gate.bias`, b.mlp.gate.bias),
    );
    for (const [name, m, bias] of [['mlp1', b.mlp.mlp1Weight, b.mlp.mlp1Bias], ['mlp2', b.mlp.mlp2Weight, b.mlp.mlp2Bias]] as const) {
      out.push(
        { name: `${p}.mlp.${name}_weight.blocks`, dtype: 'U8', shape: [m.count, m.rows, m.cols / 32, 16], data: m.blocks },
        { name: `${p}.mlp.${name}_weight.scales`, dtype: 'U8', shape: [m.count, m.rows, m.cols / 32], data: m.scales },
        f32(`${p}.mlp.${name}_bias`, bias, [m.count, m.rows]),
      );
    }
  });
  out.push(f32('norm.scale', weights.norm.scale, [H]), bf16('unembedding.weight', weights.unembedding.weight));
  return out;
}

/** Writes loaded weights as an `original/`-layout checkpoint folder, beside `dir` then renamed in. */
export function writeWeightsCheckpoint(weights: ModelWeights, dir: string): void {
  const tmp = `${dir}.partial`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  writeFileSync(join(tmp, 'config.json'), JSON.stringify(toOriginalConfigJson(weights.config), null, 2) + '\n');
  writeSafetensors(join(tmp, 'model.safetensors'), weightsTensors(weights));
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
}
