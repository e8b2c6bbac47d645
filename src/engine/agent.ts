// The agent loop: render the conversation, generate, parse the completion as it streams, and when
// the model addresses a tool (browser.*, python, any registered tool, functions.*) run it, append
// the result as a tool message and generate again, until a final answer, a function call for the
// caller, or a limit. One AgentSession owns one conversation and one engine Sequence, so every
// turn and tool call pays only for the tokens after the cached prefix. Malformed model output
// becomes a tool error message the model reads; it never throws.
import { UserError } from '../errors.ts';
import {
  StreamParser,
  createMessage,
  developerContent,
  messageText,
  renderConversationForCompletion,
  systemContent,
  type Conversation,
  type DropAnalysis,
  type Message,
  type ReasoningEffort,
  type Role,
  type ToolDescription,
  type ToolNamespaceConfig,
} from '../harmony/index.ts';
import { SPECIAL } from '../tokenizer/index.ts';
import type { ToolCall, ToolOutput } from '../tools/index.ts';
import type { Engine, Sequence } from './engine.ts';
import { StopStringMatcher, generate, type FinishReason, type GeneratedToken } from './generate.ts';
import { Rng, samplingParams, type LogitsProcessor, type SamplingParams } from './sampler.ts';

// ---- tools -----------------------------------------------------------------------------------

// ToolCall and ToolOutput are the tools' own contract (src/tools/tool.ts): one definition, imported
// as types only, so the loop does not load the browser or python code unless a caller does.
export type { ToolCall, ToolOutput };

/** A tool the loop runs itself (a built-in: browser, python). Its namespace goes in the system message. */
export interface AgentTool {
  /** Namespace name; calls to `name` or `name.<fn>` are routed here. */
  readonly name: string;
  namespace(): ToolNamespaceConfig;
  run(call: ToolCall, signal?: AbortSignal): Promise<ToolOutput>;
}

/** A call to a developer-declared function (`functions.<name>`), for the caller to answer. */
export interface FunctionCall {
  /** The function's name without the `functions.` prefix. */
  name: string;
  /** The arguments as the model wrote them (valid JSON). */
  arguments: string;
  /** The assistant message that made the call (already in the conversation). */
  message: Message;
}

/** Answers a function call with the function's output (text, usually JSON). */
export type FunctionHandler = (call: FunctionCall, signal?: AbortSignal) => Promise<string>;

// ---- options, events, results ---------------------------------------------------------------

export interface PromptOptions {
  /** Reasoning effort in the system message. Default 'medium'. */
  reasoningEffort?: ReasoningEffort;
  /** Identity line of the system message (harmony's default when absent). */
  modelIdentity?: string;
  /** "Current date:" of the system message; default today (local time), null for none. */
  date?: string | null;
  /** Developer instructions (the API's system prompt). */
  instructions?: string;
  /** Built-in tools; their namespaces go in the system message. */
  tools?: readonly AgentTool[];
  /** Developer-declared functions, rendered in the developer message's `functions` namespace. */
  functionTools?: readonly ToolDescription[];
}

export interface AgentOptions extends PromptOptions {
  /** An existing conversation (with its own system and developer messages) instead of a fresh one. */
  conversation?: Conversation;
  /** Answers `functions.*` calls inside the loop; without it the loop stops and returns the call. */
  onFunctionCall?: FunctionHandler;
  /** Most tool calls per run (each run() call); further calls end the run with 'tool_limit'. Default 16. */
  maxToolCalls?: number;
  /** Which analysis messages of earlier turns the prompt drops. Default 'completed-turns'. */
  dropAnalysis?: DropAnalysis;
  sampling?: Partial<SamplingParams>;
  seed?: number;
  /** A sequence to use (e.g. a pooled one with a cached prefix); by default the engine makes one. */
  sequence?: Sequence;
  /** Prompt tokens per engine step, so an abort is seen between chunks (see GenerateOptions). */
  prefillChunk?: number;
}

export interface RunOptions {
  /** Most tokens generated in this run, over all its generations. */
  maxTokens?: number;
  /** Ends the answer when the final channel's text contains one of these (the text before it is kept). */
  stopStrings?: readonly string[];
  processors?: readonly LogitsProcessor[];
  logprobs?: boolean;
  topLogprobs?: number;
  signal?: AbortSignal;
  onEvent?: (event: AgentEvent) => void;
}

