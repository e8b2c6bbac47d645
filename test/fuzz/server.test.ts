// Fuzzing the OpenAI-compatible server: random and mutated bodies for /v1/chat/completions and
// /v1/responses, and random JSON schemas as structured-output formats. The property: a 2xx with a
// well-formed reply (a stream that ends properly), or a 4xx in OpenAI's error shape with a one-line
// message; never a 500, a hang, or an unshaped stream; and the server is idle and healthy afterwards.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Ajv } from 'ajv';
import { PromptEngine, RandomLogitEngine, startServer } from '../server/helpers.ts';
import { assertOneLine, fuzzCases, FUZZ_SEED, Rng } from './fuzz.ts';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Server = Awaited<ReturnType<typeof startServer>>;

const PARAMETERS = [
  'model', 'messages', 'input', 'instructions', 'max_tokens', 'max_completion_tokens', 'max_output_tokens', 'temperature', 'top_p',
  'n', 'stop', 'seed', 'tools', 'tool_choice', 'response_format', 'text', 'logprobs', 'top_logprobs', 'stream', 'stream_options',
  'metadata', 'store', 'previous_response_id', 'reasoning', 'reasoning_effort', 'include', 'parallel_tool_calls', 'user',
  'logit_bias', 'frequency_penalty', 'presence_penalty', 'truncation', 'background',
];
const STRINGS = ['', 'hi', 'gpt-oss-20b', 'user', 'assistant', 'system', 'tool', 'developer', 'function', 'json_schema', 'text', 'auto', 'none',
  'required', 'low', 'high', 'message', 'function_call', 'function_call_output', 'item_reference', 'input_text', 'x'.repeat(5000), '\u0000\u001b[31m', 'é中文'];
const NUMBERS = [0, -1, 1, 2, 0.5, 1e308, -1e308, 2 ** 53, 1e-320, 16, 100000];

function randomJson(rng: Rng, depth: number): Json {
  const r = rng.int(0, depth > 0 ? 6 : 3);
  if (r === 0) return rng.pick([null, true, false]);
  if (r === 1) return rng.pick(NUMBERS);
  if (r === 2 || r === 3) return rng.pick(STRINGS);
  if (r === 4) return Array.from({ length: rng.int(0, 3) }, () => randomJson(rng, depth - 1));
  const o: { [key: string]: Json } = {};
  for (let k = rng.int(0, 3); k > 0; k--) o[rng.bool(0.7) ? rng.pick(['type', 'role', 'content', 'name', 'id', 'arguments', 'call_id', 'output', 'text', 'schema', 'json_schema', 'function', 'parameters', 'strict', 'effort', 'summary', 'format']) : rng.pick(STRINGS).slice(0, 20)] = randomJson(rng, depth - 1);
  return o;
}

/** A random path into `value` and a mutation there: replace, delete, or add a parameter. */
function mutate(rng: Rng, body: { [key: string]: Json }): void {
  let node: Json = body;
  for (let d = rng.int(0, 3); d > 0; d--) {
    if (Array.isArray(node) && node.length > 0) {
      const child: Json = node[rng.int(0, node.length - 1)]!;
      if (child !== null && typeof child === 'object') node = child;
    } else if (node !== null && typeof node === 'object' && !Array.isArray(node)) {
      const keys: string[] = Object.keys(node);
      if (keys.length === 0) break;
      const child: Json = node[rng.pick(keys)]!;
      if (child !== null && typeof child === 'object') node = child;
    }
  }
  if (Array.isArray(node)) {
    if (rng.bool() && node.length > 0) node.splice(rng.int(0, node.length - 1), 1);
    else node.push(randomJson(rng, 2));
    return;
  }
  if (node === null || typeof node !== 'object') return;
  const keys = Object.keys(node);
  const op = rng.int(0, 2);
  if (op === 0 && keys.length > 0) delete node[rng.pick(keys)];
  else if (op === 1 && keys.length > 0) node[rng.pick(keys)] = randomJson(rng, 2);
  else node[node === body ? rng.pick(PARAMETERS) : rng.pick(['type', 'role', 'content', 'name', 'schema', 'strict'])] = randomJson(rng, 2);
}

