// The f32 WebAssembly SIMD twins of the training matrix products (assembly/train-kernels.ts,
// built to train-kernels.wasm), behind ops.ts's LinearKernels: operands arrive as float64, are
// rounded to f32 into the module's memory, multiplied there, and the results widened back (the
// backward's added into the caller's float64 gradients, so accumulation across a batch stays
// float64). One module instance and one growing memory per thread, made on first use.
import { readFileSync } from 'node:fs';
import type { LinearKernels } from '../ops.ts';

interface TrainExports {
  f32_matmul(x: number, w: number, bias: number, out: number, tokens: number, rows: number, cols: number): void;
  f32_matmul_grad_input(dy: number, w: number, dx: number, tokens: number, rows: number, cols: number): void;
  f32_matmul_grad_weight(dy: number, x: number, dw: number, tokens: number, rows: number, cols: number): void;
}

const PAGE = 65536;
/** Bytes below this are the module's own (its stack and static data); operands start here. */
const BASE = 4096;

class WasmLinear implements LinearKernels {
  readonly precision = 'f32' as const;
  private readonly memory = new WebAssembly.Memory({ initial: 16, maximum: 65536 });
  private readonly k: TrainExports;
  private heap: Float32Array;

  constructor(module: WebAssembly.Module) {
    this.k = new WebAssembly.Instance(module, { env: { memory: this.memory } }).exports as unknown as TrainExports;
    this.heap = new Float32Array(this.memory.buffer);
  }

  /** Byte offsets of consecutive f32 regions of the given lengths (16-byte aligned), memory grown to fit. */
  private layout(...lengths: number[]): number[] {
    const offsets: number[] = [];
    let next = BASE;
    for (const n of lengths) {
      offsets.push(next);
      next += Math.ceil((n * 4) / 16) * 16;
    }
    const have = this.memory.buffer.byteLength;
    if (next > have) {
      this.memory.grow(Math.ceil((next - have) / PAGE));
      this.heap = new Float32Array(this.memory.buffer);
    }
    return offsets;
  }

  private put(at: number, values: Float64Array, n: number): void {
    this.heap.set(values.length === n ? values : values.subarray(0, n), at >>> 2);
  }

  forward(x: Float64Array, tokens: number, w: Float64Array, rows: number, cols: number, bias: Float64Array | null): Float64Array {
    const [xp, wp, bp, op] = this.layout(tokens * cols, rows * cols, bias === null ? 0 : rows, tokens * rows) as [number, number, number, number];
    this.put(xp, x, tokens * cols);
    this.put(wp, w, rows * cols);
    if (bias !== null) this.put(bp, bias, rows);
    this.k.f32_matmul(xp, wp, bias === null ? 0 : bp, op, tokens, rows, cols);
    const out = new Float64Array(tokens * rows);
    out.set(this.heap.subarray(op >>> 2, (op >>> 2) + tokens * rows));
    return out;
  }

  backward(
    dy: Float64Array, x: Float64Array, tokens: number, w: Float64Array, rows: number, cols: number,
    dx: Float64Array | null, dw: Float64Array | null, dbias: Float64Array | null,
  ): void {
    if (dbias !== null) {
      for (let t = 0; t < tokens; t++) for (let r = 0; r < rows; r++) dbias[r] += dy[t * rows + r]!;
    }
    if (dx === null && dw === null) return;
    const [dyp, xp, wp, dxp, dwp] = this.layout(
      tokens * rows, dw === null ? 0 : tokens * cols, dx === null ? 0 : rows * cols, dx === null ? 0 : tokens * cols, dw === null ? 0 : rows * cols,
    ) as [number, number, number, number, number];
    this.put(dyp, dy, tokens * rows);
    if (dx !== null) {
      this.put(wp, w, rows * cols);
      this.k.f32_matmul_grad_input(dyp, wp, dxp, tokens, rows, cols);
      addInto(dx, this.heap, dxp >>> 2, tokens * cols);
    }
    if (dw !== null) {
      this.put(xp, x, tokens * cols);
      this.k.f32_matmul_grad_weight(dyp, xp, dwp, tokens, rows, cols);
      addInto(dw, this.heap, dwp >>> 2, rows * cols);
    }
  }
}

function addInto(into: Float64Array, heap: Float32Array, from: number, n: number): void {
  for (let i = 0; i < n; i++) into[i] += heap[from + i]!;
}

let kernels: WasmLinear | undefined;

/** The f32 WebAssembly matrix products (compiled and instantiated on first use). */
export function wasmLinear(): LinearKernels {
  if (kernels === undefined) {
    const bytes = readFileSync(new URL('./train-kernels.wasm', import.meta.url));
    kernels = new WasmLinear(new WebAssembly.Module(bytes));
  }
  return kernels;
}
