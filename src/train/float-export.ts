// The float export of a trained model: the same `original/` checkpoint as writeOriginalCheckpoint
// writes, except that the expert stacks are kept unquantised (F32, under the parameters' own names
// `block.{n}.mlp.mlp1_weight` / `mlp2_weight`) instead of MXFP4 blocks and scales. Every command
// loads it (the backends compute such experts with the reference code), so a model can be
// measured before and after quantisation with the same engine and agent loop.
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { toOriginalConfigJson } from '../model/config.ts';
import { writeSafetensors, type TensorToWrite } from '../checkpoint/safetensors.ts';
import { checkpointTensors } from './export.ts';
import type { TrainableModel } from './params.ts';

const EXPERT_STACK = /^block\.\d+\.mlp\.mlp[12]_weight$/;

/** The model's tensors with the expert stacks in F32 (everything else as checkpointTensors gives it). */
export function floatCheckpointTensors(model: TrainableModel): TensorToWrite[] {
  const experts = model.params().filter((p) => EXPERT_STACK.test(p.name));
  const packed = new Set(experts.flatMap((p) => [`${p.name}.blocks`, `${p.name}.scales`]));
  return [
    ...checkpointTensors(model).filter((t) => !packed.has(t.name)),
    ...experts.map((p): TensorToWrite => ({ name: p.name, dtype: 'F32', shape: p.shape, data: Float32Array.from(p.value) })),
  ];
}

/** Writes the float export of `model` to `dir` (beside it first, then renamed into place). */
export function writeFloatCheckpoint(model: TrainableModel, dir: string): void {
  const tmp = `${dir}.partial`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  writeFileSync(join(tmp, 'config.json'), JSON.stringify(toOriginalConfigJson(model.config), null, 2) + '\n');
  writeSafetensors(join(tmp, 'model.safetensors'), floatCheckpointTensors(model));
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
}
