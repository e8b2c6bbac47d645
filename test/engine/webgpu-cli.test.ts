// `--backend webgpu` from the command line: logits on a golden case through bin/gptoss.js (skipped
// with the reason when no WebGPU adapter exists, unless GPTOSS_REQUIRE_WEBGPU=1), and, with the
// Vulkan loader pointed at no driver, the one-line error naming the fix and exit status 2; bench
// on webgpu names the adapter.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { webGpuAvailable } from '../../src/kernels/webgpu/device.ts';
import { runBench } from '../../src/cli/bench.ts';
import { runCli } from '../cli/in-process.ts';
import { goldenCase, maxAbsDiff, readF32 } from '../model/golden-data.ts';

const BIN = new URL('../../bin/gptoss.js', import.meta.url).pathname;
const gold = goldenCase(new URL('../fixtures/golden/gqa4-l2-e8k4/', import.meta.url).pathname);
const available = await webGpuAvailable();
if (!available.ok && process.env.GPTOSS_REQUIRE_WEBGPU === '1') throw new Error(`GPTOSS_REQUIRE_WEBGPU=1 but ${available.reason}`);

function gptoss(args: string[], env: NodeJS.ProcessEnv = process.env): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', maxBuffer: 64 << 20, env });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('gptoss --backend webgpu', () => {
  const seq = gold.golden.sequences[1]!;

  it('logits --all-positions match the golden f32 logits', { skip: available.ok ? false : `no WebGPU adapter: ${available.ok ? '' : available.reason}` }, () => {
    const r = gptoss(['logits', '--model', gold.dir, '--tokens', seq.tokens.join(','), '--all-positions', '--json', '--backend', 'webgpu', '--expert-activations', 'split']);
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { logits: number[][] };
    assert.equal(out.logits.length, seq.length);
    const diff = maxAbsDiff(out.logits.flat(), readF32(gold, seq.logits.fp32));
    assert.ok(diff <= gold.golden.tolerances.fp32.max_abs, `differs by ${diff}`);
  });

  it('bench reports the adapter, the GPU weight bytes, the exact expert activations asked for and no fallbacks', { skip: available.ok ? false : 'no WebGPU adapter' }, async () => {
    const r = await runBench({ model: gold.dir, promptTokens: 8, genTokens: 2, threads: 1, backend: 'webgpu', expertActivations: 'split', profile: false });
    assert.equal(r.backend, 'webgpu');
    assert.equal(r.expert_activations, 'split');
    assert.ok(r.adapter !== undefined && r.adapter.length > 0);
    assert.ok(r.gpu_weight_bytes !== undefined && r.gpu_weight_bytes > 0, 'the weights uploaded to the GPU are reported');
    assert.deepEqual(r.fallbacks, { linear: 0, attention: 0, experts: 0 });
    assert.ok(Number.isFinite(r.decode_tok_s) && r.decode_tok_s > 0);
  });

  it('without an adapter: one line naming the fix, exit status 2', () => {
    // The Vulkan loader finds no driver at these paths, so Dawn offers no adapter.
    const r = gptoss(['logits', '--model', gold.dir, '--tokens', '1,2', '--backend', 'webgpu'], { ...process.env, VK_ICD_FILENAMES: '/nonexistent/icd.json', VK_DRIVER_FILES: '/nonexistent/icd.json' });
    assert.equal(r.status, 2, r.stderr);
    assert.equal(r.stdout, '');
    const ours = r.stderr.split('\n').filter((l) => l.startsWith('gptoss '));
    assert.equal(ours.length, 1, r.stderr);
    assert.match(ours[0]!, /no WebGPU adapter found: install a Vulkan driver .* or use --backend wasm$/);
    assert.doesNotMatch(r.stderr, /^\s+at .*\.ts:\d+/m, 'no stack trace of ours');
  });

  it('an unknown backend name lists webgpu and auto among the choices', async () => {
    const r = await runCli(['logits', '--model', gold.dir, '--tokens', '1', '--backend', 'cuda']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--backend must be wasm, reference, webgpu or auto, got "cuda"/);
  });

  it('--backend auto runs on wasm when the only adapter is a software one, or there is none', async () => {
    const probe = await (await import('../../src/kernels/webgpu/device.ts')).probeAdapter();
    if (!('error' in probe) && !probe.software) return; // a real GPU here: auto rightly takes it (see the choice's unit test)
    for (const env of [process.env, { ...process.env, VK_ICD_FILENAMES: '/nonexistent/icd.json', VK_DRIVER_FILES: '/nonexistent/icd.json' }]) {
      const r = gptoss(['bench', '--model', gold.dir, '--prompt-tokens', '4', '--gen-tokens', '1', '--threads', '1', '--backend', 'auto', '--json'], env);
      assert.equal(r.status, 0, r.stderr);
      assert.equal((JSON.parse(r.stdout) as { backend: string }).backend, 'wasm');
    }
  });
});
