// What a hostile web page or client can make the server do: bodies that are not JSON, Host headers
// of other names (DNS rebinding), requests from other origins, CORS preflights of the openai SDK,
// chunked bodies past the limit, a 413 that closes the connection, uploads cut off midway, a stream
// failing after its 200 (logged as the failure), metadata and nesting beyond bounds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { HostGuard, parseHost } from '../../src/server/guard.ts';
import { ResponseStore } from '../../src/server/index.ts';
import { MAX_JSON_NESTING, jsonNesting } from '../../src/server/body.ts';
import { PromptEngine, startServer } from './helpers.ts';
import { cliCommand } from '../cli/in-process.ts';

const ANSWER = '<|channel|>analysis<|message|>r<|end|><|start|>assistant<|channel|>final<|message|>ok<|return|>';

interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One request with exactly these headers (fetch will not send a Host header of our choosing). */
function raw(url: string, options: { method?: string; path: string; headers?: Record<string, string>; body?: string }): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(url + options.path, { method: options.method ?? 'GET', headers: options.headers ?? {} }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

function errorOf(r: RawResponse): { message: string; type: string; param: string | null; code: string | null } {
  const parsed = JSON.parse(r.body) as { error: { message: string; type: string; param: string | null; code: string | null } };
  assert.deepEqual(Object.keys(parsed.error).sort(), ['code', 'message', 'param', 'type']);
  return parsed.error;
}

const CHAT = JSON.stringify({ model: 'prompt-engine', messages: [{ role: 'user', content: 'hi' }] });

test('request bodies must be sent as application/json: text/plain (sent cross-site without a preflight) is not parsed', async () => {
  const engine = new PromptEngine(() => ANSWER);
  const s = await startServer(engine);
  try {
    for (const contentType of ['text/plain', 'text/plain;charset=UTF-8', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', undefined]) {
      const r = await raw(s.running.url, { method: 'POST', path: '/v1/chat/completions', headers: contentType === undefined ? {} : { 'content-type': contentType }, body: CHAT });
      assert.equal(r.status, 415, String(contentType));
      const e = errorOf(r);
      assert.equal(e.code, 'unsupported_media_type');
      assert.match(e.message, /Content-Type: application\/json/);
    }
    assert.equal(engine.prompts.length, 0, 'nothing was generated');
    const ok = await raw(s.running.url, { method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'Application/JSON; charset=utf-8' }, body: CHAT });
    assert.equal(ok.status, 200);
  } finally {
    await s.close();
  }
});

test('the Host header must name this server (DNS rebinding); --allowed-hosts adds names', async () => {
  const s = await startServer(new PromptEngine(() => ANSWER), { allowedHosts: ['gpu.lan', 'proxy.example:8443'] });
  const port = s.running.port;
  try {
    const status = async (host: string): Promise<number> => (await raw(s.running.url, { path: '/v1/models', headers: { host } })).status;
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `LOCALHOST:${port}`, `[::1]:${port}`, 'gpu.lan', `gpu.lan:${port}`, 'gpu.lan:1', 'proxy.example:8443']) {
      assert.equal(await status(host), 200, host);
    }
    for (const host of ['attacker.example', `attacker.example:${port}`, `127.0.0.1:${port + 1}`, 'localhost', 'proxy.example:8444', 'proxy.example', `127.0.0.1.attacker.example:${port}`]) {
      assert.equal(await status(host), 403, host);
    }
    const r = await raw(s.running.url, { method: 'POST', path: '/v1/chat/completions', headers: { host: `rebound.example:${port}`, 'content-type': 'application/json' }, body: CHAT });
    assert.equal(r.status, 403);
    const e = errorOf(r);
    assert.equal(e.code, 'host_not_allowed');
    assert.equal(e.type, 'permission_error');
    assert.match(e.message, /--allowed-hosts/);
  } finally {
    await s.close();
  }
});

