// The chat page: conversations kept in localStorage, each turn sent to this server's
// /v1/responses with stream: true, and the streamed output items (reasoning, tool calls and their
// results, the answer) shown as they arrive. Model and tool text is rendered by markdown.js, which
// builds text nodes only.
import { renderMarkdown } from './markdown.js';
import { HttpError, postStream } from './stream.js';

const STORE = 'gptoss.conversations';
const CURRENT = 'gptoss.current';
const KEY = 'gptoss.apiKey';
const EFFORT = 'gptoss.effort';

const $ = (id) => document.getElementById(id);
const ui = {
  log: $('log'),
  model: $('model'),
  history: $('history'),
  newChat: $('new-chat'),
  exportChat: $('export'),
  deleteChat: $('delete-chat'),
  composer: $('composer'),
  prompt: $('prompt'),
  send: $('send'),
  stop: $('stop'),
  effort: $('effort'),
  status: $('status'),
  python: $('use-python'),
  browser: $('use-browser'),
  keyDialog: $('key-dialog'),
  keyForm: $('key-form'),
  keyInput: $('key-input'),
  keyCancel: $('key-cancel'),
};

let config = { model: undefined, tools: [], default_effort: 'medium' };
let conversations = load();
let currentId = localStorage.getItem(CURRENT) ?? undefined;
/** The request in flight, if any. */
let running;

function load() {
  try {
    const parsed = JSON.parse(localStorage.getItem(STORE) ?? '[]');
    return Array.isArray(parsed) ? parsed : [];
  } catch {
    console.warn('gptoss: stored conversations were unreadable and are ignored');
    return [];
  }
}

function save() {
  try {
    localStorage.setItem(STORE, JSON.stringify(conversations));
    if (currentId !== undefined) localStorage.setItem(CURRENT, currentId);
    else localStorage.removeItem(CURRENT);
  } catch (e) {
    // Storage full or disabled: the conversation stays on screen; say it will not survive a reload.
    ui.status.textContent = `Not saved in this browser: ${e instanceof Error ? e.message : String(e)}. Export it to keep it.`;
  }
}

const current = () => conversations.find((c) => c.id === currentId);

function newConversation() {
  const conversation = { id: crypto.randomUUID(), title: 'New conversation', created: new Date().toISOString(), turns: [] };
  conversations.unshift(conversation);
  currentId = conversation.id;
  return conversation;
}

// ---- rendering ---------------------------------------------------------------------------------

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function renderHistory() {
  ui.history.replaceChildren();
  if (conversations.length === 0) ui.history.append(new Option('No conversations yet', ''));
  for (const c of conversations) ui.history.append(new Option(c.title, c.id, false, c.id === currentId));
  ui.exportChat.disabled = current() === undefined;
  ui.deleteChat.disabled = current() === undefined;
}

function renderConversation() {
  ui.log.replaceChildren();
  const conversation = current();
  if (conversation === undefined || conversation.turns.length === 0) {
    const empty = el('p', 'empty', config.model ? `Ask ${config.model} something.` : 'Ask something.');
    ui.log.append(empty);
    return;
  }
  for (const turn of conversation.turns) {
    if (turn.role === 'user') ui.log.append(userView(turn));
    else ui.log.append(new AssistantView(turn).root);
  }
  ui.log.scrollTop = ui.log.scrollHeight;
}

function userView(turn) {
  const article = el('article', 'turn user');
  article.setAttribute('aria-label', 'You');
  article.append(el('div', 'who', 'You'), el('div', 'user-text', turn.text));
  return article;
}

/** True when the reader is at (or near) the end of the conversation, so new output should stay in view. */
const nearBottom = () => ui.log.scrollHeight - ui.log.scrollTop - ui.log.clientHeight < 80;

/** The text of a turn's answer: its message items. */
function answerText(turn) {
  return turn.items
    .filter((i) => i && i.type === 'message')
    .map((i) => (i.content ?? []).map((p) => p.text ?? '').join(''))
    .join('\n\n');
}

/** One assistant turn on the page; `update(index)` redraws one output item as it streams. */
class AssistantView {
  constructor(turn) {
    this.turn = turn;
    this.root = el('article', 'turn assistant');
    this.root.setAttribute('aria-label', 'Assistant');
    this.root.append(el('div', 'who', 'Assistant'));
    this.items = el('div', 'items');
    this.footer = el('div', 'turn-footer');
    this.root.append(this.items, this.footer);
    this.views = new Map();
    this.pending = new Set();
    this.frame = 0;
    turn.items.forEach((_, i) => this.update(i));
    this.finish();
  }

