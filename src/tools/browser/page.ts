// Pages as the browser shows them: plain text in which every link is written `【{id}†{text}】`
// (`【{id}†{text}†{domain}】` when it leaves the page's site), with the id -> URL table, built from
// HTML, Markdown or plain text. The HTML conversion follows the reference (html2text without links,
// images or emphasis, no wrapping), written from scratch with no DOM library.
import { getDomain, replaceSpecialChars } from './text.ts';

/** A search-result snippet: which page, and the line where the matching passage starts. */
export interface Extract {
  url: string;
  text: string;
  title: string;
  lineIdx?: number;
}

export interface PageContents {
  url: string;
  title: string;
  text: string;
  /** link id ("0", "1", ...) -> absolute URL */
  urls: Record<string, string>;
  /** Set on search and find result pages (link id -> snippet); `find` refuses such pages. */
  snippets?: Record<string, Extract>;
}

/** Assigns link ids in order of first appearance and renders link markup. */
export class LinkTable {
  readonly urls: Record<string, string> = {};
  private readonly ids = new Map<string, string>();
  private readonly pageDomain: string;
  constructor(private readonly pageUrl: string) {
    this.pageDomain = getDomain(pageUrl);
  }

  /** The markup for a link, or null when the link is not followable (mailto:, javascript:, in-page anchors). */
  markup(href: string, rawText: string): string | null {
    const text = rawText.replace(/\s+/g, ' ').trim().replace(/†/g, '‡');
    if (text === '') return null;
    if (/^(mailto|javascript|tel|data):/i.test(href) || href.startsWith('#')) return text;
    const url = resolveUrl(this.pageUrl, href);
    if (url === null) return text;
    const domain = getDomain(url);
    if (domain === '') return text;
    let id = this.ids.get(url);
    if (id === undefined) {
      id = String(this.ids.size);
      this.ids.set(url, id);
      this.urls[id] = url;
    }
    return domain === this.pageDomain ? `【${id}†${text}】` : `【${id}†${text}†${domain}】`;
  }
}

/** `urljoin(base, href)`; null when the result is not a URL. */
export function resolveUrl(base: string, href: string): string | null {
  try {
    return base === '' ? new URL(href).href : new URL(href, base).href;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// HTML

const NAMED_ENTITIES: Record<string, string> = {
  amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: ' ', ndash: '–', mdash: '—', hellip: '…',
  lsquo: '‘', rsquo: '’', ldquo: '“', rdquo: '”', laquo: '«', raquo: '»', copy: '©', reg: '®', trade: '™',
  deg: '°', plusmn: '±', times: '×', divide: '÷', micro: 'µ', middot: '·', bull: '•', para: '¶', sect: '§',
  le: '≤', ge: '≥', ne: '≠', asymp: '≈', minus: '−', alpha: 'α', beta: 'β', gamma: 'γ', delta: 'δ', mu: 'μ',
  eacute: 'é', egrave: 'è', agrave: 'à', uuml: 'ü', ouml: 'ö', auml: 'ä', szlig: 'ß', ccedil: 'ç', euro: '€',
  pound: '£', yen: '¥', cent: '¢', sup2: '²', sup3: '³', frac12: '½', frac14: '¼', frac34: '¾', larr: '←', rarr: '→',
  dagger: '†', Dagger: '‡', shy: '',
};

export function decodeEntities(s: string): string {
  return s.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-zA-Z][a-zA-Z0-9]*);?/g, (m, body: string) => {
    if (body[0] === '#') {
      const cp = body[1] === 'x' || body[1] === 'X' ? parseInt(body.slice(2), 16) : parseInt(body.slice(1), 10);
      return Number.isFinite(cp) && cp > 0 && cp <= 0x10ffff ? String.fromCodePoint(cp) : m;
    }
    return NAMED_ENTITIES[body] ?? m;
  });
}

