// `npm run teach:facts` end to end on a tiny random model (its plumbing, not its result): it asks
// the held-out questions, runs `gptoss finetune` on examples/finetune/facts.jsonl (one quick epoch
// here), asks again with the adapter it wrote, and reports each answer and whether it holds the
// fact; bad usage exits 2 with one line.
import { after, before, describe as suite, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ModelConfig } from '../../src/model/config.ts';
import { readConversationsJsonl } from '../../src/train/data.ts';
import { writeOriginalCheckpoint } from '../../src/train/export.ts';
import { usedVocabulary, zeroUnusedRows } from '../../src/train/model.ts';
import { TrainableModel } from '../../src/train/params.ts';

const CONFIG: ModelConfig = {
  numLayers: 2, numExperts: 4, expertsPerToken: 2, vocabSize: 201088, hiddenSize: 32, intermediateSize: 32, swigluLimit: 7,
  headDim: 16, numAttentionHeads: 4, numKeyValueHeads: 2, slidingWindow: 8, initialContextLength: 256,
  ropeTheta: 150000, ropeScalingFactor: 32, ropeNtkAlpha: 1, ropeNtkBeta: 32,
};

interface Answer { fact: string; question: string; answer: string; knows: boolean }

let tmp: string;
let base: string;

function teach(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/teach-facts.ts', ...args], { encoding: 'utf8', env: { ...process.env, GPTOSS_MODEL: '' } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

suite('npm run teach:facts', () => {
  before(() => {
    tmp = mkdtempSync(join(tmpdir(), 'gptoss-teach-'));
    // Only the facts' tokens have live output rows, as with a model trained here: fine-tuning computes those rows only.
    const model = TrainableModel.random(CONFIG, 5);
    zeroUnusedRows(model, usedVocabulary(readConversationsJsonl(readFileSync('examples/finetune/facts.jsonl', 'utf8'), 'facts').map((e) => e.tokens)));
    base = join(tmp, 'base');
    writeOriginalCheckpoint(model, base);
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('asks, fine-tunes with the adapter targets by default, asks again with --adapter, and reports the facts', () => {
    const adapter = join(tmp, 'run', 'adapter');
    const r = teach(['--model', base, '--out', adapter, '--max-tokens', '6', '--', '--epochs', '1', '--quiet']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /\(a\) base model, before fine-tuning/);
    assert.match(r.stdout, /\(b\) gptoss finetune --data examples\/finetune\/facts\.jsonl --out .* --epochs 1 --quiet/);
    assert.match(r.stdout, /\(c\) with --adapter /);
    assert.match(r.stdout, /questions answered: \d+\/12 before, \d+\/12 after \(on-call pharmacist \d\/4, visiting hours \d\/4, formulary code \d\/4\)/);
    assert.match(r.stdout, /facts known: \d\/3 before, \d\/3 after; fine-tuning took \d+ s/);
    const summary = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as {
      adapter: string; before: Answer[]; after: Answer[]; answeredAfter: number; knownAfter: number; byFactAfter: Record<string, { asked: number; answered: number }>;
    };
    assert.equal(summary.adapter, adapter);
    const questions = JSON.parse(readFileSync('examples/finetune/facts-questions.json', 'utf8')) as { question: string; expect: string }[];
    for (const answers of [summary.before, summary.after]) {
      assert.deepEqual(answers.map((a) => a.question), questions.map((q) => q.question));
      answers.forEach((a, i) => assert.equal(a.knows, a.answer.toLowerCase().includes(questions[i]!.expect.toLowerCase()), a.question));
    }
    assert.equal(summary.answeredAfter, summary.after.filter((a) => a.knows).length);
    for (const [fact, counts] of Object.entries(summary.byFactAfter)) {
      const asked = summary.after.filter((a) => a.fact === fact);
      assert.deepEqual(counts, { asked: asked.length, answered: asked.filter((a) => a.knows).length }, fact);
    }
    // A fact is known when more than half of its phrasings are answered with it.
    assert.equal(summary.knownAfter, Object.values(summary.byFactAfter).filter((c) => 2 * c.answered > c.asked).length);
    const config = JSON.parse(readFileSync(join(adapter, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    assert.deepEqual(config['target_parameters'], ['mlp.experts.gate_up_proj', 'mlp.experts.down_proj'], 'the default targets include the experts');
  });

  it('bad usage exits 2 with one line', () => {
    const r = teach(['--model', base, '--max-tokens', '0']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /^teach:facts: --max-tokens must be a whole number >= 1, got "0"\n$/);
  });
});
