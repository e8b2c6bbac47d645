// What every generating route shares: reading and checking the body, the concurrency slot (429),
// the context-window check on the prepared prompt, and serving one turn. A turn is run once by
// one TurnReply whichever way the client asked: streaming sends the reply's events as they come;
// a non-streaming request runs the same reply with its events unsent and answers with what it
// collected. Usage and content logging happen here, once.
import type { Context } from 'hono';
import { streamSSE, type SSEStreamingApi } from 'hono/streaming';
import type { AgentEvent, AgentResult } from '../engine/agent.ts';
import { shortestJsonBytes } from '../engine/constrained.ts';
import type { BatchingEngine } from '../engine/scheduler.ts';
import { prepareTurn, runTurn, type PreparedTurn, type TurnRequest } from '../engine/turn.ts';
import { readJsonBody } from './body.ts';
import type { ServerContext } from './common.ts';
import { ApiError, ClientGoneError, toApiError } from './errors.ts';
import { isRecord, type JsonRecord } from './validate.ts';

/** What a request's log line reports (tokens; prompt and output only with logContent). */
export interface RequestLog {
  inputTokens?: number;
  outputTokens?: number;
  content?: { prompt: string; output: string };
  /** Why a stream that had already answered 200 failed (the error's code or type), for its log line. */
  error?: string;
}

/** Sends one server-sent event: `event` names it (Responses) or is absent (Chat). */
export type SendEvent = (event: string | undefined, data: JsonRecord | string) => void;

/** One API's view of a turn: it translates the loop's events, then closes the reply. */
export interface TurnReply {
  onEvent(e: AgentEvent): void;
  /** The output text for the content log. */
  logOutput(result: AgentResult): string;
  /**
   * The turn ended (not aborted): sends the closing events when streaming, and returns the reply
   * body a non-streaming request answers with.
   */
  finish(result: AgentResult): JsonRecord;
}

export interface TurnServing {
  turn: TurnRequest;
  stream: boolean;
  /** The request's prompt field (`input`, `messages`) for the content log. */
  logPrompt: () => string;
  /** Error params naming the prompt and the output format, for the context checks. */
  promptParam: string;
  formatParam: string;
  /** Makes the reply; `send` is set when streaming. */
  reply: (send: SendEvent | undefined) => TurnReply;
}

export interface RouteKit {
  ctx: ServerContext;
  engine: BatchingEngine;
  /** The JSON body, its `model` checked against the served ids. */
  readBody(c: Context): Promise<JsonRecord>;
  /** Most tokens one request may generate: the server's cap, never more than the window. */
  room(): number;
  serveTurn(c: Context, serving: TurnServing): Promise<Response>;
}

export interface RouteKitOptions {
  ctx: ServerContext;
  engine: BatchingEngine;
  maxBodyBytes: number;
  maxOutputTokens: number | undefined;
  /** Reserves a generation slot (429 when none is free); returns its release. */
  acquireSlot: () => () => void;
  logLine: (c: Context, status: number, started: number, info: RequestLog) => void;
}

export function createRouteKit(o: RouteKitOptions): RouteKit {
  const { ctx, engine } = o;

  const readBody = async (c: Context): Promise<JsonRecord> => {
    const body = await readJsonBody(c.req.raw, o.maxBodyBytes);
    if (!isRecord(body)) throw new ApiError(400, 'The request body must be a JSON object.');
    const model = body['model'];
    if (model !== undefined && model !== null) {
      if (typeof model !== 'string') throw new ApiError(400, 'model must be a string', { param: 'model' });
      if (!ctx.modelIds.has(model)) throw new ApiError(404, `The model '${model}' does not exist; this server serves ${[...ctx.modelIds].map((m) => `'${m}'`).join(', ')}`, { param: 'model', code: 'model_not_found' });
    }
    return body;
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

  /** Runs an SSE stream; the client's disconnect aborts the generation. */
  const stream = (c: Context, release: () => void, info: RequestLog, body: (sse: SSEStreamingApi, signal: AbortSignal) => Promise<void>): Response => {
    const started = (c as unknown as { started?: number }).started ?? performance.now();
    const abort = new AbortController();
    c.req.raw.signal.addEventListener('abort', () => abort.abort(), { once: true });
    return streamSSE(c, async (sse) => {
      sse.onAbort(() => abort.abort());
      // The client was sent 200 with the headers; the log and the metrics tell how it really ended.
      let status = 200;
      try {
        await body(sse, abort.signal);
      } catch (e) {
        // Handled here, not by streamSSE's error callback: after that callback it writes the raw
        // message as a second, unshaped error event (internal details included).
        if (e instanceof ClientGoneError) status = 499;
        else {
          const err = toApiError(e);
          if (err.status === 500) ctx.log(`internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
          const b = err.toBody().error;
          status = err.status;
          info.error = b.code ?? b.type;
          await sse.writeSSE({ event: 'error', data: JSON.stringify({ type: 'error', code: b.code, message: b.message, param: b.param, error: b }) }).catch(() => {});
        }
      } finally {
        release();
        o.logLine(c, abort.signal.aborted ? 499 : status, started, info);
      }
    });
  };

  const serveTurn = async (c: Context, serving: TurnServing): Promise<Response> => {
    const info = (c as Context<{ Variables: { log: RequestLog } }>).get('log');
    const turn = prepareTurn(serving.turn);
    fitContext(turn, serving.promptParam, serving.formatParam);
    const release = o.acquireSlot();
    /** The one place a turn runs and its usage is recorded. */
    const run = async (signal: AbortSignal, send: SendEvent | undefined): Promise<{ reply: TurnReply; result: AgentResult }> => {
      const reply = serving.reply(send);
      let result: AgentResult;
      try {
        ({ result } = await runTurn(engine, turn, { signal, onEvent: (e) => reply.onEvent(e) }));
      } catch (e) {
        // A failure after the client went away is a disconnect, not a server fault.
        if (signal.aborted) throw new ClientGoneError();
        throw e;
      }
      info.inputTokens = result.usage.promptTokens;
      info.outputTokens = result.usage.completionTokens;
      if (ctx.logContent) info.content = { prompt: serving.logPrompt(), output: reply.logOutput(result) };
      return { reply, result };
    };

    if (!serving.stream) {
      try {
        const { reply, result } = await run(c.req.raw.signal, undefined);
        return c.json(reply.finish(result));
      } finally {
        release();
      }
    }
    return stream(c, release, info, async (sse, signal) => {
      const queue = new EventQueue(sse);
      const { reply, result } = await run(signal, (event, data) => queue.push(event, data));
      if (result.finishReason !== 'abort') reply.finish(result);
      await queue.drain();
    });
  };

  return { ctx, engine, readBody, room: () => Math.min(engine.info.contextLength, o.maxOutputTokens ?? Infinity), serveTurn };
}

/**
 * Writes SSE events in order without blocking the generation: agent events arrive synchronously
 * from the sampler loop, while writes are asynchronous.
 */
class EventQueue {
  private chain: Promise<void> = Promise.resolve();
  constructor(private readonly sse: SSEStreamingApi) {}
  push(event: string | undefined, data: JsonRecord | string): void {
    const text = typeof data === 'string' ? data : JSON.stringify(data);
    this.chain = this.chain.then(() => this.sse.writeSSE(event === undefined ? { data: text } : { event, data: text })).catch(() => {});
  }
  drain(): Promise<void> {
    return this.chain;
  }
}
