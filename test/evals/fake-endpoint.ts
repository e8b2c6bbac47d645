// A minimal OpenAI-compatible Chat Completions endpoint for eval tests: answers come from a
// function of the request's messages, and every request is recorded. A reply may also be a body
// that is not JSON, or no reply at all (`hang`): the request is held open until the client gives
// up, and the endpoint counts the requests abandoned that way so a test can wait for them.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeReply {
  content: string;
  reasoning?: string;
  status?: number;
  finishReason?: string;
  /** Sent as the whole body instead of a completion object. */
  raw?: string;
  /** Never answer; the request stays open until the client closes its connection. */
  hang?: boolean;
}

export interface FakeEndpoint {
  baseUrl: string;
  requests: { messages: { role: string; content: string }[]; body: Record<string, unknown> }[];
  /** Resolves once `count` hanging requests have been closed by the client. */
  abandoned(count: number): Promise<void>;
  close(): Promise<void>;
}

export async function startFakeEndpoint(answer: (messages: { role: string; content: string }[]) => FakeReply): Promise<FakeEndpoint> {
  const requests: FakeEndpoint['requests'] = [];
  let abandonedCount = 0;
  const waiters: { count: number; resolve: () => void }[] = [];
  const onAbandoned = () => {
    abandonedCount++;
    for (const w of waiters.filter((w) => abandonedCount >= w.count)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve();
    }
  };
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
        if (reply.hang === true) {
          res.once('close', onAbandoned);
          return;
        }
        res.statusCode = reply.status ?? 200;
        if (reply.raw !== undefined) {
          res.end(reply.raw);
          return;
        }
        res.end(JSON.stringify({
          id: 'chatcmpl-1', object: 'chat.completion', model: 'fake-model',
          choices: [{ index: 0, finish_reason: reply.finishReason ?? 'stop', message: { role: 'assistant', content: reply.content, ...(reply.reasoning !== undefined ? { reasoning: reply.reasoning } : {}) } }],
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
    abandoned: (count) => (abandonedCount >= count ? Promise.resolve() : new Promise((resolve) => waiters.push({ count, resolve }))),
    close: () => {
      const closed = new Promise<void>((r) => server.close(() => r()));
      // A hanging request whose client is still waiting would keep close() from finishing.
      server.closeAllConnections();
      return closed;
    },
  };
}
