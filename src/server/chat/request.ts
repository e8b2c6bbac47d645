// A Chat Completions request as a turn: System and developer messages become the developer
// instructions; an assistant message's reasoning (`reasoning` or `reasoning_content`) becomes an
// analysis message, its tool_calls commentary calls to functions.X, and tool messages the
// functions' answers; a request with no tools gets the server's built-in ones when it offers them
// by default (the embedded gpt-oss-nano's). (The model's reasoning comes back in `message.reasoning` and
// `message.reasoning_content`, never inside `content`: see events.ts.)
import type { JsonSchema } from '../../engine/constrained.ts';
import { REASONING_EFFORTS, createMessage, type Message } from '../../harmony/index.ts';
import { getTokenizer } from '../../tokenizer/index.ts';
import type { CitationSource } from '../../tools/index.ts';
import { citationSource, defaultBuiltins, formatInstructions, formatSchema, parseFunction, promptHead, strictSchemas, type ParsedFunction, type ServerContext } from '../common.ts';
import { invalid } from '../errors.ts';
import type { TurnRequest } from '../../engine/turn.ts';
import { contentText, isRecord, oneOf, optArray, optBool, optMetadata, optNumber, optString, record, type Json, type JsonRecord } from '../validate.ts';

export interface ChatRequest {
  turn: TurnRequest;
  stream: boolean;
  includeUsage: boolean;
  logprobs: boolean;
  topLogprobs: number;
  /** The request's browser, whose pages the answer's citation marks refer to. */
  citations?: CitationSource;
}

const TEXT_TYPES = ['text', 'input_text'] as const;

export function parseChatRequest(ctx: ServerContext, body: JsonRecord, contextRoom: number): ChatRequest {
  const messagesIn = optArray(body, 'messages');
  if (messagesIn === undefined || messagesIn.length === 0) throw invalid('messages', 'messages must be a non-empty array');
  const effort = oneOf(optString(body, 'reasoning_effort'), REASONING_EFFORTS, 'reasoning_effort') ?? ctx.defaultEffort;
  const n = optNumber(body, 'n', { min: 1, integer: true });
  if (n !== undefined && n > 1) throw invalid('n', 'n > 1 is not supported; send several requests');
  const maxTokens = optNumber(body, 'max_completion_tokens', { min: 1, integer: true }) ?? optNumber(body, 'max_tokens', { min: 1, integer: true });
  const temperature = optNumber(body, 'temperature', { min: 0, max: 2 });
  const topP = optNumber(body, 'top_p', { min: 0, max: 1 });
  if (topP === 0) throw invalid('top_p', 'top_p must be > 0');
  const frequencyPenalty = optNumber(body, 'frequency_penalty', { min: -2, max: 2 });
  const presencePenalty = optNumber(body, 'presence_penalty', { min: -2, max: 2 });
  const seed = optNumber(body, 'seed', { integer: true });
  const stream = optBool(body, 'stream') ?? false;
  const streamOptions = body['stream_options'] === undefined || body['stream_options'] === null ? {} : record(body['stream_options'], 'stream_options');
  const includeUsage = optBool(streamOptions, 'include_usage', 'stream_options.include_usage') ?? false;
  const logprobs = optBool(body, 'logprobs') ?? false;
  const topLogprobs = optNumber(body, 'top_logprobs', { min: 0, max: 20, integer: true }) ?? 0;
  if (topLogprobs > 0 && !logprobs) throw invalid('top_logprobs', 'top_logprobs requires logprobs: true');
  // Checked as OpenAI bounds it, then not kept: the API returns metadata only with stored chat
  // completions (`store`), which this server does not keep; a chat completion object has none.
  optMetadata(body);

  let logitBias: Map<number, number> | undefined;
  if (body['logit_bias'] !== undefined && body['logit_bias'] !== null) {
    const raw = record(body['logit_bias'], 'logit_bias');
    logitBias = new Map();
    for (const [key, value] of Object.entries(raw)) {
      const id = Number(key);
      if (!Number.isInteger(id) || id < 0 || id >= getTokenizer().vocabSize) throw invalid('logit_bias', `logit_bias key '${key}' is not a token id`);
      if (typeof value !== 'number' || value < -100 || value > 100) throw invalid('logit_bias', `logit_bias['${key}'] must be a number in [-100, 100]`);
      logitBias.set(id, value);
    }
  }
  let stop: string[] = [];
  const stopIn = body['stop'];
  if (typeof stopIn === 'string') stop = [stopIn];
  else if (Array.isArray(stopIn)) {
    if (stopIn.length > 4 || !stopIn.every((s) => typeof s === 'string')) throw invalid('stop', 'stop must be a string or an array of at most 4 strings');
    stop = stopIn as string[];
  } else if (stopIn !== undefined && stopIn !== null) throw invalid('stop', 'stop must be a string or an array of strings');

  const functions: ParsedFunction[] = [];
  (optArray(body, 'tools') ?? []).forEach((t, i) => {
    const tool = record(t, `tools[${i}]`);
    if (tool['type'] !== 'function') throw invalid(`tools[${i}].type`, `unsupported tool type '${String(tool['type'])}' (supported: function)`);
    functions.push(parseFunction(record(tool['function'], `tools[${i}].function`), `tools[${i}].function`));
  });
  const choice = body['tool_choice'];
  let offered = functions;
  if (choice === 'none') offered = [];
  else if (isRecord(choice)) {
    const fn = isRecord(choice['function']) ? choice['function']['name'] : undefined;
    if (typeof fn !== 'string' || !functions.some((f) => f.tool.name === fn)) throw invalid('tool_choice', 'tool_choice must name a function listed in tools');
    offered = functions.filter((f) => f.tool.name === fn);
  } else if (choice !== undefined && choice !== null && choice !== 'auto' && choice !== 'required') {
    throw invalid('tool_choice', "tool_choice must be 'none', 'auto', 'required' or {type:'function', function:{name}}");
  }

  let finalSchema: JsonSchema | undefined;
  let formatName: string | undefined;
  if (body['response_format'] !== undefined && body['response_format'] !== null) {
    const format = record(body['response_format'], 'response_format');
    const type = oneOf(optString(format, 'type', 'response_format.type'), ['text', 'json_object', 'json_schema'] as const, 'response_format.type');
    if (type === 'json_object') finalSchema = { type: 'object' };
    else if (type === 'json_schema') {
      const js = record(format['json_schema'], 'response_format.json_schema');
      finalSchema = formatSchema(js['schema'], 'response_format.json_schema.schema');
      formatName = optString(js, 'name', 'response_format.json_schema.name');
    }
  }

  // Built-in tools run on the server, only ever by default: Chat Completions has no way to name them.
  const builtins = body['tools'] === undefined || body['tools'] === null ? defaultBuiltins(ctx) : [];
  const instructions: string[] = [];
  const turns = chatMessages(messagesIn, instructions);
  const head = promptHead({
    effort,
    instructions: formatInstructions(instructions.join('\n\n') || undefined, finalSchema, formatName),
    builtinTools: builtins,
    functionTools: offered.map((f) => f.tool),
  });
  const citations = citationSource(builtins);
  return {
    ...(citations !== undefined ? { citations } : {}),
    stream,
    includeUsage,
    logprobs,
    topLogprobs,
    turn: {
      messages: [...head, ...turns],
      builtinTools: builtins,
      functionTools: offered.map((f) => f.tool),
      functionSchemas: strictSchemas(offered),
      ...(finalSchema !== undefined ? { finalSchema } : {}),
      ...((choice === 'required' || isRecord(choice)) && offered.length > 0 ? { requireFunctionCall: true } : {}),
      sampling: {
        ...(temperature !== undefined ? { temperature } : {}),
        ...(topP !== undefined ? { topP } : {}),
        ...(frequencyPenalty !== undefined ? { frequencyPenalty } : {}),
        ...(presencePenalty !== undefined ? { presencePenalty } : {}),
      },
      ...(seed !== undefined ? { seed } : {}),
      maxTokens: Math.min(maxTokens ?? contextRoom, contextRoom),
      stopStrings: stop,
      ...(logitBias !== undefined ? { logitBias } : {}),
      logprobs,
      topLogprobs,
    },
  };
}

