// bench/gpu.ts (`npm run bench:gpu`), the prepared real-GPU run: its argument handling, the one-line
// refusal when node-llama-cpp's CUDA build is not pre-installed, the section it writes, and the whole
// plumbing on a tiny shape with the peer skipped (on whatever adapter is here; not timed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findCudaPeer, gpuSection, kvCacheBytes, parseGpuBenchArgs, type GpuBenchFigures } from '../../bench/gpu.ts';
import type { BenchResult } from '../../src/cli/bench.ts';
import { probeAdapter, webGpuAvailable } from '../../src/kernels/webgpu/device.ts';

const ROOT = join(import.meta.dirname, '../..');
const SCRIPT = join(ROOT, 'bench/gpu.ts');
const runScript = (args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', SCRIPT, ...args], { cwd: ROOT, encoding: 'utf8' });

test('defaults: the 20b shape with 24 layers, a 512-token prompt, the peer looked for in .cache/peer-cuda', () => {
  const o = parseGpuBenchArgs([]);
  assert.equal(o.shape, '20b');
  assert.equal(o.layers, 24);
  assert.equal(o.promptTokens, 512);
  assert.equal(o.genTokens, 64);
  assert.equal(o.skipPeer, false);
  assert.equal(o.peerDir, join(ROOT, '.cache/peer-cuda'));
  assert.equal(o.bandwidthBytes, 2 ** 30);
  const t = parseGpuBenchArgs(['--shape', 'tiny', '--layers', '3', '--skip-peer', '--bandwidth-mib', '8']);
  assert.deepEqual([t.shape, t.layers, t.skipPeer, t.bandwidthBytes], ['tiny', 3, true, 8 * 2 ** 20]);
});

test('bad arguments are one-line errors naming the flag', () => {
  assert.throws(() => parseGpuBenchArgs(['--layers', '0']), /^Error: bench:gpu: --layers must be a positive integer, not "0"$/);
  assert.throws(() => parseGpuBenchArgs(['--prompt-tokens', '1.5']), /--prompt-tokens must be a positive integer/);
  assert.throws(() => parseGpuBenchArgs(['--shape', '7b']), /--shape must be 20b or tiny, not "7b"/);
  assert.throws(() => parseGpuBenchArgs(['--frobnicate']), /^Error: bench:gpu: .*frobnicate/);
});

test('the script exits 2 with one line when the CUDA peer is not pre-installed, before synthesising anything', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gptoss-benchgpu-'));
  try {
    const r = runScript(['--peer-dir', join(dir, 'peer'), '--work-dir', join(dir, 'work')]);
    assert.equal(r.status, 2);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /^bench:gpu: node-llama-cpp is not installed in .*peer .*or pass --skip-peer/);
    assert.equal(existsSync(join(dir, 'work')), false, 'nothing was synthesised');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('findCudaPeer names the missing CUDA binary package when only node-llama-cpp is there', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gptoss-benchgpu-'));
  try {
    mkdirSync(join(dir, 'node_modules/node-llama-cpp/dist'), { recursive: true });
    writeFileSync(join(dir, 'node_modules/node-llama-cpp/dist/index.js'), '');
    const r = findCudaPeer(dir);
    assert.equal(r.ok, false);
    assert.match(r.ok ? '' : r.reason, /@node-llama-cpp\/linux-x64-cuda is not installed in/);
    mkdirSync(join(dir, 'node_modules/@node-llama-cpp/linux-x64-cuda'), { recursive: true });
    writeFileSync(join(dir, 'node_modules/@node-llama-cpp/linux-x64-cuda/package.json'), '{}');
    assert.deepEqual(findCudaPeer(dir), { ok: true });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the section states both engines, the ratios against the 0.5x target, the ceiling and the memory', () => {
  const ours = {
    backend: 'webgpu', expert_activations: 'f16', kv_cache: 'bf16', prompt_tokens: 512, gen_tokens: 64, load_s: 10, prefill_tok_s: 2000, ttft_s: 0.256,
    decode_tok_s: 60, bytes_per_token: 3e9, adapter: 'nvidia hopper NVIDIA H100', gpu_weight_bytes: 11.5e9, gpuPeakBytes: 12e9,
  } as BenchResult & { gpuPeakBytes: number };
  const peer = { engine: 'node-llama-cpp 3.22.1 (cuda)', threads: 16, prompt_tokens: 512, gen_tokens: 64, load_s: 5, prefill_tok_s: 8000, ttft_s: 0.064, decode_tok_s: 150, peak_rss_bytes: 1e9, gpuPeakBytes: 13e9 };
  const config = { num_hidden_layers: 24, num_key_value_heads: 8, head_dim: 64 };
  const figures: GpuBenchFigures = {
    options: parseGpuBenchArgs([]), ours, peer, config, stageSeconds: { synth: 90, webgpu: 60 },
    bandwidth: { bytesPerSecond: 3e12, adapter: 'nvidia hopper NVIDIA H100', probeBytes: 2 ** 30, software: false },
  };
  const md = gpuSection(figures);
  assert.match(md, /\| gptoss webgpu \(f16, KV bf16\) \| 10\.00 \| 2000\.00 \| 0\.26 \| 60\.00 \| 0\.06 \| 12\.00 GB \|/);
  assert.match(md, /\| node-llama-cpp 3\.22\.1 \(cuda\) \| 5\.00 \| 8000\.00 \| 0\.06 \| 150\.00 \| 0\.15 \| 13\.00 GB \|/);
  assert.match(md, /prefill 0\.25x, decode 0\.40x \(target >= 0\.5x: not met\)/);
  assert.ok(!md.includes('Software adapter'));
  assert.match(gpuSection({ ...figures, bandwidth: { ...figures.bandwidth, software: true } }), /\*\*Software adapter: these figures are a plumbing check/);
  assert.match(md, /3000\.00 GB\/s; decode ceiling 1000\.00 tok\/s/);
  // bf16 KV: 2 * 24 * 8 * 64 * 8192 * 2 bytes = 0.40 GB; at 131072, 6.44 GB.
  assert.equal(kvCacheBytes(config, 8192, 2), 402653184);
  assert.match(md, /11\.50 GB of weights uploaded .* 0\.40 GB at 8k context, 6\.44 GB at 128k/);
  assert.match(gpuSection({ ...figures, ours: { ...ours, decode_tok_s: 75 } }), /decode 0\.50x \(target >= 0\.5x: met\)/);
  assert.match(gpuSection({ ...figures, peer: { skipped: 'skipped (--skip-peer)' } }), /node-llama-cpp not measured: skipped \(--skip-peer\)\./);
});

const available = await webGpuAvailable();
test('the whole run on a tiny shape with the peer skipped replaces only the gpu section of the page', { skip: available.ok ? false : `no WebGPU adapter: ${available.ok ? '' : available.reason}` }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'gptoss-benchgpu-'));
  try {
    const out = join(dir, 'BENCHMARKS.md');
    const page = ['# Benchmarks', '', 'By hand.', '', '<!-- bench:gpu -->', '## GPU', 'old figures', '<!-- /bench:gpu -->', '', 'Closing note by hand.', ''].join('\n');
    writeFileSync(out, page);
    const r = runScript(['--shape', 'tiny', '--layers', '2', '--prompt-tokens', '8', '--gen-tokens', '2', '--skip-peer',
      '--bandwidth-mib', '8', '--bandwidth-gb', '0.05', '--work-dir', join(dir, 'work'), '--out', out]);
    assert.equal(r.status, 0, r.stderr);
    const written = readFileSync(out, 'utf8');
    assert.ok(written.startsWith('# Benchmarks\n\nBy hand.\n\n<!-- bench:gpu -->\n## GPU: webgpu vs node-llama-cpp (CUDA), tiny shape, 2 layers'), written);
    assert.ok(written.endsWith('<!-- /bench:gpu -->\n\nClosing note by hand.\n'));
    assert.ok(!written.includes('old figures'));
    assert.match(written, /\| gptoss webgpu \(\w+, KV \w+\) \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \|/);
    assert.match(written, /Read bandwidth \(WGSL streaming kernel, 0\.01 GB buffer\): [\d.]+ GB\/s; decode ceiling [\d.]+ tok\/s/);
    assert.match(written, /node-llama-cpp not measured: skipped \(--skip-peer\)/);
    assert.match(written, /adapter: \S/);
    assert.equal(existsSync(join(dir, 'work', 'tiny-l2')), false, 'the checkpoint is removed without --keep');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const adapter = await probeAdapter();
const softwareOnly = 'software' in adapter && adapter.software;
test('on a software adapter the 20b run is refused in one line before anything is synthesised', { skip: softwareOnly ? false : 'the adapter here is not a software one (or there is none)' }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'gptoss-benchgpu-'));
  try {
    const r = runScript(['--skip-peer', '--work-dir', join(dir, 'work')]);
    assert.equal(r.status, 2);
    assert.match(r.stderr.trim().split('\n').pop()!, /^bench:gpu: the only WebGPU adapter is a software one \(.+\): install the GPU's Vulkan driver .* or use --shape tiny/);
    assert.equal(existsSync(join(dir, 'work')), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
