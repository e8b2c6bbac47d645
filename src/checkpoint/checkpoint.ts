// Finding and loading a checkpoint folder into ModelWeights. Owns layout detection (the `original/`
// layout the reference loads, at `DIR/original/` or at `DIR` itself; the Hugging Face layout is
// delegated to model/hf.ts through `loadHfWeights`) and the `original/` layout's tensor table:
// every tensor must exist with the shape the config implies and a supported dtype, and no tensor
// may contradict the config. Large matrices stay BF16, MXFP4 experts stay packed; small vectors
// are widened to f32. All buffers come from the backend's TensorStore.
import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { UserError } from '../errors.ts';
import type { TensorStore } from '../kernels/backend.ts';
import { bf16ToF32 } from '../kernels/reference.ts';
import { parseOriginalConfig, type ModelConfig } from '../model/config.ts';
import { MARKER_FILE } from './synth.ts';
import { SafetensorsCheckpoint, type Dtype, type TensorInfo } from './safetensors.ts';
import { readRegularFile } from './files.ts';
import type { BlockWeights, Bf16Matrix, EmbeddingTable, ModelWeights, Mxfp4Matrices } from '../model/weights.ts';

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

function readJson(path: string): unknown {
  const text = readRegularFile(path);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new UserError('checkpoint', `${path}: not valid JSON (${(e as Error).message})`);
  }
}

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

/**
 * The Hugging Face layout's loader, the hook model/hf.ts fills: it must export
 * `loadHfWeights(dir, configPath, store): ModelWeights` (reading with SafetensorsCheckpoint and
 * TensorReader below, fusing q/k/v into qkv). It is imported lazily so the original layout never
 * pays for it.
 */
export type HfWeightsLoader = (dir: string, configPath: string, store: TensorStore) => ModelWeights | Promise<ModelWeights>;

/** Detects the layout of `modelDir` and parses its config.json, reading no tensor (for pre-flight checks). */
export async function readCheckpointConfig(modelDir: string): Promise<{ found: DetectedCheckpoint; config: ModelConfig }> {
  const found = detectCheckpoint(modelDir);
  const json = readJson(found.configPath);
  if (found.layout === 'original') return { found, config: parseOriginalConfig(json, found.configPath) };
  const { parseHfConfig } = await import('./hf.ts');
  return { found, config: parseHfConfig(json, found.configPath) };
}

/** Detects the layout of `modelDir` and loads its weights into `store`. */
export async function loadCheckpoint(modelDir: string, store: TensorStore): Promise<LoadedCheckpoint> {
  const found = detectCheckpoint(modelDir);
  if (found.layout === 'original') return await loadOriginalCheckpoint(found.dir, store);
  const hf = (await import('./hf.ts')) as unknown as { loadHfWeights?: HfWeightsLoader };
  if (typeof hf.loadHfWeights !== 'function') {
    throw new UserError('checkpoint', `${found.configPath}: the Hugging Face layout is not supported by this build; use the original/ folder`);
  }
  const weights = await hf.loadHfWeights(found.dir, found.configPath, store);
  return { weights, layout: 'hf', dir: found.dir, name: modelName(found.dir), randomWeights: isRandomWeights(found.dir) };
}

/** The folder's name, or `org/name` for a snapshot in the Hugging Face hub cache. */
export function modelName(dir: string): string {
  const hub = /models--([^/]+?)--([^/]+)\/snapshots\//.exec(resolve(dir) + '/');
  if (hub !== null) return `${hub[1]}/${hub[2]}`;
  return basename(dir) === 'original' ? basename(dirname(dir)) : basename(dir);
}