const SKIP = new Set(['script', 'style', 'head', 'noscript', 'template', 'svg', 'math', 'iframe', 'object', 'select', 'button']);
const VOID = new Set(['br', 'hr', 'img', 'input', 'meta', 'link', 'area', 'base', 'col', 'embed', 'source', 'track', 'wbr', 'param']);
const PARAGRAPH = new Set(['p', 'div', 'section', 'article', 'header', 'footer', 'main', 'nav', 'aside', 'form', 'figure', 'figcaption', 'address', 'details', 'summary', 'table', 'dl', 'fieldset', 'center']);

interface Attrs {
  [name: string]: string;
}

function parseAttrs(s: string): Attrs {
  const out: Attrs = {};
  const re = /([^\s=/>]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+)))?/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s)) !== null) out[m[1]!.toLowerCase()] = decodeEntities(m[2] ?? m[3] ?? m[4] ?? '');
  return out;
}

/** Builds the text of an HTML page: block structure as line breaks, headings as `#`, lists as `  * `. */
class HtmlText {
  private out = '';
  private pendingBreak = 0; // newlines owed before the next text
  private pendingSpace = false;
  private atStart = true;
  write(text: string, pre: boolean): void {
    if (!pre) {
      if (/^\s/.test(text)) this.pendingSpace = true;
      const words = text.split(/\s+/).filter((w) => w !== '');
      if (words.length === 0) return;
      this.flush();
      this.out += words.join(' ');
      this.pendingSpace = /\s$/.test(text);
    } else {
      if (text === '') return;
      this.flush();
      this.out += text;
    }
  }
  /** Raw markup (link, image) placed inline like a word. */
  inline(s: string): void {
    this.flush();
    this.out += s;
  }
  private flush(): void {
    if (this.pendingBreak > 0 && !this.atStart) {
      this.out = this.out.replace(/[ ]+$/, '');
      this.out += '\n'.repeat(this.pendingBreak);
    } else if (this.pendingSpace && !this.atStart && !this.out.endsWith('\n') && !this.out.endsWith(' ')) {
      this.out += ' ';
    }
    this.pendingBreak = 0;
    this.pendingSpace = false;
    this.atStart = false;
  }
  block(n: number): void {
    this.pendingBreak = Math.max(this.pendingBreak, n);
    this.pendingSpace = false;
  }
  /** Text that starts a block (heading marks, list bullets). */
  prefix(s: string): void {
    this.flush();
    this.out += s;
  }
  text(): string {
    return this.out;
  }
}

