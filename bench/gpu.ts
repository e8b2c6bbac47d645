// `npm run bench:gpu`: the prepared run for a machine with a real GPU. It synthesises the 20b shape
// (random weights), converts it to GGUF, measures `gptoss bench --backend webgpu` (prefill and
// decode), node-llama-cpp's CUDA build on the same GGUF, and the GPU's read bandwidth (a WGSL
// streaming kernel, for the decode ceiling), then writes the `bench:gpu` section of
// docs/BENCHMARKS.md. The machine may have no network: node-llama-cpp's CUDA build is looked for,
// pre-installed, in --peer-dir and never installed here (docs/BENCHMARKS.md says how).
//
// Options (after `npm run bench:gpu --`):
//   --shape S            20b (default) or tiny (the plumbing test)   --layers N   default 24
//   --prompt-tokens N    default 512          --gen-tokens N   default 64
//   --peer-dir DIR       node-llama-cpp and @node-llama-cpp/linux-x64-cuda (default .cache/peer-cuda)
//   --skip-peer          webgpu only          --keep           keep the checkpoint and GGUF
//   --bandwidth-mib N    probe buffer (default 1024)   --bandwidth-gb N   bytes streamed (default 64)
//   --work-dir DIR       default .cache/bench-gpu     --out FILE   default docs/BENCHMARKS.md
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { BenchResult } from '../src/cli/bench.ts';
import { isSoftwareAdapter, openDevice, Usage, type AdapterInfoLike } from '../src/kernels/webgpu/device.ts';
import { writeSections } from './document.ts';
import { PEER_VERSION, type PeerResult } from './peer-llama.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(ROOT, 'bin/gptoss.js');
const PEER_SCRIPT = join(ROOT, 'bench/peer-llama.ts');

export interface GpuBenchOptions {
  shape: '20b' | 'tiny';
  layers: number;
  promptTokens: number;
  genTokens: number;
  peerDir: string;
  skipPeer: boolean;
  keep: boolean;
  bandwidthBytes: number;
  bandwidthTotal: number;
  workDir: string;
  out: string;
}

/** The options from argv, or an Error whose message is the one line to print (exit 2). */
export function parseGpuBenchArgs(argv: string[]): GpuBenchOptions {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        shape: { type: 'string' }, layers: { type: 'string' }, 'prompt-tokens': { type: 'string' }, 'gen-tokens': { type: 'string' },
        'peer-dir': { type: 'string' }, 'skip-peer': { type: 'boolean' }, keep: { type: 'boolean' },
        'bandwidth-mib': { type: 'string' }, 'bandwidth-gb': { type: 'string' }, 'work-dir': { type: 'string' }, out: { type: 'string' },
      },
    }));
  } catch (e) {
    throw new Error(`bench:gpu: ${(e as Error).message.split('\n')[0]}`);
  }
  const num = (name: string, d: number, integer: boolean): number => {
    const raw = values[name];
    if (raw === undefined) return d;
    const n = Number(raw);
    if (typeof raw !== 'string' || !Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
      throw new Error(`bench:gpu: --${name} must be a positive ${integer ? 'integer' : 'number'}, not "${String(raw)}"`);
    }
    return n;
  };
  const shape = values.shape ?? '20b';
  if (shape !== '20b' && shape !== 'tiny') throw new Error(`bench:gpu: --shape must be 20b or tiny, not "${String(shape)}"`);
  const str = (name: string, d: string): string => resolve(ROOT, typeof values[name] === 'string' ? (values[name] as string) : d);
  return {
    shape,
    layers: num('layers', shape === '20b' ? 24 : 2, true),
    promptTokens: num('prompt-tokens', 512, true),
    genTokens: num('gen-tokens', 64, true),
    peerDir: str('peer-dir', '.cache/peer-cuda'),
    skipPeer: values['skip-peer'] === true,
    keep: values.keep === true,
    bandwidthBytes: Math.floor(num('bandwidth-mib', 1024, false) * 2 ** 20 / 16) * 16,
    bandwidthTotal: num('bandwidth-gb', 64, false) * 1e9,
    workDir: str('work-dir', '.cache/bench-gpu'),
    out: str('out', 'docs/BENCHMARKS.md'),
  };
}

const log = (msg: string): void => console.error(`[bench:gpu ${new Date().toISOString().slice(11, 19)}] ${msg}`);

