// Completion tokens back into messages: a streaming parser fed one token at a time (what the
// generation loop uses) and the batch parse built on it. Strict mode follows the official parser
// and throws UserError naming the token position; lenient mode recovers what it can from malformed
// model output (missing <|message|>, stray tokens after a message, odd header words) and lists
// every repair or drop in `dropped`.
import { quoted, UserError } from '../errors.ts';
import { getTokenizer, SPECIAL, type Tokenizer } from '../tokenizer/index.ts';
import { isRole, type Author, type Message, type Role } from './types.ts';

/** Tokens that end a message: `<|return|>`, `<|call|>`, `<|end|>`. */
export function stopTokens(): ReadonlySet<number> {
  return new Set([SPECIAL.return, SPECIAL.call, SPECIAL.end]);
}

/** The sampling stop set: `<|return|>` (final answer done) and `<|call|>` (run a tool, then sample
 *  again). `<|end|>` only separates messages within one completion. */
export function stopTokensForAssistantActions(): ReadonlySet<number> {
  return new Set([SPECIAL.return, SPECIAL.call]);
}

const STOPS = stopTokens();
const CHANNEL_TEXT = '<|channel|>';
const CONSTRAIN_TEXT = '<|constrain|>';

export type ParserState = 'expect-start' | 'header' | 'content';

/** Something lenient parsing repaired or threw away. `position` is the index of the first token
 *  concerned in the completion; `count` how many tokens the entry covers. */
export interface ParseDiagnostic {
  position: number;
  count: number;
  reason: string;
  /** The text of the dropped tokens, when tokens were dropped. */
  text?: string;
}

export interface ParseOptions {
  /** The role of the completion when it starts after `<|start|>role` (the prompt's last tokens). */
  role?: Role;
  /** true (default): malformed input throws UserError. false: recover and report in `dropped`. */
  strict?: boolean;
  tokenizer?: Tokenizer;
}

/** What one `process` call did. */
export interface ParserEvent {
  position: number;
  token: number | undefined;
  state: ParserState;
  /** Text added to the current message's content (undefined while a character is incomplete). */
  delta?: string;
  /** The message this token completed. */
  completed?: Message;
}

interface Header {
  author: Author;
  recipient?: string;
  channel?: string;
  contentType?: string;
}

export class StreamParser {
  private readonly tok: Tokenizer;
  private readonly strict: boolean;
  private nextRole: Role | undefined;
  private st: ParserState;
  private headerTokens: number[] = [];
  private headerStart = 0;
  private header: Header | undefined;
  private content = '';
  private decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
  private delta: string | undefined;
  private readonly msgs: Message[] = [];
  private readonly seen: number[] = [];
  private readonly diagnostics: ParseDiagnostic[] = [];
  /** The run of stray tokens still growing, whose `text` is decoded only when it is read. */
  private strayRun: ParseDiagnostic | undefined;

  constructor(options: ParseOptions = {}) {
    this.tok = options.tokenizer ?? getTokenizer();
    this.strict = options.strict ?? true;
    this.nextRole = options.role;
    // Given a role, the completion starts right after `<|start|>role`, inside the header.
    this.st = options.role === undefined ? 'expect-start' : 'header';
  }

  get state(): ParserState {
    return this.st;
  }
  get messages(): readonly Message[] {
    return this.msgs;
  }
  get tokens(): readonly number[] {
    return this.seen;
  }
  /** What lenient parsing repaired or dropped (always empty in strict mode). */
  get dropped(): readonly ParseDiagnostic[] {
    this.settleStrayText();
    return this.diagnostics;
  }
  get currentRole(): Role | undefined {
    return this.st === 'content' ? this.header!.author.role : this.nextRole;
  }
  get currentAuthorName(): string | undefined {
    return this.st === 'content' ? this.header!.author.name : undefined;
  }
  get currentChannel(): string | undefined {
    return this.st === 'content' ? this.header!.channel : undefined;
  }
  get currentRecipient(): string | undefined {
    return this.st === 'content' ? this.header!.recipient : undefined;
  }
  get currentContentType(): string | undefined {
    return this.st === 'content' ? this.header!.contentType : undefined;
  }
  /** The decoded content of the message being read ('' outside content). */
  get currentContent(): string {
    return this.st === 'content' ? this.content : '';
  }
  /** The text the last token added to the content; undefined if it added none (e.g. the first
   *  token of a multi-token character, which is held back until complete). */
  get lastContentDelta(): string | undefined {
    return this.delta;
  }

