// Runs one API request on the agent loop: picks a sequence from the prefix cache, wires structured
// outputs into the sampler, maps the client's disconnect to the run's abort signal, and frees or
// pools the sequence afterwards. Both API front ends (responses.ts, chat.ts) build a TurnRequest
// and translate the AgentEvents it reports.
import { AgentSession, type AgentEvent, type AgentResult } from '../engine/agent.ts';
import type { JsonSchema } from '../engine/constrained.ts';
import type { Engine, Sequence } from '../engine/engine.ts';
import type { LogitsProcessor, SamplingParams } from '../engine/sampler.ts';
import { BatchingEngine } from '../engine/scheduler.ts';
import { renderConversationForCompletion, type Message, type ToolDescription } from '../harmony/index.ts';
import { StructuredOutput } from './structured.ts';
import type { Tool } from '../tools/index.ts';

export interface TurnRequest {
  /** The whole conversation: system, developer, then the turns. */
  messages: Message[];
  builtinTools: readonly Tool[];
  functionTools: readonly ToolDescription[];
  /** Strict functions' parameter schemas (constrained arguments). */
  functionSchemas: ReadonlyMap<string, JsonSchema>;
  /** Schema of the final answer (structured outputs). */
  finalSchema?: JsonSchema;
  /** tool_choice "required" or a named function: no final answer before a function call. */
  requireFunctionCall?: boolean;
  sampling: Partial<SamplingParams>;
  seed?: number;
  maxTokens: number;
  stopStrings?: readonly string[];
  logprobs?: boolean;
  topLogprobs?: number;
  /** Added to the logits of these token ids before sampling (Chat `logit_bias`). */
  logitBias?: ReadonlyMap<number, number>;
  signal: AbortSignal;
  onEvent?: (event: AgentEvent) => void;
}

/** The client went away while its request ran (nothing is left to send). */
export class ClientGoneError extends Error {
  constructor() {
    super('the client disconnected');
    this.name = 'ClientGoneError';
  }
}

export interface TurnResult {
  result: AgentResult;
  /** Prompt tokens of the first generation (what the client sent, rendered). */
  promptTokens: number;
}

/** Tokens the prompt of `messages` takes (the rendered conversation plus `<|start|>assistant`). */
export function renderPrompt(messages: readonly Message[]): number[] {
  return renderConversationForCompletion({ messages: [...messages] }, 'assistant', { dropAnalysis: 'completed-turns' });
}

export async function runTurn(engine: Engine, request: TurnRequest): Promise<TurnResult> {
  const prompt = renderPrompt(request.messages);
  const sequence: Sequence = engine instanceof BatchingEngine ? engine.acquire(prompt) : engine.createSequence();
  const structured = new StructuredOutput({
    ...(request.finalSchema !== undefined ? { finalSchema: request.finalSchema } : {}),
    functionSchemas: request.functionSchemas,
    maxTokens: request.maxTokens,
    ...(request.requireFunctionCall === true ? { forbidFinal: true } : {}),
  });
  const session = new AgentSession(engine, {
    conversation: { messages: request.messages },
    tools: request.builtinTools,
    functionTools: request.functionTools,
    sampling: request.sampling,
    ...(request.seed !== undefined ? { seed: request.seed } : {}),
    sequence,
    dropAnalysis: 'completed-turns',
  });
  const processors: LogitsProcessor[] = [];
  if (request.logitBias !== undefined && request.logitBias.size > 0) {
    const bias = request.logitBias;
    processors.push((logits) => {
      for (const [id, b] of bias) logits[id] = b <= -100 ? -Infinity : logits[id]! + b;
    });
  }
  if (structured.active) processors.push(structured.processor);
  let ok = false;
  // A disconnect frees the sequence at once, even in the middle of a long prefill (its queued
  // chunks are dropped and the run ends with a cancelled step).
  const onAbort = (): void => {
    if (engine instanceof BatchingEngine) engine.discard(sequence);
  };
  request.signal.addEventListener('abort', onAbort, { once: true });
  try {
    const result = await session.run({
      maxTokens: request.maxTokens,
      signal: request.signal,
      ...(request.stopStrings !== undefined && request.stopStrings.length > 0 ? { stopStrings: request.stopStrings } : {}),
      ...(processors.length > 0 ? { processors } : {}),
      ...(request.logprobs === true ? { logprobs: true } : {}),
      ...(request.topLogprobs !== undefined && request.topLogprobs > 0 ? { topLogprobs: request.topLogprobs } : {}),
      ...(request.onEvent !== undefined ? { onEvent: request.onEvent } : {}),
    });
    ok = result.finishReason !== 'abort';
    return { result, promptTokens: prompt.length };
  } catch (e) {
    if (request.signal.aborted) throw new ClientGoneError();
    throw e;
  } finally {
    request.signal.removeEventListener('abort', onAbort);
    // A finished request leaves its sequence in the prefix cache; a cancelled or failed one frees it now.
    if (ok) engine.release(sequence);
    else if (engine instanceof BatchingEngine) engine.discard(sequence);
    else engine.release(sequence);
  }
}
