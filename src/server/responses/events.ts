// The Responses API's output: the loop's events become output items (reasoning, message,
// function_call, web_search_call, code_interpreter_call) and, when streaming, the Responses event
// sequence with consecutive sequence numbers, the shapes of the official reference server's
// recorded streams; the response object itself; the call ids kept for the store.
import type { AgentEvent, AgentResult, RecipientTarget } from '../../engine/agent.ts';
import type { Message } from '../../harmony/index.ts';
import { CitationStream, type CitationSource } from '../../tools/index.ts';
import { newId } from '../common.ts';
import { isRecord, type JsonRecord } from '../validate.ts';
import { setCallId, type ResponsesRequest } from './request.ts';

export type ResponseEvent = { type: string; sequence_number: number } & Record<string, unknown>;

type OpenItem =
  | { kind: 'reasoning'; id: string; index: number; text: string }
  | { kind: 'message'; id: string; index: number; text: string; citations?: CitationStream }
  | { kind: 'function_call'; id: string; index: number; callId: string; name: string; text: string }
  | { kind: 'web_search_call'; id: string; index: number; text: string; recipient: string }
  | { kind: 'code_interpreter_call'; id: string; index: number; text: string };

/**
 * Turns agent events into output items and (when `emit` is given) the streaming events. One per
 * response; `output` is the list of finished items in order.
 */
export class ResponseBuilder {
  readonly output: JsonRecord[] = [];
  private sequence = 0;
  private open: OpenItem | undefined;
  /**
   * A message or function call whose text ended, held until the next event tells how: its closing
   * token follows at once, while one cut by max_output_tokens is followed only by the run's end.
   */
  private closing: { item: OpenItem; message: Message } | undefined;
  private pendingTools: OpenItem[] = [];
  private readonly emit: ((e: ResponseEvent) => void) | undefined;

  private readonly citationSource: CitationSource | undefined;
  /**
   * The request asked for a reasoning summary. There is no summarizer: the raw reasoning is the
   * summary as well as the content, for clients that read only the summary.
   */
  private readonly summarize: boolean;

  constructor(emit?: (e: ResponseEvent) => void, citationSource?: CitationSource, summarize = false) {
    this.emit = emit;
    this.citationSource = citationSource;
    this.summarize = summarize;
  }

  send(type: string, fields: Record<string, unknown>): void {
    if (this.emit === undefined) return;
    this.emit({ type, sequence_number: this.sequence++, ...fields });
  }

  /** Index the next output item gets (finished items plus the ones still open). */
  private nextIndex(): number {
    return this.output.length + this.pendingTools.length + (this.open !== undefined ? 1 : 0) + (this.closing !== undefined ? 1 : 0);
  }

  onEvent(e: AgentEvent): void {
    if (this.closing !== undefined) {
      const { item, message } = this.closing;
      this.closing = undefined;
      this.finish(item, message, e.type === 'done' ? statusOf(e.result) : 'completed');
    }
    switch (e.type) {
      case 'message_start':
        if (e.role === 'assistant') this.start(e.channel, e.target);
        break;
      case 'delta':
        if (this.open !== undefined) this.delta(this.open, e.text);
        break;
      case 'message_done':
        if (this.open !== undefined && e.message.author.role === 'assistant') {
          if (this.open.kind === 'message' || this.open.kind === 'function_call') this.closing = { item: this.open, message: e.message };
          else this.finish(this.open, e.message, 'completed');
          this.open = undefined;
        }
        break;
      case 'tool_result':
        this.toolResult(e.message);
        break;
      default:
        break;
    }
  }

