// Structured outputs end to end: a model with random logits over the full vocabulary (the worst
// case) served with a JSON schema must still answer JSON that validates, on both APIs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Ajv } from 'ajv';
import OpenAI from 'openai';
import { PromptEngine, RandomLogitEngine, startServer } from './helpers.ts';

const schema = {
  type: 'object',
  properties: {
    city: { type: 'string', maxLength: 12 },
    unit: { type: 'string', enum: ['celsius', 'fahrenheit'] },
    days: { type: 'array', items: { type: 'integer' }, maxItems: 3 },
  },
  required: ['city', 'unit', 'days'],
  additionalProperties: false,
};

test('random-logit model: the answer always validates against the schema (both APIs, two models)', async () => {
  const validate = new Ajv({ strict: false }).compile(schema);
  for (const [seed, api] of [[1, 'responses'], [2, 'chat']] as const) {
    const { client, close } = await startServer(new RandomLogitEngine(seed));
    try {
      let text: string;
      if (api === 'responses') {
        const r = await client.responses.create({
          model: 'random',
          input: 'Weather?',
          max_output_tokens: 60,
          temperature: 0,
          text: { format: { type: 'json_schema', name: 'weather', schema, strict: true } },
        });
        text = r.output_text;
      } else {
        const c = await client.chat.completions.create({
          model: 'random',
          messages: [{ role: 'user', content: 'Weather?' }],
          max_tokens: 60,
          seed,
          response_format: { type: 'json_schema', json_schema: { name: 'weather', schema, strict: true } },
        });
        text = c.choices[0]!.message.content!;
      }
      assert.ok(validate(JSON.parse(text)), `${api}: ${text}`);
    } finally {
      await close();
    }
  }
});

test('a model that writes the JSON itself is only masked where it strays; json_object mode', async () => {
  const engine = new PromptEngine(() => '<|channel|>analysis<|message|>Answer in JSON.<|end|><|start|>assistant<|channel|>final<|message|>{"city": "Oslo", "unit": "celsius", "days": [1, 2]}<|return|>');
  const { client, close } = await startServer(engine);
  try {
    const r = await client.chat.completions.create({
      model: 'prompt-engine',
      messages: [{ role: 'user', content: 'Weather in Oslo?' }],
      response_format: { type: 'json_schema', json_schema: { name: 'weather', schema } },
    });
    assert.deepEqual(JSON.parse(r.choices[0]!.message.content!), { city: 'Oslo', unit: 'celsius', days: [1, 2] });
    // The schema is announced to the model in the developer message.
    assert.match(engine.prompts[0]!, /# Response Formats\n\n## weather\n\n\{"type":"object"/);
    const o = await client.chat.completions.create({ model: 'prompt-engine', messages: [{ role: 'user', content: 'x' }], response_format: { type: 'json_object' } });
    assert.equal(typeof JSON.parse(o.choices[0]!.message.content!), 'object');
  } finally {
    await close();
  }
});

test('a schema the constraint cannot honour is a 400 naming it, before any generation', async () => {
  const engine = new PromptEngine(() => '<|channel|>final<|message|>{}<|return|>');
  const { client, close } = await startServer(engine);
  try {
    const remote = { type: 'object', properties: { a: { $ref: 'https://example.com/s.json' } } };
    await assert.rejects(
      client.chat.completions.create({ model: 'prompt-engine', messages: [{ role: 'user', content: 'x' }], response_format: { type: 'json_schema', json_schema: { name: 'r', schema: remote } } }),
      (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === 'response_format.json_schema.schema' && /unsupported \$ref "https:\/\/example.com\/s.json"/.test(e.message),
    );
    await assert.rejects(
      client.responses.create({ model: 'prompt-engine', input: 'x', text: { format: { type: 'json_schema', name: 'n', schema: { type: 'object', properties: { n: { type: 'integer', minimum: 5, maximum: 2 } } }, strict: true } } }),
      (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === 'text.format.schema' && /integer range is empty/.test(e.message),
    );
    await assert.rejects(
      client.chat.completions.create({
        model: 'prompt-engine', messages: [{ role: 'user', content: 'x' }],
        tools: [{ type: 'function', function: { name: 'f', strict: true, parameters: { type: 'object', properties: { x: { type: 'date' } } } } }],
      }),
      (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === 'tools[f].parameters' && /unsupported schema type "date"/.test(e.message),
    );
    assert.equal(engine.prompts.length, 0, 'nothing was generated');
  } finally {
    await close();
  }
});

test('structured output: a completion cannot stop inside its header, so a schema-constrained answer always comes', async () => {
  // The model tries to end while still in the header (no <|message|>): before, the reply was an
  // empty "completed" answer that is not JSON.
  const s = await startServer(new PromptEngine(() => '<|channel|>final words that never end the header<|return|>'));
  try {
    const schema = { type: 'object', properties: { a: { type: 'integer' } }, required: ['a'], additionalProperties: false };
    const chat = await s.client.chat.completions.create({
      model: 'gpt-oss-20b', max_tokens: 40, messages: [{ role: 'user', content: 'json' }],
      response_format: { type: 'json_schema', json_schema: { name: 'o', schema, strict: true } },
    });
    assert.equal(chat.choices[0]!.finish_reason, 'stop');
    assert.equal(typeof (JSON.parse(chat.choices[0]!.message.content!) as { a: unknown }).a, 'number');
    const r = await s.client.responses.create({ model: 'gpt-oss-20b', max_output_tokens: 40, input: 'json', text: { format: { type: 'json_schema', name: 'o', schema, strict: true } } });
    assert.equal(r.status, 'completed');
    assert.equal(typeof (JSON.parse(r.output_text) as { a: unknown }).a, 'number');
  } finally {
    await s.close();
  }
});