/** Synthetic checkpoints (`gptoss synth`) carry a marker file beside (or above) their config. */
function isRandomWeights(dir: string): boolean {
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

/** Loads the `original/` layout from `dir` (config.json + *.safetensors; other files are ignored). */
export async function loadOriginalCheckpoint(dir: string, store: TensorStore): Promise<LoadedCheckpoint> {
  const configPath = join(dir, 'config.json');
  if (!existsSync(configPath)) throw new UserError('checkpoint', `${dir}: missing config.json`);
  const config = parseOriginalConfig(readJson(configPath), configPath);
  const checkpoint = SafetensorsCheckpoint.open(dir);
  try {
    checkpoint.deferReads = true;
    const weights = readOriginalWeights(config, checkpoint, store, configPath);
    await checkpoint.flush();
    return { weights, layout: 'original', dir, name: modelName(dir), randomWeights: isRandomWeights(dir) };
  } finally {
    checkpoint.close();
  }
}

/** The shapes the original layout's tensors must have under `config`. */
export function originalTensorShapes(config: ModelConfig): Map<string, number[]> {
  const { vocabSize: V, hiddenSize: H, intermediateSize: I, numExperts: E, headDim: D, numAttentionHeads: Q, numKeyValueHeads: K } = config;
  const qkv = D * (Q + 2 * K);
  const shapes = new Map<string, number[]>();
  shapes.set('embedding.weight', [V, H]);
  for (let n = 0; n < config.numLayers; n++) {
    const b = `block.${n}`;
    shapes.set(`${b}.attn.norm.scale`, [H]);
    shapes.set(`${b}.attn.qkv.weight`, [qkv, H]);
    shapes.set(`${b}.attn.qkv.bias`, [qkv]);
    shapes.set(`${b}.attn.sinks`, [Q]);
    shapes.set(`${b}.attn.out.weight`, [H, D * Q]);
    shapes.set(`${b}.attn.out.bias`, [H]);
    shapes.set(`${b}.mlp.norm.scale`, [H]);
    shapes.set(`${b}.mlp.gate.weight`, [E, H]);
    shapes.set(`${b}.mlp.gate.bias`, [E]);
    shapes.set(`${b}.mlp.mlp1_weight.blocks`, [E, 2 * I, H / 32, 16]);
    shapes.set(`${b}.mlp.mlp1_weight.scales`, [E, 2 * I, H / 32]);
    shapes.set(`${b}.mlp.mlp1_bias`, [E, 2 * I]);
    shapes.set(`${b}.mlp.mlp2_weight.blocks`, [E, H, I / 32, 16]);
    shapes.set(`${b}.mlp.mlp2_weight.scales`, [E, H, I / 32]);
    shapes.set(`${b}.mlp.mlp2_bias`, [E, H]);
  }
  shapes.set('norm.scale', [H]);
  shapes.set('unembedding.weight', [V, H]);
  return shapes;
}

function readOriginalWeights(config: ModelConfig, checkpoint: SafetensorsCheckpoint, store: TensorStore, configPath: string): ModelWeights {
  const shapes = originalTensorShapes(config);
  // A tensor the config does not account for means the config and the weights disagree.
  for (const name of checkpoint.names()) {
    if (shapes.has(name)) continue;
    const block = /^block\.(\d+)\./.exec(name);
    if (block !== null && Number(block[1]) >= config.numLayers) {
      throw new UserError('checkpoint', `${configPath}: num_hidden_layers is ${config.numLayers} but ${checkpoint.info(name)!.file} has tensor "${name}"`);
    }
  }
  const reader = new TensorReader(checkpoint, store, shapes, configPath);
  const blocks: BlockWeights[] = [];
  for (let n = 0; n < config.numLayers; n++) {
    const b = `block.${n}`;
    blocks.push({
      attn: {
        norm: { scale: reader.vector(`${b}.attn.norm.scale`) },
        qkv: { weight: reader.bf16Matrix(`${b}.attn.qkv.weight`), bias: reader.vector(`${b}.attn.qkv.bias`) },
        sinks: reader.vector(`${b}.attn.sinks`),
        out: { weight: reader.bf16Matrix(`${b}.attn.out.weight`), bias: reader.vector(`${b}.attn.out.bias`) },
      },
      mlp: {
        norm: { scale: reader.vector(`${b}.mlp.norm.scale`) },
        gate: { weight: reader.bf16Matrix(`${b}.mlp.gate.weight`), bias: reader.vector(`${b}.mlp.gate.bias`) },
        mlp1Weight: reader.mxfp4(`${b}.mlp.mlp1_weight.blocks`, `${b}.mlp.mlp1_weight.scales`),
        mlp1Bias: reader.vector(`${b}.mlp.mlp1_bias`),
        mlp2Weight: reader.mxfp4(`${b}.mlp.mlp2_weight.blocks`, `${b}.mlp.mlp2_weight.scales`),
        mlp2Bias: reader.vector(`${b}.mlp.mlp2_bias`),
      },
    });
  }
  return {
    config,
    embedding: { weight: reader.embeddingTable('embedding.weight') },
    blocks,
    norm: { scale: reader.vector('norm.scale') },
    unembedding: { weight: reader.bf16Matrix('unembedding.weight') },
  };
}

const VECTOR_DTYPES: readonly Dtype[] = ['BF16', 'F16', 'F32'];

/**
 * Reads tensors by name with their expected shapes, converting to the in-memory forms of
 * model/weights.ts. Exported for the Hugging Face loader, which passes its own name -> shape table.
 */
export class TensorReader {
  constructor(
    readonly checkpoint: SafetensorsCheckpoint,
    readonly store: TensorStore,
    /** Expected shape of every tensor read (derived from the config). */
    readonly shapes: ReadonlyMap<string, readonly number[]>,
    /** The config file, named when a tensor contradicts it. */
    readonly configPath: string,
  ) {}

  /** The tensor's header entry, checked against its expected shape and the allowed dtypes. */
  info(name: string, dtypes: readonly Dtype[]): TensorInfo {
    const info = this.checkpoint.info(name);
    if (info === undefined) throw new UserError('checkpoint', `${this.checkpoint.describe()}: missing tensor "${name}"`);
    const expected = this.shapes.get(name);
    if (expected === undefined) throw new Error(`no expected shape for ${name}`);
    if (info.shape.length !== expected.length || info.shape.some((d, i) => d !== expected[i])) {
      throw new UserError('checkpoint', `${info.file}: tensor "${name}" has shape [${info.shape.join(', ')}] but ${basename(this.configPath)} implies [${expected.join(', ')}]`);
    }
    if (!dtypes.includes(info.dtype)) {
      throw new UserError('checkpoint', `${info.file}: tensor "${name}" has dtype ${info.dtype}, expected ${dtypes.join(' or ')}`);
    }
    return info;
  }

  /** A BF16 matrix, kept as 16-bit words in the store. */
  bf16Matrix(name: string): Bf16Matrix {
    const info = this.info(name, ['BF16']);
    const bytes = this.checkpoint.read(name, this.store);
    return { rows: info.shape[0]!, cols: info.shape[1]!, data: new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >>> 1) };
  }

  /**
   * A BF16 embedding table left on disk: a forward pass reads only its tokens' rows, one positioned
   * read each, so the table (1.16 GB for gpt-oss) never occupies memory.
   */
  embeddingTable(name: string): EmbeddingTable {
    return diskEmbeddingTable(this.info(name, ['BF16']));
  }

  /** A small tensor (norm scale, bias, sinks) widened to f32 in the store. */
  vector(name: string): Float32Array {
    const info = this.info(name, VECTOR_DTYPES);
    const raw = this.checkpoint.readBytes(name);
    const count = info.byteLength / (info.dtype === 'F32' ? 4 : 2);
    const dest = this.store.allocate(count * 4, name);
    const out = new Float32Array(dest.buffer, dest.byteOffset, count);
    widenToF32(info.dtype, raw, out);
    return out;
  }

  /** A stack of MXFP4 matrices from its `.blocks`/`.scales` pair, kept packed. */
  mxfp4(blocksName: string, scalesName: string): Mxfp4Matrices {
    const blocksInfo = this.info(blocksName, ['U8']);
    this.info(scalesName, ['U8']);
    const [count, rows, groups] = blocksInfo.shape as [number, number, number, number];
    return { count, rows, cols: groups * 32, blocks: this.checkpoint.read(blocksName, this.store), scales: this.checkpoint.read(scalesName, this.store) };
  }
}

