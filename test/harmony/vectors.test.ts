// Every rendering vector of the official harmony library (test/fixtures/harmony, copied from its
// test-data/) reproduced from the same inputs as its own tests (src/tests.rs, tests/test_harmony.py):
// the rendered ids must equal the vector encoded with special tokens allowed, and the text must
// match byte for byte. Parsing vectors are decoded into the messages the official tests expect.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { getTokenizer } from '../../src/tokenizer/index.ts';
import {
  createMessage,
  developerContent,
  browserToolNamespace,
  message,
  parseMessagesFromCompletionTokens,
  pythonToolNamespace,
  renderConversation,
  renderConversationForCompletion,
  requireChannels,
  StreamParser,
  systemContent,
  tokensToText,
  toolDescription,
  withTools,
  type Conversation,
  type DropAnalysis,
  type Message,
  type ReasoningEffort,
} from '../../src/harmony/index.ts';

const dir = new URL('../fixtures/harmony/', import.meta.url);
const tok = getTokenizer();

/** As the official tests load test-data: CRLF -> LF, trailing whitespace trimmed. */
function vector(name: string): string {
  return readFileSync(new URL(`${name}.txt`, dir), 'utf8').replace(/\r\n/g, '\n').trimEnd();
}

const checked = new Set<string>();

function assertRendersAs(name: string, ids: number[]): void {
  checked.add(name);
  const expected = vector(name);
  assert.equal(tokensToText(ids), expected, `${name}: text differs`);
  assert.deepEqual(ids, tok.encode(expected, { allowedSpecial: 'all' }), `${name}: ids differ`);
}

function completion(name: string, messages: Message[], dropAnalysis: DropAnalysis = 'none'): void {
  assertRendersAs(name, renderConversationForCompletion({ messages }, 'assistant', { dropAnalysis }));
}

const IDENTITY = 'You are ChatGPT, a large language model trained by OpenAI.';

test('test_simple_convo', () => {
  completion('test_simple_convo', [message.system(systemContent({ modelIdentity: IDENTITY })), message.user('What is 2 + 2?')]);
});

test('test_simple_convo_{low,medium,high}_effort[_no_instruction]', () => {
  for (const effort of ['low', 'medium', 'high'] as ReasoningEffort[]) {
    for (const withInstructions of [true, false]) {
      const sys = message.system(systemContent({ modelIdentity: IDENTITY, reasoningEffort: effort }));
      const user = message.user('What is the capital of the largest country in the world?');
      const dev = message.developer(developerContent({ instructions: "Answer the user's questions like a robot." }));
      const name = `test_simple_convo_${effort}_effort${withInstructions ? '' : '_no_instruction'}`;
      completion(name, withInstructions ? [sys, dev, user] : [sys, user]);
    }
  }
});

test('test_reasoning_system_message (medium, channels analysis+final)', () => {
  const sys = systemContent({ modelIdentity: IDENTITY, reasoningEffort: 'medium', channelConfig: requireChannels(['analysis', 'final']) });
  completion('test_reasoning_system_message', [message.system(sys), message.user('What is 2 + 2?')]);
});

test('test_reasoning_system_message_no_instruction (high)', () => {
  const sys = systemContent({ modelIdentity: IDENTITY, reasoningEffort: 'high', channelConfig: requireChannels(['analysis', 'final']) });
  completion('test_reasoning_system_message_no_instruction', [message.system(sys), message.user('What is the best place to eat candy in the world?')]);
});

test('test_reasoning_system_message_with_dates', () => {
  const sys = systemContent({
    modelIdentity: IDENTITY,
    reasoningEffort: 'medium',
    conversationStartDate: '2021-01-01',
    knowledgeCutoff: '2021-01',
    channelConfig: requireChannels(['analysis', 'final']),
  });
  completion('test_reasoning_system_message_with_dates', [message.system(sys), message.user('What is 42 * pi?')]);
});

