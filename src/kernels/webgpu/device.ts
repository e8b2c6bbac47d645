// Finding a WebGPU device under Node through Dawn's bindings (the optional `webgpu` package), and
// the buffer plumbing the backend's ops share: weight uploads, a pool of per-op buffers (inputs,
// outputs, uniform blocks, read-back), 2D dispatch grids. The GPU object that `create()` returns must stay referenced while the
// device is in use (Dawn crashes when Node collects it), so the handle keeps it.
import { UserError } from '../../errors.ts';

/** GPUBufferUsage and GPUMapMode flags (the spec's values; Node has no such globals). */
export const Usage = { MAP_READ: 1, COPY_SRC: 4, COPY_DST: 8, UNIFORM: 64, STORAGE: 128 } as const;
export const MAP_READ = 1;

/** The fix printed when no adapter is found. */
export const NO_ADAPTER_FIX =
  'install a Vulkan driver (a GPU vendor driver, or Mesa 25+ for the software llvmpipe adapter, e.g. Debian bookworm-backports mesa-vulkan-drivers) or use --backend wasm';

export interface GpuHandle {
  device: GPUDevice;
  adapter: GPUAdapter;
  /** One line naming the adapter (vendor, architecture, description). */
  adapterName: string;
  /** Largest storage binding the device allows (128 MiB on portable adapters). */
  maxBinding: number;
  /** Whether the device has shader-f16 (the f16 expert activations need it). */
  f16: boolean;
  /** The object `create()` returned, held so that Node does not collect it while the device lives. */
  readonly gpu: GPU;
}

/**
 * Opens the default adapter and a device with its largest storage limits. Throws UserError('usage')
 * naming the fix when the `webgpu` package or an adapter is missing.
 */
export async function openDevice(): Promise<GpuHandle> {
  let mod: { create(flags: string[]): GPU; globals: object };
  try {
    mod = (await import('webgpu')) as unknown as typeof mod;
  } catch {
    throw new UserError('usage', "--backend webgpu needs the optional npm package 'webgpu' (npm install webgpu@0.6.2), or use --backend wasm");
  }
  // The spec's globals (GPUBufferUsage and friends) for code that expects them.
  for (const [k, v] of Object.entries(mod.globals)) if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
  const gpu = mod.create([]);
  const adapter = await gpu.requestAdapter();
  if (adapter === null) throw new UserError('usage', `no WebGPU adapter found: ${NO_ADAPTER_FIX}`);
  const limits = adapter.limits;
  const f16 = adapter.features.has('shader-f16');
  const device = await adapter.requestDevice({
    requiredFeatures: f16 ? ['shader-f16'] : [],
    requiredLimits: {
      maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
      maxBufferSize: limits.maxBufferSize,
      maxStorageBuffersPerShaderStage: Math.min(limits.maxStorageBuffersPerShaderStage, 10),
    },
  });
  const adapterName = adapterLine(adapter.info);
  return { device, adapter, adapterName, maxBinding: limits.maxStorageBufferBindingSize, f16, gpu };
}

/**
 * The exception for a GPU error scope's error: running out of GPU memory, or a buffer past the
 * device's limits, is the user's to fix (a smaller context), in one line; anything else is a bug.
 */
export function gpuFailure(error: { readonly message: string; readonly constructor: { readonly name: string } }): Error {
  const first = error.message.split('\n')[0]!.trim();
  if (error.constructor.name === 'GPUOutOfMemoryError' || /out of memory/i.test(first)) {
    return new UserError('memory', `webgpu: out of GPU memory (${first}): use a smaller --context or --backend wasm`);
  }
  if (/exceeds the max(imum)? buffer size|maxBufferSize/i.test(first)) {
    return new UserError('memory', `webgpu: a buffer is larger than this GPU allows (${first}): use a smaller --context or --backend wasm`);
  }
  return new Error(`webgpu: ${error.message}`);
}

/** The exception for work on a lost device (a driver reset, or memory exhausted). */
export function deviceLost(reason: string): UserError {
  return new UserError('memory', `webgpu: the GPU device was lost (${reason}): start again, with a smaller --context or --backend wasm if it ran out of memory`);
}

