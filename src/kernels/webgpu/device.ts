// Finding a WebGPU device under Node through Dawn's bindings (the optional `webgpu` package), and
// the buffer plumbing the backend's ops share: uploads, uniform blocks, 2D dispatch grids and
// reading results back. The GPU object that `create()` returns must stay referenced while the
// device is in use (Dawn crashes when Node collects it), so the handle keeps it.
import { UserError } from '../../errors.ts';

/** GPUBufferUsage and GPUMapMode flags (the spec's values; Node has no such globals). */
export const Usage = { MAP_READ: 1, COPY_SRC: 4, COPY_DST: 8, UNIFORM: 64, STORAGE: 128 } as const;
const MAP_READ = 1;

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
  const device = await adapter.requestDevice({
    requiredLimits: {
      maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
      maxBufferSize: limits.maxBufferSize,
      maxStorageBuffersPerShaderStage: Math.min(limits.maxStorageBuffersPerShaderStage, 10),
    },
  });
  const info = adapter.info;
  const adapterName = [info.vendor, info.architecture, info.description].filter((s) => s !== undefined && s !== '').join(' ') || 'unknown adapter';
  return { device, adapter, adapterName, maxBinding: limits.maxStorageBufferBindingSize, gpu };
}

/** Whether a WebGPU adapter can be opened here (for tests that skip without one). */
export async function webGpuAvailable(): Promise<{ ok: true } | { ok: false; reason: string }> {
  try {
    const h = await openDevice();
    h.device.destroy();
    return { ok: true };
  } catch (e) {
    return { ok: false, reason: e instanceof Error ? e.message : String(e) };
  }
}

/** A buffer holding `data` (padded to 4 bytes), usable as a storage binding. */
export function upload(device: GPUDevice, data: ArrayBufferView, extraUsage = 0): GPUBuffer {
  const bytes = Math.max(4, Math.ceil(data.byteLength / 4) * 4);
  const buffer = device.createBuffer({ size: bytes, usage: Usage.STORAGE | Usage.COPY_DST | extraUsage, mappedAtCreation: true });
  new Uint8Array(buffer.getMappedRange()).set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  buffer.unmap();
  return buffer;
}

/** An uninitialised storage buffer of at least `bytes` (zeroed by WebGPU). */
export function storage(device: GPUDevice, bytes: number): GPUBuffer {
  return device.createBuffer({ size: Math.max(4, Math.ceil(bytes / 4) * 4), usage: Usage.STORAGE | Usage.COPY_SRC | Usage.COPY_DST });
}

/** A uniform block of 32-bit fields: integers as given, entries wrapped in `f32()` as floats. */
export function uniforms(device: GPUDevice, fields: (number | { f32: number })[]): GPUBuffer {
  const count = Math.ceil(fields.length / 4) * 4;
  const words = new Uint32Array(count);
  const floats = new Float32Array(words.buffer);
  fields.forEach((v, i) => {
    if (typeof v === 'number') words[i] = v >>> 0;
    else floats[i] = v.f32;
  });
  const buffer = device.createBuffer({ size: words.byteLength, usage: Usage.UNIFORM | Usage.COPY_DST, mappedAtCreation: true });
  new Uint32Array(buffer.getMappedRange()).set(words);
  buffer.unmap();
  return buffer;
}

export const f32 = (v: number): { f32: number } => ({ f32: v });

/** A dispatch grid of at least `n` workgroups, no dimension over 65535. */
export function grid(n: number): [number, number] {
  const x = Math.max(1, Math.min(n, 65535));
  return [x, Math.max(1, Math.ceil(n / x))];
}

/** Copies `floats` f32 values of `src` into `dst` (at `offset`) after the queued work finished. */
export async function readBack(device: GPUDevice, encoder: GPUCommandEncoder, src: GPUBuffer, dst: Float32Array, offset: number, floats: number): Promise<void> {
  const bytes = Math.max(4, floats * 4);
  const staging = device.createBuffer({ size: bytes, usage: Usage.MAP_READ | Usage.COPY_DST });
  encoder.copyBufferToBuffer(src, 0, staging, 0, bytes);
  device.queue.submit([encoder.finish()]);
  await staging.mapAsync(MAP_READ);
  dst.set(new Float32Array(staging.getMappedRange(), 0, floats), offset);
  staging.unmap();
  staging.destroy();
}
