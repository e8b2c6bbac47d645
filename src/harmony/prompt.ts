// The head of a gpt-oss conversation as the model was trained on it: the system message (identity,
// reasoning effort, date, the built-in tools' namespaces) and the developer message (instructions
// and the `functions` namespace). Every caller (the agent loop, the server, the library) builds
// its prompt here, so the head is the same wherever a conversation starts.
import { createMessage, developerContent, systemContent, type Conversation, type Message, type ReasoningEffort, type ToolDescription, type ToolNamespaceConfig } from './types.ts';

export interface PromptOptions {
  /** Reasoning effort in the system message. Default 'medium'. */
  reasoningEffort?: ReasoningEffort;
  /** Identity line of the system message (harmony's default when absent). */
  modelIdentity?: string;
  /** "Current date:" of the system message; default today (local time), null for none. */
  date?: string | null;
  /** Developer instructions (the API's system prompt). */
  instructions?: string;
  /** Namespaces of the built-in tools (browser, python), for the system message. */
  toolNamespaces?: readonly ToolNamespaceConfig[];
  /** Developer-declared functions, rendered in the developer message's `functions` namespace. */
  functionTools?: readonly ToolDescription[];
}

/** Today's date as harmony's system message writes it (local time, YYYY-MM-DD, like the reference). */
export function today(now: Date = new Date()): string {
  const pad = (n: number): string => String(n).padStart(2, '0');
  return `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}`;
}

/** The system message: identity, effort, date and the built-in tools' namespaces. */
export function buildSystemMessage(options: PromptOptions = {}): Message {
  const tools: Record<string, ToolNamespaceConfig> = {};
  for (const ns of options.toolNamespaces ?? []) tools[ns.name] = ns;
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

/** The system message, then the developer message if any. */
export function promptHead(options: PromptOptions = {}): Message[] {
  const developer = buildDeveloperMessage(options);
  return developer === undefined ? [buildSystemMessage(options)] : [buildSystemMessage(options), developer];
}

/** A new conversation: the system message, then the developer message if any. */
export function createConversation(options: PromptOptions = {}): Conversation {
  return { messages: promptHead(options) };
}
