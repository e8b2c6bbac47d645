// The chat page at `/` in a real headless Chromium (the system's, driven by playwright-core): typing
// and sending, the streamed answer, reasoning, python and browser tool calls with their results,
// citations, safe rendering of HTML in model output, effort, stop, copy, export, the API key prompt,
// persistence across reloads and phone width. The server runs scripted harmony completions.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { DelegatingEngine, type Engine, type StepRequest } from '../../src/engine/engine.ts';
import type { ServerOptions } from '../../src/server/index.ts';
import { PromptEngine, startServer } from './helpers.ts';

// Functions handed to page.evaluate/waitForFunction run in the page; the project compiles without
// the DOM library, so its globals are declared loosely here for this file only.
declare const document: any, window: any, navigator: any, localStorage: any;

const CHROMIUM = process.env['GPTOSS_CHROMIUM'] ?? '/usr/bin/chromium';
const REQUIRED = process.env['GPTOSS_REQUIRE_CHROMIUM'] === '1';
const skip = existsSync(CHROMIUM) || REQUIRED ? false : `no Chromium at ${CHROMIUM} (install Debian's chromium or set GPTOSS_CHROMIUM; GPTOSS_REQUIRE_CHROMIUM=1 makes this a failure)`;

const start = (engine: Engine, options: Partial<ServerOptions> = {}) => startServer(engine, { batching: { maxBatchTokens: 1 << 20, prefillChunk: 1 << 20 }, ...options });

const REASONED = (reasoning: string, answer: string): string =>
  `<|channel|>analysis<|message|>${reasoning}<|end|><|start|>assistant<|channel|>final<|message|>${answer}<|return|>`;

function lastUser(prompt: string): string {
  const at = prompt.lastIndexOf('<|start|>user<|message|>');
  return at < 0 ? '' : prompt.slice(at + '<|start|>user<|message|>'.length, prompt.indexOf('<|end|>', at));
}

let browser: Browser | undefined;
async function openPage(url: string, viewport = { width: 1000, height: 760 }): Promise<{ context: BrowserContext; page: Page; errors: string[]; requests: string[] }> {
  if (!existsSync(CHROMIUM)) throw new Error(`GPTOSS_REQUIRE_CHROMIUM=1 but there is no Chromium at ${CHROMIUM}`);
  browser ??= await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const context = await browser.newContext({ viewport, acceptDownloads: true });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: url });
  const page = await context.newPage();
  const errors: string[] = [];
  const requests: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('request', (r) => requests.push(r.url()));
  await page.goto(`${url}/`);
  await page.waitForSelector('body[data-ready="true"]');
  return { context, page, errors, requests };
}
after(async () => {
  await browser?.close();
});

/** Types `text` into the message box and sends it with Enter. */
async function ask(page: Page, text: string): Promise<void> {
  await page.locator('#prompt').fill(text);
  await page.locator('#prompt').press('Enter');
}

/** Waits until the last assistant turn has finished (its footer no longer says Generating). */
async function answered(page: Page): Promise<void> {
  await page.waitForFunction(() => {
    const turns = document.querySelectorAll('.turn.assistant');
    const last = turns[turns.length - 1];
    return last !== undefined && last.querySelector('.turn-footer')?.textContent?.includes('Generating') === false && document.querySelector('#send:not([hidden])') !== null;
  });
}

test('web page: files with their content types and a strict CSP, /config.json, nothing inline or external', async () => {
  const s = await start(new PromptEngine(() => REASONED('x', 'y')), { tools: { python: () => ({ name: 'python', namespace: () => ({ name: 'python', description: '', tools: [] }), run: async () => ({ content: '' }) }) } });
  try {
    const root = await fetch(`${s.running.url}/`);
    assert.equal(root.status, 200);
    assert.equal(root.headers.get('content-type'), 'text/html; charset=utf-8');
    const csp = root.headers.get('content-security-policy') ?? '';
    assert.match(csp, /default-src 'self'/);
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|https?:|\*/);
    assert.equal(root.headers.get('x-content-type-options'), 'nosniff');
    const html = await root.text();
    // Every script has a src on this server; no inline handlers or styles (the CSP would block them).
    for (const m of html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)) {
      assert.match(m[1]!, /src="\/[\w.-]+\.js"/);
      assert.equal(m[2]!.trim(), '');
    }
    assert.doesNotMatch(html, /\son\w+=|\sstyle=|https?:\/\//);
    for (const [path, type] of [['/app.js', 'text/javascript'], ['/markdown.js', 'text/javascript'], ['/stream.js', 'text/javascript'], ['/style.css', 'text/css'], ['/favicon.svg', 'image/svg+xml']] as const) {
      const r = await fetch(`${s.running.url}${path}`);
      assert.equal(r.status, 200, path);
      assert.ok(r.headers.get('content-type')?.startsWith(type), `${path}: ${r.headers.get('content-type')}`);
      const text = await r.text();
      // No fonts, CDNs or other hosts: no absolute URL other than the SVG namespace.
      assert.doesNotMatch(text.replaceAll('http://www.w3.org/2000/svg', ''), /(src|href|url|import|fetch)\W+https?:/i, path);
    }
    assert.equal((await fetch(`${s.running.url}/nope.js`)).status, 404);
    assert.deepEqual(await (await fetch(`${s.running.url}/config.json`)).json(), { model: 'prompt-engine', tools: ['python'], default_effort: 'medium' });
  } finally {
    await s.close();
  }
});

