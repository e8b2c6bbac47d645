// The HTTP layer, middleware only: bearer-token auth, the browser guards (Host, Origin, JSON bodies
// only; see guard.ts and body.ts), the concurrency cap, one log line per request (never prompt or
// output text unless logContent), OpenAI-shaped errors, /health and /metrics. The APIs mount their
// own routes (responses/route.ts, chat/route.ts, models.ts) over the shared pieces of route-kit.ts, and
// run their turns through the engine's turn API on one shared BatchingEngine.
import { serve, type ServerType } from '@hono/node-server';
import { Hono, type Context } from 'hono';
import { cors } from 'hono/cors';
import { timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Engine } from '../engine/engine.ts';
import { BatchingEngine, type BatchingOptions } from '../engine/scheduler.ts';
import type { ReasoningEffort } from '../harmony/index.ts';
import { mountChat } from './chat/route.ts';
import type { BuiltinToolFactories, ServerContext } from './common.ts';
import { ApiError, ClientGoneError, toApiError } from './errors.ts';
import { HostGuard, originAllowed } from './guard.ts';
import { mountModels } from './models.ts';
import { mountResponses } from './responses/route.ts';
import { ResponseStore } from './store.ts';
import { createRouteKit, type RequestLog } from './route-kit.ts';
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
  /**
   * Requests that name no tools (Chat Completions requests cannot name built-in ones) get every
   * tool of `tools`: for a model trained with its tools in every prompt (the embedded
   * gpt-oss-nano), which answers nothing right without them. A request's own `tools` still decide.
   */
  toolsByDefault?: boolean;
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

/** How long an idle keep-alive connection stays open (see listen()). */
export const KEEP_ALIVE_TIMEOUT_MS = 30_000;

export function createServer(options: ServerOptions): GptossServer {
  const engine = options.engine instanceof BatchingEngine ? options.engine : new BatchingEngine(options.engine, options.batching);
  const modelName = options.modelName ?? engine.info.name;
  const ctx: ServerContext = {
    engine,
    modelName,
    modelIds: new Set([modelName, ...(options.aliases ?? ['gpt-oss-20b', 'gpt-oss-120b'])]),
    tools: options.tools ?? {},
    toolsByDefault: options.toolsByDefault ?? false,
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
    const error = info.error !== undefined ? ` error=${info.error}` : '';
    ctx.log(`${new Date().toISOString()} ${c.req.method} ${new URL(c.req.url).pathname} ${status}${tokens}${error} ${Math.round(performance.now() - started)}ms`);
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
    // The body was not read to its end: what the client still sends is discarded (a bounded
    // amount) and the connection closed, so a keep-alive client must not send its next request
    // on it, where it would be taken for the rest of this body and never answered.
    if (err.status === 413) c.header('connection', 'close');
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

  mountModels(app as unknown as Hono, ctx);

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

  const kit = createRouteKit({ ctx, engine, maxBodyBytes: maxBody, maxOutputTokens: options.maxOutputTokens, acquireSlot, logLine });
  mountResponses(app as unknown as Hono, kit);
  mountChat(app as unknown as Hono, kit);

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
          // An idle keep-alive connection is closed by whichever side's timer fires first; a client
          // that sends on it at that moment gets a reset ("Connection error."). Clients (undici,
          // the openai SDK's fetch) keep an idle socket for the server's Keep-Alive hint less a
          // second, so with Node's 5 s the race sits at 4-5 s of idleness, the pause a client
          // makes while it computes between requests; at 30 s it moves past such pauses. Below
          // the 60 s headers timeout, as Node requires.
          (server as unknown as { keepAliveTimeout: number }).keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
          server.on('error', reject);
        } catch (e) {
          reject(e);
        }
      });
    },
  };
}
