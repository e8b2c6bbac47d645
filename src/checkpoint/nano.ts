// gpt-oss-nano as the package ships it, and its expansion into a normal checkpoint. A model trained
// on a small corpus uses about 2,000 of the 201,088 token ids; the embedding and unembedding rows
// of the others are exactly zero. The shipped folder stores only the non-zero rows with their
// token ids (every other tensor as the checkpoint has it, experts in MXFP4) and a manifest with
// the files' SHA-256; on first use the rows are spread back into full tables, zero elsewhere, and
// the original-layout checkpoint is written to the cache (into a temporary folder renamed into
// place, so an interrupted run never leaves half a model under the final name).
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError, readProblem } from '../errors.ts';
import { parseOriginalConfig, type ModelConfig } from '../model/config.ts';
import { MARKER_FILE } from './checkpoint.ts';
import { GENERATION_CONFIG_FILE } from './generation.ts';
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from './safetensors.ts';
import { gptossCacheDir } from './synth.ts';

export const NANO_NAME = 'gpt-oss-nano';

/** The shipped folder's files. */
export const NANO_FILES = { config: 'config.json', weights: 'model.safetensors', generation: GENERATION_CONFIG_FILE, manifest: 'nano.json' } as const;

/**
 * gpt-oss-nano's generation_config.json: greedy decoding. It stores only the rows of the tokens its
 * corpus uses; every other token's logit is 0, and at temperature 1 those ~199k tokens together
 * take real probability wherever the model is unsure, so sampling prints stray foreign tokens.
 * The token ids are o200k_harmony's, as the gpt-oss checkpoints' own file lists them.
 */
export const NANO_GENERATION_CONFIG = { bos_token_id: 199998, do_sample: false, eos_token_id: [200002, 199999, 200012], pad_token_id: 199999 } as const;

/** The tables stored as rows, and the compact file's names for their rows and the rows' token ids. */
const ROW_TABLES = ['embedding.weight', 'unembedding.weight'] as const;
const ROWS_SUFFIX = '.rows';
const TOKEN_IDS = 'token_ids';

/** The shipped folder inside the package (models/gpt-oss-nano beside src/ and dist/). */
export function shippedNanoDir(): string {
  return fileURLToPath(new URL('../../models/gpt-oss-nano', import.meta.url));
}

/** The document folder gpt-oss-nano's browser was trained on (examples/nano-docs in the package). */
export function nanoDocsDir(): string {
  return fileURLToPath(new URL('../../examples/nano-docs', import.meta.url));
}

/** What nano.json says about the shipped model. */
export interface NanoManifest {
  name: string;
  /** One line for the user: what the model is. */
  description: string;
  /** True for a stand-in with untrained weights (the loaders then say its output is gibberish). */
  random_weights: boolean;
  /** Token rows stored (the rest are zero). */
  rows: number;
  /** SHA-256 (hex) of each shipped file but the manifest. */
  sha256: Record<string, string>;
}

/** A small JSON file of ours (a manifest, a marker), parsed. */
function readJsonFile(path: string): unknown {
  return JSON.parse(readFileSync(path, 'utf8')) as unknown;
}

function sha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

function bad(dir: string, problem: string): never {
  throw new UserError('checkpoint', `the shipped ${NANO_NAME} in ${dir} is damaged (${problem}); reinstall the package`);
}

