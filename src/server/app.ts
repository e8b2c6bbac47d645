// The HTTP layer: routes, bearer-token auth, the browser guards (Host, Origin, JSON bodies only; see
// guard.ts and body.ts), body limits, the concurrency cap, one log line per
// request (never prompt or output text unless logContent), OpenAI-shaped errors, and server-sent
// events for streaming. Handlers run requests through the engine's turn API on one shared BatchingEngine.
import { serve, type ServerType } from '@hono/node-server';
import { Hono, type Context } from 'hono';
import { cors } from 'hono/cors';
import { streamSSE, type SSEStreamingApi } from 'hono/streaming';
import { timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { AgentEvent } from '../engine/agent.ts';
import { shortestJsonBytes } from '../engine/constrained.ts';
import type { Engine } from '../engine/engine.ts';
import { BatchingEngine, type BatchingOptions } from '../engine/scheduler.ts';
import { prepareTurn, runTurn, type PreparedTurn, type TurnResult } from '../engine/turn.ts';
import type { ReasoningEffort } from '../harmony/index.ts';
import { readJsonBody } from './body.ts';
import { ChatBuilder, chatUsage, finishReasonOf, parseChatRequest } from './chat.ts';
import { newId, nowSeconds, type BuiltinToolFactories, type ServerContext } from './common.ts';
import { ApiError, ClientGoneError, toApiError } from './errors.ts';
import { HostGuard, originAllowed } from './guard.ts';
import { ResponseBuilder, parseResponsesRequest, recordCallIds, responseObject, statusOf, type ResponseEvent } from './responses.ts';
import { ResponseStore } from './store.ts';
import { isRecord, type JsonRecord } from './validate.ts';
import { mountWebPage } from './web.ts';

export interface ServerOptions {
  engine: Engine;
  /** Model id reported by /v1/models and in responses; default the engine's name. */
  modelName?: string;
  /** Other model ids accepted in requests; default "gpt-oss-20b" and "gpt-oss-120b". */
  aliases?: readonly string[];
  /** Bearer token every /v1 request must carry. */
  apiKey?: string;
  /** Requests generating at once; more get 429. Default 16. */
  maxConcurrency?: number;
  /** Largest accepted request body in bytes (413 beyond). Default 8 MiB. */
  maxBodyBytes?: number;
  tools?: BuiltinToolFactories;
  /** Also log prompts and outputs (off by default: they may hold private data). */
  logContent?: boolean;
  log?: (line: string) => void;
  defaultEffort?: ReasoningEffort;
  /** Most tokens one request may generate (requests asking for more get this many); default the context window. */
  maxOutputTokens?: number;
  /** Origins allowed to call the API from a web page (CORS); none by default. */
  corsOrigins?: readonly string[];
  /**
   * Host header values accepted besides the loopback names and the bound address (DNS-rebinding
   * guard): `name` (any port), `name:port`, or `*` to accept any.
   */
  allowedHosts?: readonly string[];
  /** Stored responses kept (`store`), by count and by serialized size; defaults 1000 and 256 MiB. */
  storeLimits?: { maxEntries?: number; maxBytes?: number };
  /** Continuous batching; pass an existing BatchingEngine as `engine` to share it. */
  batching?: BatchingOptions;
}

export interface RunningServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

export interface GptossServer {
  app: Hono;
  engine: BatchingEngine;
  context: ServerContext;
  /** Requests currently generating. */
  readonly active: number;
  listen(port?: number, host?: string): Promise<RunningServer>;
}

interface RequestLog {
  inputTokens?: number;
  outputTokens?: number;
  content?: { prompt: string; output: string };
}

export function createServer(options: ServerOptions): GptossServer {
  const engine = options.engine instanceof BatchingEngine ? options.engine : new BatchingEngine(options.engine, options.batching);
  const modelName = options.modelName ?? engine.info.name;
  const ctx: ServerContext = {
    engine,
    modelName,
    modelIds: new Set([modelName, ...(options.aliases ?? ['gpt-oss-20b', 'gpt-oss-120b'])]),
    tools: options.tools ?? {},
    store: new ResponseStore(options.storeLimits?.maxEntries, options.storeLimits?.maxBytes),
    logContent: options.logContent ?? false,
    log: options.log ?? ((line) => process.stderr.write(line + '\n')),
    defaultEffort: options.defaultEffort ?? 'medium',
  };
  const maxConcurrency = options.maxConcurrency ?? 16;
  const maxBody = options.maxBodyBytes ?? 8 * 1024 * 1024;
  const apiKey = options.apiKey !== undefined && options.apiKey !== '' ? Buffer.from(options.apiKey) : undefined;
  let active = 0;
  const counters = { requests: new Map<string, number>(), promptTokens: 0, completionTokens: 0 };

  const app = new Hono<{ Variables: { log: RequestLog } }>();

  const logLine = (c: Context, status: number, started: number, info: RequestLog): void => {
    const key = `${c.req.method} ${new URL(c.req.url).pathname.replace(/^\/v1\/(responses|models)\/.+$/, '/v1/$1/{id}')} ${status}`;
    counters.requests.set(key, (counters.requests.get(key) ?? 0) + 1);
    counters.promptTokens += info.inputTokens ?? 0;
    counters.completionTokens += info.outputTokens ?? 0;
    const tokens = info.inputTokens !== undefined ? ` in=${info.inputTokens} out=${info.outputTokens ?? 0}` : '';
    ctx.log(`${new Date().toISOString()} ${c.req.method} ${new URL(c.req.url).pathname} ${status}${tokens} ${Math.round(performance.now() - started)}ms`);
    if (ctx.logContent && info.content !== undefined) {
      ctx.log(`  prompt: ${JSON.stringify(info.content.prompt)}`);
      ctx.log(`  output: ${JSON.stringify(info.content.output)}`);
    }
  };

  app.use('*', async (c, next) => {
    const started = performance.now();
    const info: RequestLog = {};
    c.set('log', info);
    (c as unknown as { started: number }).started = started;
    await next();
    // Streams log when they end (see stream()).
    if (c.res.headers.get('content-type')?.startsWith('text/event-stream') !== true) logLine(c, c.res.status, started, info);
  });

  app.onError((e, c) => {
    // Nobody is listening any more; the status is for the log line.
    if (e instanceof ClientGoneError) return c.body(null, 499 as 400);
    const err = toApiError(e);
    if (err.status === 500) ctx.log(`internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    // Clients (the openai SDKs among them) wait this long before retrying a 429.
    if (err.status === 429) c.header('retry-after', '1');
    return c.json(err.toBody(), err.status);
  });
  app.notFound((c) => c.json(new ApiError(404, `Unknown endpoint ${c.req.method} ${new URL(c.req.url).pathname}`, { code: 'unknown_url' }).toBody(), 404));

  // Before anything else answers: requests addressed to another host name (DNS rebinding) and
  // requests from web pages of other origins are refused.
  const hosts = new HostGuard(options.allowedHosts);
  const corsOrigins = options.corsOrigins ?? [];
  app.use('*', async (c, next) => {
    const host = c.req.header('host') ?? new URL(c.req.url).host;
    if (!hosts.allows(host)) {
      throw new ApiError(403, `Host '${host.slice(0, 100)}' is not an address of this server; to accept it, start the server with --allowed-hosts.`, { code: 'host_not_allowed' });
    }
    const origin = c.req.header('origin');
    if (origin !== undefined && !originAllowed(origin, host, corsOrigins)) {
      throw new ApiError(403, `Requests from web pages of origin '${origin.slice(0, 100)}' are not allowed; to accept them, start the server with --cors.`, { code: 'origin_not_allowed' });
    }
    await next();
  });
  if (corsOrigins.length > 0) {
    // No allowHeaders: a preflight is answered with the headers it asks for (the openai SDK sends
    // x-stainless-*, openai-organization, openai-project, ...); only allowed origins get this far.
    app.use('*', cors({ origin: corsOrigins.includes('*') ? '*' : [...corsOrigins], allowMethods: ['GET', 'POST', 'DELETE', 'OPTIONS'], exposeHeaders: ['retry-after'] }));
  }

  // The chat page and its files (no key needed to load it; its API calls carry the key).
  mountWebPage(app, ctx);

  app.get('/health', (c) =>
    c.json({ status: 'ok', model: modelName, random_weights: engine.info.randomWeights, context_length: engine.info.contextLength, active, max_concurrency: maxConcurrency }),
  );

  const requireKey = async (c: Context, next: () => Promise<void>): Promise<void> => {
    if (apiKey !== undefined) {
      const header = c.req.header('authorization') ?? '';
      const given = Buffer.from(header.startsWith('Bearer ') ? header.slice(7).trim() : '');
      if (given.length !== apiKey.length || !timingSafeEqual(given, apiKey)) {
        throw new ApiError(401, 'Incorrect API key provided. Pass it as "Authorization: Bearer <key>".', { type: 'invalid_request_error', code: 'invalid_api_key' });
      }
    }
    await next();
  };
  app.use('/v1/*', requireKey);
  app.use('/metrics', requireKey);

  // Prometheus text format: request counts, tokens, load, and what batching and the prefix cache did.
  app.get('/metrics', (c) => {
    const stats = engine.stats;
    const lines = [
      '# TYPE gptoss_requests_total counter',
      ...[...counters.requests].map(([key, n]) => {
        const [method, path, status] = key.split(' ');
        return `gptoss_requests_total{method="${method}",path="${path}",status="${status}"} ${n}`;
      }),
      '# TYPE gptoss_prompt_tokens_total counter',
      `gptoss_prompt_tokens_total ${counters.promptTokens}`,
      '# TYPE gptoss_completion_tokens_total counter',
      `gptoss_completion_tokens_total ${counters.completionTokens}`,
      '# TYPE gptoss_active_requests gauge',
      `gptoss_active_requests ${active}`,
      '# TYPE gptoss_engine_steps_total counter',
      `gptoss_engine_steps_total ${stats.steps}`,
      '# TYPE gptoss_engine_tokens_processed_total counter',
      `gptoss_engine_tokens_processed_total ${stats.tokensProcessed}`,
      '# TYPE gptoss_prefix_cache_tokens_reused_total counter',
      `gptoss_prefix_cache_tokens_reused_total ${stats.tokensReused}`,
      '# TYPE gptoss_cached_sequences gauge',
      `gptoss_cached_sequences ${engine.pooledSequences}`,
    ];
    return c.text(lines.join('\n') + '\n', 200, { 'content-type': 'text/plain; version=0.0.4' });
  });

  // Aliases are accepted in requests but not listed: the list names what is actually served.
  const models = (): JsonRecord[] => [{ id: modelName, object: 'model', created: 0, owned_by: 'gptoss' }];
  app.get('/v1/models', (c) => c.json({ object: 'list', data: models() }));
  app.get('/v1/models/:id{.+}', (c) => {
    const id = c.req.param('id');
    if (!ctx.modelIds.has(id)) throw new ApiError(404, `The model '${id}' does not exist`, { param: 'model', code: 'model_not_found' });
    return c.json({ id, object: 'model', created: 0, owned_by: 'gptoss' });
  });

  const readBody = async (c: Context): Promise<JsonRecord> => {
    const body = await readJsonBody(c.req.raw, maxBody);
    if (!isRecord(body)) throw new ApiError(400, 'The request body must be a JSON object.');
    const model = body['model'];
    if (model !== undefined && model !== null) {
      if (typeof model !== 'string') throw new ApiError(400, 'model must be a string', { param: 'model' });
      if (!ctx.modelIds.has(model)) throw new ApiError(404, `The model '${model}' does not exist; this server serves ${[...ctx.modelIds].map((m) => `'${m}'`).join(', ')}`, { param: 'model', code: 'model_not_found' });
    }
    return body;
  };

  /** Reserves a generation slot, or 429. */
  const acquireSlot = (): (() => void) => {
    if (active >= maxConcurrency) {
      throw new ApiError(429, `The server is at capacity (${maxConcurrency} requests generating); retry shortly.`, { code: 'rate_limit_exceeded' });
    }
    active++;
    let released = false;
    return () => {
      if (!released) active--;
      released = true;
    };
  };

  /**
   * Checks that the prompt fits the context window before anything streams, and that the shortest
   * answer a structured-output schema allows fits what is left (the constraint reserves a token
   * per byte of it); caps the turn's output at the room the prompt leaves.
   */
  const fitContext = (prepared: PreparedTurn, param: string, formatParam: string): void => {
    const turn = prepared.request;
    const promptTokens = prepared.prompt.length;
    const window = engine.info.contextLength;
    if (promptTokens >= window) {
      throw new ApiError(400, `This model's maximum context length is ${window} tokens; your request has ${promptTokens} prompt tokens. Shorten the ${param}.`, { param, code: 'context_length_exceeded' });
    }
    if (turn.finalSchema !== undefined) {
      const bytes = shortestJsonBytes(turn.finalSchema);
      if (bytes > window - promptTokens) {
        throw new ApiError(
          400,
          `The shortest JSON value the ${formatParam} schema allows is ${bytes} bytes, more than the ${window - promptTokens} tokens the context window of ${window} leaves after the prompt (structured outputs reserve a token per byte).`,
          { param: formatParam, code: 'context_length_exceeded' },
        );
      }
    }
    turn.maxTokens = Math.max(1, Math.min(turn.maxTokens ?? window, window - promptTokens));
  };

  /** Runs a prepared turn; a failure after the client went away is a disconnect, not a server fault. */
  const run = async (turn: PreparedTurn, signal: AbortSignal, onEvent: (e: AgentEvent) => void): Promise<TurnResult> => {
    try {
      return await runTurn(engine, turn, { signal, onEvent });
    } catch (e) {
      if (signal.aborted) throw new ClientGoneError();
      throw e;
    }
  };

  /** Most tokens one request may generate: the server's cap, never more than the window. */
  const room = (): number => Math.min(engine.info.contextLength, options.maxOutputTokens ?? Infinity);

  /** Runs an SSE stream; the client's disconnect aborts the generation. */
  const stream = (c: Context, release: () => void, info: RequestLog, body: (sse: SSEStreamingApi, signal: AbortSignal) => Promise<void>): Response => {
    const started = (c as unknown as { started?: number }).started ?? performance.now();
    const abort = new AbortController();
    c.req.raw.signal.addEventListener('abort', () => abort.abort(), { once: true });
    return streamSSE(c, async (sse) => {
      sse.onAbort(() => abort.abort());
      try {
        await body(sse, abort.signal);
      } catch (e) {
        // Handled here, not by streamSSE's error callback: after that callback it writes the raw
        // message as a second, unshaped error event (internal details included).
        if (!(e instanceof ClientGoneError)) {
          const err = toApiError(e);
          if (err.status === 500) ctx.log(`internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
          const b = err.toBody().error;
          await sse.writeSSE({ event: 'error', data: JSON.stringify({ type: 'error', code: b.code, message: b.message, param: b.param, error: b }) }).catch(() => {});
        }
      } finally {
        release();
        logLine(c, abort.signal.aborted ? 499 : 200, started, info);
      }
    });
  };

  app.post('/v1/responses', async (c) => {
    const body = await readBody(c);
    const info = c.get('log');
    const request = parseResponsesRequest(ctx, body, room());
    const turn = prepareTurn(request.turn);
    fitContext(turn, 'input', 'text.format');
    const release = acquireSlot();
    const id = newId('resp');
    const createdAt = nowSeconds();
    const finishInfo = (output: string): void => {
      if (ctx.logContent) info.content = { prompt: JSON.stringify(body['input']), output };
    };
    const store = (responseJson: JsonRecord, builder: ResponseBuilder, appended: Parameters<typeof recordCallIds>[0]): void => {
      if (!request.store) return;
      recordCallIds(appended, builder);
      ctx.store.put({ id, response: responseJson, turns: [...request.turns, ...appended], items: [...request.inputItems, ...builder.output] });
    };

    if (!request.stream) {
      try {
        const builder = new ResponseBuilder(undefined, request.citations, request.summarize);
        const { result } = await run(turn, c.req.raw.signal, (e) => builder.onEvent(e));
        info.inputTokens = result.usage.promptTokens;
        info.outputTokens = result.usage.completionTokens;
        finishInfo(result.finalText);
        const json = responseObject({ id, createdAt, model: modelName, status: statusOf(result), output: builder.output, echo: request.echo, result });
        store(json, builder, result.messages);
        return c.json(json);
      } finally {
        release();
      }
    }

    return stream(c, release, info, async (sse, signal) => {
      const queue = new EventQueue(sse);
      const builder = new ResponseBuilder((e) => queue.push(e.type, e), request.citations, request.summarize);
      const base = { id, createdAt, model: modelName, echo: request.echo };
      builder.send('response.created', { response: responseObject({ ...base, status: 'in_progress', output: [] }) });
      builder.send('response.in_progress', { response: responseObject({ ...base, status: 'in_progress', output: [] }) });
      const { result } = await run(turn, signal, (e) => builder.onEvent(e));
      info.inputTokens = result.usage.promptTokens;
      info.outputTokens = result.usage.completionTokens;
      finishInfo(result.finalText);
      if (result.finishReason !== 'abort') {
        const status = statusOf(result);
        const json = responseObject({ ...base, status, output: builder.output, result });
        store(json, builder, result.messages);
        builder.send(status === 'completed' ? 'response.completed' : 'response.incomplete', { response: json });
      }
      await queue.drain();
    });
  });

  app.get('/v1/responses/:id', (c) => {
    const stored = ctx.store.get(c.req.param('id'));
    if (stored === undefined) throw new ApiError(404, `Response with id '${c.req.param('id')}' not found.`, { param: 'response_id', code: 'response_not_found' });
    return c.json(stored.response as JsonRecord);
  });
  app.delete('/v1/responses/:id', (c) => {
    const id = c.req.param('id');
    if (!ctx.store.delete(id)) throw new ApiError(404, `Response with id '${id}' not found.`, { param: 'response_id', code: 'response_not_found' });
    return c.json({ id, object: 'response', deleted: true });
  });

  app.post('/v1/chat/completions', async (c) => {
    const body = await readBody(c);
    const info = c.get('log');
    const request = parseChatRequest(ctx, body, room());
    const turn = prepareTurn(request.turn);
    fitContext(turn, 'messages', 'response_format');
    const release = acquireSlot();
    const id = newId('chatcmpl').replace('_', '-');
    const created = nowSeconds();
    const onEvent = (builder: ChatBuilder) => (e: AgentEvent) => builder.onEvent(e);

    if (!request.stream) {
      try {
        const builder = new ChatBuilder(request.logprobs);
        const { result } = await run(turn, c.req.raw.signal, onEvent(builder));
        info.inputTokens = result.usage.promptTokens;
        info.outputTokens = result.usage.completionTokens;
        if (ctx.logContent) info.content = { prompt: JSON.stringify(body['messages']), output: builder.content };
        const message: JsonRecord = {
          role: 'assistant',
          content: builder.toolCalls.length > 0 && builder.content === '' ? null : builder.content,
          // (a preamble written before a tool call is content too, as harmony means it for the user)
          reasoning: builder.reasoning,
          reasoning_content: builder.reasoning,
          refusal: null,
        };
        if (builder.toolCalls.length > 0) message['tool_calls'] = builder.toolCalls as unknown as JsonRecord[];
        return c.json({
          id,
          object: 'chat.completion',
          created,
          model: modelName,
          system_fingerprint: 'gptoss',
          choices: [{ index: 0, message, finish_reason: finishReasonOf(result, builder), logprobs: request.logprobs ? { content: builder.tokenLogprobs, refusal: null } : null }],
          usage: chatUsage(result),
        });
      } finally {
        release();
      }
    }

    return stream(c, release, info, async (sse, signal) => {
      const queue = new EventQueue(sse);
      const chunk = (delta: JsonRecord, finish: string | null = null, extra: JsonRecord = {}): JsonRecord => ({
        id,
        object: 'chat.completion.chunk',
        created,
        model: modelName,
        system_fingerprint: 'gptoss',
        choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }],
        ...extra,
      });
      const builder = new ChatBuilder(request.logprobs, (delta, logprobs) => {
        const entry = chunk(delta);
        if (logprobs !== undefined) (entry['choices'] as JsonRecord[])[0]!['logprobs'] = { content: logprobs, refusal: null };
        queue.push(undefined, entry);
      });
      queue.push(undefined, chunk({ role: 'assistant', content: '' }));
      const { result } = await run(turn, signal, onEvent(builder));
      info.inputTokens = result.usage.promptTokens;
      info.outputTokens = result.usage.completionTokens;
      if (ctx.logContent) info.content = { prompt: JSON.stringify(body['messages']), output: builder.content };
      if (result.finishReason !== 'abort') {
        queue.push(undefined, chunk({}, finishReasonOf(result, builder), request.includeUsage ? { usage: null } : {}));
        if (request.includeUsage) queue.push(undefined, { ...chunk({}), choices: [], usage: chatUsage(result) });
        queue.push(undefined, '[DONE]');
      }
      await queue.drain();
    });
  });

  return {
    app: app as unknown as Hono,
    engine,
    context: ctx,
    get active() {
      return active;
    },
    listen(port = 8000, host = '127.0.0.1') {
      return new Promise<RunningServer>((resolve, reject) => {
        let server: ServerType;
        try {
          server = serve({ fetch: app.fetch, port, hostname: host }, (address: AddressInfo) => {
            hosts.listening(host, address.port);
            const shownHost = host.includes(':') ? `[${host}]` : host;
            resolve({
              url: `http://${shownHost}:${address.port}`,
              port: address.port,
              close: () =>
                new Promise<void>((done) => {
                  (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
                  server.close(() => done());
                }),
            });
          });
          server.on('error', reject);
        } catch (e) {
          reject(e);
        }
      });
    },
  };
}

/**
 * Writes SSE events in order without blocking the generation: agent events arrive synchronously
 * from the sampler loop, while writes are asynchronous.
 */
class EventQueue {
  private chain: Promise<void> = Promise.resolve();
  constructor(private readonly sse: SSEStreamingApi) {}
  push(event: string | undefined, data: ResponseEvent | JsonRecord | string): void {
    const text = typeof data === 'string' ? data : JSON.stringify(data);
    this.chain = this.chain.then(() => this.sse.writeSSE(event === undefined ? { data: text } : { event, data: text })).catch(() => {});
  }
  drain(): Promise<void> {
    return this.chain;
  }
}
