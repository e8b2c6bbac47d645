// Policy-based classification: label parsing from final answers, `gptoss classify` against a
// scripted OpenAI-compatible endpoint (prompt structure, results with fields and reasoning, answers
// that do not follow the format reported with their input line, resume, bad input), the library's
// classify(), and `gptoss eval classify` with precision, recall and the confusion table computed
// by hand for a small gold set.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFakeEndpoint, type FakeReply } from './fake-endpoint.ts';
import { runCli } from '../cli/in-process.ts';
import { classify, FormatError, parseClassifyInput, parseLabel, type ClassifyResult } from '../../src/evals/classify.ts';
import { classificationMetrics } from '../../src/evals/classify-eval.ts';
import type { Sampler } from '../../src/evals/types.ts';

const ROOT = join(import.meta.dirname, '../..');
const POLICY = join(ROOT, 'examples/policies/phi.md');
const MESSAGES = join(ROOT, 'examples/classify/messages.jsonl');

const temps: string[] = [];
test.after(() => {
  for (const dir of temps) rmSync(dir, { recursive: true, force: true });
});
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'gptoss-classify-'));
  temps.push(dir);
  return dir;
}

function readJsonl<T>(path: string): T[] {
  return readFileSync(path, 'utf8').split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as T);
}

const examples = readJsonl<{ id: string; text: string; label: number }>(MESSAGES);

/** A scripted model answering the PHI policy with its gold label as JSON, except where `override` says otherwise. */
function phiModel(override: (text: string) => FakeReply | undefined = () => undefined) {
  return (messages: { role: string; content: string }[]): FakeReply => {
    const text = messages.at(-1)!.content;
    const o = override(text);
    if (o !== undefined) return o;
    const gold = examples.find((e) => e.text === text);
    assert.ok(gold !== undefined, `unexpected content: ${text}`);
    return {
      content: JSON.stringify({ violation: gold.label, identifiers: gold.label === 1 ? ['scripted'] : [], rationale: `scripted for ${gold.id}` }),
      reasoning: `reasoning about ${gold.id}`,
    };
  };
}

