// GGUF (v3), the file format of llama.cpp, Ollama and node-llama-cpp: its constants, a streaming
// writer and a header reader (metadata and tensor table, offsets validated). What goes into the
// file for gpt-oss is gguf-convert.ts's business.
import { closeSync, openSync, readSync, renameSync, writeSync, fstatSync } from 'node:fs';
import { UserError } from '../errors.ts';

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
