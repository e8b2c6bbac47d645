// `gptoss classify` against our own server: a ScriptedEngine replays harmony completions, so the
// test sees the prompt the model is given (the policy in the developer message, the text as the
// user's, the effort in the system message) and the reasoning coming back apart from the label;
// and once against a random-weight checkpoint served in-process (--model DIR).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ScriptedEngine } from '../../src/engine/scripted.ts';
import { createServer } from '../../src/server/index.ts';
import { getTokenizer } from '../../src/tokenizer/index.ts';
import { runCli } from '../cli/in-process.ts';
import type { ClassifyResult } from '../../src/evals/classify.ts';

const tok = getTokenizer();
const POLICY = '# Spam policy\nAnswer with one JSON object: {"violation": 0 or 1, "rule": "SP id or null"}.\n';

function completion(reasoning: string, answer: string): number[] {
  return tok.encode(`<|channel|>analysis<|message|>${reasoning}<|end|><|start|>assistant<|channel|>final<|message|>${answer}<|return|>`, { allowedSpecial: 'all' });
}

test('classify through our server: the harmony prompt carries the policy and the text; reasoning comes back apart from the label', async () => {
  const engine = new ScriptedEngine([
    completion('Promotes a course with a link: SP2.a.', '{"violation": 1, "rule": "SP2.a"}'),
    completion('A plain question.', '{"violation": 0, "rule": null}'),
  ], { name: 'scripted' });
  const running = await createServer({ engine, log: () => {} }).listen(0, '127.0.0.1');
  const dir = mkdtempSync(join(tmpdir(), 'gptoss-classify-'));
  try {
    const policy = join(dir, 'spam.md');
    writeFileSync(policy, POLICY);
    const input = join(dir, 'in.jsonl');
    writeFileSync(input, '{"id": "a", "text": "Check out my course: shopcoach.biz"}\n{"id": "b", "text": "How do I upload a photo?"}\n');
    const out = join(dir, 'results.jsonl');
    const r = await runCli(['classify', '--policy', policy, '--input', input, '--endpoint', `${running.url}/v1`, '--out', out, '--labels', '0,1', '--effort', 'low', '--concurrency', '1']);
    assert.equal(r.code, 0, r.stderr);
    const results = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as ClassifyResult);
    assert.deepEqual(results.map((x) => [x.id, x.label, x.fields?.rule, x.reasoning]), [
      ['a', '1', 'SP2.a', 'Promotes a course with a link: SP2.a.'],
      ['b', '0', null, 'A plain question.'],
    ]);
    const prompt = tok.decode(engine.steps[0]![0]!.tokens);
    assert.match(prompt, /<\|start\|>system<\|message\|>[^]*Reasoning: low[^]*<\|end\|>/);
    assert.ok(prompt.includes(`<|start|>developer<|message|># Instructions\n\n${POLICY.trimEnd()}`), prompt);
    assert.ok(prompt.includes('<|start|>user<|message|>Check out my course: shopcoach.biz<|end|>'), prompt);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await running.close();
  }
});

test('classify a local checkpoint served in-process (--model DIR): random weights do not follow the format, and each text is named', async () => {
  const { synthesize, SHAPES } = await import('../../src/checkpoint/synth.ts');
  const dir = mkdtempSync(join(tmpdir(), 'gptoss-classify-model-'));
  try {
    synthesize(SHAPES.tiny, dir, { seed: 5 });
    const policy = join(dir, 'p.md');
    writeFileSync(policy, POLICY);
    const input = join(dir, 'in.jsonl');
    writeFileSync(input, '{"id": "a", "text": "buy now"}\n{"id": "b", "text": "hello"}\n');
    // A label outside every vocabulary piece: random weights cannot produce it.
    const r = await runCli(['classify', '--policy', policy, '--input', input, '--model', dir, '--labels', 'label-that-random-weights-never-write', '--max-tokens', '4', '--temperature', '0']);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /failed: .*in\.jsonl:1 \(id "a"\): the answer does not follow the policy's output format/);
    assert.match(r.stderr, /failed: .*in\.jsonl:2 \(id "b"\): the answer does not follow the policy's output format/);
    assert.match(r.stderr, /with .* \(in-process\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true }); // a 50 MB checkpoint
  }
});
