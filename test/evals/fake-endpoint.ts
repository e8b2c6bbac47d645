// A minimal OpenAI-compatible Chat Completions endpoint for eval tests: answers come from a
// function of the request's messages, and every request is recorded.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeReply {
  content: string;
  reasoning?: string;
  status?: number;
}

export interface FakeEndpoint {
  baseUrl: string;
  requests: { messages: { role: string; content: string }[]; body: Record<string, unknown> }[];
  close(): Promise<void>;
}

export async function startFakeEndpoint(answer: (messages: { role: string; content: string }[]) => FakeReply): Promise<FakeEndpoint> {
  const requests: FakeEndpoint['requests'] = [];
  const server: Server = createServer((req, res) => {
    let raw = '';
    req.on('data', (c: Buffer) => (raw += c.toString()));
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      if (req.method === 'GET' && req.url === '/v1/models') {
        res.end(JSON.stringify({ object: 'list', data: [{ id: 'fake-model', object: 'model' }] }));
        return;
      }
      if (req.method === 'POST' && req.url === '/v1/chat/completions') {
        const body = JSON.parse(raw) as { messages: { role: string; content: string }[] };
        requests.push({ messages: body.messages, body: body as unknown as Record<string, unknown> });
        const reply = answer(body.messages);
        res.statusCode = reply.status ?? 200;
        res.end(JSON.stringify({
          id: 'chatcmpl-1', object: 'chat.completion', model: 'fake-model',
          choices: [{ index: 0, finish_reason: 'stop', message: { role: 'assistant', content: reply.content, ...(reply.reasoning !== undefined ? { reasoning: reply.reasoning } : {}) } }],
          usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 },
        }));
        return;
      }
      res.statusCode = 404;
      res.end(JSON.stringify({ error: { message: 'not found', type: 'invalid_request_error' } }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    requests,
    close: () => new Promise((r) => server.close(() => r())),
  };
}
