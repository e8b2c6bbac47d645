// Per-sequence KV caches. Every layer stores keys (RoPE applied) and values in slots indexed by
// absolute position modulo the layer's capacity, with each slot's position alongside (-1 = empty),
// which is exactly what the backend's attention op takes. Dense layers keep every position (their
// capacity grows in doubling steps up to the context length, so slot = position); banded layers
// keep only what a sliding window can still see: the last `window - 1` positions, room for the
// chunk being processed, and `rewind` spare positions so a truncation by up to that many tokens
// (prefix reuse) needs no recomputation; their memory is bounded however long the sequence grows.
// Buffers come from the backend's TensorStore so a fast backend attends to them in place. Entries
// are f32, or bf16 words ('bf16': half the memory, rounded to nearest even as they are written).
// With a device-resident backend (`device`, f32 entries only) the entries are written and moved by
// its copy op, so the cache lives on the device; slot positions are kept on both sides alike.
import type { DeviceResident, KvArray, KvCacheType } from '../kernels/backend.ts';
import { f32ToBf16, type TensorStore } from '../tensor/index.ts';
import { isSlidingLayer, type ModelConfig } from './config.ts';

const INITIAL_DENSE_CAPACITY = 256;

export class LayerCache {
  /** [capacity, kvHeads*headDim] each: f32, or bf16 words. */
  keys: KvArray;
  values: KvArray;
  /** Absolute position held by each slot, -1 when empty. */
  positions: Int32Array;
  capacity = 0;
  /** Slots in use are [0, used): attention need not look beyond. */
  used = 0;
  private buffers: Uint8Array[] = [];

  constructor(
    private readonly store: TensorStore,
    private readonly label: string,
    /** Entries per position (kvHeads * headDim). */
    readonly width: number,
    /** Sliding window, or 0 for a dense layer. */
    readonly window: number,
    /** Upper bound on capacity (the context length; banded layers need far less). */
    readonly maxCapacity: number,
    /** Extra positions a banded ring keeps so short truncations are served from the cache. */
    readonly rewind = 0,
    readonly type: KvCacheType = 'f32',
    /** The backend's device glue, when entries live on its device. */
    private readonly device?: DeviceResident,
  ) {
    if (device !== undefined && type !== 'f32') throw new Error('a device-resident KV cache holds f32 entries');
    this.keys = this.entries(new Uint8Array(0), 0);
    this.values = this.entries(new Uint8Array(0), 0);
    this.positions = new Int32Array(0);
  }

  /** Bytes per key or value entry. */
  get elementBytes(): number {
    return this.type === 'bf16' ? 2 : 4;
  }

  private entries(buf: Uint8Array, count: number): KvArray {
    return this.type === 'bf16' ? new Uint16Array(buf.buffer, buf.byteOffset, count) : new Float32Array(buf.buffer, buf.byteOffset, count);
  }

  /** Slots needed to append `count` tokens after `length` without losing a key still visible. */
  private required(length: number, count: number): number {
    const dense = length + count;
    return this.window === 0 ? dense : Math.min(dense, this.window - 1 + count + this.rewind);
  }

  /** Makes room to append `count` tokens to a sequence of `length`. */
  reserve(length: number, count: number): void {
    const need = this.required(length, count);
    if (need <= this.capacity) return;
    const grown = this.window === 0
      ? Math.min(this.maxCapacity, Math.max(need, INITIAL_DENSE_CAPACITY, 2 * this.capacity))
      : Math.min(this.window - 1 + this.rewind + count, Math.max(need, 2 * this.capacity, 64)); // doubling: few regrowths
    this.resize(Math.max(grown, need));
  }

  private resize(capacity: number): void {
    const kBuf = this.store.allocate(capacity * this.width * this.elementBytes, `${this.label}.keys`);
    const vBuf = this.store.allocate(capacity * this.width * this.elementBytes, `${this.label}.values`);
    const pBuf = this.store.allocate(capacity * 4, `${this.label}.positions`);
    const keys = this.entries(kBuf, capacity * this.width);
    const values = this.entries(vBuf, capacity * this.width);
    const positions = new Int32Array(pBuf.buffer, pBuf.byteOffset, capacity);
    positions.fill(-1);
    let used = 0;
    // Re-place the live entries by their positions under the new modulus, in runs of slots that
    // stay consecutive (one copy each on a device).
    for (let s = 0; s < this.capacity;) {
      const p = this.positions[s]!;
      if (p < 0) {
        s++;
        continue;
      }
      const slot = p % capacity;
      let n = 1;
      while (s + n < this.capacity && this.positions[s + n] === p + n && slot + n < capacity) n++;
      for (let i = 0; i < n; i++) positions[slot + i] = p + i;
      if (this.device !== undefined) {
        const w = this.width;
        this.device.copyRows((this.keys as Float32Array).subarray(s * w), w * n, (keys as Float32Array).subarray(slot * w), w * n, w * n, 1);
        this.device.copyRows((this.values as Float32Array).subarray(s * w), w * n, (values as Float32Array).subarray(slot * w), w * n, w * n, 1);
      } else {
        copyEntries(this.keys, s * this.width, keys, slot * this.width, n * this.width);
        copyEntries(this.values, s * this.width, values, slot * this.width, n * this.width);
      }
      used = Math.max(used, slot + n);
      s += n;
    }
    this.device?.written(positions);
    this.freeBuffers();
    this.buffers = [kBuf, vBuf, pBuf];
    this.keys = keys;
    this.values = values;
    this.positions = positions;
    this.capacity = capacity;
    this.used = used;
  }