function baseChat(rng: Rng): { [key: string]: Json } {
  const body: { [key: string]: Json } = { model: 'gpt-oss-20b', messages: [{ role: 'user', content: 'What is 2+2?' }], max_tokens: 16 };
  if (rng.bool(0.3)) body['tools'] = [{ type: 'function', function: { name: 'lookup', description: 'd', parameters: { type: 'object', properties: { q: { type: 'string' } } } } }];
  if (rng.bool(0.2)) body['stream'] = true;
  return body;
}

function baseResponses(rng: Rng): { [key: string]: Json } {
  const body: { [key: string]: Json } = { model: 'gpt-oss-20b', input: rng.bool() ? 'What is 2+2?' : [{ role: 'user', content: [{ type: 'input_text', text: 'hi' }] }], max_output_tokens: 16 };
  if (rng.bool(0.3)) body['tools'] = [{ type: 'function', name: 'lookup', parameters: { type: 'object', properties: { q: { type: 'string' } } } }];
  if (rng.bool(0.2)) body['stream'] = true;
  return body;
}

async function post(s: Server, path: string, body: string): Promise<{ status: number; text: string; type: string }> {
  const r = await fetch(`${s.running.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  return { status: r.status, text: await r.text(), type: r.headers.get('content-type') ?? '' };
}

/** The reply is a success of the right shape or a 4xx in OpenAI's error shape. */
function checkReply(reply: { status: number; text: string; type: string }, path: string, what: string): void {
  assert.ok(reply.status < 500, `${what}: status ${reply.status}: ${reply.text.slice(0, 500)}`);
  assert.doesNotMatch(reply.text, /Maximum call stack|at .*\.ts:\d+/, `${what}: a stack or stack overflow leaked: ${reply.text.slice(0, 300)}`);
  if (reply.status >= 400) {
    const body = JSON.parse(reply.text) as { error?: { message?: unknown; type?: unknown } };
    assert.ok(body.error !== undefined && typeof body.error.message === 'string' && typeof body.error.type === 'string', `${what}: not OpenAI's error shape: ${reply.text.slice(0, 300)}`);
    assertOneLine(body.error.message, what);
    return;
  }
  if (reply.type.startsWith('text/event-stream')) {
    const datas = reply.text.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6));
    assert.ok(datas.length > 0, `${what}: empty stream`);
    if (path.includes('chat')) {
      assert.equal(datas.at(-1), '[DONE]', `${what}: chat stream did not end with [DONE]`);
      for (const d of datas.slice(0, -1)) JSON.parse(d);
    } else {
      const last = JSON.parse(datas.at(-1)!) as { type?: string };
      assert.ok(['response.completed', 'response.incomplete', 'response.failed', 'error'].includes(last.type ?? ''), `${what}: stream ended with ${datas.at(-1)}`);
    }
    return;
  }
  const body = JSON.parse(reply.text) as { object?: string };
  assert.ok(body.object === 'chat.completion' || body.object === 'response', `${what}: unexpected reply ${reply.text.slice(0, 300)}`);
}

async function untilIdle(s: Server): Promise<void> {
  // Stream handlers finish their bookkeeping after the last byte: wait for the server to settle.
  while (s.server.active > 0 || s.server.engine.activeSequences > 0) await new Promise((r) => setImmediate(r));
}

let prompt: Server;
let random: Server;
before(async () => {
  prompt = await startServer(new PromptEngine(() => '<|channel|>analysis<|message|>Adding.<|end|><|start|>assistant<|channel|>final<|message|>4<|return|>'), { maxOutputTokens: 24 });
  random = await startServer(new RandomLogitEngine(FUZZ_SEED), { maxOutputTokens: 48 });
});
after(async () => {
  await prompt.close();
  await random.close();
});

