// A chat turn for library callers: messages in, an async iterable of typed events out. Runs one
// turn through the engine's turn API (render once, the agent loop generates, parses and runs
// tools) and translates its events; the consumer's pace never blocks generation (events queue until read), and a consumer
// that stops reading aborts the run and frees its sequence.
import { isToolCall, type AgentEvent, type AgentFinishReason, type AgentResult, type RecipientTarget } from '../engine/agent.ts';
import { compileSchema, type JsonSchema } from '../engine/constrained.ts';
import type { Engine } from '../engine/engine.ts';
import { prepareTurn, runTurn } from '../engine/turn.ts';
import { UserError } from '../errors.ts';
import type { Tool } from '../tools/index.ts';
import { REASONING_EFFORTS, createConversation, createMessage, messageText, type Conversation, type JsonObject, type Message, type ReasoningEffort, type ToolDescription } from '../harmony/index.ts';
import { toGptossError } from './errors.ts';
import { prepareTools, type ToolDefinition } from './tools.ts';

/** A text message. `system` and `developer` messages become the developer instructions. */
export interface TextMessage {
  role: 'system' | 'developer' | 'user' | 'assistant';
  content: string;
}

/** An earlier call of one of your functions by the model (to continue after finishReason 'tool-calls'). */
export interface ToolCallMessage {
  role: 'assistant';
  toolCall: { name: string; arguments: string };
}

/** Your function's answer to the call before it. */
export interface ToolResultMessage {
  role: 'tool';
  /** The function's name. */
  name: string;
  content: string;
}

/** One message of the conversation. */
export type ChatMessage = TextMessage | ToolCallMessage | ToolResultMessage;

/**
 * Sampling settings; one left out takes the model's default (its generation_config.json, e.g.
 * greedy for gpt-oss-nano), else is off (or the model card's default).
 */
export interface SamplingOptions {
  /** Softmax temperature; 0 always picks the most likely token. Default the model's, else 1. */
  temperature?: number;
  /** Nucleus sampling: keep the most likely tokens whose probabilities add up to topP. Default the model's, else 1 (off). */
  topP?: number;
  /** Keep only the k most likely tokens. Default 0 (off). */
  topK?: number;
  /** Drop tokens less likely than minP times the most likely one. Default 0 (off). */
  minP?: number;
  /** Divides positive logits of tokens already generated (multiplies negative ones). Default 1 (off). */
  repetitionPenalty?: number;
  /** Subtracted from a token's logit per time it was generated, in [-2, 2]. Default 0. */
  frequencyPenalty?: number;
  /** Subtracted from a token's logit once it was generated, in [-2, 2]. Default 0. */
  presencePenalty?: number;
}

/** How one chat turn runs. */
export interface ChatOptions {
  /** How long the model thinks before answering. Default 'medium'. */
  reasoningEffort?: ReasoningEffort;
  /** Developer instructions, before those of any system/developer messages. */
  instructions?: string;
  /** Tools the model may call: your functions (with handlers), the browser, python. */
  tools?: readonly ToolDefinition[];
  /** JSON Schema the final answer must match: sampling is constrained so the answer always parses. */
  outputSchema?: JsonObject;
  /** Sampling settings. */
  sampling?: SamplingOptions;
  /** Seed of the sampler: the same seed, options and model give the same output. */
  seed?: number;
  /** Most tokens the turn may generate, over all its steps (reasoning and tool calls included). */
  maxTokens?: number;
  /** Ends the answer where one of these strings appears in it (the string itself is not shown). */
  stop?: readonly string[];
  /** Most tool calls in the turn; one more ends it with finishReason 'tool-limit'. Default 16. */
  maxToolCalls?: number;
  /** "Current date:" of the system message (YYYY-MM-DD); default today, null for none. */
  date?: string | null;
  /** Stops the turn: the stream ends with a `done` event whose finishReason is 'abort'. */
  signal?: AbortSignal;
}

/** Token counts of a turn. */
export interface ChatUsage {
  /** Prompt tokens over all the turn's generations (the cached ones included). */
  inputTokens: number;
  /** Of those, tokens served from the KV cache. */
  cachedInputTokens: number;
  /** Tokens generated. */
  outputTokens: number;
  /** Of those, tokens of reasoning (the analysis channel). */
  reasoningTokens: number;
}

