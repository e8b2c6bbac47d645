// Citation resolution: the model cites what it read as `【{cursor}†L{start}-L{end}】` or
// `【{cursor}†L{line}】` (cursor = the page's place in the conversation's page stack). These helpers
// turn the markers of a final answer into Markdown links to the document and line range, with
// annotations like the reference's url_citation ones; a streaming variant holds back a marker
// until it is complete; `withoutCitations` leaves both forms out of a text for graders of its words.
import type { PageContents } from './page.ts';
import { stripLinks, wrapLines } from './text.ts';

/** What citation resolution needs from a browser session. */
export interface CitationSource {
  readonly pageStack: readonly string[];
  pageAt(cursor: number): PageContents | undefined;
  /** Optional mapping of a page + display lines to a link (the local backend links to file lines). */
  citationHref?(page: PageContents, start: number, end: number): string | undefined;
}

export interface Citation {
  /** Offsets of the replacement in the returned text (UTF-16 code units, as JS strings index). */
  start: number;
  end: number;
  type: 'url_citation';
  url: string;
  title: string;
  /** The link target written into the text (the URL, or a file path with a #L anchor). */
  href: string;
  cursor: number;
  /** Display lines cited, as the model wrote them. */
  lines: { start: number; end: number };
  /** The cited lines' text (link markup removed). */
  quote: string;
}

export interface ResolvedText {
  text: string;
  citations: Citation[];
}

const CITATION = /【(\d+)†([^†】]+)(?:†[^†】]+)?】/g;
const PARTIAL_FINAL = /【\d*(?:†[^†】]*(?:†[^†】]*)?)?$/;
const LINE_RANGE = /^L(\d+)(?:\s*-\s*L?(\d+))?$/;

/** The page a cited cursor names, and the original page for a find-results page. */
function citedPage(source: CitationSource, cursor: number): PageContents | undefined {
  const page = source.pageAt(cursor);
  if (page === undefined || page.url === '') return undefined;
  return page;
}

function escapeMarkdownText(s: string): string {
  return s.replace(/([[\]\\])/g, '\\$1');
}

/**
 * A link target with its parentheses and spaces percent-encoded, so that the Markdown link ends
 * where it should (encodeURIComponent leaves parentheses as they are).
 */
function markdownHref(href: string): string {
  return href.replace(/[()\s]/g, (c) => (c === '(' ? '%28' : c === ')' ? '%29' : encodeURIComponent(c)));
}

/**
 * Replaces every complete citation marker whose cursor names a page with ` ([title](href))` and
 * reports it; markers naming no page (or a search results page) are left as they are.
 */
export function resolveCitations(text: string, source: CitationSource, offset = 0, before = ''): ResolvedText {
  let out = '';
  let last = 0;
  const citations: Citation[] = [];
  for (const m of text.matchAll(CITATION)) {
    const cursor = Number(m[1]);
    const page = citedPage(source, cursor);
    const range = LINE_RANGE.exec(m[2]!.trim());
    out += text.slice(last, m.index);
    last = m.index + m[0].length;
    if (page === undefined) {
      out += m[0];
      continue;
    }
    const lines = wrapLines(page.text);
    let start = range !== null ? Number(range[1]) : 0;
    let end = range !== null ? Number(range[2] ?? range[1]) : start;
    if (end < start) [start, end] = [end, start];
    const quote = range !== null ? stripLinks(lines.slice(start, end + 1).join('\n')).trim() : '';
    const href = source.citationHref?.(page, start, end) ?? page.url;
    const title = page.title || page.url;
    // The link follows the cited words after one space: none added where the answer has one.
    const lead = /\s$/.test(out === '' ? before : out) ? '' : ' ';
    const replacement = `${lead}([${escapeMarkdownText(title)}](${markdownHref(href)}))`;
    citations.push({
      start: offset + out.length,
      end: offset + out.length + replacement.length,
      type: 'url_citation',
      url: page.url,
      title,
      href,
      cursor,
      lines: { start, end },
      quote,
    });
    out += replacement;
  }
  out += text.slice(last);
  return { text: out, citations };
}

/** A link as resolveCitations writes one: ` ([title](href))`, the title escaped, the href encoded. */
const CITATION_LINK = /\s?\(\[(?:\\.|[^\]\\])*\]\([^()\s]*\)\)/g;
/** Any citation marker, complete, naming a page or not. */
const ANY_MARKER = /【[^】]*】/g;

/**
 * The text with its citations left out, as markers (`【1†L9】`) or as the links they became
 * (` ([Title](file.md#L3-L4))`), each replaced by a space: for graders of an answer's words and
 * numbers, which a cursor, line numbers and file names are not.
 */
export function withoutCitations(text: string): string {
  return text.replace(ANY_MARKER, ' ').replace(CITATION_LINK, ' ');
}

/** True when `text` ends inside a citation marker that may still be completed. */
export function hasPartialCitation(text: string): boolean {
  return PARTIAL_FINAL.test(text);
}

/**
 * Resolves citations in streamed text: `push(delta)` returns the text that can be shown now (a
 * trailing unfinished marker is held back), `flush()` the rest at the end. Citation offsets are
 * positions in the concatenation of everything returned.
 */
export class CitationStream {
  private pending = '';
  private emitted = 0;
  /** The last character returned: a citation at the start of a chunk follows it. */
  private last = '';
  readonly citations: Citation[] = [];

  constructor(
    private readonly source: CitationSource,
    /** A held-back partial marker longer than this is released as plain text. */
    private readonly maxHold = 64,
  ) {}

  push(delta: string): string {
    this.pending += delta;
    const m = PARTIAL_FINAL.exec(this.pending);
    let ready = this.pending;
    if (m !== null && this.pending.length - m.index <= this.maxHold) {
      ready = this.pending.slice(0, m.index);
      this.pending = this.pending.slice(m.index);
    } else this.pending = '';
    return this.emit(ready);
  }

  flush(): string {
    const rest = this.pending;
    this.pending = '';
    return this.emit(rest);
  }

  private emit(chunk: string): string {
    if (chunk === '') return '';
    const r = resolveCitations(chunk, this.source, this.emitted, this.last);
    this.citations.push(...r.citations);
    this.emitted += r.text.length;
    if (r.text !== '') this.last = r.text.slice(-1);
    return r.text;
  }
}
