// A training run's state on disk, so an interrupted run resumes exactly where it stopped: the
// trained parameters' values and AdamW's moments in float64 (a resumed run is bit-identical to
// an uninterrupted one), the update count, and the caller's metadata (data position, seed,
// schedule) as strings. One safetensors file, written beside its final name and renamed in, so an
// interruption while saving leaves the previous state intact.
import { renameSync } from 'node:fs';
import { UserError } from '../errors.ts';
import { SafetensorsFile, writeSafetensors } from '../checkpoint/safetensors.ts';
import type { AdamW } from './optim.ts';
import type { Param } from './params.ts';

export const STATE_FORMAT = 'gptoss-train-state/1';

/** Saves `params` (the ones being trained) and the optimiser's moments for them. */
export function saveTrainingState(path: string, params: readonly Param[], optimizer: AdamW, metadata: Record<string, string> = {}): void {
  const tensors = params.flatMap((p) => {
    const { m, v } = optimizer.moments(p);
    return [
      { name: `param.${p.name}`, dtype: 'F64' as const, shape: p.shape, data: p.value },
      { name: `adam_m.${p.name}`, dtype: 'F64' as const, shape: p.shape, data: m },
      { name: `adam_v.${p.name}`, dtype: 'F64' as const, shape: p.shape, data: v },
    ];
  });
  const tmp = `${path}.partial`;
  writeSafetensors(tmp, tensors, { ...metadata, format: STATE_FORMAT, steps: String(optimizer.steps) });
  renameSync(tmp, path);
}

/**
 * Restores values and moments of `params` from a file `saveTrainingState` wrote, and the
 * optimiser's update count; returns the saved metadata. Every parameter must be in the file with
 * its shape (a run resumes with the model and adapters it started with).
 */
export function loadTrainingState(path: string, params: readonly Param[], optimizer: AdamW): Record<string, string> {
  const file = SafetensorsFile.open(path);
  try {
    const meta = file.metadata;
    if (meta['format'] !== STATE_FORMAT) throw new UserError('checkpoint', `${path}: not a gptoss training state (format ${JSON.stringify(meta['format'] ?? null)}, expected ${STATE_FORMAT})`);
    const steps = Number(meta['steps']);
    if (!Number.isInteger(steps) || steps < 0) throw new UserError('checkpoint', `${path}: steps ${JSON.stringify(meta['steps'])} is not a count`);
    const read = (name: string, p: Param, into: Float64Array): void => {
      const info = file.tensors.get(name);
      if (info === undefined) throw new UserError('checkpoint', `${path}: tensor "${name}" is missing (was the state saved for another model or adapter?)`);
      if (info.dtype !== 'F64' || info.shape.length !== p.shape.length || info.shape.some((d, i) => d !== p.shape[i])) {
        throw new UserError('checkpoint', `${path}: tensor "${name}" is ${info.dtype} ${JSON.stringify(info.shape)}, expected F64 ${JSON.stringify(p.shape)}`);
      }
      const bytes = new Uint8Array(info.byteLength);
      file.readInto(name, bytes);
      const view = new DataView(bytes.buffer);
      for (let i = 0; i < into.length; i++) into[i] = view.getFloat64(8 * i, true);
    };
    for (const p of params) {
      const { m, v } = optimizer.moments(p);
      read(`param.${p.name}`, p, p.value);
      read(`adam_m.${p.name}`, p, m);
      read(`adam_v.${p.name}`, p, v);
    }
    optimizer.steps = steps;
    const { format: _format, steps: _steps, ...rest } = meta;
    return rest;
  } finally {
    file.close();
  }
}