  process(token: number): ParserEvent {
    const position = this.seen.length;
    this.seen.push(token);
    this.delta = undefined;
    const before = this.msgs.length;
    if (!Number.isInteger(token) || token < 0 || token >= this.tok.vocabSize) this.invalidToken(token, position);
    else if (this.st === 'expect-start') this.onExpectStart(token, position);
    else if (this.st === 'header') this.onHeader(token, position);
    else this.onContent(token, position);
    return this.event(position, token, before);
  }

  /** The end of the completion: closes a message in progress. */
  processEos(): ParserEvent {
    const position = this.seen.length;
    this.delta = undefined;
    const before = this.msgs.length;
    if (this.st === 'header') {
      if (this.strict) this.fail(this.headerStart, `the completion ended inside a message header (${quoted(this.headerText())})`);
      this.salvageHeader('the completion ended before <|message|>');
    } else if (this.st === 'content') {
      this.finishMessage();
    }
    return this.event(position, undefined, before);
  }

  private event(position: number, token: number | undefined, before: number): ParserEvent {
    const e: ParserEvent = { position, token, state: this.st };
    if (this.delta !== undefined) e.delta = this.delta;
    if (this.msgs.length > before) e.completed = this.msgs[this.msgs.length - 1]!;
    return e;
  }

  private fail(position: number, what: string): never {
    throw new UserError('input', `token ${position}: ${what}`);
  }

  private report(position: number, reason: string, dropped?: number[]): void {
    const d: ParseDiagnostic = { position, count: dropped?.length ?? 1, reason };
    if (dropped !== undefined && dropped.length > 0) d.text = this.lossyText(dropped);
    this.diagnostics.push(d);
  }

  /**
   * Stray tokens between messages are coalesced into one diagnostic per run. The run's text is
   * decoded once, when `dropped` is read (decoding it again per token made a run quadratic:
   * 50,000 stray tokens never finished).
   */
  private dropStray(token: number, position: number): void {
    const run = this.strayRun;
    if (run !== undefined && run === this.diagnostics[this.diagnostics.length - 1] && run.position + run.count === position) {
      run.count++;
      delete run.text;
    } else {
      this.settleStrayText();
      this.report(position, STRAY, [token]);
      this.strayRun = this.diagnostics[this.diagnostics.length - 1];
    }
  }

  private settleStrayText(): void {
    const run = this.strayRun;
    if (run !== undefined && run.text === undefined) run.text = this.lossyText(this.seen.slice(run.position, run.position + run.count));
  }

  private invalidToken(token: number, position: number): void {
    const what = `token id ${token} is out of range (0..${this.tok.vocabSize - 1})`;
    if (this.strict) this.fail(position, what);
    if (this.st === 'content') {
      this.content += this.decoder.decode() + '\uFFFD';
      this.delta = '\uFFFD';
      this.report(position, `${what}; replaced by U+FFFD`);
    } else if (this.st === 'header') {
      this.report(position, `${what}; dropped from the message header`);
    } else {
      this.report(position, `${what}; dropped`);
    }
  }

  private onExpectStart(token: number, position: number): void {
    if (token === SPECIAL.start) {
      this.beginHeader(position);
      return;
    }
    if (this.strict) {
      const after = this.msgs.length > 0 ? 'after a finished message ' : '';
      this.fail(position, `unexpected ${this.describe(token)} ${after}where a message must begin with <|start|>`);
    }
    // A model that forgets `<|start|>assistant` before its next message usually goes straight to
    // `<|channel|>`: read it as a header of the same role as the previous message.
    if (token === SPECIAL.channel && this.msgs[this.msgs.length - 1]?.author.role === 'assistant') {
      this.beginHeader(position);
      this.nextRole = 'assistant';
      this.headerTokens.push(token);
      this.report(position, 'message without <|start|>: read as an assistant message');
      return;
    }
    this.dropStray(token, position);
  }

  private beginHeader(position: number): void {
    this.st = 'header';
    this.headerTokens = [];
    this.headerStart = position;
  }

  private onHeader(token: number, position: number): void {
    if (token === SPECIAL.message) {
      const header = this.parseHeader(this.headerText(), this.nextRole, true, this.headerStart);
      this.nextRole = undefined;
      this.header = header;
      this.st = 'content';
      this.content = '';
      this.decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
      return;
    }
    if (STOPS.has(token)) {
      if (this.strict) {
        this.fail(position, `${this.describe(token)} ends a message whose header (${quoted(this.headerText())}) has no <|message|>`);
      }
      this.salvageHeader(`message without <|message|> (ended by ${this.describe(token)})`);
      return;
    }
    if (token === SPECIAL.start) {
      if (this.strict) this.fail(position, `<|start|> inside a message header (${quoted(this.headerText())}): the previous message has no <|message|>`);
      if (this.headerTokens.length > 0) this.report(this.headerStart, 'unfinished message header dropped (a new <|start|> followed)', this.headerTokens);
      this.nextRole = undefined;
      this.beginHeader(position);
      return;
    }
    this.headerTokens.push(token);
  }

