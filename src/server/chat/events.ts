// Chat Completions' output: the loop's events become the assistant message (content, reasoning,
// tool_calls, logprobs, url_citation annotations) and, when streaming, its deltas; the finish
// reason and usage.
import type { AgentEvent, AgentResult } from '../../engine/agent.ts';
import type { GeneratedToken } from '../../engine/generate.ts';
import { getTokenizer } from '../../tokenizer/index.ts';
import { CitationStream, type Citation, type CitationSource } from '../../tools/index.ts';
import { newId } from '../common.ts';
import type { JsonRecord } from '../validate.ts';

export interface ChatToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

/**
 * Collects a chat answer from agent events and produces the streamed deltas. A content delta is
 * held until the event of the token that produced it, so that its chunk carries the logprobs of
 * exactly the tokens it spells (the agent reports a token after the text it completes). With a
 * browser, its citation marks in the content become links with url_citation annotations, as the
 * Responses API's (a partial mark is held back until it completes; an annotation streams in the
 * chunk whose content holds its link).
 */
export class ChatBuilder {
  reasoning = '';
  content = '';
  readonly toolCalls: ChatToolCall[] = [];
  readonly tokenLogprobs: JsonRecord[] = [];
  /** The content's citations, as OpenAI's Chat Completions reports web-search ones. */
  readonly annotations: JsonRecord[] = [];
  private mode: 'reasoning' | 'content' | 'call' | 'none' = 'none';
  /** Length of the current message's text already added to `content`. */
  private finalStreamed = 0;
  /** Content not yet streamed, and how many logprob entries went out with earlier chunks. */
  private pendingContent = '';
  private sentLogprobs = 0;
  /** Index of the current message's first logprob entry. */
  private messageLogprobs = 0;
  /** Annotations of the held content, streamed with it. */
  private pendingAnnotations: JsonRecord[] = [];
  /** One stream for the whole content: its offsets are positions in `content`. */
  private readonly citations: CitationStream | undefined;
  private readonly logprobs: boolean;
  private readonly emit: ((delta: JsonRecord, logprobs?: JsonRecord[]) => void) | undefined;

  constructor(logprobs: boolean, emit?: (delta: JsonRecord, logprobs?: JsonRecord[]) => void, citationSource?: CitationSource) {
    this.logprobs = logprobs;
    this.emit = emit;
    if (citationSource !== undefined) this.citations = new CitationStream(citationSource);
  }

  onEvent(e: AgentEvent): void {
    switch (e.type) {
      case 'message_start': {
        this.flushContent();
        this.messageLogprobs = this.tokenLogprobs.length;
        const target = e.target;
        if (e.role !== 'assistant') this.mode = 'none';
        else if (target.kind === 'function') {
          this.mode = 'call';
          const call: ChatToolCall = { id: newId('call'), type: 'function', function: { name: target.name, arguments: '' } };
          this.toolCalls.push(call);
          this.emit?.({ tool_calls: [{ index: this.toolCalls.length - 1, id: call.id, type: 'function', function: { name: call.function.name, arguments: '' } }] });
        } else if (target.kind !== 'none') this.mode = 'none';
        // The final answer and commentary preambles (text meant for the user before a tool call)
        // are content; analysis is reasoning.
        else if (e.channel === 'final' || e.channel === 'commentary') this.mode = 'content';
        else this.mode = 'reasoning';
        break;
      }
      case 'delta':
        if (this.mode === 'reasoning') {
          this.reasoning += e.text;
          this.emit?.({ reasoning: e.text, reasoning_content: e.text });
        } else if (this.mode === 'content') {
          this.addContent(this.citations !== undefined ? this.cited(this.citations.push(e.text)) : e.text);
        } else if (this.mode === 'call') {
          const call = this.toolCalls[this.toolCalls.length - 1]!;
          call.function.arguments += e.text;
          this.emit?.({ tool_calls: [{ index: this.toolCalls.length - 1, function: { arguments: e.text } }] });
        }
        break;
      case 'message_done':
        // A citation mark is whole within one message: what the stream held back is plain text.
        if (this.mode === 'content' && this.citations !== undefined) this.addContent(this.cited(this.citations.flush()));
        if (this.mode === 'content' && e.message.channel === 'final') {
          // A stop string may have cut the final text after it streamed; keep the cut version, and
          // the logprobs of the tokens that begin before the cut. (The completion holds back text
          // that may begin a stop string, so with citations resolved the streamed text stands.)
          const text = e.message.content.map((c) => (c.type === 'text' ? c.text : '')).join('');
          if (this.citations === undefined) this.content = this.content.slice(0, this.content.length - this.finalStreamed) + text;
          this.dropLogprobsAfter(Buffer.byteLength(text));
        }
        this.flushContent(true);
        this.finalStreamed = 0;
        this.mode = 'none';
        break;
      case 'token':
        if (this.logprobs && this.mode === 'content' && !getTokenizer().isSpecial(e.token.token)) this.tokenLogprobs.push(logprobEntry(e.token));
        this.flushContent();
        break;
      default:
        break;
    }
  }

