// The safetensors format, read and written with our own code. Reading validates the whole header
// before any tensor is touched (header length inside the file, JSON, known dtypes, shapes matching
// byte sizes, offsets inside the data section, no overlaps, no gaps: the tensors fill the data
// section exactly, as the format requires, so a header length off by a byte is caught) and then reads one tensor at a time
// with positioned reads straight into a caller-supplied buffer (a backend TensorStore), so a
// multi-GB checkpoint never passes through the JS heap at once. Writing streams to disk.
// Every error names the file and, when there is one, the tensor.
import { closeSync, existsSync, fstatSync, openSync, read as readAsync, readSync, readdirSync, writeSync } from 'node:fs';
import { basename, join } from 'node:path';
import { readProblem, UserError } from '../errors.ts';
import { DTYPE_SIZES, isDtype, type Dtype, type TensorStore } from '../tensor/index.ts';
import { isFolder, openRegularFile, readRegularFile } from '../files.ts';

export interface TensorInfo {
  name: string;
  dtype: Dtype;
  shape: number[];
  /** The file holding the tensor. */
  file: string;
  /** Absolute byte offset of the tensor's data in `file`. */
  offset: number;
  byteLength: number;
}

/** The header is JSON of a few KB to a few MB; anything far larger is a corrupt length field. */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;
/** Single positioned reads are kept under 1 GiB (the kernel caps one read at ~2 GiB). */
const READ_CHUNK = 1 << 30;
/** Piece size and parallelism of deferred reads (SafetensorsCheckpoint.flush). */
const FLUSH_PIECE = 16 << 20;
const FLUSH_CONCURRENCY = 4;

function fail(file: string, message: string): never {
  throw new UserError('checkpoint', `${file}: ${message}`);
}

function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** One .safetensors file: its validated header and positioned reads of its tensors. */
export class SafetensorsFile {
  readonly path: string;
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  readonly metadata: Readonly<Record<string, string>>;
  private fd: number | null;

  private constructor(path: string, fd: number, tensors: Map<string, TensorInfo>, metadata: Record<string, string>) {
    this.path = path;
    this.fd = fd;
    this.tensors = tensors;
    this.metadata = metadata;
  }