/** The peer's entry point in `peerDir`, or the one-line reason it cannot run there. */
export function findCudaPeer(peerDir: string): { ok: true } | { ok: false; reason: string } {
  const modules = join(peerDir, 'node_modules');
  if (!existsSync(join(modules, 'node-llama-cpp/dist/index.js'))) return { ok: false, reason: `node-llama-cpp is not installed in ${peerDir} (see docs/BENCHMARKS.md, "GPU run"), or pass --skip-peer` };
  if (!existsSync(join(modules, '@node-llama-cpp/linux-x64-cuda/package.json'))) return { ok: false, reason: `@node-llama-cpp/linux-x64-cuda is not installed in ${peerDir} (see docs/BENCHMARKS.md, "GPU run"), or pass --skip-peer` };
  return { ok: true };
}

/** GPU memory in use on device 0 in MiB (nvidia-smi), or null without one. */
function gpuMemoryMiB(): Promise<number | null> {
  return new Promise((done) => {
    const p = spawn('nvidia-smi', ['--query-gpu=memory.used', '--format=csv,noheader,nounits', '--id=0'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.on('error', () => done(null));
    p.on('close', (code) => done(code === 0 && /^\d+/.test(out.trim()) ? Number.parseInt(out.trim(), 10) : null));
  });
}

/**
 * Runs a child process to completion, sampling GPU memory while it runs; returns its last stdout
 * line and the peak GPU memory above what was in use before it started (null without nvidia-smi).
 */
async function runMeasured(what: string, args: string[]): Promise<{ line: string; gpuPeakBytes: number | null }> {
  const before = await gpuMemoryMiB();
  let peak = before;
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '', stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((done) => child.on('close', (code) => done(code)));
  let running = true;
  const sampler = (async () => {
    while (running && before !== null) {
      const now = await gpuMemoryMiB();
      if (now !== null && (peak === null || now > peak)) peak = now;
      await new Promise((r) => setTimeout(r, 250));
    }
  })();
  const code = await exited;
  running = false;
  await sampler;
  const line = stdout.trim().split('\n').pop() ?? '';
  if (code !== 0 || !line.startsWith('{')) throw new Error(`${what} failed (exit ${code}): ${stderr.trim().split('\n').slice(-2).join(' | ')}`);
  return { line, gpuPeakBytes: before === null || peak === null ? null : (peak - before) * 2 ** 20 };
}

function cli(args: string[]): void {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 * 2 ** 20 });
  if (r.status !== 0) throw new Error(`gptoss ${args.join(' ')} failed: ${r.stderr.trim().split('\n').slice(-2).join(' | ')}`);
}

// Each invocation streams 16-byte words with a grid stride (neighbours read neighbours: coalesced)
// and folds them into one word it writes only when the fold hits a value the probe never holds, so
// the reads cannot be optimised away and almost nothing is written.
const READ_KERNEL = `
@group(0) @binding(0) var<storage, read> src: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read_write> sink: array<u32>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let stride = groups.x * 256u;
  var acc = vec4<u32>(0u);
  for (var i = gid.x; i < arrayLength(&src); i += stride) { acc ^= src[i]; }
  let folded = acc.x ^ acc.y ^ acc.z ^ acc.w;
  if (folded == 0xdeadbeefu) { sink[0] = folded; }
}`;

/** The GPU's read bandwidth in bytes/s: `total` bytes streamed through a `bytes` buffer, after a warm-up pass. */
export async function measureGpuBandwidth(bytes: number, total: number): Promise<{ bytesPerSecond: number; adapter: string; probeBytes: number; software: boolean }> {
  const gpu = await openDevice();
  try {
    const software = isSoftwareAdapter(gpu.adapter.info as GPUAdapterInfo & AdapterInfoLike);
    const { device } = gpu;
    const size = Math.max(16, Math.min(bytes, Math.floor(gpu.maxBinding / 16) * 16));
    const src = device.createBuffer({ size, usage: Usage.STORAGE | Usage.COPY_DST });
    // A non-zero pattern so the fold is not constant.
    const chunk = new Uint32Array(Math.min(size, 2 ** 24) / 4).map((_, i) => Math.imul(i, 2654435761) >>> 0);
    for (let at = 0; at < size; at += chunk.byteLength) device.queue.writeBuffer(src, at, chunk, 0, Math.min(chunk.length, (size - at) / 4));
    const sink = device.createBuffer({ size: 16, usage: Usage.STORAGE });
    const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module: device.createShaderModule({ code: READ_KERNEL }), entryPoint: 'main' } });
    const group = device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: src } }, { binding: 1, resource: { buffer: sink } }] });
    const workgroups = Math.min(65535, Math.max(1, Math.ceil(size / 16 / 256 / 16)));
    const pass = async (reps: number): Promise<number> => {
      const encoder = device.createCommandEncoder();
      for (let r = 0; r < reps; r++) {
        const p = encoder.beginComputePass();
        p.setPipeline(pipeline);
        p.setBindGroup(0, group);
        p.dispatchWorkgroups(workgroups);
        p.end();
      }
      const t0 = performance.now();
      device.queue.submit([encoder.finish()]);
      await device.queue.onSubmittedWorkDone();
      return (performance.now() - t0) / 1000;
    };
    await pass(1);
    const reps = Math.max(1, Math.ceil(total / size));
    const seconds = await pass(reps);
    src.destroy();
    sink.destroy();
    return { bytesPerSecond: (reps * size) / seconds, adapter: gpu.adapterName, probeBytes: size, software };
  } finally {
    gpu.device.destroy();
    void gpu.gpu; // keeps the create() result reachable until the device is gone (device.ts)
  }
}