function chatMessages(messages: Json[], instructions: string[]): Message[] {
  const out: Message[] = [];
  const callNames = new Map<string, string>();
  messages.forEach((raw, i) => {
    const param = `messages[${i}]`;
    const m = record(raw, param);
    const role = oneOf(optString(m, 'role', `${param}.role`), ['system', 'developer', 'user', 'assistant', 'tool'] as const, `${param}.role`);
    if (role === undefined) throw invalid(`${param}.role`, `${param}.role is required`);
    switch (role) {
      case 'system':
      case 'developer':
        instructions.push(contentText(m['content'], `${param}.content`, TEXT_TYPES));
        break;
      case 'user':
        out.push(createMessage('user', contentText(m['content'], `${param}.content`, TEXT_TYPES)));
        break;
      case 'assistant': {
        const reasoning = optString(m, 'reasoning', `${param}.reasoning`) ?? optString(m, 'reasoning_content', `${param}.reasoning_content`);
        if (reasoning !== undefined && reasoning !== '') out.push(createMessage('assistant', reasoning, { channel: 'analysis' }));
        const content = m['content'] === undefined || m['content'] === null ? '' : contentText(m['content'], `${param}.content`, [...TEXT_TYPES, 'refusal']);
        const calls = optArray(m, 'tool_calls', `${param}.tool_calls`) ?? [];
        calls.forEach((c, j) => {
          const cp = `${param}.tool_calls[${j}]`;
          const call = record(c, cp);
          const fn = record(call['function'], `${cp}.function`);
          const name = optString(fn, 'name', `${cp}.function.name`);
          if (name === undefined) throw invalid(`${cp}.function.name`, `${cp}.function.name is required`);
          const id = optString(call, 'id', `${cp}.id`);
          if (id !== undefined) callNames.set(id, name);
          out.push(createMessage('assistant', optString(fn, 'arguments', `${cp}.function.arguments`) ?? '{}', { channel: 'commentary', recipient: `functions.${name}`, contentType: '<|constrain|>json' }));
        });
        // Text next to tool calls is a preamble on commentary; otherwise it is the final answer.
        if (content !== '') {
          const message = createMessage('assistant', content, { channel: calls.length > 0 ? 'commentary' : 'final' });
          if (calls.length > 0) out.splice(out.length - calls.length, 0, message);
          else out.push(message);
        }
        break;
      }
      case 'tool': {
        const id = optString(m, 'tool_call_id', `${param}.tool_call_id`);
        const name = (id !== undefined ? callNames.get(id) : undefined) ?? optString(m, 'name', `${param}.name`);
        if (name === undefined) throw invalid(`${param}.tool_call_id`, `${param}.tool_call_id does not match any earlier assistant tool call`);
        out.push(createMessage({ role: 'tool', name: `functions.${name}` }, contentText(m['content'], `${param}.content`, TEXT_TYPES), { recipient: 'assistant', channel: 'commentary' }));
        break;
      }
    }
  });
  if (!out.some((m) => m.author.role === 'user' || m.author.role === 'tool')) throw invalid('messages', 'messages must contain at least one user or tool message');
  return out;
}