test('web page: a question, the streamed answer, reasoning, python and browser calls, citations, safe rendering, effort, copy, export, reload, phone width', { skip }, async (t) => {
  const docs = mkdtempSync(join(tmpdir(), 'gptoss-webdocs-'));
  writeFileSync(join(docs, 'tides.md'), '# Tides\n\nThe tide in Brest rises 7 metres.\n');
  const { BrowserSession, LocalDocsBackend } = await import('../../src/tools/index.ts');
  const backend = await LocalDocsBackend.open(docs);
  const pythonRuns: string[] = [];
  const python = {
    name: 'python',
    namespace: () => ({ name: 'python', description: 'Run python code.', tools: [] }),
    run: async (call: { content: string }) => {
      pythonRuns.push(call.content);
      return { content: '42\n' };
    },
  };
  const ANSWER = [
    'The answer is **42**, computed with `print(6*7)`.',
    '',
    '- checked by *python*: 6*7 = 42, 8*9 = 72',
    '- more at [the multiplication table](https://example.org/times), not [this](javascript:window.pwned=3)',
    '',
    'Raw HTML stays text: <img src=x onerror="window.pwned=1"> <script>window.pwned=2</script>',
  ].join('\n');
  const engine = new PromptEngine((p) => {
    if (lastUser(p).includes('tide')) {
      if (p.includes('<|start|>browser.open to=assistant')) return REASONED('The page says 7 metres.', 'The tide rises seven metres【1†L1-L2】.');
      if (p.includes('<|start|>browser.search to=assistant')) {
        return '<|channel|>analysis<|message|>Open the first hit.<|end|><|start|>assistant<|channel|>analysis to=browser.open code<|message|>{"id": 0, "cursor": 0}<|call|>';
      }
      return '<|channel|>analysis<|message|>Search the docs.<|end|><|start|>assistant<|channel|>analysis to=browser.search code<|message|>{"query": "tide Brest"}<|call|>';
    }
    if (p.includes('<|start|>python to=assistant')) return REASONED('The script printed 42.', ANSWER);
    return '<|channel|>analysis<|message|>I will compute 6*7 with python.<|end|><|start|>assistant<|channel|>analysis to=python code<|message|>print(6*7)<|call|>';
  });
  const s = await start(engine, { tools: { python: () => python, browser: () => new BrowserSession(backend) } });
  const { context, page, errors, requests } = await openPage(s.running.url);
  try {
    // Every control has a label.
    const unlabelled = await page.evaluate(() =>
      [...document.querySelectorAll('input, select, textarea')].filter((c) => c.labels?.length === 0 && !c.getAttribute('aria-label')).map((c) => c.id),
    );
    assert.deepEqual(unlabelled, []);
    assert.equal(await page.locator('#python-option').isVisible(), true);
    assert.equal(await page.locator('#browser-option').isVisible(), true);
    // The tools the server enables (serve enables both for the embedded gpt-oss-nano) start ticked.
    assert.equal(await page.locator('#use-python').isChecked(), true);
    assert.equal(await page.locator('#use-browser').isChecked(), true);

    // Shift+Enter is a new line, not a send.
    await page.locator('#prompt').fill('first line');
    await page.locator('#prompt').press('Shift+Enter');
    await page.locator('#prompt').pressSequentially('second');
    assert.equal(await page.locator('#prompt').inputValue(), 'first line\nsecond');
    assert.equal(engine.prompts.length, 0);

    await ask(page, 'What is 6*7?');
    await page.waitForFunction(() => document.querySelector('.turn.assistant .answer')?.textContent?.includes('The answer is 42') === true);
    await answered(page);
    assert.deepEqual(pythonRuns, ['print(6*7)']);
    assert.equal(await page.locator('.turn.user .user-text').first().textContent(), 'What is 6*7?');

    // The reasoning is there, collapsed, and opens.
    const reasoning = page.locator('.turn.assistant details.reasoning').first();
    assert.equal(await reasoning.getAttribute('open'), null);
    assert.equal(await reasoning.locator('.reasoning-text').isVisible(), false);
    await reasoning.locator('summary').click();
    await page.waitForFunction(() => document.querySelector('details.reasoning')?.open === true);
    assert.equal(await reasoning.locator('.reasoning-text').textContent(), 'I will compute 6*7 with python.');
    // The python call: its code and its output.
    const tool = page.locator('.turn.assistant .tool.python');
    assert.equal(await tool.locator('.tool-code').textContent(), 'print(6*7)');
    assert.equal(await tool.locator('.tool-logs').textContent(), '42\n');

    // Markdown rendered; HTML in the answer is text, not elements, and nothing ran.
    const answer = page.locator('.turn.assistant .answer').first();
    assert.equal(await answer.locator('strong').textContent(), '42');
    assert.equal(await answer.locator('code').textContent(), 'print(6*7)');
    assert.equal(await answer.locator('li').count(), 2);
    assert.deepEqual(await answer.locator('em').allTextContents(), ['python']);
    assert.equal(await answer.locator('li').first().textContent(), 'checked by python: 6*7 = 42, 8*9 = 72');
    assert.equal(await answer.locator('a').getAttribute('href'), 'https://example.org/times');
    assert.equal(await answer.locator('a').getAttribute('rel'), 'noopener noreferrer');
    assert.equal(await answer.locator('img, script').count(), 0);
    assert.equal(await answer.locator('cite.source').textContent(), 'this javascript:window.pwned=3');
    assert.ok((await answer.textContent())!.includes('<img src=x onerror="window.pwned=1"> <script>window.pwned=2</script>'));
    assert.equal(await page.evaluate(() => window.pwned), undefined);

    await page.locator('.turn.assistant .copy').first().scrollIntoViewIfNeeded();
    const shot = mkdtempSync(join(tmpdir(), 'gptoss-webpage-'));
    await page.screenshot({ path: join(shot, 'chat.png') });
    t.diagnostic(`screenshot: ${join(shot, 'chat.png')}`);
    if (process.env['GPTOSS_WEB_SCREENSHOT'] !== undefined) {
      mkdirSync(join(process.env['GPTOSS_WEB_SCREENSHOT'], '..'), { recursive: true });
      await page.screenshot({ path: process.env['GPTOSS_WEB_SCREENSHOT'] });
    }

    // Copy puts the answer's text on the clipboard.
    await page.locator('.turn.assistant .copy').first().click();
    await page.waitForFunction(() => document.querySelector('.turn.assistant .copy')?.textContent === 'Copied');
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), ANSWER);

    // A second turn at high effort with the browser: the history is sent, the calls shown, the citation named.
    await page.locator('#effort').selectOption('high');
    await ask(page, 'How high is the tide in Brest?');
    await page.waitForFunction(() => document.querySelectorAll('.turn.assistant').length === 2);
    await answered(page);
    const second = engine.prompts.find((p) => lastUser(p).includes('tide'))!;
    assert.match(second, /Reasoning: high/);
    assert.ok(second.includes('<|start|>user<|message|>What is 6*7?<|end|>') && second.includes('The answer is **42**'), second);
    const turn2 = page.locator('.turn.assistant').nth(1);
    assert.deepEqual(await turn2.locator('.tool.browser').allTextContents(), ['Browser searched for “tide Brest”', 'Browser opened a result']);
    const cite = turn2.locator('.answer cite.source');
    assert.equal(await cite.count(), 1);
    assert.match((await cite.textContent())!, /^Tides tides\.md#L\d/);
    assert.equal(await turn2.locator('.answer a').count(), 0);

    // Export: Responses input items, accepted back by the server.
    const [download] = await Promise.all([page.waitForEvent('download'), page.locator('#export').click()]);
    const exported = JSON.parse(readFileSync((await download.path())!, 'utf8')) as { title: string; input: { type: string }[] };
    assert.equal(exported.title, 'What is 6*7?');
    assert.deepEqual(exported.input.map((i) => i.type), ['message', 'reasoning', 'code_interpreter_call', 'reasoning', 'message', 'message', 'reasoning', 'web_search_call', 'reasoning', 'web_search_call', 'reasoning', 'message']);
    const replay = await fetch(`${s.running.url}/v1/responses`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ input: [...exported.input, { role: 'user', content: 'What is 6*7?' }] }) });
    assert.equal(replay.status, 200, await replay.clone().text());

    // The conversation survives a reload (localStorage), reasoning collapsed again.
    await page.reload();
    await page.waitForSelector('body[data-ready="true"]');
    assert.equal(await page.locator('.turn.assistant').count(), 2);
    assert.equal(await page.locator('#history option:checked').textContent(), 'What is 6*7?');
    assert.ok((await page.locator('.turn.assistant .answer').first().textContent())!.includes('The answer is 42'));
    assert.equal(await page.locator('#effort').inputValue(), 'high');

    // A new conversation starts empty; the old one stays in the list.
    await page.locator('#new-chat').click();
    assert.equal(await page.locator('.turn').count(), 0);
    assert.equal(await page.locator('#history option').count(), 2);
    await page.locator('#new-chat').click();
    assert.equal(await page.locator('#history option').count(), 2, 'an empty conversation is reused, not piled up');

    // Phone width: nothing wider than the screen.
    await page.locator('#history').selectOption({ label: 'What is 6*7?' });
    await page.setViewportSize({ width: 390, height: 800 });
    assert.equal(await page.evaluate(() => document.documentElement.scrollWidth <= document.documentElement.clientWidth), true);

    assert.deepEqual(errors, []);
    const origin = s.running.url;
    assert.deepEqual(requests.filter((u) => !u.startsWith(`${origin}/`) && !u.startsWith(`blob:${origin}/`)), []);
  } finally {
    await context.close();
    await s.close();
    rmSync(docs, { recursive: true, force: true });
  }
});