  /** Redraws item `index` on the next frame (deltas arrive faster than the screen refreshes). */
  schedule(index) {
    this.pending.add(index);
    if (this.frame !== 0) return;
    this.frame = requestAnimationFrame(() => this.flush());
  }

  flush() {
    cancelAnimationFrame(this.frame);
    this.frame = 0;
    const follow = nearBottom();
    for (const i of this.pending) this.update(i);
    this.pending.clear();
    if (follow) ui.log.scrollTop = ui.log.scrollHeight;
  }

  update(index) {
    const item = this.turn.items[index];
    if (!item) return;
    let view = this.views.get(index);
    if (view === undefined || view.type !== item.type) {
      const fresh = itemView(item.type);
      if (view !== undefined) view.root.replaceWith(fresh.root);
      else {
        const after = [...this.views.keys()].filter((k) => k > index).sort((a, b) => a - b)[0];
        this.items.insertBefore(fresh.root, after === undefined ? null : this.views.get(after).root);
      }
      view = fresh;
      this.views.set(index, view);
    }
    view.render(item);
  }

  /** Draws the footer for the turn's state: copy button, status or error. */
  finish() {
    this.flush();
    const follow = nearBottom();
    this.footer.replaceChildren();
    const { status, error } = this.turn;
    if (status === 'in_progress') {
      this.footer.append(el('span', 'turn-status', 'Generating…'));
      return;
    }
    if (error) {
      const p = el('p', 'error', error);
      p.setAttribute('role', 'alert');
      this.footer.append(p);
    } else if (status === 'stopped') this.footer.append(el('span', 'turn-status', 'Stopped.'));
    else if (status === 'incomplete') this.footer.append(el('span', 'turn-status', 'Cut short: the output token limit was reached.'));
    const text = answerText(this.turn);
    if (text !== '') {
      const copy = el('button', 'copy', 'Copy answer');
      copy.type = 'button';
      copy.addEventListener('click', async () => {
        try {
          await navigator.clipboard.writeText(text);
          copy.textContent = 'Copied';
        } catch {
          copy.textContent = 'Copy failed';
        }
      });
      this.footer.prepend(copy);
    }
    if (follow) ui.log.scrollTop = ui.log.scrollHeight;
  }
}

/** A view for one output item type: `root` and `render(item)`, which keeps user state (open/closed). */
function itemView(type) {
  switch (type) {
    case 'reasoning': {
      const root = el('details', 'reasoning');
      const summary = el('summary', undefined, 'Reasoning');
      const note = el('span', 'note', ' (the model thinking; not checked, not the answer)');
      summary.append(note);
      const body = el('div', 'reasoning-text');
      root.append(summary, body);
      return { type, root, render: (item) => (body.textContent = (item.content ?? []).map((p) => p.text ?? '').join('')) };
    }
    case 'message': {
      const root = el('div', 'answer');
      return { type, root, render: (item) => renderMarkdown(document, root, (item.content ?? []).map((p) => p.text ?? '').join('')) };
    }
    case 'code_interpreter_call': {
      const root = el('details', 'tool python');
      root.open = true;
      const summary = el('summary', undefined, 'Python');
      const state = el('span', 'tool-state');
      summary.append(state);
      const code = el('code');
      const pre = el('pre', 'tool-code');
      pre.append(code);
      const output = el('div', 'tool-output');
      root.append(summary, pre, output);
      return {
        type,
        root,
        render: (item) => {
          state.textContent = item.status === 'completed' ? ' ran' : ' running…';
          code.textContent = item.code ?? '';
          output.replaceChildren();
          for (const o of item.outputs ?? []) {
            if (o.type !== 'logs') continue;
            output.append(el('div', 'tool-output-label', 'Output'), el('pre', 'tool-logs', o.logs === '' ? '(no output)' : o.logs));
          }
        },
      };
    }
    case 'web_search_call': {
      const root = el('div', 'tool browser');
      return {
        type,
        root,
        render: (item) => {
          root.replaceChildren(el('span', 'tool-name', 'Browser'));
          const a = item.action ?? {};
          let text;
          if (item.status !== 'completed' && !item.action) text = ' working…';
          else if (a.type === 'open_page') text = a.url === null || a.url === undefined ? ' opened a result' : ` opened ${a.url}`;
          else if (a.type === 'find') text = ` looked for “${a.pattern ?? ''}” in the page`;
          else text = ` searched for “${a.query ?? ''}”`;
          root.append(document.createTextNode(text));
        },
      };
    }
    case 'function_call': {
      const root = el('div', 'tool function');
      return { type, root, render: (item) => root.replaceChildren(el('span', 'tool-name', `Function ${item.name ?? ''}`), el('pre', 'tool-code', item.arguments ?? '')) };
    }
    default: {
      const root = el('div', 'tool');
      return { type, root, render: (item) => (root.textContent = `(${item.type} item)`) };
    }
  }
}

