// The contract between the built-in tools and whoever runs them (the agent loop, the server, the
// `gptoss tool` command): a tool declares its harmony namespace and answers one call at a time.
// The agent loop (src/engine/agent.ts) uses this contract as is; tools do not depend on the engine.
import { createMessage, type Message, type ToolNamespaceConfig } from '../harmony/index.ts';

/** What the model sent: the recipient from the message header and the raw message content. */
export interface ToolCall {
  /** "browser.search", "browser.open", "browser.find", "python", ... */
  recipient: string;
  /** JSON arguments for the browser; the code itself for python. */
  content: string;
  channel?: string;
  contentType?: string;
}

/** What the tool answers; becomes the tool message `<|start|>{author} to=assistant<|channel|>...`. */
export interface ToolOutput {
  /** The tool message's author name ("browser.search", "python"); defaults to the call's recipient. */
  author?: string;
  /** The text the model reads (for a failed call, the error text). */
  content: string;
  /** Defaults to the call's channel. */
  channel?: string;
  /** Set when the call failed: a short description for logs and exit statuses. */
  error?: string;
  /**
   * python: the code's exit status when it ran to its end (0; 1 for an uncaught exception; the
   * status given to sys.exit). A non-zero status is not a tool error: the traceback is ordinary
   * output for the model, but `gptoss tool python` reports it in its own exit status.
   */
  exitStatus?: number;
}

export interface Tool {
  /** Namespace name: calls to `name` or `name.<fn>` go here. */
  readonly name: string;
  /** The namespace for the system message, word for word what the model was trained on. */
  namespace(): ToolNamespaceConfig;
  run(call: ToolCall, signal?: AbortSignal): Promise<ToolOutput>;
  /** Releases processes or other resources (a stateful python interpreter). */
  close?(): Promise<void>;
}

/** The call in an assistant message addressed to a tool. */
export function toolCallFromMessage(m: Message): ToolCall {
  let content = '';
  for (const c of m.content) if (c.type === 'text') content += c.text;
  const call: ToolCall = { recipient: m.recipient ?? '', content };
  if (m.channel !== undefined) call.channel = m.channel;
  if (m.contentType !== undefined) call.contentType = m.contentType;
  return call;
}

/** The tool message the model receives for `output` (author = the tool, recipient = assistant). */
export function toolOutputMessage(call: ToolCall, output: ToolOutput): Message {
  const channel = output.channel ?? call.channel;
  return createMessage(
    { role: 'tool', name: output.author ?? call.recipient },
    output.content,
    channel === undefined ? { recipient: 'assistant' } : { recipient: 'assistant', channel },
  );
}