/**
 * Why a turn ended: `stop` (the answer is complete, or a stop string), `length` (maxTokens),
 * `context` (the context window is full), `abort` (the signal), `tool-limit` (maxToolCalls),
 * `tool-calls` (the model called a function that has no handler: answer it and chat again).
 */
export type ChatFinishReason = 'stop' | 'length' | 'context' | 'abort' | 'tool-limit' | 'tool-calls';

/** An event of a streamed chat turn, in the order the model produces them. */
export type ChatEvent =
  /** Reasoning text (the analysis channel), a piece at a time. */
  | { type: 'reasoning-delta'; text: string }
  /** Answer text, a piece at a time: `final` for the answer, `commentary` for a preamble before tool calls. */
  | { type: 'text-delta'; text: string; channel: 'final' | 'commentary' }
  /**
   * The model called a tool. `name` is your function's name, or the built-in's (`browser.search`,
   * `python`); `arguments` is as the model wrote it (JSON for functions and the browser, code for python).
   */
  | { type: 'tool-call'; callId: string; name: string; builtin: boolean; arguments: string }
  /** The tool's answer, as the model reads it; `isError` when the call failed (the text says why). */
  | { type: 'tool-result'; callId: string; name: string; output: string; isError: boolean }
  /** Token counts of the whole turn, just before `done`. */
  | { type: 'usage'; usage: ChatUsage }
  /** The turn is over: the whole answer and reasoning, and why it ended. Always the last event. */
  | { type: 'done'; finishReason: ChatFinishReason; text: string; reasoning: string };

/** A chat turn run to its end (see Model.complete). */
export interface ChatResult {
  /** The answer (the final channel). */
  text: string;
  /** The reasoning before it. */
  reasoning: string;
  finishReason: ChatFinishReason;
  usage: ChatUsage;
  /** The tool calls of the turn with their results, in order. */
  toolCalls: { name: string; builtin: boolean; arguments: string; output: string; isError: boolean }[];
  /** When finishReason is 'tool-calls': the call of a function without a handler, for you to answer. */
  pendingToolCall?: { name: string; arguments: string };
}

/** The harmony messages of `messages` after the system message; instructions come out separately. */
function harmonyTurns(messages: readonly ChatMessage[] | string): { instructions: string[]; turns: Message[] } {
  const list: readonly ChatMessage[] = typeof messages === 'string' ? [{ role: 'user', content: messages }] : messages;
  if (!Array.isArray(list)) throw new UserError('input', 'messages must be a string or an array of { role, content }');
  const instructions: string[] = [];
  const turns: Message[] = [];
  for (const [i, m] of list.entries()) {
    const where = `messages[${i}]`;
    const role: unknown = (m as { role?: unknown } | null)?.role;
    if (role === 'assistant' && typeof (m as { toolCall?: unknown }).toolCall === 'object') {
      const call = (m as ToolCallMessage).toolCall;
      if (call === null || typeof call.name !== 'string' || typeof call.arguments !== 'string') throw new UserError('input', `${where}.toolCall must be { name, arguments } with string values`);
      turns.push(createMessage('assistant', call.arguments, { channel: 'commentary', recipient: `functions.${call.name}`, contentType: '<|constrain|>json' }));
      continue;
    }
    const content: unknown = (m as { content?: unknown } | null)?.content;
    if (typeof content !== 'string') throw new UserError('input', `${where}.content must be a string`);
    if (role === 'system' || role === 'developer') instructions.push(content);
    else if (role === 'user') turns.push(createMessage('user', content));
    else if (role === 'assistant') turns.push(createMessage('assistant', content, { channel: 'final' }));
    else if (role === 'tool') {
      const name: unknown = (m as { name?: unknown }).name;
      if (typeof name !== 'string' || name === '') throw new UserError('input', `${where}.name must be the function's name`);
      turns.push(createMessage({ role: 'tool', name: `functions.${name}` }, content, { recipient: 'assistant', channel: 'commentary' }));
    } else throw new UserError('input', `${where}.role must be system, developer, user, assistant or tool, got ${JSON.stringify(role)}`);
  }
  if (!turns.some((m) => m.author.role === 'user')) throw new UserError('input', 'messages hold no user message');
  return { instructions, turns };
}

