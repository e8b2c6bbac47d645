// A Responses API request as a turn: request items become harmony messages (reasoning ->
// analysis, function_call -> a commentary call to functions.X, function_call_output -> the tool's
// answer, item_reference -> the stored item it names), tools become built-ins and functions,
// text.format a schema; earlier turns come from the store (previous_response_id).
import type { JsonSchema } from '../../engine/constrained.ts';
import { REASONING_EFFORTS, createMessage, type Message, type ReasoningEffort } from '../../harmony/index.ts';
import type { CitationSource, Tool } from '../../tools/index.ts';
import { builtinTool, citationSource, defaultBuiltins, formatInstructions, formatSchema, newId, parseFunction, promptHead, strictSchemas, type ParsedFunction, type ServerContext } from '../common.ts';
import { ApiError, invalid } from '../errors.ts';
import { samplingParams } from '../../engine/sampler.ts';
import type { TurnRequest } from '../../engine/turn.ts';
import { contentText, isRecord, oneOf, optArray, optBool, optMetadata, optNumber, optString, record, type Json, type JsonRecord } from '../validate.ts';

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
  const modelSampling = samplingParams({}, ctx.engine.info.sampling);

  // Tools.
  const functions: ParsedFunction[] = [];
  const builtins: Tool[] = [];
  const toolsIn = optArray(body, 'tools') ?? [];
  if (body['tools'] === undefined || body['tools'] === null) builtins.push(...defaultBuiltins(ctx));
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
  const citations = citationSource(builtins);
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
      // What the request will run with: its own value, else the model's default (generation_config.json).
      temperature: temperature ?? modelSampling.temperature,
      top_p: topP ?? modelSampling.topP,
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
export function setCallId(m: Message, id: string): void {
  callIds.set(m, id);
}
function callIdOf(m: Message): string | undefined {
  return callIds.get(m);
}

