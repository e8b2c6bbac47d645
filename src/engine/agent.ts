// The agent loop: render the conversation, generate, let completion.ts parse the completion as it
// streams, and when the model addresses a tool (browser.*, python, any registered tool, through
// the tools' registry; functions.* through the caller) run it, append the result as a tool message
// and generate again, until a final answer, a function call for the caller, or a limit. One
// AgentSession owns one conversation and one engine Sequence, so every generation of a turn pays
// only for the tokens after the cached prefix. Clients do not hold a session: they run turns through
// turn.ts, which makes one per turn. Malformed model output becomes a tool error message the model
// reads; it never throws.
import {
  createConversation,
  messageText,
  renderConversationForCompletion,
  type Conversation,
  type DropAnalysis,
  type Message,
  type PromptOptions as HarmonyPromptOptions,
} from '../harmony/index.ts';
import { toolCallFromMessage, toolOutputMessage, type Tool, type ToolCall, type ToolOutput } from '../tools/tool.ts';
import { errorText } from '../tools/errors.ts';
import { ToolRegistry, availableText, toolError, unknownToolText } from '../tools/registry.ts';
import { CompletionStream, type CompletionEvent, type CompletionProcessor } from './completion.ts';
import type { Engine, Sequence } from './engine.ts';
import { generate, type FinishReason, type GeneratedToken } from './generate.ts';
import { RecipientClassifier, type RecipientTarget } from './recipient.ts';
import { Rng, samplingParams, type SamplingParams } from './sampler.ts';

export { isToolCall } from './recipient.ts';
export type { ToolCall, ToolOutput, RecipientTarget };

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

/** The prompt head's options (harmony's), with the built-in tools themselves instead of their namespaces. */
export interface PromptOptions extends Omit<HarmonyPromptOptions, 'toolNamespaces'> {
  /** Built-in tools the loop runs; their namespaces go in the system message. */
  tools?: readonly Tool[];
}

/** Harmony's prompt options for `options`: the tools' namespaces in the order given. */
function harmonyPromptOptions(options: PromptOptions): HarmonyPromptOptions {
  const { tools, ...rest } = options;
  return tools === undefined || tools.length === 0 ? rest : { ...rest, toolNamespaces: tools.map((t) => t.namespace()) };
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
  /** A random stream to draw from (and leave advanced) instead of a fresh one from `seed`. */
  rng?: Rng;
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
  /** Logits processors; they see the harmony parse of the completion so far (structured outputs). */
  processors?: readonly CompletionProcessor[];
  /** The rendering of the conversation as it stands, when the caller already has it (the first generation uses it instead of rendering again). */
  prompt?: readonly number[];
  logprobs?: boolean;
  topLogprobs?: number;
  signal?: AbortSignal;
  onEvent?: (event: AgentEvent) => void;
}

/**
 * The loop's events. Message events carry the message's `target` (which tool it is for, worked
 * out once when the message begins): consumers read it instead of classifying recipients again.
 */
export type AgentEvent =
  | { type: 'prefill_progress'; done: number; total: number }
  | { type: 'prefill'; promptTokens: number; cachedTokens: number; ms: number }
  | CompletionEvent
  | { type: 'tool_call'; call: ToolCall; target: RecipientTarget }
  | { type: 'tool_result'; call: ToolCall; target: RecipientTarget; message: Message; error?: string }
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

// ---- the session -----------------------------------------------------------------------------

const DEFAULT_MAX_TOOL_CALLS = 16;

export class AgentSession {
  readonly engine: Engine;
  conversation: Conversation;
  private readonly recipients: RecipientClassifier;
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
    this.recipients = new RecipientClassifier(new ToolRegistry(options.tools ?? []), (options.functionTools ?? []).map((f) => f.name));
    this.onFunctionCall = options.onFunctionCall;
    this.dropAnalysis = options.dropAnalysis ?? 'completed-turns';
    this.maxToolCalls = options.maxToolCalls ?? DEFAULT_MAX_TOOL_CALLS;
    this.sampling = samplingParams(options.sampling, engine.info.sampling);
    this.rng = options.rng ?? new Rng(options.seed);
    this.sequence = options.sequence;
    this.prefillChunk = options.prefillChunk;
    this.conversation = options.conversation !== undefined ? { messages: [...options.conversation.messages] } : createConversation(harmonyPromptOptions(options));
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