test('mutated request bodies get a reply or an OpenAI-shaped 4xx, never a 500', async () => {
  const rng = new Rng(FUZZ_SEED ^ 0xb0d);
  for (let i = 0; i < fuzzCases(150); i++) {
    const chat = rng.bool();
    const body = chat ? baseChat(rng) : baseResponses(rng);
    for (let k = rng.int(1, 4); k > 0; k--) mutate(rng, body);
    const path = chat ? '/v1/chat/completions' : '/v1/responses';
    checkReply(await post(prompt, path, JSON.stringify(body)), path, `case ${i} (seed ${FUZZ_SEED}) ${path} ${JSON.stringify(body).slice(0, 400)}`);
  }
  await untilIdle(prompt);
});

test('malformed JSON text, deep nesting and huge values get a 4xx', async () => {
  const rng = new Rng(FUZZ_SEED ^ 0x7e7);
  const valid = JSON.stringify(baseChat(rng));
  const texts = [
    '', 'null', '[]', '"x"', '{', '{"model":', '\u0000', '{"messages": [' + '['.repeat(100_000) + ']'.repeat(100_000) + ']}',
    JSON.stringify(baseResponses(rng)).slice(0, -1) + ',"metadata":' + '{"a":'.repeat(100_000) + '1' + '}'.repeat(100_000) + '}',
    JSON.stringify({ ...baseChat(rng), max_tokens: 1e308 }),
  ];
  for (let i = 0; i < fuzzCases(30); i++) {
    const cut = rng.int(0, valid.length - 1);
    texts.push(valid.slice(0, cut) + rng.pick(['', '}', ']', '\u001b', ',', '"']) + valid.slice(cut + rng.int(0, 3)));
  }
  for (const [i, text] of texts.entries()) {
    for (const path of ['/v1/chat/completions', '/v1/responses']) {
      checkReply(await post(prompt, path, text), path, `text ${i} (seed ${FUZZ_SEED}) ${path} ${JSON.stringify(text.slice(0, 120))}`);
    }
  }
  await untilIdle(prompt);
});

function randomSchema(rng: Rng, depth: number): Json {
  const pick = rng.int(0, depth > 0 ? 9 : 4);
  const s: { [key: string]: Json } = {};
  switch (pick) {
    case 0: s['type'] = 'string'; if (rng.bool(0.3)) s['maxLength'] = rng.pick([0, 1, 5, 3e8]); if (rng.bool(0.3)) s['minLength'] = rng.pick([0, 2, 3e8]); break;
    case 1: s['type'] = rng.pick(['integer', 'number']); if (rng.bool(0.3)) s['minimum'] = rng.pick([-5, 0, 10]); if (rng.bool(0.3)) s['maximum'] = rng.pick([-10, 3, 100]); break;
    case 2: s['type'] = 'boolean'; break;
    case 3: s['enum'] = Array.from({ length: rng.int(0, 3) }, () => rng.pick<Json>(['a', 'b', 1, null, true])); break;
    case 4: s['const'] = rng.pick<Json>(['x', 3, null, { a: 1 }]); break;
    case 5: case 6: {
      s['type'] = 'object';
      const props: { [key: string]: Json } = {};
      for (let k = rng.int(0, 3); k > 0; k--) props[rng.pick(['a', 'b', 'dose', 'unit', 'é'])] = randomSchema(rng, depth - 1);
      s['properties'] = props;
      if (rng.bool(0.6)) s['required'] = Object.keys(props).filter(() => rng.bool());
      if (rng.bool(0.5)) s['additionalProperties'] = false;
      break;
    }
    case 7: s['type'] = 'array'; s['items'] = randomSchema(rng, depth - 1); if (rng.bool(0.3)) s['minItems'] = rng.pick([0, 1, 2, 1e9]); if (rng.bool(0.3)) s['maxItems'] = rng.pick([0, 1, 3]); break;
    case 8: s['anyOf'] = Array.from({ length: rng.int(0, 3) }, () => randomSchema(rng, depth - 1)); break;
    default: s['$ref'] = rng.pick(['#', '#/$defs/node', '#/$defs/missing', 'http://example.com/x']); break;
  }
  return s;
}

