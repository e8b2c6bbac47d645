// The `browser` tool as gpt-oss was trained to use it: search / open / find over a backend, a stack
// of pages addressed by cursor, line-numbered views of about 1024 tokens, link ids, and errors the
// model can read. One BrowserSession per conversation (its page stack and page cache are the
// conversation's; citations `【{cursor}†L..】` are resolved against them).
import { browserToolNamespace, type ToolNamespaceConfig } from '../../harmony/index.ts';
import { getTokenizer } from '../../tokenizer/index.ts';
import type { Tool, ToolCall, ToolOutput } from '../tool.ts';
import { errorText } from '../errors.ts';
import { BackendError, VIEW_SOURCE_PREFIX, type BrowserBackend } from './backend.ts';
import type { Extract, PageContents } from './page.ts';
import { joinLines, maybeTruncate, stripLinks, unquote, wrapLines } from './text.ts';

/** A call the model made wrongly (bad cursor, bad link id, out-of-range location). */
export class ToolUsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ToolUsageError';
  }
}

export interface BrowserOptions {
  /** Tokens shown when `num_lines` is not given. Default 1024 (the reference). */
  viewTokens?: number;
  /** Upper bound on results per search. Default 20 (the reference always asks for 20). */
  maxSearchResults?: number;
  /** Honour the model's `topn` (bounded by maxSearchResults). The reference ignores it; default true. */
  honorTopn?: boolean;
}

/** What a session remembers: pages by URL and the URL at each cursor. */
export interface BrowserState {
  pages: Record<string, PageContents>;
  pageStack: string[];
}

export interface SearchArgs {
  query: string;
  topn?: number;
  source?: string;
}
export interface OpenArgs {
  id?: number | string;
  cursor?: number;
  loc?: number;
  num_lines?: number;
  view_source?: boolean;
  source?: string;
}
export interface FindArgs {
  pattern: string;
  cursor?: number;
}

const FIND_MAX_RESULTS = 50;
const FIND_LINES_PER_HIT = 4;
const MAX_CHARS_PER_TOKEN = 128;

/** Python's `urllib.parse.quote` (safe="/"). */
function pyQuote(s: string): string {
  return encodeURIComponent(s)
    .replace(/%2F/g, '/')
    .replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
}

/** The browser description with the backend's `sources=` line; the rest is harmony's, word for word. */
export function browserNamespace(source: string): ToolNamespaceConfig {
  const ns = browserToolNamespace();
  const description = (ns.description ?? '').replace(/sources=web \(default: web\)$/, `sources=${source} (default: ${source})`);
  return { ...ns, description };
}

export class BrowserSession implements Tool {
  readonly name = 'browser';
  /** URL -> page: opened pages are cached for the conversation. */
  private readonly pages = new Map<string, PageContents>();
  /** Cursor i is the i-th page shown in this conversation. */
  private readonly stack: string[] = [];
  private readonly viewTokens: number;
  private readonly maxSearchResults: number;
  private readonly honorTopn: boolean;

  constructor(
    readonly backend: BrowserBackend,
    options: BrowserOptions = {},
  ) {
    this.viewTokens = options.viewTokens ?? 1024;
    this.maxSearchResults = options.maxSearchResults ?? 20;
    this.honorTopn = options.honorTopn ?? true;
  }

  namespace(): ToolNamespaceConfig {
    return browserNamespace(this.backend.source);
  }

  /** The session's pages and page stack, as plain JSON (to keep a conversation across requests). */
  state(): BrowserState {
    return { pages: Object.fromEntries(this.pages), pageStack: [...this.stack] };
  }

  /** A session continuing from `state()` of an earlier one. */
  static restore(backend: BrowserBackend, state: BrowserState, options: BrowserOptions = {}): BrowserSession {
    const s = new BrowserSession(backend, options);
    for (const [url, page] of Object.entries(state.pages)) s.pages.set(url, page);
    for (const url of state.pageStack) {
      if (!s.pages.has(url)) throw new Error(`browser state: page stack names a page it does not hold (${url})`);
      s.stack.push(url);
    }
    return s;
  }

