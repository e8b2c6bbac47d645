// A small Markdown subset rendered by building DOM nodes: paragraphs, headings, lists, fenced code,
// inline code, bold, italic and links. Text only ever reaches the page through text nodes, so HTML
// or script written by the model or a tool is shown as text and never runs. Links become anchors
// only for http(s) targets; any other target (a local document's path and lines) is shown as a
// citation label naming it.

const INLINE = /`([^`\n]+)`|\*\*([^*\n]+)\*\*|\[((?:\\.|[^\]\\\n])*)\]\(([^()\s]+)\)|(?<![\w*])\*([^*\s][^*\n]*?)\*(?![\w*])|(https?:\/\/[^\s<>()]+[^\s<>().,;:!?'"])/g;

/** Appends `text` with inline markup to `parent`. */
function renderInline(doc, parent, text) {
  let last = 0;
  for (const m of text.matchAll(INLINE)) {
    if (m.index > last) parent.append(doc.createTextNode(text.slice(last, m.index)));
    last = m.index + m[0].length;
    if (m[1] !== undefined) {
      const code = doc.createElement('code');
      code.textContent = m[1];
      parent.append(code);
    } else if (m[2] !== undefined) {
      const strong = doc.createElement('strong');
      renderInline(doc, strong, m[2]);
      parent.append(strong);
    } else if (m[4] !== undefined) {
      parent.append(link(doc, m[3].replace(/\\([[\]\\])/g, '$1'), decodeTarget(m[4])));
    } else if (m[5] !== undefined) {
      const em = doc.createElement('em');
      renderInline(doc, em, m[5]);
      parent.append(em);
    } else {
      parent.append(link(doc, m[6], m[6]));
    }
  }
  if (last < text.length) parent.append(doc.createTextNode(text.slice(last)));
}

function decodeTarget(target) {
  try {
    return decodeURIComponent(target);
  } catch {
    return target;
  }
}

/** An anchor for a web address, else a labelled citation of a document that is not on the web. */
function link(doc, label, target) {
  let url;
  try {
    url = new URL(target);
  } catch {
    url = undefined;
  }
  if (url !== undefined && (url.protocol === 'https:' || url.protocol === 'http:')) {
    const a = doc.createElement('a');
    a.href = url.href;
    a.textContent = label;
    a.target = '_blank';
    a.rel = 'noopener noreferrer';
    return a;
  }
  const cite = doc.createElement('cite');
  cite.className = 'source';
  cite.textContent = label;
  cite.title = target;
  const where = doc.createElement('span');
  where.className = 'where';
  where.textContent = ` ${target}`;
  cite.append(where);
  return cite;
}

/** Renders `text` as block elements appended to `parent` (which is emptied first). */
export function renderMarkdown(doc, parent, text) {
  parent.replaceChildren();
  const lines = text.replace(/\r\n?/g, '\n').split('\n');
  let paragraph = [];
  let list = null;
  const flushParagraph = () => {
    if (paragraph.length === 0) return;
    const p = doc.createElement('p');
    paragraph.forEach((line, i) => {
      if (i > 0) p.append(doc.createElement('br'));
      renderInline(doc, p, line);
    });
    parent.append(p);
    paragraph = [];
  };
  const endList = () => {
    list = null;
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const fence = /^\s*(```+|~~~+)\s*([\w+-]*)\s*$/.exec(line);
    if (fence !== null) {
      flushParagraph();
      endList();
      const body = [];
      i++;
      while (i < lines.length && !lines[i].trim().startsWith(fence[1])) body.push(lines[i++]);
      const pre = doc.createElement('pre');
      const code = doc.createElement('code');
      if (fence[2] !== '') code.dataset.lang = fence[2];
      code.textContent = body.join('\n');
      pre.append(code);
      parent.append(pre);
      continue;
    }
    const heading = /^(#{1,6})\s+(.*)$/.exec(line);
    if (heading !== null) {
      flushParagraph();
      endList();
      // Answers sit under the page's own headings: start at h3.
      const h = doc.createElement(`h${Math.min(6, heading[1].length + 2)}`);
      renderInline(doc, h, heading[2]);
      parent.append(h);
      continue;
    }
    const item = /^\s*(?:([-*+])|(\d+)[.)])\s+(.*)$/.exec(line);
    if (item !== null) {
      flushParagraph();
      const tag = item[1] !== undefined ? 'ul' : 'ol';
      if (list === null || list.tagName.toLowerCase() !== tag) {
        list = doc.createElement(tag);
        if (tag === 'ol' && item[2] !== '1') list.start = Number(item[2]);
        parent.append(list);
      }
      const li = doc.createElement('li');
      renderInline(doc, li, item[3]);
      list.append(li);
      continue;
    }
    if (line.trim() === '') {
      flushParagraph();
      endList();
      continue;
    }
    if (list !== null && /^\s+\S/.test(line)) {
      // A continuation line of the last list item.
      const li = list.lastElementChild;
      li.append(doc.createTextNode(' '));
      renderInline(doc, li, line.trim());
      continue;
    }
    endList();
    paragraph.push(line);
  }
  flushParagraph();
}
