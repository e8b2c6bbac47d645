// The turn API: one request's turn on the agent loop, for every client of the engine (the server's
// two front ends, the library's chat, the chat CLI). `prepareTurn` renders the prompt once (the caller checks it
// against the context window with the same tokens); `runTurn` picks a sequence from the prefix
// cache with that prompt, hands the same prompt to the loop's first generation, wires logit bias
// and structured outputs into the sampler (reading the loop's own harmony parse), maps the
// caller's abort signal onto the sequence, and frees or pools the sequence afterwards. The loop's
// events carry each message's recipient target, so clients translate events without parsing
// or classifying anything themselves.
import type { JsonSchema } from './constrained.ts';
import type { CompletionProcessor } from './completion.ts';
import { AgentSession, type AgentEvent, type AgentResult, type FunctionHandler } from './agent.ts';
import type { Engine, Sequence } from './engine.ts';
import type { Rng, SamplingParams } from './sampler.ts';
import { BatchingEngine } from './scheduler.ts';
import { StructuredOutput, type StructuredOptions } from './structured.ts';
import { renderConversationForCompletion, type Message, type ToolDescription } from '../harmony/index.ts';
import type { Tool } from '../tools/index.ts';

export interface TurnRequest {
  /** The whole conversation: system, developer, then the turns. */
  messages: Message[];
  /** Built-in tools the loop runs (their namespaces are already in the system message). */
  builtinTools: readonly Tool[];
  functionTools: readonly ToolDescription[];
  /** Answers function calls inside the turn; without it the turn ends at a function call. */
  onFunctionCall?: FunctionHandler;
  /** Most tool calls in the turn (the loop's default when absent). */
  maxToolCalls?: number;
  /** Strict functions' parameter schemas (constrained arguments). */
  functionSchemas: ReadonlyMap<string, JsonSchema>;
  /** Schema of the final answer (structured outputs). */
  finalSchema?: JsonSchema;
  /** tool_choice "required" or a named function: no final answer before a function call. */
  requireFunctionCall?: boolean;
  sampling: Partial<SamplingParams>;
  seed?: number;
  /**
   * The random stream the turn draws from and leaves advanced, for a caller whose turns continue
   * one stream (the chat, seeded once per session); without it the turn starts one from `seed`.
   */
  rng?: Rng;
  /** Most tokens the turn generates, over all its generations. */
  maxTokens?: number;
  stopStrings?: readonly string[];
  logprobs?: boolean;
  topLogprobs?: number;
  /** Added to the logits of these token ids before sampling (Chat `logit_bias`). */
  logitBias?: ReadonlyMap<number, number>;
}

/** A turn with its prompt rendered (once: the context check, the prefix cache and the first generation use these tokens). */
export interface PreparedTurn {
  readonly request: TurnRequest;
  readonly prompt: readonly number[];
}

export interface TurnRun {
  signal?: AbortSignal;
  onEvent?: (event: AgentEvent) => void;
  /**
   * A sequence the caller owns and keeps across turns (the chat's one conversation): the turn runs
   * on it and leaves it as it is, so the next turn pays only for the tokens after its cached prefix.
   * Without it the turn takes one from the engine (the prefix cache of a BatchingEngine) and frees
   * or pools it afterwards.
   */
  sequence?: Sequence;
  /** Prompt tokens per engine step, so an abort is seen between chunks of a long prompt. */
  prefillChunk?: number;
}

export interface TurnResult {
  result: AgentResult;
  /** Prompt tokens of the first generation (what the client sent, rendered). */
  promptTokens: number;
}

/** Renders the turn's prompt: the conversation plus `<|start|>assistant`, earlier turns' reasoning dropped. */
export function prepareTurn(request: TurnRequest): PreparedTurn {
  return { request, prompt: renderConversationForCompletion({ messages: [...request.messages] }, 'assistant', { dropAnalysis: 'completed-turns' }) };
}

export async function runTurn(engine: Engine, turn: PreparedTurn, run: TurnRun = {}): Promise<TurnResult> {
  const { request, prompt } = turn;
  const owned = run.sequence === undefined;
  const sequence: Sequence = run.sequence ?? (engine instanceof BatchingEngine ? engine.acquire(prompt) : engine.createSequence());
  const structured: StructuredOptions = {
    ...(request.finalSchema !== undefined ? { finalSchema: request.finalSchema } : {}),
    functionSchemas: request.functionSchemas,
    ...(request.maxTokens !== undefined ? { maxTokens: request.maxTokens } : {}),
    ...(request.requireFunctionCall === true ? { forbidFinal: true } : {}),
  };
  const session = new AgentSession(engine, {
    conversation: { messages: request.messages },
    tools: request.builtinTools,
    functionTools: request.functionTools,
    ...(request.onFunctionCall !== undefined ? { onFunctionCall: request.onFunctionCall } : {}),
    ...(request.maxToolCalls !== undefined ? { maxToolCalls: request.maxToolCalls } : {}),
    sampling: request.sampling,
    ...(request.seed !== undefined ? { seed: request.seed } : {}),
    ...(request.rng !== undefined ? { rng: request.rng } : {}),
    sequence,
    dropAnalysis: 'completed-turns',
    ...(run.prefillChunk !== undefined ? { prefillChunk: run.prefillChunk } : {}),
  });
  const processors: CompletionProcessor[] = [];
  if (request.logitBias !== undefined && request.logitBias.size > 0) {
    const bias = request.logitBias;
    processors.push((logits) => {
      for (const [id, b] of bias) logits[id] = b <= -100 ? -Infinity : logits[id]! + b;
    });
  }
  if (StructuredOutput.needed(structured)) processors.push(new StructuredOutput(structured).processor);
  let ok = false;
  // An abort frees the sequence at once, even in the middle of a long prefill (its queued
  // chunks are dropped and the run ends with a cancelled step).
  // (A caller's own sequence stays: generate sees the abort between chunks.)
  const onAbort = (): void => {
    if (engine instanceof BatchingEngine) engine.discard(sequence);
  };
  if (owned) run.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const result = await session.run({
      prompt,
      ...(request.maxTokens !== undefined ? { maxTokens: request.maxTokens } : {}),
      ...(run.signal !== undefined ? { signal: run.signal } : {}),
      ...(request.stopStrings !== undefined && request.stopStrings.length > 0 ? { stopStrings: request.stopStrings } : {}),
      ...(processors.length > 0 ? { processors } : {}),
      ...(request.logprobs === true ? { logprobs: true } : {}),
      ...(request.topLogprobs !== undefined && request.topLogprobs > 0 ? { topLogprobs: request.topLogprobs } : {}),
      ...(run.onEvent !== undefined ? { onEvent: run.onEvent } : {}),
    });
    ok = result.finishReason !== 'abort';
    return { result, promptTokens: prompt.length };
  } finally {
    run.signal?.removeEventListener('abort', onAbort);
    // A finished turn leaves its sequence in the prefix cache; a cancelled or failed one frees it
    // now. The caller's own sequence is the caller's to free.
    if (owned) {
      if (ok) engine.release(sequence);
      else if (engine instanceof BatchingEngine) engine.discard(sequence);
      else engine.release(sequence);
    }
  }
}
