// Synthetic checkpoints: random weights in the real gpt-oss layouts and dtypes, written tensor by
// tensor so a full 20b-shaped checkpoint (13 GB) streams to disk with bounded memory. Every tensor
// draws from its own PRNG seeded by (seed, original tensor name), so the weights do not depend on
// write order or layout: `original` and `hf` written with one seed hold the same model.
import { closeSync, mkdirSync, openSync, writeFileSync, writeSync, existsSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { UserError } from '../errors.ts';
import { splitmix32, Xoshiro128 } from '../random.ts';
import { parseOriginalConfig, toOriginalConfigJson, validateConfig, type ModelConfig } from '../model/config.ts';
import { isHfConfig, parseHfConfig, toHfConfigJson, hfTensorName } from './hf.ts';
import { MARKER_FILE } from './checkpoint.ts';
import { readRegularFile } from '../files.ts';

// ---- shapes ----------------------------------------------------------------------------------

const GPT_OSS_COMMON = {
  vocabSize: 201088,
  hiddenSize: 2880,
  intermediateSize: 2880,
  swigluLimit: 7.0,
  headDim: 64,
  numAttentionHeads: 64,
  numKeyValueHeads: 8,
  slidingWindow: 128,
  initialContextLength: 4096,
  ropeTheta: 150000,
  ropeScalingFactor: 32,
  ropeNtkAlpha: 1,
  ropeNtkBeta: 32,
  expertsPerToken: 4,
};

/** The named shapes `gptoss synth --shape` knows. */
export const SHAPES: Record<'tiny' | '20b' | '120b', ModelConfig> = {
  // The real vocabulary (so the real tokenizer and harmony work end to end) with a tiny body:
  // about 52 MB, most of it embedding and unembedding.
  tiny: {
    ...GPT_OSS_COMMON,
    numLayers: 4,
    numExperts: 8,
    hiddenSize: 64,
    intermediateSize: 64,
    headDim: 16,
    numAttentionHeads: 4,
    numKeyValueHeads: 2,
  },
  '20b': { ...GPT_OSS_COMMON, numLayers: 24, numExperts: 32 },
  '120b': { ...GPT_OSS_COMMON, numLayers: 36, numExperts: 128 },
};

export type ShapeName = keyof typeof SHAPES;

/** Resolves `tiny|20b|120b` or a path to a config.json (either layout) into a ModelConfig. */
export function resolveShape(shape: string): ModelConfig {
  if (shape in SHAPES) return { ...SHAPES[shape as ShapeName] };
  if (!existsSync(shape)) throw new UserError('usage', `--shape must be tiny, 20b, 120b or a config.json file; "${shape}" is none of these`);
  let json: unknown;
  try {
    json = JSON.parse(readRegularFile(shape, 'usage'));
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError('input', `${shape}: invalid JSON (${(e as Error).message})`);
  }
  return isHfConfig(json) ? parseHfConfig(json, shape) : parseOriginalConfig(json, shape);
}

// ---- random numbers --------------------------------------------------------------------------

/** FNV-1a over the UTF-16 code units of `text`, for deriving per-tensor seeds. */
function hashString(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** xoshiro128** : small state, fast in JS, good enough statistics for random weights. */
export class Rng extends Xoshiro128 {
  constructor(seed: number, stream = '') {
    // splitmix32 expands (seed, stream) into the state; the first word is made odd (never all zero).
    const next = splitmix32(hashString(stream) ^ Math.imul(seed >>> 0, 0x9e3779b9));
    super(next() | 1, next(), next(), next());
  }

  /** A uniform float in [0, 1). */
  next(): number {
    return this.nextU32() / 4294967296;
  }
}

// ---- tensor recipes --------------------------------------------------------------------------

export type SynthDtype = 'BF16' | 'U8';

/** One tensor of the original layout: its name, dtype, shape and how its values are drawn. */
export interface TensorRecipe {
  name: string;
  dtype: SynthDtype;
  shape: number[];
  /** BF16: uniform in [center - spread, center + spread]. U8: `fp4` codes or E8M0 `scale` bytes. */
  kind: { type: 'uniform'; center: number; spread: number } | { type: 'fp4' } | { type: 'scale'; exponent: number };
}

export function tensorBytes(t: { dtype: string; shape: number[] }): number {
  const elements = t.shape.reduce((p, d) => p * d, 1);
  return elements * (t.dtype === 'U8' ? 1 : t.dtype === 'F32' ? 4 : 2);
}

// Root-mean-square of the 16 FP4 values when codes are uniform: sqrt(2 * 68.5 / 16).
const FP4_RMS = Math.sqrt(68.5 / 8);

/** E8M0 exponent whose FP4 grid gives weights with standard deviation about `std`. */
function scaleExponentFor(std: number): number {
  return 127 + Math.round(Math.log2(std / FP4_RMS));
}

/**
 * The tensors of the `original/` layout in the order they are written: 2-byte tensors first, so
 * every tensor starts at an offset aligned to its element size.
 */
export function originalRecipes(c: ModelConfig): TensorRecipe[] {
  const H = c.hiddenSize, I = c.intermediateSize, E = c.numExperts, V = c.vocabSize, D = c.headDim;
  const Q = c.numAttentionHeads, K = c.numKeyValueHeads;
  const qkvRows = D * (Q + 2 * K);
  // Uniform on [-a, a] has standard deviation a/sqrt(3); weights get std ~ 1/sqrt(fan_in) so the
  // residual stream keeps unit scale through many layers.
  const fanIn = (n: number) => Math.sqrt(3 / n);
  const bf16: TensorRecipe[] = [];
  const u8: TensorRecipe[] = [];
  const u = (name: string, shape: number[], center: number, spread: number) =>
    bf16.push({ name, dtype: 'BF16', shape, kind: { type: 'uniform', center, spread } });
  u('embedding.weight', [V, H], 0, 1.0);
  for (let n = 0; n < c.numLayers; n++) {
    const p = `block.${n}`;
    u(`${p}.attn.norm.scale`, [H], 1, 0.2);
    u(`${p}.attn.qkv.weight`, [qkvRows, H], 0, fanIn(H));
    u(`${p}.attn.qkv.bias`, [qkvRows], 0, 0.1);
    u(`${p}.attn.sinks`, [Q], 0, 2.0);
    u(`${p}.attn.out.weight`, [H, D * Q], 0, fanIn(D * Q));
    u(`${p}.attn.out.bias`, [H], 0, 0.05);
    u(`${p}.mlp.norm.scale`, [H], 1, 0.2);
    u(`${p}.mlp.gate.weight`, [E, H], 0, fanIn(H) * 2);
    u(`${p}.mlp.gate.bias`, [E], 0, 0.5);
    u(`${p}.mlp.mlp1_bias`, [E, 2 * I], 0, 0.1);
    u(`${p}.mlp.mlp2_bias`, [E, H], 0, 0.05);
    u8.push({ name: `${p}.mlp.mlp1_weight.blocks`, dtype: 'U8', shape: [E, 2 * I, H / 32, 16], kind: { type: 'fp4' } });
    u8.push({ name: `${p}.mlp.mlp1_weight.scales`, dtype: 'U8', shape: [E, 2 * I, H / 32], kind: { type: 'scale', exponent: scaleExponentFor(1 / Math.sqrt(H)) } });
    u8.push({ name: `${p}.mlp.mlp2_weight.blocks`, dtype: 'U8', shape: [E, H, I / 32, 16], kind: { type: 'fp4' } });
    u8.push({ name: `${p}.mlp.mlp2_weight.scales`, dtype: 'U8', shape: [E, H, I / 32], kind: { type: 'scale', exponent: scaleExponentFor(0.5 / Math.sqrt(I)) } });
  }
  u('norm.scale', [H], 1, 0.2);
  u('unembedding.weight', [V, H], 0, fanIn(H));
  return [...bf16, ...u8];
}

const CHUNK_BYTES = 8 << 20;

/**
 * Yields the bytes of one tensor in chunks of at most 8 MB. The PRNG stream depends only on
 * (seed, recipe.name), never on chunking.
 */
export function* generateTensor(recipe: TensorRecipe, seed: number): Generator<Uint8Array> {
  const rng = new Rng(seed, recipe.name);
  const total = tensorBytes(recipe);
  const kind = recipe.kind;
  const words = new Uint32Array(CHUNK_BYTES / 4);
  for (let done = 0; done < total; ) {
    const n = Math.min(CHUNK_BYTES, total - done);
    const wordCount = Math.ceil(n / 4);
    const view = words.subarray(0, wordCount);
    rng.fillU32(view);
    const bytes = new Uint8Array(words.buffer, 0, n);
    if (kind.type === 'uniform') {
      // Two BF16 values per random word: map each 16-bit half to [-1, 1) and scale.
      const out = new Uint16Array(words.buffer, 0, n / 2);
      const f = new Float32Array(1);
      const fb = new Uint32Array(f.buffer);
      const step = (2 * kind.spread) / 65536;
      const base = kind.center - kind.spread;
      for (let i = 0; i < wordCount; i++) {
        const w = words[i]!;
        f[0] = base + (w & 0xffff) * step;
        const lo = fb[0]! >>> 16;
        f[0] = base + (w >>> 16) * step;
        const hi = fb[0]! >>> 16;
        // out aliases words: element 2i and 2i+1 live in word i, already consumed.
        if (2 * i < out.length) out[2 * i] = lo;
        if (2 * i + 1 < out.length) out[2 * i + 1] = hi;
      }
      yield new Uint8Array(out.buffer, 0, n);
    } else if (kind.type === 'scale') {
      // Exponents jitter by -1..+1 around the target; a rare group (1 in 256) is 4x louder, as
      // trained checkpoints have a tail of large scales.
      for (let i = 0; i < n; i++) {
        const r = bytes[i]!;
        bytes[i] = kind.exponent + (r % 3) - 1 + (r === 255 ? 2 : 0);
      }
      yield bytes;
    } else {
      yield bytes; // any byte is two valid FP4 codes
    }
    done += n;
  }
}

/** Materialises one (small) tensor in memory: used for q/k/v splitting and tests. */
export function generateTensorBytes(recipe: TensorRecipe, seed: number): Uint8Array {
  const out = new Uint8Array(tensorBytes(recipe));
  let at = 0;
  for (const chunk of generateTensor(recipe, seed)) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

// ---- streaming safetensors writer ------------------------------------------------------------

export interface StreamTensor {
  name: string;
  dtype: 'BF16' | 'F32' | 'U8';
  shape: number[];
  chunks: () => Iterable<Uint8Array>;
}

/**
 * Writes a safetensors file whose tensors are produced chunk by chunk: the header is computed
 * from the shapes first, so memory stays bounded by one chunk whatever the file size.
 * The file appears under its final name only when complete.
 */
export function writeSafetensorsStreaming(path: string, tensors: StreamTensor[], metadata: Record<string, string> = { format: 'pt' }): number {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const t of tensors) {
    const size = tensorBytes(t);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + size] };
    offset += size;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(headerBytes.length));
  const tmp = `${path}.partial`;
  const fd = openSync(tmp, 'w');
  try {
    writeAll(fd, prefix);
    writeAll(fd, headerBytes);
    for (const t of tensors) {
      let written = 0;
      for (const chunk of t.chunks()) {
        writeAll(fd, chunk);
        written += chunk.length;
      }
      if (written !== tensorBytes(t)) throw new Error(`synth: tensor ${t.name} produced ${written} bytes, expected ${tensorBytes(t)}`);
    }
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  return 8 + headerBytes.length + offset;
}

function writeAll(fd: number, data: Uint8Array): void {
  for (let at = 0; at < data.length; ) at += writeSync(fd, data, at, data.length - at);
}

// ---- checkpoints -----------------------------------------------------------------------------

export interface SynthOptions {
  seed?: number;
  layout?: 'original' | 'hf';
  /** HF layout only: start a new shard when one would exceed this many bytes (default 4.8 GB). */
  shardBytes?: number;
  /** Extra keys for the `gptoss.json` marker written beside the weights. */
  marker?: Record<string, unknown>;
  /** Called after each chunk written, with its size (for progress bars). */
  onBytes?: (bytes: number) => void;
}

export interface SynthResult {
  dir: string;
  files: string[];
  bytes: number;
  config: ModelConfig;
}

/**
 * Writes a checkpoint with random weights for `config` into `dir`:
 * `original` -> config.json + model.safetensors (the reference's names);
 * `hf` -> config.json (model_type gpt_oss) + model-0000i-of-0000n.safetensors + index.
 */
export function synthesize(config: ModelConfig, dir: string, opts: SynthOptions = {}): SynthResult {
  validateConfig(config, 'synth shape');
  const seed = opts.seed ?? 0;
  const layout = opts.layout ?? 'original';
  mkdirSync(dir, { recursive: true });
  const recipes = originalRecipes(config);
  const marker = { random_weights: true, seed, layout, generator: 'gptoss synth', ...opts.marker };
  const result: SynthResult = { dir, files: [], bytes: 0, config };

  if (layout === 'original') {
    const tensors: StreamTensor[] = recipes.map((r) => ({
      name: r.name, dtype: r.dtype, shape: r.shape,
      chunks: () => tap(generateTensor(r, seed), opts.onBytes),
    }));
    writeFileSync(join(dir, 'config.json'), JSON.stringify(toOriginalConfigJson(config), null, 2) + '\n');
    result.bytes = writeSafetensorsStreaming(join(dir, 'model.safetensors'), tensors);
    result.files.push('config.json', 'model.safetensors');
  } else {
    const tensors = hfStreamTensors(config, recipes, seed, opts.onBytes);
    const shardLimit = opts.shardBytes ?? 4_800_000_000;
    const shards: StreamTensor[][] = [[]];
    let current = 0;
    for (const t of tensors) {
      const size = tensorBytes(t);
      if (current > 0 && current + size > shardLimit) {
        shards.push([]);
        current = 0;
      }
      shards[shards.length - 1]!.push(t);
      current += size;
    }
    // The released repository numbers shards from 0 and names the last index: model-00000-of-00002.
    const last = String(shards.length - 1).padStart(5, '0');
    const weightMap: Record<string, string> = {};
    let totalSize = 0;
    shards.forEach((shard, i) => {
      const file = `model-${String(i).padStart(5, '0')}-of-${last}.safetensors`;
      // Within a shard keep 2-byte tensors ahead of byte tensors, for alignment.
      shard.sort((a, b) => (a.dtype === 'U8' ? 1 : 0) - (b.dtype === 'U8' ? 1 : 0));
      result.bytes += writeSafetensorsStreaming(join(dir, file), shard);
      for (const t of shard) {
        weightMap[t.name] = file;
        totalSize += tensorBytes(t);
      }
      result.files.push(file);
    });
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }, null, 2) + '\n');
    writeFileSync(join(dir, 'config.json'), JSON.stringify(toHfConfigJson(config), null, 2) + '\n');
    result.files.push('model.safetensors.index.json', 'config.json');
  }
  writeFileSync(join(dir, MARKER_FILE), JSON.stringify(marker, null, 2) + '\n');
  result.files.push(MARKER_FILE);
  return result;
}