    let given = options.prompt;
    for (;;) {
      // The caller's rendering serves the first generation; later ones render the grown conversation.
      const prompt = given ?? renderConversationForCompletion(this.conversation, 'assistant', { dropAnalysis: this.dropAnalysis });
      given = undefined;
      this.sequence ??= this.engine.createSequence();
      const stream = new CompletionStream(emit, this.recipients, options.stopStrings);
      const remaining = options.maxTokens === undefined ? undefined : options.maxTokens - usage.completionTokens;
      if (remaining !== undefined && remaining <= 0) return finish('length');
      const processors = options.processors?.map((p) => (logits: Float32Array, generated: readonly number[]) => p(logits, generated, stream));

      const gen = await generate(this.engine, this.sequence, prompt, {
        sampling: this.sampling,
        rng: this.rng,
        ...(remaining !== undefined ? { maxTokens: remaining } : {}),
        ...(this.prefillChunk !== undefined ? { prefillChunk: this.prefillChunk } : {}),
        ...(processors !== undefined ? { processors } : {}),
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
      for (const m of messages) append(m.message);

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
      if (last === undefined || last.message.author.role !== 'assistant' || last.target.kind === 'none' || last.target.kind === 'addressed') return finish('stop');
      const { message, target } = last;
      const call = toolCallFromMessage(message);

      if (toolCalls >= this.maxToolCalls) return finish('tool_limit', { pendingCall: call });

      // A function the caller answers: hand the call back unless a handler is installed.
      const fn = target.kind === 'function' ? this.functionCall(call, target.name, message) : undefined;
      emit({ type: 'tool_call', call, target });
      if (fn !== undefined && 'call' in fn && this.onFunctionCall === undefined) return finish('function_call', { functionCall: fn.call });

      toolCalls++;
      const output = await this.dispatch(call, target, fn, options.signal);
      const result = toolOutputMessage(call, output);
      append(result);
      emit({ type: 'tool_result', call, target, message: result, ...(output.error !== undefined ? { error: output.error } : {}) });
      if (options.signal?.aborted === true) return finish('abort');
    }
  }

  /** A declared function's call with its arguments checked as JSON, or the error the model should read. */
  private functionCall(call: ToolCall, name: string, message: Message): { call: FunctionCall } | { error: string } {
    const args = call.content.trim() === '' ? '{}' : call.content;
    try {
      JSON.parse(args);
    } catch (e) {
      return { error: `Error: the arguments of ${call.recipient} are not valid JSON (${(e as Error).message}). Send one JSON object that matches the function's parameters.` };
    }
    return { call: { name, arguments: args, message } };
  }

  private async dispatch(call: ToolCall, target: RecipientTarget, fn: { call: FunctionCall } | { error: string } | undefined, signal: AbortSignal | undefined): Promise<ToolOutput> {
    switch (target.kind) {
      case 'function':
        if (fn === undefined || 'error' in fn) return toolError(fn?.error ?? '');
        try {
          return { content: await this.onFunctionCall!(fn.call, signal) };
        } catch (e) {
          return toolError(`Error: ${call.recipient} failed: ${errorText(e)}`);
        }
      case 'builtin': {
        // The tool sees the call as addressed to it (a misrouted functions.search arrives as browser.search);
        // its message keeps the recipient the model wrote.
        const out = await this.recipients.tools.run(target.recipient === call.recipient ? call : { ...call, recipient: target.recipient }, signal);
        return out.author === undefined ? { ...out, author: call.recipient } : out;
      }
      default:
        if (target.kind === 'unknown' && target.function) {
          return toolError(`Error: unknown function "${call.recipient.slice('functions.'.length)}". ${availableText(this.recipients.available())}`);
        }
        return toolError(unknownToolText(call.recipient, this.recipients.available()));
    }
  }
}