  /** URLs of the pages by cursor. */
  get pageStack(): readonly string[] {
    return this.stack;
  }

  /** The page a cursor points at (undefined when out of range). */
  pageAt(cursor: number): PageContents | undefined {
    const url = this.stack[cursor];
    return url === undefined ? undefined : this.pages.get(url);
  }

  /** Where a citation of display lines [start, end] of `page` links to (backend-specific, e.g. file#L3-L5). */
  citationHref(page: PageContents, start: number, end: number): string | undefined {
    return this.backend.citationHref?.(page, start, end);
  }

  async run(call: ToolCall, signal?: AbortSignal): Promise<ToolOutput> {
    const [ns, fn, ...rest] = call.recipient.split('.');
    const author = call.recipient;
    const fail = (text: string, error = text): ToolOutput => ({ author, content: text, error });
    if (ns !== 'browser' || fn === undefined || rest.length > 0 || !['search', 'open', 'find'].includes(fn)) {
      return fail(pyJsonError(`Unknown function: ${fn ?? call.recipient}`));
    }
    let args: Record<string, unknown>;
    const content = call.content.trim();
    if (content === '') args = {};
    else {
      let parsed: unknown;
      try {
        parsed = JSON.parse(content);
      } catch {
        parsed = undefined;
      }
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
        return fail(pyJsonError('Invalid function arguments'));
      }
      args = parsed as Record<string, unknown>;
    }
    try {
      let text: string;
      if (fn === 'search') text = await this.search(checkSearchArgs(args), signal);
      else if (fn === 'open') text = await this.open(checkOpenArgs(args), signal);
      else text = await this.find(checkFindArgs(args));
      return { author, content: text };
    } catch (e) {
      if (e instanceof ToolUsageError || e instanceof BackendError) return fail(e.message);
      throw e;
    }
  }

  // ---- the three functions ------------------------------------------------------------------

  async search(args: SearchArgs, signal?: AbortSignal): Promise<string> {
    const topn = this.honorTopn && args.topn !== undefined && args.topn > 0 ? Math.min(Math.floor(args.topn), this.maxSearchResults) : this.maxSearchResults;
    let page: PageContents;
    try {
      page = await this.backend.search(args.query, topn, signal);
    } catch (e) {
      if (signal?.aborted === true) throw e;
      throw new BackendError(`Error during search for \`${args.query}\`: ${maybeTruncate(errorText(e))}`);
    }
    this.addPage(page);
    return this.showPageSafely(0, -1);
  }

  async open(args: OpenArgs, signal?: AbortSignal): Promise<string> {
    let id = args.id ?? -1;
    const cursor = args.cursor ?? -1;
    let loc = args.loc ?? -1;
    const numLines = args.num_lines ?? -1;
    const viewSource = args.view_source ?? false;
    // A link id sent as a string ("3") is still a link id when the page has one.
    if (typeof id === 'string' && /^\d+$/.test(id) && this.stack.length > 0 && this.getPage(cursor).urls[id] !== undefined) id = Number(id);

    let currPage: PageContents | undefined;
    let stay = false;
    let direct = false;
    let snippet: Extract | undefined;
    let url: string;
    if (typeof id === 'string') {
      url = id;
      direct = true;
    } else {
      currPage = this.getPage(cursor);
      if (id >= 0) {
        const target = currPage.urls[String(id)];
        if (target === undefined) throw new ToolUsageError(`Invalid link id \`${id}\`.`);
        url = target;
        snippet = currPage.snippets?.[String(id)];
      } else {
        if (!viewSource) stay = true;
        url = currPage.url;
      }
    }
    if (viewSource) {
      url = VIEW_SOURCE_PREFIX + url;
      snippet = undefined;
    }
    const page = stay && currPage !== undefined ? currPage : await this.openUrl(url, direct, signal);
    this.addPage(page);
    if (loc < 0) {
      if (snippet?.lineIdx !== undefined) {
        loc = snippet.lineIdx;
        if (loc > 4) loc -= 4;
      } else loc = 0;
    }
    return this.showPageSafely(loc, numLines);
  }

  async find(args: FindArgs): Promise<string> {
    const page = this.getPage(args.cursor ?? -1);
    if (page.snippets !== undefined) throw new ToolUsageError('Cannot run `find` on search results page or find results page');
    this.addPage(findInPage(args.pattern.toLowerCase(), page));
    return this.showPageSafely(0, -1);
  }

  // ---- page stack -----------------------------------------------------------------------------

  private addPage(page: PageContents): void {
    this.pages.set(page.url, page);
    this.stack.push(page.url);
  }

  private getPage(cursor: number): PageContents {
    const current = this.stack.length - 1;
    if (current < 0) throw new ToolUsageError('No pages to access!');
    if (!Number.isInteger(cursor)) throw new ToolUsageError(`\`cursor\` should be an integer, not \`${typeof cursor}\``);
    if (cursor === -1 || cursor === current) return this.pages.get(this.stack[current]!)!;
    // Python list indexing: negative cursors count from the end.
    const i = cursor < 0 ? this.stack.length + cursor : cursor;
    const url = this.stack[i];
    if (i < 0 || url === undefined) {
      throw new ToolUsageError(`Cursor \`${cursor}\` is out of range. Available cursor indices: [0 - ${current}].`);
    }
    return this.pages.get(url)!;
  }

  private async openUrl(url: string, direct: boolean, signal?: AbortSignal): Promise<PageContents> {
    // Following a link uses the cached page; a URL typed by the model is a refresh.
    if (!direct) {
      const cached = this.pages.get(url);
      if (cached !== undefined) return cached;
    }
    try {
      return await this.backend.fetch(url, signal);
    } catch (e) {
      if (signal?.aborted === true) throw e;
      throw new BackendError(`Error fetching URL \`${maybeTruncate(url)}\`: ${maybeTruncate(errorText(e))}`);
    }
  }

  private showPageSafely(loc: number, numLines: number): string {
    try {
      return this.showPage(loc, numLines);
    } catch (e) {
      if (e instanceof ToolUsageError) this.stack.pop();
      throw e;
    }
  }

  private showPage(loc: number, numLines: number): string {
    const page = this.getPage(-1);
    const cursor = this.stack.length - 1;
    const lines = wrapLines(page.text);
    const total = lines.length;
    if (loc >= total) {
      throw new ToolUsageError(`Invalid location parameter: \`${loc}\`. Cannot exceed page maximum of ${total - 1}.`);
    }
    const end = endLocation(loc, numLines, lines, this.viewTokens);
    const body = joinLines(lines.slice(loc, end), true, loc);
    const scrollbar = `viewing lines [${loc} - ${end - 1}] of ${total - 1}`;
    const domain = maybeTruncate(unquote(page.url));
    let header = page.title;
    if (domain !== '') header += ` (${domain})`;
    header += `\n**${scrollbar}**\n\n`;
    return `[${cursor}] ${header}${body}`;
  }
}

