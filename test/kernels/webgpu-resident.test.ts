// The webgpu backend keeps a forward step on the GPU: activations, the KV cache and the glue between
// ops stay there, so a decode step moves a fixed handful of bytes whatever the layer count (counted
// by the backend), and the logits still match the reference backend step by step, through a banded
// ring that wraps, cache growth, truncation and batches of several sequences. Skips with the reason
// when no WebGPU adapter exists at all, unless GPTOSS_REQUIRE_WEBGPU=1.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCheckpoint } from '../../src/checkpoint/checkpoint.ts';
import { SHAPES, synthesize } from '../../src/checkpoint/synth.ts';
import { createReferenceBackend } from '../../src/kernels/reference.ts';
import { webGpuAvailable } from '../../src/kernels/webgpu/device.ts';
import type { WebGpuBackend } from '../../src/kernels/webgpu/index.ts';
import type { ModelConfig } from '../../src/model/config.ts';
import { Transformer } from '../../src/model/forward.ts';
import { hostGlue } from '../../src/model/glue.ts';
import { maxAbsDiff } from '../model/golden-data.ts';
import { assertNoFallbacks } from './twins.ts';

const available = await webGpuAvailable();
if (!available.ok && process.env.GPTOSS_REQUIRE_WEBGPU === '1') throw new Error(`GPTOSS_REQUIRE_WEBGPU=1 but ${available.reason}`);
const skip = available.ok ? false : `no WebGPU adapter: ${available.reason}`;

/** A tiny gpt-oss: 4 experts (2 per token), window 4 so the banded ring wraps within a few steps. */
const shape = (numLayers: number): ModelConfig => ({
  ...SHAPES.tiny, vocabSize: 300, hiddenSize: 64, intermediateSize: 64, headDim: 16, numAttentionHeads: 4, numKeyValueHeads: 2,
  numExperts: 4, expertsPerToken: 2, slidingWindow: 4, numLayers,
});
const CONTEXT = 160;
const PROMPT = [5, 17, 250, 3, 99];
const DECODE_STEPS = 12;

const dir = mkdtempSync(join(tmpdir(), 'gptoss-resident-'));
after(() => rmSync(dir, { recursive: true, force: true }));

interface Pair {
  gpu: Transformer;
  ref: Transformer;
  backend: WebGpuBackend;
}

async function load(numLayers: number, maxBindingBytes?: number): Promise<Pair> {
  const modelDir = join(dir, `l${numLayers}`);
  synthesize(shape(numLayers), modelDir, { seed: 7 });
  const { createWebGpuBackend } = await import('../../src/kernels/webgpu/index.ts');
  const backend = await createWebGpuBackend(maxBindingBytes === undefined ? { expertActivations: 'split' } : { maxBindingBytes, expertActivations: 'split' });
  const reference = createReferenceBackend();
  const gpuWeights = await loadCheckpoint(modelDir, backend.store);
  const refWeights = await loadCheckpoint(modelDir, reference.store);
  // Rewind 0: the banded layers keep only their window, so their ring wraps during the decode.
  return { backend, gpu: new Transformer(gpuWeights.weights, backend, CONTEXT, 512, 0), ref: new Transformer(refWeights.weights, reference, CONTEXT, 512, 0) };
}

const argmax = (x: Float32Array): number => x.reduce((best, v, i) => (v > x[best]! ? i : best), 0);

