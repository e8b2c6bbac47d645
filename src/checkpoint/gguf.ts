// GGUF (v3), the file format of llama.cpp, Ollama and node-llama-cpp: a streaming writer, a header
// reader, and the conversion of a gpt-oss checkpoint (either layout) into llama.cpp's `gpt-oss`
// architecture. What llama.cpp expects, and how our checkpoint differs:
// - tensor dims are listed innermost first (ne[0] = columns), the reverse of safetensors shapes;
// - attention q/k/v are separate tensors (our fused qkv is split by rows);
// - experts are three stacks: ffn_gate_exps (mlp1's even rows, the SwiGLU "glu" half), ffn_up_exps
//   (odd rows, the linear half) and ffn_down_exps (mlp2), with their biases split the same way;
// - MXFP4 blocks are ggml's block_mxfp4: 1 E8M0 scale byte then 16 bytes where byte j holds element
//   j in its low nibble and element j+16 in its high nibble (the checkpoint pairs 2j and 2j+1);
// - norms, biases, sinks and the router are F32; attention and embeddings stay BF16.
import { closeSync, openSync, readSync, renameSync, writeSync, fstatSync } from 'node:fs';
import { basename } from 'node:path';
import { UserError } from '../errors.ts';
import { contextLength, parseOriginalConfig, type ModelConfig } from '../model/config.ts';
import { readRegularFile } from './files.ts';
import { detectCheckpoint } from './checkpoint.ts';
import { hfQkvNames, hfTensorName, parseHfConfig } from './hf.ts';
import { SafetensorsCheckpoint, type TensorInfo } from './safetensors.ts';

// ---- format constants ------------------------------------------------------------------------

const GGUF_MAGIC = 0x46554747; // "GGUF" little-endian
const GGUF_VERSION = 3;
export const GGUF_ALIGNMENT = 32;

export const enum GgufValueType {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
}

/** The ggml tensor types we write (ids from ggml.h). */
export const GGML_TYPE = { F32: 0, F16: 1, BF16: 30, MXFP4: 39 } as const;
export type GgmlTypeName = keyof typeof GGML_TYPE;

/** Bytes of one row of `cols` elements in a ggml type. */
export function ggmlRowBytes(type: GgmlTypeName, cols: number): number {
  if (type === 'MXFP4') {
    if (cols % 32 !== 0) throw new Error(`MXFP4 rows must be a multiple of 32 elements, got ${cols}`);
    return (cols / 32) * 17;
  }
  return cols * (type === 'F32' ? 4 : 2);
}

export type GgufValue =
  | { type: 'u32'; value: number }
  | { type: 'i32'; value: number }
  | { type: 'f32'; value: number }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'u64'; value: bigint }
  | { type: 'string[]'; value: string[] }
  | { type: 'i32[]'; value: Int32Array | number[] }
  | { type: 'f32[]'; value: Float32Array | number[] };

export interface GgufTensorSpec {
  name: string;
  type: GgmlTypeName;
  /** Shape as safetensors/numpy order (outermost first); the writer reverses it into ne. */
  shape: number[];
  /** Streams the tensor's bytes in ggml layout, in order; must produce exactly its size. */
  write: (emit: (chunk: Uint8Array) => void) => void;
}

export function ggufTensorBytes(t: { type: GgmlTypeName; shape: number[] }): number {
  const cols = t.shape[t.shape.length - 1]!;
  const rows = t.shape.slice(0, -1).reduce((p, d) => p * d, 1);
  return rows * ggmlRowBytes(t.type, cols);
}

// ---- writer ----------------------------------------------------------------------------------

/** Accumulates small writes into one buffer and flushes large chunks straight to the file. */
class FileSink {
  private buf = Buffer.alloc(1 << 22);
  private used = 0;
  written = 0;
  constructor(private readonly fd: number) {}