// ---- talking to the server ---------------------------------------------------------------------

/** The conversation so far as Responses input: user messages and the answers (reasoning is not sent back). */
function inputOf(conversation) {
  const input = [];
  for (const turn of conversation.turns) {
    if (turn.role === 'user') input.push({ role: 'user', content: turn.text });
    else if (turn.status !== 'in_progress') {
      const text = answerText(turn);
      if (text !== '') input.push({ role: 'assistant', content: text });
    }
  }
  return input;
}

function requestTools() {
  const tools = [];
  if (config.tools.includes('python') && ui.python.checked) tools.push({ type: 'code_interpreter', container: { type: 'auto' } });
  if (config.tools.includes('browser') && ui.browser.checked) tools.push({ type: 'browser_search' });
  return tools;
}

/** Applies one streamed event to the turn's items. */
function apply(turn, view, e) {
  const item = turn.items[e.output_index];
  switch (e.type) {
    case 'response.output_item.added':
    case 'response.output_item.done':
      turn.items[e.output_index] = e.item;
      view.schedule(e.output_index);
      break;
    case 'response.reasoning_text.delta':
    case 'response.output_text.delta':
      if (item) {
        item.content = item.content && item.content.length > 0 ? item.content : [{ type: e.type === 'response.output_text.delta' ? 'output_text' : 'reasoning_text', text: '' }];
        item.content[0].text += e.delta;
        view.schedule(e.output_index);
      }
      break;
    case 'response.code_interpreter_call_code.delta':
      if (item) {
        item.code = (item.code ?? '') + e.delta;
        view.schedule(e.output_index);
      }
      break;
    case 'response.function_call_arguments.delta':
      if (item) {
        item.arguments = (item.arguments ?? '') + e.delta;
        view.schedule(e.output_index);
      }
      break;
    case 'response.completed':
    case 'response.incomplete':
      turn.items = e.response.output;
      turn.status = e.response.status;
      turn.items.forEach((_, i) => view.schedule(i));
      break;
    case 'error':
      turn.status = 'failed';
      turn.error = e.message ?? 'The server reported an error.';
      break;
    default:
      break;
  }
}

async function send(text) {
  const conversation = current() ?? newConversation();
  if (conversation.turns.length === 0) conversation.title = text.length > 60 ? `${text.slice(0, 57)}…` : text;
  conversation.turns.push({ role: 'user', text });
  const body = {
    ...(config.model ? { model: config.model } : {}),
    input: inputOf(conversation),
    stream: true,
    store: false,
    reasoning: { effort: ui.effort.value },
    tools: requestTools(),
  };
  const turn = { role: 'assistant', items: [], status: 'in_progress', effort: ui.effort.value };
  conversation.turns.push(turn);
  save();
  renderHistory();
  renderConversation();
  const view = new AssistantView(turn);
  ui.log.lastElementChild.replaceWith(view.root);

  const controller = new AbortController();
  running = controller;
  setBusy(true);
  try {
    for (;;) {
      try {
        await postStream('/v1/responses', body, { apiKey: localStorage.getItem(KEY) ?? undefined, signal: controller.signal, onEvent: (e) => apply(turn, view, e) });
        break;
      } catch (e) {
        if (!(e instanceof HttpError) || e.status !== 401) throw e;
        if (!(await askKey(e.message))) throw new Error('An API key is needed to use this server.');
      }
    }
    if (turn.status === 'in_progress') {
      turn.status = 'failed';
      turn.error = 'The stream ended before the response was complete.';
    }
  } catch (e) {
    if (controller.signal.aborted) turn.status = 'stopped';
    else {
      turn.status = 'failed';
      turn.error = e instanceof Error ? e.message : String(e);
    }
  } finally {
    running = undefined;
    view.finish();
    setBusy(false);
    save();
  }
}