test('parseLabel: bare labels, JSON answers (fenced or not), a named label field, and the allowed labels', () => {
  assert.deepEqual(parseLabel(' 1\n'), { label: '1' });
  assert.deepEqual(parseLabel('INVALID', { labels: ['VALID', 'INVALID'] }), { label: 'INVALID' });
  assert.deepEqual(parseLabel('{"violation": 1, "policy_category": "H2.f"}'), { label: '1', fields: { violation: 1, policy_category: 'H2.f' } });
  assert.deepEqual(parseLabel('```json\n{"label": "spam"}\n```'), { label: 'spam', fields: { label: 'spam' } });
  assert.deepEqual(parseLabel('{"contains_phi": true, "violation": 0}', { labelField: 'contains_phi' }).label, 'true');
  const malformed: [string, Parameters<typeof parseLabel>[1], RegExp][] = [
    ['', {}, /the answer is empty/],
    ['1\nbecause the message names a patient', {}, /expected the label alone, got several lines/],
    ['{"violation": 1,', {}, /looks like JSON but does not parse/],
    ['{"verdict": 1}', {}, /has no label field \("violation", "label"/],
    ['{"violation": 1}', { labelField: 'phi' }, /has no "phi"/],
    ['{"violation": {"x": 1}}', {}, /"violation" is not a label/],
    ['maybe', { labels: ['0', '1'] }, /expected one of "0", "1", got "maybe"/],
    ['[1]', {}, /JSON but not an object/],
  ];
  for (const [answer, format, message] of malformed) {
    assert.throws(() => parseLabel(answer, format), (e: unknown) => e instanceof FormatError && message.test(e.message) && e.answer === answer, JSON.stringify(answer));
  }
});

test('gptoss classify: policy as system message, labels and fields parsed, reasoning kept, malformed answers named by line, resume', async () => {
  // m04 (line 4) first gets prose instead of the JSON the policy asks for; m07 (line 7) a label outside the policy's.
  let misbehave = true;
  const model = await startFakeEndpoint(phiModel((text) => {
    if (!misbehave) return undefined;
    if (text.startsWith('Ms. Alvarez')) return { content: 'This message contains PHI.' };
    if (text.startsWith('The updated sepsis')) return { content: '{"violation": 2, "identifiers": []}' };
    return undefined;
  }));
  const out = join(tempDir(), 'results.jsonl');
  try {
    const args = ['classify', '--policy', POLICY, '--input', MESSAGES, '--endpoint', model.baseUrl, '--out', out, '--labels', '0,1', '--effort', 'high', '--concurrency', '3'];
    const first = await runCli(args);
    assert.equal(first.code, 1, first.stderr);
    assert.match(first.stderr, /failed: .*messages\.jsonl:4 \(id "m04"\): the answer does not follow the policy's output format: expected one of "0", "1", got "This message contains PHI\."/);
    assert.match(first.stderr, /failed: .*messages\.jsonl:7 \(id "m07"\): the answer does not follow the policy's output format: expected one of "0", "1", got "2"/);
    assert.match(first.stderr, /labels \(8 of 10 texts\): 0: 5, 1: 3/);
    assert.match(first.stderr, /2 of 10 texts were not classified; rerun with the same --out/);
    assert.equal(model.requests.length, 10);
    const policy = readFileSync(POLICY, 'utf8');
    for (const r of model.requests) {
      assert.equal(r.messages.length, 2);
      assert.deepEqual(r.messages[0], { role: 'system', content: policy });
      assert.equal(r.messages[1]!.role, 'user');
      assert.equal(r.body.reasoning_effort, 'high');
    }
    const results = readJsonl<ClassifyResult>(out);
    assert.deepEqual(results.map((r) => r.id).sort(), ['m01', 'm02', 'm03', 'm05', 'm06', 'm08', 'm09', 'm10']);
    for (const r of results) {
      const gold = examples.find((e) => e.id === r.id)!;
      assert.equal(r.label, String(gold.label));
      assert.equal(r.text, gold.text);
      assert.equal(r.reasoning, `reasoning about ${r.id}`);
      assert.deepEqual(r.fields?.identifiers, gold.label === 1 ? ['scripted'] : []);
      assert.equal(r.line, examples.indexOf(gold) + 1);
    }

    // The rerun asks only for the two texts not yet classified, and completes the file.
    misbehave = false;
    const second = await runCli(args);
    assert.equal(second.code, 0, second.stderr);
    assert.equal(model.requests.length, 12);
    assert.deepEqual(model.requests.slice(10).map((r) => r.messages[1]!.content.slice(0, 12)).sort(), ['Ms. Alvarez ', 'The updated '].sort());
    assert.match(second.stderr, /8 text\(s\) already classified/);
    assert.match(second.stderr, /labels \(10 of 10 texts\): 0: 6, 1: 4/);
    assert.equal(readJsonl<ClassifyResult>(out).length, 10);

    // Another policy never reuses these results.
    const otherPolicy = join(tempDir(), 'other.md');
    writeFileSync(otherPolicy, '# Another policy\nAnswer 0 or 1.\n');
    const third = await runCli(['classify', '--policy', otherPolicy, '--input', MESSAGES, '--endpoint', model.baseUrl, '--out', out]);
    assert.equal(third.code, 2);
    assert.match(third.stderr, /results\.jsonl:\d+: holds a result for id "m\d\d" made with another policy/);
    assert.equal(model.requests.length, 12);
  } finally {
    await model.close();
  }
});

test('gptoss classify: stdin in, results on stdout; a cut-off answer says so', async () => {
  const model = await startFakeEndpoint((messages) => (messages[1]!.content === 'long one' ? { content: '', finishReason: 'length' } : { content: '0' }));
  try {
    const input = '{"text": "hello there"}\n\n{"id": 7, "text": "long one"}\n';
    const r = await runCli(['classify', '--policy', POLICY, '--input', '-', '--endpoint', model.baseUrl, '--concurrency', '1'], input);
    assert.equal(r.code, 1, r.stderr);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as ClassifyResult);
    assert.equal(lines.length, 1);
    assert.equal(lines[0]!.label, '0');
    assert.match(lines[0]!.id, /^sha256:[0-9a-f]{16}$/);
    assert.match(r.stderr, /failed: stdin:3 \(id "7"\): the answer does not follow the policy's output format: the answer is empty \(the answer was cut off at the token cap/);
  } finally {
    await model.close();
  }
});

test('gptoss classify: bad input is one line naming the line, exit 2, before any request', async () => {
  const model = await startFakeEndpoint(() => ({ content: '0' }));
  const dir = tempDir();
  try {
    const cases: [string, RegExp][] = [
      ['{"text": "fine"}\n{"text": "broken"\n', /^gptoss classify: .*bad\.jsonl:2: invalid JSON/],
      ['{"text": "fine"}\n\n{"body": "no text here"}\n', /^gptoss classify: .*bad\.jsonl:3: missing the "text" field/],
      ['{"text": 5}\n', /^gptoss classify: .*bad\.jsonl:1: "text" must be a string/],
      ['{"id": "a", "text": "x"}\n{"id": "a", "text": "y"}\n', /^gptoss classify: .*bad\.jsonl: id "a" appears on lines 1 and 2/],
    ];
    for (const [content, message] of cases) {
      const path = join(dir, 'bad.jsonl');
      writeFileSync(path, content);
      const r = await runCli(['classify', '--policy', POLICY, '--input', path, '--endpoint', model.baseUrl]);
      assert.equal(r.code, 2, content);
      assert.match(r.stderr, message);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    }
    const noPolicy = await runCli(['classify', '--input', MESSAGES, '--endpoint', model.baseUrl]);
    assert.equal(noPolicy.code, 2);
    assert.match(noPolicy.stderr, /--policy POLICY\.md is required/);
    const missing = await runCli(['classify', '--policy', join(dir, 'nope.md'), '--input', MESSAGES, '--endpoint', model.baseUrl]);
    assert.match(missing.stderr, /--policy .*nope\.md: no such file/);
    const badLabels = await runCli(['classify', '--policy', POLICY, '--input', MESSAGES, '--endpoint', model.baseUrl, '--labels', '0,,1']);
    assert.match(badLabels.stderr, /--labels expects comma-separated labels/);
    assert.equal(model.requests.length, 0);
  } finally {
    await model.close();
  }
});

test('classify(): plain strings, results appended as they finish, a second call skips the done ones', async () => {
  const asked: string[] = [];
  const sampler: Sampler = {
    label: 'scripted',
    complete: async (messages) => {
      asked.push(messages[1]!.content);
      return { text: messages[1]!.content.includes('spam') ? 'INVALID' : 'VALID', reasoning: 'checked', usage: { inputTokens: 3, outputTokens: 2 } };
    },
  };
  const resultsPath = join(tempDir(), 'r.jsonl');
  const texts = ['buy spam now', 'hello Sam, the report is attached', 'more spam'];
  const first = await classify(texts.slice(0, 2), { sampler, policy: 'Spam policy: answer VALID or INVALID.', format: { labels: ['VALID', 'INVALID'] }, resultsPath });
  assert.deepEqual(first.results.map((r) => r.label), ['INVALID', 'VALID']);
  assert.deepEqual(first.usage, { inputTokens: 6, outputTokens: 4 });
  const second = await classify(texts, { sampler, policy: 'Spam policy: answer VALID or INVALID.', format: { labels: ['VALID', 'INVALID'] }, resultsPath });
  assert.deepEqual(asked, [...texts.slice(0, 2), 'more spam']);
  assert.equal(second.resumed, 2);
  assert.equal(second.classified, 1);
  assert.deepEqual(second.labelCounts, [['INVALID', 2], ['VALID', 1]]);
  assert.deepEqual(second.results.map((r) => r.text), texts);
  assert.equal(readJsonl<ClassifyResult>(resultsPath).length, 3);
  assert.deepEqual(parseClassifyInput('{"id": 1, "text": "a"}\n', 'x.jsonl'), [{ id: '1', text: 'a', line: 1 }]);
});

test('gptoss eval classify: accuracy, per-label precision and recall, confusion table in summary.json and the report', async () => {
  // Gold and scripted predictions; "maybe" is outside --labels 0,1, so g7 has no valid answer.
  const gold: [string, number, string][] = [
    ['g1', 1, '1'], ['g2', 1, '1'], ['g3', 1, '0'], ['g4', 0, '0'], ['g5', 0, '1'], ['g6', 0, '0'], ['g7', 0, 'maybe'],
  ];
  const dir = tempDir();
  const data = join(dir, 'gold.jsonl');
  writeFileSync(data, gold.map(([id, label]) => JSON.stringify({ id, text: `message ${id}`, label })).join('\n') + '\n');
  const model = await startFakeEndpoint((messages) => ({ content: gold.find(([id]) => messages[1]!.content === `message ${id}`)![2], reasoning: 'weighing the policy' }));
  const out = join(dir, 'run');
  try {
    const r = await runCli(['eval', 'classify', '--policy', POLICY, '--data', data, '--model', model.baseUrl, '--out', out, '--labels', '0,1']);
    assert.equal(r.code, 0, r.stderr);
    // Correct: g1, g2, g4, g6 → 4/7.
    assert.match(r.stdout.trim().split('\n').at(-1)!, /^score: 0\.571 ± \d\.\d{3} \(n=7\)$/);
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as {
      metrics: Record<string, { mean: number; n: number }>;
      classification: ReturnType<typeof classificationMetrics>;
      settings: Record<string, unknown>;
    };
    // Label 1: predicted for g1, g2, g5 (2 right) → precision 2/3; gold g1, g2, g3 (2 found) → recall 2/3.
    // Label 0: predicted for g3, g4, g6 (2 right) → precision 2/3; gold g4..g7 (2 found) → recall 2/4.
    const c = summary.classification;
    assert.equal(c.n, 7);
    assert.equal(c.accuracy, 4 / 7);
    assert.equal(c.invalid, 1);
    assert.deepEqual(c.labels, [
      { label: '0', support: 4, predicted: 3, precision: 2 / 3, recall: 0.5, f1: (2 * (2 / 3) * 0.5) / (2 / 3 + 0.5) },
      { label: '1', support: 3, predicted: 3, precision: 2 / 3, recall: 2 / 3, f1: 2 / 3 },
    ]);
    assert.deepEqual(c.confusion, { 1: { 1: 2, 0: 1 }, 0: { 0: 2, 1: 1, '(no valid answer)': 1 } });
    // The per-case means the harness reports are the same precision and recall.
    assert.equal(summary.metrics['precision:1']!.mean, 2 / 3);
    assert.equal(summary.metrics['recall:0']!.mean, 0.5);
    assert.equal(summary.metrics['recall:0']!.n, 4);
    assert.equal(summary.metrics.accuracy!.mean, 4 / 7);
    assert.equal(summary.settings.labels, '0,1');
    assert.match(r.stderr, /label 0: precision 0\.667, recall 0\.500 \(4 gold, 3 predicted\)/);
    assert.match(r.stderr, /1 answer\(s\) did not follow the policy's output format/);

    const html = readFileSync(join(out, 'report.html'), 'utf8');
    assert.match(html, /<h2>Classification<\/h2>/);
    assert.match(html, /accuracy 0\.571 \(4 of 7 correct\)/);
    assert.match(html, /<tr><td>0<\/td><td class="num">4<\/td><td class="num">3<\/td><td class="num">0\.667<\/td><td class="num">0\.500<\/td>/);
    // Gold 0 row: predicted 0 twice (right), 1 once, no valid answer once.
    assert.match(html, /<tr><th>0<\/th><td class="num hit">2<\/td><td class="num miss">1<\/td><td class="num miss">1<\/td><\/tr>/);
    assert.match(html, /<tr><th>1<\/th><td class="num miss">1<\/td><td class="num hit">2<\/td><td class="num">0<\/td><\/tr>/);
    assert.match(html, /expected one of &quot;0&quot;, &quot;1&quot;, got &quot;maybe&quot;/);

    // Resuming with another policy would mix two policies in one score: refused.
    const other = join(dir, 'other.md');
    writeFileSync(other, 'Answer 0 or 1.');
    const again = await runCli(['eval', 'classify', '--policy', other, '--data', data, '--model', model.baseUrl, '--out', out]);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /holds a run made with another policy/);
  } finally {
    await model.close();
  }
});

test('gptoss eval classify: gold rows without a label, or with one outside --labels, are refused with their line', async () => {
  const dir = tempDir();
  const data = join(dir, 'gold.jsonl');
  const cases: [string, string[], RegExp][] = [
    ['{"text": "a", "label": 1}\n{"text": "b"}\n', [], /gold\.jsonl:2: "label" \(the correct label\) must be/],
    ['{"text": "a", "label": 1}\n{"text": "b", "label": "yes"}\n', ['--labels', '0,1'], /gold\.jsonl:2: the label "yes" is not one of --labels 0,1/],
  ];
  for (const [content, flags, message] of cases) {
    writeFileSync(data, content);
    const r = await runCli(['eval', 'classify', '--policy', POLICY, '--data', data, '--model', 'http://127.0.0.1:9/v1', '--out', join(dir, 'o'), ...flags]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, message);
  }
});