/** Reads and checks the shipped folder: the manifest, and each file against its checksum. */
export function readShippedNano(dir: string): { manifest: NanoManifest; config: ModelConfig } {
  let manifest: NanoManifest;
  try {
    manifest = readJsonFile(join(dir, NANO_FILES.manifest)) as NanoManifest;
  } catch (e) {
    bad(dir, `${NANO_FILES.manifest}: ${readProblem(e)}`);
  }
  if (typeof manifest !== 'object' || manifest === null || typeof manifest.sha256 !== 'object' || manifest.sha256 === null) bad(dir, `${NANO_FILES.manifest} has no checksums`);
  // A folder packed before the model shipped a generation config lists none; one that lists it needs it.
  const files = [NANO_FILES.config, NANO_FILES.weights, ...(NANO_FILES.generation in manifest.sha256 ? [NANO_FILES.generation] : [])];
  for (const file of files) {
    const want = manifest.sha256[file];
    if (typeof want !== 'string') bad(dir, `${NANO_FILES.manifest} has no checksum for ${file}`);
    if (!existsSync(join(dir, file))) bad(dir, `${file} is missing`);
    if (sha256(join(dir, file)) !== want) bad(dir, `${file} does not match its checksum: truncated or altered`);
  }
  const config = parseOriginalConfig(JSON.parse(readFileSync(join(dir, NANO_FILES.config), 'utf8')), join(dir, NANO_FILES.config));
  return { manifest, config };
}

/** The ids of the rows that are non-zero in either table, ascending. */
function liveRows(file: SafetensorsFile, config: ModelConfig): Int32Array {
  const H = config.hiddenSize;
  const live = new Uint8Array(config.vocabSize);
  for (const name of ROW_TABLES) {
    const info = file.tensors.get(name);
    if (info === undefined || info.dtype !== 'BF16' || info.shape[0] !== config.vocabSize || info.shape[1] !== H) {
      throw new UserError('checkpoint', `${file.path}: "${name}" must be a BF16 [${config.vocabSize}, ${H}] tensor`);
    }
    const table = new Uint16Array(info.byteLength / 2);
    file.readInto(name, new Uint8Array(table.buffer));
    for (let id = 0; id < config.vocabSize; id++) {
      if (live[id] === 1) continue;
      // A BF16 word with only the sign bit set is -0: a zero row re-created as +0 would differ in its bits.
      for (let c = 0; c < H; c++) if (table[id * H + c] !== 0) { live[id] = 1; break; }
    }
  }
  const ids: number[] = [];
  live.forEach((v, id) => { if (v === 1) ids.push(id); });
  return Int32Array.from(ids);
}

function readTensor(file: SafetensorsFile, name: string): Uint8Array {
  const info = file.tensors.get(name)!;
  const out = new Uint8Array(info.byteLength);
  file.readInto(name, out);
  return out;
}

export interface PackResult {
  rows: number;
  bytes: number;
}

/**
 * Writes the shipped folder `outDir` from an original-layout checkpoint folder `fromDir`
 * (config.json + model.safetensors): every tensor as it is, except the two vocabulary tables,
 * stored as their non-zero rows and those rows' token ids.
 */
export function packNano(fromDir: string, outFolder: string, options: { randomWeights?: boolean; description?: string } = {}): PackResult {
  const outDir = resolve(outFolder);
  const configPath = join(fromDir, 'config.json');
  const weightsPath = join(fromDir, 'model.safetensors');
  if (!existsSync(configPath) || !existsSync(weightsPath)) throw new UserError('usage', `${fromDir}: expected an original-layout checkpoint folder (config.json + model.safetensors)`);
  const config = parseOriginalConfig(readJsonFile(configPath), configPath);
  const file = SafetensorsFile.open(weightsPath);
  try {
    const ids = liveRows(file, config);
    const H = config.hiddenSize;
    const tensors: TensorToWrite[] = [{ name: TOKEN_IDS, dtype: 'I32', shape: [ids.length], data: ids }];
    for (const [name, info] of file.tensors) {
      if ((ROW_TABLES as readonly string[]).includes(name)) {
        const table = new Uint16Array(info.byteLength / 2);
        file.readInto(name, new Uint8Array(table.buffer));
        const rows = new Uint16Array(ids.length * H);
        ids.forEach((id, i) => rows.set(table.subarray(id * H, (id + 1) * H), i * H));
        tensors.push({ name: name + ROWS_SUFFIX, dtype: 'BF16', shape: [ids.length, H], data: rows });
      } else {
        tensors.push({ name, dtype: info.dtype, shape: info.shape, data: readTensor(file, name) });
      }
    }
    const tmp = `${outDir}.partial`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    writeFileSync(join(tmp, NANO_FILES.config), readFileSync(configPath));
    writeFileSync(join(tmp, NANO_FILES.generation), JSON.stringify(NANO_GENERATION_CONFIG, null, 2) + '\n');
    writeSafetensors(join(tmp, NANO_FILES.weights), tensors, { format: 'gptoss-nano-rows' });
    const manifest: NanoManifest = {
      name: NANO_NAME,
      description: options.description ?? `${NANO_NAME}: ${config.numLayers} layers, hidden ${H}, ${config.numExperts} experts (top ${config.expertsPerToken}), ${ids.length} token rows`,
      random_weights: options.randomWeights === true,
      rows: ids.length,
      sha256: Object.fromEntries([NANO_FILES.config, NANO_FILES.weights, NANO_FILES.generation].map((f) => [f, sha256(join(tmp, f))])),
    };
    writeFileSync(join(tmp, NANO_FILES.manifest), JSON.stringify(manifest, null, 2) + '\n');
    rmSync(outDir, { recursive: true, force: true });
    mkdirSync(dirname(outDir), { recursive: true });
    renameSync(tmp, outDir);
    return { rows: ids.length, bytes: readFileSync(join(outDir, NANO_FILES.weights)).byteLength };
  } finally {
    file.close();
  }
}