test('which hosts a bound address accepts: loopback names, the address itself, every local address for a wildcard bind', () => {
  assert.deepEqual(parseHost('[::1]:8000'), { name: '[::1]', port: 8000 });
  assert.deepEqual(parseHost('Example.COM'), { name: 'example.com', port: undefined });
  assert.equal(parseHost('::1'), undefined);
  assert.equal(parseHost('a:b'), undefined);

  const specific = new HostGuard();
  specific.listening('192.0.2.7', 8000);
  assert.ok(specific.allows('192.0.2.7:8000'));
  assert.ok(specific.allows('127.0.0.1:8000'));
  assert.ok(!specific.allows('192.0.2.7:8001'));
  assert.ok(!specific.allows(`${hostname()}:8000`) || hostname() === '192.0.2.7');

  const wildcard = new HostGuard();
  wildcard.listening('0.0.0.0', 80);
  assert.ok(wildcard.allows('0.0.0.0'), 'port 80 may be left out');
  assert.ok(wildcard.allows(`${hostname()}:80`));
  assert.ok(!wildcard.allows('attacker.example'));

  const any = new HostGuard(['*']);
  any.listening('127.0.0.1', 8000);
  assert.ok(any.allows('whatever.example:1'));
  assert.throws(() => new HostGuard(['bad host:x']), /invalid allowed host 'bad host:x'/);
});

test('gptoss serve --allowed-hosts: a bad entry is a usage error; names given are accepted, others refused', async () => {
  const CLI = join(import.meta.dirname, '../../bin/gptoss.js');
  const bad = spawnSync(process.execPath, [CLI, 'serve', '--allowed-hosts', 'gpu.lan,bad host:x'], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr);
  assert.match(bad.stderr, /invalid allowed host 'bad host:x'/);

  const dir = mkdtempSync(join(tmpdir(), 'gptoss-hosts-'));
  const script = join(dir, 'script.json');
  writeFileSync(script, JSON.stringify({ completions: [ANSWER], name: 'scripted' }));
  const child = spawn(process.execPath, [...cliCommand(script), 'serve', '--port', '0', '--allowed-hosts', 'gpu.lan'], { stdio: ['ignore', 'ignore', 'pipe'] });
  try {
    let stderr = '';
    const url = await new Promise<string>((resolve, reject) => {
      child.stderr!.on('data', (d: Buffer) => {
        stderr += d.toString();
        const m = /serving scripted on (http:\/\/127\.0\.0\.1:\d+)\/v1/.exec(stderr);
        if (m !== null) resolve(m[1]!);
      });
      child.on('exit', (code) => reject(new Error(`exited ${code}: ${stderr}`)));
    });
    assert.equal((await raw(url, { path: '/v1/models', headers: { host: 'gpu.lan' } })).status, 200);
    assert.equal((await raw(url, { path: '/v1/models', headers: { host: 'other.lan' } })).status, 403);
  } finally {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('requests from web pages of other origins are refused unless --cors allows the origin', async () => {
  const engine = new PromptEngine(() => ANSWER);
  const s = await startServer(engine, { corsOrigins: ['http://app.local'] });
  try {
    const post = (origin: string) => raw(s.running.url, { method: 'POST', path: '/v1/chat/completions', headers: { origin, 'content-type': 'application/json' }, body: CHAT });
    for (const origin of ['http://evil.example', 'null', 'http://app.local.evil.example', `http://127.0.0.1:${s.running.port + 1}`]) {
      const r = await post(origin);
      assert.equal(r.status, 403, origin);
      assert.equal(errorOf(r).code, 'origin_not_allowed');
      assert.equal(r.headers['access-control-allow-origin'], undefined);
    }
    assert.equal(engine.prompts.length, 0, 'nothing was generated');
    const own = await post(`http://127.0.0.1:${s.running.port}`);
    assert.equal(own.status, 200, 'the server’s own origin');
    const allowed = await post('http://app.local');
    assert.equal(allowed.status, 200);
    assert.equal(allowed.headers['access-control-allow-origin'], 'http://app.local');
  } finally {
    await s.close();
  }
  // Without --cors no other origin gets in, GET or POST.
  const plain = await startServer(new PromptEngine(() => ANSWER));
  try {
    assert.equal((await raw(plain.running.url, { path: '/v1/models', headers: { origin: 'http://app.local' } })).status, 403);
  } finally {
    await plain.close();
  }
});

test('a CORS preflight with the headers the official openai client sends is allowed', async () => {
  // The headers the openai client really sends (with organization and project set), as a server sees them.
  const seen = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ id: 'x', object: 'chat.completion', created: 0, model: 'm', choices: [] }));
    captured.push(req.headers);
  });
  const captured: http.IncomingHttpHeaders[] = [];
  seen.listen(0, '127.0.0.1');
  await once(seen, 'listening');
  try {
    const { port } = seen.address() as { port: number };
    const client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'k', organization: 'org-1', project: 'proj-1', maxRetries: 0 });
    await client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'x' }] });
  } finally {
    seen.close();
  }
  // What a browser puts in Access-Control-Request-Headers: the non-safelisted ones it was given.
  const browserSets = new Set(['host', 'connection', 'content-length', 'accept-encoding', 'user-agent', 'accept', 'accept-language', 'sec-fetch-mode']);
  const requested = Object.keys(captured[0]!).filter((h) => !browserSets.has(h));
  assert.ok(requested.some((h) => h.startsWith('x-stainless-')), requested.join(','));
  assert.ok(requested.includes('openai-organization') && requested.includes('openai-project'), requested.join(','));

  const s = await startServer(new PromptEngine(() => ANSWER), { corsOrigins: ['http://app.local'] });
  try {
    const preflight = await raw(s.running.url, {
      method: 'OPTIONS',
      path: '/v1/chat/completions',
      headers: { origin: 'http://app.local', 'access-control-request-method': 'POST', 'access-control-request-headers': requested.join(', ') },
    });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers['access-control-allow-origin'], 'http://app.local');
    assert.match(String(preflight.headers['access-control-allow-methods']), /POST/);
    const allowed = new Set(String(preflight.headers['access-control-allow-headers']).split(',').map((h) => h.trim().toLowerCase()));
    for (const h of requested) assert.ok(allowed.has(h), `${h} not allowed (allowed: ${[...allowed].join(',')})`);
    // The preflight of a page from another origin is refused outright.
    const other = await raw(s.running.url, { method: 'OPTIONS', path: '/v1/chat/completions', headers: { origin: 'http://evil.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' } });
    assert.equal(other.status, 403);
    assert.equal(other.headers['access-control-allow-headers'], undefined);
  } finally {
    await s.close();
  }
});

