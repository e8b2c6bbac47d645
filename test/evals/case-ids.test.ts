// Case identity: results are stored and resumed by case id, so ids must be unique (a repeated
// prompt_id used to drop one result and count another twice), rows without an id are known by
// their content (a line number used to hand an earlier answer to whichever case moved onto that
// line), a multiple-choice case shows its choices in an order set by the seed and its id (its
// position changed with --n and with edits above it), and a case that cannot be scored is refused
// before anything is sampled.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFakeEndpoint } from './fake-endpoint.ts';
import { runCli } from '../cli/in-process.ts';
import { parseExact, parseHealthBench, parseMcq, runEval, selectSubset } from '../../src/evals/index.ts';
import { UserError } from '../../src/errors.ts';

const temps: string[] = [];
test.after(() => {
  for (const dir of temps) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'gptoss-eval-ids-'));
  temps.push(dir);
  return dir;
}

const hbRow = (id: string | undefined, points: number[]) => JSON.stringify({
  ...(id !== undefined ? { prompt_id: id } : {}),
  prompt: [{ role: 'user', content: `question ${id ?? points.join(',')}` }],
  rubrics: points.map((p, i) => ({ criterion: `item ${i}`, points: p, tags: p < 0 ? ['level:cluster'] : [] })),
});

test('a repeated prompt_id is refused before anything is sampled, naming the id and both lines', async () => {
  const dir = tempDir();
  const data = join(dir, 'dup.jsonl');
  writeFileSync(data, [hbRow('a', [5]), hbRow('b', [5]), hbRow('a', [3])].join('\n') + '\n');
  const model = await startFakeEndpoint(() => ({ content: 'x' }));
  try {
    const r = await runCli(['eval', 'healthbench', '--data', data, '--model', model.baseUrl, '--grader', model.baseUrl, '--out', join(dir, 'out')]);
    assert.equal(r.code, 2);
    assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /dup\.jsonl: prompt_id "a" appears on lines 1 and 3 \(ids must be unique\)/);
    assert.equal(model.requests.length, 0);
  } finally {
    await model.close();
  }
});

test('repeated ids and repeated id-less rows are refused in every format', () => {
  const cases: [string, () => unknown, string][] = [
    ['mcq id', () => parseMcq('{"id":"q","question":"?","choices":["a","b"],"answer":0}\n\n{"id":"q","question":"!","choices":["a","b"],"answer":1}', 'm.jsonl'), 'm.jsonl: id "q" appears on lines 1 and 3 (ids must be unique)'],
    ['exact id', () => parseExact('{"id":7,"question":"?","answer":1}\n{"id":"7","question":"!","answer":2}', 'e.jsonl'), 'e.jsonl: id "7" appears on lines 1 and 2 (ids must be unique)'],
    ['exact no id', () => parseExact('{"question":"?","answer":1}\n{"question":"!","answer":1}\n{"question":"?","answer":1}', 'e.jsonl'), 'e.jsonl: lines 1 and 3 hold the same case (give them distinct ids or remove one)'],
    ['healthbench no id', () => parseHealthBench([hbRow(undefined, [4]), hbRow(undefined, [4])].join('\n'), 'h.jsonl'), 'h.jsonl: lines 1 and 2 hold the same case (give them distinct prompt_ids or remove one)'],
  ];
  for (const [name, parse, message] of cases) {
    assert.throws(parse, (e: unknown) => {
      assert.ok(e instanceof UserError, `${name}: ${String(e)}`);
      assert.equal(e.message, message, name);
      return true;
    });
  }
});

test('rows without ids are keyed by content: a case inserted above the others does not inherit their answers on resume', async () => {
  const dir = tempDir();
  const data = join(dir, 'cases.jsonl');
  const out = join(dir, 'out');
  const q = (n: number) => JSON.stringify({ question: `What is ${n} + 0?`, answer: n });
  // The model answers 1 and 2 right and 0 wrong.
  const model = await startFakeEndpoint((messages) => {
    const n = Number(/What is (\d+)/.exec(messages[0]!.content)![1]);
    return { content: `\\boxed{${n === 0 ? 9 : n}}` };
  });
  try {
    writeFileSync(data, `${q(1)}\n${q(2)}\n`);
    const first = await runCli(['eval', 'exact', '--data', data, '--model', model.baseUrl, '--out', out]);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /score: 1\.000 ± \d\.\d{3} \(n=2\)\s*$/);
    const ids = readFileSync(join(out, 'results.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { id: string }).id);
    for (const id of ids) assert.match(id, /^sha256:[0-9a-f]{16}$/);

    // Line numbers as ids gave the new first case the old first answer (score 1.000); right is 2/3.
    writeFileSync(data, `${q(0)}\n${q(1)}\n${q(2)}\n`);
    const second = await runCli(['eval', 'exact', '--data', data, '--model', model.baseUrl, '--out', out]);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /score: 0\.667 ± \d\.\d{3} \(n=3\)\s*$/);
    assert.match(second.stderr, /3 cases \(2 from an earlier run\)/);
    assert.equal(model.requests.length, 3, 'only the new case was sampled');
    assert.match(model.requests[2]!.messages[0]!.content, /What is 0 \+ 0/);
  } finally {
    await model.close();
  }
});

