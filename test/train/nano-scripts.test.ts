// The npm entries end to end: `nano:corpus` writes a corpus, and `nano:score` gives the corpus's
// own held-out answers full marks and a wrong answer none; bad arguments exit 2 with one line.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { conversationFromJSON, renderMessage, tokensToText } from '../../src/harmony/index.ts';

function run(script: string, args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', `scripts/${script}.ts`, ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** What the model writes after the prompt's `<|start|>assistant`: the conversation's answer as a completion. */
function completionOf(line: string): string {
  const messages = conversationFromJSON(JSON.parse(line)).messages.slice(2);
  const text = tokensToText(messages.flatMap((m) => renderMessage(m)));
  return text.replace(/^<\|start\|>assistant/, '').replace(/<\|end\|>$/, '<|return|>');
}

it('nano:corpus writes a corpus that nano:score marks as fully right; bad usage exits 2', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nano-scripts-'));
  try {
    const out = join(dir, 'corpus');
    const made = run('nano-corpus', ['--out', out, '--seed', '3', '--train', '20', '--heldout', '40']);
    assert.equal(made.status, 0, made.stderr);
    const counts = JSON.parse(made.stdout) as { heldout: Record<string, number> };
    assert.equal(Object.values(counts.heldout).reduce((a, b) => a + b, 0), 40);
    const meta = readFileSync(join(out, 'heldout-meta.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { id: string; answer?: number });
    const lines = readFileSync(join(out, 'heldout.jsonl'), 'utf8').trim().split('\n');
    const right = lines.map((l, i) => JSON.stringify({ id: meta[i]!.id, completion: completionOf(l) })).join('\n');
    writeFileSync(join(dir, 'right.jsonl'), right + '\n');
    const scored = run('nano-score', ['--corpus', out, '--completions', join(dir, 'right.jsonl')]);
    assert.equal(scored.status, 0, scored.stderr);
    const report = JSON.parse(scored.stdout) as { overall: { count: number; valid: number; toolCorrect: number; answerCorrect: number } };
    assert.deepEqual(report.overall, { count: 40, valid: 1, toolCorrect: 1, answerCorrect: 1 });

    // The same answers with every number off by one: valid harmony, no right final answer.
    const shifted = lines.map((l, i) => JSON.stringify({ id: meta[i]!.id, completion: completionOf(l).replace(/<\|channel\|>final<\|message\|>[^]*$/, (f) => f.replace(/\d+/g, (n) => String(Number(n) + 1))) }));
    writeFileSync(join(dir, 'shifted.jsonl'), shifted.join('\n') + '\n');
    const wrong = JSON.parse(run('nano-score', ['--corpus', out, '--completions', join(dir, 'shifted.jsonl')]).stdout) as typeof report;
    const numeric = meta.filter((m) => m.answer !== undefined).length;
    assert.equal(wrong.overall.valid, 1);
    assert.equal(wrong.overall.answerCorrect, (40 - numeric) / 40);

    for (const [script, args, message] of [
      ['nano-corpus', [], /--out DIR is required/],
      ['nano-corpus', ['--out', out], /already exists/],
      ['nano-corpus', ['--out', join(dir, 'x'), '--seed', 'abc'], /--seed must be a whole number/],
      ['nano-score', ['--corpus', out], /usage/],
      ['nano-score', ['--corpus', out, '--completions', join(out, 'manifest.json')], /manifest\.json:1: not JSON/],
    ] as const) {
      const r = run(script, [...args]);
      assert.equal(r.status, 2, `${script} ${args.join(' ')}`);
      assert.match(r.stderr, message);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

it('nano:eval: an unknown option or a bad count is one line and exit 2, not a stack trace', () => {
  for (const args of [['--help'], ['--limit', 'x']]) {
    const r = run('nano-eval', args);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /^nano:eval: [^\n]+\n$/);
  }
});

it('the nano scripts and teach:facts: an unknown option is one line naming it and exit 2, not a stack trace', () => {
  for (const [script, name] of [['nano-corpus', 'nano:corpus'], ['nano-score', 'nano:score'], ['nano-pack', 'nano:pack'], ['train-nano', 'train:nano'], ['nano-standin', 'nano:standin'], ['teach-facts', 'teach:facts']]) {
    const r = run(script!, ['--bogus']);
    assert.equal(r.status, 2, `${script}: ${r.stderr}`);
    assert.equal(r.stderr, `${name}: Unknown option '--bogus'\n`);
  }
});
