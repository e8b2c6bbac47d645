// OpenAI chat-format training data: system/developer/user/assistant/tool messages, reasoning in
// reasoning_content or thinking, tool calls and their answers become the harmony conversation
// gpt-oss is trained on, with loss on the assistant's tokens only; bad lines fail naming the line.
import { describe as suite, it } from 'node:test';
import assert from 'node:assert/strict';
import { UserError } from '../../src/errors.ts';
import {
  conversation, conversationFromChatJSON, createMessage, developerContent, isHarmonyConversationJSON, message, renderConversationForTraining,
  systemContent, tokensToText, type JsonValue,
} from '../../src/harmony/index.ts';
import { readConversationsJsonl } from '../../src/train/data.ts';
import { trainedText } from './trained-text.ts';


const weatherTool = { type: 'function', function: { name: 'get_weather', description: 'Weather for a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } };

suite('chat-format training data', () => {
  it('system and developer become the instructions, reasoning_content the analysis, content the final answer', () => {
    const convo = conversationFromChatJSON({
      reasoning_effort: 'low',
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'developer', content: [{ type: 'text', text: 'Answer in French.' }] },
        { role: 'user', content: 'Capital of France?' },
        { role: 'assistant', reasoning_content: 'It is Paris.', content: 'Paris.' },
      ],
    });
    assert.deepEqual(convo, conversation([
      createMessage('system', systemContent({ reasoningEffort: 'low' })),
      createMessage('developer', developerContent({ instructions: 'Be brief.\n\nAnswer in French.' })),
      message.user('Capital of France?'),
      message.assistant('It is Paris.', { channel: 'analysis' }),
      message.assistant('Paris.', { channel: 'final' }),
    ]));
  });

  it('thinking, tool_calls and tool answers: calls trained, answers not; the tools in the developer message', () => {
    const line = JSON.stringify({
      tools: [weatherTool],
      messages: [
        { role: 'user', content: 'Weather in Oslo?' },
        { role: 'assistant', thinking: 'Look it up.', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Oslo"}' } }] },
        { role: 'tool', tool_call_id: 'c1', content: '{"temp": 3}' },
        { role: 'assistant', content: 'It is 3 degrees.' },
      ],
    });
    const [e, ...rest] = readConversationsJsonl(line, 'd.jsonl');
    assert.equal(rest.length, 0, 'one user turn, one example');
    const text = tokensToText(e!.tokens);
    assert.match(text, /<\|start\|>developer<\|message\|># Tools\n\n## functions\n\nnamespace functions \{\n\n\/\/ Weather for a city\ntype get_weather = \(_: \{\ncity: string,\n\}\) => any;/);
    assert.match(text, /<\|start\|>functions\.get_weather to=assistant<\|channel\|>commentary<\|message\|>\{"temp": 3\}<\|end\|>/);
    assert.deepEqual(trainedText(e!), [
      '<|channel|>analysis<|message|>Look it up.<|end|><|start|>assistant to=functions.get_weather<|channel|>commentary <|constrain|>json<|message|>{"city":"Oslo"}<|call|>',
      '<|channel|>final<|message|>It is 3 degrees.<|return|>',
    ]);
  });

  it('a preamble beside tool calls goes on commentary; arguments given as an object, answers matched by name', () => {
    const convo = conversationFromChatJSON({ messages: [
      { role: 'user', content: 'Weather?' },
      { role: 'assistant', content: [{ type: 'output_text', text: 'Checking.' }], tool_calls: [{ type: 'function', function: { name: 'get_weather', arguments: { city: 'Oslo' } } }] },
      { role: 'tool', name: 'get_weather', content: 'cold' },
    ] });
    assert.deepEqual(convo.messages.slice(1), [
      message.user('Weather?'),
      message.assistant('Checking.', { channel: 'commentary' }),
      message.assistant('{"city":"Oslo"}', { channel: 'commentary', recipient: 'functions.get_weather', contentType: '<|constrain|>json' }),
      message.tool('functions.get_weather', 'cold', { channel: 'commentary' }),
    ]);
  });

  it('a multi-turn conversation gives one example per assistant turn', () => {
    const line = JSON.stringify({ messages: [
      { role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello' },
      { role: 'user', content: 'Bye' }, { role: 'assistant', content: 'Goodbye' },
    ] });
    const examples = readConversationsJsonl(`${line}\n${line}`, 'd.jsonl');
    assert.deepEqual(examples.map((e) => [e.source, e.conversation]), [['d.jsonl:1 turn 1', 0], ['d.jsonl:1 turn 2', 0], ['d.jsonl:2 turn 1', 1], ['d.jsonl:2 turn 2', 1]]);
    assert.deepEqual(trainedText(examples[1]!), ['<|channel|>final<|message|>Goodbye<|return|>']);
    assert.deepEqual(examples[1]!.tokens, renderConversationForTraining(conversationFromChatJSON(JSON.parse(line) as JsonValue)));
  });

  it('harmony-shaped lines are still read as harmony; plain role/content lines as chat format', () => {
    assert.equal(isHarmonyConversationJSON({ messages: [{ role: 'assistant', content: 'x', channel: 'final' }] }), true);
    assert.equal(isHarmonyConversationJSON({ messages: [{ role: 'user', content: 'x' }, { role: 'assistant', content: 'y' }] }), false);
    const harmony = JSON.stringify({ messages: [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello', channel: 'final' }] });
    const chat = JSON.stringify({ messages: [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello' }] });
    const [h] = readConversationsJsonl(harmony, 'h');
    const [c] = readConversationsJsonl(chat, 'c');
    assert.ok(!tokensToText(h!.tokens).includes('<|start|>system'), 'a harmony line renders as written');
    assert.ok(tokensToText(c!.tokens).startsWith('<|start|>system<|message|>You are ChatGPT'), 'a chat line gets the system message');
    assert.deepEqual(trainedText(h!), trainedText(c!));
  });

  it('bad data fails with one line naming the line and the problem', () => {
    const good = JSON.stringify({ messages: [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello' }] });
    const fails = (text: string, re: RegExp) => assert.throws(() => readConversationsJsonl(text, 'data.jsonl'), (e: unknown) => {
      assert.ok(e instanceof UserError, String(e));
      assert.ok(!e.message.includes('\n'), e.message);
      assert.match(e.message, re);
      return true;
    });
    fails(`${good}\nnot json`, /^data\.jsonl:2: invalid JSON/);
    fails(`${good}\n${JSON.stringify({ messages: [{ role: 'robot', content: 'x' }] })}`, /^data\.jsonl:2: messages\[0\]\.role: unknown role "robot" \(expected one of: system, developer, user, assistant, tool\)/);
    fails(`${good}\n\n${JSON.stringify({ messages: [{ role: 'system', content: 'x' }, { role: 'user', content: 'Hi' }] })}`, /^data\.jsonl:3: the conversation has no assistant message/);
    fails(JSON.stringify({ messages: [{ role: 'user', content: 'Hi' }, { role: 'tool', tool_call_id: 'nope', content: '1' }, { role: 'assistant', content: 'x' }] }), /^data\.jsonl:1: messages\[1\]\.tool_call_id: "nope" matches no earlier assistant tool call/);
    fails(JSON.stringify({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: {} }] }, { role: 'assistant', content: 'x' }] }), /^data\.jsonl:1: messages\[0\]\.content\[0\]: only text parts/);
    fails(JSON.stringify({ reasoning_effort: 'max', messages: [] }), /^data\.jsonl:1: reasoning_effort: expected one of low, medium, high/);
    fails(JSON.stringify({ tools: [{ type: 'function', function: { name: 'bad name' } }], messages: [] }), /^data\.jsonl:1: tools\[0\]\.function\.name: must be 1-64/);
    fails(JSON.stringify([1, 2]), /^data\.jsonl:1: \(conversation\): expected \{"messages"/);
  });
});