/** Holds every engine step after the `holdAt`-th until `release()`. */
class GatedEngine extends DelegatingEngine {
  steps = 0;
  private open!: () => void;
  private readonly gate = new Promise<void>((resolve) => (this.open = resolve));
  constructor(inner: Engine, private readonly holdAt: number) {
    super(inner);
  }
  override async step(batch: readonly StepRequest[]): Promise<Float32Array[]> {
    if (++this.steps > this.holdAt) await this.gate;
    return this.inner.step(batch);
  }
  openGate(): void {
    this.open();
  }
}

test('web page: Stop ends the answer where it is and the page is ready for the next question', { skip }, async () => {
  const words = Array.from({ length: 60 }, (_, i) => `w${i}`).join(' ');
  const engine = new GatedEngine(new PromptEngine(() => REASONED('Counting.', words)), 20);
  const s = await start(engine);
  const { context, page, errors } = await openPage(s.running.url);
  try {
    await ask(page, 'Count.');
    await page.waitForFunction(() => document.querySelector('.turn.assistant .answer')?.textContent?.startsWith('w0') === true);
    assert.equal(await page.locator('#stop').isVisible(), true);
    await page.locator('#stop').click();
    await page.waitForFunction(() => document.querySelector('.turn.assistant .turn-footer')?.textContent?.includes('Stopped.') === true);
    assert.equal(await page.locator('#send').isVisible(), true);
    assert.ok(!(await page.locator('.turn.assistant .answer').textContent())!.includes('w59'));
    assert.deepEqual(errors, []);
  } finally {
    engine.openGate();
    await context.close();
    await s.close();
  }
});

