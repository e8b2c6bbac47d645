// Exa and You.com backends against a fake HTTP server on 127.0.0.1: request shapes (method, path,
// API key header, body), results pages, fetched pages, and errors the model reads.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { BrowserSession, ExaBackend, YouComBackend } from '../../src/tools/index.ts';

interface Seen {
  method: string;
  url: string;
  key: string | undefined;
  body: unknown;
}
const seen: Seen[] = [];
let status = 200;

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

const server = createServer(async (req, res) => {
  const raw = await readBody(req);
  seen.push({ method: req.method!, url: req.url!, key: req.headers['x-api-key'] as string | undefined, body: raw === '' ? undefined : JSON.parse(raw) });
  res.setHeader('content-type', 'application/json');
  if (status !== 200) {
    res.statusCode = status;
    res.end('{"error":"quota exceeded"}');
    return;
  }
  const path = req.url!.split('?')[0];
  if (path === '/search') {
    res.end(JSON.stringify({ results: [
      { title: 'Result 1', url: 'https://www.example.com/1', summary: 'Result 1 summary' },
      { title: 'Result 2', url: 'https://other.example.net/2', summary: 'Result 2 summary' },
    ] }));
  } else if (path === '/contents') {
    res.end(JSON.stringify({ results: [{ title: 'Fetch Result 1', url: 'https://www.example.com/fetch1', text: '<div>Fetch Result 1 text <a href="/next">next page</a> <a href="https://elsewhere.org/x">away</a></div>' }] }));
  } else if (path === '/v1/search') {
    res.end(JSON.stringify({ results: {
      web: [{ title: 'Web Result 1', url: 'https://www.example.com/web1', snippets: ['Web Result 1 snippets'] }],
      news: [{ title: 'News Result 1', url: 'https://www.example.com/news1', description: 'News Result 1 description' }],
    } }));
  } else if (path === '/v1/contents') {
    res.end(JSON.stringify([{ title: 'Fetch Result 1', url: 'https://www.example.com/fetch1', html: '<div>Fetch Result 1 text</div>' }]));
  } else {
    res.statusCode = 404;
    res.end('{}');
  }
});
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
after(() => server.close());

test('Exa: search posts query/numResults/contents with the key and lists results with domains', async () => {
  seen.length = 0;
  const exa = new ExaBackend({ apiKey: 'exa-test-key', baseUrl: base });
  const page = await exa.search('test', 10);
  assert.deepEqual(seen[0], { method: 'POST', url: '/search', key: 'exa-test-key', body: { query: 'test', numResults: 10, contents: { text: true, summary: true } } });
  assert.equal(page.title, 'test');
  assert.deepEqual(page.urls, { 0: 'https://www.example.com/1', 1: 'https://other.example.net/2' });
  assert.equal(page.text, '\nURL: \n# Search Results\n\n  * 【0†Result 1†www.example.com】 Result 1 summary\n  * 【1†Result 2†other.example.net】 Result 2 summary');
});

test('Exa: fetch posts the URL and converts the HTML with the URL header', async () => {
  seen.length = 0;
  const exa = new ExaBackend({ apiKey: 'k', baseUrl: base });
  const page = await exa.fetch('https://www.example.com/fetch1');
  assert.deepEqual(seen[0]!.body, { urls: ['https://www.example.com/fetch1'], text: { includeHtmlTags: true } });
  assert.equal(page.title, 'Fetch Result 1');
  assert.equal(page.text, '\nURL: https://www.example.com/fetch1\nFetch Result 1 text 【0†next page】 【1†away†elsewhere.org】');
  assert.deepEqual(page.urls, { 0: 'https://www.example.com/next', 1: 'https://elsewhere.org/x' });
});

test('You.com: search is a GET with query/count; web and news hits are listed', async () => {
  seen.length = 0;
  const ydc = new YouComBackend({ apiKey: 'ydc-key', baseUrl: base });
  const page = await ydc.search('test', 20);
  assert.equal(seen[0]!.method, 'GET');
  assert.equal(seen[0]!.url, '/v1/search?query=test&count=20');
  assert.equal(seen[0]!.key, 'ydc-key');
  assert.deepEqual(page.urls, { 0: 'https://www.example.com/web1', 1: 'https://www.example.com/news1' });
  assert.match(page.text, /【0†Web Result 1†www\.example\.com】 Web Result 1 snippets/);
  const fetched = await ydc.fetch('https://www.example.com/fetch1');
  assert.deepEqual(seen[1]!.body, { urls: ['https://www.example.com/fetch1'], livecrawl_formats: 'html' });
  assert.equal(fetched.text, '\nURL: https://www.example.com/fetch1\nFetch Result 1 text');
});

test('through the browser: search then open a result; API errors and a missing key are tool messages', async () => {
  const s = new BrowserSession(new ExaBackend({ apiKey: 'k', baseUrl: base }));
  assert.match(s.namespace().description!, /sources=web \(default: web\)$/);
  const results = await s.run({ recipient: 'browser.search', content: '{"query": "test"}' });
  assert.match(results.content, /^\[0\] test\n\*\*viewing lines \[0 - 5\] of 5\*\*\n\nL0: \nL1: URL: \nL2: # Search Results\n/);
  const opened = await s.run({ recipient: 'browser.open', content: '{"id": 0}' });
  assert.match(opened.content, /^\[1\] Fetch Result 1 \(https:\/\/www\.example\.com\/1\)\n/);
  status = 429;
  try {
    const failed = await s.run({ recipient: 'browser.search', content: '{"query": "again"}' });
    assert.equal(failed.content, 'Error during search for `again`: Exa error 429: {"error":"quota exceeded"}');
    assert.ok(failed.error !== undefined);
  } finally {
    status = 200;
  }
  const noKey = new BrowserSession(new YouComBackend({ apiKey: '', baseUrl: base }));
  const r = await noKey.run({ recipient: 'browser.search', content: '{"query": "x"}' });
  assert.equal(r.content, 'Error during search for `x`: You.com API key not provided (set YDC_API_KEY)');
});