export type AgentEvent =
  | { type: 'prefill_progress'; done: number; total: number }
  | { type: 'prefill'; promptTokens: number; cachedTokens: number; ms: number }
  | { type: 'token'; token: GeneratedToken; channel: string | undefined }
  | { type: 'message_start'; role: Role; channel?: string; recipient?: string; contentType?: string }
  | { type: 'delta'; channel: string | undefined; recipient: string | undefined; text: string }
  | { type: 'message_done'; message: Message }
  | { type: 'tool_call'; call: ToolCall }
  | { type: 'tool_result'; call: ToolCall; message: Message; error?: string }
  | { type: 'done'; result: AgentResult };

/**
 * Why a run ended: `stop` (a final answer, or a stop string), `function_call` (a functions.* call
 * for the caller), `tool_limit` (maxToolCalls reached), or generate's `length`/`context`/`abort`.
 */
export type AgentFinishReason = 'stop' | 'function_call' | 'tool_limit' | Exclude<FinishReason, 'stop'>;

export interface AgentUsage {
  /** Prompt tokens over all generations of the run (cached ones included). */
  promptTokens: number;
  /** Of those, tokens served from the KV cache. */
  cachedTokens: number;
  completionTokens: number;
  /** Completion tokens written on the analysis channel. */
  reasoningTokens: number;
  /** Engine generations (1 + the number of tool calls answered). */
  generations: number;
}

export interface AgentResult {
  finishReason: AgentFinishReason;
  /** Messages this run appended to the conversation (assistant messages and tool results). */
  messages: Message[];
  /** The text of the last final-channel message ('' if none). */
  finalText: string;
  /** Set when finishReason is 'function_call'. */
  functionCall?: FunctionCall;
  /** The call that was not run when finishReason is 'tool_limit'. */
  pendingCall?: ToolCall;
  stopString?: string;
  toolCalls: number;
  usage: AgentUsage;
  timings: { prefillMs: number; decodeMs: number; totalMs: number; tokensPerSecond: number };
  /** Per-token log-probabilities when asked for, in generation order. */
  logprobs?: GeneratedToken[];
}

// ---- prompt construction ---------------------------------------------------------------------

/** Today's date as harmony's system message writes it (local time, YYYY-MM-DD, like the reference). */
export function today(now: Date = new Date()): string {
  const pad = (n: number): string => String(n).padStart(2, '0');
  return `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}`;
}

/** The system message: identity, effort, date and the built-in tools' namespaces. */
export function buildSystemMessage(options: PromptOptions = {}): Message {
  const tools: Record<string, ToolNamespaceConfig> = {};
  for (const tool of options.tools ?? []) tools[tool.name] = tool.namespace();
  const date = options.date === undefined ? today() : options.date;
  return createMessage(
    'system',
    systemContent({
      reasoningEffort: options.reasoningEffort ?? 'medium',
      ...(options.modelIdentity !== undefined ? { modelIdentity: options.modelIdentity } : {}),
      ...(date !== null ? { conversationStartDate: date } : {}),
      ...(Object.keys(tools).length > 0 ? { tools } : {}),
    }),
  );
}

/** The developer message (instructions and function tools), or undefined when there is neither. */
export function buildDeveloperMessage(options: PromptOptions = {}): Message | undefined {
  const hasFunctions = (options.functionTools?.length ?? 0) > 0;
  if (options.instructions === undefined && !hasFunctions) return undefined;
  return createMessage(
    'developer',
    developerContent({
      ...(options.instructions !== undefined ? { instructions: options.instructions } : {}),
      ...(hasFunctions ? { functionTools: [...options.functionTools!] } : {}),
    }),
  );
}

/** A new conversation: the system message, then the developer message if any. */
export function createConversation(options: PromptOptions = {}): Conversation {
  const developer = buildDeveloperMessage(options);
  return { messages: developer === undefined ? [buildSystemMessage(options)] : [buildSystemMessage(options), developer] };
}