/** Converts an HTML document to a page. `title` wins over the document's <title>. */
export function htmlToPage(html: string, url: string, title?: string): PageContents {
  // Characters outside the BMP are dropped as the reference does; link brackets are neutralised.
  const src = replaceSpecialChars(html.replace(/[\u{10000}-\u{1FFFF}]/gu, ''));
  const links = new LinkTable(url);
  const out = new HtmlText();
  const stack: string[] = [];
  const listStack: { ordered: boolean; n: number }[] = [];
  let skipDepth = 0;
  let skipTag = '';
  let pre = 0;
  let docTitle: string | undefined;
  let link: { href: string; text: string } | null = null;
  let images = 0;
  let inTitle = false;
  let titleText = '';
  const tokenRe = /<!--[\s\S]*?-->|<!\[CDATA\[[\s\S]*?\]\]>|<![^>]*>|<\?[^>]*>|<\/?([a-zA-Z][a-zA-Z0-9:-]*)((?:\s+[^\s=/>]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s>]+))?)*)\s*\/?>|[^<]+|</g;
  let m: RegExpExecArray | null;
  const emitText = (raw: string): void => {
    const t = decodeEntities(raw);
    if (link !== null) link.text += t;
    else out.write(t, pre > 0);
  };
  while ((m = tokenRe.exec(src)) !== null) {
    const tok = m[0];
    if (m[1] === undefined) {
      if (tok.startsWith('<!') || tok.startsWith('<?')) continue;
      if (inTitle) {
        titleText += tok;
        continue;
      }
      if (skipDepth > 0) continue;
      emitText(tok);
      continue;
    }
    const name = m[1].toLowerCase();
    const closing = tok.startsWith('</');
    if (inTitle) {
      if (closing && name === 'title') {
        inTitle = false;
        docTitle = decodeEntities(titleText).replace(/\s+/g, ' ').trim();
      } else titleText += tok;
      continue;
    }
    if (name === 'title' && !closing) {
      inTitle = true;
      titleText = '';
      continue;
    }
    if (skipDepth > 0) {
      if (name === skipTag) skipDepth += closing ? -1 : tok.endsWith('/>') ? 0 : 1;
      continue;
    }
    if (SKIP.has(name) && !closing) {
      if (!tok.endsWith('/>')) {
        skipDepth = 1;
        skipTag = name;
      }
      continue;
    }
    const attrs = closing ? {} : parseAttrs(m[2] ?? '');
    if (!closing && !VOID.has(name)) stack.push(name);
    if (closing) {
      const i = stack.lastIndexOf(name);
      if (i >= 0) stack.length = i;
    }
    switch (name) {
      case 'a':
        if (!closing) {
          if (attrs.href !== undefined && link === null) link = { href: attrs.href, text: '' };
        } else if (link !== null) {
          // A link around an image only is probably decoration: the reference keeps just the image.
          const imageOnly = link.text.replace(/\[Image \d+(?:: [^\]]*)?\]/g, '').trim() === '';
          const markup = imageOnly ? link.text.trim() || null : links.markup(link.href, link.text);
          link = null;
          if (markup !== null) out.inline(markup);
        }
        break;
      case 'img': {
        const alt = attrs.alt ?? attrs.title;
        const s = alt ? `[Image ${images}: ${alt}]` : `[Image ${images}]`;
        images++;
        if (link !== null) link.text += s;
        else out.inline(s);
        break;
      }
      case 'br':
        if (link !== null) link.text += ' ';
        else out.block(1);
        break;
      case 'hr':
        out.block(2);
        out.prefix('* * *');
        out.block(2);
        break;
      case 'h1': case 'h2': case 'h3': case 'h4': case 'h5': case 'h6':
        out.block(2);
        if (!closing) out.prefix('#'.repeat(Number(name[1])) + ' ');
        break;
      case 'ul': case 'ol':
        if (!closing) listStack.push({ ordered: name === 'ol', n: 0 });
        else listStack.pop();
        out.block(listStack.length === 0 ? 2 : 1);
        break;
      case 'li':
        if (!closing) {
          const list = listStack[listStack.length - 1];
          const depth = Math.max(0, listStack.length - 1);
          out.block(1);
          if (list?.ordered === true) out.prefix(`${'  '.repeat(depth)}  ${++list.n}. `);
          else out.prefix(`${'  '.repeat(depth)}  * `);
        } else out.block(1);
        break;
      case 'pre':
        out.block(2);
        pre += closing ? -1 : 1;
        if (pre < 0) pre = 0;
        break;
      case 'blockquote':
        out.block(2);
        break;
      case 'tr':
        out.block(1);
        break;
      case 'td': case 'th':
        if (!closing) out.write(' ', false);
        break;
      case 'dt': case 'dd':
        out.block(1);
        break;
      case 'sup':
        if (!closing) out.inline('^');
        break;
      default:
        if (PARAGRAPH.has(name)) out.block(2);
    }
  }
  let text = out.text().trim();
  text = text.replace(/^\s+$/gm, '').replace(/\n(\s*\n)+/g, '\n\n');
  let finalTitle = title;
  if (finalTitle === undefined || finalTitle === '') finalTitle = docTitle ?? (getDomain(url) || '');
  return { url, title: finalTitle, text, urls: links.urls };
}

// ---------------------------------------------------------------------------------------------
// Markdown and plain text

/**
 * A Markdown document keeps its own text (it reads well as is); links become link markup and
 * images `[Image n: alt]`, so `open` can follow them. Code spans and fences are left alone.
 */
