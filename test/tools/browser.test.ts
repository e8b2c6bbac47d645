// The browser tool over the sample collection: the reference display format, page stack and
// cursors, link ids, find, scrolling, caching, errors as tool messages, and the namespace text;
// over throwaway folders: a 1 MB single-line file, background indexing and skipped files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BrowserSession, LocalDocsBackend, joinLines, wrapLines, type BrowserBackend, type PageContents } from '../../src/tools/index.ts';
import { getTokenizer } from '../../src/tokenizer/index.ts';
import { message, renderConversationForCompletion, systemContent, tokensToText, withTools, conversation } from '../../src/harmony/index.ts';

const DOCS = fileURLToPath(new URL('../fixtures/docs', import.meta.url));
const backend = await LocalDocsBackend.open(DOCS);

async function call(s: BrowserSession, fn: string, args: object | string): Promise<{ content: string; error?: string; author?: string }> {
  return s.run({ recipient: `browser.${fn}`, content: typeof args === 'string' ? args : JSON.stringify(args), channel: 'analysis' });
}

/** Parses a display into its parts (and checks the layout while doing so). */
function display(text: string): { cursor: number; title: string; url: string | undefined; from: number; to: number; total: number; lines: Map<number, string> } {
  const m = /^\[(\d+)\] (.*?)(?: \((\S*)\))?\n\*\*viewing lines \[(\d+) - (\d+)\] of (\d+)\*\*\n\n([\s\S]*)$/.exec(text);
  assert.ok(m, `not a browser display:\n${text}`);
  const lines = new Map<number, string>();
  for (const l of m[7]!.split('\n')) {
    const lm = /^L(\d+): (.*)$/.exec(l);
    assert.ok(lm, `bad line ${JSON.stringify(l)}`);
    lines.set(Number(lm[1]), lm[2]!);
  }
  return { cursor: Number(m[1]), title: m[2]!, url: m[3], from: Number(m[4]), to: Number(m[5]), total: Number(m[6]), lines };
}

test('the collection is indexed with local:// URLs named after the folder', () => {
  assert.equal(backend.name, 'docs');
  assert.deepEqual(backend.paths.sort(), ['README.md', 'guidelines/sepsis-early-management.md', 'notes/freezer-inventory.txt', 'protocols/qpcr-setup.md', 'safety/reagent-handling.html']);
  assert.equal(backend.urlOf('guidelines/sepsis-early-management.md'), 'local://docs/guidelines/sepsis-early-management.md');
});

test('search shows a results page at cursor 0 with one link per hit, best hit first', async () => {
  const s = new BrowserSession(backend);
  const out = await call(s, 'search', { query: 'blood cultures lactate antibiotics' });
  assert.equal(out.error, undefined);
  assert.equal(out.author, 'browser.search');
  const d = display(out.content);
  assert.equal(d.cursor, 0);
  assert.equal(d.title, 'blood cultures lactate antibiotics');
  assert.equal(d.url, undefined); // a results page has no URL, as in the reference
  assert.equal(d.lines.get(1), 'URL: ');
  assert.equal(d.lines.get(2), '# Search Results');
  assert.match(d.lines.get(4)!, /^ {2}\* 【0†Early management of suspected sepsis in adults†docs】 /);
  assert.equal(d.from, 0);
  assert.equal(d.to, d.total);
});

test('open follows a result to the matching passage; scrolling and num_lines select the window', async () => {
  const s = new BrowserSession(backend);
  await call(s, 'search', { query: 'vasopressors critical care outreach' });
  const opened = display((await call(s, 'open', { id: 0 })).content);
  assert.equal(opened.cursor, 1);
  assert.equal(opened.title, 'Early management of suspected sepsis in adults');
  assert.equal(opened.url, 'local://docs/guidelines/sepsis-early-management.md');
  // Positioned 4 lines above the best passage (reference: snippet line - 4).
  const passage = [...opened.lines.values()].slice(0, 8).join(' ');
  assert.match(passage, /critical care outreach/);
  assert.ok(opened.from > 0);
  const page = backend.urlOf('guidelines/sepsis-early-management.md');
  const lines = wrapLines((await backend.fetch(page)).text);
  assert.equal(opened.total, lines.length - 1);
  for (const [n, text] of opened.lines) assert.equal(text, lines[n]);

  const scrolled = display((await call(s, 'open', { loc: 10, num_lines: 5 })).content);
  assert.equal(scrolled.cursor, 2);
  assert.deepEqual([scrolled.from, scrolled.to], [10, 14]);
  assert.deepEqual([...scrolled.lines.keys()], [10, 11, 12, 13, 14]);

  const again = display((await call(s, 'open', { cursor: 0, id: 0, loc: 0, num_lines: 3 })).content);
  assert.deepEqual([again.cursor, again.from, again.to], [3, 0, 2]);
  assert.deepEqual(s.pageStack, ['', page, page, page]);
});