// ---- the session -----------------------------------------------------------------------------

const DEFAULT_MAX_TOOL_CALLS = 16;

/** Recipients that address no tool: a message to these is ordinary output. */
const NOT_A_TOOL = new Set(['all', 'assistant', 'user']);

export class AgentSession {
  readonly engine: Engine;
  conversation: Conversation;
  private promptOptions: PromptOptions;
  private readonly tools: readonly AgentTool[];
  private readonly functionNames: Set<string>;
  private readonly onFunctionCall: FunctionHandler | undefined;
  private readonly dropAnalysis: DropAnalysis;
  readonly maxToolCalls: number;
  private readonly sampling: SamplingParams;
  private readonly rng: Rng;
  private readonly prefillChunk: number | undefined;
  private sequence: Sequence | undefined;
  private running = false;

  constructor(engine: Engine, options: AgentOptions = {}) {
    this.engine = engine;
    this.promptOptions = { ...options };
    this.tools = options.tools ?? [];
    this.functionNames = new Set((options.functionTools ?? []).map((f) => f.name));
    this.onFunctionCall = options.onFunctionCall;
    this.dropAnalysis = options.dropAnalysis ?? 'completed-turns';
    this.maxToolCalls = options.maxToolCalls ?? DEFAULT_MAX_TOOL_CALLS;
    this.sampling = samplingParams(options.sampling);
    this.rng = new Rng(options.seed);
    this.sequence = options.sequence;
    this.prefillChunk = options.prefillChunk;
    this.conversation = options.conversation !== undefined ? { messages: [...options.conversation.messages] } : createConversation(options);
  }

  get reasoningEffort(): ReasoningEffort {
    return this.promptOptions.reasoningEffort ?? 'medium';
  }

  /** Changes the effort in the system message (the next prompt re-processes from the system message on). */
  setReasoningEffort(effort: ReasoningEffort): void {
    this.promptOptions = { ...this.promptOptions, reasoningEffort: effort };
    const system = buildSystemMessage(this.promptOptions);
    const i = this.conversation.messages.findIndex((m) => m.author.role === 'system');
    if (i >= 0) {
      const old = this.conversation.messages[i]!;
      const content = old.content[0];
      this.conversation.messages[i] =
        content !== undefined && content.type === 'system_content' ? { ...old, content: [{ ...content, reasoningEffort: effort }] } : system;
    } else {
      this.conversation.messages.unshift(system);
    }
  }

  /** Starts over with a fresh system (and developer) message. The KV cache keeps the shared prefix. */
  reset(): void {
    this.conversation = createConversation(this.promptOptions);
  }

  /** Replaces the conversation (e.g. one loaded from a file). */
  load(conversation: Conversation): void {
    this.conversation = { messages: [...conversation.messages] };
  }

  /** Appends a user message. */
  addUser(text: string): void {
    this.conversation.messages.push(createMessage('user', text));
  }

  /** Appends the caller's answer to a function call (after a run ended with 'function_call'). */
  addFunctionResult(name: string, output: string): void {
    this.conversation.messages.push(createMessage({ role: 'tool', name: `functions.${name}` }, output, { recipient: 'assistant', channel: 'commentary' }));
  }

  /** Sends a user message and runs the loop to the answer. */
  async send(text: string, options: RunOptions = {}): Promise<AgentResult> {
    this.addUser(text);
    return this.run(options);
  }

  /** Frees the engine sequence (its KV cache). The session can still run; it starts a new one. */
  close(): void {
    if (this.sequence !== undefined) this.engine.release(this.sequence);
    this.sequence = undefined;
  }

  /** Generates from the current conversation until an answer, a function call or a limit. */
  async run(options: RunOptions = {}): Promise<AgentResult> {
    if (this.running) throw new Error('AgentSession.run: a run is already in progress');
    this.running = true;
    try {
      return await this.loop(options);
    } finally {
      this.running = false;
    }
  }

