// JSON interchange in the official to_dict/from_dict shape: round trips, what Python and Rust
// write (list contents, `name: null`, omitted fields meaning defaults), and errors naming the path.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { UserError } from '../../src/errors.ts';
import {
  browserToolNamespace,
  conversationFromJSON,
  conversationFromJSONText,
  conversationToJSON,
  createMessage,
  developerContent,
  message,
  messageFromJSON,
  messageToJSON,
  pythonToolNamespace,
  renderConversationForCompletion,
  requireChannels,
  systemContent,
  tokensToText,
  toolDescription,
  withTools,
  type Conversation,
  type JsonValue,
} from '../../src/harmony/index.ts';

const full: Conversation = {
  messages: [
    message.system(withTools(withTools(systemContent({ reasoningEffort: 'high', conversationStartDate: '2025-06-28', knowledgeCutoff: null }), browserToolNamespace()), pythonToolNamespace())),
    message.developer(
      developerContent({
        instructions: 'Be brief.',
        functionTools: [toolDescription('f', 'Does f.', { type: 'object', properties: { x: { type: 'integer', default: 1 } } }), toolDescription('g', 'No params.')],
      }),
    ),
    message.user('hi'),
    message.assistant('think', { channel: 'analysis' }),
    message.assistant('{"x": 2}', { channel: 'commentary', recipient: 'functions.f', contentType: '<|constrain|>json' }),
    message.tool('functions.f', '42', { channel: 'commentary' }),
    createMessage('user', [
      { type: 'text', text: 'two ' },
      { type: 'text', text: 'parts' },
    ]),
  ],
};

test('conversation -> JSON -> conversation is lossless (also through JSON text)', () => {
  const json = conversationToJSON(full);
  assert.deepEqual(conversationFromJSON(json), full);
  assert.deepEqual(conversationFromJSONText(JSON.stringify(json)), full);
});

test('JSON shape follows the library: flattened author, string content, snake_case fields, "High"', () => {
  const json = conversationToJSON(full) as { messages: JsonValue[] };
  assert.deepEqual(json.messages[4], {
    role: 'assistant',
    recipient: 'functions.f',
    content: '{"x": 2}',
    channel: 'commentary',
    content_type: '<|constrain|>json',
  });
  assert.deepEqual(json.messages[5], { role: 'tool', name: 'functions.f', recipient: 'assistant', content: '42', channel: 'commentary' });
  const sys = (json.messages[0] as { content: Array<Record<string, JsonValue>> }).content[0]!;
  assert.deepEqual(Object.keys(sys), ['type', 'model_identity', 'reasoning_effort', 'tools', 'conversation_start_date', 'knowledge_cutoff', 'channel_config']);
  assert.equal(sys['type'], 'system_content');
  assert.equal(sys['reasoning_effort'], 'High');
  assert.equal(sys['knowledge_cutoff'], null);
  assert.deepEqual(sys['channel_config'], { valid_channels: ['analysis', 'commentary', 'final'], channel_required: true });
  assert.deepEqual(Object.keys(sys['tools'] as object), ['browser', 'python']);
  const dev = (json.messages[1] as { content: Array<Record<string, JsonValue>> }).content[0]!;
  assert.deepEqual((dev['tools'] as Record<string, { tools: JsonValue[] }>)['functions']!.tools[1], { name: 'g', description: 'No params.', parameters: null });
  assert.deepEqual(json.messages[6], { role: 'user', content: [{ type: 'text', text: 'two ' }, { type: 'text', text: 'parts' }] });
});

test('reads what Python to_dict writes: content lists, name null, omitted system fields take the defaults', () => {
  const py: JsonValue = {
    messages: [
      { role: 'system', name: null, content: [{ type: 'system_content', conversation_start_date: '2025-06-28', reasoning_effort: 'Low' }] },
      { role: 'user', name: null, content: [{ type: 'text', text: 'What is 2 + 2?' }] },
      { role: 'assistant', name: null, content: [{ type: 'text', text: '4' }], channel: 'final' },
    ],
  };
  const convo = conversationFromJSON(py);
  assert.deepEqual(convo, {
    messages: [
      message.system(systemContent({ conversationStartDate: '2025-06-28', reasoningEffort: 'low' })),
      message.user('What is 2 + 2?'),
      message.assistant('4', { channel: 'final' }),
    ],
  });
  // null removes a default: no knowledge cutoff, no channel line.
  const bare = messageFromJSON({ role: 'system', content: [{ type: 'system_content', knowledge_cutoff: null, channel_config: null, reasoning_effort: null, model_identity: null }] });
  assert.equal(tokensToText(renderConversationForCompletion({ messages: [bare] })), '<|start|>system<|message|><|end|><|start|>assistant');
  // A channel config with channel_required false renders without the second sentence.
  const loose = messageFromJSON({ role: 'system', content: [{ type: 'system_content', channel_config: { valid_channels: ['final'], channel_required: false } }] });
  assert.ok(tokensToText(renderConversationForCompletion({ messages: [loose] })).includes('# Valid channels: final.<|end|>'));
  assert.deepEqual(requireChannels(['final']), { validChannels: ['final'], channelRequired: true });
  assert.deepEqual(messageToJSON(message.user('x')), { role: 'user', content: 'x' });
});