  bytes(data: Uint8Array): void {
    if (data.length > this.buf.length - this.used) this.flush();
    if (data.length >= this.buf.length) {
      for (let at = 0; at < data.length; ) at += writeSync(this.fd, data, at, data.length - at);
    } else {
      this.buf.set(data, this.used);
      this.used += data.length;
    }
    this.written += data.length;
  }
  u32(v: number): void { const b = Buffer.alloc(4); b.writeUInt32LE(v); this.bytes(b); }
  i32(v: number): void { const b = Buffer.alloc(4); b.writeInt32LE(v); this.bytes(b); }
  u64(v: number | bigint): void { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); this.bytes(b); }
  f32(v: number): void { const b = Buffer.alloc(4); b.writeFloatLE(v); this.bytes(b); }
  str(s: string): void { const b = Buffer.from(s, 'utf8'); this.u64(b.length); this.bytes(b); }
  pad(alignment: number): void {
    const n = (alignment - (this.written % alignment)) % alignment;
    if (n > 0) this.bytes(new Uint8Array(n));
  }
  flush(): void {
    for (let at = 0; at < this.used; ) at += writeSync(this.fd, this.buf, at, this.used - at);
    this.used = 0;
  }
}

function writeValue(sink: FileSink, v: GgufValue): void {
  switch (v.type) {
    case 'u32': sink.u32(GgufValueType.UINT32); sink.u32(v.value); break;
    case 'i32': sink.u32(GgufValueType.INT32); sink.i32(v.value); break;
    case 'f32': sink.u32(GgufValueType.FLOAT32); sink.f32(v.value); break;
    case 'bool': sink.u32(GgufValueType.BOOL); sink.bytes(Uint8Array.of(v.value ? 1 : 0)); break;
    case 'string': sink.u32(GgufValueType.STRING); sink.str(v.value); break;
    case 'u64': sink.u32(GgufValueType.UINT64); sink.u64(v.value); break;
    case 'string[]':
      sink.u32(GgufValueType.ARRAY); sink.u32(GgufValueType.STRING); sink.u64(v.value.length);
      for (const s of v.value) sink.str(s);
      break;
    case 'i32[]': {
      sink.u32(GgufValueType.ARRAY); sink.u32(GgufValueType.INT32); sink.u64(v.value.length);
      const b = Buffer.alloc(4 * v.value.length);
      for (let i = 0; i < v.value.length; i++) b.writeInt32LE(v.value[i]!, 4 * i);
      sink.bytes(b);
      break;
    }
    case 'f32[]': {
      sink.u32(GgufValueType.ARRAY); sink.u32(GgufValueType.FLOAT32); sink.u64(v.value.length);
      const b = Buffer.alloc(4 * v.value.length);
      for (let i = 0; i < v.value.length; i++) b.writeFloatLE(v.value[i]!, 4 * i);
      sink.bytes(b);
      break;
    }
  }
}

/**
 * Writes a GGUF v3 file: header, metadata, tensor infos (offsets aligned to 32 bytes), then each
 * tensor's data streamed from its `write` callback. Appears under `path` only when complete.
 */
