// The evaluation harness end to end: the `gptoss eval` command against OpenAI-compatible endpoints
// whose model answers and grader verdicts are scripted, so every expected score is computed by hand.
// The first case runs bin/gptoss.js as a child process; the others call the CLI's main() in-process
// (test/cli/in-process.ts), talking to the same fake endpoints over HTTP.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startFakeEndpoint } from './fake-endpoint.ts';
import { runCli } from '../cli/in-process.ts';
import { bootstrapStd, clippedMean, extractChoice, extractInteger, HttpSampler, parseExact, parseHealthBench, parseMcq, parseVerdict, summarise } from '../../src/evals/index.ts';
import { UserError } from '../../src/errors.ts';

const run = promisify(execFile);
const CLI = join(import.meta.dirname, '../../bin/gptoss.js');
const EXAMPLES = join(import.meta.dirname, '../../examples/evals');

async function gptoss(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args], { timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

const temps: string[] = [];
test.after(() => {
  for (const dir of temps) rmSync(dir, { recursive: true, force: true });
});

/** A fresh folder for one run's output, removed when the file's tests end. */
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'gptoss-eval-'));
  temps.push(dir);
  return dir;
}

// Verdicts by the start of each criterion in examples/evals/healthbench-sample.jsonl.
const VERDICTS: [string, boolean][] = [
  ['Advises that a fever', true], ['Mentions warning signs', false], ['Recommends giving paracetamol', false], ['Uses plain language', true],
  ['Explains that muscle aches', true], ['Advises contacting the prescribing', false], ['Tells the patient to simply stop', true],
  ['States that for healthy adults', true], ['Suggests taking it with food', true],
  ['Classifies this as some dehydration', false], ['Lists danger signs', false], ['Recommends routine antibiotics', true],
];

test('healthbench: scores, per-tag means, grader retries, report and resume', async () => {
  let garbled = false;
  const grader = await startFakeEndpoint((messages) => {
    const prompt = messages[0]!.content;
    const item = /# Rubric item\n\[(-?\d+)\] (.*)/.exec(prompt)?.[2] ?? '';
    const verdict = VERDICTS.find(([start]) => item.startsWith(start));
    assert.ok(verdict !== undefined, `grader got an unexpected rubric item: ${item}`);
    // The first verdict for one item is unparseable: the harness must ask again.
    if (verdict[0] === 'Lists danger signs' && !garbled) {
      garbled = true;
      return { content: 'I think it is mostly fine.' };
    }
    return { content: '```json\n' + JSON.stringify({ explanation: `checked: ${verdict[0]}`, criteria_met: verdict[1] }) + '\n```' };
  });
  const model = await startFakeEndpoint((messages) => ({ content: `Answer to: ${messages.at(-1)!.content.slice(0, 20)}`, reasoning: 'thinking about <the> case' }));
  const out = tempDir();
  try {
    const args = ['eval', 'healthbench', '--data', join(EXAMPLES, 'healthbench-sample.jsonl'), '--model', model.baseUrl, '--grader', grader.baseUrl, '--out', out, '--effort', 'high', '--concurrency', '2'];
    const first = await gptoss(args);
    assert.equal(first.code, 0, first.stderr);
    // Per case (points met over positive points): (10+2)/17, (5-5)/12, (6+3)/9, (-6)/12.
    const perCase = [12 / 17, 0, 1, -0.5];
    const expected = clippedMean(perCase);
    const lastLine = first.stdout.trim().split('\n').at(-1)!;
    assert.match(lastLine, new RegExp(`^score: ${expected.toFixed(3)} ± ${bootstrapStd(perCase).toFixed(3)} \\(n=4\\)$`));
    assert.ok(garbled, 'the unparseable verdict was served');
    assert.equal(grader.requests.length, 12 + 1, 'one grader call per rubric item plus one retry');
    assert.equal(model.requests.length, 4);
    assert.equal(model.requests[0]!.body.reasoning_effort, 'high');

    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as { metrics: Record<string, { mean: number; n: number }> };
    assert.ok(Math.abs(summary.metrics['theme:emergency_referrals']!.mean - 12 / 17) < 1e-12);
    // axis:accuracy per case: case 1 {10 met, -8 not} = 1; case 2 {5 met, -5 met} = 0; case 3 {6 met} = 1; case 4 {8 not, -6 met} = -0.75
    assert.ok(Math.abs(summary.metrics['axis:accuracy']!.mean - clippedMean([1, 0, 1, -0.75])) < 1e-12);
    assert.equal(summary.metrics['axis:accuracy']!.n, 4);
    // axis:communication_quality exists only in case 1 (met).
    assert.deepEqual([summary.metrics['axis:communication_quality']!.mean, summary.metrics['axis:communication_quality']!.n], [1, 1]);

    const html = readFileSync(join(out, 'report.html'), 'utf8');
    assert.match(html, /<details><summary>reasoning/);
    assert.match(html, /thinking about &lt;the&gt; case/, 'reasoning is escaped and present');
    assert.match(html, /checked: Advises that a fever/);
    assert.equal(readFileSync(join(out, 'results.jsonl'), 'utf8').trim().split('\n').length, 4);

    // A rerun finds every case finished and calls neither model nor grader again.
    const second = await gptoss(args);
    assert.equal(second.code, 0, second.stderr);
    assert.equal(second.stdout.trim().split('\n').at(-1), lastLine);
    assert.equal(model.requests.length, 4);
    assert.equal(grader.requests.length, 13);
    assert.match(second.stderr, /4 cases \(4 from an earlier run\)/);
  } finally {
    await grader.close();
    await model.close();
  }
});