function setBusy(busy) {
  ui.send.hidden = busy;
  ui.stop.hidden = !busy;
  ui.status.textContent = busy ? 'Generating…' : '';
  ui.newChat.disabled = busy;
  ui.history.disabled = busy;
  ui.deleteChat.disabled = busy || current() === undefined;
  if (busy) ui.stop.focus();
  else ui.prompt.focus();
}

/** Asks for the API key; resolves true when one was saved. */
function askKey(message) {
  return new Promise((resolve) => {
    ui.keyInput.value = '';
    ui.keyDialog.querySelector('p').textContent = `${message} The key is kept only in this browser.`;
    const done = (saved) => {
      ui.keyForm.removeEventListener('submit', onSubmit);
      ui.keyCancel.removeEventListener('click', onCancel);
      ui.keyDialog.removeEventListener('cancel', onCancel);
      ui.keyDialog.close();
      resolve(saved);
    };
    const onSubmit = (e) => {
      e.preventDefault();
      const key = ui.keyInput.value.trim();
      if (key === '') return;
      localStorage.setItem(KEY, key);
      done(true);
    };
    const onCancel = (e) => {
      e.preventDefault();
      done(false);
    };
    ui.keyForm.addEventListener('submit', onSubmit);
    ui.keyCancel.addEventListener('click', onCancel);
    ui.keyDialog.addEventListener('cancel', onCancel);
    ui.keyDialog.showModal();
    ui.keyInput.focus();
  });
}

// ---- export ------------------------------------------------------------------------------------

/** The conversation as Responses API input items (they can be posted back as `input`). */
function exportJson(conversation) {
  const input = [];
  for (const turn of conversation.turns) {
    if (turn.role === 'user') input.push({ type: 'message', role: 'user', content: [{ type: 'input_text', text: turn.text }] });
    else input.push(...turn.items.filter(Boolean));
  }
  return { object: 'gptoss.conversation', title: conversation.title, created: conversation.created, model: config.model ?? null, input };
}

function download(conversation) {
  const blob = new Blob([JSON.stringify(exportJson(conversation), null, 2) + '\n'], { type: 'application/json' });
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = `${conversation.title.replace(/[^\w.-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 40) || 'conversation'}.json`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 0);
}

// ---- wiring ------------------------------------------------------------------------------------

ui.composer.addEventListener('submit', (e) => {
  e.preventDefault();
  const text = ui.prompt.value.trim();
  if (text === '' || running !== undefined) return;
  ui.prompt.value = '';
  void send(text);
});

ui.prompt.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    ui.composer.requestSubmit();
  }
});

ui.stop.addEventListener('click', () => running?.abort());

ui.newChat.addEventListener('click', () => {
  // An empty conversation is already new: do not pile up empty ones.
  if (current()?.turns.length !== 0) newConversation();
  save();
  renderHistory();
  renderConversation();
  ui.prompt.focus();
});

ui.history.addEventListener('change', () => {
  if (ui.history.value === '') return;
  currentId = ui.history.value;
  save();
  renderHistory();
  renderConversation();
});

ui.exportChat.addEventListener('click', () => {
  const conversation = current();
  if (conversation !== undefined) download(conversation);
});

ui.deleteChat.addEventListener('click', () => {
  const conversation = current();
  if (conversation === undefined || !confirm(`Delete “${conversation.title}”?`)) return;
  conversations = conversations.filter((c) => c !== conversation);
  currentId = conversations[0]?.id;
  save();
  renderHistory();
  renderConversation();
});

ui.effort.addEventListener('change', () => localStorage.setItem(EFFORT, ui.effort.value));

async function start() {
  try {
    const response = await fetch('/config.json');
    if (response.ok) config = { ...config, ...(await response.json()) };
  } catch {
    // an older server without /config.json: no tools, the server's default model
  }
  ui.model.textContent = config.model ?? '';
  ui.effort.value = localStorage.getItem(EFFORT) ?? config.default_effort ?? 'medium';
  $('python-option').hidden = !config.tools.includes('python');
  $('browser-option').hidden = !config.tools.includes('browser');
  // Conversations cut off by a closed tab stay readable, marked stopped.
  for (const c of conversations) for (const t of c.turns) if (t.status === 'in_progress') t.status = 'stopped';
  if (current() === undefined) currentId = conversations[0]?.id;
  renderHistory();
  renderConversation();
  document.body.dataset.ready = 'true';
  ui.prompt.focus();
}

void start();