/** KV cache bytes for one sequence of `context` tokens: K and V for every layer. */
export function kvCacheBytes(config: { num_hidden_layers: number; num_key_value_heads: number; head_dim: number }, context: number, elementBytes: number): number {
  return 2 * config.num_hidden_layers * config.num_key_value_heads * config.head_dim * context * elementBytes;
}

export interface GpuBenchFigures {
  options: GpuBenchOptions;
  ours: BenchResult & { gpuPeakBytes: number | null };
  peer: (PeerResult & { gpuPeakBytes: number | null }) | { skipped: string };
  bandwidth: { bytesPerSecond: number; adapter: string; probeBytes: number; software: boolean };
  config: { num_hidden_layers: number; num_key_value_heads: number; head_dim: number };
  stageSeconds: Record<string, number>;
}

/** The markdown of the `bench:gpu` section. */
export function gpuSection(f: GpuBenchFigures): string {
  const o = f.ours, f2 = (x: number): string => x.toFixed(2), gb = (b: number): string => (b / 1e9).toFixed(2);
  const ceiling = f.bandwidth.bytesPerSecond / o.bytes_per_token;
  const gpuMem = (b: number | null): string => (b === null ? 'n/a (no nvidia-smi)' : `${gb(b)} GB`);
  const kvBytes = o.kv_cache === 'f32' ? 4 : 2;
  const lines = [
    `## GPU: webgpu vs node-llama-cpp (CUDA), ${f.options.shape} shape, ${f.options.layers} layers, random weights`,
    '',
    ...(f.bandwidth.software ? ['', '**Software adapter: these figures are a plumbing check and say nothing of GPU speed.**', ''] : []),
    `- Date: ${new Date().toISOString()}; adapter: ${o.adapter ?? f.bandwidth.adapter}; ${availableParallelism()} CPU cores; Node ${process.version}`,
    `- Synthetic checkpoint from \`gptoss synth --shape ${f.options.shape} --layers ${f.options.layers}\`, GGUF from \`gptoss convert --to gguf\`; prompt ${o.prompt_tokens} pseudo-random tokens, then ${o.gen_tokens} greedy decode steps; each engine alone in its own process.`,
    `- Read bandwidth (WGSL streaming kernel, ${gb(f.bandwidth.probeBytes)} GB buffer): ${f2(f.bandwidth.bytesPerSecond / 1e9)} GB/s; decode ceiling ${f2(ceiling)} tok/s (${gb(o.bytes_per_token)} GB of weights read per token).`,
    `- Stage times (s): ${Object.entries(f.stageSeconds).map(([k, v]) => `${k} ${v.toFixed(0)}`).join(', ')}.`,
    '',
    '| engine | load s | prefill tok/s | TTFT s | decode tok/s | decode / ceiling | GPU memory (peak, nvidia-smi) |',
    '|---|---:|---:|---:|---:|---:|---:|',
    `| gptoss webgpu (${o.expert_activations}, KV ${o.kv_cache}) | ${f2(o.load_s)} | ${f2(o.prefill_tok_s)} | ${f2(o.ttft_s)} | ${f2(o.decode_tok_s)} | ${f2(o.decode_tok_s / ceiling)} | ${gpuMem(o.gpuPeakBytes)} |`,
  ];
  const p = f.peer;
  if ('skipped' in p) {
    lines.push('', `node-llama-cpp not measured: ${p.skipped}.`);
  } else {
    lines.push(`| ${p.engine} | ${f2(p.load_s)} | ${f2(p.prefill_tok_s)} | ${f2(p.ttft_s)} | ${f2(p.decode_tok_s)} | ${f2(p.decode_tok_s / ceiling)} | ${gpuMem(p.gpuPeakBytes)} |`);
    const decodeRatio = o.decode_tok_s / p.decode_tok_s;
    lines.push('', `Ratios (webgpu / CUDA): prefill ${f2(o.prefill_tok_s / p.prefill_tok_s)}x, decode ${f2(decodeRatio)}x (target >= 0.5x: ${decodeRatio >= 0.5 ? 'met' : 'not met'}).`);
  }
  lines.push(
    '',
    `GPU memory of gptoss webgpu: ${gb(o.gpu_weight_bytes ?? 0)} GB of weights uploaded (the embedding table stays on the host); ` +
    `KV cache (${o.kv_cache}, K and V for every layer, one sequence) ${gb(kvCacheBytes(f.config, 8192, kvBytes))} GB at 8k context, ${gb(kvCacheBytes(f.config, 131072, kvBytes))} GB at 128k.`,
    '',
  );
  return lines.join('\n');
}