  private start(channel: string | undefined, target: RecipientTarget): void {
    const index = this.nextIndex();
    if (target.kind === 'function') {
      const item: OpenItem = { kind: 'function_call', id: newId('fc'), index, callId: newId('call'), name: target.name, text: '' };
      this.open = item;
      this.send('response.output_item.added', { output_index: index, item: this.functionItem(item, 'in_progress') });
    } else if (target.kind === 'builtin' && target.tool === 'browser') {
      // Built-in browser calls (misrouted functions.search/open/find among them) are announced when they run.
      this.open = { kind: 'web_search_call', id: newId('ws'), index, text: '', recipient: target.recipient };
    } else if (target.kind === 'builtin' && target.tool === 'python') {
      const item: OpenItem = { kind: 'code_interpreter_call', id: newId('ci'), index, text: '' };
      this.open = item;
      this.send('response.output_item.added', { output_index: index, item: this.codeItem(item, 'in_progress', null) });
      this.send('response.code_interpreter_call.in_progress', { output_index: index, item_id: item.id });
    } else if (target.kind !== 'none') {
      // A call to a tool that does not exist (the loop answers the model with an error), or a
      // message addressed to no tool: no item.
      this.open = undefined;
    } else if (channel === 'analysis') {
      const item: OpenItem = { kind: 'reasoning', id: newId('rs'), index, text: '' };
      this.open = item;
      this.send('response.output_item.added', { output_index: index, item: { id: item.id, type: 'reasoning', summary: [], content: [] } });
      this.send('response.content_part.added', { item_id: item.id, output_index: index, content_index: 0, part: { type: 'reasoning_text', text: '' } });
      if (this.summarize) this.send('response.reasoning_summary_part.added', { item_id: item.id, output_index: index, summary_index: 0, part: { type: 'summary_text', text: '' } });
    } else {
      // final answers and commentary preambles are assistant messages
      const item: OpenItem = { kind: 'message', id: newId('msg'), index, text: '' };
      // Browser citation marks become links plus url_citation annotations (held back while partial).
      if (this.citationSource !== undefined) item.citations = new CitationStream(this.citationSource);
      this.open = item;
      this.send('response.output_item.added', { output_index: index, item: { id: item.id, type: 'message', status: 'in_progress', role: 'assistant', content: [] } });
      this.send('response.content_part.added', { item_id: item.id, output_index: index, content_index: 0, part: { type: 'output_text', text: '', annotations: [], logprobs: [] } });
    }
  }

  private delta(item: OpenItem, raw: string): void {
    const text = item.kind === 'message' && item.citations !== undefined ? this.cited(item, item.citations.push(raw)) : raw;
    if (text === '') return;
    item.text += text;
    switch (item.kind) {
      case 'reasoning':
        this.send('response.reasoning_text.delta', { item_id: item.id, output_index: item.index, content_index: 0, delta: text });
        if (this.summarize) this.send('response.reasoning_summary_text.delta', { item_id: item.id, output_index: item.index, summary_index: 0, delta: text });
        break;
      case 'message':
        this.send('response.output_text.delta', { item_id: item.id, output_index: item.index, content_index: 0, delta: text, logprobs: [] });
        break;
      case 'function_call':
        this.send('response.function_call_arguments.delta', { item_id: item.id, output_index: item.index, delta: text });
        break;
      case 'code_interpreter_call':
        this.send('response.code_interpreter_call_code.delta', { item_id: item.id, output_index: item.index, delta: text });
        break;
      case 'web_search_call':
        break;
    }
  }

  /** Announces the citations resolved in `text` (just released by the citation stream). */
  private cited(item: Extract<OpenItem, { kind: 'message' }>, text: string): string {
    const all = item.citations!.citations;
    for (let i = this.annotationsSent(item); i < all.length; i++) {
      this.send('response.output_text.annotation.added', { item_id: item.id, output_index: item.index, content_index: 0, annotation_index: i, annotation: annotation(all[i]!) });
    }
    this.sentAnnotations.set(item.id, all.length);
    return text;
  }

  private readonly sentAnnotations = new Map<string, number>();
  private annotationsSent(item: OpenItem): number {
    return this.sentAnnotations.get(item.id) ?? 0;
  }