/** What goes in a turn's system and developer messages. */
export interface PromptSpec {
  reasoningEffort?: ReasoningEffort;
  instructions?: string;
  date?: string | null;
  tools: readonly Tool[];
  functionTools: readonly ToolDescription[];
}

/** The harmony conversation of a turn: system, developer, then `messages`. */
export function buildConversation(messages: readonly ChatMessage[] | string, spec: PromptSpec): { conversation: Conversation } {
  if (spec.reasoningEffort !== undefined && !REASONING_EFFORTS.includes(spec.reasoningEffort)) {
    throw new UserError('usage', `reasoningEffort must be low, medium or high, got ${JSON.stringify(spec.reasoningEffort)}`);
  }
  const { instructions, turns } = harmonyTurns(messages);
  const all = [...(spec.instructions !== undefined ? [spec.instructions] : []), ...instructions];
  const conversation = createConversation({
    ...(spec.reasoningEffort !== undefined ? { reasoningEffort: spec.reasoningEffort } : {}),
    ...(all.length > 0 ? { instructions: all.join('\n\n') } : {}),
    ...(spec.date !== undefined ? { date: spec.date } : {}),
    toolNamespaces: spec.tools.map((t) => t.namespace()),
    functionTools: spec.functionTools,
  });
  conversation.messages.push(...turns);
  return { conversation };
}

function finishReasonOf(reason: AgentFinishReason): ChatFinishReason {
  switch (reason) {
    case 'stop':
    case 'length':
    case 'context':
    case 'abort':
      return reason;
    case 'tool_limit':
      return 'tool-limit';
    case 'function_call':
      return 'tool-calls';
  }
}

/** Translates the loop's events into the library's; keeps the state the translation needs. */
class EventTranslator {
  private calls = 0;
  private callId = '';

  constructor(private readonly push: (e: ChatEvent) => void) {}

  translate(e: AgentEvent): void {
    switch (e.type) {
      case 'delta':
        // A message to a tool streams its arguments: they come whole in the tool-call event.
        if (isToolCall(e.target)) return;
        if (e.channel === 'analysis') this.push({ type: 'reasoning-delta', text: e.text });
        else this.push({ type: 'text-delta', text: e.text, channel: e.channel === 'commentary' ? 'commentary' : 'final' });
        return;
      case 'tool_call': {
        this.callId = `call_${++this.calls}`;
        this.push({ type: 'tool-call', callId: this.callId, name: toolName(e.target), builtin: e.target.kind === 'builtin', arguments: e.call.content });
        return;
      }
      case 'tool_result': {
        this.push({ type: 'tool-result', callId: this.callId, name: toolName(e.target), output: messageText(e.message), isError: e.error !== undefined });
        return;
      }
      case 'done':
        this.push({ type: 'usage', usage: usageOf(e.result) });
        this.push({ type: 'done', finishReason: finishReasonOf(e.result.finishReason), text: e.result.finalText, reasoning: reasoningOf(e.result) });
        return;
      default:
        return;
    }
  }
}

/** The name a tool event reports: a function's own name, or the recipient the model wrote. */
function toolName(target: RecipientTarget): string {
  if (target.kind === 'function') return target.name;
  if (target.kind === 'none') return '';
  return target.recipient.startsWith('functions.') ? target.recipient.slice('functions.'.length) : target.recipient;
}

function usageOf(r: AgentResult): ChatUsage {
  return { inputTokens: r.usage.promptTokens, cachedInputTokens: r.usage.cachedTokens, outputTokens: r.usage.completionTokens, reasoningTokens: r.usage.reasoningTokens };
}

function reasoningOf(r: AgentResult): string {
  return r.messages
    .filter((m) => m.author.role === 'assistant' && m.channel === 'analysis')
    .map(messageText)
    .join('\n\n');
}