export function writeGguf(path: string, metadata: [string, GgufValue][], tensors: GgufTensorSpec[], onBytes?: (n: number) => void): number {
  const tmp = `${path}.partial`;
  const fd = openSync(tmp, 'w');
  const sink = new FileSink(fd);
  try {
    sink.u32(GGUF_MAGIC);
    sink.u32(GGUF_VERSION);
    sink.u64(tensors.length);
    sink.u64(metadata.length);
    for (const [key, value] of metadata) {
      sink.str(key);
      writeValue(sink, value);
    }
    let offset = 0;
    for (const t of tensors) {
      sink.str(t.name);
      sink.u32(t.shape.length);
      for (const d of [...t.shape].reverse()) sink.u64(d);
      sink.u32(GGML_TYPE[t.type]);
      sink.u64(offset);
      offset += ggufTensorBytes(t);
      offset += (GGUF_ALIGNMENT - (offset % GGUF_ALIGNMENT)) % GGUF_ALIGNMENT;
    }
    sink.pad(GGUF_ALIGNMENT);
    for (const t of tensors) {
      const expected = ggufTensorBytes(t);
      let produced = 0;
      t.write((chunk) => {
        sink.bytes(chunk);
        produced += chunk.length;
        onBytes?.(chunk.length);
      });
      if (produced !== expected) throw new Error(`gguf: tensor ${t.name} produced ${produced} bytes, expected ${expected}`);
      sink.pad(GGUF_ALIGNMENT);
    }
    sink.flush();
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  return sink.written;
}

// ---- reader ----------------------------------------------------------------------------------

export interface GgufTensorInfo {
  name: string;
  /** ne order: innermost (columns) first, as stored. */
  dims: number[];
  type: number;
  /** Absolute byte offset of the data in the file. */
  offset: number;
}

export interface GgufHeader {
  version: number;
  metadata: Map<string, unknown>;
  tensors: GgufTensorInfo[];
  dataOffset: number;
  alignment: number;
  fileSize: number;
}

/** Reads a GGUF file's header, metadata and tensor table (not the data); validates offsets. */
export function readGgufHeader(path: string): GgufHeader {
  const fd = openSync(path, 'r');
  try {
    const fileSize = fstatSync(fd).size;
    let pos = 0;
    let buf = Buffer.alloc(0);
    let bufStart = 0;
    const need = (n: number): Buffer => {
      if (pos + n > fileSize) throw new UserError('checkpoint', `${path}: truncated GGUF header`);
      if (pos < bufStart || pos + n > bufStart + buf.length) {
        buf = Buffer.alloc(Math.max(n, 1 << 20));
        const got = readSync(fd, buf, 0, buf.length, pos);
        buf = buf.subarray(0, got);
        bufStart = pos;
      }
      const out = buf.subarray(pos - bufStart, pos - bufStart + n);
      pos += n;
      return out;
    };
    const u32 = () => need(4).readUInt32LE();
    const u64 = () => Number(need(8).readBigUInt64LE());
    const str = () => need(u64()).toString('utf8');
    const value = (type: number): unknown => {
      switch (type) {
        case GgufValueType.UINT8: return need(1).readUInt8();
        case GgufValueType.INT8: return need(1).readInt8();
        case GgufValueType.UINT16: return need(2).readUInt16LE();
        case GgufValueType.INT16: return need(2).readInt16LE();
        case GgufValueType.UINT32: return u32();
        case GgufValueType.INT32: return need(4).readInt32LE();
        case GgufValueType.FLOAT32: return need(4).readFloatLE();
        case GgufValueType.BOOL: return need(1).readUInt8() !== 0;
        case GgufValueType.STRING: return str();
        case GgufValueType.UINT64: return need(8).readBigUInt64LE();
        case GgufValueType.INT64: return need(8).readBigInt64LE();
        case GgufValueType.FLOAT64: return need(8).readDoubleLE();
        case GgufValueType.ARRAY: {
          const elem = u32();
          const n = u64();
          const out: unknown[] = new Array(n);
          for (let i = 0; i < n; i++) out[i] = value(elem);
          return out;
        }
        default: throw new UserError('checkpoint', `${path}: unknown GGUF value type ${type}`);
      }
    };
    if (u32() !== GGUF_MAGIC) throw new UserError('checkpoint', `${path}: not a GGUF file (bad magic)`);
    const version = u32();
    if (version !== 3 && version !== 2) throw new UserError('checkpoint', `${path}: unsupported GGUF version ${version}`);
    const tensorCount = u64();
    const kvCount = u64();
    const metadata = new Map<string, unknown>();
    for (let i = 0; i < kvCount; i++) {
      const key = str();
      metadata.set(key, value(u32()));
    }
    const alignment = typeof metadata.get('general.alignment') === 'number' ? (metadata.get('general.alignment') as number) : GGUF_ALIGNMENT;
    const tensors: GgufTensorInfo[] = [];
    for (let i = 0; i < tensorCount; i++) {
      const name = str();
      const nd = u32();
      const dims: number[] = [];
      for (let d = 0; d < nd; d++) dims.push(u64());
      const type = u32();
      tensors.push({ name, dims, type, offset: u64() });
    }
    const dataOffset = Math.ceil(pos / alignment) * alignment;
    for (const t of tensors) {
      if (t.offset % alignment !== 0) throw new UserError('checkpoint', `${path}: tensor "${t.name}" is not aligned to ${alignment} bytes`);
      t.offset += dataOffset;
    }
    return { version, metadata, tensors, dataOffset, alignment, fileSize };
  } finally {
    closeSync(fd);
  }
}

// ---- MXFP4 repacking -------------------------------------------------------------------------

/**
 * Repacks `rows` MXFP4 rows from the checkpoint's layout (blocks [rows, G, 16] with elements 2j/2j+1
 * in byte j, scales [rows, G]) into ggml block_mxfp4 rows ([G] x {scale, 16 bytes with elements
 * j/j+16 in byte j}).
 */
export function repackMxfp4Rows(blocks: Uint8Array, scales: Uint8Array, rows: number, groups: number, out: Uint8Array, outOffset = 0): void {
  let o = outOffset;
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < groups; g++) {
      const bi = (r * groups + g) * 16;
      out[o++] = scales[r * groups + g]!;
      for (let j = 0; j < 16; j++) {
        // Element e lives in byte e>>1 of the checkpoint block, low nibble when e is even.
        const lo = j, hi = j + 16;
        const a = blocks[bi + (lo >> 1)]!, b = blocks[bi + (hi >> 1)]!;
        const nLo = lo & 1 ? a >> 4 : a & 15;
        const nHi = hi & 1 ? b >> 4 : b & 15;
        out[o++] = nLo | (nHi << 4);
      }
    }
  }
}

