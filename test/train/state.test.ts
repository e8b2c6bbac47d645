// Resuming a run: training 3 steps, saving, and continuing in a fresh process-like setting (new
// model with other weights, new optimiser) for 3 more gives bit for bit the run of 6 uninterrupted
// steps, for full training and for LoRA; a state for other parameters is refused by name.
import { after, before, describe as suite, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UserError } from '../../src/errors.ts';
import { freezeBase, LoraAdapters } from '../../src/train/lora.ts';
import { nextTokenTargets } from '../../src/train/model.ts';
import { AdamW, learningRate, trainStep } from '../../src/train/optim.ts';
import { TrainableModel } from '../../src/train/params.ts';
import { loadTrainingState, saveTrainingState } from '../../src/train/state.ts';
import { TINY } from './tiny.ts';

const tokens = [4, 19, 7, 30, 7, 12, 45, 19, 2, 30];
const batch = [{ tokens, targets: nextTokenTargets(tokens) }];
const schedule = { peak: 1e-2, warmupSteps: 2, totalSteps: 6 };
let tmp: string;

function run(model: TrainableModel, opt: AdamW, from: number, to: number, lora?: LoraAdapters): void {
  for (let step = from; step < to; step++) trainStep(model, opt, batch, learningRate(step, schedule), 1, { lora });
}

suite('training state', () => {
  before(() => {
    tmp = mkdtempSync(join(tmpdir(), 'gptoss-state-'));
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('full training resumes bit for bit', () => {
    const straight = TrainableModel.random(TINY, 1);
    const straightOpt = new AdamW(straight.params());
    run(straight, straightOpt, 0, 6);

    const first = TrainableModel.random(TINY, 1);
    const firstOpt = new AdamW(first.params());
    run(first, firstOpt, 0, 3);
    const path = join(tmp, 'full.safetensors');
    saveTrainingState(path, first.params(), firstOpt, { next_example: '3', seed: '1' });

    const resumed = TrainableModel.random(TINY, 999); // other weights: all must come from the file
    const resumedOpt = new AdamW(resumed.params());
    const meta = loadTrainingState(path, resumed.params(), resumedOpt);
    assert.deepEqual(meta, { next_example: '3', seed: '1' });
    assert.equal(resumedOpt.steps, 3);
    run(resumed, resumedOpt, resumedOpt.steps, 6);
    for (const p of straight.params()) assert.deepEqual(resumed.param(p.name).value, p.value, p.name);
  });

  it('LoRA training resumes bit for bit, saving only the adapters', () => {
    const base = TrainableModel.random(TINY, 2);
    freezeBase(base);
    const straight = new LoraAdapters(TINY, { rank: 2, alpha: 4, seed: 5 });
    const straightOpt = new AdamW(straight.params());
    run(base, straightOpt, 0, 6, straight);

    const first = new LoraAdapters(TINY, { rank: 2, alpha: 4, seed: 5 });
    const firstOpt = new AdamW(first.params());
    run(base, firstOpt, 0, 3, first);
    const path = join(tmp, 'lora.safetensors');
    saveTrainingState(path, first.params(), firstOpt);

    const resumed = new LoraAdapters(TINY, { rank: 2, alpha: 4, seed: 77 });
    const resumedOpt = new AdamW(resumed.params());
    loadTrainingState(path, resumed.params(), resumedOpt);
    run(base, resumedOpt, 3, 6, resumed);
    straight.params().forEach((p, i) => assert.deepEqual(resumed.params()[i]!.value, p.value, p.name));
  });

  it('refuses a state saved for other parameters, or a file that is not a state', () => {
    const lora = new LoraAdapters(TINY, { rank: 2, alpha: 4 });
    const path = join(tmp, 'rank2.safetensors');
    saveTrainingState(path, lora.params(), new AdamW(lora.params()));
    const other = new LoraAdapters(TINY, { rank: 3, alpha: 4 });
    const fails = (p: string, re: RegExp, params = other.params()) => assert.throws(() => loadTrainingState(p, params, new AdamW(params)), (e: unknown) => {
      assert.ok(e instanceof UserError, String(e));
      assert.match(e.message, re);
      return true;
    });
    fails(path, /lora_A\.weight" is F64 \[2,64\], expected F64 \[3,64\]/);
    const model = TrainableModel.random(TINY, 1);
    fails(path, /param\.embedding\.weight" is missing/, model.params());
    const junk = join(tmp, 'junk.safetensors');
    writeFileSync(junk, 'not a safetensors file at all');
    assert.throws(() => loadTrainingState(junk, other.params(), new AdamW(other.params())), UserError);
  });
});
