// Where weights, KV caches and activations live. A backend supplies a TensorStore so it can place
// buffers in its own (possibly several) WebAssembly memories and compute on them without copies;
// HeapStore is the plain one the reference backend and the checkpoint tools use.
import { UserError } from '../errors.ts';

/** Where weights, KV caches and activations live. The reference store uses plain ArrayBuffers. */
export interface TensorStore {
  /**
   * A zeroed byte buffer of `bytes` bytes, its byteOffset a multiple of 64 (so f32/u16 views and
   * SIMD loads are aligned). It stays valid (not detached, not moved) until `free`. `label` (a tensor
   * name such as "block.3.attn.qkv.weight" or "kv.block.3.keys") is for error messages and profiles.
   * Throws UserError('memory') when the store cannot hold it.
   */
  allocate(bytes: number, label: string): Uint8Array;
  /** Returns a buffer obtained from `allocate` (KV caches of released sequences, scratch). */
  free(buffer: Uint8Array): void;
}

/** Plain ArrayBuffers; the garbage collector frees them. */
export class HeapStore implements TensorStore {
  allocate(bytes: number, label: string): Uint8Array {
    try {
      return new Uint8Array(bytes);
    } catch {
      throw new UserError('memory', `cannot allocate ${(bytes / 2 ** 20).toFixed(1)} MiB for ${label}`);
    }
  }

  free(_buffer: Uint8Array): void {
    // Nothing to do: the buffer is collected once unreferenced.
  }
}

