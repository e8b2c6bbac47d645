// Web search backends for the browser: Exa and You.com, configured by API key (EXA_API_KEY,
// YDC_API_KEY). Requests and responses follow the services' public APIs as the reference browser
// uses them; the base URL is overridable (tests point it at a local fake server).
import { BackendError, VIEW_SOURCE_PREFIX, searchResultsPage, withUrlHeader, type BrowserBackend, type SearchHit } from './backend.ts';
import { htmlToPage, type PageContents } from './page.ts';
import { getDomain } from './text.ts';

export interface WebBackendOptions {
  /** Defaults to the environment variable (EXA_API_KEY / YDC_API_KEY). */
  apiKey?: string;
  /** Service root, e.g. "http://127.0.0.1:8123" in tests. */
  baseUrl?: string;
  /** `sources=` value. Default "web". */
  source?: string;
  /** Per-request timeout. Default 30 s. */
  timeoutMs?: number;
  /** Replaceable for tests; default globalThis.fetch. */
  fetch?: typeof fetch;
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

abstract class HttpBackend implements BrowserBackend {
  readonly source: string;
  protected readonly baseUrl: string;
  private readonly apiKey: string | undefined;
  private readonly timeoutMs: number;
  private readonly fetchImpl: typeof fetch;
  protected abstract readonly serviceName: string;
  protected abstract readonly keyVariable: string;

  constructor(defaultBase: string, envKey: string | undefined, options: WebBackendOptions) {
    this.baseUrl = (options.baseUrl ?? defaultBase).replace(/\/+$/, '');
    this.apiKey = options.apiKey ?? envKey;
    this.source = options.source ?? 'web';
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.fetchImpl = options.fetch ?? globalThis.fetch;
  }

  abstract search(query: string, topn: number, signal?: AbortSignal): Promise<PageContents>;
  abstract fetch(url: string, signal?: AbortSignal): Promise<PageContents>;

  protected async request(method: 'GET' | 'POST', endpoint: string, body: Record<string, Json>, signal?: AbortSignal): Promise<Json> {
    if (this.apiKey === undefined || this.apiKey === '') throw new BackendError(`${this.serviceName} API key not provided (set ${this.keyVariable})`);
    let url = `${this.baseUrl}${endpoint}`;
    const headers: Record<string, string> = { 'x-api-key': this.apiKey, 'user-agent': 'gptoss' };
    let payload: string | undefined;
    if (method === 'GET') {
      const params = new URLSearchParams();
      for (const [k, v] of Object.entries(body)) params.set(k, String(v));
      url += `?${params.toString()}`;
    } else {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const combined = signal === undefined ? timeout : AbortSignal.any([signal, timeout]);
    let res: Response;
    try {
      res = await this.fetchImpl(url, { method, headers, body: payload, signal: combined });
    } catch (e) {
      if (signal?.aborted === true) throw e;
      throw new BackendError(`${this.serviceName} request failed: ${e instanceof Error ? e.message : String(e)}`);
    }
    const text = await res.text();
    if (res.status !== 200) throw new BackendError(`${this.serviceName} error ${res.status}: ${text.slice(0, 300)}`);
    try {
      return JSON.parse(text) as Json;
    } catch {
      throw new BackendError(`${this.serviceName} returned invalid JSON`);
    }
  }
}

function obj(v: Json | undefined): { [k: string]: Json } | undefined {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? v : undefined;
}
function arr(v: Json | undefined): Json[] {
  return Array.isArray(v) ? v : [];
}
function str(v: Json | undefined): string {
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) return v.filter((x) => typeof x === 'string').join(' ');
  return '';
}

function webLink(hit: SearchHit, id: number): string {
  return `【${id}†${hit.title.replace(/\s+/g, ' ').trim().replace(/†/g, '‡')}†${getDomain(hit.url)}】`;
}

function stripViewSource(url: string): string {
  return url.startsWith(VIEW_SOURCE_PREFIX) ? url.slice(VIEW_SOURCE_PREFIX.length) : url;
}

/** Exa: POST /search {query, numResults, contents: {text, summary}}; POST /contents {urls, text: {includeHtmlTags}}. */
export class ExaBackend extends HttpBackend {
  protected readonly serviceName = 'Exa';
  protected readonly keyVariable = 'EXA_API_KEY';
  constructor(options: WebBackendOptions = {}) {
    super('https://api.exa.ai', process.env.EXA_API_KEY, options);
  }

  async search(query: string, topn: number, signal?: AbortSignal): Promise<PageContents> {
    const data = obj(await this.request('POST', '/search', { query, numResults: topn, contents: { text: true, summary: true } }, signal));
    const hits = arr(data?.results)
      .map(obj)
      .filter((r) => r !== undefined)
      .map((r) => ({ title: str(r.title), url: str(r.url), summary: str(r.summary) }))
      .filter((h) => h.url !== '');
    return searchResultsPage(query, hits, webLink);
  }

  async fetch(url: string, signal?: AbortSignal): Promise<PageContents> {
    const target = stripViewSource(url);
    const data = obj(await this.request('POST', '/contents', { urls: [target], text: { includeHtmlTags: true } }, signal));
    const first = obj(arr(data?.results)[0]);
    if (first === undefined) throw new BackendError(`No contents returned for ${target}`);
    return withUrlHeader(htmlToPage(str(first.text), target, str(first.title)));
  }
}

/** You.com: GET /v1/search?query&count (web and news hits); POST /v1/contents {urls, livecrawl_formats: "html"}. */
export class YouComBackend extends HttpBackend {
  protected readonly serviceName = 'You.com';
  protected readonly keyVariable = 'YDC_API_KEY';
  constructor(options: WebBackendOptions = {}) {
    super('https://api.ydc-index.io', process.env.YDC_API_KEY, options);
  }

  async search(query: string, topn: number, signal?: AbortSignal): Promise<PageContents> {
    const data = obj(await this.request('GET', '/v1/search', { query, count: topn }, signal));
    const results = obj(data?.results);
    const web = arr(results?.web)
      .map(obj)
      .filter((r) => r !== undefined)
      .map((r) => ({ title: str(r.title), url: str(r.url), summary: str(r.snippets) || str(r.description) }));
    const news = arr(results?.news)
      .map(obj)
      .filter((r) => r !== undefined)
      .map((r) => ({ title: str(r.title), url: str(r.url), summary: str(r.description) }));
    return searchResultsPage(query, [...web, ...news].filter((h) => h.url !== ''), webLink);
  }

  async fetch(url: string, signal?: AbortSignal): Promise<PageContents> {
    const target = stripViewSource(url);
    const data = await this.request('POST', '/v1/contents', { urls: [target], livecrawl_formats: 'html' }, signal);
    const first = obj(arr(data)[0]);
    if (first === undefined) throw new BackendError(`No contents returned for ${target}`);
    if (typeof first.html !== 'string') throw new BackendError(`No HTML returned for ${target}`);
    return withUrlHeader(htmlToPage(first.html, target, str(first.title)));
  }
}
