// generate(): prefix reuse (measured on ScriptedEngine.steps), stop tokens, stop strings, limits,
// the context window as an outcome, cancellation, logprobs, and concurrent generations through
// the batching scheduler.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UserError } from '../../src/errors.ts';
import { ScriptedEngine } from '../../src/engine/scripted.ts';
import { BatchingEngine } from '../../src/engine/scheduler.ts';
import { ASSISTANT_ACTION_STOP_TOKENS, StopStringMatcher, generate } from '../../src/engine/generate.ts';
import { SPECIAL, getTokenizer } from '../../src/tokenizer/index.ts';

const tok = getTokenizer();
const ids = (s: string): number[] => tok.encode(s, { allowedSpecial: 'all' });

const prompt1 = ids('<|start|>user<|message|>What is 2+2?<|end|><|start|>assistant');
const completion1 = ids('<|channel|>analysis<|message|>Simple sum.<|end|><|start|>assistant<|channel|>final<|message|>2+2 = 4.<|return|>');

test('a completion ends at <|return|>; the sequence keeps the prompt and all but the stop token', async () => {
  const engine = new ScriptedEngine([completion1]);
  const seq = engine.createSequence();
  const streamed: number[] = [];
  const r = await generate(engine, seq, prompt1, { sampling: { temperature: 0 }, onToken: (t) => void streamed.push(t.token) });
  assert.deepEqual(r.tokens, completion1);
  assert.deepEqual(streamed, completion1);
  assert.equal(r.finishReason, 'stop');
  assert.equal(r.stopToken, SPECIAL.return);
  assert.deepEqual(r.usage, { promptTokens: prompt1.length, cachedTokens: 0, completionTokens: completion1.length });
  assert.deepEqual(seq.tokens, [...prompt1, ...completion1.slice(0, -1)]);
  // One prefill step with the whole prompt, then one step per fed token.
  assert.deepEqual(engine.steps[0]![0]!.tokens, prompt1);
  assert.equal(engine.steps.length, completion1.length);
  assert.ok(engine.steps.slice(1).every((b) => b.length === 1 && b[0]!.tokens.length === 1));
  assert.deepEqual(ASSISTANT_ACTION_STOP_TOKENS, [200002, 200012]);
});

test('the next turn feeds only the suffix after the cached prefix', async () => {
  const completion2 = ids('<|channel|>final<|message|>6.<|return|>');
  const engine = new ScriptedEngine([completion1, completion2]);
  const seq = engine.createSequence();
  await generate(engine, seq, prompt1, { sampling: { temperature: 0 } });
  // Harmony history stores <|end|> where the model wrote <|return|>.
  const prompt2 = [...prompt1, ...completion1.slice(0, -1), SPECIAL.end, ...ids('<|start|>user<|message|>And 3+3?<|end|><|start|>assistant')];
  const before = engine.steps.length;
  const r = await generate(engine, seq, prompt2, { sampling: { temperature: 0 } });
  assert.deepEqual(r.tokens, completion2);
  const cached = prompt1.length + completion1.length - 1;
  assert.equal(r.usage.cachedTokens, cached);
  assert.deepEqual(engine.steps[before]![0]!.tokens, prompt2.slice(cached));
  // Regenerating the very same prompt still feeds its last token (the first sample needs logits).
  const engine2 = new ScriptedEngine([completion1, completion1]);
  const s2 = engine2.createSequence();
  await generate(engine2, s2, prompt1, { sampling: { temperature: 0 } });
  const again = await generate(engine2, s2, prompt1, { sampling: { temperature: 0 } });
  assert.equal(again.usage.cachedTokens, prompt1.length - 1);
  assert.deepEqual(engine2.steps[completion1.length]![0]!.tokens, prompt1.slice(-1));
  assert.deepEqual(again.tokens, completion1);
});

test('maxTokens ends with length; onToken can stop; stop tokens are configurable', async () => {
  const engine = new ScriptedEngine([completion1, completion1, completion1]);
  const r = await generate(engine, engine.createSequence(), prompt1, { sampling: { temperature: 0 }, maxTokens: 5 });
  assert.equal(r.finishReason, 'length');
  assert.deepEqual(r.tokens, completion1.slice(0, 5));
  const r2 = await generate(engine, engine.createSequence(), prompt1, { sampling: { temperature: 0 }, onToken: (t) => t.index === 2 });
  assert.equal(r2.finishReason, 'stop');
  assert.equal(r2.tokens.length, 3);
  const r3 = await generate(engine, engine.createSequence(), prompt1, { sampling: { temperature: 0 }, stopTokens: [SPECIAL.end] });
  assert.equal(r3.stopToken, SPECIAL.end);
  assert.deepEqual(r3.tokens, completion1.slice(0, completion1.indexOf(SPECIAL.end) + 1));
});