  private addContent(text: string): void {
    this.content += text;
    this.finalStreamed += text.length;
    this.pendingContent += text;
  }

  /** Records the citations the stream resolved in `text` (just released by it). */
  private cited(text: string): string {
    const all = this.citations!.citations;
    for (let i = this.annotations.length; i < all.length; i++) {
      const a = chatAnnotation(all[i]!);
      this.annotations.push(a);
      this.pendingAnnotations.push(a);
    }
    return text;
  }

  /** Streams the held content with the logprobs not sent yet; at a message's end, also logprobs alone. */
  private flushContent(messageEnd = false): void {
    const unsent = this.tokenLogprobs.length - this.sentLogprobs;
    if (this.pendingContent === '' && !(messageEnd && unsent > 0)) return;
    const delta: JsonRecord = { content: this.pendingContent };
    if (this.pendingAnnotations.length > 0) delta['annotations'] = this.pendingAnnotations;
    this.pendingContent = '';
    this.pendingAnnotations = [];
    if (!this.logprobs) {
      this.emit?.(delta);
      return;
    }
    this.emit?.(delta, this.tokenLogprobs.slice(this.sentLogprobs));
    this.sentLogprobs = this.tokenLogprobs.length;
  }

  /** Drops the current message's logprob entries of tokens that begin `bytes` or more into it. */
  private dropLogprobsAfter(bytes: number): void {
    let offset = 0;
    for (let i = this.messageLogprobs; i < this.tokenLogprobs.length; i++) {
      if (offset >= bytes) {
        this.tokenLogprobs.length = Math.max(i, this.sentLogprobs);
        return;
      }
      offset += (this.tokenLogprobs[i]!['bytes'] as number[]).length;
    }
  }
}

/** A citation as Chat Completions reports one: its place in `content`, the page's address and title. */
function chatAnnotation(c: Citation): JsonRecord {
  return { type: 'url_citation', url_citation: { start_index: c.start, end_index: c.end, url: c.url, title: c.title } };
}

function tokenInfo(id: number): { token: string; bytes: number[] } {
  const tok = getTokenizer();
  const bytes = [...tok.tokenBytes(id)];
  return { token: tok.tokenName(id) ?? Buffer.from(bytes).toString('utf8'), bytes };
}

function logprobEntry(t: GeneratedToken): JsonRecord {
  return {
    ...tokenInfo(t.token),
    logprob: t.logprob ?? 0,
    top_logprobs: (t.topLogprobs ?? []).map((a) => ({ ...tokenInfo(a.token), logprob: a.logprob })),
  } as JsonRecord;
}

export function finishReasonOf(result: AgentResult, builder: ChatBuilder): 'stop' | 'length' | 'tool_calls' {
  if (result.finishReason === 'function_call') return 'tool_calls';
  if (result.finishReason === 'length' || result.finishReason === 'context') return 'length';
  return 'stop';
}

export function chatUsage(result: AgentResult): JsonRecord {
  const u = result.usage;
  return {
    prompt_tokens: u.promptTokens,
    completion_tokens: u.completionTokens,
    total_tokens: u.promptTokens + u.completionTokens,
    prompt_tokens_details: { cached_tokens: u.cachedTokens },
    completion_tokens_details: { reasoning_tokens: u.reasoningTokens },
  };
}