  /** Lenient recovery of a header that never reached <|message|>: the official non-strict rule
   *  (channel from the header, the remaining words as content). */
  private salvageHeader(reason: string): void {
    const tokens = this.headerTokens;
    const role = this.nextRole;
    this.st = 'expect-start';
    this.nextRole = undefined;
    this.headerTokens = [];
    if (tokens.length === 0) return;
    const text = this.lossyText(tokens);
    const header = this.parseHeaderLoosely(text, role);
    if (header === undefined) {
      this.report(this.headerStart, `${reason}; dropped`, tokens);
      return;
    }
    const m: Message = { author: header.author, content: [{ type: 'text', text: header.rest }] };
    if (header.recipient !== undefined) m.recipient = header.recipient;
    if (header.channel !== undefined) m.channel = header.channel;
    if (header.contentType !== undefined) m.contentType = header.contentType;
    this.msgs.push(m);
    this.report(this.headerStart, `${reason}; kept the header text as content`);
  }

  private onContent(token: number, position: number): void {
    if (STOPS.has(token)) {
      this.finishMessage();
      return;
    }
    if (this.tok.isSpecial(token)) {
      if (token === SPECIAL.start) {
        if (this.strict) this.fail(position, '<|start|> inside message content: the message is missing its <|end|>');
        this.report(position, 'message without <|end|>: closed at the next <|start|>');
        this.finishMessage();
        this.beginHeader(position);
        return;
      }
      if (this.strict) this.fail(position, `unexpected ${this.describe(token)} inside message content`);
      this.report(position, `${this.describe(token)} inside message content dropped`, [token]);
      return;
    }
    const text = this.decoder.decode(this.tok.tokenBytes(token), { stream: true });
    if (text !== '') {
      this.content += text;
      this.delta = text;
    }
  }

  private finishMessage(): void {
    const header = this.header!;
    const tail = this.decoder.decode();
    const m: Message = { author: header.author, content: [{ type: 'text', text: this.content + tail }] };
    if (header.recipient !== undefined) m.recipient = header.recipient;
    if (header.channel !== undefined) m.channel = header.channel;
    if (header.contentType !== undefined) m.contentType = header.contentType;
    this.msgs.push(m);
    this.st = 'expect-start';
    this.header = undefined;
    this.content = '';
  }