test('a chunked body over the limit is refused while it streams: 413 before the client has finished sending', async () => {
  const limit = 64 * 1024;
  const engine = new PromptEngine(() => ANSWER);
  const s = await startServer(engine, { maxBodyBytes: limit });
  try {
    // The client would send 256 MiB; the server must answer long before that.
    const planned = 256 * 1024 * 1024;
    const req = http.request(`${s.running.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' } });
    const response = once(req, 'response').then(([res]) => res as http.IncomingMessage);
    let closed = false;
    const gone = new Promise<void>((resolve) => {
      // Once it has answered, the server closes the connection on us: expected.
      req.on('error', () => resolve());
      req.on('close', () => resolve());
    }).then(() => (closed = true));
    const chunk = Buffer.alloc(16 * 1024, 0x20);
    req.write('{"messages": "');
    let sent = 0;
    let answered = false;
    void response.then(() => (answered = true), () => {});
    while (!answered && !closed && sent < planned) {
      sent += chunk.length;
      if (!req.write(chunk)) await Promise.race([once(req, 'drain'), response, gone]);
      else await new Promise(setImmediate);
    }
    if (sent >= planned) req.end();
    const res = await response;
    let body = '';
    for await (const d of res) body += d;
    assert.equal(res.statusCode, 413);
    assert.equal(JSON.parse(body).error.code, 'request_too_large');
    assert.ok(sent < planned, `answered only after the client sent all ${sent} bytes`);
    req.destroy();
    assert.equal(engine.prompts.length, 0);
    // A declared Content-Length over the limit is refused without reading.
    const declared = await raw(s.running.url, { method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/json', 'content-length': String(limit + 1) }, body: ' '.repeat(limit + 1) });
    assert.equal(declared.status, 413);
  } finally {
    await s.close();
  }
});

/**
 * Writes `head` (and `body`) on a fresh connection and collects what the server sends until it
 * closes the connection.
 */
async function exchangeRaw(port: number, head: string, body = ''): Promise<string> {
  const socket = net.connect(port, '127.0.0.1');
  let received = '';
  socket.setEncoding('utf8');
  socket.on('data', (d: string) => (received += d));
  socket.on('error', () => {}); // a reset after the answer still ends the exchange
  const closed = once(socket, 'close');
  socket.write(head + body);
  await closed;
  return received;
}

test('a 413 closes the connection and says so: a keep-alive client\'s next request is not taken for the rest of the refused body', async () => {
  const limit = 1024;
  const s = await startServer(new PromptEngine(() => ANSWER), { maxBodyBytes: limit });
  try {
    const host = `127.0.0.1:${s.running.port}`;
    // A declared length over the limit, refused before any of the body is read; and a chunked body
    // that passes the limit while it is read.
    const declared = `POST /v1/chat/completions HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\nContent-Length: ${limit * 1000}\r\n\r\n`;
    const chunk = ' '.repeat(4 * limit);
    const chunked = `POST /v1/chat/completions HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`;
    for (const [name, reply] of [
      ['declared', await exchangeRaw(s.running.port, declared)],
      ['chunked', await exchangeRaw(s.running.port, chunked, `${chunk.length.toString(16)}\r\n${chunk}\r\n`)],
    ] as const) {
      const [head, body] = reply.split('\r\n\r\n', 2) as [string, string];
      assert.match(head, /^HTTP\/1\.1 413 /, name);
      // It said "Connection: keep-alive", then closed the connection anyway once it had discarded
      // what arrived: a client's next request on it was swallowed and never answered.
      assert.match(head, /\r\nconnection: close(\r\n|$)/i, `${name}: ${head}`);
      assert.doesNotMatch(head, /keep-alive/i, name);
      assert.equal(JSON.parse(body).error.code, 'request_too_large', name);
    }
    // A client that sends its whole oversized body still reads the 413, and its next request is answered.
    const url = `${s.running.url}/v1/chat/completions`;
    const big = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ messages: [{ role: 'user', content: 'x'.repeat(1 << 20) }] }) });
    assert.equal(big.status, 413);
    assert.equal(((await big.json()) as { error: { code: string } }).error.code, 'request_too_large');
    const next = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: CHAT });
    assert.equal(next.status, 200);
  } finally {
    await s.close();
  }
});

test('a client that aborts mid-upload is a disconnect (499), not an internal error', async () => {
  const s = await startServer(new PromptEngine(() => ANSWER));
  const logged = new Promise<string>((resolve) => {
    const push = s.logs.push.bind(s.logs);
    s.logs.push = (...lines: string[]) => {
      for (const l of lines) if (l.includes('POST /v1/chat/completions')) resolve(l);
      return push(...lines);
    };
  });
  try {
    // `Expect: 100-continue`: the server answers "continue" once the request reached the handler.
    const req = http.request(`${s.running.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-length': '100000', expect: '100-continue' },
    });
    req.on('error', () => {});
    req.flushHeaders();
    await once(req, 'continue');
    await new Promise<void>((resolve) => req.write('{"messages": [', () => resolve()));
    req.destroy();
    const line = await logged;
    assert.match(line, / 499 /);
    assert.ok(!s.logs.some((l) => l.includes('internal error')), s.logs.join('\n'));
    const metrics = await (await fetch(`${s.running.url}/metrics`)).text();
    assert.match(metrics, /path="\/v1\/chat\/completions",status="499"\} 1/);
    assert.doesNotMatch(metrics, /status="500"/);
  } finally {
    await s.close();
  }
});

