// The tokenizer (o200k_harmony) and the harmony format for library callers: text to token ids and
// back, the prompt a chat turn renders (the same code path as chat()), and a completion's tokens
// parsed into messages. Plain data in and out; harmony's internal message model stays private.
import { messageText, parseCompletion as parseTokens, renderConversationForCompletion, validateToolSchema, type ReasoningEffort, type ToolDescription } from '../harmony/index.ts';
import { getTokenizer } from '../tokenizer/index.ts';
import { buildConversation, type ChatMessage } from './chat.ts';
import type { FunctionTool } from './tools.ts';
import { translateErrorsSync as sync } from './errors.ts';

/** Options of encode(). */
export interface EncodeOptions {
  /**
   * Special-token names in the text that become their ids (`'all'`, or a list such as
   * `['<|start|>']`). Default none: `<|start|>` in the text is ordinary text, which is what
   * untrusted text needs.
   */
  allowedSpecial?: 'all' | readonly string[];
}

/** Token ids of `text` in the o200k_harmony encoding gpt-oss uses. */
export function encode(text: string, options: EncodeOptions = {}): number[] {
  const allowed = options.allowedSpecial;
  return getTokenizer().encode(text, allowed === undefined ? {} : { allowedSpecial: allowed === 'all' ? 'all' : new Set(allowed) });
}

/** The text of token ids; a GptossError (`input`) when an id is out of range or the bytes are not whole UTF-8. */
export function decode(tokens: readonly number[]): string {
  return sync(() => getTokenizer().decode(tokens));
}

/** A function the model may call, as render() declares it (FunctionTool without the handler). */
export type FunctionDeclaration = Pick<FunctionTool, 'name' | 'description' | 'parameters'>;

/** What the rendered prompt's system and developer messages hold. */
export interface RenderOptions {
  reasoningEffort?: ReasoningEffort;
  /** Developer instructions, before those of system/developer messages. */
  instructions?: string;
  /** Functions declared in the developer message. */
  functions?: readonly FunctionDeclaration[];
  /** "Current date:" of the system message (YYYY-MM-DD); default today, null for none. */
  date?: string | null;
}

/**
 * The prompt a chat turn on `messages` feeds the model, as token ids: the harmony system and
 * developer messages, the conversation, and `<|start|>assistant` (decode() shows it as text).
 */
export function renderPrompt(messages: readonly ChatMessage[] | string, options: RenderOptions = {}): number[] {
  return sync(() => {
    const functionTools: ToolDescription[] = (options.functions ?? []).map((f, i) => {
      const tool: ToolDescription = { name: f.name, description: f.description ?? '' };
      if (f.parameters !== undefined) {
        validateToolSchema(f.parameters, `functions[${i}].parameters`);
        tool.parameters = f.parameters;
      }
      return tool;
    });
    const { conversation } = buildConversation(messages, { ...options, tools: [], functionTools });
    return renderConversationForCompletion(conversation, 'assistant', { dropAnalysis: 'completed-turns' });
  });
}

/** A message parsed from a completion. */
export interface ParsedMessage {
  role: 'system' | 'developer' | 'user' | 'assistant' | 'tool';
  /** `analysis` (reasoning), `commentary` (preambles, tool calls) or `final` (the answer). */
  channel?: string;
  /** Whom the message is for: a tool (`functions.get_weather`, `browser.search`, `python`) or none. */
  recipient?: string;
  /** The content type of a tool call (`json`, `<|constrain|>json`). */
  contentType?: string;
  text: string;
}

/**
 * Parses the tokens a model generated after `<|start|>assistant` into messages. Lenient, as the
 * chat loop is: a malformed stretch is dropped, and text cut off at the end is kept.
 */
export function parseCompletion(tokens: readonly number[]): ParsedMessage[] {
  return sync(() =>
    parseTokens(tokens, { role: 'assistant', strict: false }).messages.map((m) => {
      const out: ParsedMessage = { role: m.author.role, text: messageText(m) };
      if (m.channel !== undefined) out.channel = m.channel;
      if (m.recipient !== undefined) out.recipient = m.recipient;
      if (m.contentType !== undefined) out.contentType = m.contentType;
      return out;
    }),
  );
}