/** Runs one chat turn on `engine` and yields its events; see Model.chat. */
export async function* chatEvents(engine: Engine, messages: readonly ChatMessage[] | string, options: ChatOptions = {}): AsyncGenerator<ChatEvent, void, undefined> {
  const controller = new AbortController();
  const onAbort = (): void => controller.abort(options.signal?.reason);
  if (options.signal?.aborted === true) controller.abort(options.signal.reason);
  options.signal?.addEventListener('abort', onAbort, { once: true });

  let run: Promise<void> | undefined;
  try {
    const tools = await prepareTools(options.tools ?? []);
    if (options.outputSchema !== undefined) compileSchema(options.outputSchema as JsonSchema);
    const { conversation } = buildConversation(messages, { ...options, tools: tools.builtin, functionTools: tools.functionTools });
    const turn = prepareTurn({
      messages: conversation.messages,
      builtinTools: tools.builtin,
      functionTools: tools.functionTools,
      ...(tools.onFunctionCall !== undefined ? { onFunctionCall: tools.onFunctionCall } : {}),
      ...(options.maxToolCalls !== undefined ? { maxToolCalls: options.maxToolCalls } : {}),
      functionSchemas: tools.strictSchemas,
      ...(options.outputSchema !== undefined ? { finalSchema: options.outputSchema as JsonSchema } : {}),
      sampling: options.sampling ?? {},
      ...(options.seed !== undefined ? { seed: options.seed } : {}),
      ...(options.maxTokens !== undefined ? { maxTokens: options.maxTokens } : {}),
      ...(options.stop !== undefined && options.stop.length > 0 ? { stopStrings: options.stop } : {}),
    });

    const queue: ChatEvent[] = [];
    let wake: (() => void) | undefined;
    let finished = false;
    let failure: { error: unknown } | undefined;
    const translator = new EventTranslator((e) => {
      queue.push(e);
      wake?.();
    });
    run = runTurn(engine, turn, { signal: controller.signal, onEvent: (e) => translator.translate(e) }).then(
        () => undefined,
        (e: unknown) => {
          failure = { error: e };
        },
      )
      .finally(() => {
        finished = true;
        wake?.();
      });
    for (;;) {
      while (queue.length > 0) yield queue.shift()!;
      if (finished) break;
      await new Promise<void>((resolve) => {
        wake = resolve;
        if (queue.length > 0 || finished) resolve();
      });
      wake = undefined;
    }
    if (failure !== undefined) throw failure.error;
  } catch (e) {
    throw toGptossError(e);
  } finally {
    // The consumer stopped early (break, return, throw): end the run before freeing its sequence.
    controller.abort();
    options.signal?.removeEventListener('abort', onAbort);
    await run;
  }
}

/** Runs a chat turn to its end and collects it; see Model.complete. */
export async function collectChat(events: AsyncIterable<ChatEvent>): Promise<ChatResult> {
  const toolCalls: ChatResult['toolCalls'] = [];
  const pending = new Map<string, { name: string; builtin: boolean; arguments: string }>();
  let usage: ChatUsage = { inputTokens: 0, cachedInputTokens: 0, outputTokens: 0, reasoningTokens: 0 };
  for await (const e of events) {
    if (e.type === 'tool-call') pending.set(e.callId, { name: e.name, builtin: e.builtin, arguments: e.arguments });
    else if (e.type === 'tool-result') {
      const call = pending.get(e.callId);
      pending.delete(e.callId);
      toolCalls.push({ name: e.name, builtin: call?.builtin ?? false, arguments: call?.arguments ?? '', output: e.output, isError: e.isError });
    } else if (e.type === 'usage') usage = e.usage;
    else if (e.type === 'done') {
      const result: ChatResult = { text: e.text, reasoning: e.reasoning, finishReason: e.finishReason, usage, toolCalls };
      const unanswered = [...pending.values()].at(-1);
      if (e.finishReason === 'tool-calls' && unanswered !== undefined) result.pendingToolCall = { name: unanswered.name, arguments: unanswered.arguments };
      return result;
    }
  }
  throw new Error('chat: the event stream ended without a done event');
}
