// The agent loop with real tool calls on the shipped gpt-oss-nano: each question of NANO_QUESTIONS
// asked greedily through the turn API with the real browser (over the documents the model ships
// with) and the real python tool, prompted as its corpus renders the question. The calls the
// question needs happen, in order; each tool's answer comes back into the conversation and the
// model goes on from it; score.ts judges the completion, and where the model cites, each citation
// quotes a document line that states the answer.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import type { AgentEvent } from '../../src/engine/agent.ts';
import { loadEngine } from '../../src/engine/local.ts';
import { askNano } from '../../src/evals/nano.ts';
import { messageText, tokensToText } from '../../src/harmony/index.ts';
import { BrowserSession, PythonTool, resolveCitations, SandboxPool } from '../../src/tools/index.ts';
import { answerStates, numbersIn, scoreCompletion } from '../../src/train/nano/score.ts';
import { expandNano, nanoCases, openNanoDocs, wrongCitations } from '../nano-questions.ts';

const cases = await nanoCases();
const nano = expandNano();
const engine = await loadEngine(nano.dir, { threads: 1, contextLength: 4096 });
const backend = await openNanoDocs();
const pool = new SandboxPool({});
const python = new PythonTool({ pool });
after(async () => {
  nano.remove();
  await python.close();
  await engine.close();
  // Not awaited: the pool's idle interpreters are unref'd, so once nothing else is left the
  // process exits before they do (awaiting it would skip whatever came after).
  void pool.close();
});

test('the questions asked cover both tools the model was trained with', () => {
  const calls = new Set(cases.flatMap((c) => c.calls));
  assert.ok(calls.has('browser.open') && calls.has('python'), `NANO_QUESTIONS needs ${[...calls].join(', ') || 'no tool'}`);
});

for (const c of cases) {
  const needs = c.calls.length === 0 ? 'no tool' : c.calls.join(', ');
  test(`gpt-oss-nano through the agent loop (${c.id}, ${c.expect}, ${needs}): ${c.question}`, async () => {
    const browser = new BrowserSession(backend);
    const events: AgentEvent[] = [];
    const { completion, result } = await askNano(engine, c.question, { effort: c.effort, date: c.date, tools: [browser, python], maxTokens: 1024, onEvent: (e) => events.push(e) });
    const shown = tokensToText(completion);
    const score = scoreCompletion(c, completion);
    assert.equal(result.finishReason, 'stop', shown);
    assert.ok(score.valid, `${score.problem}: ${shown}`);

    const calls = events.flatMap((e) => (e.type === 'tool_call' ? [e.call] : []));
    const results = events.flatMap((e) => (e.type === 'tool_result' ? [e] : []));
    if (c.calls.length === 0) assert.deepEqual(calls, [], shown);
    // The calls the question needs, in order (others may come between them).
    let next = 0;
    for (const call of calls) if (call.recipient === c.calls[next]) next++;
    assert.equal(next, c.calls.length, `needed ${c.calls.join(', ')}, called ${calls.map((x) => x.recipient).join(', ')}: ${shown}`);

    // Every call was answered, and the answer is in the conversation, the model writing on after it.
    assert.equal(results.length, calls.length);
    results.forEach((r, i) => {
      assert.equal(r.call, calls[i]);
      assert.equal(r.error, undefined, `${r.call.recipient}: ${r.error}`);
      const at = result.messages.indexOf(r.message);
      assert.ok(at > 0, `the ${r.call.recipient} result is not in the conversation`);
      assert.equal(result.messages[at - 1]!.recipient, r.call.recipient);
      assert.equal(result.messages[at + 1]?.author.role, 'assistant', `the model did not go on after the ${r.call.recipient} result`);
      assert.ok(shown.includes(messageText(r.message)), `the ${r.call.recipient} result is not in the completion`);
    });
    for (const r of results) {
      const output = messageText(r.message);
      // An opened monograph shows the line that states the answer; python prints a number.
      if (r.call.recipient === 'browser.open' && c.task === 'lookup') assert.ok(output.split('\n').some((line) => answerStates(c, line)), output);
      if (r.call.recipient === 'python') assert.ok(numbersIn(output).length > 0, output);
    }

    if (c.expect === 'right') {
      assert.ok(score.toolCorrect && score.answerCorrect, `${score.problem}: ${shown}`);
      // Every citation mark names a page the browser opened, and quotes a line stating the answer.
      const marks = result.finalText.match(/【[^】]*】/g) ?? [];
      assert.equal(resolveCitations(result.finalText, browser).citations.length, marks.length, result.finalText);
      assert.deepEqual(wrongCitations(c, result.finalText, browser).map((x) => x.quote), [], result.finalText);
    }
  });
}
