// An evaluation end to end on the shipped gpt-oss-nano: `gptoss eval exact --prompt plain --model
// DIR` over the questions of NANO_QUESTIONS that have an integer answer (the corpus's true value;
// units such as "mg per 5 mL" included, whose 5 the grader leaves out), put as the model was
// trained to read them (the question alone), the model served in-process with the tools it was
// trained with, greedy, at medium effort, the system message's date pinned. The figures must be
// what the answers warrant: every case graded as the corpus scorer judges its answer, the
// questions the tests expect these weights to answer right graded right, the accuracy the share
// of those graded right, and the summary, the results and the headline line saying the same.
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
  // Not the doses: their answers go on to say how they were reached ("The dose is 420 mg (10 mg/kg
  // x 42 kg, below the 600 mg maximum)"), so the grader's last number is rightly not the scorer's.
  const cases = (await nanoCases()).filter((c) => c.answer !== undefined && Number.isInteger(c.answer) && c.task !== 'dose' && c.task !== 'lookup-dose');
  assert.ok(cases.some((c) => /\bper \d/.test(c.unit ?? '')), 'NANO_QUESTIONS holds no question whose unit is a rate per a number');
  assert.ok(cases.some((c) => c.expect === 'right' && c.tool === 'python') && cases.some((c) => c.expect === 'right' && c.tool === 'browser'), 'NANO_QUESTIONS holds no integer python and browser questions answered right');
  const nano = expandNano();
  const work = mkdtempSync(join(tmpdir(), 'gptoss-nano-run-'));
  try {
    const data = join(work, 'nano.jsonl');
    writeFileSync(data, cases.map((c) => JSON.stringify({ id: c.id, question: c.question, answer: c.answer })).join('\n') + '\n');
    const out = join(work, 'run');
    t.mock.timers.enable({ apis: ['Date'], now: new Date(`${cases[0]!.date}T12:00:00`) });
    const r = await runCli(
      ['eval', 'exact', '--prompt', 'plain', '--data', data, '--model', nano.dir, '--out', out, '--effort', 'medium', '--temperature', '0', '--concurrency', '1', '--max-tokens', '1024'],
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
      if (c.expect === 'right') assert.equal(result.score, 1, `${c.id} (expected right): "${result.response.text}"`);
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