test('a stream that fails sends one error event in OpenAI\'s shape, never the raw internal message, and is logged as the failure it is', async () => {
  const engine = new PromptEngine(() => ANSWER);
  const s = await startServer(engine);
  try {
    engine.failWith = new Error('secret internal detail at /home/x');
    for (const [path, body] of [
      ['/v1/chat/completions', { model: 'prompt-engine', stream: true, messages: [{ role: 'user', content: 'x' }] }],
      ['/v1/responses', { model: 'prompt-engine', stream: true, input: 'x' }],
    ] as const) {
      const r = await raw(s.running.url, { method: 'POST', path, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      // The status line went out before the failure; the log line and the metrics say 500 (they said 200).
      assert.equal(r.status, 200);
      assert.match(await s.logged(new RegExp(`POST ${path} `)), new RegExp(`POST ${path} 500 error=server_error \\d+ms$`));
      assert.ok(!r.body.includes('secret internal detail'), r.body);
      const data = r.body.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6));
      for (const d of data) assert.doesNotThrow(() => JSON.parse(d), d);
      const errors = data.map((d) => JSON.parse(d) as { type?: string; error?: { type: string } }).filter((e) => e.type === 'error');
      assert.equal(errors.length, 1, r.body);
      assert.equal(errors[0]!.error!.type, 'server_error');
    }
    assert.equal(s.server.active, 0);
    const metrics = await (await fetch(`${s.running.url}/metrics`)).text();
    for (const path of ['/v1/chat/completions', '/v1/responses']) assert.match(metrics, new RegExp(`gptoss_requests_total\\{method="POST",path="${path}",status="500"\\} 1\n`));
    assert.doesNotMatch(metrics, /status="200"/);
  } finally {
    await s.close();
  }
});