test('invalid conversations are UserErrors naming the JSON path', () => {
  const cases: Array<[JsonValue, RegExp]> = [
    [{ messages: [{ role: 'user', content: 'a' }, { role: 'user', content: 'b' }, { role: 'robot', content: 'c' }] }, /^messages\[2\]\.role: unknown role "robot" \(expected one of: system, developer, user, assistant, tool\)$/],
    [{ messages: [{ content: 'a' }] }, /^messages\[0\]\.role: missing/],
    [{ messages: [{ role: 'user' }] }, /^messages\[0\]\.content: missing/],
    [{ messages: [{ role: 'user', content: 5 }] }, /^messages\[0\]\.content: expected a string or a list, got 5/],
    [{ messages: [{ role: 'user', content: [{ type: 'image', url: 'x' }] }] }, /^messages\[0\]\.content\[0\]\.type: unknown content type "image"/],
    [{ messages: [{ role: 'user', content: 'a', recipent: 'x' }] }, /^messages\[0\]\.recipent: unknown field/],
    [{ messages: [{ role: 'tool', content: 'a' }] }, /^messages\[0\]\.name: a tool message needs the name/],
    [{ messages: [{ role: 'user', content: [{ type: 'system_content' }] }] }, /^messages\[0\]\.content\[0\]: system_content may only appear in a system message/],
    [{ messages: [{ role: 'system', content: [{ type: 'system_content', reasoning_effort: 'max' }] }] }, /^messages\[0\]\.content\[0\]\.reasoning_effort: expected "low", "medium" or "high", got "max"/],
    [
      { messages: [{ role: 'developer', content: [{ type: 'developer_content', tools: { functions: { name: 'functions', tools: [{ name: 'f', description: 'd', parameters: { type: 'object', properties: { a: { type: 'array', items: 'string' } } } }] } } }] }] },
      /^messages\[0\]\.content\[0\]\.tools\.functions\.tools\[0\]\.parameters\.properties\.a\.items: a tool schema must be a JSON object, got "string"/,
    ],
    [
      { messages: [{ role: 'developer', content: [{ type: 'developer_content', tools: { functions: { name: 'functions', tools: [{ name: 'f', description: 'd', parameters: { type: 'object', required: 'a' } }] } } }] }] },
      /parameters\.required: expected a list of property names, got "a"/,
    ],
    ['hello', /^\(conversation\): expected \{"messages": \[\.\.\.\]\} or a list of messages, got "hello"/],
  ];
  for (const [json, pattern] of cases) {
    assert.throws(() => conversationFromJSON(json), (e: unknown) => e instanceof UserError && e.kind === 'input' && pattern.test(e.message), String(pattern));
  }
  assert.throws(
    () => conversationFromJSONText('{\n  "messages": [\n    {"role": "user",, "content": "x"}\n  ]\n}', 'chat.json'),
    (e: unknown) => e instanceof UserError && /^chat\.json: invalid JSON at line 3, column \d+/.test(e.message),
  );
  assert.throws(
    () => conversationFromJSONText('[{"role": "robot", "content": "x"}]', 'chat.json'),
    (e: unknown) => e instanceof UserError && e.message.startsWith('chat.json: messages[0].role: unknown role "robot"'),
  );
});

test('every example conversation loads, renders and survives a JSON round trip', () => {
  const dir = new URL('../../examples/', import.meta.url);
  const files = readdirSync(dir).filter((f) => f.endsWith('.json'));
  assert.ok(files.includes('chat.json') && files.length >= 4, files.join());
  for (const f of files) {
    const convo = conversationFromJSONText(readFileSync(new URL(f, dir), 'utf8'), f);
    assert.ok(renderConversationForCompletion(convo).length > 20, f);
    assert.deepEqual(conversationFromJSON(conversationToJSON(convo)), convo, f);
  }
});
