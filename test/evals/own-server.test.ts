// The evaluation harness against our own OpenAI-compatible server: the model and the grader are
// ScriptedEngines replaying harmony completions (reasoning, then the final answer), so the expected
// scores are known; and once against a local checkpoint served in-process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ScriptedEngine } from '../../src/engine/scripted.ts';
import { createServer } from '../../src/server/index.ts';
import { getTokenizer } from '../../src/tokenizer/index.ts';
import { main } from '../../src/cli/main.ts';
import { clippedMean, HttpSampler } from '../../src/evals/index.ts';

const EXAMPLES = join(import.meta.dirname, '../../examples/evals');
const tok = getTokenizer();

function completion(reasoning: string, answer: string): number[] {
  return tok.encode(`<|channel|>analysis<|message|>${reasoning}<|end|><|start|>assistant<|channel|>final<|message|>${answer}<|return|>`, { allowedSpecial: 'all' });
}

async function serve(scripts: number[][]) {
  const engine = new ScriptedEngine(scripts, { name: 'scripted' });
  const running = await createServer({ engine, log: () => {} }).listen(0, '127.0.0.1');
  return { engine, baseUrl: `${running.url}/v1`, close: () => running.close() };
}

async function capture(argv: string[]): Promise<{ code: number; stdout: string }> {
  const lines: string[] = [];
  const log = console.log;
  const stderr = process.stderr.write.bind(process.stderr);
  console.log = (...args: unknown[]) => lines.push(args.join(' '));
  process.stderr.write = (() => true) as typeof process.stderr.write;
  try {
    const code = await main(argv);
    return { code, stdout: lines.join('\n') };
  } finally {
    console.log = log;
    process.stderr.write = stderr;
  }
}

test('healthbench through our server: scripted model and grader, score computed by hand', async () => {
  const model = await serve(Array.from({ length: 4 }, (_, i) => completion(`case ${i}`, `Answer ${i}`)));
  const grader = await serve(Array.from({ length: 12 }, () => completion('checking', '{"explanation":"present","criteria_met":true}')));
  const out = mkdtempSync(join(tmpdir(), 'gptoss-eval-'));
  try {
    const r = await capture(['eval', 'healthbench', '--data', join(EXAMPLES, 'healthbench-sample.jsonl'), '--model', model.baseUrl, '--grader', grader.baseUrl, '--out', out, '--concurrency', '1', '--effort', 'low']);
    assert.equal(r.code, 0);
    // Every item met, negative ones included: 9/17, 7/12, 9/9, 6/12.
    assert.match(r.stdout, new RegExp(`score: ${clippedMean([9 / 17, 7 / 12, 1, 6 / 12]).toFixed(3)} ± \\d\\.\\d{3} \\(n=4\\)$`));
    // The server returned the reasoning separately; it reaches the report, not the graded answer.
    const first = JSON.parse(readFileSync(join(out, 'results.jsonl'), 'utf8').split('\n')[0]!) as { response: { text: string; reasoning: string } };
    assert.equal(first.response.text, 'Answer 0');
    assert.equal(first.response.reasoning, 'case 0');
    // reasoning_effort low reached the system message the model saw.
    const prompt = tok.decode(model.engine.steps[0]![0]!.tokens);
    assert.match(prompt, /Reasoning: low/);
  } finally {
    rmSync(out, { recursive: true, force: true });
    await model.close();
    await grader.close();
  }
});

test('a local checkpoint is served in-process (--model DIR)', async () => {
  const { synthesize, SHAPES } = await import('../../src/checkpoint/synth.ts');
  const dir = mkdtempSync(join(tmpdir(), 'gptoss-eval-model-'));
  try {
    synthesize(SHAPES.tiny, dir, { seed: 5 });
    const r = await capture(['eval', 'exact', '--data', join(EXAMPLES, 'exact-sample.jsonl'), '--model', dir, '--out', join(dir, 'run'), '--max-tokens', '4', '--temperature', '0']);
    // Random weights never box an integer: every case runs and scores 0.
    assert.equal(r.code, 0);
    assert.match(r.stdout, /score: 0\.000 ± 0\.000 \(n=3\)$/);
  } finally {
    rmSync(dir, { recursive: true, force: true }); // a 50 MB checkpoint
  }
});

test('HttpSampler reports an unreachable endpoint as one user error', async () => {
  const s = new HttpSampler({ baseUrl: 'http://127.0.0.1:9/v1', model: 'x', retries: 0 });
  await assert.rejects(s.complete([{ role: 'user', content: 'hi' }]), (e: Error) => e.name === 'UserError' && /127\.0\.0\.1:9\/v1\/chat\/completions/.test(e.message));
});
