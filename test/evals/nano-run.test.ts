// An evaluation end to end on the shipped gpt-oss-nano: `gptoss eval exact --model DIR` over the
// lookup questions of NANO_QUESTIONS that have an integer answer (the corpus's true value; units such as
// "mg per 5 mL" included, whose 5 the grader leaves out), the model served in-process with the
// tools it was trained with, greedy, at medium effort, the system message's date pinned.
// The figures must be what the answers warrant: every case graded as the corpus scorer judges its
// answer, the accuracy the share of those graded right, and the summary, the results and the
// headline line saying the same.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { withoutCitations } from '../../src/tools/index.ts';
import { answerStates } from '../../src/train/nano/score.ts';
import { runCli } from '../cli/in-process.ts';
import { expandNano, nanoCases } from '../nano-questions.ts';

test('gptoss eval exact on the embedded gpt-oss-nano grades each answer as the corpus scorer judges it', async (t) => {
  // The lookups only: these weights' arithmetic answers can run on through several numbers, where
  // the scorer's "states the value" and the grader's "the last number" rightly differ. (Under the
  // exact eval's instruction to reason and put the answer in \boxed{}, which its training never
  // showed it, the shipped nano answers these lookups wrong: the grades must still agree.)
  const cases = (await nanoCases()).filter((c) => c.task === 'lookup' && c.answer !== undefined && Number.isInteger(c.answer));
  assert.ok(cases.some((c) => /\bper \d/.test(c.unit ?? '')), 'NANO_QUESTIONS holds no question whose unit is a rate per a number');
  const nano = expandNano();
  const work = mkdtempSync(join(tmpdir(), 'gptoss-nano-run-'));
  try {
    const data = join(work, 'nano.jsonl');
    writeFileSync(data, cases.map((c) => JSON.stringify({ id: c.id, question: c.question, answer: c.answer })).join('\n') + '\n');
    const out = join(work, 'run');
    t.mock.timers.enable({ apis: ['Date'], now: new Date(`${cases[0]!.date}T12:00:00`) });
    const r = await runCli(
      ['eval', 'exact', '--data', data, '--model', nano.dir, '--out', out, '--effort', 'medium', '--temperature', '0', '--concurrency', '1', '--max-tokens', '1024'],
      '', { GPTOSS_CACHE: nano.cache },
    );
    t.mock.timers.reset();
    assert.equal(r.code, 0, r.stderr);

    const results = readFileSync(join(out, 'results.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as {
      id: string; score: number; response: { text: string; finishReason?: string }; details: { expected: number; extracted: number | null };
    });
    assert.deepEqual(results.map((x) => x.id).sort(), cases.map((c) => c.id).sort());
    let right = 0;
    for (const c of cases) {
      const result = results.find((x) => x.id === c.id)!;
      // An answer cut at --max-tokens is graded too (it states nothing: 0 by both judges).
      assert.ok(['stop', 'length'].includes(result.response.finishReason ?? ''), `${c.id}: ${result.response.finishReason}`);
      assert.equal(result.details.expected, c.answer);
      // The grade is what the answer warrants: the true number (with its unit) stated, or not, outside
      // the citation links the server made (their file names and line anchors state nothing).
      const warranted = answerStates(c, withoutCitations(result.response.text)) ? 1 : 0;
      assert.equal(result.score, warranted, `${c.id}: "${result.response.text}" extracted ${result.details.extracted}, expected ${c.answer}`);
      right += warranted;
    }
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as { complete: boolean; metrics: Record<string, { mean: number; n: number }> };
    assert.equal(summary.complete, true);
    assert.equal(summary.metrics['accuracy']!.n, cases.length);
    assert.equal(summary.metrics['accuracy']!.mean, right / cases.length);
    assert.match(r.stdout, new RegExp(`^score: ${(right / cases.length).toFixed(3).replace('.', '\\.')} ± [0-9.]+ \\(n=${cases.length}\\)$`, 'm'));
  } finally {
    rmSync(work, { recursive: true, force: true });
    nano.remove();
  }
});
