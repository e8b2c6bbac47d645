// Reading named tensors out of safetensors files into the in-memory forms of model/weights.ts,
// each checked against the shape its layout's config implies and the dtypes allowed for it. Shared
// by both layouts' loaders (original.ts, hf.ts). Large matrices stay BF16, MXFP4 experts stay
// packed, small vectors are widened to f32; all buffers come from the backend's TensorStore.
import { closeSync, openSync, readSync } from 'node:fs';
import { basename } from 'node:path';
import { UserError } from '../errors.ts';
import type { EmbeddingTable } from '../model/weights.ts';
import { bf16ToF32, widenToF32, type Bf16Matrix, type Dtype, type Mxfp4Matrices, type TensorStore } from '../tensor/index.ts';
import type { SafetensorsCheckpoint, TensorInfo } from './safetensors.ts';

const VECTOR_DTYPES: readonly Dtype[] = ['BF16', 'F16', 'F32'];

/**
 * Reads tensors by name with their expected shapes, converting to the in-memory forms of
 * model/weights.ts. Each layout's loader passes its own name -> shape table.
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