/** Whether `dir` is an expanded gpt-oss-nano (its marker says so). */
export function isEmbeddedNano(dir: string): boolean {
  try {
    const marker = readJsonFile(join(dir, MARKER_FILE)) as { embedded?: unknown };
    return marker.embedded === NANO_NAME;
  } catch {
    return false;
  }
}

/**
 * The expanded checkpoint of the shipped model `shippedDir` under `cacheDir`, written on first use:
 * <cache>/gpt-oss-nano-<first 12 hex digits of the weights' checksum>, so a new release expands
 * beside an old one instead of being mistaken for it. A damaged shipped folder is a UserError.
 */
export function ensureNano(shippedDir: string = shippedNanoDir(), cacheDir: string = gptossCacheDir()): { dir: string; manifest: NanoManifest } {
  let manifest: NanoManifest | undefined;
  try {
    manifest = readJsonFile(join(shippedDir, NANO_FILES.manifest)) as NanoManifest;
  } catch {
    manifest = undefined; // readShippedNano below names the problem
  }
  const digest = manifest?.sha256?.[NANO_FILES.weights];
  if (manifest !== undefined && typeof digest === 'string' && /^[0-9a-f]{64}$/.test(digest)) {
    const dir = join(cacheDir, `${NANO_NAME}-${digest.slice(0, 12)}`);
    if (expandedMatches(dir, manifest.sha256)) return { dir, manifest };
  }
  const shipped = readShippedNano(shippedDir);
  const weightsDigest = shipped.manifest.sha256[NANO_FILES.weights]!;
  const dir = join(cacheDir, `${NANO_NAME}-${weightsDigest.slice(0, 12)}`);
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    expandInto(shippedDir, shipped.config, tmp);
    const marker = { embedded: NANO_NAME, sha256: weightsDigest, random_weights: shipped.manifest.random_weights, description: shipped.manifest.description };
    writeFileSync(join(tmp, MARKER_FILE), JSON.stringify(marker, null, 2) + '\n');
    // Another process may have expanded it meanwhile (and be reading it): keep theirs. Only a
    // folder that is not a complete expansion of this model is replaced.
    if (expandedMatches(dir, shipped.manifest.sha256)) return { dir, manifest: shipped.manifest };
    rmSync(dir, { recursive: true, force: true });
    try {
      renameSync(tmp, dir);
    } catch (e) {
      if (!expandedMatches(dir, shipped.manifest.sha256)) throw e; // another process expanded it first
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return { dir, manifest: shipped.manifest };
}

/**
 * Whether `dir` is a complete expansion of the shipped files with these checksums: the marker names
 * the weights, and the generation config is the shipped one (an expansion made before the model
 * shipped one, of the same weights, lacks it and is expanded again).
 */
function expandedMatches(dir: string, digests: Record<string, string>): boolean {
  if (!existsSync(join(dir, 'model.safetensors')) || !existsSync(join(dir, 'config.json'))) return false;
  try {
    const generation = digests[NANO_FILES.generation];
    if (generation !== undefined && (!existsSync(join(dir, NANO_FILES.generation)) || sha256(join(dir, NANO_FILES.generation)) !== generation)) return false;
    const marker = readJsonFile(join(dir, MARKER_FILE)) as { embedded?: unknown; sha256?: unknown };
    return marker.embedded === NANO_NAME && marker.sha256 === digests[NANO_FILES.weights];
  } catch {
    return false;
  }
}

/** Writes config.json, generation_config.json and the full model.safetensors of the shipped model into `dir`. */
function expandInto(shippedDir: string, config: ModelConfig, dir: string): void {
  const weightsPath = join(shippedDir, NANO_FILES.weights);
  const file = SafetensorsFile.open(weightsPath);
  try {
    const H = config.hiddenSize, V = config.vocabSize;
    const idsInfo = file.tensors.get(TOKEN_IDS);
    if (idsInfo === undefined || idsInfo.dtype !== 'I32' || idsInfo.shape.length !== 1) bad(shippedDir, `${NANO_FILES.weights} has no I32 ${TOKEN_IDS}`);
    const ids = new Int32Array(idsInfo.shape[0]!);
    file.readInto(TOKEN_IDS, new Uint8Array(ids.buffer));
    ids.forEach((id, i) => {
      if (id < 0 || id >= V || (i > 0 && id <= ids[i - 1]!)) bad(shippedDir, `${TOKEN_IDS} must be ascending ids below ${V}`);
    });
    const tensors: TensorToWrite[] = [];
    for (const [name, info] of file.tensors) {
      if (name === TOKEN_IDS) continue;
      const table = name.endsWith(ROWS_SUFFIX) ? name.slice(0, -ROWS_SUFFIX.length) : undefined;
      if (table !== undefined && (ROW_TABLES as readonly string[]).includes(table)) {
        if (info.dtype !== 'BF16' || info.shape[0] !== ids.length || info.shape[1] !== H) bad(shippedDir, `"${name}" must be BF16 [${ids.length}, ${H}]`);
        const rows = new Uint16Array(ids.length * H);
        file.readInto(name, new Uint8Array(rows.buffer));
        tensors.push({ name: table, dtype: 'BF16', shape: [V, H], data: (write) => spreadRows(rows, ids, V, H, write) });
      } else {
        tensors.push({ name, dtype: info.dtype, shape: info.shape, data: readTensor(file, name) });
      }
    }
    writeFileSync(join(dir, 'config.json'), readFileSync(join(shippedDir, NANO_FILES.config)));
    if (existsSync(join(shippedDir, NANO_FILES.generation))) writeFileSync(join(dir, NANO_FILES.generation), readFileSync(join(shippedDir, NANO_FILES.generation)));
    writeSafetensors(join(dir, 'model.safetensors'), tensors);
  } finally {
    file.close();
  }
}

/** Streams a [V, H] BF16 table whose row ids[i] is rows[i] and every other row zero, in slabs of rows. */
function spreadRows(rows: Uint16Array, ids: Int32Array, V: number, H: number, write: (chunk: ArrayBufferView) => void): void {
  const SLAB = 4096;
  const slab = new Uint16Array(SLAB * H);
  let next = 0;
  for (let start = 0; start < V; start += SLAB) {
    const end = Math.min(V, start + SLAB);
    slab.fill(0);
    while (next < ids.length && ids[next]! < end) {
      slab.set(rows.subarray(next * H, (next + 1) * H), (ids[next]! - start) * H);
      next++;
    }
    write(slab.subarray(0, (end - start) * H));
  }
}
