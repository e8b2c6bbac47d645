// Where the browser's pages come from: a search engine plus a page fetcher. The local document
// collection and the web search APIs implement the same two calls.
import type { PageContents } from './page.ts';

export const VIEW_SOURCE_PREFIX = 'view-source:';

/** A backend failure the model should read (bad URL, no such document, API error). */
export class BackendError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BackendError';
  }
}

export interface BrowserBackend {
  /** The `sources=` value of the tool description (e.g. "web", or the collection's name). */
  readonly source: string;
  /** A results page whose link ids open the hits. */
  search(query: string, topn: number, signal?: AbortSignal): Promise<PageContents>;
  /** The page at `url` (which may start with `view-source:`). */
  fetch(url: string, signal?: AbortSignal): Promise<PageContents>;
  /** Optional: the link a citation of display lines [start, end] of `page` resolves to. */
  citationHref?(page: PageContents, start: number, end: number): string | undefined;
}

/** The reference writes the page URL at the top of fetched pages; the model was trained on that layout. */
export function withUrlHeader(page: PageContents): PageContents {
  return { ...page, text: `\nURL: ${page.url}\n${page.text}` };
}

export interface SearchHit {
  url: string;
  title: string;
  summary: string;
}

/**
 * The search results page: the reference renders an HTML list of `<a href=url>title</a> summary` and
 * converts it, which gives this text (links are external to the empty results URL, so they carry
 * their domain).
 */
export function searchResultsPage(query: string, hits: readonly SearchHit[], linkText: (hit: SearchHit, id: number) => string): PageContents {
  const urls: Record<string, string> = {};
  const items: string[] = [];
  const seen = new Map<string, number>();
  for (const hit of hits) {
    let id = seen.get(hit.url);
    if (id === undefined) {
      id = seen.size;
      seen.set(hit.url, id);
      urls[String(id)] = hit.url;
    }
    const summary = hit.summary.replace(/\s+/g, ' ').trim();
    items.push(`  * ${linkText(hit, id)}${summary === '' ? '' : ' ' + summary}`);
  }
  const body = items.length > 0 ? `# Search Results\n\n${items.join('\n')}` : '# Search Results';
  return { url: '', title: query, text: `\nURL: \n${body}`, urls };
}