test('web page: a 401 asks for the API key, which is kept in localStorage and sent', { skip }, async () => {
  const s = await start(new PromptEngine(() => REASONED('Greeting.', 'Hello!')), { apiKey: 'sekret-key' });
  const { context, page, errors } = await openPage(s.running.url);
  try {
    await ask(page, 'Hi');
    await page.waitForSelector('#key-dialog[open]');
    await page.locator('#key-input').fill('sekret-key');
    await page.locator('#key-input').press('Enter');
    await page.waitForFunction(() => document.querySelector('.turn.assistant .answer')?.textContent === 'Hello!');
    assert.equal(await page.evaluate(() => localStorage.getItem('gptoss.apiKey')), 'sekret-key');
    // The browser reports the refused request itself; nothing else went wrong.
    assert.deepEqual(errors.filter((e) => !e.includes('401')), []);
  } finally {
    await context.close();
    await s.close();
  }
});

test('web page: a refused request shows the server error in the turn, and the page stays usable', { skip }, async () => {
  const s = await start(new PromptEngine(() => REASONED('x', 'y'), { contextLength: 40 }));
  const { context, page, errors } = await openPage(s.running.url);
  try {
    await ask(page, 'A question longer than this tiny context window allows, with more words than fit.');
    await page.waitForSelector('.turn.assistant .error[role="alert"]');
    assert.match((await page.locator('.turn.assistant .error').textContent())!, /maximum context length is 40 tokens/);
    assert.equal(await page.locator('#send').isVisible(), true);
    assert.equal(await page.locator('#prompt').evaluate((e) => e === document.activeElement), true);
    assert.deepEqual(errors.filter((e) => !e.includes('400')), []);
  } finally {
    await context.close();
    await s.close();
  }
});