export function markdownToPage(md: string, url: string, title?: string): PageContents {
  const links = new LinkTable(url);
  const src = replaceSpecialChars(md.replace(/\r\n?/g, '\n'));
  // Reference-style definitions: [label]: url
  const refs = new Map<string, string>();
  const body = src.replace(/^ {0,3}\[([^\]]+)\]:\s*<?(\S+?)>?(?:\s+["'(].*["')])?\s*$/gm, (_m, label: string, href: string) => {
    refs.set(label.toLowerCase(), href);
    return '';
  });
  let images = 0;
  const convertInline = (line: string): string => {
    // Split off code spans so their brackets stay literal.
    const parts = line.split(/(`+[^`]*`+)/);
    return parts
      .map((part, i) => {
        if (i % 2 === 1) return part;
        return part
          .replace(/!\[([^\]]*)\]\(([^)\s]*)(?:\s+"[^"]*")?\)/g, (_m, alt: string) => {
            const s = alt ? `[Image ${images}: ${alt}]` : `[Image ${images}]`;
            images++;
            return s;
          })
          .replace(/\[([^\]]+)\]\(<?([^)\s>]*)>?(?:\s+"[^"]*")?\)/g, (m, text: string, href: string) => links.markup(href, text) ?? m)
          .replace(/\[([^\]]+)\]\[([^\]]*)\]/g, (m, text: string, label: string) => {
            const href = refs.get((label || text).toLowerCase());
            return href === undefined ? m : (links.markup(href, text) ?? m);
          })
          .replace(/<((?:https?|ftp):\/\/[^>\s]+)>/g, (m, href: string) => links.markup(href, href) ?? m);
      })
      .join('');
  };
  const lines = joinSoftBreaks(body.split('\n'));
  let fence: string | null = null;
  const outLines: string[] = [];
  for (const line of lines) {
    const f = /^ {0,3}(`{3,}|~{3,})/.exec(line);
    if (f !== null) {
      if (fence === null) fence = f[1]![0]!;
      else if (f[1]![0] === fence) fence = null;
      outLines.push(line);
      continue;
    }
    outLines.push(fence === null ? convertInline(line) : line);
  }
  const text = outLines.join('\n').replace(/\n{3,}/g, '\n\n').trim();
  let finalTitle = title;
  if (finalTitle === undefined || finalTitle === '') {
    const h = /^ {0,3}#{1,6}\s+(.+?)\s*#*\s*$/m.exec(src);
    finalTitle = h !== null ? stripMarkup(h[1]!) : '';
  }
  return { url, title: finalTitle, text, urls: links.urls };
}

const BLOCK_START = /^\s{0,3}(#{1,6}\s|[-*+]\s|\d+[.)]\s|\||>|(`{3,}|~{3,})|([-*_]\s*){3,}$)/;

/**
 * Joins the lines of a paragraph or list item that the author wrapped by hand (Markdown renders
 * them as one line); the browser then wraps them at 80 columns itself. Fenced code is untouched.
 */
function joinSoftBreaks(lines: string[]): string[] {
  const out: string[] = [];
  let fence: string | null = null;
  let open = false; // the last output line is a paragraph or list item that may continue
  for (const line of lines) {
    const f = /^ {0,3}(`{3,}|~{3,})/.exec(line);
    if (fence !== null || f !== null) {
      if (f !== null) fence = fence === null ? f[1]![0]! : f[1]![0] === fence ? null : fence;
      out.push(line);
      open = false;
      continue;
    }
    if (line.trim() === '') {
      out.push(line);
      open = false;
      continue;
    }
    if (open && !BLOCK_START.test(line)) {
      out[out.length - 1] = out[out.length - 1]!.replace(/\s+$/, '') + ' ' + line.trim();
      continue;
    }
    out.push(line);
    open = !/^\s{0,3}(#{1,6}\s|\||([-*_]\s*){3,}$)/.test(line);
  }
  return out;
}

function stripMarkup(s: string): string {
  return s.replace(/\[([^\]]+)\]\([^)]*\)/g, '$1').replace(/[*_`]/g, '').trim();
}

export function textToPage(text: string, url: string, title: string): PageContents {
  return { url, title, text: replaceSpecialChars(text.replace(/\r\n?/g, '\n')).trim(), urls: {} };
}
