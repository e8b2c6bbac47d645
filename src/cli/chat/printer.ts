// How `gptoss chat` shows an answer as it streams: final text plainly, reasoning dim (when asked
// for), tool calls and results as one compact line each, and a statistics line at the end. In
// script mode (stdin not a terminal) only the answer goes to stdout; the rest goes to stderr.
import type { AgentEvent, AgentResult } from '../../engine/agent.ts';
import { getTokenizer, Utf8StreamDecoder } from '../../tokenizer/index.ts';
import { CitationStream, type CitationSource } from '../../tools/index.ts';

export interface PrinterOptions {
  /** Where the answer goes. */
  out: NodeJS.WritableStream;
  /** Where reasoning, tool lines and statistics go (the same stream interactively). */
  side: NodeJS.WritableStream;
  showReasoning: boolean;
  /** ANSI styling (dim reasoning, coloured tool lines). */
  color: boolean;
  /** Show a transient "thinking…" while hidden reasoning is generated (terminals only). */
  thinkingIndicator: boolean;
  /** Statistics after each answer. */
  stats: boolean;
  /** Turns the browser's citation markers into links to the cited document lines. */
  citations?: CitationSource;
  /** Print the completion as the model writes it (special tokens by name) instead of parsed messages. */
  raw?: boolean;
}

const ESC = '\x1b[';
const style = {
  dim: (s: string): string => `${ESC}2m${s}${ESC}22m`,
  cyan: (s: string): string => `${ESC}36m${s}${ESC}39m`,
  red: (s: string): string => `${ESC}31m${s}${ESC}39m`,
  yellow: (s: string): string => `${ESC}33m${s}${ESC}39m`,
};

/** One line, at most `max` characters. */
export function compact(text: string, max = 100): string {
  const one = text.replace(/\s+/g, ' ').trim();
  return one.length <= max ? one : `${one.slice(0, max - 1)}…`;
}

export class AnswerPrinter {
  private readonly o: PrinterOptions;
  /** Whether each stream's cursor is at the start of a line. */
  private atLineStart = new Map<NodeJS.WritableStream, boolean>();
  private channel: string | undefined;
  private recipient: string | undefined;
  private thinkingShown = false;
  private citationStream: CitationStream | undefined;
  /** Whether anything of the answer (final or preamble) was printed. */
  printedAnswer = false;

  constructor(options: PrinterOptions) {
    this.o = options;
  }

  private paint(fn: (s: string) => string, s: string): string {
    return this.o.color ? fn(s) : s;
  }

  private write(stream: NodeJS.WritableStream, text: string): void {
    if (text === '') return;
    this.clearThinking();
    stream.write(text);
    this.atLineStart.set(stream, text.endsWith('\n'));
  }

  private newline(stream: NodeJS.WritableStream): void {
    if (this.atLineStart.get(stream) === false) this.write(stream, '\n');
  }

  private clearThinking(): void {
    if (!this.thinkingShown) return;
    this.thinkingShown = false;
    this.o.side.write('\r\x1b[K');
  }

  private rawDecoder: Utf8StreamDecoder | undefined;

  /** Raw mode: every token as text, special tokens by name; tool lines and statistics as usual. */
  private handleRaw(event: AgentEvent): boolean {
    if (event.type === 'token') {
      const tok = getTokenizer();
      const id = event.token.token;
      this.rawDecoder ??= new Utf8StreamDecoder();
      const name = tok.tokenName(id);
      this.write(this.o.out, name !== undefined ? this.paint(style.dim, name) : this.rawDecoder.push(tok.tokenBytes(id)));
      return true;
    }
    if (event.type === 'prefill' || event.type === 'done') {
      // A completion cut inside a character shows it as U+FFFD rather than losing it.
      if (this.rawDecoder !== undefined) this.write(this.o.out, this.rawDecoder.flush().text);
      this.rawDecoder = new Utf8StreamDecoder();
    }
    return event.type === 'message_start' || event.type === 'delta' || event.type === 'message_done';
  }

