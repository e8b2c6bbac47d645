// The batching scheduler over an engine that picks tokens where the logits are (stepPicking):
// greedy, top-k and plain sampling generations running at once share batched steps that hand back
// argmaxes, top-k candidates and drawn tokens, not logits, and give the tokens the logits would. On webgpu (the server's
// path) a decode step then reads back a few bytes per sequence. The webgpu case skips with the
// reason when no adapter exists at all, unless GPTOSS_REQUIRE_WEBGPU=1.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DelegatingEngine, type Engine } from '../../src/engine/engine.ts';
import { generate } from '../../src/engine/generate.ts';
import { loadEngine, type LocalEngine } from '../../src/engine/local.ts';
import { BatchingEngine } from '../../src/engine/scheduler.ts';
import { webGpuAvailable } from '../../src/kernels/webgpu/device.ts';
import type { WebGpuBackend } from '../../src/kernels/webgpu/index.ts';
import { HashEngine } from '../server/helpers.ts';

const DIR = new URL('../fixtures/golden/gqa4-l2-e8k4/', import.meta.url).pathname;
const PROMPTS = [[3, 1, 4, 1, 5, 9, 2, 6], [2, 7, 1, 8, 2, 8], [1, 6, 1, 8, 0, 3, 3, 9, 8, 8], [5, 7, 7, 2, 1]];
const OPTIONS = [
  { sampling: { temperature: 0 }, maxTokens: 6, stopTokens: [] },
  { sampling: { temperature: 0.8, topK: 5 }, maxTokens: 6, stopTokens: [], seed: 11 },
  { sampling: { temperature: 1.2, topK: 9, topP: 0.9 }, maxTokens: 6, stopTokens: [], seed: 4 },
  { sampling: { temperature: 1 }, maxTokens: 6, stopTokens: [], seed: 13 },
];

/**
 * Counts an engine's calls of step (logits) and stepPicking (picks), the requests that picked, and
 * the most bytes one stepPicking read back from the GPU (on webgpu).
 */
function counting(engine: LocalEngine): { steps: number; pickingSteps: number; picks: number; mostBytes: number } {
  const count = { steps: 0, pickingSteps: 0, picks: 0, mostBytes: 0 };
  const down = (): number => (engine.backend as Partial<WebGpuBackend>).transfers?.down ?? 0;
  const step = engine.step.bind(engine), stepPicking = engine.stepPicking.bind(engine);
  engine.step = (batch) => {
    count.steps++;
    return step(batch);
  };
  engine.stepPicking = async (batch) => {
    count.pickingSteps++;
    count.picks += batch.filter((r) => r.pick !== undefined).length;
    const before = down();
    const result = await stepPicking(batch);
    count.mostBytes = Math.max(count.mostBytes, down() - before);
    return result;
  };
  return count;
}

/** The generations at once through a BatchingEngine over `inner`. */
function together(inner: Engine): Promise<number[][]> {
  const batching = new BatchingEngine(inner, { poolSize: 0 });
  return Promise.all(PROMPTS.map(async (p, i) => (await generate(batching, batching.createSequence(), p, OPTIONS[i]!)).tokens));
}

/** Each generation alone, through the logits (a wrapper hides the picking methods). */
async function alone(engine: LocalEngine): Promise<number[][]> {
  const out: number[][] = [];
  for (const [i, p] of PROMPTS.entries()) out.push((await generate(new DelegatingEngine(engine), engine.createSequence(), p, OPTIONS[i]!)).tokens);
  return out;
}

it('the scheduler offers stepArgmax and stepTopK only over an engine with stepPicking', () => {
  const plain = new BatchingEngine(new HashEngine());
  assert.equal(plain.stepArgmax, undefined);
  assert.equal(plain.stepTopK, undefined);
});

describe('batched greedy and top-k decoding through stepPicking', () => {
  it('hands back picks, not logits, after the prompts, with the tokens the logits give', async () => {
    const engine = await loadEngine(DIR, { backend: 'reference' });
    try {
      const want = await alone(engine);
      const count = counting(engine);
      assert.deepEqual(await together(engine), want);
      assert.equal(count.picks, 4 * 5, 'every decode step of the four generations picked');
      assert.ok(count.steps <= 4, `${count.steps} logits steps: the prompts only`);
    } finally {
      await engine.close();
    }
  });
});

const available = await webGpuAvailable();
if (!available.ok && process.env.GPTOSS_REQUIRE_WEBGPU === '1') throw new Error(`GPTOSS_REQUIRE_WEBGPU=1 but ${available.reason}`);

describe('the batching scheduler on webgpu', { skip: available.ok ? false : `no WebGPU adapter: ${available.ok ? '' : available.reason}` }, () => {
  it('reads back only picks after the prompts, and gives the CPU path\'s tokens', async () => {
    const gpu = await loadEngine(DIR, { backend: 'webgpu', expertActivations: 'split' });
    const ref = await loadEngine(DIR, { backend: 'reference' });
    try {
      const want = await alone(ref);
      const count = counting(gpu);
      assert.deepEqual(await together(gpu), want);
      assert.equal(count.picks, 20);
      assert.ok(count.steps <= 4, `${count.steps} logits steps: the prompts only`);
      // A decode step of the four reads back the argmax slots of its rows (4 bytes each: greedy and
      // draw), 8k bytes (top k), the slice sums, largest logit and one 256-logit slice (the draw),
      // and the routing of its 4 tokens (grouping by expert: 4 tokens x 4 experts x 4 bytes per
      // layer): half the 4 logit rows.
      const vocab = gpu.info.vocabSize;
      assert.ok(count.mostBytes <= 4 * 4 + 2 * 5 * 4 + 2 * 9 * 4 + ((vocab / 256 + 1) * 4 + 256 * 4) + 2 * 4 * 4 * 4, `${count.mostBytes} bytes in one step`);
      assert.ok(count.mostBytes < vocab * 4 * 4 / 2);
    } finally {
      await gpu.close();
      await ref.close();
    }
  });
});