test('healthbench: --subset consensus keeps cluster-level items, hard keeps tagged cases', async () => {
  const grader = await startFakeEndpoint(() => ({ content: '{"explanation":"ok","criteria_met":true}' }));
  const model = await startFakeEndpoint(() => ({ content: 'fine' }));
  try {
    const consensus = await runCli(['eval', 'healthbench', '--data', join(EXAMPLES, 'healthbench-sample.jsonl'), '--model', model.baseUrl, '--grader', grader.baseUrl, '--out', tempDir(), '--subset', 'consensus']);
    assert.equal(consensus.code, 0, consensus.stderr);
    // Every cluster item met: case 1 (10-8)/10, case 2 7/7, case 3 6/6, case 4 8/8.
    assert.match(consensus.stdout, new RegExp(`score: ${clippedMean([0.2, 1, 1, 1]).toFixed(3)} `));
    assert.equal(grader.requests.length, 5, 'only the five level:cluster items are graded');
    const hard = await runCli(['eval', 'healthbench', '--data', join(EXAMPLES, 'healthbench-sample.jsonl'), '--model', model.baseUrl, '--grader', grader.baseUrl, '--out', tempDir(), '--subset', 'hard']);
    assert.match(hard.stdout, /\(n=1\)\s*$/);
  } finally {
    await grader.close();
    await model.close();
  }
});