test('stop strings end generation once the decoded text contains them, across token boundaries', async () => {
  const completion = ids('<|channel|>final<|message|>The answer is forty-two, I think.<|return|>');
  const engine = new ScriptedEngine([completion]);
  const r = await generate(engine, engine.createSequence(), prompt1, { sampling: { temperature: 0 }, stopStrings: ['y-tw', 'never'] });
  assert.equal(r.finishReason, 'stop');
  assert.equal(r.stopString, 'y-tw');
  const text = tok.decode(r.tokens.filter((t) => !tok.isSpecial(t)));
  assert.ok(text.includes('y-tw') && !text.includes('I think'), text);
  const m = new StopStringMatcher(['</end>']);
  assert.equal(m.push('abc</'), undefined);
  assert.equal(m.safeLength(), 3);
  assert.deepEqual(m.push('en'), undefined);
  assert.equal(m.safeLength(), 3);
  assert.deepEqual(m.push('d> rest'), { stop: '</end>', textBefore: 'abc' });
});

test('a full context window is an outcome, an over-long prompt a user error', async () => {
  const engine = new ScriptedEngine([completion1], { contextLength: prompt1.length + 4 });
  const seq = engine.createSequence();
  const r = await generate(engine, seq, prompt1, { sampling: { temperature: 0 } });
  assert.equal(r.finishReason, 'context');
  assert.equal(r.tokens.length, 4);
  assert.equal(seq.tokens.length, prompt1.length + 4);
  const small = new ScriptedEngine([completion1], { contextLength: prompt1.length });
  await assert.rejects(generate(small, small.createSequence(), prompt1), (e: unknown) => e instanceof UserError && e.kind === 'context' && /context window/.test(e.message));
});

test('an abort signal stops generation with finishReason abort', async () => {
  const engine = new ScriptedEngine([completion1]);
  const controller = new AbortController();
  const r = await generate(engine, engine.createSequence(), prompt1, {
    sampling: { temperature: 0 },
    signal: controller.signal,
    onToken: (t) => {
      if (t.index === 3) controller.abort();
    },
  });
  assert.equal(r.finishReason, 'abort');
  assert.deepEqual(r.tokens, completion1.slice(0, 4));
  const pre = new AbortController();
  pre.abort();
  const none = await generate(engine, engine.createSequence(), prompt1, { signal: pre.signal });
  assert.equal(none.finishReason, 'abort');
  assert.equal(none.tokens.length, 0);
});

test('logprobs: the scripted token has probability ~1', async () => {
  const engine = new ScriptedEngine([completion1]);
  const r = await generate(engine, engine.createSequence(), prompt1, { seed: 1, topLogprobs: 2 });
  assert.deepEqual(r.tokens, completion1);
  assert.equal(r.logprobs!.length, completion1.length);
  for (const [i, lp] of r.logprobs!.entries()) {
    assert.equal(lp.token, completion1[i]);
    assert.ok(lp.logprob! > -1e-3 && lp.logprob! <= 0);
    assert.equal(lp.topLogprobs!.length, 2);
  }
});

test('concurrent generations through the batching scheduler each get their own completion', async () => {
  const a = ids('<|channel|>final<|message|>alpha beta gamma<|return|>');
  const b = ids('<|channel|>final<|message|>one two three four five<|return|>');
  const scripted = new ScriptedEngine([a, b]);
  const engine = new BatchingEngine(scripted);
  const promptB = ids('<|start|>user<|message|>count<|end|><|start|>assistant');
  const [ra, rb] = await Promise.all([
    generate(engine, engine.createSequence(), prompt1, { sampling: { temperature: 0 } }),
    generate(engine, engine.createSequence(), promptB, { sampling: { temperature: 0 } }),
  ]);
  assert.deepEqual(ra.tokens, a);
  assert.deepEqual(rb.tokens, b);
  assert.ok(scripted.steps.some((batch) => batch.length === 2), 'decodes of both sequences shared a step');
  await engine.close();
});

test('prefillChunk feeds a long prompt in several steps and sees an abort between them', async () => {
  const chunks = Math.ceil(prompt1.length / 4);
  // ScriptedEngine starts a script at every prompt step; only the last chunk's script is replayed.
  const engine = new ScriptedEngine(Array.from({ length: chunks }, () => completion1));
  const progress: number[] = [];
  const r = await generate(engine, engine.createSequence(), prompt1, {
    sampling: { temperature: 0 },
    prefillChunk: 4,
    onPrefillProgress: (p) => void progress.push(p.done),
  });
  assert.deepEqual(r.tokens, completion1);
  assert.deepEqual(progress, Array.from({ length: chunks - 1 }, (_, i) => 4 * (i + 1)));
  assert.deepEqual(engine.steps.slice(0, chunks).flatMap((b) => b[0]!.tokens), prompt1);
  assert.ok(engine.steps.slice(0, chunks).every((b) => b[0]!.tokens.length <= 4));
  const controller = new AbortController();
  const slow = new ScriptedEngine([completion1]);
  const step = slow.step.bind(slow);
  slow.step = async (batch) => {
    controller.abort(); // the user presses Ctrl-C while the first chunk is processed
    return step(batch);
  };
  const cut = await generate(slow, slow.createSequence(), prompt1, { prefillChunk: 4, signal: controller.signal });
  assert.equal(cut.finishReason, 'abort');
  assert.equal(slow.steps.length, 1);
});
