// POST /v1/responses: the Responses API on the agent loop. Request items become harmony messages
// (reasoning -> analysis, function_call -> a commentary call to functions.X, function_call_output ->
// the tool's answer, item_reference -> the stored item it names); the loop's events become output
// items (reasoning, message, function_call, web_search_call, code_interpreter_call) and, when
// streaming, the Responses event sequence with consecutive sequence numbers, the shapes of the
// official reference server's recorded streams.
import type { AgentEvent, AgentResult, RecipientTarget } from '../engine/agent.ts';
import type { JsonSchema } from '../engine/constrained.ts';
import { REASONING_EFFORTS, createMessage, type Message, type ReasoningEffort } from '../harmony/index.ts';
import { CitationStream, type CitationSource, type Tool } from '../tools/index.ts';
import { builtinTool, formatInstructions, formatSchema, newId, nowSeconds, parseFunction, promptHead, strictSchemas, type ParsedFunction, type ServerContext } from './common.ts';
import { ApiError, invalid } from './errors.ts';
import type { TurnRequest } from '../engine/turn.ts';
import { contentText, isRecord, oneOf, optArray, optBool, optMetadata, optNumber, optString, record, type Json, type JsonRecord } from './validate.ts';

export interface ResponsesRequest {
  turn: TurnRequest;
  /** `reasoning.summary` was asked for: reasoning items carry their text as the summary too. */
  summarize: boolean;
  /** The request's browser, whose pages the answer's citation marks refer to. */
  citations?: CitationSource;
  stream: boolean;
  store: boolean;
  /** Conversation turns (no system/developer) including this request's input, for the store. */
  turns: Message[];
  /** The input items that carry an id (later requests may refer to them), for the store. */
  inputItems: JsonRecord[];
  /** Echoed request fields of the response object. */
  echo: {
    instructions: string | null;
    max_output_tokens: number | null;
    previous_response_id: string | null;
    reasoning: { effort: ReasoningEffort; summary: ReasoningSummary | null };
    temperature: number;
    top_p: number;
    text: { format: Json };
    tool_choice: Json;
    tools: Json[];
    metadata: Json;
    parallel_tool_calls: boolean;
    store: boolean;
  };
}

const INPUT_TEXT_TYPES = ['input_text', 'output_text', 'text'] as const;
const REASONING_SUMMARIES = ['auto', 'concise', 'detailed'] as const;
type ReasoningSummary = (typeof REASONING_SUMMARIES)[number];