  /** Opens and validates `path`; throws UserError('checkpoint') naming the file (and tensor) on any defect. */
  static open(path: string): SafetensorsFile {
    const fd = openRegularFile(path);
    try {
      const { tensors, metadata } = parseHeader(path, fd);
      return new SafetensorsFile(path, fd, tensors, metadata);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  /** Reads the tensor's bytes into `dest` (exactly its byteLength long). */
  readInto(name: string, dest: Uint8Array): void {
    const info = this.tensors.get(name);
    if (info === undefined) fail(this.path, `no tensor "${name}"`);
    if (dest.byteLength !== info.byteLength) throw new Error(`readInto ${name}: buffer of ${dest.byteLength} bytes for ${info.byteLength}`);
    if (this.fd === null) throw new Error(`${this.path} is closed`);
    let done = 0;
    while (done < info.byteLength) {
      const len = Math.min(READ_CHUNK, info.byteLength - done);
      const n = readSync(this.fd, dest, done, len, info.offset + done);
      if (n <= 0) fail(this.path, `tensor "${name}": file ends before its data (truncated download?)`);
      done += n;
    }
  }

  /** Reads `len` bytes of the tensor from byte `start` into dest[start...] without blocking the thread. */
  readPiece(name: string, dest: Uint8Array, start: number, len: number): Promise<void> {
    const info = this.tensors.get(name);
    if (info === undefined) fail(this.path, `no tensor "${name}"`);
    const fd = this.fd;
    if (fd === null) throw new Error(`${this.path} is closed`);
    return new Promise((resolve, reject) => {
      const step = (done: number): void => {
        if (done === len) return resolve();
        readAsync(fd, dest, start + done, len - done, info.offset + start + done, (err, n) => {
          if (err !== null) return reject(new UserError('checkpoint', `${this.path}: tensor "${name}": ${readProblem(err)}`));
          if (n <= 0) return reject(new UserError('checkpoint', `${this.path}: tensor "${name}": file ends before its data (truncated download?)`));
          step(done + n);
        });
      };
      step(0);
    });
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

function parseHeader(path: string, fd: number): { tensors: Map<string, TensorInfo>; metadata: Record<string, string> } {
  const size = fstatSync(fd).size;
  if (size < 8) fail(path, `not a safetensors file (${size} bytes, shorter than the 8-byte header length)`);
  const lenBuf = Buffer.alloc(8);
  readSync(fd, lenBuf, 0, 8, 0);
  const headerLen = lenBuf.readBigUInt64LE(0);
  if (headerLen === 0n || headerLen > BigInt(MAX_HEADER_BYTES)) fail(path, `implausible header length ${headerLen} (not a safetensors file?)`);
  const n = Number(headerLen);
  if (8 + n > size) fail(path, `header of ${n} bytes runs past the end of the ${size}-byte file (truncated?)`);
  const headerBuf = Buffer.alloc(n);
  readSync(fd, headerBuf, 0, n, 8);
  let json: unknown;
  try {
    json = JSON.parse(headerBuf.toString('utf8'));
  } catch (e) {
    fail(path, `header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail(path, 'header is not a JSON object');
  const dataStart = 8 + n;
  const dataSize = size - dataStart;
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  const spans: { begin: number; end: number; name: string }[] = [];
  for (const [name, entry] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) fail(path, '__metadata__ is not an object');
      metadata = {};
      for (const [k, v] of Object.entries(entry as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(path, `__metadata__ value "${k}" is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    const where = `tensor "${name}"`;
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) fail(path, `${where}: header entry is not an object`);
    const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
    if (!isDtype(dtype)) fail(path, `${where}: unsupported dtype ${JSON.stringify(dtype)}`);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
      fail(path, `${where}: shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && (o as number) >= 0)) {
      fail(path, `${where}: data_offsets ${JSON.stringify(offsets)} is not a pair of non-negative integers`);
    }
    const [begin, end] = offsets as [number, number];
    const expected = elementCount(shape as number[]) * DTYPE_SIZES[dtype];
    if (end < begin) fail(path, `${where}: data_offsets [${begin}, ${end}] end before they begin`);
    if (end - begin !== expected) {
      fail(path, `${where}: holds ${end - begin} bytes but ${dtype} ${JSON.stringify(shape)} needs ${expected}`);
    }
    if (end > dataSize) {
      fail(path, `${where}: data ends at byte ${dataStart + end} but the file has ${size} bytes (truncated download?)`);
    }
    tensors.set(name, { name, dtype, shape: shape as number[], file: path, offset: dataStart + begin, byteLength: expected });
    spans.push({ begin, end, name });
  }
  spans.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let last: { end: number; name: string } | null = null;
  for (const cur of spans) {
    if (cur.end === cur.begin) continue; // empty tensors occupy no bytes
    if (last !== null && cur.begin < last.end) fail(path, `tensors "${last.name}" and "${cur.name}" overlap in the data section`);
    const covered = last?.end ?? 0;
    if (cur.begin > covered) {
      fail(path, `${cur.begin - covered} bytes of the data section before tensor "${cur.name}" belong to no tensor (a wrong header length or offsets?)`);
    }
    if (last === null || cur.end > last.end) last = cur;
  }
  const covered = last?.end ?? 0;
  if (covered !== dataSize) {
    fail(path, `the tensors end at byte ${dataStart + covered} of the data section but the file has ${size} bytes (a wrong header length, or bytes appended?)`);
  }
  return { tensors, metadata };
}

/**
 * A checkpoint made of one or more .safetensors files: a single file, a folder with
 * `model.safetensors.index.json` (its weight_map names the file of every tensor), or a folder whose
 * *.safetensors files are all read (no index).
 */
export class SafetensorsCheckpoint {
  readonly files: readonly SafetensorsFile[];
  private readonly byName = new Map<string, SafetensorsFile>();

  private constructor(files: SafetensorsFile[]) {
    this.files = files;
    for (const f of files) {
      for (const name of f.tensors.keys()) {
        const other = this.byName.get(name);
        if (other !== undefined) fail(f.path, `tensor "${name}" is also in ${other.path}`);
        this.byName.set(name, f);
      }
    }
  }

  /** Opens a .safetensors file or a folder of them (see the class comment). */
  static open(pathOrDir: string): SafetensorsCheckpoint {
    // A folder whose name ends in .safetensors is still a folder of files.
    if (pathOrDir.endsWith('.safetensors') && !isFolder(pathOrDir)) return new SafetensorsCheckpoint([SafetensorsFile.open(pathOrDir)]);
    const index = join(pathOrDir, 'model.safetensors.index.json');
    const opened: SafetensorsFile[] = [];
    try {
      if (existsSync(index)) {
        const weightMap = readIndex(index);
        const fileNames = [...new Set(Object.values(weightMap))].sort();
        for (const name of fileNames) opened.push(SafetensorsFile.open(join(pathOrDir, name)));
        const checkpoint = new SafetensorsCheckpoint(opened);
        for (const [tensor, file] of Object.entries(weightMap)) {
          const holder = checkpoint.byName.get(tensor);
          if (holder === undefined || basename(holder.path) !== file) fail(join(pathOrDir, file), `tensor "${tensor}" listed in ${basename(index)} is missing from this file`);
        }
        return checkpoint;
      }
      let names: string[];
      try {
        names = readdirSync(pathOrDir).filter((n) => n.endsWith('.safetensors')).sort();
      } catch {
        fail(pathOrDir, 'no such folder');
      }
      if (names.length === 0) fail(pathOrDir, 'no .safetensors files in this folder');
      for (const name of names) opened.push(SafetensorsFile.open(join(pathOrDir, name)));
      return new SafetensorsCheckpoint(opened);
    } catch (e) {
      for (const f of opened) f.close();
      throw e;
    }
  }

  names(): string[] {
    return [...this.byName.keys()];
  }

  info(name: string): TensorInfo | undefined {
    return this.byName.get(name)?.tensors.get(name);
  }

  /**
   * While true, read() only allocates and queues; flush() then fills every queued buffer. A big
   * load spends most of its time in the kernel faulting in the destination's fresh pages, and
   * several reads at once fault on several cores (2-4x faster here than one read at a time).
   */
  deferReads = false;
  private pending: { file: SafetensorsFile; name: string; dest: Uint8Array }[] = [];

  /** Reads a tensor into a fresh buffer from `store` (labelled with the tensor's name). */
  read(name: string, store: TensorStore): Uint8Array {
    const file = this.byName.get(name);
    if (file === undefined) throw new UserError('checkpoint', `${this.describe()}: missing tensor "${name}"`);
    const info = file.tensors.get(name)!;
    const dest = store.allocate(info.byteLength, name);
    if (this.deferReads) {
      this.pending.push({ file, name, dest });
      return dest;
    }
    try {
      file.readInto(name, dest);
    } catch (e) {
      store.free(dest);
      throw e;
    }
    return dest;
  }

  /** Fills the buffers read() queued while deferReads was on, FLUSH_CONCURRENCY pieces at a time. */
  async flush(): Promise<void> {
    const pieces: { file: SafetensorsFile; name: string; dest: Uint8Array; start: number; len: number }[] = [];
    for (const { file, name, dest } of this.pending) {
      for (let start = 0; start < dest.byteLength; start += FLUSH_PIECE) pieces.push({ file, name, dest, start, len: Math.min(FLUSH_PIECE, dest.byteLength - start) });
    }
    this.pending = [];
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < pieces.length) {
        const p = pieces[next++]!;
        try {
          await p.file.readPiece(p.name, p.dest, p.start, p.len);
        } catch (e) {
          next = pieces.length; // the others stop after their current piece
          throw e;
        }
      }
    };
    // Every worker settles before the caller may close the files.
    const settled = await Promise.allSettled(Array.from({ length: FLUSH_CONCURRENCY }, worker));
    for (const r of settled) if (r.status === 'rejected') throw r.reason;
  }

  /** Reads a (small) tensor into a temporary heap buffer. */
  readBytes(name: string): Uint8Array {
    const file = this.byName.get(name);
    if (file === undefined) throw new UserError('checkpoint', `${this.describe()}: missing tensor "${name}"`);
    const dest = new Uint8Array(file.tensors.get(name)!.byteLength);
    file.readInto(name, dest);
    return dest;
  }

  /** The file names, for error messages about the checkpoint as a whole. */
  describe(): string {
    return this.files.length === 1 ? this.files[0]!.path : `${this.files[0]!.path} (+${this.files.length - 1} more files)`;
  }

  close(): void {
    for (const f of this.files) f.close();
  }
}

function readIndex(path: string): Record<string, string> {
  const text = readRegularFile(path);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    fail(path, `not valid JSON (${(e as Error).message})`);
  }
  const map = (json as { weight_map?: unknown } | null)?.weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map)) fail(path, 'no "weight_map" object');
  for (const [k, v] of Object.entries(map as Record<string, unknown>)) {
    if (typeof v !== 'string' || v.includes('/') || v.includes('\\')) fail(path, `weight_map entry "${k}" is not a file name`);
  }
  return map as Record<string, string>;
}

/** A tensor to write: its bytes, or a function that streams them (for tensors too big to hold at once). */
export interface TensorToWrite {
  name: string;
  dtype: Dtype;
  shape: readonly number[];
  data: ArrayBufferView | ((write: (chunk: ArrayBufferView) => void) => void);
}

/**
 * Writes a safetensors file, streaming each tensor to disk. Tensors are laid out by decreasing
 * element size (so every tensor is aligned to its element size) with no holes, and the header is
 * padded with spaces to a multiple of 8, as the reference tools do.
 */
export function writeSafetensors(path: string, tensors: readonly TensorToWrite[], metadata: Record<string, string> = { format: 'pt' }): void {
  const ordered = [...tensors].sort((a, b) => DTYPE_SIZES[b.dtype] - DTYPE_SIZES[a.dtype]);
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const t of ordered) {
    const bytes = elementCount(t.shape) * DTYPE_SIZES[t.dtype];
    if (typeof t.data !== 'function' && t.data.byteLength !== bytes) {
      throw new Error(`writeSafetensors ${t.name}: ${t.data.byteLength} bytes given for ${t.dtype} ${JSON.stringify(t.shape)} (${bytes})`);
    }
    header[t.name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let headerText = JSON.stringify(header);
  const headerBytes = Buffer.byteLength(headerText, 'utf8');
  headerText += ' '.repeat((8 - (headerBytes % 8)) % 8);
  const headerBuf = Buffer.from(headerText, 'utf8');
  const fd = openSync(path, 'w');
  try {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(headerBuf.length));
    writeAll(fd, len);
    writeAll(fd, headerBuf);
    for (const t of ordered) {
      const bytes = elementCount(t.shape) * DTYPE_SIZES[t.dtype];
      if (typeof t.data === 'function') {
        let written = 0;
        t.data((chunk) => {
          writeAll(fd, chunk);
          written += chunk.byteLength;
        });
        if (written !== bytes) throw new Error(`writeSafetensors ${t.name}: streamed ${written} bytes, expected ${bytes}`);
      } else {
        writeAll(fd, t.data);
      }
    }
  } finally {
    closeSync(fd);
  }
}

function writeAll(fd: number, view: ArrayBufferView): void {
  const bytes = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
  let done = 0;
  while (done < bytes.byteLength) done += writeSync(fd, bytes, done, Math.min(READ_CHUNK, bytes.byteLength - done));
}
