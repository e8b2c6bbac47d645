// The bounds of an evaluation run: every request carries a token cap and runs under a time limit
// (both recorded in summary.json and the report), a request that never answers is abandoned and
// its case failed, a reply past the size limit is refused without asking again, and a case the
// grader could not judge names its criterion and makes the exit status 1. The fake endpoints are
// event-driven: a hanging request is released by the client closing it, and the test waits for
// that close, never on the clock.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFakeEndpoint } from './fake-endpoint.ts';
import { runCli } from '../cli/in-process.ts';
import { HttpSampler } from '../../src/evals/index.ts';
import { UserError } from '../../src/errors.ts';

const EXAMPLES = join(import.meta.dirname, '../../examples/evals');
const HEALTHBENCH = join(EXAMPLES, 'healthbench-sample.jsonl');
const EXACT = join(EXAMPLES, 'exact-sample.jsonl');

const temps: string[] = [];
test.after(() => {
  for (const dir of temps) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'gptoss-eval-limits-'));
  temps.push(dir);
  return dir;
}

interface Summary {
  complete: boolean;
  truncated: number;
  failed: { id: string; error: string }[];
  settings: Record<string, string | number>;
}

const readSummary = (out: string) => JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as Summary;

test('max_tokens 2048 by default goes with every model and grader request and is recorded with the timeout', async () => {
  const grader = await startFakeEndpoint(() => ({ content: '{"explanation":"ok","criteria_met":true}' }));
  const model = await startFakeEndpoint(() => ({ content: 'an answer' }));
  const out = tempDir();
  try {
    const r = await runCli(['eval', 'healthbench', '--data', HEALTHBENCH, '--model', model.baseUrl, '--grader', grader.baseUrl, '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(model.requests.length, 4);
    assert.equal(grader.requests.length, 12);
    for (const req of [...model.requests, ...grader.requests]) assert.equal(req.body.max_tokens, 2048);
    const summary = readSummary(out);
    assert.equal(summary.settings.max_tokens, 2048);
    assert.equal(summary.settings.timeout_s, 600);
    assert.equal(summary.complete, true);
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    assert.match(html, /max_tokens: 2048/);
    assert.match(html, /timeout_s: 600/);
  } finally {
    await grader.close();
    await model.close();
  }
});

test('--max-tokens and --timeout are sent and recorded; answers cut off at the cap are counted', async () => {
  const model = await startFakeEndpoint((messages) => (messages[0]!.content.includes('divisors') ? { content: 'Counting the div', finishReason: 'length' } : { content: '\\boxed{2}' }));
  const out = tempDir();
  try {
    const r = await runCli(['eval', 'exact', '--data', EXACT, '--model', model.baseUrl, '--out', out, '--max-tokens', '64', '--timeout', '30']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(model.requests.map((q) => q.body.max_tokens), [64, 64, 64]);
    const summary = readSummary(out);
    assert.deepEqual([summary.settings.max_tokens, summary.settings.timeout_s, summary.truncated], [64, 30, 1]);
    assert.match(r.stderr, /^1 answer\(s\) cut off at --max-tokens 64$/m);
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    assert.match(html, /max_tokens: 64 · timeout_s: 30/);
    assert.match(html, /1 answer\(s\) cut off at the token cap/);
    assert.equal(html.match(/\(cut off at the token cap\)/g)?.length, 1);
  } finally {
    await model.close();
  }
});

test('bad --max-tokens and --timeout values are one-line usage errors', async () => {
  for (const [flag, value, pattern] of [['--max-tokens', '0', /--max-tokens must be >= 1/], ['--max-tokens', '2.5', /--max-tokens expects an integer/], ['--timeout', '0', /--timeout must be >= 0\.001/], ['--timeout', 'soon', /--timeout expects a number/]] as const) {
    const r = await runCli(['eval', 'exact', '--data', EXACT, '--model', 'http://127.0.0.1:9/v1', '--out', tempDir(), flag, value]);
    assert.equal(r.code, 2, `${flag} ${value}`);
    assert.match(r.stderr, pattern);
    assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
  }
});

test('HttpSampler: a request that never answers is aborted at the timeout and not retried', async () => {
  const model = await startFakeEndpoint(() => ({ content: '', hang: true }));
  try {
    const sampler = new HttpSampler({ baseUrl: model.baseUrl, model: 'm', timeoutMs: 200, retries: 3 });
    await assert.rejects(sampler.complete([{ role: 'user', content: 'hi' }]), (e: unknown) => {
      assert.ok(e instanceof UserError, String(e));
      assert.equal(e.message, `${model.baseUrl}/chat/completions: no reply within 0.2 s (the per-request timeout); not retried`);
      return true;
    });
    // The client closed the connection (the endpoint saw it) and did not ask again.
    await model.abandoned(1);
    assert.equal(model.requests.length, 1);
  } finally {
    await model.close();
  }
});

test('HttpSampler: a reply over 64 MiB is refused and not asked for again', async () => {
  const huge = 'x'.repeat(64 * 1024 * 1024 + 1);
  const model = await startFakeEndpoint(() => ({ content: '', raw: huge }));
  try {
    const sampler = new HttpSampler({ baseUrl: model.baseUrl, model: 'm', retries: 2 });
    await assert.rejects(sampler.complete([{ role: 'user', content: 'hi' }]), (e: unknown) => {
      assert.ok(e instanceof UserError, String(e));
      assert.equal(e.message, `${model.baseUrl}/chat/completions: the reply is larger than 64 MiB; not retried`);
      return true;
    });
    // Each retry downloaded 64 MiB again, to be refused again.
    assert.equal(model.requests.length, 1);
  } finally {
    await model.close();
  }
});

test('eval --timeout: the case whose answer never comes fails, the others are scored, exit status 1', async () => {
  const model = await startFakeEndpoint((messages) => (messages[0]!.content.includes('remainder') ? { content: '', hang: true } : { content: '\\boxed{24}' }));
  const out = tempDir();
  try {
    const r = await runCli(['eval', 'exact', '--data', EXACT, '--model', model.baseUrl, '--out', out, '--timeout', '0.2']);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`^failed: case exact-2: ${model.baseUrl.replace(/\./g, '\\.')}/chat/completions: no reply within 0\\.2 s \\(the per-request timeout\\); not retried$`, 'm'));
    assert.match(r.stderr, /^1 of 3 cases were not answered and graded/m);
    assert.match(r.stdout, /score: 0\.500 ± \d\.\d{3} \(n=2\)\s*$/);
    await model.abandoned(1);
    assert.equal(model.requests.length, 3, 'the abandoned request was not retried');
    const summary = readSummary(out);
    assert.equal(summary.complete, false);
    assert.deepEqual(summary.failed.map((f) => f.id), ['exact-2']);
    assert.equal(summary.settings.timeout_s, 0.2);
    assert.match(readFileSync(join(out, 'report.html'), 'utf8'), /exact-2: .*no reply within 0\.2 s/);
  } finally {
    await model.close();
  }
});

test('a grader reply without a verdict names the case and the criterion, and the exit status is 1', async () => {
  const grader = await startFakeEndpoint((messages) => (messages[0]!.content.includes('Advises contacting the prescribing')
    ? { content: 'I would rather not say.' }
    : { content: '{"explanation":"ok","criteria_met":true}' }));
  const model = await startFakeEndpoint(() => ({ content: 'an answer' }));
  const out = tempDir();
  try {
    const r = await runCli(['eval', 'healthbench', '--data', HEALTHBENCH, '--model', model.baseUrl, '--grader', grader.baseUrl, '--out', out]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^failed: case hb-statin-question: rubric item 2 of 3 \("Advises contacting the prescribing[^"]*"\): the grader gave no parseable verdict in 5 attempts \(last reply: "I would rather not say\."\)$/m);
    assert.match(r.stdout, /\(n=3\)\s*$/, 'the ungraded case is not scored');
    const summary = readSummary(out);
    assert.equal(summary.complete, false);
    assert.deepEqual(summary.failed.map((f) => f.id), ['hb-statin-question']);
    assert.equal(readFileSync(join(out, 'results.jsonl'), 'utf8').trim().split('\n').length, 3);
  } finally {
    await grader.close();
    await model.close();
  }
});

test('a grader reply that is not JSON at all names the case and the criterion (it used to crash the run)', async () => {
  const grader = await startFakeEndpoint((messages) => (messages[0]!.content.includes('Uses plain language')
    ? { content: '', raw: '<html>502 Bad Gateway</html>' }
    : { content: '{"explanation":"ok","criteria_met":false}' }));
  const model = await startFakeEndpoint(() => ({ content: 'an answer' }));
  try {
    const r = await runCli(['eval', 'healthbench', '--data', HEALTHBENCH, '--model', model.baseUrl, '--grader', grader.baseUrl, '--out', tempDir()]);
    assert.equal(r.code, 1, r.stderr);
    const line = `failed: case hb-fever-infant: rubric item 4 of 4 ("Uses plain language`;
    assert.ok(r.stderr.split('\n').some((l) => l.startsWith(line) && l.endsWith('the reply is not JSON: "<html>502 Bad Gateway</html>"')), r.stderr);
  } finally {
    await grader.close();
    await model.close();
  }
});