/** Validates and converts a request body. `contextRoom` bounds max_output_tokens' default. */
export function parseResponsesRequest(ctx: ServerContext, body: JsonRecord, contextRoom: number): ResponsesRequest {
  const instructionsIn = optString(body, 'instructions');
  const reasoning = body['reasoning'] === undefined || body['reasoning'] === null ? {} : record(body['reasoning'], 'reasoning');
  const effort = oneOf(optString(reasoning, 'effort', 'reasoning.effort'), REASONING_EFFORTS, 'reasoning.effort') ?? ctx.defaultEffort;
  const summary = oneOf(optString(reasoning, 'summary', 'reasoning.summary'), REASONING_SUMMARIES, 'reasoning.summary');
  const maxOutput = optNumber(body, 'max_output_tokens', { min: 1, integer: true });
  const temperature = optNumber(body, 'temperature', { min: 0, max: 2 });
  const topP = optNumber(body, 'top_p', { min: 0, max: 1 });
  const stream = optBool(body, 'stream') ?? false;
  const store = optBool(body, 'store') ?? true;
  const previousId = optString(body, 'previous_response_id');
  const seed = optNumber(body, 'seed', { integer: true });
  if (topP === 0) throw invalid('top_p', 'top_p must be > 0');

  // Tools.
  const functions: ParsedFunction[] = [];
  const builtins: Tool[] = [];
  const toolsIn = optArray(body, 'tools') ?? [];
  toolsIn.forEach((t, i) => {
    const tool = record(t, `tools[${i}]`);
    const type = optString(tool, 'type', `tools[${i}].type`);
    if (type === 'function') functions.push(parseFunction(tool, `tools[${i}]`));
    else if (type === 'browser_search' || type === 'web_search' || type === 'web_search_preview') {
      if (!builtins.some((b) => b.name === 'browser')) builtins.push(builtinTool(ctx, 'browser', `tools[${i}].type`));
    } else if (type === 'code_interpreter') {
      if (!builtins.some((b) => b.name === 'python')) builtins.push(builtinTool(ctx, 'python', `tools[${i}].type`));
    } else throw invalid(`tools[${i}].type`, `unsupported tool type '${String(type)}' (supported: function, browser_search, web_search, code_interpreter)`);
  });
  const toolChoice = parseToolChoice(body['tool_choice'], functions);
  const offered = toolChoice === 'none' ? [] : typeof toolChoice === 'object' ? functions.filter((f) => f.tool.name === toolChoice.name) : functions;

  // Structured output.
  let finalSchema: JsonSchema | undefined;
  let formatName: string | undefined;
  let textFormat: Json = { type: 'text' };
  if (body['text'] !== undefined && body['text'] !== null) {
    const text = record(body['text'], 'text');
    if (text['format'] !== undefined && text['format'] !== null) {
      const format = record(text['format'], 'text.format');
      textFormat = format;
      const type = oneOf(optString(format, 'type', 'text.format.type'), ['text', 'json_schema', 'json_object'] as const, 'text.format.type');
      if (type === 'json_schema') {
        finalSchema = formatSchema(format['schema'], 'text.format.schema');
        formatName = optString(format, 'name', 'text.format.name');
      } else if (type === 'json_object') finalSchema = { type: 'object' };
    }
  }

  // Conversation: stored turns of the previous response, then this input.
  const turns: Message[] = [];
  if (previousId !== undefined) {
    const previous = ctx.store.get(previousId);
    if (previous === undefined) throw new ApiError(404, `Previous response with id '${previousId}' not found.`, { param: 'previous_response_id', code: 'previous_response_not_found' });
    turns.push(...previous.turns);
  }
  const extraInstructions: string[] = [];
  turns.push(...inputMessages(body['input'], turns, extraInstructions, (id) => ctx.store.item(id)));
  if (!turns.some((m) => m.author.role === 'user' || m.author.role === 'tool')) throw invalid('input', 'input must contain at least one user message or function_call_output');
  const instructions = [instructionsIn, ...extraInstructions].filter((s): s is string => s !== undefined && s !== '').join('\n\n') || undefined;

  const head = promptHead({
    effort,
    instructions: formatInstructions(instructions, finalSchema, formatName),
    builtinTools: builtins,
    functionTools: offered.map((f) => f.tool),
  });
  const maxTokens = Math.min(maxOutput ?? contextRoom, contextRoom);
  const browser = builtins.find((b) => b.name === 'browser');
  const citations = browser !== undefined && 'pageAt' in browser && 'pageStack' in browser ? (browser as unknown as CitationSource) : undefined;
  return {
    ...(citations !== undefined ? { citations } : {}),
    stream,
    store,
    summarize: summary !== undefined,
    turns,
    inputItems: Array.isArray(body['input']) ? body['input'].filter((i): i is JsonRecord => isRecord(i) && typeof i['id'] === 'string' && itemType(i) !== 'item_reference') : [],
    turn: {
      messages: [...head, ...turns],
      builtinTools: builtins,
      functionTools: offered.map((f) => f.tool),
      functionSchemas: strictSchemas(offered),
      ...(finalSchema !== undefined ? { finalSchema } : {}),
      ...((toolChoice === 'required' || typeof toolChoice === 'object') && offered.length > 0 ? { requireFunctionCall: true } : {}),
      sampling: { ...(temperature !== undefined ? { temperature } : {}), ...(topP !== undefined ? { topP } : {}) },
      ...(seed !== undefined ? { seed } : {}),
      maxTokens,
    },
    echo: {
      instructions: instructionsIn ?? null,
      max_output_tokens: maxOutput ?? null,
      previous_response_id: previousId ?? null,
      reasoning: { effort, summary: summary ?? null },
      temperature: temperature ?? 1,
      top_p: topP ?? 1,
      text: { format: textFormat },
      tool_choice: (body['tool_choice'] ?? 'auto') as Json,
      tools: toolsIn,
      metadata: optMetadata(body) ?? {},
      parallel_tool_calls: optBool(body, 'parallel_tool_calls') ?? false,
      store,
    },
  };
}

function parseToolChoice(v: Json | undefined, functions: readonly ParsedFunction[]): 'auto' | 'none' | 'required' | { name: string } {
  if (v === undefined || v === null || v === 'auto') return 'auto';
  if (v === 'none' || v === 'required') return v;
  if (isRecord(v) && v['type'] === 'function' && typeof v['name'] === 'string') {
    const name = v['name'];
    if (!functions.some((f) => f.tool.name === name)) throw invalid('tool_choice', `tool_choice names function '${name}', which is not in tools`);
    return { name };
  }
  throw invalid('tool_choice', "tool_choice must be 'auto', 'none', 'required' or {type:'function', name}");
}

/** An input item's type: `message` when it has none, `item_reference` for a bare `{id}`. */
function itemType(item: JsonRecord, param = 'input'): string {
  const type = optString(item, 'type', `${param}.type`);
  if (type !== undefined) return type;
  return item['role'] === undefined && typeof item['id'] === 'string' ? 'item_reference' : 'message';
}