  /**
   * Stores k, v [count, width] at positions start..start+count-1 (room reserved beforehand).
   * `rowPositions` holds those positions (an array the device has: it copies them to the slots).
   */
  write(start: number, count: number, k: Float32Array, v: Float32Array, rowPositions?: Int32Array): void {
    if (this.device !== undefined) return this.writeOnDevice(this.device, start, count, k, v, rowPositions);
    for (let i = 0; i < count; i++) {
      const p = start + i;
      const slot = p % this.capacity;
      storeEntries(k.subarray(i * this.width, (i + 1) * this.width), this.keys, slot * this.width);
      storeEntries(v.subarray(i * this.width, (i + 1) * this.width), this.values, slot * this.width);
      this.positions[slot] = p;
      if (slot + 1 > this.used) this.used = slot + 1;
    }
  }

  /** `write` as device copies: one per run of consecutive slots (two when the ring wraps). */
  private writeOnDevice(device: DeviceResident, start: number, count: number, k: Float32Array, v: Float32Array, rowPositions: Int32Array | undefined): void {
    if (rowPositions === undefined) throw new Error('a device-resident KV cache write needs the rows\' positions');
    const w = this.width, keys = this.keys as Float32Array, values = this.values as Float32Array;
    for (let i = 0; i < count;) {
      const slot = (start + i) % this.capacity;
      const n = Math.min(count - i, this.capacity - slot);
      device.copyRows(k.subarray(i * w), w * n, keys.subarray(slot * w), w * n, w * n, 1);
      device.copyRows(v.subarray(i * w), w * n, values.subarray(slot * w), w * n, w * n, 1);
      device.copyRows(rowPositions.subarray(i), n, this.positions.subarray(slot), n, n, 1);
      for (let j = 0; j < n; j++) this.positions[slot + j] = start + i + j;
      this.used = Math.max(this.used, slot + n);
      i += n;
    }
  }

  /** The smallest position still held (or Infinity when empty). */
  oldest(): number {
    let min = Infinity;
    for (let s = 0; s < this.used; s++) {
      const p = this.positions[s]!;
      if (p >= 0 && p < min) min = p;
    }
    return min;
  }

  /** Forgets positions >= length. */
  truncate(length: number): void {
    for (let s = 0; s < this.used; s++) if (this.positions[s]! >= length) this.positions[s] = -1;
    this.device?.written(this.positions.subarray(0, this.used));
  }

  private freeBuffers(): void {
    for (const b of this.buffers) this.store.free(b);
    this.buffers = [];
  }

  release(): void {
    this.freeBuffers();
    this.keys = this.entries(new Uint8Array(0), 0);
    this.values = this.entries(new Uint8Array(0), 0);
    this.positions = new Int32Array(0);
    this.capacity = 0;
    this.used = 0;
  }
}

/** Copies `count` entries between two KV arrays of the same element type. */
function copyEntries(src: KvArray, from: number, dst: KvArray, to: number, count: number): void {
  if (src instanceof Float32Array) (dst as Float32Array).set(src.subarray(from, from + count), to);
  else (dst as Uint16Array).set(src.subarray(from, from + count), to);
}

/** Stores f32 entries into a KV array, narrowing to bf16 when it holds bf16 words. */
function storeEntries(src: Float32Array, dst: KvArray, to: number): void {
  if (dst instanceof Float32Array) dst.set(src, to);
  else f32ToBf16(src, dst, to);
}

/** Bytes one position of one layer takes: keys and values of `width` entries each, plus its position. */
export function kvBytesPerPosition(width: number, type: KvCacheType): number {
  return 2 * width * (type === 'bf16' ? 2 : 4) + 4;
}

/** All layers' caches of one sequence, and how many positions they hold. */
export class KvCache {
  readonly layers: LayerCache[];
  /** Positions 0..length-1 have been processed. */
  length = 0;

  constructor(
    config: ModelConfig, store: TensorStore, contextLength: number,
    options: { label?: string; rewind?: number; type?: KvCacheType; device?: DeviceResident | undefined } = {},
  ) {
    const label = options.label ?? 'kv';
    const width = config.numKeyValueHeads * config.headDim;
    this.layers = [];
    for (let n = 0; n < config.numLayers; n++) {
      const window = isSlidingLayer(n) ? config.slidingWindow : 0;
      this.layers.push(new LayerCache(store, `${label}.block.${n}`, width, window, contextLength, options.rewind ?? 0, options.type ?? 'f32', options.device));
    }
  }

  /**
   * Forgets the positions from `length` on. Returns false when a banded layer no longer holds the
   * window of keys that position `length` would need (they were overwritten by later tokens); the
   * caller must then recompute the sequence from its start. Dense layers can always truncate.
   */
  truncate(length: number): boolean {
    if (length >= this.length) return true;
    for (const layer of this.layers) {
      if (layer.window === 0) continue;
      const needFrom = Math.max(0, length - layer.window + 1);
      if (needFrom < length && layer.oldest() > needFrom) return false;
    }
    for (const layer of this.layers) layer.truncate(length);
    this.length = length;
    return true;
  }

  /** Empties every layer (keeps nothing, frees the buffers). */
  reset(): void {
    for (const layer of this.layers) layer.release();
    this.length = 0;
  }

  release(): void {
    this.reset();
  }

  /** Bytes held by the caches (for memory reports). */
  bytes(): number {
    let total = 0;
    for (const layer of this.layers) total += layer.capacity * kvBytesPerPosition(layer.width, layer.type);
    return total;
  }
}