// ---- conversion ------------------------------------------------------------------------------

/** Reads byte ranges of checkpoint tensors with positioned reads (no whole-tensor buffers). */
class RangeReader {
  private fds = new Map<string, number>();
  read(info: TensorInfo, start: number, length: number): Uint8Array {
    let fd = this.fds.get(info.file);
    if (fd === undefined) {
      fd = openSync(info.file, 'r');
      this.fds.set(info.file, fd);
    }
    const out = new Uint8Array(length);
    for (let done = 0; done < length; ) {
      const n = readSync(fd, out, done, Math.min(length - done, 1 << 30), info.offset + start + done);
      if (n <= 0) throw new UserError('checkpoint', `${info.file}: tensor "${info.name}" is truncated`);
      done += n;
    }
    return out;
  }
  close(): void {
    for (const fd of this.fds.values()) closeSync(fd);
    this.fds.clear();
  }
}

function bf16ToF32Bytes(src: Uint8Array, dtype: string): Uint8Array {
  if (dtype === 'F32') return src;
  const n = src.length / 2;
  const out = new Uint8Array(4 * n);
  const dv = new DataView(src.buffer, src.byteOffset, src.byteLength);
  const ov = new DataView(out.buffer);
  for (let i = 0; i < n; i++) {
    const h = dv.getUint16(2 * i, true);
    if (dtype === 'BF16') ov.setUint32(4 * i, h << 16, true);
    else ov.setFloat32(4 * i, f16(h), true);
  }
  return out;
}