/** The HF layout's tensors for the same weights: renamed, with the fused qkv split into q/k/v. */
function hfStreamTensors(c: ModelConfig, recipes: TensorRecipe[], seed: number, onBytes?: (bytes: number) => void): StreamTensor[] {
  const out: StreamTensor[] = [];
  const qRows = c.headDim * c.numAttentionHeads;
  const kvRows = c.headDim * c.numKeyValueHeads;
  for (const r of recipes) {
    const qkv = /^block\.(\d+)\.attn\.qkv\.(weight|bias)$/.exec(r.name);
    if (qkv !== null) {
      const layer = Number(qkv[1]);
      const kind = qkv[2] as 'weight' | 'bias';
      const cols = kind === 'weight' ? c.hiddenSize : 1;
      const rowBytes = cols * 2;
      let cache: Uint8Array | undefined;
      const whole = () => (cache ??= generateTensorBytes(r, seed));
      const parts: [string, number, number][] = [['q', 0, qRows], ['k', qRows, kvRows], ['v', qRows + kvRows, kvRows]];
      for (const [p, start, rows] of parts) {
        out.push({
          name: `model.layers.${layer}.self_attn.${p}_proj.${kind}`,
          dtype: 'BF16',
          shape: kind === 'weight' ? [rows, c.hiddenSize] : [rows],
          chunks: () => {
            onBytes?.(rows * rowBytes);
            const bytes = whole().subarray(start * rowBytes, (start + rows) * rowBytes);
            if (p === 'v') cache = undefined;
            return [bytes];
          },
        });
      }
      continue;
    }
    out.push({
      name: hfTensorName(r.name),
      dtype: r.dtype,
      shape: r.shape,
      chunks: () => tap(generateTensor(r, seed), onBytes),
    });
  }
  return out;
}

