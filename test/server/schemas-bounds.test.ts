// Structured-output schemas that once hung or killed the server ($ref cycles, a billion minItems)
// are refused before generation with a 400 naming the parameter; deep but valid schemas work.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Ajv } from 'ajv';
import OpenAI from 'openai';
import { JsonAutomaton, JsonConstraint, MAX_SCHEMA_NESTING, MAX_SHORTEST_BYTES, compileSchema, shortestJsonBytes, tokenBytesOf, type JsonSchema } from '../../src/engine/constrained.ts';
import { isUserError } from '../../src/errors.ts';
import { getTokenizer } from '../../src/tokenizer/index.ts';
import { PromptEngine, RandomLogitEngine, startServer } from './helpers.ts';

/** An object schema nesting `depth` levels of required objects under key `a`, an integer at the bottom. */
function nested(depth: number): JsonSchema {
  let s: JsonSchema = { type: 'integer' };
  for (let i = 0; i < depth; i++) s = { type: 'object', properties: { a: s }, required: ['a'], additionalProperties: false };
  return s;
}

const BAD: [string, JsonSchema, RegExp][] = [
  ['a $ref to itself', { $ref: '#' }, /#: a \$ref cycle through anyOf\/oneOf\/\$ref never enters an object or array/],
  ['a $ref cycle through $defs', { $defs: { a: { $ref: '#/$defs/b' }, b: { $ref: '#/$defs/a' } }, $ref: '#/$defs/a' }, /\$ref cycle/],
  ['anyOf that recurses before any object', { anyOf: [{ $ref: '#' }, { type: 'null' }] }, /\$ref cycle/],
  ['a required property that is the whole schema again', { type: 'object', properties: { child: { $ref: '#' } }, required: ['child'], additionalProperties: false }, /#\/properties\/child: admits no finite value/],
  ['an optional property with no finite value', { type: 'object', properties: { a: { type: 'array', minItems: 1, items: { $ref: '#/properties/a' } } } }, /#\/properties\/a\/items: admits no finite value/],
  ['minItems: 1e9', { type: 'array', items: { type: 'string' }, minItems: 1e9 }, /#: its shortest value is 3000000001 bytes, more than the 65536/],
  ['minLength: 3e8', { type: 'object', properties: { s: { type: 'string', minLength: 3e8 } }, required: ['s'] }, /#\/properties\/s: its shortest value is 300000002 bytes, more than the 65536/],
  ['minItems above maxItems', { type: 'array', minItems: 3, maxItems: 2 }, /admits no finite value/],
  ['minLength above maxLength', { type: 'string', minLength: 3, maxLength: 2 }, /admits no finite value/],
  ['an empty anyOf', { anyOf: [] }, /admits no finite value/],
  ['a required property that additionalProperties: false forbids', { type: 'object', properties: { a: { type: 'string' } }, required: ['a', 'c'], additionalProperties: false }, /#: required property "c" is not in properties and additionalProperties is false/],
  ['a property schema that is not a schema', { type: 'object', properties: { a: null } }, /#\/properties\/a: a schema must be an object or a boolean/],
  [`nesting past ${MAX_SCHEMA_NESTING}`, nested(MAX_SCHEMA_NESTING + 1), new RegExp(`nests more than ${MAX_SCHEMA_NESTING} levels deep`)],
];

test('schemas with no finite value, values beyond the size limit or nesting past the limit are refused at compile time', () => {
  for (const [what, schema, message] of BAD) {
    assert.throws(() => compileSchema(schema), (e: unknown) => isUserError(e) && message.test(e.message), what);
  }
});

test('deep and recursive schemas that have finite values compile, and their shortest completion validates', () => {
  const vocab = tokenBytesOf(getTokenizer());
  const ajv = new Ajv({ strict: false });
  const tree = { type: 'object', properties: { name: { type: 'string', minLength: 2 }, children: { type: 'array', items: { $ref: '#' } } }, required: ['name', 'children'], additionalProperties: false };
  const list = { $defs: { node: { type: 'object', properties: { next: { anyOf: [{ $ref: '#/$defs/node' }, { type: 'null' }] } }, required: ['next'], additionalProperties: false } }, $ref: '#/$defs/node' };
  const wide = { type: 'array', items: { type: 'string', minLength: 10 }, minItems: 4000 };
  for (const schema of [nested(60), nested(MAX_SCHEMA_NESTING), tree, list, wide] as JsonSchema[]) {
    const text = new TextDecoder().decode(new JsonConstraint(schema, vocab, { stopTokens: [] }).completion());
    assert.ok(ajv.validate(schema as object, JSON.parse(text)), text.slice(0, 200));
    assert.equal(shortestJsonBytes(schema), Buffer.byteLength(text));
    assert.ok(shortestJsonBytes(schema) <= MAX_SHORTEST_BYTES);
  }
  assert.equal(shortestJsonBytes(list), '{"next":null}'.length);
});

test('the completion length used to check candidate tokens equals the completion, on random walks through several schemas', () => {
  const schemas: JsonSchema[] = [
    nested(6),
    { type: 'object', properties: { name: { type: 'string', minLength: 3 }, kids: { type: 'array', items: { $ref: '#' }, maxItems: 3 }, tag: { enum: ['x', 'long-value', 7] } }, required: ['name', 'tag'], additionalProperties: false },
    { type: 'object', additionalProperties: { type: 'array', items: { type: 'integer' }, minItems: 2 } },
    { type: 'array', items: { anyOf: [{ type: 'string', minLength: 2 }, { type: 'number' }, { type: 'object', properties: { é: { type: 'boolean' } }, required: ['é'] }] }, minItems: 3 },
    { type: 'object', properties: { a: { type: 'string' }, b: { type: 'integer', minimum: 1, maximum: 12 }, c: { type: 'null' } }, required: ['c'] },
  ];
  let seed = 12345;
  const random = (n: number): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed % n;
  };
  // Bytes a model writes: structure, digits, letters, a non-ASCII letter, escapes, whitespace.
  const alphabet = [...new TextEncoder().encode('{}[],:"\\ntu0123456789.-eE abcdefgxlnrsé\n')];
  for (const schema of schemas) {
    const a = new JsonAutomaton(schema);
    for (let walk = 0; walk < 30; walk++) {
      let state = a.initial();
      for (let step = 0; step < 200 && state.length > 0; step++) {
        assert.equal(a.completionLength(state), a.completion(state).length, JSON.stringify(schema));
        const next = alphabet.map((b) => a.feed(state, b)).filter((x) => x !== null);
        if (next.length === 0) break;
        state = next[random(next.length)]!;
      }
    }
  }
});

test('the shortest completion of an anyOf is one the automaton accepts (it commits to the first option that fits a byte)', () => {
  for (const schema of [
    { anyOf: [{ type: 'string', minLength: 5 }, { type: 'string' }] },
    { anyOf: [{ type: 'array', minItems: 3, items: { type: 'integer' } }, { type: 'array' }] },
    { type: 'object', properties: { a: { anyOf: [{ type: 'object', properties: { x: { type: 'string' } }, required: ['x'] }, { type: 'object' }] } }, required: ['a'] },
    { anyOf: [{ enum: ['long-value'] }, { type: 'integer' }, { type: 'string' }, { type: 'null' }] },
  ] as JsonSchema[]) {
    const a = new JsonAutomaton(schema);
    const end = a.feedBytes(a.initial(), a.completion(a.initial()));
    assert.ok(end !== null && a.isComplete(end), JSON.stringify(schema));
  }
  // Options the automaton can reach still give the shortest value: `0` beats the enum and the string.
  assert.equal(shortestJsonBytes({ anyOf: [{ enum: ['long-value'] }, { type: 'integer' }, { type: 'string' }] }), 1);
});

test('over HTTP the bad schemas are a 400 naming response_format / text.format, streaming or not, before any generation', async () => {
  const engine = new PromptEngine(() => '<|channel|>final<|message|>{}<|return|>');
  const { client, close } = await startServer(engine);
  try {
    for (const [what, schema, message] of BAD) {
      for (const stream of [false, true]) {
        await assert.rejects(
          client.chat.completions.create({ model: 'prompt-engine', stream, messages: [{ role: 'user', content: 'x' }], response_format: { type: 'json_schema', json_schema: { name: 'r', schema: schema as Record<string, unknown> } } }),
          (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === 'response_format.json_schema.schema' && message.test(e.message),
          `chat: ${what}`,
        );
        await assert.rejects(
          client.responses.create({ model: 'prompt-engine', stream, input: 'x', text: { format: { type: 'json_schema', name: 'r', schema: schema as Record<string, unknown>, strict: true } } }),
          (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === 'text.format.schema' && message.test(e.message),
          `responses: ${what}`,
        );
      }
    }
    // Strict function parameters go through the same checks.
    await assert.rejects(
      client.responses.create({ model: 'prompt-engine', input: 'x', tools: [{ type: 'function', name: 'f', strict: true, parameters: { type: 'object', properties: { c: { $ref: '#' } }, required: ['c'], additionalProperties: false } }] }),
      (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === 'tools[f].parameters' && /admits no finite value/.test(e.message),
    );
    assert.equal(engine.prompts.length, 0, 'nothing was generated');
  } finally {
    await close();
  }
});

test('a schema whose shortest value cannot fit the context window left by the prompt is a 400', async () => {
  const engine = new RandomLogitEngine(3); // a 4096-token window
  const { client, close } = await startServer(engine);
  try {
    const schema = { type: 'object', properties: { s: { type: 'string', minLength: 5000 } }, required: ['s'], additionalProperties: false };
    await assert.rejects(
      client.chat.completions.create({ model: 'random', messages: [{ role: 'user', content: 'x' }], response_format: { type: 'json_schema', json_schema: { name: 'r', schema } } }),
      (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === 'response_format' && /shortest JSON value .* is 5008 bytes, more than the \d+ tokens the context window of 4096 leaves/.test(e.message),
    );
    await assert.rejects(
      client.responses.create({ model: 'random', input: 'x', text: { format: { type: 'json_schema', name: 'r', schema, strict: true } } }),
      (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === 'text.format',
    );
  } finally {
    await close();
  }
});

test('a valid schema nested 60 deep works end to end (the constraint follows every level)', async () => {
  const schema = nested(60);
  const answer = '{"a":'.repeat(60) + '7' + '}'.repeat(60);
  const engine = new PromptEngine(() => `<|channel|>analysis<|message|>Deep.<|end|><|start|>assistant<|channel|>final<|message|>${answer}<|return|>`);
  const { client, close } = await startServer(engine);
  try {
    const r = await client.responses.create({ model: 'prompt-engine', input: 'x', text: { format: { type: 'json_schema', name: 'deep', schema: schema as Record<string, unknown>, strict: true } } });
    assert.equal(r.output_text, answer);
    assert.ok(new Ajv({ strict: false }).validate(schema as object, JSON.parse(r.output_text)));
  } finally {
    await close();
  }
});