test('metadata is bounded as OpenAI bounds it (16 pairs, 64-char keys, 512-char string values), before generation, in both APIs', async () => {
  const engine = new PromptEngine(() => ANSWER);
  const s = await startServer(engine);
  try {
    const bad: [Record<string, unknown>, string, RegExp][] = [
      [Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v'])), 'metadata', /at most 16 key-value pairs, got 17/],
      [{ ['k'.repeat(65)]: 'v' }, 'metadata', /keys may be at most 64 characters/],
      [{ note: 'x'.repeat(513) }, 'metadata.note', /at most 512 characters/],
      [{ note: { nested: 'x' } }, 'metadata.note', /values must be strings/],
    ];
    for (const [metadata, param, message] of bad) {
      for (const stream of [false, true]) {
        await assert.rejects(
          s.client.responses.create({ model: 'prompt-engine', input: 'x', metadata: metadata as Record<string, string>, stream }),
          (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === param && message.test(e.message),
        );
        // Chat Completions take metadata too (it used to pass unchecked, whatever it held).
        await assert.rejects(
          s.client.chat.completions.create({ model: 'prompt-engine', messages: [{ role: 'user', content: 'x' }], metadata: metadata as Record<string, string>, stream }),
          (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === param && message.test(e.message),
        );
      }
    }
    assert.equal(engine.prompts.length, 0, 'nothing was generated');
    const metadata = Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`${i}`.padEnd(64, 'k'), 'v'.repeat(512)]));
    const r = await s.client.responses.create({ model: 'prompt-engine', input: 'x', metadata });
    assert.deepEqual(r.metadata, metadata);
    assert.deepEqual((await s.client.responses.retrieve(r.id)).metadata, metadata);
    // A chat completion accepts metadata at the bounds; its object carries none (only stored ones do).
    const chat = await s.client.chat.completions.create({ model: 'prompt-engine', messages: [{ role: 'user', content: 'x' }], metadata, store: false });
    assert.equal(chat.choices[0]!.message.content, 'ok');
    assert.equal((chat as unknown as Record<string, unknown>)['metadata'], undefined);
  } finally {
    await s.close();
  }
});