function f16(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 31, m = h & 1023;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m === 0 ? s * Infinity : NaN;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** GPT-2's byte-to-unicode table: printable bytes map to themselves, the rest to U+0100 onwards. */
function byteToUnicode(): string[] {
  const table: string[] = new Array(256);
  const printable = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  let next = 256;
  for (let b = 0; b < 256; b++) table[b] = String.fromCodePoint(printable(b) ? b : next++);
  return table;
}

export interface VocabTables {
  tokens: string[];
  types: Int32Array;
  merges: string[];
}

/**
 * The o200k_harmony vocabulary in llama.cpp's "gpt2" BPE form: tokens as GPT-2 byte-unicode
 * strings, control type for special/reserved ids, and merges derived from the ranks (every split
 * of a token into two tokens, ordered by the merged token's rank, so the lowest-rank merge first,
 * as tiktoken does).
 */
export async function buildVocab(vocabSize: number): Promise<VocabTables> {
  const { getTokenizer } = await import('../tokenizer/index.ts');
  const tok = getTokenizer();
  const b2u = byteToUnicode();
  const tokens: string[] = new Array(vocabSize);
  const types = new Int32Array(vocabSize);
  const rankOf = new Map<string, number>();
  const latin: string[] = new Array(vocabSize);
  for (let id = 0; id < vocabSize; id++) {
    if (id >= tok.vocabSize) {
      tokens[id] = `<|reserved_${id}|>`;
      types[id] = 3;
      continue;
    }
    if (tok.isSpecial(id)) {
      tokens[id] = tok.tokenName(id) ?? `<|reserved_${id}|>`;
      types[id] = 3; // CONTROL
      continue;
    }
    const bytes = tok.tokenBytes(id);
    let s = '';
    let l = '';
    for (const b of bytes) {
      s += b2u[b]!;
      l += String.fromCharCode(b);
    }
    tokens[id] = s;
    types[id] = 1; // NORMAL
    latin[id] = l;
    rankOf.set(l, id);
  }
  const merges: [number, number, number][] = [];
  for (let id = 0; id < vocabSize; id++) {
    const l = latin[id];
    if (l === undefined || l.length < 2) continue;
    for (let k = 1; k < l.length; k++) {
      const a = rankOf.get(l.slice(0, k));
      const b = rankOf.get(l.slice(k));
      if (a !== undefined && b !== undefined && a < id && b < id) merges.push([id, a, b]);
    }
  }
  merges.sort((x, y) => x[0] - y[0] || x[1] - y[1] || x[2] - y[2]);
  return { tokens, types, merges: merges.map(([, a, b]) => `${tokens[a]} ${tokens[b]}`) };
}

export interface ConvertOptions {
  /** Model name written as general.name (default: the folder's name). */
  name?: string;
  /** Skip the tokenizer metadata (tests of tensor layout; llama.cpp needs it to load the file). */
  noVocab?: boolean;
  /** Called once before the tensor data is written, with its total size. */
  onStart?: (tensorBytes: number) => void;
  onBytes?: (n: number) => void;
}

export interface ConvertResult {
  path: string;
  bytes: number;
  tensors: number;
  config: ModelConfig;
}

/** The hyper-parameter keys of llama.cpp's gpt-oss architecture. */
export function gptOssMetadata(c: ModelConfig, name: string): [string, GgufValue][] {
  const a = 'gpt-oss';
  const u = (value: number): GgufValue => ({ type: 'u32', value });
  const f = (value: number): GgufValue => ({ type: 'f32', value });
  return [
    ['general.architecture', { type: 'string', value: a }],
    ['general.name', { type: 'string', value: name }],
    ['general.alignment', u(GGUF_ALIGNMENT)],
    [`${a}.block_count`, u(c.numLayers)],
    [`${a}.context_length`, u(contextLength(c))],
    [`${a}.embedding_length`, u(c.hiddenSize)],
    [`${a}.feed_forward_length`, u(c.intermediateSize)],
    [`${a}.expert_feed_forward_length`, u(c.intermediateSize)],
    [`${a}.attention.head_count`, u(c.numAttentionHeads)],
    [`${a}.attention.head_count_kv`, u(c.numKeyValueHeads)],
    [`${a}.attention.key_length`, u(c.headDim)],
    [`${a}.attention.value_length`, u(c.headDim)],
    [`${a}.attention.layer_norm_rms_epsilon`, f(1e-5)],
    [`${a}.attention.sliding_window`, u(c.slidingWindow)],
    [`${a}.expert_count`, u(c.numExperts)],
    [`${a}.expert_used_count`, u(c.expertsPerToken)],
    [`${a}.rope.freq_base`, f(c.ropeTheta)],
    [`${a}.rope.scaling.type`, { type: 'string', value: 'yarn' }],
    [`${a}.rope.scaling.factor`, f(c.ropeScalingFactor)],
    [`${a}.rope.scaling.original_context_length`, u(c.initialContextLength)],
  ];
}

/**
 * Converts the checkpoint in `modelDir` (original or HF layout) into a GGUF file llama.cpp loads as
 * `gpt-oss`, streaming tensor by tensor (peak memory: one BF16 matrix or one expert's rows).
 */
export async function convertToGguf(modelDir: string, outPath: string, opts: ConvertOptions = {}): Promise<ConvertResult> {
  const found = detectCheckpoint(modelDir);
  let json: unknown;
  try {
    json = JSON.parse(readRegularFile(found.configPath));
  } catch (e) {
    throw new UserError('checkpoint', `${found.configPath}: not valid JSON (${(e as Error).message})`);
  }
  const config = found.layout === 'hf' ? parseHfConfig(json, found.configPath) : parseOriginalConfig(json, found.configPath);
  if (config.swigluLimit !== 7) throw new UserError('checkpoint', `${found.configPath}: swiglu_limit ${config.swigluLimit} cannot be expressed in llama.cpp's gpt-oss (fixed at 7.0)`);
  const ckpt = SafetensorsCheckpoint.open(found.dir);
  const reader = new RangeReader();
  try {
    const hf = found.layout === 'hf';
    const src = (original: string): TensorInfo => {
      const name = hf ? hfTensorName(original) : original;
      const info = ckpt.info(name);
      if (info === undefined) throw new UserError('checkpoint', `${ckpt.describe()}: missing tensor "${name}"`);
      return info;
    };
    const expectBytes = (info: TensorInfo, bytes: number) => {
      if (info.byteLength !== bytes) throw new UserError('checkpoint', `${info.file}: tensor "${info.name}" has ${info.byteLength} bytes (shape [${info.shape.join(', ')}], ${info.dtype}) but the config implies ${bytes}`);
    };
    const H = config.hiddenSize, I = config.intermediateSize, E = config.numExperts, D = config.headDim;
    const Q = config.numAttentionHeads, K = config.numKeyValueHeads;
    const tensors: GgufTensorSpec[] = [];

    const bf16Matrix = (ggufName: string, info: TensorInfo, rows: number, cols: number, rowStart = 0) => {
      if (info.dtype !== 'BF16') throw new UserError('checkpoint', `${info.file}: tensor "${info.name}" has dtype ${info.dtype}, expected BF16`);
      tensors.push({
        name: ggufName, type: 'BF16', shape: [rows, cols],
        write: (emit) => {
          const rowsPerChunk = Math.max(1, Math.floor((16 << 20) / (cols * 2)));
          for (let r = 0; r < rows; r += rowsPerChunk) {
            const n = Math.min(rowsPerChunk, rows - r);
            emit(reader.read(info, (rowStart + r) * cols * 2, n * cols * 2));
          }
        },
      });
    };
    const f32Vector = (ggufName: string, info: TensorInfo, shape: number[], pick?: { start: number; stride: number }) => {
      const count = shape.reduce((p, d) => p * d, 1);
      tensors.push({
        name: ggufName, type: 'F32', shape,
        write: (emit) => {
          const all = bf16ToF32Bytes(reader.read(info, 0, info.byteLength), info.dtype);
          const f = new Float32Array(all.buffer, all.byteOffset, all.byteLength / 4);
          if (pick === undefined) {
            emit(all);
            return;
          }
          const out = new Float32Array(count);
          if (pick !== undefined) for (let i = 0; i < count; i++) out[i] = f[pick.start + i * pick.stride]!;
          emit(new Uint8Array(out.buffer));
        },
      });
    };
    const f32Slice = (ggufName: string, info: TensorInfo, start: number, count: number) => {
      tensors.push({
        name: ggufName, type: 'F32', shape: [count],
        write: (emit) => {
          const size = info.dtype === 'F32' ? 4 : 2;
          emit(bf16ToF32Bytes(reader.read(info, start * size, count * size), info.dtype));
        },
      });
    };
    // Experts: rows of one stack (all rows, or the even/odd ones of mlp1) repacked expert by expert.
    const experts = (ggufName: string, blocks: TensorInfo, scales: TensorInfo, rowsPerExpert: number, cols: number, pick: 'all' | 'even' | 'odd') => {
      const groups = cols / 32;
      expectBytes(blocks, E * rowsPerExpert * groups * 16);
      expectBytes(scales, E * rowsPerExpert * groups);
      const outRows = pick === 'all' ? rowsPerExpert : rowsPerExpert / 2;
      tensors.push({
        name: ggufName, type: 'MXFP4', shape: [E, outRows, cols],
        write: (emit) => {
          for (let e = 0; e < E; e++) {
            const b = reader.read(blocks, e * rowsPerExpert * groups * 16, rowsPerExpert * groups * 16);
            const s = reader.read(scales, e * rowsPerExpert * groups, rowsPerExpert * groups);
            const out = new Uint8Array(outRows * groups * 17);
            if (pick === 'all') {
              repackMxfp4Rows(b, s, rowsPerExpert, groups, out);
            } else {
              const first = pick === 'even' ? 0 : 1;
              for (let r = 0; r < outRows; r++) {
                const src = 2 * r + first;
                repackMxfp4Rows(b.subarray(src * groups * 16, (src + 1) * groups * 16), s.subarray(src * groups, (src + 1) * groups), 1, groups, out, r * groups * 17);
              }
            }
            emit(out);
          }
        },
      });
    };

    const emb = src('embedding.weight');
    expectBytes(emb, config.vocabSize * H * 2);
    bf16Matrix('token_embd.weight', emb, config.vocabSize, H);
    for (let n = 0; n < config.numLayers; n++) {
      const b = `block.${n}`, g = `blk.${n}`;
      f32Vector(`${g}.attn_norm.weight`, src(`${b}.attn.norm.scale`), [H]);
      if (hf) {
        const [qw, kw, vw] = hfQkvNames(n, 'weight').map((x) => ckpt.info(x));
        const [qb, kb, vb] = hfQkvNames(n, 'bias').map((x) => ckpt.info(x));
        if (!qw || !kw || !vw || !qb || !kb || !vb) throw new UserError('checkpoint', `${ckpt.describe()}: missing q/k/v projections of layer ${n}`);
        bf16Matrix(`${g}.attn_q.weight`, qw, Q * D, H);
        bf16Matrix(`${g}.attn_k.weight`, kw, K * D, H);
        bf16Matrix(`${g}.attn_v.weight`, vw, K * D, H);
        f32Vector(`${g}.attn_q.bias`, qb, [Q * D]);
        f32Vector(`${g}.attn_k.bias`, kb, [K * D]);
        f32Vector(`${g}.attn_v.bias`, vb, [K * D]);
      } else {
        const qkv = src(`${b}.attn.qkv.weight`);
        expectBytes(qkv, D * (Q + 2 * K) * H * 2);
        bf16Matrix(`${g}.attn_q.weight`, qkv, Q * D, H, 0);
        bf16Matrix(`${g}.attn_k.weight`, qkv, K * D, H, Q * D);
        bf16Matrix(`${g}.attn_v.weight`, qkv, K * D, H, (Q + K) * D);
        const bias = src(`${b}.attn.qkv.bias`);
        f32Slice(`${g}.attn_q.bias`, bias, 0, Q * D);
        f32Slice(`${g}.attn_k.bias`, bias, Q * D, K * D);
        f32Slice(`${g}.attn_v.bias`, bias, (Q + K) * D, K * D);
      }
      bf16Matrix(`${g}.attn_output.weight`, src(`${b}.attn.out.weight`), H, Q * D);
      f32Vector(`${g}.attn_output.bias`, src(`${b}.attn.out.bias`), [H]);
      f32Vector(`${g}.attn_sinks.weight`, src(`${b}.attn.sinks`), [Q]);
      f32Vector(`${g}.post_attention_norm.weight`, src(`${b}.mlp.norm.scale`), [H]);
      f32Vector(`${g}.ffn_gate_inp.weight`, src(`${b}.mlp.gate.weight`), [E, H]);
      f32Vector(`${g}.ffn_gate_inp.bias`, src(`${b}.mlp.gate.bias`), [E]);
      const b1 = src(`${b}.mlp.mlp1_weight.blocks`), s1 = src(`${b}.mlp.mlp1_weight.scales`);
      experts(`${g}.ffn_gate_exps.weight`, b1, s1, 2 * I, H, 'even');
      experts(`${g}.ffn_up_exps.weight`, b1, s1, 2 * I, H, 'odd');
      experts(`${g}.ffn_down_exps.weight`, src(`${b}.mlp.mlp2_weight.blocks`), src(`${b}.mlp.mlp2_weight.scales`), H, I, 'all');
      const bias1 = src(`${b}.mlp.mlp1_bias`);
      f32Vector(`${g}.ffn_gate_exps.bias`, bias1, [E, I], { start: 0, stride: 2 });
      f32Vector(`${g}.ffn_up_exps.bias`, bias1, [E, I], { start: 1, stride: 2 });
      f32Vector(`${g}.ffn_down_exps.bias`, src(`${b}.mlp.mlp2_bias`), [E, H]);
    }
    f32Vector('output_norm.weight', src('norm.scale'), [H]);
    const unemb = src('unembedding.weight');
    expectBytes(unemb, config.vocabSize * H * 2);
    bf16Matrix('output.weight', unemb, config.vocabSize, H);

    const name = opts.name ?? (basename(found.dir) === 'original' ? basename(found.dir.replace(/\/original\/?$/, '')) : basename(found.dir));
    const metadata = gptOssMetadata(config, name);
    if (opts.noVocab !== true) {
      const vocab = await buildVocab(config.vocabSize);
      metadata.push(
        ['tokenizer.ggml.model', { type: 'string', value: 'gpt2' }],
        ['tokenizer.ggml.pre', { type: 'string', value: 'gpt-4o' }],
        ['tokenizer.ggml.tokens', { type: 'string[]', value: vocab.tokens }],
        ['tokenizer.ggml.token_type', { type: 'i32[]', value: vocab.types }],
        ['tokenizer.ggml.merges', { type: 'string[]', value: vocab.merges }],
        ['tokenizer.ggml.bos_token_id', { type: 'u32', value: 199998 }],
        ['tokenizer.ggml.eos_token_id', { type: 'u32', value: 200002 }],
        ['tokenizer.ggml.padding_token_id', { type: 'u32', value: 199999 }],
        ['tokenizer.ggml.add_bos_token', { type: 'bool', value: false }],
      );
    }
    opts.onStart?.(tensors.reduce((sum, t) => sum + ggufTensorBytes(t), 0));
    const bytes = writeGguf(outPath, metadata, tensors, opts.onBytes);
    return { path: outPath, bytes, tensors: tensors.length, config };
  } finally {
    reader.close();
    ckpt.close();
  }
}
