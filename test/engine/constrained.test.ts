import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Ajv } from 'ajv';
import { JsonAutomaton, JsonConstraint, tokenBytesOf, type JsonSchema, type TokenBytes } from '../../src/engine/constrained.ts';
import { Rng, sampleToken, samplingParams } from '../../src/engine/sampler.ts';
import { getTokenizer } from '../../src/tokenizer/index.ts';

const full = tokenBytesOf(getTokenizer());
/** The first 4000 ranks of o200k (all single bytes and common pieces) plus a stop token: small enough for many seeds. */
const small: TokenBytes = [...full.slice(0, 4000), null];
const SMALL_STOP = 4000;
const FULL_STOP = 200002;

const schemas: Record<string, JsonSchema> = {
  weather: {
    type: 'object',
    properties: {
      location: { type: 'string', minLength: 1, maxLength: 40 },
      unit: { type: 'string', enum: ['celsius', 'fahrenheit'] },
      days: { type: 'integer', minimum: 1, maximum: 14 },
      detailed: { type: 'boolean' },
    },
    required: ['location', 'unit'],
    additionalProperties: false,
  },
  nested: {
    type: 'object',
    properties: {
      name: { type: 'string', maxLength: 20 },
      scores: { type: 'array', items: { type: 'number' }, minItems: 1, maxItems: 5 },
      owner: {
        type: ['object', 'null'],
        properties: { id: { const: 42 }, tags: { type: 'array', items: { enum: ['a', 'b', 7, null] } } },
        required: ['id', 'tags'],
        additionalProperties: false,
      },
      note: { type: 'string', nullable: true, maxLength: 10 },
    },
    required: ['name', 'scores', 'owner', 'note'],
    additionalProperties: false,
  },
  chart: {
    type: 'object',
    properties: {
      data: { type: 'array', items: { type: 'array', items: { type: 'number' }, maxItems: 3 }, maxItems: 3 },
      chart_type: { type: 'string', enum: ['bar', 'line', 'pie'] },
      title: { type: 'string', maxLength: 12 },
    },
    required: ['data', 'chart_type'],
    additionalProperties: false,
  },
  refs: {
    $defs: { point: { type: 'object', properties: { x: { type: 'number' }, y: { type: 'number' } }, required: ['x', 'y'], additionalProperties: false } },
    type: 'object',
    properties: { a: { $ref: '#/$defs/point' }, b: { anyOf: [{ $ref: '#/$defs/point' }, { type: 'string', maxLength: 5 }] } },
    required: ['a', 'b'],
    additionalProperties: false,
  },
  anyObject: { type: 'object' },
};

/** Samples from random logits through the constraint until the stop token or the budget ends. */
function generate(schema: JsonSchema, vocab: TokenBytes, seed: number, budget: number, temperature = 1): { text: string; stopped: boolean; tokens: number } {
  const STOP = vocab === small ? SMALL_STOP : FULL_STOP;
  const c = new JsonConstraint(schema, vocab, { stopTokens: [STOP] });
  const rng = new Rng(seed);
  const params = samplingParams({ temperature });
  const logits = new Float32Array(vocab.length);
  for (let n = 0; n < budget; n++) {
    for (let i = 0; i < logits.length; i++) logits[i] = vocab[i] === null && i !== STOP ? -Infinity : rng.nextFloat() * 8;
    const work = new Float32Array(logits);
    c.mask(work, { remaining: budget - n, greedy: temperature === 0 });
    const { token } = sampleToken(work, params, rng);
    c.accept(token);
    if (token === STOP) return { text: c.text(), stopped: true, tokens: n + 1 };
  }
  return { text: c.text(), stopped: false, tokens: budget };
}

test('random logits through the constraint always give JSON that validates (many seeds, several schemas)', () => {
  const ajv = new Ajv({ strict: false });
  for (const [name, schema] of Object.entries(schemas)) {
    const validate = ajv.compile(schema as object);
    for (let seed = 0; seed < 4; seed++) {
      const budget = 40 + seed * 5;
      const out = generate(schema, small, seed, budget);
      assert.ok(out.stopped, `${name} seed ${seed}: no stop token within ${budget} tokens: ${out.text}`);
      const value: unknown = JSON.parse(out.text);
      assert.ok(validate(value), `${name} seed ${seed}: ${out.text} -> ${ajv.errorsText(validate.errors)}`);
    }
  }
});

test('greedy decoding over the full vocabulary follows the schema', () => {
  const ajv = new Ajv({ strict: false });
  const validate = ajv.compile(schemas.weather as object);
  for (let seed = 0; seed < 1; seed++) {
    const out = generate(schemas.weather!, full, 101 + seed, 60, 0);
    assert.ok(out.stopped);
    assert.ok(validate(JSON.parse(out.text)), out.text);
  }
});

test('the automaton accepts exactly the valid prefixes', () => {
  const a = new JsonAutomaton(schemas.weather!);
  const accepts = (s: string): boolean => a.feedBytes(a.initial(), new TextEncoder().encode(s)) !== null;
  assert.ok(accepts('{"location": "Paris", "unit": "celsius"}'));
  assert.ok(accepts('{\n  "unit": "fahrenheit",\n  "location": "Ünïcødé 🌍", "days": 12'));
  assert.ok(!accepts('{"location": "Paris", "unit": "kelvin"'), 'enum');
  assert.ok(!accepts('{"location": "Paris"}'), 'required unit missing');
  assert.ok(!accepts('{"city": '), 'additionalProperties false');
  assert.ok(!accepts('{"location": "a", "location"'), 'duplicate key');
  assert.ok(!accepts('{"days": 1.5'), 'integer');
  assert.ok(!accepts('{"days": 01'), 'leading zero');
  assert.ok(!accepts('{"days": 15'), 'maximum');
  assert.ok(!accepts('{"days": 0'), 'minimum');
  assert.ok(accepts('{"days": 14,'), 'in range');
  assert.ok(!accepts('{"location": "\u0001'), 'control character');
  assert.ok(!accepts('{"location": "\\x'), 'bad escape');
  const done = a.feedBytes(a.initial(), new TextEncoder().encode('{"location":"x","unit":"celsius"}'))!;
  assert.ok(a.isComplete(done));
  const partial = a.feedBytes(a.initial(), new TextEncoder().encode('{"loc'))!;
  assert.equal(new TextDecoder().decode(a.completion(partial)), 'ation":"a","unit":"celsius"}');
  const bytes = new Uint8Array([...new TextEncoder().encode('{"location":"'), 0xe2]);
  const mid = a.feedBytes(a.initial(), bytes)!;
  const closed = new Uint8Array([...bytes, ...a.completion(mid)]);
  assert.doesNotThrow(() => JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(closed)));
});

test('a short budget forces the shortest completion, which still validates', () => {
  const ajv = new Ajv({ strict: false });
  const validate = ajv.compile(schemas.nested as object);
  for (let seed = 0; seed < 5; seed++) {
    const out = generate(schemas.nested!, small, seed, 45);
    assert.ok(out.stopped, out.text);
    assert.ok(validate(JSON.parse(out.text)), out.text);
  }
});