test('the default window ends at the line holding the 1024th token', async () => {
  const url = backend.urlOf('guidelines/sepsis-early-management.md');
  const lines = wrapLines((await backend.fetch(url)).text);
  const tok = getTokenizer();
  for (const viewTokens of [1024, 200]) {
    const s = new BrowserSession(backend, { viewTokens });
    const d = display((await call(s, 'open', { id: url })).content);
    assert.equal(d.from, 0);
    assert.ok(d.to < d.total, 'the guideline is longer than one window');
    const tokens = (n: number): number => tok.encodeOrdinary(joinLines(lines.slice(0, n), true, 0)).length;
    assert.ok(tokens(d.to) <= viewTokens, `lines before the last hold ${tokens(d.to)} tokens`);
    assert.ok(tokens(d.to + 1) > viewTokens, `shown lines hold ${tokens(d.to + 1)} tokens`);
  }
  const short = display((await call(new BrowserSession(backend), 'open', { id: backend.urlOf('notes/freezer-inventory.txt') })).content);
  assert.equal(short.to, short.total); // a short page is shown whole
});

test('links in documents get ids; same-collection links have no domain, external ones do', async () => {
  const s = new BrowserSession(backend);
  const out = (await call(s, 'open', { id: backend.urlOf('protocols/qpcr-setup.md') })).content;
  assert.match(out, /【0†reagent handling rules】/);
  assert.match(out, /【1†freezer inventory】/);
  assert.match(out, /【2†manufacturer's guide†example\.org】/);
  const followed = display((await call(s, 'open', { id: 0 })).content);
  assert.equal(followed.title, 'Reagent handling and spills');
  assert.equal(followed.url, 'local://docs/safety/reagent-handling.html');
  const text = [...followed.lines.values()].join('\n');
  assert.match(text, /^# Reagent handling and spills$/m);
  assert.match(text, /^ {2}\* Keep stock solutions in amber tubes & away from light\.$/m);
  assert.match(text, /^ {2}2\. Cover the spill with absorbent pads from the spill kit\.$/m);
  assert.doesNotMatch(text, /console\.log|font-family/);
  // A link id sent as a string still works when the page has it.
  const back = display((await call(s, 'open', { id: '0' })).content);
  assert.equal(back.title, 'qPCR setup protocol (Halvorsen lab, fictional)');
});

test('find lists case-insensitive matches with 4 lines each; opening a match lands near it', async () => {
  const s = new BrowserSession(backend);
  await call(s, 'open', { id: backend.urlOf('guidelines/sepsis-early-management.md') });
  const out = await call(s, 'find', { pattern: 'LACTATE' });
  const d = display(out.content);
  assert.equal(d.cursor, 1);
  assert.equal(d.title, 'Find results for text: `lactate` in `Early management of suspected sepsis in adults`');
  assert.equal(d.url, 'local://docs/guidelines/sepsis-early-management.md/find?pattern=lactate');
  const body = [...d.lines.values()].join('\n');
  const hits = [...body.matchAll(/# 【(\d+)†match at L(\d+)】/g)];
  assert.ok(hits.length >= 3);
  const pageLines = wrapLines((await backend.fetch(backend.urlOf('guidelines/sepsis-early-management.md'))).text);
  for (const h of hits) assert.match(pageLines[Number(h[2])]!.toLowerCase(), /lactate/);
  const opened = display((await call(s, 'open', { id: 1 })).content);
  assert.equal(opened.from, Number(hits[1]![2]) - 4);
  const none = await call(s, 'find', { pattern: 'zebrafish', cursor: 0 });
  assert.match(none.content, /No `find` results for pattern: `zebrafish`/);
  const onFind = await call(s, 'find', { pattern: 'x', cursor: 3 });
  assert.equal(onFind.content, 'Cannot run `find` on search results page or find results page');
});

test('opened pages are cached per session; a URL given by the model is fetched again', async () => {
  let fetches = 0;
  const counting: BrowserBackend = {
    source: backend.source,
    search: (q, n) => backend.search(q, n),
    fetch: async (url): Promise<PageContents> => {
      fetches++;
      return backend.fetch(url);
    },
  };
  const s = new BrowserSession(counting);
  await call(s, 'search', { query: 'freezer inventory' });
  await call(s, 'open', { id: 0 });
  await call(s, 'open', { id: 0, cursor: 0 });
  assert.equal(fetches, 1);
  await call(s, 'open', { id: backend.urlOf('notes/freezer-inventory.txt') });
  assert.equal(fetches, 2);
  const other = new BrowserSession(counting);
  await call(other, 'search', { query: 'freezer inventory' });
  await call(other, 'open', { id: 0 });
  assert.equal(fetches, 3);
});

test('view_source shows the raw file', async () => {
  const s = new BrowserSession(backend);
  const d = display((await call(s, 'open', { id: backend.urlOf('safety/reagent-handling.html'), view_source: true })).content);
  assert.equal(d.url, 'view-source:local://docs/safety/reagent-handling.html');
  assert.equal(d.lines.get(0), '<!DOCTYPE html>');
});

test('mistakes come back as messages the model can read', async () => {
  const s = new BrowserSession(backend);
  assert.equal((await call(s, 'open', { id: 1 })).content, 'No pages to access!');
  assert.equal((await call(s, 'search', '{not json')).content, '{"error": "Invalid function arguments"}');
  assert.equal((await call(s, 'search', '[1, 2]')).content, '{"error": "Invalid function arguments"}');
  const bad = await s.run({ recipient: 'browser.click', content: '{}' });
  assert.equal(bad.content, '{"error": "Unknown function: click"}');
  assert.equal(bad.author, 'browser.click');
  await call(s, 'search', { query: 'spill' });
  assert.equal((await call(s, 'open', { id: 42 })).content, 'Invalid link id `42`.');
  assert.equal((await call(s, 'open', { cursor: 7 })).content, 'Cursor `7` is out of range. Available cursor indices: [0 - 0].');
  const far = await call(s, 'open', { loc: 9999 });
  assert.match(far.content, /^Invalid location parameter: `9999`\. Cannot exceed page maximum of \d+\.$/);
  assert.deepEqual(s.pageStack, ['']); // the failed view was popped
  const missing = await call(s, 'open', { id: 'local://docs/nope.md' });
  assert.match(missing.content, /^Error fetching URL `local:\/\/docs\/nope\.md`: no document/);
  const web = await call(s, 'open', { id: 'https://example.org/' });
  assert.match(web.content, /the web is not reachable/);
  const traversal = await call(s, 'open', { id: 'local://docs/../../../etc/passwd' });
  assert.match(traversal.content, /^Error fetching URL/);
  assert.match((await call(s, 'search', { query: 3 })).content, /needs a `query` string/);
  assert.match((await call(s, 'open', { idx: 3 })).content, /Unexpected argument `idx`/);
  for (const r of [far, missing, web]) assert.ok(r.error !== undefined);
});

test('the namespace is the official browser description with the collection as source', () => {
  const s = new BrowserSession(backend);
  const ns = s.namespace();
  assert.match(ns.description!, /\nsources=docs \(default: docs\)$/);
  // With a "web" source the rendered system message is byte for byte the harmony test vector.
  const web = new BrowserSession({ ...backend, source: 'web', search: backend.search.bind(backend), fetch: backend.fetch.bind(backend) });
  const sys = withTools(systemContent({ conversationStartDate: null }), web.namespace());
  const rendered = tokensToText(renderConversationForCompletion(conversation([message.system(sys)]), 'assistant'));
  const expected = readFileSync(new URL('../fixtures/harmony/test_browser_tool_only.txt', import.meta.url), 'utf8');
  const expectedTools = expected.slice(expected.indexOf('# Tools'), expected.indexOf('} // namespace browser'));
  assert.ok(expectedTools.length > 500);
  assert.ok(rendered.includes(expectedTools), 'browser namespace differs from the harmony vector');
});

test('search ranks the document that answers the query first', async () => {
  const cases: [string, string][] = [
    ['primer dimers melt curve', 'qPCR setup protocol (Halvorsen lab, fictional)'],
    ['vasopressors outreach team', 'Early management of suspected sepsis in adults'],
    ['absorbent pads spill kit', 'Reagent handling and spills'],
    ['reverse transcription kit lot', 'Freezer inventory - minus 20 freezer B (fictional)'],
  ];
  for (const [query, title] of cases) {
    const page = await backend.search(query, 5);
    assert.match(page.text, new RegExp(`^  \\* 【0†${title.replace(/[()]/g, '\\$&')}†docs】`, 'm'), query);
  }
});

test('a session can be saved as JSON and continued', async () => {
  const s = new BrowserSession(backend);
  await call(s, 'search', { query: 'freezer' });
  await call(s, 'open', { id: 0 });
  const saved = JSON.parse(JSON.stringify(s.state())) as ReturnType<BrowserSession['state']>;
  const resumed = BrowserSession.restore(backend, saved);
  assert.deepEqual(resumed.pageStack, s.pageStack);
  const d = display((await call(resumed, 'open', { cursor: 0, id: 0, loc: 0 })).content);
  assert.equal(d.cursor, 2);
  assert.equal(d.url, 'local://docs/notes/freezer-inventory.txt');
});

test('a missing document folder and a file given as the folder are one-line input errors', async () => {
  const { UserError } = await import('../../src/errors.ts');
  await assert.rejects(LocalDocsBackend.open(`${DOCS}/no-such-folder`), (e: unknown) => e instanceof UserError && e.kind === 'input' && /^document folder not found: .*no-such-folder$/.test(e.message));
  const file = `${DOCS}/README.md`;
  await assert.rejects(LocalDocsBackend.open(file), (e: unknown) => e instanceof UserError && e.kind === 'input' && e.message === `${file} is a file, not a document folder`);
});

/** A throwaway document folder with the given files. */
function folder(files: Record<string, string | Buffer>): string {
  const dir = mkdtempSync(join(tmpdir(), 'gptoss-docs-'));
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
  return dir;
}

test('a 1 MB single-line file opens, wrapped into 80-column lines to its last character', async () => {
  const dir = folder({ 'one-line.txt': 'a'.repeat(999_999) + 'Z' });
  try {
    const big = await LocalDocsBackend.open(dir, { name: 'big' });
    const s = new BrowserSession(big);
    const first = display((await call(s, 'open', { id: 'local://big/one-line.txt' })).content);
    assert.equal(first.title, 'one-line');
    assert.equal(first.lines.get(1), 'URL: local://big/one-line.txt');
    assert.equal(first.lines.get(2), 'a'.repeat(80));
    // "", "URL: ..." then 12,500 lines of 80 characters: the last is L12501.
    assert.equal(first.total, 12_501);
    const last = display((await call(s, 'open', { loc: 12_500, num_lines: 2 })).content);
    assert.equal(last.lines.get(12_500), 'a'.repeat(80));
    assert.equal(last.lines.get(12_501), 'a'.repeat(79) + 'Z');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('open returns before indexing; skipped files are reported with their reason, also to the model', async () => {
  const dir = folder({
    'guide.md': '# Spill response\n\nCover the spill with absorbent pads.\n',
    'huge.md': '# Huge\n\n' + 'word '.repeat(2000),
    'scan.txt': Buffer.from([0x25, 0x50, 0x44, 0x46, 0x00, 0x01, 0x02]),
  });
  try {
    const col = await LocalDocsBackend.open(dir, { name: 'col', maxFileBytes: 4096 });
    // Only the listing happened: no file has been read yet, and the size limit is known already.
    assert.equal(col.ready, false);
    assert.deepEqual(col.skipped, [{ path: 'huge.md', reason: '9.8 KiB, over the 4 KiB limit' }]);
    await col.indexed;
    assert.equal(col.ready, true);
    assert.deepEqual(col.skipped, [
      { path: 'huge.md', reason: '9.8 KiB, over the 4 KiB limit' },
      { path: 'scan.txt', reason: 'binary (contains NUL bytes)' },
    ]);
    assert.deepEqual(col.paths, ['guide.md']);
    const s = new BrowserSession(col);
    const found = display((await call(s, 'search', { query: 'absorbent pads' })).content);
    assert.match(found.lines.get(4)!, /^ {2}\* 【0†Spill response†col】 /);
    const huge = await call(s, 'open', { id: 'local://col/huge.md' });
    assert.match(huge.content, /local:\/\/col\/huge\.md was left out of the collection: 9\.8 KiB, over the 4 KiB limit/);
    assert.notEqual(huge.error, undefined);
    const scan = await call(s, 'open', { id: 'local://col/scan.txt' });
    assert.match(scan.content, /local:\/\/col\/scan\.txt was left out of the collection: binary \(contains NUL bytes\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