/**
 * Converts `input` to harmony messages; `prior` holds earlier turns (function call ids live there),
 * `stored` finds the items that `item_reference` inputs name.
 */
function inputMessages(input: Json | undefined, prior: readonly Message[], instructions: string[], stored: (id: string) => JsonRecord | undefined): Message[] {
  if (input === undefined || input === null) throw invalid('input', 'input is required');
  if (typeof input === 'string') return [createMessage('user', input)];
  if (!Array.isArray(input)) throw invalid('input', 'input must be a string or an array of items');
  const out: Message[] = [];
  const callNames = new Map<string, string>();
  for (const m of prior) {
    const id = callIdOf(m);
    if (id !== undefined && m.recipient !== undefined) callNames.set(id, m.recipient);
  }
  const convert = (item: JsonRecord, param: string, referenced: boolean): void => {
    const type = itemType(item, param);
    switch (type) {
      case 'message': {
        const role = oneOf(optString(item, 'role', `${param}.role`), ['user', 'assistant', 'system', 'developer'] as const, `${param}.role`);
        if (role === undefined) throw invalid(`${param}.role`, `${param}.role is required`);
        const text = contentText(item['content'], `${param}.content`, INPUT_TEXT_TYPES);
        if (role === 'system' || role === 'developer') instructions.push(text);
        else if (role === 'user') out.push(createMessage('user', text));
        else out.push(createMessage('assistant', text, { channel: 'final' }));
        break;
      }
      case 'reasoning': {
        const parts = optArray(item, 'content', `${param}.content`) ?? [];
        let text = parts.map((p, j) => optString(record(p, `${param}.content[${j}]`), 'text', `${param}.content[${j}].text`) ?? '').join('');
        if (text === '') {
          const summary = optArray(item, 'summary', `${param}.summary`) ?? [];
          text = summary.map((p, j) => optString(record(p, `${param}.summary[${j}]`), 'text', `${param}.summary[${j}].text`) ?? '').join('\n');
        }
        if (text !== '') out.push(createMessage('assistant', text, { channel: 'analysis' }));
        break;
      }
      case 'function_call': {
        const name = optString(item, 'name', `${param}.name`);
        if (name === undefined) throw invalid(`${param}.name`, `${param}.name is required`);
        const args = optString(item, 'arguments', `${param}.arguments`) ?? '{}';
        const callId = optString(item, 'call_id', `${param}.call_id`) ?? optString(item, 'id', `${param}.id`) ?? newId('call');
        const m = createMessage('assistant', args, { channel: 'commentary', recipient: `functions.${name}`, contentType: '<|constrain|>json' });
        setCallId(m, callId);
        callNames.set(callId, `functions.${name}`);
        out.push(m);
        break;
      }
      case 'function_call_output': {
        const callId = optString(item, 'call_id', `${param}.call_id`);
        if (callId === undefined) throw invalid(`${param}.call_id`, `${param}.call_id is required`);
        const name = callNames.get(callId);
        if (name === undefined) throw invalid(`${param}.call_id`, `no function_call with call_id '${callId}' precedes this output`);
        const output = item['output'];
        const text = typeof output === 'string' ? output : contentText(output, `${param}.output`, INPUT_TEXT_TYPES);
        out.push(createMessage({ role: 'tool', name }, text, { recipient: 'assistant', channel: 'commentary' }));
        break;
      }
      case 'web_search_call':
      case 'code_interpreter_call':
        // Built-in calls ran on the server; their results are not part of the input, and the model
        // does not need the call without its result.
        break;
      case 'item_reference': {
        // Clients that rely on the store (the AI SDK among them) send earlier items by id.
        const id = optString(item, 'id', `${param}.id`);
        if (id === undefined) throw invalid(`${param}.id`, `${param}.id is required for an item_reference`);
        const target = referenced ? undefined : stored(id);
        if (target === undefined) throw invalid('input', `Item with id '${id}' not found (${param}); only items of stored responses can be referenced.`);
        convert(target, param, true);
        break;
      }
      default:
        throw invalid(`${param}.type`, `unsupported input item type '${type}'`);
    }
  };
  input.forEach((raw, i) => convert(record(raw, `input[${i}]`), `input[${i}]`, false));
  return out;
}

// The call id of a function call travels with its harmony message (not rendered) so that a
// stored conversation can match later function_call_output items to it.
const callIds = new WeakMap<Message, string>();
function setCallId(m: Message, id: string): void {
  callIds.set(m, id);
}
function callIdOf(m: Message): string | undefined {
  return callIds.get(m);
}

// ---- output ------------------------------------------------------------------------------------

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