function* tap(chunks: Iterable<Uint8Array>, onBytes?: (bytes: number) => void): Generator<Uint8Array> {
  for (const c of chunks) {
    yield c;
    onBytes?.(c.length);
  }
}

// ---- the random demo model --------------------------------------------------------------------

/** Where gptoss keeps its own files: $GPTOSS_CACHE, else ~/.cache/gptoss. */
export function gptossCacheDir(): string {
  const env = process.env['GPTOSS_CACHE'];
  return env !== undefined && env !== '' ? env : join(homedir(), '.cache', 'gptoss');
}

export const DEMO_SEED = 20250805;

/**
 * The demo model's context window wherever none is asked for (chat, serve, generate, evals, the
 * library's loadEngine): its config allows gpt-oss's 131,072, but a model that writes gibberish
 * needs no more than chat's default, and every command should describe the same model alike.
 */
export const DEMO_CONTEXT_LENGTH = 8192;

/** Whether the checkpoint folder `dir` is the embedded demo model (its marker says so). */
export function isDemoModel(dir: string): boolean {
  try {
    const m = JSON.parse(readRegularFile(join(dir, MARKER_FILE))) as { demo?: unknown; seed?: unknown };
    return m.demo === true && m.seed === DEMO_SEED;
  } catch {
    return false; // no marker, or an unreadable one: not a claim of being the demo
  }
}

