// The kernel thread pool, sharing every WebAssembly memory with its workers. A dispatch writes the
// op, memory and arguments into a SharedArrayBuffer, bumps a generation counter and notifies; each
// worker computes its own slice (the kernels take part/parts) and the last one to finish wakes the
// caller. Two ways to wait. Inline: the main thread computes slice 0 itself and blocks in
// Atomics.wait for the workers' slices (the lowest latency: a decode step's ops take a few ms).
// Offloaded: the workers compute every slice while the main thread awaits Atomics.waitAsync, so
// its event loop serves I/O (a server's requests and streamed bytes) meanwhile; the wake-up goes
// through the event loop, which costs ~0.1-1 ms here. An offloading pool (`gptoss serve`'s) has
// `threads` workers and offloads ops of at least `offloadWork` multiply-adds (prefill chunks, the
// unembedding), runs smaller ones inline on `threads - 1` of them plus the main thread, and after
// an inline op lets the event loop run once when ~10 ms passed since it last did, so no I/O waits
// longer than about that. A non-offloading pool (the default) has `threads - 1` workers and always
// runs inline, as before offloading existed.
import { Worker, MessageChannel, type MessagePort } from 'node:worker_threads';

const GEN = 0, PENDING = 1, OP = 2, MEM = 3, NARGS = 4, FAILED = 5, OFFLOADED = 6;
const SYNC = -2, STOP = -1;
const MAX_ARGS = 32;
/** Busy-wait iterations before sleeping in Atomics.wait (a few tens of microseconds). */
const SPIN = 20000;
/** Default offloadWork: ~2^28 multiply-adds are tens of ms on a core, far above an offload's cost. */
export const OFFLOAD_WORK = 2 ** 28;
/** Longest the main thread computes inline ops back to back before letting its event loop run. */
const YIELD_MS = 10;

/** The kernels (exports of assembly/kernels.ts) that run split over the pool's threads. */
export const KERNEL_NAMES = ['f32_bf16w_matmul', 'f32_i8w_matmul', 'bf16_quantize_i8w', 'f32_mf4w_moe_matmul_swiglu', 'f32_mf4w_moe_matmul_scatter', 'f32_attention_sinks', 'mem_stream_read'] as const;
export type PoolKernel = (typeof KERNEL_NAMES)[number];

type KernelFn = (...args: number[]) => void;

/** Atomics.waitAsync (in Node since 16; TypeScript's lib has it from es2024 only). */
const waitAsync = (Atomics as unknown as {
  waitAsync(a: Int32Array, index: number, value: number): { async: false; value: string } | { async: true; value: Promise<string> };
}).waitAsync;

export class ThreadPool {
  readonly parts: number;
  /** Whether large ops go to the workers while the main thread awaits them (see the header). */
  readonly offload: boolean;
  private lastYield = performance.now();
  private readonly ctl: Int32Array;
  private readonly args: Float64Array;
  private readonly workers: Worker[] = [];
  private readonly ports: MessagePort[] = [];
  private knownMemories: number;
  private memoryCount: number;
  private closed = false;
  /**
   * Referenced only while the main thread awaits the workers: Atomics.waitAsync alone does not keep
   * the process alive, and the (idle, unreferenced) workers do not either.
   */
  private readonly awaiting = setInterval(() => undefined, 2 ** 31 - 1).unref();
  /** Resolves when every worker runs (or rejects with a worker's start-up error). */
  readonly ready: Promise<void>;

  constructor(
    module: WebAssembly.Module,
    memories: WebAssembly.Memory[],
    threads: number,
    private readonly instances: Record<string, KernelFn>[],
    offload = false,
    /** Ops of at least this many multiply-adds are offloaded (0: all of them). */
    private readonly offloadWork = OFFLOAD_WORK,
  ) {
    this.parts = Math.max(1, Math.floor(threads));
    this.offload = offload;
    this.ctl = new Int32Array(new SharedArrayBuffer(64));
    this.args = new Float64Array(new SharedArrayBuffer(MAX_ARGS * 8));
    this.knownMemories = memories.length;
    this.memoryCount = memories.length;
    const workerUrl = new URL('./worker.mjs', import.meta.url);
    for (let index = 0; index < (offload ? this.parts : this.parts - 1); index++) {
      const channel = new MessageChannel();
      const worker = new Worker(workerUrl, {
        execArgv: [],
        workerData: {
          module, control: this.ctl.buffer, args: this.args.buffer, names: KERNEL_NAMES,
          worker: index, parts: this.parts, port: channel.port2, memories, spin: SPIN,
        },
        transferList: [channel.port2],
      });
      this.workers.push(worker);
      this.ports.push(channel.port1);
    }
    this.ready = Promise.all(this.workers.map((w) => new Promise<void>((resolve, reject) => {
      w.once('online', () => resolve());
      w.once('error', reject);
    }))).then(() => {
      // Idle workers must not keep the process alive.
      for (const w of this.workers) w.unref();
    });
  }

