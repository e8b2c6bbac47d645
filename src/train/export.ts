// From trained float weights back to a checkpoint the engine serves: the `original/` layout with
// matrices in BF16 (round to nearest even), small vectors (norm scales, biases, sinks) in F32 so
// they keep their trained values, and the expert stacks quantised to MXFP4. Quantising is where a
// trained model loses accuracy; `quantiseMxfp4` picks each group's scale to minimise that loss.
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FP4_VALUES } from '../tensor/index.ts';
import { toOriginalConfigJson } from '../model/config.ts';
import { writeSafetensors, type TensorToWrite } from '../checkpoint/safetensors.ts';
import type { TrainableModel } from './params.ts';

const f32 = new Float32Array(1);
const f32Bits = new Uint32Array(f32.buffer);

/** The BF16 word nearest to `x` (ties to even), through f32. */
export function bf16Word(x: number): number {
  f32[0] = x;
  const bits = f32Bits[0]!;
  if ((bits & 0x7f800000) === 0x7f800000) return bits >>> 16; // infinities and NaN keep their class
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

export function toBf16(values: Float64Array): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = bf16Word(values[i]!);
  return out;
}

/**
 * The FP4 code (0..15) nearest to v (ties to the smaller magnitude); v is already divided by the
 * scale. The sign bit follows v's, -0 included, so a stored group re-quantises to the same codes.
 */
function nearestFp4(v: number): number {
  const magnitude = Math.abs(v);
  let best = 0;
  for (let code = 1; code < 8; code++) if (Math.abs(FP4_VALUES[code]! - magnitude) < Math.abs(FP4_VALUES[best]! - magnitude)) best = code;
  return v < 0 || Object.is(v, -0) ? best | 8 : best;
}

/**
 * MXFP4 packing of `count` matrices [rows, cols] (cols a multiple of 32): per group of 32 one E8M0
 * scale byte and 16 bytes of FP4 codes (even element in the low nibble). Each group tries the two
 * scales around its largest magnitude — 2^(floor(log2 amax) - 2), the OCP rule that may clip the
 * top values to 6, and twice that, which never clips but is coarser — and keeps whichever gives
 * the smaller squared error.
 */
export function quantiseMxfp4(values: Float64Array, count: number, rows: number, cols: number): { blocks: Uint8Array; scales: Uint8Array } {
  if (cols % 32 !== 0) throw new Error(`quantiseMxfp4: ${cols} columns is not a multiple of 32`);
  const groups = (count * rows * cols) / 32;
  const blocks = new Uint8Array(groups * 16);
  const scales = new Uint8Array(groups);
  const codes = new Uint8Array(32);
  const trial = new Uint8Array(32);
  for (let g = 0; g < groups; g++) {
    const base = g * 32;
    let amax = 0;
    for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(values[base + i]!));
    let bestScale = 127;
    codes.fill(0);
    if (amax > 0) {
      const exponent = Math.floor(Math.log2(amax)) - 2;
      let bestError = Infinity;
      for (const e of [exponent, exponent + 1]) {
        const byte = Math.min(254, Math.max(0, e + 127));
        const scale = 2 ** (byte - 127);
        let error = 0;
        for (let i = 0; i < 32; i++) {
          trial[i] = nearestFp4(values[base + i]! / scale);
          error += (FP4_VALUES[trial[i]!]! * scale - values[base + i]!) ** 2;
        }
        if (error < bestError) {
          bestError = error;
          bestScale = byte;
          codes.set(trial);
        }
      }
    }
    scales[g] = bestScale;
    for (let j = 0; j < 16; j++) blocks[g * 16 + j] = codes[2 * j]! | (codes[2 * j + 1]! << 4);
  }
  return { blocks, scales };
}

/** The model's tensors under the `original/` layout's names, dtypes and shapes (vocabulary tables always full). */
export function checkpointTensors(model: TrainableModel): TensorToWrite[] {
  const out: TensorToWrite[] = [];
  for (const p of model.params()) {
    const expert = /^(block\.\d+\.mlp\.mlp[12]_weight)$/.exec(p.name);
    if (expert !== null) {
      const [count, rows, cols] = p.shape as [number, number, number];
      const { blocks, scales } = quantiseMxfp4(p.value, count, rows, cols);
      out.push({ name: `${p.name}.blocks`, dtype: 'U8', shape: [count, rows, cols / 32, 16], data: blocks });
      out.push({ name: `${p.name}.scales`, dtype: 'U8', shape: [count, rows, cols / 32], data: scales });
    } else if (p.shape.length === 1 || p.name.endsWith('_bias')) {
      out.push({ name: p.name, dtype: 'F32', shape: p.shape, data: Float32Array.from(p.value) });
    } else if (p === model.embedding || p === model.unembedding) {
      // A compact table is written whole: zero rows for the tokens it does not hold.
      out.push({ name: p.name, dtype: 'BF16', shape: [model.config.vocabSize, model.config.hiddenSize], data: toBf16(model.fullTable(p)) });
    } else {
      out.push({ name: p.name, dtype: 'BF16', shape: p.shape, data: toBf16(p.value) });
    }
  }
  return out;
}

/**
 * Writes `model` as an `original/`-layout checkpoint folder (config.json + model.safetensors) that
 * loadCheckpoint and every command read. Written beside `dir` and renamed into place, so an
 * interrupted write never leaves a half checkpoint under the final name.
 */
export function writeOriginalCheckpoint(model: TrainableModel, dir: string): void {
  const tmp = `${dir}.partial`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  writeFileSync(join(tmp, 'config.json'), JSON.stringify(toOriginalConfigJson(model.config), null, 2) + '\n');
  writeSafetensors(join(tmp, 'model.safetensors'), checkpointTensors(model));
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
}
