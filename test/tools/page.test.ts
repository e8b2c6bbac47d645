// HTML, Markdown and text documents as browser pages, and the per-conversation tool registry.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { htmlToPage, markdownToPage, textToPage, ToolRegistry, type Tool } from '../../src/tools/index.ts';

test('HTML: blocks, headings, lists, entities, images; scripts and styles dropped', () => {
  const p = htmlToPage(
    '<html><head><title>T &amp; C</title><style>p{}</style></head><body><h2>Dose</h2><p>Give 5&nbsp;mg&#47;kg<br>then wait.</p>' +
      '<script>alert(1)</script><ul><li>one</li><li>two <b>bold</b></li></ul><ol><li>first</li><li>second</li></ol>' +
      '<p>x<sup>2</sup> <img src="a.png" alt="chart"> <img src="b.png"></p><pre>  keep   spacing\n  here</pre></body></html>',
    'https://example.org/a/page.html',
  );
  assert.equal(p.title, 'T & C');
  assert.equal(p.text, '## Dose\n\nGive 5 mg/kg\nthen wait.\n\n  * one\n  * two bold\n\n  1. first\n  2. second\n\nx^2 [Image 0: chart] [Image 1]\n\n  keep   spacing\n  here');
});

test('HTML links: ids in order of first use, same-site without domain, anchors and mailto as text', () => {
  const p = htmlToPage(
    '<p><a href="/b">B page</a>, <a href="https://other.net/x">Other † site</a>, <a href="/b">B again</a>, ' +
      '<a href="#top">top</a>, <a href="mailto:a@b.c">mail</a>, <a href="c.html"><img alt="logo"></a></p>',
    'https://example.org/a/page.html',
  );
  assert.equal(p.text, '【0†B page】, 【1†Other ‡ site†other.net】, 【0†B again】, top, mail, [Image 0: logo]');
  assert.deepEqual(p.urls, { 0: 'https://example.org/b', 1: 'https://other.net/x' });
});

test('documents cannot forge link markup', () => {
  const p = textToPage('see 【0†fake】 here', 'local://d/x.txt', 'x');
  assert.equal(p.text, 'see 〖0†fake〗 here');
  assert.deepEqual(p.urls, {});
});

test('Markdown: soft-wrapped paragraphs joined, inline/reference links and images, code left alone', () => {
  const md = [
    '# Title with [link](x.md)',
    '',
    'A paragraph written',
    'over two lines with a [relative link](../other/doc.md "t").',
    '',
    '- item one',
    '  continues here',
    '- item [two][ref]',
    '',
    '```',
    'code [not](a link)',
    '```',
    '',
    'Inline `[code](x)` and ![diagram](d.png) and <https://example.org/page>.',
    '',
    '[ref]: https://example.org/ref',
  ].join('\n');
  const p = markdownToPage(md, 'local://docs/guides/a.md');
  assert.equal(p.title, 'Title with link');
  assert.equal(
    p.text,
    '# Title with 【0†link】\n\nA paragraph written over two lines with a 【1†relative link】.\n\n- item one continues here\n- item 【2†two†example.org】\n\n```\ncode [not](a link)\n```\n\n' +
      'Inline `[code](x)` and [Image 0: diagram] and 【3†https://example.org/page†example.org】.',
  );
  assert.deepEqual(p.urls, { 0: 'local://docs/guides/x.md', 1: 'local://docs/other/doc.md', 2: 'https://example.org/ref', 3: 'https://example.org/page' });
});

test('the registry routes by namespace, sorts namespaces and turns failures into messages', async () => {
  const echo: Tool = {
    name: 'echo',
    namespace: () => ({ name: 'echo', description: 'Echoes.', tools: [] }),
    run: async (call) => ({ content: call.content }),
  };
  const broken: Tool = {
    name: 'broken',
    namespace: () => ({ name: 'broken', tools: [] }),
    run: async () => {
      throw new Error('disk on fire\nstack...');
    },
  };
  const reg = new ToolRegistry([echo, broken]);
  assert.deepEqual(reg.namespaces().map((n) => n.name), ['broken', 'echo']);
  assert.equal(reg.route('echo.say'), echo);
  assert.deepEqual(await reg.run({ recipient: 'echo.say', content: 'hi' }), { content: 'hi' });
  assert.deepEqual(await reg.run({ recipient: 'broken', content: '' }), { content: 'Error: broken failed: disk on fire', error: 'Error: broken failed: disk on fire' });
  const unknown = await reg.run({ recipient: 'shell.exec', content: 'ls' });
  assert.equal(unknown.content, 'Error: unknown tool "shell.exec". Available tools: echo, broken.');
  assert.equal(unknown.error, unknown.content);
});