  /** Hands a new memory to the workers (they instantiate the kernels on it before the next op). */
  addMemory(memory: WebAssembly.Memory): void {
    this.memoryCount++;
    for (const p of this.ports) p.postMessage(memory);
  }

  /**
   * Runs `kernel` on memory `mem` across all threads (`work`: its multiply-adds, Infinity when
   * unknown). Returns a promise when the caller must wait for it: an offloaded op (settles when
   * every slice is done), or an inline one after which the event loop gets its turn. Callers must
   * not start another run before it settles.
   */
  run(kernel: PoolKernel, mem: number, args: number[], work = Infinity): void | Promise<void> {
    // Below ~0.25 M multiply-adds a hand-off costs more than it saves.
    if (this.workers.length === 0 || work < 2 ** 18) {
      this.instances[mem]![kernel]!(...args, 0, 1);
      return this.yieldIfDue();
    }
    if (this.offload && work >= this.offloadWork) return this.runAwaited(kernel, mem, args);
    this.runBlocking(kernel, mem, args);
    return this.yieldIfDue();
  }

  /** `run` inline: the main thread computes slice 0 and returns when every slice is done. */
  runBlocking(kernel: PoolKernel, mem: number, args: number[]): void {
    if (this.workers.length === 0) {
      this.instances[mem]![kernel]!(...args, 0, 1);
      return;
    }
    this.syncMemories();
    this.start(kernel, mem, args, false);
    try {
      this.instances[mem]![kernel]!(...args, 0, this.parts);
    } finally {
      this.wait();
    }
    this.checkFailed(kernel);
  }

  /** After inline work: a turn of the event loop when YIELD_MS passed since the last one (offloading pools only). */
  private yieldIfDue(): Promise<void> | undefined {
    if (!this.offload) return undefined;
    const now = performance.now();
    if (now - this.lastYield < YIELD_MS) return undefined;
    this.lastYield = now;
    return new Promise<void>((resolve) => setImmediate(resolve));
  }

  private async runAwaited(kernel: PoolKernel, mem: number, args: number[]): Promise<void> {
    this.syncMemories();
    this.start(kernel, mem, args, true);
    this.awaiting.ref();
    try {
      await this.settled();
    } finally {
      this.awaiting.unref();
      this.lastYield = performance.now();
    }
    this.checkFailed(kernel);
  }

  /** Workers instantiate the kernels on memories added since the last run (rare: blocking is fine). */
  private syncMemories(): void {
    if (this.knownMemories < this.memoryCount) {
      this.ctl[NARGS] = this.memoryCount;
      this.signal(SYNC, 0);
      this.wait();
      this.knownMemories = this.memoryCount;
    }
  }

  private start(kernel: PoolKernel, mem: number, args: number[], offloaded: boolean): void {
    this.args.set(args);
    this.ctl[NARGS] = args.length;
    this.ctl[OFFLOADED] = offloaded ? 1 : 0;
    this.signal(KERNEL_NAMES.indexOf(kernel), mem);
  }

  private checkFailed(kernel: PoolKernel): void {
    const failed = Atomics.exchange(this.ctl, FAILED, 0);
    if (failed !== 0) throw new Error(`wasm kernel ${kernel} trapped in slice ${failed - 1}`);
  }

  private signal(op: number, mem: number): void {
    this.ctl[OP] = op;
    this.ctl[MEM] = mem;
    Atomics.store(this.ctl, PENDING, this.workers.length);
    Atomics.add(this.ctl, GEN, 1);
    Atomics.notify(this.ctl, GEN);
  }

  private wait(): void {
    let spins = 0;
    for (;;) {
      const pending = Atomics.load(this.ctl, PENDING);
      if (pending === 0) return;
      if (++spins > SPIN) Atomics.wait(this.ctl, PENDING, pending, 1000);
    }
  }

  /** Resolves when the pending count reaches zero, sleeping in the event loop rather than blocking it. */
  private async settled(): Promise<void> {
    for (;;) {
      const pending = Atomics.load(this.ctl, PENDING);
      if (pending === 0) return;
      const w = waitAsync(this.ctl, PENDING, pending);
      if (w.async) await w.value;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.awaiting);
    if (this.workers.length > 0) {
      this.signal(STOP, 0);
      const exited = this.workers.map((w) => new Promise<void>((resolve) => w.once('exit', () => resolve())));
      await Promise.race([Promise.all(exited), new Promise((r) => setTimeout(r, 2000))]);
      await Promise.all(this.workers.map((w) => w.terminate()));
    }
    for (const p of this.ports) p.close();
  }
}