/** The end (exclusive) of the view: `num_lines` lines, or as many lines as fit in `viewTokens` tokens. */
export function endLocation(loc: number, numLines: number, lines: readonly string[], viewTokens: number): number {
  const total = lines.length;
  let n = numLines;
  if (n <= 0) {
    const txt = joinLines(lines.slice(loc), true, loc);
    n = total;
    if (txt.length > viewTokens) {
      const tok = getTokenizer();
      // Tokenise a growing prefix: enough text for viewTokens+1 tokens, not the whole page.
      let len = Math.min(txt.length, (viewTokens + 1) * 8);
      for (;;) {
        const ids = tok.encodeOrdinary(txt.slice(0, len));
        if (ids.length > viewTokens) {
          const head = new TextDecoder().decode(tok.decodeBytes(ids.slice(0, viewTokens)));
          n = (head.match(/\n/g)?.length ?? 0) + 1;
          break;
        }
        if (len >= txt.length || len >= (viewTokens + 1) * MAX_CHARS_PER_TOKEN) break;
        len = Math.min(txt.length, len * 4);
      }
    }
  }
  return Math.min(loc + n, total);
}

/** The find results page: up to 50 hits of 4 lines each, case-insensitive, link markup removed. */
export function findInPage(pattern: string, page: PageContents): PageContents {
  const lines = stripLinks(joinLines(wrapLines(page.text))).split('\n');
  const chunks: string[] = [];
  const snippets: Record<string, Extract> = {};
  const urls: Record<string, string> = {};
  let i = 0;
  let match = 0;
  while (i < lines.length) {
    if (!lines[i]!.toLowerCase().includes(pattern)) {
      i++;
      continue;
    }
    const snippet = lines.slice(i, i + FIND_LINES_PER_HIT).join('\n');
    chunks.push(`# 【${match}†match at L${i}】\n${snippet}`);
    snippets[String(match)] = { url: page.url, text: snippet, title: `#${match}`, lineIdx: i };
    urls[String(match)] = page.url;
    if (chunks.length === FIND_MAX_RESULTS) break;
    match++;
    i += FIND_LINES_PER_HIT;
  }
  return {
    url: `${page.url}/find?pattern=${pyQuote(pattern)}`,
    title: `Find results for text: \`${pattern}\` in \`${page.title}\``,
    text: chunks.length > 0 ? chunks.join('\n\n') : `No \`find\` results for pattern: \`${pattern}\``,
    urls,
    snippets,
  };
}