  private async loop(options: RunOptions): Promise<AgentResult> {
    const started = performance.now();
    const emit = options.onEvent ?? ((): void => {});
    const appended: Message[] = [];
    const usage: AgentUsage = { promptTokens: 0, cachedTokens: 0, completionTokens: 0, reasoningTokens: 0, generations: 0 };
    let prefillMs = 0;
    let decodeMs = 0;
    let decodedTokens = 0;
    let toolCalls = 0;
    const logprobs: GeneratedToken[] = [];
    const wantLogprobs = options.logprobs === true || (options.topLogprobs ?? 0) > 0;

    const finish = (finishReason: AgentFinishReason, extra: Partial<AgentResult> = {}): AgentResult => {
      const totalMs = performance.now() - started;
      let finalText = '';
      for (const m of appended) if (m.author.role === 'assistant' && m.channel === 'final') finalText = messageText(m);
      const result: AgentResult = {
        finishReason,
        messages: appended,
        finalText,
        toolCalls,
        usage,
        timings: { prefillMs, decodeMs, totalMs, tokensPerSecond: decodeMs > 0 ? (decodedTokens * 1000) / decodeMs : 0 },
        ...extra,
      };
      if (wantLogprobs) result.logprobs = logprobs;
      emit({ type: 'done', result });
      return result;
    };
    const append = (m: Message): void => {
      this.conversation.messages.push(m);
      appended.push(m);
    };

    for (;;) {
      const prompt = renderConversationForCompletion(this.conversation, 'assistant', { dropAnalysis: this.dropAnalysis });
      this.sequence ??= this.engine.createSequence();
      const stream = new CompletionStream(emit, options.stopStrings);
      const remaining = options.maxTokens === undefined ? undefined : options.maxTokens - usage.completionTokens;
      if (remaining !== undefined && remaining <= 0) return finish('length');

      const gen = await generate(this.engine, this.sequence, prompt, {
        sampling: this.sampling,
        rng: this.rng,
        ...(remaining !== undefined ? { maxTokens: remaining } : {}),
        ...(this.prefillChunk !== undefined ? { prefillChunk: this.prefillChunk } : {}),
        ...(options.processors !== undefined ? { processors: options.processors } : {}),
        ...(options.logprobs !== undefined ? { logprobs: options.logprobs } : {}),
        ...(options.topLogprobs !== undefined ? { topLogprobs: options.topLogprobs } : {}),
        ...(options.signal !== undefined ? { signal: options.signal } : {}),
        onPrefillProgress: (info) => emit({ type: 'prefill_progress', done: info.done, total: info.total }),
        onPrefill: (info) => emit({ type: 'prefill', promptTokens: info.promptTokens, cachedTokens: info.cachedTokens, ms: info.ms }),
        onToken: (t) => {
          const stop = stream.push(t.token);
          emit({ type: 'token', token: t, channel: stream.channel });
          if (stream.channel === 'analysis') usage.reasoningTokens++;
          return stop;
        },
      });
      const messages = stream.end();
      for (const m of messages) append(m);

      usage.generations++;
      usage.promptTokens += gen.usage.promptTokens;
      usage.cachedTokens += gen.usage.cachedTokens;
      usage.completionTokens += gen.usage.completionTokens;
      prefillMs += gen.timings.prefillMs;
      decodeMs += gen.timings.decodeMs;
      decodedTokens += Math.max(0, gen.tokens.length - 1);
      if (gen.logprobs !== undefined) logprobs.push(...gen.logprobs);

      if (stream.stopString !== undefined) return finish('stop', { stopString: stream.stopString });
      if (gen.finishReason !== 'stop') return finish(gen.finishReason);

      const last = messages[messages.length - 1];
      const recipient = last?.recipient;
      if (last === undefined || last.author.role !== 'assistant' || recipient === undefined || NOT_A_TOOL.has(recipient)) return finish('stop');

      const call: ToolCall = { recipient, content: messageText(last) };
      if (last.channel !== undefined) call.channel = last.channel;
      if (last.contentType !== undefined) call.contentType = last.contentType;

      if (toolCalls >= this.maxToolCalls) return finish('tool_limit', { pendingCall: call });

      // A function the caller answers: hand the call back unless a handler is installed.
      const fn = this.asFunctionCall(call, last);
      if (fn !== undefined && 'call' in fn && this.onFunctionCall === undefined) {
        emit({ type: 'tool_call', call });
        return finish('function_call', { functionCall: fn.call });
      }

      emit({ type: 'tool_call', call });
      toolCalls++;
      const output = await this.dispatch(call, fn, options.signal);
      const result = createMessage({ role: 'tool', name: output.author ?? call.recipient }, output.content, {
        recipient: 'assistant',
        ...((output.channel ?? call.channel) !== undefined ? { channel: (output.channel ?? call.channel)! } : {}),
      });
      append(result);
      emit({ type: 'tool_result', call, message: result, ...(output.error !== undefined ? { error: output.error } : {}) });
      if (options.signal?.aborted === true) return finish('abort');
    }
  }