async function main(): Promise<void> {
  const options = parseGpuBenchArgs(process.argv.slice(2));
  const peerFound = options.skipPeer ? { ok: false as const, reason: 'skipped (--skip-peer)' } : findCudaPeer(options.peerDir);
  if (!options.skipPeer && !peerFound.ok) throw new Error(`bench:gpu: ${peerFound.reason}`);
  const stageSeconds: Record<string, number> = {};
  const stage = async <T,>(name: string, run: () => Promise<T> | T): Promise<T> => {
    log(name);
    const t0 = performance.now();
    const r = await run();
    stageSeconds[name] = (performance.now() - t0) / 1000;
    return r;
  };
  // Before the long steps: a 20b run on a software adapter would take hours and say nothing of GPU speed.
  const probe = await openDevice();
  const software = isSoftwareAdapter(probe.adapter.info as GPUAdapterInfo & AdapterInfoLike);
  probe.device.destroy();
  if (software && options.shape === '20b') {
    throw new Error(`bench:gpu: the only WebGPU adapter is a software one (${probe.adapterName}): install the GPU's Vulkan driver (NVIDIA: the driver's Vulkan ICD, nvidia_icd.json) or use --shape tiny for a plumbing check`);
  }
  const dir = join(options.workDir, `${options.shape}-l${options.layers}`);
  const gguf = `${dir}.gguf`;
  mkdirSync(options.workDir, { recursive: true });
  if (!existsSync(join(dir, 'config.json'))) {
    await stage('synth', () => {
      rmSync(dir, { recursive: true, force: true });
      cli(['synth', '--shape', options.shape, '--layers', String(options.layers), '--out', dir, '--quiet']);
    });
  }
  if (!options.skipPeer && !existsSync(gguf)) await stage('convert', () => cli(['convert', '--to', 'gguf', '--model', dir, '--out', gguf]));
  const bandwidth = await stage('bandwidth', () => measureGpuBandwidth(options.bandwidthBytes, options.bandwidthTotal));
  log(`adapter ${bandwidth.adapter}: ${(bandwidth.bytesPerSecond / 1e9).toFixed(1)} GB/s`);
  const ours = await stage('webgpu', async () => {
    const r = await runMeasured('gptoss bench --backend webgpu', [CLI, 'bench', '--model', dir, '--backend', 'webgpu', '--json',
      '--prompt-tokens', String(options.promptTokens), '--gen-tokens', String(options.genTokens)]);
    return { ...(JSON.parse(r.line) as BenchResult), gpuPeakBytes: r.gpuPeakBytes };
  });
  const peer = options.skipPeer
    ? { skipped: 'skipped (--skip-peer)' }
    : await stage('cuda', async () => {
      const r = await runMeasured('node-llama-cpp (CUDA)', ['--import', 'tsx', PEER_SCRIPT, '--gguf', gguf, '--prompt-tokens', String(options.promptTokens),
        '--gen-tokens', String(options.genTokens), '--threads', String(availableParallelism()), '--peer-dir', options.peerDir, '--gpu', 'cuda']);
      return { ...(JSON.parse(r.line) as PeerResult), gpuPeakBytes: r.gpuPeakBytes };
    });
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as GpuBenchFigures['config'];
  writeSections(options.out, new Map([['gpu', gpuSection({ options, ours, peer, bandwidth, config, stageSeconds })]]));
  log(`wrote the gpu section into ${options.out} (node-llama-cpp ${PEER_VERSION} ${options.skipPeer ? 'skipped' : 'measured'})`);
  if (!options.keep) {
    rmSync(dir, { recursive: true, force: true });
    rmSync(gguf, { force: true });
  }
}

if (process.argv[1] !== undefined && pathToFileURL(process.argv[1]).href === import.meta.url) {
  try {
    await main();
    process.exit(0);
  } catch (e) {
    console.error((e as Error).message.startsWith('bench:gpu: ') ? (e as Error).message : `bench:gpu: ${(e as Error).message}`);
    process.exit(2);
  }
}