/**
 * The random demo model (the default before gpt-oss-nano; now for tests and for trying the stack
 * with `--model` on its folder): the `tiny` shape with a fixed seed, written once to <cache>/demo-tiny. Its weights are random (the folder's gptoss.json says so):
 * it exercises the whole stack with the real tokenizer but produces gibberish.
 */
export function ensureDemoModel(cacheDir: string = gptossCacheDir()): string {
  const dir = join(cacheDir, 'demo-tiny');
  const markerPath = join(dir, MARKER_FILE);
  if (existsSync(markerPath) && existsSync(join(dir, 'model.safetensors'))) {
    try {
      const m = JSON.parse(readRegularFile(markerPath)) as { seed?: unknown; demo?: unknown };
      if (m.seed === DEMO_SEED && m.demo === true) return dir;
    } catch {
      // unreadable marker: rewrite below
    }
  }
  // Write into a sibling folder and rename, so a concurrent or interrupted run never leaves a
  // half-written demo model behind.
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  synthesize(SHAPES.tiny, tmp, { seed: DEMO_SEED, layout: 'original', marker: { demo: true, description: 'gptoss demo model: tiny shape, RANDOM WEIGHTS (output is gibberish)' } });
  rmSync(dir, { recursive: true, force: true });
  try {
    renameSync(tmp, dir);
  } catch (e) {
    if (!existsSync(markerPath)) throw e;
    rmSync(tmp, { recursive: true, force: true }); // another process won the race
  }
  return dir;
}
