// Finding and loading a checkpoint folder into ModelWeights: layout detection (the `original/`
// layout the reference loads, at `DIR/original/` or at `DIR` itself, or the Hugging Face layout at
// `DIR`), then the layout's loader (original.ts, hf.ts), plus what users see of the folder: its
// name and whether synth's marker says its weights are random.
import { existsSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { UserError } from '../errors.ts';
import { parseOriginalConfig, type ModelConfig } from '../model/config.ts';
import type { ModelWeights } from '../model/weights.ts';
import type { TensorStore } from '../tensor/index.ts';
import { readJson, readRegularFile } from '../files.ts';
import { loadHfWeights, parseHfConfig } from './hf.ts';
import { loadOriginalWeights } from './original.ts';

export type CheckpointLayout = 'original' | 'hf';

export interface DetectedCheckpoint {
  layout: CheckpointLayout;
  /** The folder holding config.json and the safetensors files. */
  dir: string;
  configPath: string;
}

export interface LoadedCheckpoint {
  weights: ModelWeights;
  layout: CheckpointLayout;
  dir: string;
  /** A name for users: the model folder's name (without a trailing `original`). */
  name: string;
  /** True when the folder carries synth's marker file (random weights). */
  randomWeights: boolean;
}

/** The marker file every synthetic checkpoint carries (synth.ts writes it): loaders report `randomWeights` from it. */
export const MARKER_FILE = 'gptoss.json';

/**
 * Finds the checkpoint in `modelDir`: `original/config.json` (preferred: it is what the reference
 * loads), else `config.json` at the root — the Hugging Face layout when it says
 * `model_type: gpt_oss`, the original layout otherwise.
 */
export function detectCheckpoint(modelDir: string): DetectedCheckpoint {
  const dir = resolve(modelDir);
  if (!existsSync(dir)) throw new UserError('checkpoint', `${modelDir}: no such model folder`);
  if (!statSync(dir).isDirectory()) throw new UserError('checkpoint', `${modelDir}: is a file; pass the checkpoint's folder`);
  const original = join(dir, 'original', 'config.json');
  if (existsSync(original)) return { layout: 'original', dir: join(dir, 'original'), configPath: original };
  const root = join(dir, 'config.json');
  if (!existsSync(root)) {
    throw new UserError('checkpoint', `${modelDir}: no config.json and no original/config.json (not a gpt-oss checkpoint folder)`);
  }
  const json = readJson(root);
  const isHf = typeof json === 'object' && json !== null && (json as Record<string, unknown>).model_type === 'gpt_oss';
  return { layout: isHf ? 'hf' : 'original', dir, configPath: root };
}

/** Detects the layout of `modelDir` and parses its config.json, reading no tensor (for pre-flight checks). */
export async function readCheckpointConfig(modelDir: string): Promise<{ found: DetectedCheckpoint; config: ModelConfig }> {
  const found = detectCheckpoint(modelDir);
  const json = readJson(found.configPath);
  const config = found.layout === 'original' ? parseOriginalConfig(json, found.configPath) : parseHfConfig(json, found.configPath);
  return { found, config };
}

/** Detects the layout of `modelDir` and loads its weights into `store`. */
export async function loadCheckpoint(modelDir: string, store: TensorStore): Promise<LoadedCheckpoint> {
  const found = detectCheckpoint(modelDir);
  const load = found.layout === 'original' ? loadOriginalWeights : loadHfWeights;
  const weights = await load(found.dir, found.configPath, store);
  return { weights, layout: found.layout, dir: found.dir, name: modelName(found.dir), randomWeights: isRandomWeights(found.dir) };
}

/**
 * The folder's name, or `org/name` for a snapshot in the Hugging Face hub cache, or the embedded
 * model's own name (its marker's `embedded`, e.g. gpt-oss-nano) for its expanded copy in the cache.
 */
export function modelName(dir: string): string {
  try {
    const marker = JSON.parse(readRegularFile(join(dir, MARKER_FILE))) as { embedded?: unknown };
    if (typeof marker.embedded === 'string' && marker.embedded !== '') return marker.embedded;
  } catch {
    // no marker, or an unreadable one: named by its folder
  }
  const hub = /models--([^/]+?)--([^/]+)\/snapshots\//.exec(resolve(dir) + '/');
  if (hub !== null) return `${hub[1]}/${hub[2]}`;
  return basename(dir) === 'original' ? basename(dirname(dir)) : basename(dir);
}

/** Synthetic checkpoints (`gptoss synth`) carry a marker file beside (or above) their config. */
export function isRandomWeights(dir: string): boolean {
  for (const candidate of [join(dir, MARKER_FILE), join(dirname(dir), MARKER_FILE)]) {
    if (!existsSync(candidate)) continue;
    try {
      const marker = JSON.parse(readRegularFile(candidate)) as { random_weights?: unknown };
      if (marker.random_weights === true) return true;
    } catch {
      // An unreadable marker is not a claim of random weights.
    }
  }
  return false;
}
