// Training examples from harmony conversations: one per assistant turn, rendered exactly as the
// training rendering renders it, with loss on exactly the tokens the model writes; JSONL errors
// name the line.
import { describe as suite, it } from 'node:test';
import assert from 'node:assert/strict';
import { UserError } from '../../src/errors.ts';
import { conversation, message, renderConversationForTraining, tokensToText } from '../../src/harmony/index.ts';
import { readConversationsJsonl, trainingExamples } from '../../src/train/data.ts';
import { trainedText } from './trained-text.ts';


suite('training examples from conversations', () => {
  it('one turn: the model writes everything after <|start|>assistant, analysis and final alike', () => {
    const convo = conversation([
      message.system(), message.user('What is 2 + 2?'),
      message.assistant('Add them.', { channel: 'analysis' }), message.assistant('4', { channel: 'final' }),
    ]);
    const [e, ...rest] = trainingExamples(convo);
    assert.equal(rest.length, 0);
    assert.deepEqual(e!.tokens, renderConversationForTraining(convo));
    assert.deepEqual(trainedText(e!), ['<|channel|>analysis<|message|>Add them.<|end|><|start|>assistant<|channel|>final<|message|>4<|return|>']);
    assert.ok(tokensToText(e!.tokens).includes('<|start|>user<|message|>What is 2 + 2?<|end|><|start|>assistant<|channel|>analysis'));
  });

  it('two turns: two examples; the first turn is history in the second (analysis dropped, not trained)', () => {
    const convo = conversation([
      message.user('Hi'), message.assistant('greet', { channel: 'analysis' }), message.assistant('Hello', { channel: 'final' }),
      message.user('Bye'), message.assistant('part', { channel: 'analysis' }), message.assistant('Goodbye', { channel: 'final' }),
    ]);
    const [first, second] = trainingExamples(convo, 'c');
    assert.deepEqual(trainedText(first!), ['<|channel|>analysis<|message|>greet<|end|><|start|>assistant<|channel|>final<|message|>Hello<|return|>']);
    assert.equal(first!.source, 'c turn 1');
    const text = tokensToText(second!.tokens);
    assert.ok(!text.includes('greet'), 'the finished turn\'s analysis is dropped');
    assert.ok(text.includes('<|channel|>final<|message|>Hello<|end|>'), 'in history a final answer ends with <|end|>');
    assert.deepEqual(trainedText(second!), ['<|channel|>analysis<|message|>part<|end|><|start|>assistant<|channel|>final<|message|>Goodbye<|return|>']);
  });

  it('a tool call: the call is trained, the tool\'s result and the header after it are not', () => {
    const convo = conversation([
      message.user('7 * 8?'),
      message.assistant('print(7 * 8)', { channel: 'analysis', recipient: 'python', contentType: 'code' }),
      message.tool('python', '56', { channel: 'analysis' }),
      message.assistant('56', { channel: 'final' }),
    ]);
    const [e] = trainingExamples(convo);
    assert.deepEqual(trainedText(e!), [
      ' to=python<|channel|>analysis code<|message|>print(7 * 8)<|call|>',
      '<|channel|>final<|message|>56<|return|>',
    ]);
  });

  it('JSONL: one conversation per line; errors name the line', () => {
    const line = JSON.stringify({ messages: [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello', channel: 'final' }] });
    const examples = readConversationsJsonl(`${line}\n\n${line}\n`, 'data.jsonl');
    assert.equal(examples.length, 2);
    assert.equal(examples[1]!.source, 'data.jsonl:3 turn 1');
    const fails = (text: string, re: RegExp) => assert.throws(() => readConversationsJsonl(text, 'data.jsonl'), (e: unknown) => {
      assert.ok(e instanceof UserError, String(e));
      assert.ok(!e.message.includes('\n'));
      assert.match(e.message, re);
      return true;
    });
    fails(`${line}\n{"messages": [`, /data\.jsonl:2: invalid JSON/);
    fails(`${line}\n${JSON.stringify({ messages: [{ role: 'robot', content: 'x' }] })}`, /data\.jsonl:2: .*robot/);
    fails(JSON.stringify({ messages: [{ role: 'user', content: 'Hi' }] }), /data\.jsonl:1: the conversation has no assistant message/);
    fails('\n\n', /no conversations/);
  });
});