test('test_render_functions_with_parameters (JSON Schema -> TypeScript)', () => {
  const sys = systemContent({ reasoningEffort: 'high', conversationStartDate: '2025-06-28' });
  const dev = developerContent({
    instructions: 'Always respond in riddles',
    functionTools: [
      toolDescription('get_location', 'Gets the location of the user.'),
      toolDescription('get_current_weather', 'Gets the current weather in the provided location.', {
        type: 'object',
        properties: {
          location: { type: 'string', description: 'The city and state, e.g. San Francisco, CA' },
          format: { type: 'string', enum: ['celsius', 'fahrenheit'], default: 'celsius' },
        },
        required: ['location'],
      }),
      toolDescription('get_multiple_weathers', 'Gets the current weather in the provided list of locations.', {
        type: 'object',
        properties: {
          locations: {
            type: 'array',
            items: { type: 'string' },
            description: 'List of city and state, e.g. ["San Francisco, CA", "New York, NY"]',
          },
          format: { type: 'string', enum: ['celsius', 'fahrenheit'], default: 'celsius' },
        },
        required: ['locations'],
      }),
      toolDescription('kitchensink', 'A function with various complex schemas.', {
        description: 'params object',
        type: 'object',
        properties: {
          string: { type: 'string', title: 'STRING', description: 'A string', examples: ['hello', 'world'] },
          string_nullable: { type: 'string', nullable: true, description: 'A nullable string', default: 'the default' },
          string_enum: { type: 'string', enum: ['a', 'b', 'c'] },
          oneof_string_or_number: {
            oneOf: [
              { type: 'string', default: 'default_string_in_oneof' },
              { type: 'number', description: 'numbers can happen too' },
            ],
            description: 'a oneof',
            default: 20,
          },
        },
      }),
    ],
  });
  completion('test_render_functions_with_parameters', [message.system(sys), message.developer(dev), message.user('What is the weather like in SF?')]);
});

test('test_no_tools', () => {
  completion('test_no_tools', [message.system(systemContent({ conversationStartDate: '2025-06-28' }))], 'library');
});

test('test_browser_tool_only', () => {
  const sys = withTools(systemContent({ conversationStartDate: '2025-06-28' }), browserToolNamespace());
  completion('test_browser_tool_only', [message.system(sys)], 'library');
});

test('test_browser_and_function_tool ("Calls to these tools must go to the commentary channel")', () => {
  const sys = withTools(systemContent({ conversationStartDate: '2025-06-28' }), browserToolNamespace());
  const dev = developerContent({
    functionTools: [
      toolDescription(
        'lookup_weather',
        "Use this tool to lookup the weather in a given location. Call it with the parameter 'location', can be any textual description of a location.",
        { type: 'object', properties: { location: { type: 'string' } }, required: ['location'] },
      ),
    ],
  });
  completion('test_browser_and_function_tool', [message.system(sys), message.developer(dev)], 'library');
});

test('test_browser_and_python_tool (namespaces sorted, python description as prose)', () => {
  // Added python first: the rendering order is by namespace name, not insertion.
  const sys = withTools(withTools(systemContent({ conversationStartDate: '2025-06-28' }), pythonToolNamespace()), browserToolNamespace());
  completion('test_browser_and_python_tool', [message.system(sys)], 'library');
});

const cotConvo = (analysis: string): Message[] => [
  message.user('What is 2 + 2?'),
  message.assistant(analysis, { channel: 'analysis' }),
  message.assistant('2 + 2 equals 4.', { channel: 'final' }),
  message.user('What about 9 / 2?'),
];

test('test_dropping_cot_by_default (library and documented modes agree)', () => {
  const msgs = cotConvo('User asks: “What is 2 + 2?” Simple arithmetic. Provide answer.');
  completion('test_dropping_cot_by_default', msgs, 'library');
  completion('test_dropping_cot_by_default', msgs, 'completed-turns');
});

test('test_preserve_cot', () => {
  completion('test_preserve_cot', cotConvo('User asks a simple question: "What is 2 + 2?" The answer: 4.'), 'none');
});

test('test_does_not_drop_if_ongoing_analysis (tool call in progress, <|constrain|> as a token)', () => {
  const msgs = [
    message.user('What is the weather in SF?'),
    message.assistant('User asks: “What is the weather in SF?” We need to use lookup_weather tool.', { channel: 'analysis' }),
    message.assistant('{"location": "San Francisco"}', {
      channel: 'commentary',
      recipient: 'functions.lookup_weather',
      contentType: '<|constrain|>json',
    }),
    createMessage({ role: 'tool', name: 'functions.lookup_weather' }, '{"temperature": 20, "description": "sunny"}'),
  ];
  completion('test_does_not_drop_if_ongoing_analysis', msgs, 'library');
  completion('test_does_not_drop_if_ongoing_analysis', msgs, 'completed-turns');
});