test('JSON nested deeper than the server walks is a 400 before generation, anywhere in the body, streaming or not', async () => {
  const engine = new PromptEngine(() => ANSWER);
  const s = await startServer(engine);
  const post = (body: string) => raw(s.running.url, { method: 'POST', path: '/v1/responses', headers: { 'content-type': 'application/json' }, body });
  const nested = (depth: number): string => '{"a":'.repeat(depth) + '"x"' + '}'.repeat(depth);
  try {
    for (const stream of [false, true]) {
      const deepMetadata = await post(`{"model":"prompt-engine","input":"x","stream":${stream},"metadata":${nested(100_000)}}`);
      assert.equal(deepMetadata.status, 400);
      const e = errorOf(deepMetadata);
      assert.equal(e.code, 'invalid_json');
      assert.match(e.message, new RegExp(`more than ${MAX_JSON_NESTING} levels deep`));
      const deepInput = await post(`{"model":"prompt-engine","stream":${stream},"input":[${'['.repeat(50_000)}${']'.repeat(50_000)}]}`);
      assert.equal(deepInput.status, 400);
    }
    assert.equal(engine.prompts.length, 0, 'nothing was generated');
    // Exactly at the limit the body is read (the unknown field is ignored); one more level is refused.
    const atLimit = `{"model":"prompt-engine","input":"x","extra":${nested(MAX_JSON_NESTING - 1)}}`;
    assert.equal(jsonNesting(Buffer.from(atLimit), MAX_JSON_NESTING), MAX_JSON_NESTING);
    assert.equal((await post(atLimit)).status, 200);
    assert.equal((await post(`{"model":"prompt-engine","input":"x","extra":${nested(MAX_JSON_NESTING)}}`)).status, 400);
    // Brackets inside strings (escaped quotes included) do not count.
    assert.equal(jsonNesting(Buffer.from(JSON.stringify({ s: '[[[[{{{{\\"[[' })), 10), 1);
  } finally {
    await s.close();
  }
});

test('the response store is bounded by bytes as well as by count, oldest dropped first', () => {
  const store = new ResponseStore(1000, 10_000);
  const entry = (id: string, size: number) => ({ id, response: { id, text: 'x'.repeat(size) }, turns: [], items: [] });
  for (let i = 0; i < 5; i++) store.put(entry(`r${i}`, 3000));
  assert.ok(store.bytes <= 10_000, String(store.bytes));
  assert.equal(store.size, 3);
  assert.equal(store.get('r1'), undefined);
  assert.ok(store.get('r4') !== undefined && store.get('r2') !== undefined);
  // Replacing an entry does not count it twice; deleting gives its bytes back.
  const before = store.bytes;
  store.put(entry('r4', 3000));
  assert.equal(store.bytes, before);
  assert.ok(store.delete('r4'));
  assert.ok(store.bytes < before);
  // One response over the whole budget stays alone (its client may continue it).
  store.put(entry('big', 20_000));
  assert.equal(store.size, 1);
  assert.ok(store.get('big') !== undefined);
  // Count still bounds too.
  const counted = new ResponseStore(2);
  for (let i = 0; i < 3; i++) counted.put(entry(`c${i}`, 10));
  assert.equal(counted.size, 2);
});

test('an error quoting the client input escapes control characters and stays one bounded line', async () => {
  const s = await startServer(new PromptEngine(() => ANSWER));
  try {
    for (const body of ['\u0000', '{"model": "\u001b[2J', `{"x": "${'\u0007'.repeat(10_000)}`]) {
      const r = await raw(s.running.url, { method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/json' }, body });
      assert.equal(r.status, 400);
      const e = errorOf(r);
      assert.doesNotMatch(e.message, /[\u0000-\u001f\u007f-\u009f]/, JSON.stringify(e.message));
      assert.ok(e.message.length <= 2000, `${e.message.length} characters`);
    }
  } finally {
    await s.close();
  }
});

test('an idle keep-alive connection stays open 30 s (Keep-Alive: timeout=30), past the pauses clients make between requests', async () => {
  const s = await startServer(new PromptEngine(() => ANSWER));
  try {
    // With Node's default 5 s (a client keeps the socket for the hint less a second), a request
    // after a 4-5 s pause could meet the server closing the socket and be reset.
    const socket = net.connect(s.running.port, '127.0.0.1');
    socket.setEncoding('utf8');
    let received = '';
    const headEnd = new Promise<void>((resolve) => socket.on('data', (d: string) => { received += d; if (received.includes('\r\n\r\n')) resolve(); }));
    socket.write(`GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1:${s.running.port}\r\nConnection: keep-alive\r\n\r\n`);
    await headEnd;
    socket.destroy();
    const head = received.split('\r\n\r\n', 1)[0]!;
    assert.match(head, /^HTTP\/1\.1 200 /);
    assert.match(head, /\r\nkeep-alive: timeout=30(\r\n|$)/i, head);
  } finally {
    await s.close();
  }
});
