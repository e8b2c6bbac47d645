// A Sampler over any OpenAI-compatible Chat Completions endpoint (our own `gptoss serve`, vLLM,
// llama.cpp's server, or a remote API the user chooses). Every request carries a token cap and
// runs under a time limit; transient failures are retried, a request that ran out of time or whose
// reply passed the size limit is not.
// Reads the reasoning from `reasoning` or `reasoning_content` when the endpoint returns it.
//
// The transport is node:http rather than fetch: Node's fetch gives up on its own after 300 s
// without response headers, and a non-streamed answer sends none until it is finished, so a slow
// local model would hit that hidden limit before the one the user chose.
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import { UserError } from '../errors.ts';
import type { ChatMessage, SampleOptions, Sampler, SamplerResponse } from './types.ts';

/** The answer-length cap of HealthBench's reference sampler. */
export const DEFAULT_MAX_TOKENS = 2048;
/** Per request: room for DEFAULT_MAX_TOKENS at a few tokens a second on a CPU. */
export const DEFAULT_TIMEOUT_S = 600;
/** A reply body larger than this is refused rather than held in memory. */
const MAX_REPLY_BYTES = 64 * 1024 * 1024;

export interface HttpSamplerOptions {
  /** Base URL including the version prefix, e.g. http://127.0.0.1:8000/v1 */
  baseUrl: string;
  /** Model name sent in requests; default: the first model the endpoint lists. */
  model?: string;
  apiKey?: string;
  retries?: number;
  /** Limit of one request, answer included (default DEFAULT_TIMEOUT_S). */
  timeoutMs?: number;
  /** `max_tokens` of every completion unless a call sets its own (default DEFAULT_MAX_TOKENS). */
  maxTokens?: number;
}

interface ChatCompletionBody {
  choices?: { finish_reason?: string | null; message?: { content?: string | null; reasoning?: string | null; reasoning_content?: string | null } }[];
  usage?: { prompt_tokens?: number; completion_tokens?: number };
}

interface Reply {
  status: number;
  text: string;
}

/** A reply body past MAX_REPLY_BYTES: the endpoint would send as much again if asked again. */
class ReplyTooLarge extends Error {
  constructor() {
    super(`the reply is larger than ${MAX_REPLY_BYTES / 2 ** 20} MiB`);
  }
}

/** One HTTP exchange, body included; rejects with the signal's reason whenever it aborts. */
function exchange(url: URL, method: 'GET' | 'POST', headers: Record<string, string>, body: string | undefined, signal: AbortSignal): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      req.destroy();
      reject(signal.reason);
    };
    const settle = <T>(f: (v: T) => void) => (v: T) => {
      signal.removeEventListener('abort', onAbort);
      f(v);
    };
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const allHeaders: IncomingHttpHeaders = body !== undefined ? { ...headers, 'content-length': String(Buffer.byteLength(body)) } : headers;
    const req = send(url, { method, headers: allHeaders }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_REPLY_BYTES) req.destroy(new ReplyTooLarge());
        else chunks.push(chunk);
      });
      res.on('end', settle(() => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') })));
      res.on('error', settle(reject));
    });
    req.on('error', settle(reject));
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    req.end(body);
  });
}

/** A reply excerpt fit for a one-line message. */
function excerpt(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > 200 ? `${flat.slice(0, 200)}…` : flat;
}

export class HttpSampler implements Sampler {
  readonly label: string;
  private readonly baseUrl: string;
  private model: Promise<string> | undefined;
  private readonly apiKey: string | undefined;
  private readonly retries: number;
  private readonly timeoutMs: number;
  private readonly maxTokens: number;

  constructor(options: HttpSamplerOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    if (options.model !== undefined) this.model = Promise.resolve(options.model);
    this.apiKey = options.apiKey;
    this.retries = options.retries ?? 4;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_S * 1000;
    this.maxTokens = options.maxTokens ?? DEFAULT_MAX_TOKENS;
    this.label = `${this.baseUrl}${options.model !== undefined ? ` (${options.model})` : ''}`;
  }

