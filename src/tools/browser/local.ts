// The local document collection: a folder of Markdown, text and HTML files, indexed with BM25
// (minisearch) so that hospitals and labs can give the model their guidelines and protocols with no
// data leaving the machine. Documents are addressed as `local://<collection>/<relative path>`.
// Opening a collection only lists its files; they are read and indexed in the background (a
// search waits for the index, an open reads its one document), and files left out are recorded
// with the reason (over the size limit, binary, unreadable).
import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import { basename, extname, join, relative, resolve, sep } from 'node:path';
import MiniSearch from 'minisearch';
import { UserError } from '../../errors.ts';
import { BackendError, VIEW_SOURCE_PREFIX, searchResultsPage, withUrlHeader, type BrowserBackend, type SearchHit } from './backend.ts';
import { htmlToPage, markdownToPage, textToPage, type Extract, type PageContents } from './page.ts';
import { stripLinks, wrapLines } from './text.ts';

export const LOCAL_SCHEME = 'local:';

const KINDS: Record<string, 'markdown' | 'html' | 'text'> = {
  '.md': 'markdown', '.markdown': 'markdown', '.mdx': 'markdown',
  '.html': 'html', '.htm': 'html', '.xhtml': 'html',
  '.txt': 'text', '.text': 'text', '.rst': 'text', '.csv': 'text', '.tsv': 'text', '.log': 'text',
};

export interface LocalDocsOptions {
  /** Collection name: the host of its URLs and the `sources=` value. Default: the folder's name. */
  name?: string;
  /** Skip files larger than this. Default 5 MiB. */
  maxFileBytes?: number;
  /** Most files indexed. Default 20000. */
  maxFiles?: number;
}

interface LocalDoc {
  path: string; // relative, with forward slashes
  url: string;
  page: PageContents; // as shown (URL header + text with link markup)
  source: string; // raw file text, for view-source
  shown: string[]; // page lines as displayed, links stripped (for snippets)
  lines: string[]; // the same lowercased (for scoring)
}

/** A file of a supported kind that is not in the collection, and why. */
export interface SkippedFile {
  /** Relative path, with forward slashes. */
  path: string;
  /** e.g. "6.2 MiB, over the 5 MiB limit", "binary (contains NUL bytes)". */
  reason: string;
}

/** A file size for messages: "640 KiB", "6.2 MiB". */
function size(bytes: number): string {
  const [value, unit] = bytes >= 1024 * 1024 ? [bytes / (1024 * 1024), 'MiB'] : [bytes / 1024, 'KiB'];
  return `${value >= 10 ? value.toFixed(0) : value.toFixed(1).replace(/\.0$/, '')} ${unit}`;
}