  private finish(item: OpenItem, message: Message, status: 'completed' | 'incomplete'): void {
    if (item.kind === 'message' && item.citations !== undefined) {
      const rest = this.cited(item, item.citations.flush());
      if (rest !== '') {
        item.text += rest;
        this.send('response.output_text.delta', { item_id: item.id, output_index: item.index, content_index: 0, delta: rest, logprobs: [] });
      }
    } else {
      // The message as finally parsed (a stop string may have cut it).
      item.text = message.content.map((c) => (c.type === 'text' ? c.text : '')).join('');
    }
    switch (item.kind) {
      case 'reasoning': {
        const part = { type: 'reasoning_text', text: item.text };
        this.send('response.reasoning_text.done', { item_id: item.id, output_index: item.index, content_index: 0, text: item.text });
        this.send('response.content_part.done', { item_id: item.id, output_index: item.index, content_index: 0, part });
        const summary = { type: 'summary_text', text: item.text };
        if (this.summarize) {
          this.send('response.reasoning_summary_text.done', { item_id: item.id, output_index: item.index, summary_index: 0, text: item.text });
          this.send('response.reasoning_summary_part.done', { item_id: item.id, output_index: item.index, summary_index: 0, part: summary });
        }
        this.done({ id: item.id, type: 'reasoning', summary: this.summarize ? [summary] : [], content: [part] }, item.index);
        break;
      }
      case 'message': {
        const annotations = (item.citations?.citations ?? []).map(annotation);
        const part = { type: 'output_text', text: item.text, annotations, logprobs: [] };
        this.send('response.output_text.done', { item_id: item.id, output_index: item.index, content_index: 0, text: item.text, logprobs: [] });
        this.send('response.content_part.done', { item_id: item.id, output_index: item.index, content_index: 0, part });
        this.done({ id: item.id, type: 'message', status, role: 'assistant', content: [part] }, item.index);
        break;
      }
      case 'function_call': {
        const args = item.text.trim() === '' ? '{}' : item.text;
        item.text = args;
        this.send('response.function_call_arguments.done', { item_id: item.id, output_index: item.index, arguments: args });
        this.done(this.functionItem(item, status), item.index);
        break;
      }
      case 'web_search_call':
        this.pendingTools.push(item);
        this.send('response.output_item.added', { output_index: item.index, item: this.searchItem(item, 'in_progress') });
        this.send('response.web_search_call.in_progress', { output_index: item.index, item_id: item.id });
        this.send('response.web_search_call.searching', { output_index: item.index, item_id: item.id });
        break;
      case 'code_interpreter_call':
        this.pendingTools.push(item);
        this.send('response.code_interpreter_call_code.done', { item_id: item.id, output_index: item.index, code: item.text });
        this.send('response.code_interpreter_call.interpreting', { output_index: item.index, item_id: item.id });
        break;
    }
  }

  private toolResult(message: Message): void {
    const item = this.pendingTools.shift();
    if (item === undefined) return;
    const output = message.content.map((c) => (c.type === 'text' ? c.text : '')).join('');
    if (item.kind === 'web_search_call') {
      this.send('response.web_search_call.completed', { output_index: item.index, item_id: item.id });
      this.done(this.searchItem(item, 'completed'), item.index);
    } else if (item.kind === 'code_interpreter_call') {
      this.send('response.code_interpreter_call.completed', { output_index: item.index, item_id: item.id });
      this.done(this.codeItem(item, 'completed', output), item.index);
    }
  }

  private done(item: JsonRecord, index: number): void {
    this.output.push(item);
    this.send('response.output_item.done', { output_index: index, item });
  }

  private functionItem(item: Extract<OpenItem, { kind: 'function_call' }>, status: string): JsonRecord {
    return { id: item.id, type: 'function_call', status, call_id: item.callId, name: item.name, arguments: status === 'in_progress' ? '' : item.text };
  }