  /** For `functions.*` recipients: the parsed call, or the error the model should read. */
  private asFunctionCall(call: ToolCall, message: Message): { call: FunctionCall } | { error: string } | undefined {
    if (!call.recipient.startsWith('functions.')) return undefined;
    const name = call.recipient.slice('functions.'.length);
    // The reference server sends misrouted functions.search/open/find to the browser.
    if (!this.functionNames.has(name) && this.findTool(`browser.${name}`) !== undefined) return undefined;
    if (!this.functionNames.has(name)) return { error: `Error: unknown function "${name}". ${this.availableText()}` };
    const args = call.content.trim() === '' ? '{}' : call.content;
    try {
      JSON.parse(args);
    } catch (e) {
      return { error: `Error: the arguments of ${call.recipient} are not valid JSON (${(e as Error).message}). Send one JSON object that matches the function's parameters.` };
    }
    return { call: { name, arguments: args, message } };
  }

  private findTool(recipient: string): AgentTool | undefined {
    return this.tools.find((t) => recipient === t.name || recipient.startsWith(`${t.name}.`));
  }

  private availableText(): string {
    const names: string[] = [];
    for (const t of this.tools) {
      const ns = t.namespace();
      if (ns.tools.length === 0) names.push(t.name);
      else for (const fn of ns.tools) names.push(`${t.name}.${fn.name}`);
    }
    for (const f of this.functionNames) names.push(`functions.${f}`);
    return names.length === 0 ? 'No tools are available.' : `Available tools: ${names.join(', ')}.`;
  }

  private async dispatch(call: ToolCall, fn: { call: FunctionCall } | { error: string } | undefined, signal: AbortSignal | undefined): Promise<ToolOutput> {
    if (fn !== undefined) {
      if ('error' in fn) return { content: fn.error, error: fn.error };
      try {
        return { content: await this.onFunctionCall!(fn.call, signal) };
      } catch (e) {
        const text = `Error: ${call.recipient} failed: ${errorText(e)}`;
        return { content: text, error: text };
      }
    }
    let target = call;
    let tool = this.findTool(call.recipient);
    if (tool === undefined && call.recipient.startsWith('functions.')) {
      target = { ...call, recipient: `browser.${call.recipient.slice('functions.'.length)}` };
      tool = this.findTool(target.recipient);
    }
    if (tool === undefined) {
      const text = `Error: unknown tool "${call.recipient}". ${this.availableText()}`;
      return { content: text, error: text };
    }
    try {
      const out = await tool.run(target, signal);
      return out.author === undefined ? { ...out, author: call.recipient } : out;
    } catch (e) {
      const text = `Error: ${call.recipient} failed: ${errorText(e)}`;
      return { content: text, error: text };
    }
  }
}

function errorText(e: unknown): string {
  if (e instanceof UserError || e instanceof Error) return e.message.split('\n')[0] ?? String(e);
  return String(e);
}

// ---- streaming one completion ----------------------------------------------------------------

/**
 * Feeds one completion's tokens to the lenient harmony parser and turns them into events; holds
 * back final-channel text that may be the start of a stop string, and reports when one completed.
 */
class CompletionStream {
  private readonly parser = new StreamParser({ role: 'assistant', strict: false });
  private readonly emit: (e: AgentEvent) => void;
  private readonly stops: readonly string[];
  private matcher: StopStringMatcher | undefined;
  private shown = 0;
  private inContent = false;
  private emittedMessages = 0;
  /** The final text before the stop string, once one was hit. */
  private cutText: string | undefined;
  stopString: string | undefined;

