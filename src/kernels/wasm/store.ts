// The wasm backend's TensorStore: several shared WebAssembly memories, because one memory holds
// at most 4 GiB in Node 20 and gpt-oss-20b is ~13 GB. `allocate` places each tensor whole into the
// first memory with room (first fit over a per-memory free list, then the memory's bump pointer,
// growing it on demand). Every memory starts with a fixed scratch region the kernels use for the
// activations copied in for one op, so computing never allocates.
import { UserError } from '../../errors.ts';
import type { TensorStore } from '../../tensor/index.ts';

const PAGE = 65536;
/** Pages a memory may grow to (Node 20's limit is 65536 = 4 GiB; one page short keeps offsets < 2^32). */
export const MAX_PAGES = 65535;
/** The first 64 KiB belong to the module (its constants). */
const LEAD = PAGE;
/** Per-memory scratch for one op's activations. */
export const SCRATCH_BYTES = 64 * 2 ** 20;
/** Room kept at the top of each memory for tensors that must be copied beside another one. */
const RESERVE_BYTES = 96 * 2 ** 20;

export interface Location {
  memory: number;
  /** Byte offset of the view's first byte inside that memory. */
  ptr: number;
}

interface Block {
  ptr: number;
  bytes: number;
}

export class WasmMemory {
  readonly memory: WebAssembly.Memory;
  /** Bump pointer: everything at or above it is unused. */
  top: number;
  readonly free: Block[] = [];
  readonly scratch: number;
  readonly scratchEnd: number;
  /** Bytes handed out and not freed (for reports). */
  live = 0;
  private f32Cache: Float32Array | null = null;
  private u8Cache: Uint8Array | null = null;

  constructor() {
    const pages = Math.ceil((LEAD + SCRATCH_BYTES) / PAGE);
    this.memory = new WebAssembly.Memory({ initial: pages, maximum: 65536, shared: true });
    this.scratch = LEAD;
    this.scratchEnd = LEAD + SCRATCH_BYTES;
    this.top = this.scratchEnd;
  }

  get buffer(): ArrayBufferLike {
    return this.memory.buffer;
  }

  /** Views over the whole memory, refreshed after growth. */
  f32(): Float32Array {
    const b = this.memory.buffer;
    if (this.f32Cache === null || this.f32Cache.buffer !== b) this.f32Cache = new Float32Array(b);
    return this.f32Cache;
  }

  u8(): Uint8Array {
    const b = this.memory.buffer;
    if (this.u8Cache === null || this.u8Cache.buffer !== b) this.u8Cache = new Uint8Array(b);
    return this.u8Cache;
  }

  ensure(end: number): void {
    const have = this.memory.buffer.byteLength;
    if (end > have) this.memory.grow(Math.ceil((end - have) / PAGE));
  }
}

const align64 = (n: number): number => Math.ceil(n / 64) * 64;

export class WasmStore implements TensorStore {
  readonly memories: WasmMemory[] = [];
  private readonly byBuffer = new Map<ArrayBufferLike, number>();
  /** Called when a memory is added (the thread pool instantiates the kernels on it). */
  onNewMemory: ((index: number) => void) | null = null;

  /** Usable pages per memory (tests lower it to exercise several memories with small tensors). */
  readonly maxPages: number;

  /** Bytes at the top of each memory kept for allocateIn(..., useReserve). */
  readonly reserve: number;

  constructor(maxPages = MAX_PAGES) {
    this.maxPages = Math.min(MAX_PAGES, Math.max(maxPages, Math.ceil((LEAD + SCRATCH_BYTES) / PAGE) + 1));
    const usable = this.maxPages * PAGE - (LEAD + SCRATCH_BYTES);
    this.reserve = Math.min(RESERVE_BYTES, Math.floor(usable / 4 / 64) * 64);
    this.addMemory();
  }

  private addMemory(): WasmMemory {
    const m = new WasmMemory();
    this.memories.push(m);
    this.byBuffer.set(m.buffer, this.memories.length - 1);
    this.onNewMemory?.(this.memories.length - 1);
    return m;
  }