  private searchItem(item: Extract<OpenItem, { kind: 'web_search_call' }>, status: string): JsonRecord {
    let args: JsonRecord = {};
    try {
      const parsed: unknown = JSON.parse(item.text);
      if (isRecord(parsed)) args = parsed;
    } catch {
      // malformed arguments: the browser answered with an error; report the call without details
    }
    const fn = item.recipient.split('.').pop();
    let action: JsonRecord;
    if (fn === 'open') action = { type: 'open_page', url: typeof args['id'] === 'string' ? args['id'] : null };
    else if (fn === 'find') action = { type: 'find', pattern: typeof args['pattern'] === 'string' ? args['pattern'] : '', url: null };
    else action = { type: 'search', query: typeof args['query'] === 'string' ? args['query'] : '' };
    return { id: item.id, type: 'web_search_call', status, action };
  }

  private codeItem(item: Extract<OpenItem, { kind: 'code_interpreter_call' }>, status: string, logs: string | null): JsonRecord {
    return { id: item.id, type: 'code_interpreter_call', status, code: item.text, container_id: 'local', outputs: logs === null ? null : [{ type: 'logs', logs }] };
  }

  /** The call ids of the function calls in the output, in order, for the store. */
  functionCallIds(): string[] {
    return this.output.filter((o) => o['type'] === 'function_call').map((o) => o['call_id'] as string);
  }
}

function annotation(c: { start: number; end: number; url: string; title: string }): JsonRecord {
  return { type: 'url_citation', start_index: c.start, end_index: c.end, url: c.url, title: c.title };
}

export interface ResponseObjectInput {
  id: string;
  createdAt: number;
  model: string;
  status: 'in_progress' | 'completed' | 'incomplete' | 'failed';
  output: JsonRecord[];
  echo: ResponsesRequest['echo'];
  result?: AgentResult;
}

export function responseObject(r: ResponseObjectInput): JsonRecord {
  const u = r.result?.usage;
  const incomplete = r.status === 'incomplete' ? { reason: 'max_output_tokens' } : null;
  return {
    id: r.id,
    object: 'response',
    created_at: r.createdAt,
    status: r.status,
    background: false,
    error: null,
    incomplete_details: incomplete,
    instructions: r.echo.instructions,
    max_output_tokens: r.echo.max_output_tokens,
    max_tool_calls: null,
    model: r.model,
    output: r.output,
    parallel_tool_calls: r.echo.parallel_tool_calls,
    previous_response_id: r.echo.previous_response_id,
    reasoning: r.echo.reasoning,
    service_tier: 'default',
    store: r.echo.store,
    temperature: r.echo.temperature,
    text: r.echo.text,
    tool_choice: r.echo.tool_choice,
    tools: r.echo.tools,
    top_logprobs: 0,
    top_p: r.echo.top_p,
    truncation: 'disabled',
    usage:
      u === undefined
        ? null
        : {
            input_tokens: u.promptTokens,
            input_tokens_details: { cached_tokens: u.cachedTokens },
            output_tokens: u.completionTokens,
            output_tokens_details: { reasoning_tokens: u.reasoningTokens },
            total_tokens: u.promptTokens + u.completionTokens,
          },
    user: null,
    metadata: r.echo.metadata,
  } as JsonRecord;
}

/** The response status for how the run ended. */
export function statusOf(result: AgentResult): 'completed' | 'incomplete' {
  return result.finishReason === 'length' || result.finishReason === 'context' ? 'incomplete' : 'completed';
}

/** Attaches the call ids the builder assigned to the function-call messages of the run, for the store. */
export function recordCallIds(messages: readonly Message[], builder: ResponseBuilder): void {
  const ids = builder.functionCallIds();
  let i = 0;
  for (const m of messages) {
    if (m.author.role === 'assistant' && m.recipient?.startsWith('functions.') === true && i < ids.length) setCallId(m, ids[i++]!);
  }
}