  private headerText(): string {
    const bytes = this.tok.decodeBytes(this.headerTokens);
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      if (this.strict) this.fail(this.headerStart, 'the message header is not valid UTF-8');
      this.report(this.headerStart, 'invalid UTF-8 in the message header replaced by U+FFFD');
      return new TextDecoder('utf-8', { fatal: false }).decode(bytes);
    }
  }

  private lossyText(tokens: readonly number[]): string {
    const valid = tokens.filter((t) => Number.isInteger(t) && t >= 0 && t < this.tok.vocabSize);
    return new TextDecoder('utf-8', { fatal: false }).decode(this.tok.decodeBytes(valid));
  }

  private describe(token: number): string {
    const name = this.tok.tokenName(token);
    return name === undefined ? `token ${token}` : `${name} (${token})`;
  }

  /**
   * The header grammar of the official parser: `<|channel|>X` anywhere, then whitespace-separated
   * words: [role] [to=recipient | recipient] [content-type]. An unknown first word followed by
   * more words is a tool's name ("browser.search to=assistant").
   */
  private parseHeader(raw: string, role: Role | undefined, parseRecipient: boolean, position: number): Header {
    const h = splitHeader(raw);
    const problems: string[] = [];
    if (h.channelError) {
      if (this.strict) this.fail(position, `<|channel|> without a channel name in message header ${quoted(raw)}`);
      problems.push('<|channel|> without a channel name');
    }
    const parts = h.parts;
    let author: Author;
    if (role !== undefined) {
      author = { role };
    } else {
      const first = parts[0];
      if (first === undefined) {
        if (this.strict) this.fail(position, `message header ${quoted(raw)} has no role`);
        problems.push('no role; assumed assistant');
        author = { role: 'assistant' };
      } else if (isRole(first)) {
        author = first === 'tool' ? { role: 'tool', name: first } : { role: first };
      } else if (parts.length > 1 || first.startsWith('to=')) {
        parts.shift();
        author = { role: 'tool', name: first };
      } else {
        if (this.strict) this.fail(position, `unknown role ${quoted(first)} in message header ${quoted(raw)}`);
        parts.shift();
        problems.push(`unknown role ${quoted(first)} dropped; assumed assistant`);
        author = { role: 'assistant' };
      }
    }
    if (parts[0] === author.role) parts.shift();
    const header: Header = { author };
    if (h.channel !== undefined) header.channel = h.channel;
    if (parseRecipient && parts.length > 0) {
      const n = parts.length;
      const last = parts.pop()!;
      if (last.startsWith('to=')) header.recipient = last.slice(3);
      else if (n === 1) header.recipient = last;
      else {
        header.contentType = last;
        const r = parts.pop();
        if (r !== undefined) header.recipient = r.startsWith('to=') ? r.slice(3) : r;
      }
    }
    if (parts.length > 0) {
      if (this.strict) this.fail(position, `unexpected words ${quoted(parts.join(' '))} in message header ${quoted(raw)}`);
      problems.push(`unexpected words ${quoted(this.repairRecipient(header, parts))} dropped`);
    }
    if (problems.length > 0) this.report(position, `message header ${quoted(raw)}: ${problems.join('; ')}`);
    return header;
  }

  /** Lenient: when the header has extra words, prefer the `to=` word as the recipient and the last
   *  word after it as the content type; returns the words dropped. */
  private repairRecipient(header: Header, leftover: string[]): string {
    const all = [...leftover, ...(header.recipient !== undefined ? [header.recipient] : []), ...(header.contentType !== undefined ? [header.contentType] : [])];
    const to = all.findIndex((w) => w.startsWith('to='));
    if (to < 0) return leftover.join(' ');
    delete header.contentType;
    header.recipient = all[to]!.slice(3);
    const after = all.slice(to + 1);
    if (after.length > 0) header.contentType = after.pop()!;
    return [...all.slice(0, to), ...after].join(' ');
  }

  /** Header of a message that never reached <|message|>: metadata from the header, the rest is content. */
  private parseHeaderLoosely(raw: string, role: Role | undefined): (Header & { rest: string }) | undefined {
    const h = splitHeader(raw);
    const parts = h.parts;
    let author: Author;
    if (role !== undefined) author = { role };
    else {
      const first = parts[0];
      if (first === undefined || !isRole(first)) return undefined;
      author = { role: first };
    }
    if (parts[0] === author.role) parts.shift();
    const header: Header & { rest: string } = { author, rest: parts.join(' ') };
    if (h.channel !== undefined) header.channel = h.channel;
    return header;
  }
}

const STRAY = 'stray tokens outside a message dropped';

/** Cuts `<|channel|>value` out of a header and splits the rest into words. */
function splitHeader(raw: string): { channel?: string; channelError: boolean; parts: string[] } {
  let s = raw;
  let channel: string | undefined;
  let channelError = false;
  const at = s.indexOf(CHANNEL_TEXT);
  if (at >= 0) {
    const after = s.slice(at + CHANNEL_TEXT.length);
    const m = /[\s<]/u.exec(after);
    const end = m === null ? after.length : m.index;
    if (end === 0) channelError = true;
    else channel = after.slice(0, end);
    s = s.slice(0, at) + after.slice(end);
  }
  s = s.trim();
  // "to=functions.f<|constrain|>json": the content type is its own word.
  if (s.includes(CONSTRAIN_TEXT)) s = s.split(CONSTRAIN_TEXT).join(` ${CONSTRAIN_TEXT}`).trim();
  const parts = s.split(/[ \t\n\f\r]+/).filter((p) => p !== '');
  const out: { channel?: string; channelError: boolean; parts: string[] } = { channelError, parts };
  if (channel !== undefined) out.channel = channel;
  return out;
}

/** Parses a completion (with or without its final stop token) into messages. Strict by default. */
export function parseMessagesFromCompletionTokens(tokens: readonly number[], role?: Role, options: { strict?: boolean; tokenizer?: Tokenizer } = {}): Message[] {
  return parseCompletion(tokens, { ...options, role }).messages;
}

/** Like parseMessagesFromCompletionTokens, plus what lenient parsing repaired or dropped. */
export function parseCompletion(tokens: readonly number[], options: ParseOptions = {}): { messages: Message[]; dropped: ParseDiagnostic[] } {
  const parser = new StreamParser(options);
  for (const t of tokens) parser.process(t);
  parser.processEos();
  return { messages: [...parser.messages], dropped: [...parser.dropped] };
}
