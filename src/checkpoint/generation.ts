// A checkpoint's own generation defaults: the sampling fields of Hugging Face's
// generation_config.json beside the weights (`do_sample: false` is greedy decoding). This is the
// one place that reads them; the engine carries them (EngineInfo.sampling) and the sampler lays a
// caller's explicit settings over them, so chat, generate, serve and the library share them.
import { existsSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { UserError } from '../errors.ts';
import { readJson } from '../files.ts';

export const GENERATION_CONFIG_FILE = 'generation_config.json';

/** The sampling settings a checkpoint asks for; a field it does not name keeps the sampler's default. */
export interface GenerationDefaults {
  temperature?: number;
  topP?: number;
  topK?: number;
  minP?: number;
}

/**
 * The file's path for the checkpoint folder `dir` (the folder holding config.json): beside it, or
 * above it when `dir` is a repository's `original/` folder (the file sits at the repository root).
 */
export function generationConfigPath(dir: string): string | undefined {
  const candidates = [join(dir, GENERATION_CONFIG_FILE)];
  if (basename(dir) === 'original') candidates.push(join(dirname(dir), GENERATION_CONFIG_FILE));
  return candidates.find((path) => existsSync(path));
}

/**
 * The defaults in `dir`'s generation_config.json; none without the file. Token ids and other
 * fields are not sampling settings and are ignored. As vLLM reads the file, temperature, top_p,
 * top_k and min_p apply when present; `do_sample: false` means greedy whatever they say, and
 * `do_sample: true` alone changes nothing (Hugging Face's implicit top_k of 50 is not applied).
 * A file that is not a JSON object, or a field of the wrong type or range, is a UserError naming it.
 */
export function readGenerationDefaults(dir: string): GenerationDefaults {
  const path = generationConfigPath(dir);
  if (path === undefined) return {};
  return parseGenerationConfig(readJson(path), path);
}

/** The defaults in words, as chat and serve announce them ("greedy", "temperature 0.7, top_p 0.9"); undefined when there are none. */
export function describeGenerationDefaults(d: GenerationDefaults | undefined): string | undefined {
  if (d === undefined) return undefined;
  if (d.temperature === 0) return 'greedy';
  const parts = [
    d.temperature !== undefined ? `temperature ${d.temperature}` : undefined,
    d.topP !== undefined ? `top_p ${d.topP}` : undefined,
    d.topK !== undefined ? `top_k ${d.topK}` : undefined,
    d.minP !== undefined ? `min_p ${d.minP}` : undefined,
  ].filter((p) => p !== undefined);
  return parts.length > 0 ? parts.join(', ') : undefined;
}

/** The sampling defaults of a parsed generation_config.json; `path` names it in errors. */
export function parseGenerationConfig(json: unknown, path: string): GenerationDefaults {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new UserError('checkpoint', `${path}: expected a JSON object`);
  const fields = json as Record<string, unknown>;
  const field = (name: string, ok: (v: number) => boolean, range: string): number | undefined => {
    const v = fields[name];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) throw new UserError('checkpoint', `${path}: "${name}" must be ${range}, got ${JSON.stringify(v)}`);
    return v;
  };
  const doSample = fields['do_sample'];
  if (doSample !== undefined && doSample !== null && typeof doSample !== 'boolean') {
    throw new UserError('checkpoint', `${path}: "do_sample" must be true or false, got ${JSON.stringify(doSample)}`);
  }
  // Every field is checked even when do_sample: false makes them moot, so a typo never hides.
  const temperature = field('temperature', (v) => v >= 0, 'a number >= 0');
  const topP = field('top_p', (v) => v > 0 && v <= 1, 'a number in (0, 1]');
  const topK = field('top_k', (v) => Number.isInteger(v) && v >= 0, 'an integer >= 0');
  const minP = field('min_p', (v) => v >= 0 && v <= 1, 'a number in [0, 1]');
  if (doSample === false) return { temperature: 0 };
  return {
    ...(temperature !== undefined ? { temperature } : {}),
    ...(topP !== undefined ? { topP } : {}),
    ...(topK !== undefined ? { topK } : {}),
    ...(minP !== undefined ? { minP } : {}),
  };
}