/** Greedy decode on both backends: the logits' largest difference, and each step's host<->GPU bytes. */
type Step = { up: number; down: number; submissions: number; passes: number; dispatches: number };
async function decode(p: Pair): Promise<{ diff: number; steps: Step[]; tokens: number[] }> {
  const gc = p.gpu.newCache(), rc = p.ref.newCache();
  let g = await p.gpu.forward(gc, PROMPT), r = await p.ref.forward(rc, PROMPT);
  let diff = maxAbsDiff(g, r);
  const steps: Step[] = [];
  const tokens: number[] = [];
  for (let i = 0; i < DECODE_STEPS; i++) {
    const next = argmax(r);
    tokens.push(next);
    const before = p.backend.transfers;
    g = await p.gpu.forward(gc, [next]);
    const now = p.backend.transfers;
    steps.push({
      up: now.up - before.up, down: now.down - before.down, submissions: now.submissions - before.submissions,
      passes: now.passes - before.passes, dispatches: now.dispatches - before.dispatches,
    });
    r = await p.ref.forward(rc, [next]);
    diff = Math.max(diff, maxAbsDiff(g, r));
  }
  return { diff, steps, tokens };
}

describe('webgpu keeps a forward step on the GPU', { skip }, () => {
  let two: Pair, four: Pair;
  before(async () => {
    if (!available.ok) return;
    two = await load(2);
    four = await load(4);
  });
  after(async () => {
    await two?.backend.close();
    await four?.backend.close();
  });

  it('decode matches the reference, and moves the same few bytes (in one submission and one compute pass) per step with 2 and 4 layers', async (t) => {
    const a = await decode(two), b = await decode(four);
    const show = (steps: typeof a.steps): string => steps.map((s) => `${s.up}/${s.down}/${s.submissions}/${s.passes}/${s.dispatches}`).join(' ');
    t.diagnostic(`bytes up/down, submissions, compute passes and dispatches per decode step, 2 layers: ${show(a.steps)}; 4 layers: ${show(b.steps)}`);
    assert.ok(a.diff <= 1e-4, `2 layers: logits differ from the reference by ${a.diff}`);
    assert.ok(b.diff <= 1e-4, `4 layers: logits differ from the reference by ${b.diff}`);
    const c = shape(2);
    for (const [i, s] of a.steps.entries()) {
      // Up: the embedding row, the position and a few op parameter blocks; down: the logits.
      assert.equal(s.down, c.vocabSize * 4, `step ${i} read back ${s.down} bytes`);
      assert.ok(s.up <= c.hiddenSize * 4 + 4 + 1024, `step ${i} uploaded ${s.up} bytes`);
    }
    // Once the banded ring stopped growing, the whole step goes to the GPU in one submission.
    assert.equal(a.steps[a.steps.length - 1]!.submissions, 1);
    const bytes = (steps: Step[]): Omit<Step, 'passes' | 'dispatches'>[] => steps.map(({ up, down, submissions }) => ({ up, down, submissions }));
    assert.deepEqual(bytes(b.steps), bytes(a.steps), 'bytes per step depend on the layer count');
    // The step's dispatches share one compute pass (the copies of views and cache writes are kernels too).
    for (const s of [...a.steps, ...b.steps]) assert.equal(s.passes, 1, `${s.passes} compute passes for ${s.dispatches} dispatches`);
    assertNoFallbacks(two.backend);
    assertNoFallbacks(four.backend);
  });

  it('a prefill chunk reads back only its logits: the routing is grouped by expert on the GPU', async () => {
    const gc = two.gpu.newCache(), rc = two.ref.newCache();
    const before = two.backend.transfers;
    const got = await two.gpu.forward(gc, PROMPT);
    const after = two.backend.transfers;
    assert.equal(after.down - before.down, shape(2).vocabSize * 4);
    const want = await two.ref.forward(rc, PROMPT);
    assert.ok(maxAbsDiff(got, want) <= 1e-4, `prefill logits differ by ${maxAbsDiff(got, want)}`);
    assertNoFallbacks(two.backend);
  });

  it('greedy decode takes the argmax on the GPU and reads back 4 bytes a step', async () => {
    const gc = two.gpu.newCache(), rc = two.ref.newCache();
    let g = await two.gpu.forwardArgmax(gc, PROMPT);
    let r = argmax(await two.ref.forward(rc, PROMPT));
    assert.equal(g, r);
    for (let i = 0; i < 6; i++) {
      const before = two.backend.transfers;
      g = await two.gpu.forwardArgmax(gc, [g]);
      assert.equal(two.backend.transfers.down - before.down, 4);
      r = argmax(await two.ref.forward(rc, [r]));
      assert.equal(g, r, `step ${i}`);
    }
    // The same method on a host backend.
    const hc = two.ref.newCache();
    assert.equal(await two.ref.forwardArgmax(hc, PROMPT), argmax(await two.ref.forward(two.ref.newCache(), PROMPT)));
  });

  it('the argmax kernel keeps the lowest column on ties, as the host does', () => {
    const rows = 3, width = 300;
    const bytes = two.backend.store.allocate(rows * width * 4, 'test.x');
    const x = new Float32Array(bytes.buffer, bytes.byteOffset, rows * width).map((_, i) => Math.sin(i));
    x[5] = 7; x[200] = 7; // row 0: a tie between columns 5 and 200
    x[width + 299] = 9; // row 1: the last column
    x.fill(-2, 2 * width, 3 * width); // row 2: all equal
    two.backend.resident.written(x);
    const outBytes = two.backend.store.allocate(rows * 4, 'test.out');
    const out = new Int32Array(outBytes.buffer, outBytes.byteOffset, rows);
    two.backend.resident.argmax(x, rows, width, out);
    const want = new Int32Array(rows);
    hostGlue.argmax(x, rows, width, want);
    return two.backend.resident.toHost(out).then(() => {
      assert.deepEqual([...out], [5, 299, 0]);
      assert.deepEqual([...out], [...want]);
    });
  });

  it('truncating a sequence and batching two sequences stay exact', async () => {
    const gc = two.gpu.newCache(), rc = two.ref.newCache();
    await two.gpu.forward(gc, [...PROMPT, 8, 9, 10]);
    await two.ref.forward(rc, [...PROMPT, 8, 9, 10]);
    assert.equal(gc.truncate(6), rc.truncate(6));
    const g = await two.gpu.forward(gc, [42, 43], { allLogits: true });
    const r = await two.ref.forward(rc, [42, 43], { allLogits: true });
    assert.ok(maxAbsDiff(g, r) <= 1e-4, `after truncation: ${maxAbsDiff(g, r)}`);
    // Two sequences in one batch: the second one's rows start mid-workspace.
    const g2 = two.gpu.newCache(), r2 = two.ref.newCache();
    await two.gpu.forward(g2, [7, 7]);
    await two.ref.forward(r2, [7, 7]);
    const gb = await two.gpu.forwardBatch([{ cache: gc, tokens: [1] }, { cache: g2, tokens: [2, 3] }]);
    const rb = await two.ref.forwardBatch([{ cache: rc, tokens: [1] }, { cache: r2, tokens: [2, 3] }]);
    for (const i of [0, 1]) assert.ok(maxAbsDiff(gb[i]!, rb[i]!) <= 1e-4, `batched sequence ${i}: ${maxAbsDiff(gb[i]!, rb[i]!)}`);
    assertNoFallbacks(two.backend);
  });

  it('a cache cut into several bindings is attended in place', async () => {
    // 8 KiB bindings hold 64 positions of 2 x 16 floats: the dense layer's cache spans two.
    const small = await load(2, 8192);
    try {
      const gc = small.gpu.newCache(), rc = small.ref.newCache();
      const prompt = Array.from({ length: 100 }, (_, i) => (i * 37) % 300);
      const g = await small.gpu.forward(gc, prompt, { allLogits: true });
      const r = await small.ref.forward(rc, prompt, { allLogits: true });
      assert.ok(maxAbsDiff(g, r) <= 1e-4, `prefill: ${maxAbsDiff(g, r)}`);
      const gd = await small.gpu.forward(gc, [11]), rd = await small.ref.forward(rc, [11]);
      assert.ok(maxAbsDiff(gd, rd) <= 1e-4, `decode: ${maxAbsDiff(gd, rd)}`);
      assertNoFallbacks(small.backend);
    } finally {
      await small.backend.close();
    }
  });
});