/** Tokenisation shared by indexing and snippet scoring: words of letters and digits, lowercased. */
function terms(text: string): string[] {
  return text.toLowerCase().match(/[\p{L}\p{N}]+(?:[.'’-][\p{L}\p{N}]+)*/gu) ?? [];
}

export class LocalDocsBackend implements BrowserBackend {
  readonly source: string;
  /** Relative path -> absolute file, for every file listed and not (yet) skipped. */
  private readonly files = new Map<string, string>();
  private readonly skips = new Map<string, string>();
  private readonly loads = new Map<string, Promise<LocalDoc | undefined>>();
  private readonly loaded = new Map<string, LocalDoc>();
  private readonly index: MiniSearch<{ id: string; title: string; text: string; path: string }>;
  private indexedAll = false;
  /** Resolves once every file has been read and indexed (or skipped); never rejects. */
  readonly indexed: Promise<void>;

  private constructor(
    readonly root: string,
    readonly name: string,
    files: Map<string, string>,
    skipped: SkippedFile[],
  ) {
    this.source = name;
    for (const [path, file] of files) this.files.set(path, file);
    for (const s of skipped) this.skips.set(s.path, s.reason);
    this.index = new MiniSearch({
      fields: ['title', 'text', 'path'],
      storeFields: ['title'],
      tokenize: (t) => terms(t),
      processTerm: (t) => t,
      searchOptions: {
        boost: { title: 3, path: 1.5 },
        prefix: (term) => term.length >= 4,
        fuzzy: (term) => (term.length >= 6 ? 0.15 : false),
        combineWith: 'OR',
      },
    });
    this.indexed = this.indexAll();
  }

  /**
   * Lists every supported file under `dir` (hidden folders and node_modules skipped) and starts
   * reading and indexing them in the background: the collection is usable at once.
   */
  static async open(dir: string, options: LocalDocsOptions = {}): Promise<LocalDocsBackend> {
    let root: string;
    try {
      root = await realpath(resolve(dir));
    } catch {
      throw new UserError('input', `document folder not found: ${dir}`);
    }
    if (!(await stat(root)).isDirectory()) throw new UserError('input', `${dir} is a file, not a document folder`);
    const name = sanitizeName(options.name ?? basename(root));
    const maxBytes = options.maxFileBytes ?? 5 * 1024 * 1024;
    const maxFiles = options.maxFiles ?? 20000;
    const files: string[] = [];
    const walk = async (d: string): Promise<void> => {
      const entries = await readdir(d, { withFileTypes: true });
      entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      for (const e of entries) {
        if (files.length >= maxFiles) return;
        if (e.name.startsWith('.') || e.name === 'node_modules') continue;
        const p = join(d, e.name);
        if (e.isDirectory()) await walk(p);
        else if (e.isFile() && KINDS[extname(e.name).toLowerCase()] !== undefined) files.push(p);
      }
    };
    await walk(root);
    const listed = new Map<string, string>();
    const skipped: SkippedFile[] = [];
    for (const file of files) {
      const path = relative(root, file).split(sep).join('/');
      let bytes: number;
      try {
        bytes = (await stat(file)).size;
      } catch (e) {
        skipped.push({ path, reason: `unreadable (${(e as NodeJS.ErrnoException).code ?? String(e)})` });
        continue;
      }
      if (bytes > maxBytes) skipped.push({ path, reason: `${size(bytes)}, over the ${size(maxBytes)} limit` });
      else listed.set(path, file);
    }
    return new LocalDocsBackend(root, name, listed, skipped);
  }

  /** Documents in the collection (relative paths); binary files drop out as indexing finds them. */
  get paths(): string[] {
    return [...this.files.keys()];
  }

  /** Files of a supported kind left out of the collection, with the reason; complete once `indexed` resolved. */
  get skipped(): SkippedFile[] {
    return [...this.skips].map(([path, reason]) => ({ path, reason }));
  }

  /** Whether every file has been read and indexed. */
  get ready(): boolean {
    return this.indexedAll;
  }

  private async indexAll(): Promise<void> {
    for (const path of [...this.files.keys()]) {
      const doc = await this.load(path);
      if (doc !== undefined) this.index.add({ id: doc.path, title: doc.page.title, text: stripLinks(doc.page.text), path: doc.path });
      // A large file costs a moment of CPU: let requests in between files.
      await new Promise<void>((r) => setImmediate(r));
    }
    this.indexedAll = true;
  }

  /** The document at `path`, read once; undefined (and recorded as skipped) when it cannot be used. */
  private load(path: string): Promise<LocalDoc | undefined> {
    let pending = this.loads.get(path);
    if (pending === undefined) {
      pending = this.read(path);
      this.loads.set(path, pending);
    }
    return pending;
  }

  private async read(path: string): Promise<LocalDoc | undefined> {
    const file = this.files.get(path);
    if (file === undefined) return undefined;
    const skip = (reason: string): undefined => {
      this.files.delete(path);
      this.skips.set(path, reason);
      return undefined;
    };
    let bytes: Buffer;
    try {
      bytes = await readFile(file);
    } catch (e) {
      return skip(`unreadable (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
    }
    // Text never holds NUL bytes; a PDF or an image renamed .txt does.
    if (bytes.includes(0)) return skip('binary (contains NUL bytes)');
    const doc = makeDoc(this.name, path, bytes.toString('utf8'));
    this.loaded.set(path, doc);
    return doc;
  }

  urlOf(path: string): string {
    return `${LOCAL_SCHEME}//${this.name}/${encodePath(path)}`;
  }

  /** The relative path of a `local://` URL of this collection (or of a bare relative path), else undefined. */
  pathOf(url: string): string | undefined {
    const u = url.startsWith(VIEW_SOURCE_PREFIX) ? url.slice(VIEW_SOURCE_PREFIX.length) : url;
    let path: string;
    if (u.startsWith(`${LOCAL_SCHEME}//`)) {
      const rest = u.slice(LOCAL_SCHEME.length + 2);
      const slash = rest.indexOf('/');
      if (slash < 0 || rest.slice(0, slash) !== this.name) return undefined;
      path = rest.slice(slash + 1);
    } else if (!/^[a-zA-Z][a-zA-Z0-9+.-]*:/.test(u)) path = u.replace(/^\/+/, '');
    else return undefined;
    path = path.replace(/[#?].*$/, '');
    try {
      path = decodeURIComponent(path);
    } catch {
      return undefined;
    }
    return this.files.has(path) ? path : undefined;
  }

  /** Why the document a URL names was left out of the collection, if it was. */
  private skipReason(url: string): string | undefined {
    const u = url.startsWith(VIEW_SOURCE_PREFIX) ? url.slice(VIEW_SOURCE_PREFIX.length) : url;
    const prefix = `${LOCAL_SCHEME}//${this.name}/`;
    let path = u.startsWith(prefix) ? u.slice(prefix.length) : u.replace(/^\/+/, '');
    path = path.replace(/[#?].*$/, '');
    try {
      path = decodeURIComponent(path);
    } catch {
      return undefined;
    }
    return this.skips.get(path);
  }

  /**
   * A citation of display lines [start, end] links to the file, relative to the collection root,
   * with the matching source lines (`guide.md#L12-L15`, 1-based) when they can be found.
   */
  citationHref(page: PageContents, start: number, end: number): string | undefined {
    const url = page.url.replace(/\/find\?pattern=.*$/, '');
    const path = this.pathOf(url);
    if (path === undefined) return undefined;
    if (url !== page.url || url.startsWith(VIEW_SOURCE_PREFIX)) return encodePath(path);
    const doc = this.loaded.get(path);
    if (doc === undefined) return encodePath(path);
    const display = wrapLines(doc.page.text);
    const source = doc.source.split('\n');
    const locate = (i: number, from: number): number => {
      const fragments = (display[i] ?? '').split(/【[^】]*】/).map((f) => f.trim()).filter((f) => f.length >= 6);
      fragments.sort((a, b) => b.length - a.length);
      const probe = fragments[0]?.slice(0, 30);
      if (probe === undefined) return -1;
      for (let j = from; j < source.length; j++) if (source[j]!.includes(probe)) return j;
      return -1;
    };
    let a = -1;
    for (let i = start; i <= end && a < 0; i++) a = locate(i, 0);
    if (a < 0) return encodePath(path);
    let b = -1;
    for (let i = end; i >= start && b < 0; i--) b = locate(i, a);
    if (b < a) b = a;
    return `${encodePath(path)}#L${a + 1}${b > a ? `-L${b + 1}` : ''}`;
  }

  async search(query: string, topn: number): Promise<PageContents> {
    await this.indexed;
    const results = this.index.search(query).slice(0, Math.max(1, topn));
    const qterms = [...new Set(terms(query))];
    const hits: (SearchHit & { lineIdx: number })[] = [];
    for (const r of results) {
      const doc = this.loaded.get(String(r.id));
      if (doc === undefined) continue;
      const { lineIdx, snippet } = bestPassage(doc, qterms);
      hits.push({ url: doc.url, title: doc.page.title || doc.path, summary: snippet, lineIdx });
    }
    const page = searchResultsPage(query, hits, (hit, id) => `【${id}†${hit.title.replace(/†/g, '‡')}†${this.name}】`);
    // Snippets let `open` land on the matching passage, as the tool description promises.
    const snippets: Record<string, Extract> = {};
    hits.forEach((h, i) => {
      snippets[String(i)] = { url: h.url, text: h.summary, title: h.title, lineIdx: h.lineIdx };
    });
    return { ...page, snippets };
  }

  async fetch(url: string): Promise<PageContents> {
    const viewSource = url.startsWith(VIEW_SOURCE_PREFIX);
    const path = this.pathOf(url);
    const doc = path === undefined ? undefined : await this.load(path);
    if (doc === undefined) {
      const reason = this.skipReason(url);
      if (reason !== undefined) throw new BackendError(`${url} was left out of the collection: ${reason}`);
      if (/^https?:/i.test(url.replace(VIEW_SOURCE_PREFIX, ''))) {
        throw new BackendError(`only documents of the local collection can be opened (${this.urlOf('<path>')}); the web is not reachable`);
      }
      throw new BackendError(`no document ${url} in the collection ${this.urlOf('')}`);
    }
    if (viewSource) return { url: VIEW_SOURCE_PREFIX + doc.url, title: doc.page.title, text: doc.source, urls: {} };
    return doc.page;
  }
}

function sanitizeName(name: string): string {
  const s = name.toLowerCase().replace(/[^a-z0-9.-]+/g, '-').replace(/^-+|-+$/g, '');
  return s === '' ? 'docs' : s;
}

function encodePath(path: string): string {
  return path.split('/').map(encodeURIComponent).join('/');
}

function makeDoc(collection: string, path: string, raw: string): LocalDoc {
  const url = `${LOCAL_SCHEME}//${collection}/${encodePath(path)}`;
  const kind = KINDS[extname(path).toLowerCase()] ?? 'text';
  const fallbackTitle = basename(path, extname(path));
  let page: PageContents;
  if (kind === 'html') page = htmlToPage(raw, url);
  else if (kind === 'markdown') page = markdownToPage(raw, url);
  else page = textToPage(raw, url, firstLine(raw) ?? fallbackTitle);
  if (page.title === '') page = { ...page, title: fallbackTitle };
  page = withUrlHeader(page);
  const shown = stripLinks(wrapLines(page.text).join('\n')).split('\n');
  return { path, url, page, source: raw, shown, lines: shown.map((l) => l.toLowerCase()) };
}

function firstLine(text: string): string | undefined {
  const line = text.split('\n').find((l) => l.trim() !== '');
  if (line === undefined) return undefined;
  const t = line.trim();
  return t.length <= 100 ? t : undefined;
}

/** The wrapped-line window with the most query terms; its first line and a one-line snippet. */
function bestPassage(doc: LocalDoc, qterms: string[]): { lineIdx: number; snippet: string } {
  const window = 4;
  let best = -1;
  let bestIdx = 0;
  const lineScores = doc.lines.map((l) => {
    const words = new Set(terms(l));
    let s = 0;
    for (const q of qterms) {
      if (words.has(q)) s += 2;
      else if (q.length >= 4 && [...words].some((w) => w.startsWith(q))) s += 1;
    }
    return s;
  });
  for (let i = 0; i < doc.lines.length; i++) {
    if (lineScores[i] === 0) continue;
    let s = 0;
    for (let j = i; j < Math.min(doc.lines.length, i + window); j++) s += lineScores[j]!;
    if (s > best) {
      best = s;
      bestIdx = i;
    }
  }
  const shown = doc.shown;
  let snippet = '';
  for (let j = bestIdx; j < shown.length && snippet.length < 200; j++) {
    const t = shown[j]!.trim().replace(/^(#{1,6}|[-*+]|\d+[.)])\s+/, '');
    if (t !== '' && !t.startsWith('URL: ')) snippet += (snippet === '' ? '' : ' ') + t;
  }
  if (snippet.length > 200) snippet = snippet.slice(0, 197).replace(/\s+\S*$/, '') + '...';
  return { lineIdx: best < 0 ? 0 : bestIdx, snippet };
}