  allocate(bytes: number, label: string): Uint8Array {
    const size = align64(Math.max(bytes, 1));
    const capacity = this.maxPages * PAGE - (LEAD + SCRATCH_BYTES) - this.reserve;
    if (size > capacity) {
      throw new UserError('memory', `${label}: ${(bytes / 2 ** 30).toFixed(2)} GiB exceeds one WebAssembly memory (${(capacity / 2 ** 30).toFixed(2)} GiB)`);
    }
    // Reuse freed blocks anywhere; otherwise fill memories in order (next fit, never going back),
    // so a layer's tensors stay together and blocks/scales pairs are split only at a boundary.
    for (let i = 0; i < this.memories.length; i++) {
      const view = this.takeFree(i, size, bytes);
      if (view !== null) return view;
    }
    const last = this.allocateIn(this.memories.length - 1, size, bytes);
    if (last !== null) return last;
    try {
      this.addMemory();
    } catch {
      throw new UserError('memory', `cannot create another 4 GiB WebAssembly memory for ${label}`);
    }
    const view = this.allocateIn(this.memories.length - 1, size, bytes);
    if (view === null) throw new UserError('memory', `cannot allocate ${(bytes / 2 ** 20).toFixed(1)} MiB for ${label}`);
    return view;
  }

  /** A zeroed block from memory i's free list, or null. */
  private takeFree(i: number, size: number, bytes: number): Uint8Array | null {
    const m = this.memories[i]!;
    const fit = m.free.findIndex((b) => b.bytes >= size);
    if (fit < 0) return null;
    const b = m.free[fit]!;
    const ptr = b.ptr;
    if (b.bytes > size) { b.ptr += size; b.bytes -= size; } else m.free.splice(fit, 1);
    new Uint8Array(m.buffer, ptr, size).fill(0); // reused blocks must come back zeroed
    m.live += size;
    return new Uint8Array(m.buffer, ptr, bytes);
  }

  /**
   * Allocates in memory i (free list, then bump), or returns null when it has no room. Ordinary
   * allocations leave RESERVE_BYTES at the top of each memory; `useReserve` (copies that must sit
   * beside a tensor, such as MXFP4 scales next to their blocks) may take it.
   */
  allocateIn(i: number, size: number, bytes: number, useReserve = false): Uint8Array | null {
    const m = this.memories[i]!;
    const reused = this.takeFree(i, size, bytes);
    if (reused !== null) return reused;
    const limit = this.maxPages * PAGE - (useReserve ? 0 : this.reserve);
    if (m.top + size > limit) return null;
    try {
      m.ensure(m.top + size);
    } catch {
      throw new UserError('memory', `cannot grow WebAssembly memory ${i} to ${((m.top + size) / 2 ** 30).toFixed(2)} GiB (out of memory)`);
    }
    const ptr = m.top;
    m.top += size;
    this.byBuffer.set(m.buffer, i);
    m.live += size;
    return new Uint8Array(m.buffer, ptr, bytes);
  }

  free(buffer: Uint8Array): void {
    const loc = this.locate(buffer);
    if (loc === null) return;
    const m = this.memories[loc.memory]!;
    const size = align64(Math.max(buffer.byteLength, 1));
    m.live -= size;
    if (loc.ptr + size === m.top) {
      m.top = loc.ptr;
      return;
    }
    // Keep the list sorted and merge neighbours so KV caches of finished sequences are reused.
    const list = m.free;
    let i = 0;
    while (i < list.length && list[i]!.ptr < loc.ptr) i++;
    list.splice(i, 0, { ptr: loc.ptr, bytes: size });
    if (i + 1 < list.length && list[i]!.ptr + list[i]!.bytes === list[i + 1]!.ptr) {
      list[i]!.bytes += list[i + 1]!.bytes;
      list.splice(i + 1, 1);
    }
    if (i > 0 && list[i - 1]!.ptr + list[i - 1]!.bytes === list[i]!.ptr) {
      list[i - 1]!.bytes += list[i]!.bytes;
      list.splice(i, 1);
    }
  }

  /** Which memory a typed array lives in (null for ordinary JS memory). */
  locate(view: ArrayBufferView): Location | null {
    const memory = this.byBuffer.get(view.buffer);
    if (memory === undefined) return null;
    return { memory, ptr: view.byteOffset };
  }

  /** Bytes committed to tensors across all memories. */
  get liveBytes(): number {
    return this.memories.reduce((s, m) => s + m.live, 0);
  }
}
