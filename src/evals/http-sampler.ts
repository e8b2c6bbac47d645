// A Sampler over any OpenAI-compatible Chat Completions endpoint (our own `gptoss serve`, vLLM,
// llama.cpp's server, or a remote API the user chooses). Retries transient failures; reads the
// reasoning from `reasoning` or `reasoning_content` when the endpoint returns it.
import { UserError } from '../errors.ts';
import type { ChatMessage, SampleOptions, Sampler, SamplerResponse } from './types.ts';

export interface HttpSamplerOptions {
  /** Base URL including the version prefix, e.g. http://127.0.0.1:8000/v1 */
  baseUrl: string;
  /** Model name sent in requests; default: the first model the endpoint lists. */
  model?: string;
  apiKey?: string;
  retries?: number;
  timeoutMs?: number;
}

interface ChatCompletionBody {
  choices?: { message?: { content?: string | null; reasoning?: string | null; reasoning_content?: string | null } }[];
  usage?: { prompt_tokens?: number; completion_tokens?: number };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class HttpSampler implements Sampler {
  readonly label: string;
  private readonly baseUrl: string;
  private model: string | undefined;
  private readonly apiKey: string | undefined;
  private readonly retries: number;
  private readonly timeoutMs: number;

  constructor(options: HttpSamplerOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.model = options.model;
    this.apiKey = options.apiKey;
    this.retries = options.retries ?? 4;
    this.timeoutMs = options.timeoutMs ?? 600_000;
    this.label = `${this.baseUrl}${options.model !== undefined ? ` (${options.model})` : ''}`;
  }

  private headers(): Record<string, string> {
    const h: Record<string, string> = { 'content-type': 'application/json' };
    if (this.apiKey !== undefined && this.apiKey !== '') h.authorization = `Bearer ${this.apiKey}`;
    return h;
  }

  private async resolveModel(): Promise<string> {
    if (this.model !== undefined) return this.model;
    const res = await this.fetchWithRetry(`${this.baseUrl}/models`, { method: 'GET', headers: this.headers() });
    const body = (await res.json()) as { data?: { id?: string }[] };
    const id = body.data?.[0]?.id;
    if (typeof id !== 'string') throw new UserError('network', `${this.baseUrl}/models lists no model; pass a model name`);
    this.model = id;
    return id;
  }

  private async fetchWithRetry(url: string, init: RequestInit, signal?: AbortSignal): Promise<Response> {
    let lastError = '';
    for (let attempt = 0; attempt <= this.retries; attempt++) {
      if (attempt > 0) await sleep(Math.min(8000, 250 * 2 ** attempt));
      const timeout = AbortSignal.timeout(this.timeoutMs);
      const combined = signal !== undefined ? AbortSignal.any([signal, timeout]) : timeout;
      try {
        const res = await fetch(url, { ...init, signal: combined });
        if (res.ok) return res;
        const text = await res.text();
        lastError = `HTTP ${res.status}: ${text.slice(0, 200).replace(/\s+/g, ' ')}`;
        // Client errors other than rate limiting will not improve with a retry.
        if (res.status < 500 && res.status !== 429) break;
      } catch (e) {
        if (signal?.aborted === true) throw e;
        // fetch's own message is only "fetch failed"; the cause says why (ECONNREFUSED, ENOTFOUND ...).
        const cause = (e as { cause?: { code?: unknown; message?: unknown } }).cause;
        const why = typeof cause?.code === 'string' ? cause.code : typeof cause?.message === 'string' ? cause.message : undefined;
        lastError = why !== undefined ? `${(e as Error).message} (${why})` : (e as Error).message;
      }
    }
    throw new UserError('network', `${url}: ${lastError}`);
  }

  async complete(messages: readonly ChatMessage[], options: SampleOptions = {}): Promise<SamplerResponse> {
    const model = await this.resolveModel();
    const body: Record<string, unknown> = { model, messages };
    if (options.effort !== undefined) body.reasoning_effort = options.effort;
    if (options.temperature !== undefined) body.temperature = options.temperature;
    if (options.maxTokens !== undefined) body.max_tokens = options.maxTokens;
    const res = await this.fetchWithRetry(
      `${this.baseUrl}/chat/completions`,
      { method: 'POST', headers: this.headers(), body: JSON.stringify(body) },
      options.signal,
    );
    const json = (await res.json()) as ChatCompletionBody;
    const message = json.choices?.[0]?.message;
    if (message === undefined) throw new UserError('network', `${this.baseUrl}/chat/completions: response has no choices[0].message`);
    const reasoning = message.reasoning ?? message.reasoning_content ?? undefined;
    const out: SamplerResponse = { text: message.content ?? '' };
    if (reasoning !== undefined && reasoning !== null && reasoning !== '') out.reasoning = reasoning;
    if (json.usage !== undefined) out.usage = { inputTokens: json.usage.prompt_tokens ?? 0, outputTokens: json.usage.completion_tokens ?? 0 };
    return out;
  }
}
