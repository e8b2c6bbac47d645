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

/**
 * `textwrap.wrap(line, width, replace_whitespace=False, drop_whitespace=False)` for one line.
 * Linear in the line's length: chunks are taken from the front by index, and a word longer than
 * the width is cut through an offset into its code points, never by re-slicing what is left of it.
 */
export function wrapLine(line: string, width = 80): string[] {
  const chunks = expandTabs(line)
    .split(WORDSEP)
    .filter((c) => c !== undefined && c !== '');
  const lengths = chunks.map(plen);
  let next = 0; // the first chunk not yet placed
  let cut: string[] | undefined; // code points of chunks[next] once it is being cut
  let taken = 0; // code points of chunks[next] already placed
  const advance = (): void => {
    next++;
    cut = undefined;
    taken = 0;
  };
  const lines: string[] = [];
  while (next < chunks.length) {
    const cur: string[] = [];
    let curLen = 0;
    while (next < chunks.length) {
      const l = lengths[next]! - taken;
      if (curLen + l > width) break;
      cur.push(cut === undefined ? chunks[next]! : cut.slice(taken).join(''));
      curLen += l;
      advance();
    }
    if (next < chunks.length && lengths[next]! - taken > width) {
      // _handle_long_word with break_long_words and break_on_hyphens.
      const spaceLeft = width < 1 ? 1 : width - curLen;
      cut ??= Array.from(chunks[next]!);
      let end = spaceLeft;
      if (lengths[next]! - taken > spaceLeft) {
        // chunk.rfind('-', 0, space_left), then any(c != '-' for c in chunk[:hyphen])
        let hyphen = -1;
        for (let k = spaceLeft - 1; k >= 0; k--) {
          if (cut[taken + k] === '-') {
            hyphen = k;
            break;
          }
        }
        if (hyphen > 0) {
          for (let k = 0; k < hyphen; k++) {
            if (cut[taken + k] !== '-') {
              end = hyphen + 1;
              break;
            }
          }
        }
      }
      cur.push(cut.slice(taken, taken + end).join(''));
      taken += end;
      if (taken >= lengths[next]!) advance();
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