test('mcq: shuffled choices, letter extraction from the final answer', async () => {
  const correct: Record<string, string> = { Helicase: 'Helicase', buffer: '4.76', mediates: 'Photon', serial: '1:100' /* wrong on purpose: right is 1:1000 */ };
  const model = await startFakeEndpoint((messages) => {
    const prompt = messages[0]!.content;
    const key = Object.keys(correct).find((k) => prompt.includes(k))!;
    const letter = [...prompt.matchAll(/^([A-J])\) (.*)$/gm)].find((m) => m[2] === correct[key])![1];
    return { content: `Let me think.\n\n**Answer: ${letter}**` };
  });
  const out = tempDir();
  try {
    const r = await runCli(['eval', 'mcq', '--data', join(EXAMPLES, 'mcq-sample.jsonl'), '--model', model.baseUrl, '--out', out, '--seed', '3']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout.trim().split('\n').at(-1)!, /^score: 0\.750 ± \d\.\d{3} \(n=4\)$/);
    // The same seed gives the same order on every run; the correct letters are not all 'A'.
    const letters = readFileSync(join(out, 'results.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { details: { correct: string } }).details.correct);
    assert.ok(new Set(letters).size > 1, `choices are shuffled (${letters.join(',')})`);
  } finally {
    await model.close();
  }
});

test('exact: boxed and bare integer answers', async () => {
  const replies = ['so \\boxed{24}', 'The remainder is 2.', 'Largest: \\boxed{124}'];
  let i = 0;
  const model = await startFakeEndpoint(() => ({ content: replies[i++]! }));
  try {
    const r = await runCli(['eval', 'exact', '--data', join(EXAMPLES, 'exact-sample.jsonl'), '--model', model.baseUrl, '--out', tempDir(), '--concurrency', '1']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /score: 0\.667 ± \d\.\d{3} \(n=3\)\s*$/);
  } finally {
    await model.close();
  }
});

test('exact --prompt plain sends the question alone and records the style; a wrong style or kind is a usage error', async () => {
  const questions = readFileSync(join(EXAMPLES, 'exact-sample.jsonl'), 'utf8').trim().split('\n').map((l) => { const row = JSON.parse(l) as { question?: string; problem?: string }; return row.question ?? row.problem; });
  const model = await startFakeEndpoint(() => ({ content: 'It comes to 24.' }));
  try {
    const out = tempDir();
    const r = await runCli(['eval', 'exact', '--data', join(EXAMPLES, 'exact-sample.jsonl'), '--model', model.baseUrl, '--out', out, '--concurrency', '1', '--prompt', 'plain']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(model.requests.map((q) => q.messages.at(-1)!.content), questions);
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as { settings: Record<string, unknown> };
    assert.equal(summary.settings['prompt'], 'plain');
    const boxed = await runCli(['eval', 'exact', '--data', join(EXAMPLES, 'exact-sample.jsonl'), '--model', model.baseUrl, '--out', tempDir(), '--concurrency', '1']);
    assert.equal(boxed.code, 0, boxed.stderr);
    assert.ok(model.requests.slice(questions.length).every((q, i) => q.messages.at(-1)!.content.startsWith(`${questions[i]}\n\n`) && q.messages.at(-1)!.content.includes('\\boxed{}')));
  } finally {
    await model.close();
  }
  const bad = await runCli(['eval', 'exact', '--data', join(EXAMPLES, 'exact-sample.jsonl'), '--out', tempDir(), '--prompt', 'fancy']);
  assert.equal(bad.code, 2);
  assert.equal(bad.stderr.trim(), 'gptoss eval: --prompt must be boxed or plain, got "fancy"');
  const other = await runCli(['eval', 'mcq', '--data', join(EXAMPLES, 'exact-sample.jsonl'), '--out', tempDir(), '--prompt', 'plain']);
  assert.equal(other.code, 2);
  assert.match(other.stderr, /--prompt applies to gptoss eval exact only/);
});

test('exact: a quantity after "per" (a rate\'s denominator) is no answer, a decimal is one number, citation links are left out', async () => {
  // Rates: the answer is the quantity, not what it is counted per.
  assert.equal(extractInteger('The strength is 120 mg per 5 mL.'), 120);
  assert.equal(extractInteger('Give 2.5 mL per 5 mL of water, twice a day.'), 2.5);
  assert.equal(extractInteger('Give 2.5 mL per 5 mL'), 2.5);
  assert.equal(extractInteger('Run it at 42 drops PER 15 minutes'), 42);
  assert.equal(extractInteger('It is 250 mg per 1,000 mL'), 250);
  assert.equal(extractInteger('\\boxed{16 per 100}'), 16);
  // "per" only as a word: "percent" and "per day" leave the number before them as it was.
  assert.equal(extractInteger('About 30 percent of 90 patients'), 90);
  assert.equal(extractInteger('4 tablets per day for 3 days'), 3);
  // A decimal is read whole (not 2 and 5); an integer written "5.0" is 5.
  assert.equal(extractInteger('It is 2.5'), 2.5);
  assert.equal(extractInteger('\\boxed{2.5}'), 2.5);
  assert.equal(extractInteger('so 5.0 in all.'), 5);
  // Citations the server turned into links: their file names and line anchors are no answer.
  assert.equal(extractInteger('Give 7 mg/kg ([Gentamicin 2](monographs/gentamicin-2.md#L3-L4)).'), 7);
  assert.equal(extractInteger('It is 120 mg per 5 mL ([Paracetamol \\[oral 5\\]](https://example.org/p?id=55))'), 120);
  // AIME-style answers as before.
  assert.equal(extractInteger('Thus m + n = 17, so the answer is \\boxed{017}.'), 17);
  assert.equal(extractInteger('The remainder is -3'), -3);
  assert.equal(extractInteger('3-4 times a day'), 4);
  assert.equal(extractInteger('first 3 then 42.'), 42);
  assert.equal(extractInteger('12345678901234567890'), undefined);

  // Through the evaluation: the grade follows.
  const dir = tempDir();
  const data = join(dir, 'rates.jsonl');
  writeFileSync(data, [
    { id: 'strength', question: 'Strength of the suspension in mg?', answer: 120 },
    { id: 'volume', question: 'How many mL?', answer: 5 },
    { id: 'aime', question: 'Find m + n.', answer: 17 },
  ].map((r) => JSON.stringify(r)).join('\n') + '\n');
  const replies: Record<string, string> = {
    'Strength of the suspension in mg?': 'The oral suspension holds 120 mg per 5 mL.',
    'How many mL?': 'Give 2.5 mL per 5 mL.',
    'Find m + n.': 'So m = 8 and n = 9: \\boxed{17}.',
  };
  const model = await startFakeEndpoint((messages) => ({ content: Object.entries(replies).find(([q]) => messages.at(-1)!.content.startsWith(q))![1] }));
  try {
    const out = join(dir, 'run');
    const r = await runCli(['eval', 'exact', '--data', data, '--model', model.baseUrl, '--out', out, '--concurrency', '1']);
    assert.equal(r.code, 0, r.stderr);
    const results = readFileSync(join(out, 'results.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { id: string; score: number; details: { extracted: number | null } });
    const byId = Object.fromEntries(results.map((x) => [x.id, x]));
    assert.deepEqual([byId['strength']!.details.extracted, byId['strength']!.score], [120, 1]);
    assert.deepEqual([byId['volume']!.details.extracted, byId['volume']!.score], [2.5, 0]);
    assert.deepEqual([byId['aime']!.details.extracted, byId['aime']!.score], [17, 1]);
  } finally {
    await model.close();
  }
});

test('bad input: invalid JSONL and missing flags exit 2 with one line', async () => {
  const dir = tempDir();
  const bad = join(dir, 'bad.jsonl');
  writeFileSync(bad, '{"prompt":[{"role":"user","content":"hi"}],"rubrics":[{"criterion":"x","points":1}]}\n{"prompt": [oops\n');
  const r = await runCli(['eval', 'healthbench', '--data', bad, '--model', 'http://127.0.0.1:9/v1', '--grader', 'http://127.0.0.1:9/v1', '--out', dir]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /bad\.jsonl:2: invalid JSON/);
  assert.equal(r.stderr.trim().split('\n').length, 1);
  const missing = await runCli(['eval', 'mcq', '--data', bad]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /--out is required/);
  assert.equal(missing.stderr.trim().split('\n').length, 1);
  assert.ok(!existsSync(join(dir, 'results.jsonl')));
});

test('the data file is checked before the model is loaded: bad data beside a broken local model names the data', async () => {
  const dir = tempDir();
  const bad = join(dir, 'bad.jsonl');
  writeFileSync(bad, '{"question": [oops\n');
  // An empty folder as a local model: loading it fails, so an error about it means it was loaded first.
  const r = await runCli(['eval', 'exact', '--data', bad, '--model', dir, '--out', join(dir, 'out')]);
  assert.equal(r.code, 2, r.stderr);
  assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /bad\.jsonl:1: invalid JSON/);
  const missingGrader = await runCli(['eval', 'healthbench', '--data', bad, '--model', dir, '--out', join(dir, 'out')]);
  assert.match(missingGrader.stderr, /--grader is required/);
});

test('bad input: a folder as --data and a file as --out are one-line usage errors', async () => {
  const dir = tempDir();
  const file = join(dir, 'a-file');
  writeFileSync(file, '');
  const data = join(EXAMPLES, 'mcq-sample.jsonl');
  const cases: [string[], RegExp][] = [
    [['eval', 'mcq', '--data', dir, '--model', 'http://127.0.0.1:9/v1', '--out', dir], /is a folder, not a file/],
    [['eval', 'mcq', '--data', data, '--model', 'http://127.0.0.1:9/v1', '--out', file], /--out .*a-file: is a file, not a folder/],
    [['eval', 'mcq', '--data', data, '--model', 'http://127.0.0.1:9/v1', '--out', join(file, 'sub')], /cannot create the output folder \(ENOTDIR\)/],
  ];
  for (const [args, pattern] of cases) {
    const r = await runCli(args);
    assert.equal(r.code, 2, args.join(' '));
    assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, pattern);
  }
});

test('answer extraction and verdict parsing', () => {
  assert.equal(extractChoice('Reasoning... Answer: (C)', 4), 'C');
  assert.equal(extractChoice('**B**', 4), 'B');
  assert.equal(extractChoice('The final answer is \\boxed{D}', 4), 'D');
  assert.equal(extractChoice('I would pick option A.', 4), 'A');
  assert.equal(extractChoice('No idea.', 4), undefined);
  assert.equal(extractInteger('\\boxed{1,000}'), 1000);
  assert.equal(extractInteger('\\boxed{3, 7}'), 7);
  assert.equal(extractInteger('first 3 then 42'), 42);
  assert.equal(extractInteger('none'), undefined);
  // A cited answer: the mark's cursor and line numbers are not the answer.
  assert.equal(extractInteger('The dose of gentamicin is 7 mg/kg 【1†L9】.'), 7);
  assert.equal(extractInteger('It is \\boxed{40} 【3†L2-L12】'), 40);
  assert.deepEqual(parseVerdict('{"explanation":"e","criteria_met":false}'), { explanation: 'e', criteriaMet: false });
  assert.equal(parseVerdict('{"criteria_met":"yes"}'), undefined);
  const s = summarise([{ a: 2, b: 0.5 }, { a: -1 }]);
  assert.equal(s.a!.mean, 0.5);
  assert.equal(s.b!.n, 1);
});

// Debian's package. CI (.ci/run) installs it and sets GPTOSS_REQUIRE_CHROMIUM=1, so there a missing
// browser fails the test; a developer machine without it skips with the reason.
const CHROMIUM = '/usr/bin/chromium';
const chromiumRequired = process.env.GPTOSS_REQUIRE_CHROMIUM === '1';
const chromiumSkip = existsSync(CHROMIUM) || chromiumRequired ? false : `${CHROMIUM} is not installed (apt-get install chromium)`;

test('the HTML report renders in headless Chromium', { skip: chromiumSkip }, async () => {
  assert.ok(existsSync(CHROMIUM), `GPTOSS_REQUIRE_CHROMIUM=1 but ${CHROMIUM} is missing (apt-get install --no-install-recommends chromium)`);
  const grader = await startFakeEndpoint(() => ({ content: '{"explanation":"fine","criteria_met":true}' }));
  const model = await startFakeEndpoint(() => ({ content: 'An answer', reasoning: 'private chain of thought' }));
  const out = tempDir();
  try {
    const r = await runCli(['eval', 'healthbench', '--data', join(EXAMPLES, 'healthbench-sample.jsonl'), '--model', model.baseUrl, '--grader', grader.baseUrl, '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    // Waits for the browser to exit; the timeout is only a safety net that fails the test loudly.
    const { stdout: dom } = await run(CHROMIUM, [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', `--user-data-dir=${join(out, 'chromium')}`, '--dump-dom', `file://${join(out, 'report.html')}`,
    ], { timeout: 60_000 });
    // The browser parsed the page into the expected structure: four cases, one reasoning fold each, the metric table.
    assert.equal(dom.match(/<section class="case">/g)?.length, 4);
    assert.equal(dom.match(/<details>/g)?.length, 4);
    assert.match(dom, /<td>overall_score<\/td>/);
    assert.match(dom, /max_tokens: 2048 · timeout_s: 600/, 'the request bounds are shown with the settings');
  } finally {
    await grader.close();
    await model.close();
  }
});

test('an unreachable endpoint is named with the reason (ECONNREFUSED ...), not only "connection failed"', async () => {
  // A port that was just free: connecting is refused.
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((r) => server.close(() => r()));
  const sampler = new HttpSampler({ baseUrl: `http://127.0.0.1:${port}/v1`, model: 'm', retries: 0 });
  await assert.rejects(sampler.complete([{ role: 'user', content: 'hi' }]), (e: Error) => {
    assert.match(e.message, new RegExp(`^http://127\\.0\\.0\\.1:${port}/v1/chat/completions: connection failed \\(ECONNREFUSED\\)$`));
    return true;
  });
});

test('dataset rows that are JSON but not objects are one-line input errors in every format (null used to crash mcq and exact)', () => {
  const parsers: [string, (text: string, source: string) => unknown][] = [['mcq', parseMcq], ['exact', parseExact], ['healthbench', parseHealthBench]];
  for (const [name, parse] of parsers) {
    for (const row of ['null', '[1, 2]', '"text"', '7']) {
      assert.throws(() => parse(`\n${row}\n`, 'd.jsonl'), (e: unknown) => {
        assert.ok(e instanceof UserError, `${name} ${row}: ${String(e)}`);
        assert.equal(e.message, 'd.jsonl:2: expected a JSON object');
        return true;
      });
    }
    assert.throws(() => parse('{"a": ', 'd.jsonl'), /^UserError: d\.jsonl:1: invalid JSON \(/);
  }
});