/** What `--backend auto` needs to know of the default adapter, or why there is none. */
export type AdapterProbe = { name: string; software: boolean } | { error: string };

/** The fields of GPUAdapterInfo the choice reads (Dawn fills vendor, architecture, device, description). */
export interface AdapterInfoLike {
  vendor?: string;
  architecture?: string;
  device?: string;
  description?: string;
  isFallbackAdapter?: boolean;
}

/** Software rasterisers that Vulkan, D3D12 and Metal loaders expose as adapters. */
const SOFTWARE_ADAPTER = /llvmpipe|lavapipe|softpipe|swiftshader|warp|microsoft basic render|software/i;

/** Whether `info` names a CPU-emulated adapter (slower than the wasm backend for this work). */
export function isSoftwareAdapter(info: AdapterInfoLike): boolean {
  if (info.isFallbackAdapter === true) return true;
  return [info.vendor, info.architecture, info.device, info.description].some((s) => s !== undefined && SOFTWARE_ADAPTER.test(s));
}

/** One line naming an adapter (vendor, architecture, description). */
export function adapterLine(info: AdapterInfoLike): string {
  return [info.vendor, info.architecture, info.description].filter((s) => s !== undefined && s !== '').join(' ') || 'unknown adapter';
}

/** `--backend auto`: webgpu on a real GPU adapter, else wasm; the reason is for the start-up line. */
export function chooseAutoBackend(probe: AdapterProbe): { backend: 'webgpu' | 'wasm'; reason: string } {
  if ('error' in probe) return { backend: 'wasm', reason: probe.error };
  if (probe.software) return { backend: 'wasm', reason: `the only GPU adapter is a software one (${probe.name})` };
  return { backend: 'webgpu', reason: probe.name };
}