test('test_keep_analysis_between_finals (library mode drops only before the first final)', () => {
  const msgs = [
    message.user('What is 2 + 2?'),
    message.assistant('thinking 2+2', { channel: 'analysis' }),
    message.assistant('4', { channel: 'final' }),
    message.user('What is 3 + 5?'),
    message.assistant('thinking 3+5', { channel: 'analysis' }),
    message.assistant('8', { channel: 'final' }),
  ];
  assertRendersAs('test_keep_analysis_between_finals', renderConversation({ messages: msgs }, { dropAnalysis: 'library' }));
  // The documented rule drops both completed turns' analysis: the vector's second analysis is gone.
  const documented = tokensToText(renderConversation({ messages: msgs }, { dropAnalysis: 'completed-turns' }));
  assert.ok(!documented.includes('thinking'), documented);
});

// ------------------------------------------------------------------------------------------------
// Parsing vectors

const ids = (name: string): number[] => vector(name).split(/\s+/).map(Number);

test('test_simple_reasoning_response (ids -> analysis + final)', () => {
  checked.add('test_simple_reasoning_response');
  const msgs = parseMessagesFromCompletionTokens(ids('test_simple_reasoning_response'), 'assistant');
  assert.deepEqual(msgs, [
    message.assistant('User asks: "What is 2 + 2?" Simple arithmetic. Provide answer.', { channel: 'analysis' }),
    message.assistant('2 + 2 = 4.', { channel: 'final' }),
  ]);
});

test('test_simple_tool_call (recipient before channel, content type "code")', () => {
  checked.add('test_simple_tool_call');
  const msgs = parseMessagesFromCompletionTokens(ids('test_simple_tool_call'), 'assistant');
  assert.deepEqual(msgs, [
    message.assistant('User asks: "What is the weather in Tokyo?" We need to use lookup_weather tool.', { channel: 'analysis' }),
    message.assistant('{"location": "Tokyo"}', { channel: 'analysis', recipient: 'lookup_weather', contentType: 'code' }),
  ]);
});

test('test_streamable_parser (3 messages, fed one token at a time)', () => {
  checked.add('test_streamable_parser');
  const text = vector('test_streamable_parser');
  const parser = new StreamParser({ role: 'assistant' });
  for (const t of tok.encode(text, { allowedSpecial: 'all' })) parser.process(t);
  assert.equal(parser.messages.length, 3);
  assert.deepEqual(
    parser.messages.map((m) => [m.author.role, m.author.name, m.channel, m.recipient, m.contentType]),
    [
      ['assistant', undefined, 'analysis', undefined, undefined],
      ['assistant', undefined, 'commentary', 'browser.search', 'code'],
      ['tool', 'browser.search', 'commentary', 'assistant', undefined],
    ],
  );
});

test('test_tool_response_parsing (role from the header: tool "browser.search")', () => {
  checked.add('test_tool_response_parsing');
  const expected = createMessage({ role: 'tool', name: 'browser.search' }, '{"result": "https://openai.com/"}', {
    channel: 'commentary',
    recipient: 'assistant',
  });
  const rendered = renderConversation({ messages: [expected] }).slice(0, -1); // without <|end|>
  assert.equal(tokensToText(rendered), vector('test_tool_response_parsing'));
  assert.deepEqual(parseMessagesFromCompletionTokens(rendered), [expected]);
  const convo: Conversation = { messages: parseMessagesFromCompletionTokens(tok.encode(vector('test_tool_response_parsing'), { allowedSpecial: 'all' })) };
  assert.deepEqual(convo.messages, [expected]);
});

test('every vector file is covered by a test above', () => {
  const files = readdirSync(dir).filter((f) => f.endsWith('.txt')).map((f) => f.slice(0, -4)).sort();
  assert.equal(files.length, 23);
  assert.deepEqual(files.filter((f) => !checked.has(f)), []);
});
