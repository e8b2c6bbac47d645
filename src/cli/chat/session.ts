// The chat's conversation: the state the terminal chat keeps between turns (the harmony
// conversation with its system and developer messages, the reasoning effort, one engine sequence
// whose KV cache carries the conversation's prefix) and each turn run through the engine's turn
// API, like every other front end.
import type { AgentEvent, AgentResult } from '../../engine/agent.ts';
import type { Engine, Sequence } from '../../engine/engine.ts';
import { Rng, type SamplingParams } from '../../engine/sampler.ts';
import { prepareTurn, runTurn } from '../../engine/turn.ts';
import { buildSystemMessage, createConversation, createMessage, type Conversation, type PromptOptions, type ReasoningEffort } from '../../harmony/index.ts';
import type { Tool } from '../../tools/index.ts';

export interface ChatSessionOptions {
  reasoningEffort: ReasoningEffort;
  /** Developer instructions (the chat's --developer). */
  instructions?: string;
  /** Built-in tools the model may call. */
  tools: readonly Tool[];
  maxToolCalls?: number;
  sampling: Partial<SamplingParams>;
  /** Seeds the session's one random stream: every turn continues it, so turns do not repeat each other's draws. */
  seed?: number;
  /** Prompt tokens per engine step, so Ctrl-C is honoured inside a long prompt. */
  prefillChunk?: number;
}

export interface SendOptions {
  signal?: AbortSignal;
  onEvent?: (event: AgentEvent) => void;
  maxTokens?: number;
}

export class ChatSession {
  conversation: Conversation;
  private effort: ReasoningEffort;
  private sequence: Sequence | undefined;
  /** Seeded once per session; a stream restarted each turn would give every turn the same draws. */
  private readonly rng: Rng;

  constructor(
    readonly engine: Engine,
    private readonly options: ChatSessionOptions,
  ) {
    this.effort = options.reasoningEffort;
    this.rng = new Rng(options.seed);
    this.conversation = createConversation(this.promptOptions());
  }

  get reasoningEffort(): ReasoningEffort {
    return this.effort;
  }

  /** Changes the effort in the system message (the next prompt re-processes from the system message on). */
  setReasoningEffort(effort: ReasoningEffort): void {
    this.effort = effort;
    const i = this.conversation.messages.findIndex((m) => m.author.role === 'system');
    if (i < 0) {
      this.conversation.messages.unshift(buildSystemMessage(this.promptOptions()));
      return;
    }
    // A loaded conversation keeps its own system message, with the new effort.
    const old = this.conversation.messages[i]!;
    const content = old.content[0];
    this.conversation.messages[i] =
      content !== undefined && content.type === 'system_content' ? { ...old, content: [{ ...content, reasoningEffort: effort }] } : buildSystemMessage(this.promptOptions());
  }

  /** Starts over with a fresh system (and developer) message. The KV cache keeps the shared prefix. */
  reset(): void {
    this.conversation = createConversation(this.promptOptions());
  }

  /** Replaces the conversation (e.g. one loaded from a file). */
  load(conversation: Conversation): void {
    this.conversation = { messages: [...conversation.messages] };
  }

  /**
   * Sends a user message and runs the turn to the answer; the turn's messages join the
   * conversation (an aborted answer's partial text included). When the turn throws (the window is
   * full), the conversation is left with the user message last, for the caller to take back.
   */
  async send(text: string, options: SendOptions = {}): Promise<AgentResult> {
    this.conversation.messages.push(createMessage('user', text));
    const turn = prepareTurn({
      messages: this.conversation.messages,
      builtinTools: this.options.tools,
      functionTools: [],
      functionSchemas: new Map(),
      ...(this.options.maxToolCalls !== undefined ? { maxToolCalls: this.options.maxToolCalls } : {}),
      sampling: this.options.sampling,
      rng: this.rng,
      ...(options.maxTokens !== undefined ? { maxTokens: options.maxTokens } : {}),
    });
    this.sequence ??= this.engine.createSequence();
    const { result } = await runTurn(this.engine, turn, {
      sequence: this.sequence,
      ...(this.options.prefillChunk !== undefined ? { prefillChunk: this.options.prefillChunk } : {}),
      ...(options.signal !== undefined ? { signal: options.signal } : {}),
      ...(options.onEvent !== undefined ? { onEvent: options.onEvent } : {}),
    });
    this.conversation.messages.push(...result.messages);
    return result;
  }

  /** Frees the engine sequence (its KV cache). */
  close(): void {
    if (this.sequence !== undefined) this.engine.release(this.sequence);
    this.sequence = undefined;
  }

  private promptOptions(): PromptOptions {
    return {
      reasoningEffort: this.effort,
      ...(this.options.instructions !== undefined ? { instructions: this.options.instructions } : {}),
      ...(this.options.tools.length > 0 ? { toolNamespaces: this.options.tools.map((t) => t.namespace()) } : {}),
    };
  }
}