/** Looks at the default adapter without opening a device. */
export async function probeAdapter(): Promise<AdapterProbe> {
  let mod: { create(flags: string[]): GPU };
  try {
    mod = (await import('webgpu')) as unknown as typeof mod;
  } catch {
    return { error: "the optional npm package 'webgpu' is not installed" };
  }
  const gpu = mod.create([]);
  alive.push(gpu); // see the header: the create() result must outlive what it made
  const adapter = await gpu.requestAdapter();
  if (adapter === null) return { error: 'no WebGPU adapter found' };
  const info = adapter.info as GPUAdapterInfo & AdapterInfoLike;
  return { name: adapterLine(info), software: isSoftwareAdapter({ ...info, isFallbackAdapter: info.isFallbackAdapter ?? (adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter }) };
}

/** Whether a WebGPU adapter can be opened here (for tests that skip without one); probed once per process. */
export function webGpuAvailable(): Promise<{ ok: true } | { ok: false; reason: string }> {
  probe ??= openDevice().then(
    (h) => {
      alive.push(h.gpu); // see the header: the create() result must outlive its devices
      h.device.destroy();
      return { ok: true as const };
    },
    (e: unknown) => ({ ok: false as const, reason: e instanceof Error ? e.message : String(e) }),
  );
  return probe;
}
let probe: Promise<{ ok: true } | { ok: false; reason: string }> | undefined;
const alive: GPU[] = [];

/** A buffer holding `data` (padded to 4 bytes), usable as a storage binding. */
export function upload(device: GPUDevice, data: ArrayBufferView, extraUsage = 0): GPUBuffer {
  const bytes = Math.max(4, Math.ceil(data.byteLength / 4) * 4);
  const buffer = device.createBuffer({ size: bytes, usage: Usage.STORAGE | Usage.COPY_DST | extraUsage, mappedAtCreation: true });
  new Uint8Array(buffer.getMappedRange()).set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  buffer.unmap();
  return buffer;
}

export const f32 = (v: number): { f32: number } => ({ f32: v });

/** A dispatch grid of at least `n` workgroups, no dimension over 65535. */
export function grid(n: number): [number, number] {
  const x = Math.max(1, Math.min(n, 65535));
  return [x, Math.max(1, Math.ceil(n / x))];
}

/** Uniform blocks kept by content: the blocks of one step recur in every layer, so they go up once. */
const UNIFORM_CACHE = 1024;

/**
 * Buffers for ops' temporaries, uniforms and read-back, reused (sizes rounded up to powers of two
 * so that they recur): ops take what they need and `release` returns it all once their work was
 * submitted and their read-backs unmapped; the queue runs in order, so a buffer rewritten later is
 * rewritten after the earlier work. Counts the bytes it uploads.
 */
export class BufferPool {
  private readonly free = new Map<string, GPUBuffer[]>();
  private readonly taken: [string, GPUBuffer][] = [];
  private readonly uniformBlocks = new Map<string, GPUBuffer>();
  /** Uniform blocks dropped from the cache, destroyed at the next release (queued work may use them). */
  private readonly retired: GPUBuffer[] = [];
  /** Bytes written to the GPU through `input` and `uniforms`. */
  uploaded = 0;
  /** `maxBinding`: the largest storage binding; a buffer rounded past it would not bind whole. */
  constructor(private readonly device: GPUDevice, private readonly maxBinding: number) {}

  private take(bytes: number, usage: number): GPUBuffer {
    const rounded = Math.max(256, 2 ** Math.ceil(Math.log2(Math.max(bytes, 1))));
    const size = rounded <= this.maxBinding ? rounded : Math.ceil(bytes / 16) * 16;
    const key = `${usage}:${size}`;
    const buffer = this.free.get(key)?.pop() ?? this.device.createBuffer({ size, usage });
    this.taken.push([key, buffer]);
    return buffer;
  }

  /** A storage buffer holding `data`. */
  input(data: ArrayBufferView): GPUBuffer {
    const buffer = this.take(data.byteLength, Usage.STORAGE | Usage.COPY_DST | Usage.COPY_SRC);
    this.uploaded += data.byteLength;
    if (data.byteLength % 4 === 0) this.device.queue.writeBuffer(buffer, 0, data.buffer, data.byteOffset, data.byteLength);
    else {
      const padded = new Uint8Array(Math.ceil(data.byteLength / 4) * 4);
      padded.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      this.device.queue.writeBuffer(buffer, 0, padded);
    }
    return buffer;
  }

  /** A storage buffer for results (its contents are undefined until a kernel writes them). */
  output(bytes: number): GPUBuffer {
    return this.take(bytes, Usage.STORAGE | Usage.COPY_SRC | Usage.COPY_DST);
  }

  /**
   * A uniform block of 32-bit fields: integers as given, `f32(v)` entries as floats. Blocks are
   * never rewritten, only dropped (least recently used first) when many distinct ones were made.
   */
  uniforms(fields: (number | { f32: number })[]): GPUBuffer {
    const words = new Uint32Array(Math.ceil(fields.length / 4) * 4);
    const floats = new Float32Array(words.buffer);
    fields.forEach((v, i) => {
      if (typeof v === 'number') words[i] = v >>> 0;
      else floats[i] = v.f32;
    });
    const key = words.join(',');
    let buffer = this.uniformBlocks.get(key);
    if (buffer !== undefined) this.uniformBlocks.delete(key);
    else {
      buffer = this.device.createBuffer({ size: words.byteLength, usage: Usage.UNIFORM | Usage.COPY_DST });
      this.device.queue.writeBuffer(buffer, 0, words);
      this.uploaded += words.byteLength;
      if (this.uniformBlocks.size >= UNIFORM_CACHE) {
        const [oldest, old] = this.uniformBlocks.entries().next().value!;
        this.uniformBlocks.delete(oldest);
        this.retired.push(old);
      }
    }
    this.uniformBlocks.set(key, buffer);
    return buffer;
  }

  /** A buffer to copy results into and map for reading. */
  staging(bytes: number): GPUBuffer {
    return this.take(bytes, Usage.MAP_READ | Usage.COPY_DST);
  }

  /** Returns every buffer taken since the last release (call it once no queued work uses them). */
  release(): void {
    // Work already submitted keeps a destroyed buffer alive until it has run.
    for (const b of this.retired) b.destroy();
    this.retired.length = 0;
    for (const [key, buffer] of this.taken) {
      let list = this.free.get(key);
      if (list === undefined) this.free.set(key, (list = []));
      list.push(buffer);
    }
    this.taken.length = 0;
  }
}
