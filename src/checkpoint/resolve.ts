// Which checkpoint `chat`, `serve` and `eval` run when the user names one or none: --model (a folder
// or a hub repository id), then $GPTOSS_MODEL, then gpt-oss-20b from the Hugging Face hub cache
// (not for finetune), then the embedded gpt-oss-nano (shipped in the package, expanded into the
// cache on first use). Never downloads anything.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../errors.ts';
import { hubCacheDir, repoFolderName } from './hub.ts';

export const DEFAULT_REPO = 'openai/gpt-oss-20b';

export type ModelSource = 'flag' | 'env' | 'hub-cache' | 'nano';

export interface ResolvedModel {
  /** The folder to load (a snapshot's `original/` for hub repositories that have one). */
  dir: string;
  source: ModelSource;
  /** The repository id when the model came from the hub cache. */
  repo?: string;
  /** One line for the user: where the model comes from. */
  description: string;
}

export interface ResolveOptions {
  env?: NodeJS.ProcessEnv;
  /** Expands (once) the embedded gpt-oss-nano and returns its folder and one line about it; injectable for tests. */
  embeddedModel?: () => { dir: string; description: string };
  /**
   * Whether the default chain looks for gpt-oss-20b in the hub cache (default true). finetune
   * skips it: a model that size cannot be trained here, so its default is the embedded model.
   */
  hubDefault?: boolean;
}

/** Resolves `--model` (or its absence) to a checkpoint folder; throws UserError('usage') with the fix. */
export async function resolveModel(spec: string | undefined, options: ResolveOptions = {}): Promise<ResolvedModel> {
  const env = options.env ?? process.env;
  // An empty flag is a mistake (an unset shell variable), not a request for the default model.
  if (spec === '') throw new UserError('usage', '--model is empty: give a checkpoint folder or a hub repository id, or leave the flag out for the default model');
  if (spec !== undefined) return resolveSpec(spec, 'flag', '--model', env);
  const fromEnv = env['GPTOSS_MODEL'];
  if (fromEnv !== undefined && fromEnv !== '') return resolveSpec(fromEnv, 'env', 'GPTOSS_MODEL', env);
  const cached = options.hubDefault === false ? undefined : findInHubCache(DEFAULT_REPO, env);
  if (cached !== undefined) return { dir: cached, source: 'hub-cache', repo: DEFAULT_REPO, description: `${DEFAULT_REPO} (hub cache: ${cached})` };
  const embedded = options.embeddedModel ?? (async () => {
    const { ensureNano } = await import('./nano.ts');
    const { dir, manifest } = ensureNano();
    return { dir, description: manifest.description };
  });
  const { dir, description } = await embedded();
  return { dir, source: 'nano', description: `the embedded ${description} (${dir})` };
}

function resolveSpec(spec: string, source: ModelSource, origin: string, env: NodeJS.ProcessEnv): ResolvedModel {
  if (existsSync(spec)) {
    if (!statSync(spec).isDirectory()) throw new UserError('usage', `${origin} "${spec}" is a file; pass the checkpoint's folder`);
    return { dir: spec, source, description: spec };
  }
  if (!isRepoId(spec)) {
    throw new UserError('usage', `${origin} "${spec}": no such folder, and not a hub repository id like ${DEFAULT_REPO}`);
  }
  const dir = findInHubCache(spec, env);
  if (dir === undefined) {
    throw new UserError('usage', `${origin} "${spec}" is not in the hub cache (${hubCacheDir(env)}); download it first with: gptoss pull ${spec}`);
  }
  return { dir, source, repo: spec, description: `${spec} (hub cache: ${dir})` };
}

function isRepoId(s: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*$/.test(s) && !s.includes('..');
}

/**
 * The snapshot of `repo` in the hub cache: the commit refs/main names, else the most recently
 * modified snapshot; its `original/` subfolder when that holds a checkpoint (gpt-oss's own layout).
 */
export function findInHubCache(repo: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const root = join(hubCacheDir(env), repoFolderName(repo));
  const snapshots = join(root, 'snapshots');
  if (!existsSync(snapshots)) return undefined;
  let commit: string | undefined;
  try {
    commit = readFileSync(join(root, 'refs', 'main'), 'utf8').trim();
  } catch {
    commit = undefined;
  }
  let snapshot = commit !== undefined && commit !== '' && existsSync(join(snapshots, commit)) ? join(snapshots, commit) : undefined;
  if (snapshot === undefined) {
    const candidates = readdirSync(snapshots)
      .map((name) => join(snapshots, name))
      .filter((p) => statSync(p).isDirectory())
      .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
    snapshot = candidates[0];
  }
  if (snapshot === undefined) return undefined;
  const original = join(snapshot, 'original');
  if (existsSync(join(original, 'config.json'))) return original;
  if (existsSync(join(snapshot, 'config.json'))) return snapshot;
  return undefined;
}