/** Rows of a BF16 [rows, cols] tensor read from its file on demand (the file stays open until close()). */
function diskEmbeddingTable(info: TensorInfo): EmbeddingTable {
  const [rows, cols] = info.shape as [number, number];
  const rowBytes = cols * 2;
  const row = new Uint16Array(cols);
  const rowView = new Uint8Array(row.buffer);
  let fd: number | null = openSync(info.file, 'r');
  return {
    rows,
    cols,
    readRow(id: number, out: Float32Array): void {
      if (fd === null) throw new Error(`${info.file}: embedding table used after close()`);
      const n = readSync(fd, rowView, 0, rowBytes, info.offset + id * rowBytes);
      if (n !== rowBytes) throw new UserError('checkpoint', `${info.file}: tensor "${info.name}" row ${id} is cut short (was the file truncated after loading?)`);
      bf16ToF32(row, 0, cols, out);
    },
    close(): void {
      if (fd !== null) closeSync(fd);
      fd = null;
    },
  };
}

/** Widens little-endian BF16/F16/F32 bytes to f32. */
export function widenToF32(dtype: Dtype, raw: Uint8Array, out: Float32Array): void {
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const bits = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < out.length; i++) {
    if (dtype === 'F32') out[i] = view.getFloat32(4 * i, true);
    else if (dtype === 'BF16') bits[i] = view.getUint16(2 * i, true) << 16;
    else out[i] = f16ToNumber(view.getUint16(2 * i, true));
  }
}

function f16ToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 31) return mantissa === 0 ? sign * Infinity : NaN;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}