/**
 * The part of a schema the constraint enforces (docs/server.md lists it): numeric bounds hold exactly
 * only for integers with both bounds and at most 1000 values; otherwise only `minimum >= 0` means "no
 * negative numbers".
 */
function enforcedPart(schema: Json): Json {
  if (Array.isArray(schema)) return schema.map(enforcedPart);
  if (schema === null || typeof schema !== 'object') return schema;
  const out: { [key: string]: Json } = {};
  for (const [k, v] of Object.entries(schema)) out[k] = k === 'const' || k === 'enum' ? v : enforcedPart(v);
  const { minimum, maximum } = out;
  const exact = out['type'] === 'integer' && typeof minimum === 'number' && typeof maximum === 'number' && maximum - minimum <= 1000;
  if (!exact) {
    delete out['maximum'];
    if (typeof minimum === 'number') {
      if (minimum >= 0) out['minimum'] = 0;
      else delete out['minimum'];
    }
  }
  return out;
}

test('random JSON schemas: a 400 naming the format, or output that the schema accepts', async () => {
  const rng = new Rng(FUZZ_SEED ^ 0x5c4e);
  const ajv = new Ajv({ strict: false, allErrors: false });
  for (let i = 0; i < fuzzCases(60); i++) {
    const schema = randomSchema(rng, 3) as { [key: string]: Json };
    if (rng.bool(0.2)) schema['$defs'] = { node: rng.bool() ? { $ref: '#/$defs/node' } : { type: 'object', properties: { next: { $ref: '#/$defs/node' } } } };
    const chat = rng.bool();
    // The sampler's seed too comes from the run's seed, so a failing case replays exactly.
    const seed = (FUZZ_SEED + i) % 2 ** 31;
    const body = chat
      ? { model: 'gpt-oss-20b', seed, messages: [{ role: 'user', content: 'json please' }], response_format: { type: 'json_schema', json_schema: { name: 'out', schema, strict: true } } }
      : { model: 'gpt-oss-20b', seed, input: 'json please', text: { format: { type: 'json_schema', name: 'out', schema, strict: true } } };
    const path = chat ? '/v1/chat/completions' : '/v1/responses';
    const what = `schema ${i} (seed ${FUZZ_SEED}) ${path} ${JSON.stringify(schema).slice(0, 400)}`;
    const reply = await post(random, path, JSON.stringify(body));
    checkReply(reply, path, what);
    if (reply.status >= 400) {
      const error = (JSON.parse(reply.text) as { error: { param?: string | null } }).error;
      assert.match(String(error.param), chat ? /^response_format/ : /^text/, `${what}: the 400 does not name the format: ${reply.text.slice(0, 300)}`);
      continue;
    }
    const done = JSON.parse(reply.text) as { choices?: { finish_reason: string; message: { content: string } }[]; status?: string; output_text?: string; output?: { type: string; content?: { type: string; text: string }[] }[] };
    const finished = chat ? done.choices![0]!.finish_reason === 'stop' : done.status === 'completed';
    if (!finished) continue; // cut off by the token cap: the prefix need not be a whole value
    const text = chat ? done.choices![0]!.message.content : done.output!.filter((o) => o.type === 'message').flatMap((o) => o.content ?? []).map((c) => c.text).join('');
    let validate;
    try {
      validate = ajv.compile(enforcedPart(schema) as { [key: string]: Json });
    } catch {
      continue; // a schema ajv cannot compile was accepted by the server: nothing more to check here
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      assert.fail(`${what}: a finished answer that is not JSON: ${JSON.stringify(text)}; reply ${reply.text.slice(0, 1500)}`);
    }
    assert.ok(validate(value), `${what}: output ${text} does not match: ${ajv.errorsText(validate.errors)}`);
  }
  await untilIdle(random);
});

test('after the fuzzing both servers answer a plain request', async () => {
  const r = await prompt.client.chat.completions.create({ model: 'gpt-oss-20b', messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(r.choices[0]!.message.content, '4');
  assert.equal(prompt.server.active, 0);
  assert.equal(random.server.active, 0);
});