  handle(event: AgentEvent): void {
    if (this.o.raw === true && this.handleRaw(event)) return;
    switch (event.type) {
      case 'prefill_progress': {
        // A long prompt on a CPU takes a while: say how far along it is (erased by the answer).
        if (!this.o.thinkingIndicator) return;
        this.clearThinking();
        this.newline(this.o.side);
        this.o.side.write(this.paint(style.dim, `reading the prompt… ${event.done}/${event.total} tokens`));
        this.thinkingShown = true;
        return;
      }
      case 'prefill':
        this.clearThinking();
        return;
      case 'message_start': {
        this.channel = event.channel;
        this.recipient = event.recipient;
        if (event.recipient !== undefined) return; // shown as a tool line when complete
        if (event.channel === 'analysis') {
          if (this.o.showReasoning) this.newline(this.o.side);
          else if (this.o.thinkingIndicator && !this.thinkingShown) {
            this.newline(this.o.side);
            this.o.side.write(this.paint(style.dim, 'thinking…'));
            this.thinkingShown = true;
          }
        } else {
          this.newline(this.o.out);
          if (event.channel === 'final' && this.o.citations !== undefined) this.citationStream = new CitationStream(this.o.citations);
        }
        return;
      }
      case 'delta': {
        if (event.recipient !== undefined) return;
        if (event.channel === 'analysis') {
          if (this.o.showReasoning) this.write(this.o.side, this.paint(style.dim, event.text));
          return;
        }
        const text = this.citationStream !== undefined ? this.citationStream.push(event.text) : event.text;
        if (text !== '') this.printedAnswer = true;
        this.write(this.o.out, text);
        return;
      }
      case 'message_done': {
        if (this.citationStream !== undefined) {
          this.write(this.o.out, this.citationStream.flush());
          this.citationStream = undefined;
        }
        if (this.recipient === undefined && this.channel !== 'analysis') this.newline(this.o.out);
        if (this.recipient === undefined && this.channel === 'analysis' && this.o.showReasoning) this.newline(this.o.side);
        this.channel = undefined;
        this.recipient = undefined;
        return;
      }
      case 'tool_call': {
        this.newline(this.o.side);
        const body = compact(event.call.content, 100);
        this.write(this.o.side, `${this.paint(style.cyan, `→ ${event.call.recipient}`)} ${this.paint(style.dim, body)}\n`);
        return;
      }
      case 'tool_result': {
        const text = event.message.content.map((c) => (c.type === 'text' ? c.text : '')).join('');
        const lines = text.split('\n').length;
        const head = `← ${event.message.author.name ?? event.call.recipient}`;
        // The first line says what came back (a page title, an error, the first line of output).
        const first = text.split('\n').find((l) => l.trim() !== '') ?? '';
        const summary = `${compact(first, 100)}${lines > 1 ? ` (${lines} lines)` : ''}`;
        const painted = event.error !== undefined ? this.paint(style.red, head) : this.paint(style.cyan, head);
        this.write(this.o.side, `${painted} ${this.paint(style.dim, summary)}\n`);
        return;
      }
      case 'done': {
        this.clearThinking();
        this.newline(this.o.out);
        this.newline(this.o.side);
        const note = finishNote(event.result);
        if (note !== undefined) this.write(this.o.side, `${this.paint(style.yellow, note)}\n`);
        if (this.o.stats) this.write(this.o.side, `${this.paint(style.dim, statsLine(event.result))}\n`);
        return;
      }
      default:
        return;
    }
  }
}

/** Why an answer ended early, in words; undefined for a normal answer. */
export function finishNote(r: AgentResult): string | undefined {
  switch (r.finishReason) {
    case 'abort':
      return '[stopped]';
    case 'length':
      return '[stopped: --max-tokens reached]';
    case 'context':
      return '[stopped: the context window is full; /reset starts a new conversation]';
    case 'tool_limit':
      return `[stopped: ${r.toolCalls} tool calls, the limit for one answer]`;
    case 'function_call':
      return `[the model called ${r.functionCall?.name ?? 'a function'}, which chat cannot answer]`;
    default:
      return undefined;
  }
}

/** "(57 tokens, 12.4 tok/s; prompt 310 tokens, 290 cached, 41 ms; 1 tool call)". */
export function statsLine(r: AgentResult): string {
  const u = r.usage;
  const parts = [`${u.completionTokens} tokens`];
  if (r.timings.tokensPerSecond > 0) parts.push(`${r.timings.tokensPerSecond.toFixed(1)} tok/s`);
  if (u.reasoningTokens > 0) parts.push(`${u.reasoningTokens} reasoning`);
  const prompt = `prompt ${u.promptTokens} tokens, ${u.cachedTokens} cached, ${Math.round(r.timings.prefillMs)} ms`;
  const tools = r.toolCalls > 0 ? `; ${r.toolCalls} tool call${r.toolCalls === 1 ? '' : 's'}` : '';
  return `(${parts.join(', ')}; ${prompt}${tools})`;
}