  constructor(emit: (e: AgentEvent) => void, stopStrings: readonly string[] | undefined) {
    this.emit = emit;
    this.stops = (stopStrings ?? []).filter((s) => s !== '');
  }

  get channel(): string | undefined {
    return this.parser.currentChannel;
  }

  /** Processes one token; returns true when a stop string ended the answer. */
  push(token: number): boolean {
    const event = this.parser.process(token);
    if (!this.inContent && this.parser.state === 'content') this.startMessage();
    if (event.delta !== undefined && this.inContent) this.delta(event.delta);
    if (event.completed !== undefined) this.completeMessages();
    if (this.parser.state !== 'content') this.inContent = false;
    // A message that ended and a new one that began within this token (lenient recovery).
    if (!this.inContent && this.parser.state === 'content') this.startMessage();
    return this.stopString !== undefined;
  }

  /** Ends the completion: a message in progress (cut by a limit or a stop string) is closed as it stands. */
  end(): Message[] {
    this.parser.processEos();
    this.completeMessages();
    const messages = [...this.parser.messages];
    if (this.cutText !== undefined) {
      // The final message ends where the stop string began.
      const last = messages[messages.length - 1];
      if (last !== undefined) messages[messages.length - 1] = { ...last, content: [{ type: 'text', text: this.cutText }] };
    }
    return messages;
  }

  private startMessage(): void {
    this.inContent = true;
    this.shown = 0;
    const channel = this.parser.currentChannel;
    this.matcher = channel === 'final' && this.stops.length > 0 && this.parser.currentRecipient === undefined ? new StopStringMatcher(this.stops) : undefined;
    const e: AgentEvent = { type: 'message_start', role: this.parser.currentRole ?? 'assistant' };
    if (channel !== undefined) e.channel = channel;
    const recipient = this.parser.currentRecipient;
    if (recipient !== undefined) e.recipient = recipient;
    const contentType = this.parser.currentContentType;
    if (contentType !== undefined) e.contentType = contentType;
    this.emit(e);
  }

  private delta(text: string): void {
    const channel = this.parser.currentChannel;
    const recipient = this.parser.currentRecipient;
    if (this.matcher === undefined) {
      this.emit({ type: 'delta', channel, recipient, text });
      return;
    }
    const hit = this.matcher.push(text);
    const content = this.parser.currentContent;
    const safe = this.matcher.safeLength();
    if (safe > this.shown) {
      this.emit({ type: 'delta', channel, recipient, text: content.slice(this.shown, safe) });
      this.shown = safe;
    }
    if (hit !== undefined) {
      this.stopString = hit.stop;
      this.cutText = hit.textBefore;
    }
  }

  private completeMessages(): void {
    const msgs = this.parser.messages;
    for (; this.emittedMessages < msgs.length; this.emittedMessages++) {
      const m = msgs[this.emittedMessages]!;
      // Text held back for a stop string that never came.
      if (this.matcher !== undefined && this.stopString === undefined && this.emittedMessages === msgs.length - 1) {
        const full = messageText(m);
        if (full.length > this.shown) this.emit({ type: 'delta', channel: m.channel, recipient: m.recipient, text: full.slice(this.shown) });
        this.matcher = undefined;
      }
      if (this.stopString !== undefined && this.emittedMessages === msgs.length - 1 && this.cutText !== undefined) {
        this.emit({ type: 'message_done', message: { ...m, content: [{ type: 'text', text: this.cutText }] } });
      } else {
        this.emit({ type: 'message_done', message: m });
      }
    }
  }
}

/** Convenience for one-shot use (evals, scripts): a fresh session, one user message, the result. */
export async function runAgent(engine: Engine, userText: string, options: AgentOptions & RunOptions = {}): Promise<AgentResult> {
  const session = new AgentSession(engine, options);
  try {
    return await session.send(userText, options);
  } finally {
    session.close();
  }
}

/** `<|call|>` and `<|return|>` as numbers, re-exported for callers that inspect raw tokens. */
export const CALL_TOKEN = SPECIAL.call;
export const RETURN_TOKEN = SPECIAL.return;