  private headers(): Record<string, string> {
    const h: Record<string, string> = { 'content-type': 'application/json' };
    if (this.apiKey !== undefined && this.apiKey !== '') h.authorization = `Bearer ${this.apiKey}`;
    return h;
  }

  /** The model named by the user, else the endpoint's first (asked once, however many cases start together). */
  private resolveModel(): Promise<string> {
    this.model ??= this.call('GET', '/models').then((body) => {
      const id = (body as { data?: { id?: string }[] }).data?.[0]?.id;
      if (typeof id !== 'string') throw new UserError('network', `${this.baseUrl}/models lists no model; pass a model name`);
      return id;
    });
    return this.model.catch((e: unknown) => {
      this.model = undefined; // the next case asks again
      throw e;
    });
  }

  /** A JSON reply from `path`, retrying transient failures (connection errors, 429, 5xx). */
  private async call(method: 'GET' | 'POST', path: string, body?: unknown, signal?: AbortSignal): Promise<unknown> {
    const url = `${this.baseUrl}${path}`;
    const payload = body === undefined ? undefined : JSON.stringify(body);
    let lastError = '';
    for (let attempt = 0; attempt <= this.retries; attempt++) {
      if (attempt > 0) await sleep(Math.min(8000, 250 * 2 ** attempt), undefined, signal !== undefined ? { signal } : {});
      const timeout = AbortSignal.timeout(this.timeoutMs);
      const combined = signal !== undefined ? AbortSignal.any([signal, timeout]) : timeout;
      let reply: Reply;
      try {
        reply = await exchange(new URL(url), method, this.headers(), payload, combined);
      } catch (e) {
        if (signal?.aborted === true) throw e;
        if (timeout.aborted) {
          // Asking again would only wait as long again (a model that does not stop stays so).
          throw new UserError('network', `${url}: no reply within ${this.timeoutMs / 1000} s (the per-request timeout); not retried`);
        }
        // Nor would it shrink the reply: each retry downloaded the whole limit again.
        if (e instanceof ReplyTooLarge) throw new UserError('network', `${url}: ${e.message}; not retried`);
        const code = (e as NodeJS.ErrnoException).code;
        lastError = typeof code === 'string' ? `connection failed (${code})` : (e as Error).message;
        continue;
      }
      if (reply.status >= 200 && reply.status < 300) {
        try {
          return JSON.parse(reply.text) as unknown;
        } catch {
          throw new UserError('network', `${url}: the reply is not JSON: "${excerpt(reply.text)}"`);
        }
      }
      lastError = `HTTP ${reply.status}: ${excerpt(reply.text)}`;
      // Client errors other than rate limiting will not improve with a retry.
      if (reply.status < 500 && reply.status !== 429) break;
    }
    throw new UserError('network', `${url}: ${lastError}`);
  }

  async complete(messages: readonly ChatMessage[], options: SampleOptions = {}): Promise<SamplerResponse> {
    const model = await this.resolveModel();
    const body: Record<string, unknown> = { model, messages, max_tokens: options.maxTokens ?? this.maxTokens };
    if (options.effort !== undefined) body.reasoning_effort = options.effort;
    if (options.temperature !== undefined) body.temperature = options.temperature;
    const json = (await this.call('POST', '/chat/completions', body, options.signal)) as ChatCompletionBody;
    const choice = json.choices?.[0];
    const message = choice?.message;
    if (message === undefined) throw new UserError('network', `${this.baseUrl}/chat/completions: response has no choices[0].message`);
    const reasoning = message.reasoning ?? message.reasoning_content ?? undefined;
    const out: SamplerResponse = { text: message.content ?? '' };
    if (reasoning !== undefined && reasoning !== null && reasoning !== '') out.reasoning = reasoning;
    if (json.usage !== undefined) out.usage = { inputTokens: json.usage.prompt_tokens ?? 0, outputTokens: json.usage.completion_tokens ?? 0 };
    if (typeof choice?.finish_reason === 'string') out.finishReason = choice.finish_reason;
    return out;
  }
}