/** `json.dumps({"error": msg})` as Python writes it (a space after the colon). */
function pyJsonError(msg: string): string {
  return `{"error": ${JSON.stringify(msg)}}`;
}

// ---- argument checking: a wrong argument is a message to the model, not a crash -------------

function integer(args: Record<string, unknown>, key: string): number | undefined {
  const v = args[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  if (typeof v === 'string' && /^-?\d+$/.test(v.trim())) return Number(v);
  throw new ToolUsageError(`\`${key}\` should be an integer, not \`${JSON.stringify(v)}\``);
}

function allowOnly(args: Record<string, unknown>, fn: string, keys: readonly string[]): void {
  for (const k of Object.keys(args)) {
    if (!keys.includes(k)) throw new ToolUsageError(`Unexpected argument \`${k}\` for \`${fn}\`. Valid arguments: ${keys.map((x) => `\`${x}\``).join(', ')}.`);
  }
}

function checkSearchArgs(args: Record<string, unknown>): SearchArgs {
  allowOnly(args, 'search', ['query', 'topn', 'top_n', 'source']);
  if (typeof args.query !== 'string') throw new ToolUsageError('`search` needs a `query` string.');
  const out: SearchArgs = { query: args.query };
  const topn = integer(args, 'topn') ?? integer(args, 'top_n');
  if (topn !== undefined) out.topn = topn;
  return out;
}

function checkOpenArgs(args: Record<string, unknown>): OpenArgs {
  allowOnly(args, 'open', ['id', 'cursor', 'loc', 'num_lines', 'view_source', 'source']);
  const out: OpenArgs = {};
  if (args.id !== undefined && args.id !== null) {
    if (typeof args.id === 'string') out.id = args.id;
    else out.id = integer(args, 'id')!;
  }
  const cursor = integer(args, 'cursor');
  const loc = integer(args, 'loc');
  const numLines = integer(args, 'num_lines');
  if (cursor !== undefined) out.cursor = cursor;
  if (loc !== undefined) out.loc = loc;
  if (numLines !== undefined) out.num_lines = numLines;
  if (args.view_source !== undefined && args.view_source !== null) {
    if (typeof args.view_source !== 'boolean') throw new ToolUsageError('`view_source` should be a boolean.');
    out.view_source = args.view_source;
  }
  return out;
}

function checkFindArgs(args: Record<string, unknown>): FindArgs {
  allowOnly(args, 'find', ['pattern', 'cursor']);
  if (typeof args.pattern !== 'string' && typeof args.pattern !== 'number') throw new ToolUsageError('`find` needs a `pattern` string.');
  const out: FindArgs = { pattern: String(args.pattern) };
  const cursor = integer(args, 'cursor');
  if (cursor !== undefined) out.cursor = cursor;
  return out;
}
