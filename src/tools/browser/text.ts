// Text utilities of the browser display, matching the reference browser character for character:
// Python's textwrap at 80 columns (whitespace kept), `L{n}: ` numbering, link markup stripping,
// truncation of long strings, and the domain of a URL.

/** Python's `str.expandtabs(8)`. */
function expandTabs(s: string, tabsize = 8): string {
  if (!s.includes('\t')) return s;
  let out = '';
  let col = 0;
  for (const ch of s) {
    if (ch === '\t') {
      const n = tabsize - (col % tabsize);
      out += ' '.repeat(n);
      col += n;
    } else if (ch === '\n' || ch === '\r') {
      out += ch;
      col = 0;
    } else {
      out += ch;
      col += 1;
    }
  }
  return out;
}

// textwrap.TextWrapper.wordsep_re, with Python's Unicode \w and [^\d\W] spelled out.
const WS = '[\\t\\n\\x0b\\x0c\\r ]';
const NWS = '[^\\t\\n\\x0b\\x0c\\r ]';
const WORD_PUNCT = '[\\p{L}\\p{N}_!"\'&.,?]';
const LETTER = '[\\p{L}\\p{Nl}\\p{No}_]';
const WORDSEP = new RegExp(
  `(${WS}+` +
    `|(?<=${WORD_PUNCT})-{2,}(?=[\\p{L}\\p{N}_])` +
    `|${NWS}+?(?:-(?:(?<=${LETTER}{2}-)|(?<=${LETTER}-${LETTER}-))(?=${LETTER}-?${LETTER})|(?=${WS}|$)|(?<=${WORD_PUNCT})(?=-{2,}[\\p{L}\\p{N}_])))`,
  'u',
);

/** Length in code points, as Python's len(). */
function plen(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

function psliceEnd(s: string, end: number): [string, string] {
  const cps = Array.from(s);
  return [cps.slice(0, end).join(''), cps.slice(end).join('')];
}

/** `textwrap.wrap(line, width, replace_whitespace=False, drop_whitespace=False)` for one line. */
export function wrapLine(line: string, width = 80): string[] {
  const chunks = expandTabs(line)
    .split(WORDSEP)
    .filter((c) => c !== undefined && c !== '');
  chunks.reverse();
  const lines: string[] = [];
  while (chunks.length > 0) {
    const cur: string[] = [];
    let curLen = 0;
    while (chunks.length > 0) {
      const l = plen(chunks[chunks.length - 1]!);
      if (curLen + l <= width) {
        cur.push(chunks.pop()!);
        curLen += l;
      } else break;
    }
    if (chunks.length > 0 && plen(chunks[chunks.length - 1]!) > width) {
      // _handle_long_word with break_long_words and break_on_hyphens.
      const spaceLeft = width < 1 ? 1 : width - curLen;
      const chunk = chunks[chunks.length - 1]!;
      let end = spaceLeft;
      if (plen(chunk) > spaceLeft) {
        const cps = Array.from(chunk);
        const hyphen = cps.slice(0, spaceLeft).lastIndexOf('-');
        if (hyphen > 0 && cps.slice(0, hyphen).some((c) => c !== '-')) end = hyphen + 1;
      }
      const [head, rest] = psliceEnd(chunk, end);
      cur.push(head);
      chunks[chunks.length - 1] = rest;
      if (rest === '') chunks.pop();
    }
    if (cur.length > 0) lines.push(cur.join(''));
  }
  return lines;
}

/** The reference's `wrap_lines`: split on newlines, wrap each at `width`, keep empty lines. */
export function wrapLines(text: string, width = 80): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    if (line === '') out.push('');
    else out.push(...wrapLine(line, width));
  }
  return out;
}

export function joinLines(lines: readonly string[], addLineNumbers = false, offset = 0): string {
  if (!addLineNumbers) return lines.join('\n');
  return lines.map((l, i) => `L${i + offset}: ${l}`).join('\n');
}

const PARTIAL_INITIAL_LINK = /^[^【】]*】/;
const PARTIAL_FINAL_LINK = /【\d*(?:†([^†】]*)(?:†[^†】]*)?)?$/;
const LINK = /【\d+†([^†】]+)(?:†[^†】]+)?】/g;

/** Replaces `【id†text(†domain)?】` link markup (and link pieces cut at the ends) by the link text. */
export function stripLinks(text: string): string {
  let t = text.replace(PARTIAL_INITIAL_LINK, '');
  t = t.replace(PARTIAL_FINAL_LINK, (_m, content: string | undefined) => content ?? '');
  return t.replace(LINK, (_m, content: string) => content);
}

/** The reference's `maybe_truncate`: at most `n` characters, ending in "..." when cut. */
export function maybeTruncate(text: string, n = 1024): string {
  return text.length > n ? text.slice(0, n - 3) + '...' : text;
}

/** Host part of a URL ('' when there is none), as `urlparse(url).netloc`. */
export function getDomain(url: string): string {
  const m = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/([^/?#]*)/.exec(url.includes('://') ? url : 'http://' + url);
  return m?.[1] ?? '';
}

/** Brackets used by link markup are replaced in document text so that documents cannot forge links. */
export function replaceSpecialChars(text: string): string {
  return text.replace(/[【】◼\u200b]/g, (c) => (c === '【' ? '〖' : c === '】' ? '〗' : c === '◼' ? '◾' : ''));
}

/** Python's `urllib.parse.unquote` (invalid escapes are kept). */
export function unquote(s: string): string {
  return s.replace(/(%[0-9a-fA-F]{2})+/g, (m) => {
    try {
      return decodeURIComponent(m);
    } catch {
      return m;
    }
  });
}
