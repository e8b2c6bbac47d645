// The OpenAI-compatible server (Responses and Chat Completions APIs) started in-process on a
// loaded Model, for library callers: the same server as `gptoss serve`, with library defaults
// (a free port on loopback, no request log). Closing it leaves the model open.
import { createServer } from '../server/index.ts';
import type { ReasoningEffort } from '../harmony/index.ts';
import { UserError } from '../errors.ts';
import { listen, serverTools } from '../server/startup.ts';
import { translateErrors } from './errors.ts';
import { engineOf, type Model } from './model.ts';

/** How the server runs. */
export interface ServerOptions {
  /** Port to listen on; default 0 (a free one: read it from the returned url). */
  port?: number;
  /** Address to bind; default 127.0.0.1 (anything else exposes the model to the network). */
  host?: string;
  /** Require `Authorization: Bearer <apiKey>` on every /v1 request. */
  apiKey?: string;
  /** Model id clients send and see; default the model's name. */
  modelName?: string;
  /** Requests generating at once; more get HTTP 429. Default 16. */
  maxConcurrency?: number;
  /** Most tokens one request may generate. Default: until the context is full. */
  maxOutputTokens?: number;
  /** Effort of requests that name none. Default 'medium'. */
  reasoningEffort?: ReasoningEffort;
  /** Origins of web pages allowed to call the API (CORS), or `['*']`. Default none. */
  corsOrigins?: readonly string[];
  /**
   * Built-in tools requests may enable: the browser over a documents folder, python. Default: the
   * model's defaultTools (for the embedded gpt-oss-nano both, over its documents), else none; a
   * request that names no tools (any Chat Completions request without function tools) then gets
   * them, as the library's chats do, since that model was trained with them in every prompt.
   */
  tools?: { browser?: { documents: string }; python?: boolean };
  /**
   * Receives one line per request (method, path, status, tokens, time; never content), and with the
   * browser, once its documents are indexed, a line per file it left out and why. Default: no log.
   */
  log?: (line: string) => void;
}

/** A running server. */
export interface RunningServer {
  /** Where it listens, e.g. `http://127.0.0.1:41234`. */
  url: string;
  /** The OpenAI base URL to give clients: `${url}/v1`. */
  baseUrl: string;
  port: number;
  /** Stops listening and drops open connections; the model stays loaded. */
  close(): Promise<void>;
}

/** Starts the OpenAI-compatible HTTP server on `model`; resolves once it listens. */
export async function startServer(model: Model, options: ServerOptions = {}): Promise<RunningServer> {
  return translateErrors(async () => {
    const engine = engineOf(model);
    const port = options.port ?? 0;
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UserError('usage', `port must be an integer from 0 to 65535, got ${String(port)}`);
    const host = options.host ?? '127.0.0.1';
    const given = options.tools ?? {
      ...Object.fromEntries(model.defaultTools.flatMap((t) => (t.type === 'browser' ? [['browser', { documents: t.documents }]] : []))),
      python: model.defaultTools.some((t) => t.type === 'python'),
    };
    const tools = await serverTools({
      ...(given.browser !== undefined ? { browser: given.browser.documents } : {}),
      python: given.python === true,
      ...(options.log !== undefined ? { report: options.log } : {}),
    });
    const server = createServer({
      engine,
      ...(options.modelName !== undefined ? { modelName: options.modelName } : {}),
      ...(options.apiKey !== undefined ? { apiKey: options.apiKey } : {}),
      ...(options.maxConcurrency !== undefined ? { maxConcurrency: options.maxConcurrency } : {}),
      ...(options.maxOutputTokens !== undefined ? { maxOutputTokens: options.maxOutputTokens } : {}),
      ...(options.reasoningEffort !== undefined ? { defaultEffort: options.reasoningEffort } : {}),
      ...(options.corsOrigins !== undefined ? { corsOrigins: options.corsOrigins } : {}),
      tools,
      toolsByDefault: options.tools === undefined && model.defaultTools.length > 0,
      log: options.log ?? (() => {}),
    });
    const running = await listen(server, port, host, { port: 'port', host: 'host' });
    const { url, close } = running;
    return { url, baseUrl: `${url}/v1`, port: running.port, close };
  });
}