test('mcq shows a case\'s choices in an order set by --seed and the case id, not by its place in the file or in --n\'s pick', async () => {
  const dir = tempDir();
  const data = join(dir, 'mcq.jsonl');
  const row = (id: string) => JSON.stringify({ id, question: `Question ${id}?`, choices: ['red', 'green', 'blue', 'yellow', 'black'], answer: 0 });
  const ids = ['q1', 'q2', 'q3', 'q4', 'q5', 'q6'];
  const model = await startFakeEndpoint(() => ({ content: 'Answer: A' }));
  /** Each question's prompt (its choices in the order shown), after one run of `gptoss eval mcq`. */
  const shown = async (lines: string[], extra: string[]): Promise<Map<string, string>> => {
    writeFileSync(data, lines.join('\n') + '\n');
    const before = model.requests.length;
    const r = await runCli(['eval', 'mcq', '--data', data, '--model', model.baseUrl, '--out', tempDir(), '--concurrency', '1', ...extra]);
    assert.equal(r.code, 0, r.stderr);
    const prompts = model.requests.slice(before).map((q) => q.messages[0]!.content);
    return new Map(prompts.map((p) => [/Question (\w+)\?/.exec(p)![1]!, p]));
  };
  try {
    const all = await shown(ids.map(row), ['--seed', '3']);
    assert.equal(all.size, ids.length);
    // A case inserted above, the file reversed, a random subset of 3: each question still comes in its own order.
    const moved = await shown([row('new'), ...[...ids].reverse().map(row)], ['--seed', '3']);
    const picked = await shown(ids.map(row), ['--seed', '3', '--n', '3']);
    assert.equal(picked.size, 3);
    for (const [id, prompt] of [...moved, ...picked]) if (id !== 'new') assert.equal(prompt, all.get(id), `question ${id}`);
    // The order is shuffled, differs between cases, and --seed changes it.
    assert.ok(new Set(all.values()).size > 1, 'every case in one order');
    const reseeded = await shown(ids.map(row), ['--seed', '4']);
    assert.ok(ids.some((id) => reseeded.get(id) !== all.get(id)), '--seed 4 shows the choices as --seed 3 does');
  } finally {
    await model.close();
  }
});

test('a case without positive points is refused before it is sampled, naming the case', async () => {
  const dir = tempDir();
  const data = join(dir, 'neg.jsonl');
  writeFileSync(data, [hbRow('fine', [5, -2]), hbRow('only-penalties', [-5, -2])].join('\n') + '\n');
  const model = await startFakeEndpoint(() => ({ content: 'x' }));
  try {
    const r = await runCli(['eval', 'healthbench', '--data', data, '--model', model.baseUrl, '--grader', model.baseUrl, '--out', join(dir, 'out')]);
    assert.equal(r.code, 2);
    assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /neg\.jsonl:2: case only-penalties has no rubric item with positive points, so it cannot be scored/);
    assert.equal(model.requests.length, 0);
  } finally {
    await model.close();
  }
});

test('--subset consensus drops a case whose cluster items are all penalties (nothing left to score against)', () => {
  // hbRow tags only the negative items level:cluster.
  const cases = parseHealthBench([hbRow('mixed', [5, -2]), hbRow('positive', [5])].join('\n'), 'h.jsonl');
  assert.deepEqual(selectSubset(cases, 'consensus').map((c) => c.promptId), []);
  const withCluster = cases.map((c) => ({ ...c, rubrics: c.rubrics.map((r) => ({ ...r, tags: ['level:cluster'] })) }));
  assert.deepEqual(selectSubset(withCluster, 'consensus').map((c) => c.promptId), ['mixed', 'positive']);
});

test('the runner refuses two cases with one id (library callers bypass the parsers)', async () => {
  const never = () => Promise.reject(new Error('a case ran'));
  await assert.rejects(
    runEval([{ id: 'x', run: never }, { id: 'x', run: never }], { name: 't', outDir: tempDir(), concurrency: 1, modelLabel: 'm', settings: {}, headline: 'accuracy' }),
    (e: unknown) => e instanceof UserError && e.message === 'case id "x" is used by two cases (ids must be unique)',
  );
});
