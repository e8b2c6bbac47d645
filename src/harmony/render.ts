// Rendering messages and conversations to token ids: `<|start|>header<|message|>content<|end|>`,
// special tokens as ids and every piece of text through encodeOrdinary (so "<|start|>" typed by a
// user stays text). Also which analysis (chain-of-thought) messages are dropped from history.
import { UserError } from '../errors.ts';
import { getTokenizer, SPECIAL, type Tokenizer } from '../tokenizer/index.ts';
import { renderToolsSection, validateToolSchema } from './schema.ts';
import type { Content, Conversation, DeveloperContent, Message, Role, SystemContent, ToolNamespaces } from './types.ts';

export interface RenderOptions {
  /** Adds "Calls to these tools must go to the commentary channel: 'functions'." to the system
   *  message's channel line. renderConversation* computes it from the developer message. */
  conversationHasFunctionTools?: boolean;
  tokenizer?: Tokenizer;
}

/**
 * Which analysis-channel messages disappear from the rendered history.
 * - 'completed-turns' (default): the documented rule. Every analysis message of a turn that ended
 *   in a `final` answer is dropped (a turn runs up to the next user message); the analysis of the
 *   turn in progress (e.g. during tool calls) is kept.
 * - 'library': exactly the official library's `auto_drop_analysis`: only when the last assistant
 *   message is `final`, drop the analysis messages before the FIRST `final` of the conversation.
 * - 'none': keep everything (the library with `auto_drop_analysis=False`).
 */
export type DropAnalysis = 'completed-turns' | 'library' | 'none';

export interface RenderConversationOptions {
  dropAnalysis?: DropAnalysis;
  tokenizer?: Tokenizer;
}

const CONSTRAIN_TEXT = '<|constrain|>';

/** Renders one message. Throws UserError('input') for a message the format cannot express. */
export function renderMessage(msg: Message, options: RenderOptions = {}): number[] {
  const out: number[] = [];
  renderMessageInto(msg, out, options.tokenizer ?? getTokenizer(), options.conversationHasFunctionTools === true, 'message');
  return out;
}

function renderMessageInto(msg: Message, out: number[], tok: Tokenizer, hasFunctionTools: boolean, where: string): void {
  const text = (s: string): void => {
    for (const id of tok.encodeOrdinary(s)) out.push(id);
  };
  out.push(SPECIAL.start);
  if (msg.author.role === 'tool') {
    // A tool's message is headed by the tool's name alone ("functions.get_weather", "browser.search").
    if (msg.author.name === undefined || msg.author.name === '') {
      throw new UserError('input', `${where}: a tool message needs the tool's name in author.name (e.g. "functions.get_weather")`);
    }
    text(msg.author.name);
  } else {
    text(msg.author.role);
    if (msg.author.name !== undefined) text(`:${msg.author.name}`);
  }
  if (msg.recipient !== undefined && msg.recipient !== 'all') text(` to=${msg.recipient}`);
  if (msg.channel !== undefined) {
    out.push(SPECIAL.channel);
    text(msg.channel);
  }
  if (msg.contentType !== undefined) {
    if (msg.contentType.startsWith(CONSTRAIN_TEXT)) {
      // "<|constrain|>json": the marker is the special token, preceded by a space.
      text(' ');
      out.push(SPECIAL.constrain);
      const rest = msg.contentType.slice(CONSTRAIN_TEXT.length);
      if (rest !== '') text(rest);
    } else {
      text(` ${msg.contentType}`);
    }
  }
  out.push(SPECIAL.message);
  msg.content.forEach((c, i) => {
    checkContentRole(c, msg.author.role, `${where}.content[${i}]`);
    text(contentText(c, hasFunctionTools, `${where}.content[${i}]`));
  });
  // An assistant message addressed to a tool is a call: the model stops there and waits.
  out.push(msg.author.role === 'assistant' && msg.recipient !== undefined ? SPECIAL.call : SPECIAL.end);
}

function checkContentRole(c: Content, role: Role, where: string): void {
  if (c.type === 'system_content' && role !== 'system') {
    throw new UserError('input', `${where}: system_content may only appear in a system message, found in a ${role} message`);
  }
  if (c.type === 'developer_content' && role !== 'developer') {
    throw new UserError('input', `${where}: developer_content may only appear in a developer message, found in a ${role} message`);
  }
}

function contentText(c: Content, hasFunctionTools: boolean, where: string): string {
  switch (c.type) {
    case 'text':
      return c.text;
    case 'system_content':
      return systemText(c, hasFunctionTools, where);
    case 'developer_content':
      return developerText(c, where);
  }
}

function toolsText(tools: ToolNamespaces, where: string): string {
  for (const [key, ns] of Object.entries(tools)) {
    ns.tools.forEach((t, i) => {
      if (t.parameters !== undefined) validateToolSchema(t.parameters, `${where}.tools.${key}.tools[${i}].parameters`);
    });
  }
  return renderToolsSection(tools);
}

/** The text of the system message (identity/dates, effort, built-in tools, channels). */
export function systemText(sys: SystemContent, hasFunctionTools = false, where = 'system_content'): string {
  const sections: string[] = [];
  const top: string[] = [];
  if (sys.modelIdentity !== undefined) top.push(sys.modelIdentity);
  if (sys.knowledgeCutoff !== undefined) top.push(`Knowledge cutoff: ${sys.knowledgeCutoff}`);
  if (sys.conversationStartDate !== undefined) top.push(`Current date: ${sys.conversationStartDate}`);
  if (top.length > 0) sections.push(top.join('\n'));
  if (sys.reasoningEffort !== undefined) sections.push(`Reasoning: ${sys.reasoningEffort}`);
  if (sys.tools !== undefined && Object.keys(sys.tools).length > 0) sections.push(toolsText(sys.tools, where));
  const cc = sys.channelConfig;
  if (cc !== undefined && cc.validChannels.length > 0) {
    let line = `# Valid channels: ${cc.validChannels.join(', ')}.`;
    if (cc.channelRequired) line += ' Channel must be included for every message.';
    if (hasFunctionTools) line += "\nCalls to these tools must go to the commentary channel: 'functions'.";
    sections.push(line);
  }
  return sections.join('\n\n');
}

/** The text of the developer message (instructions, then function tools). */
export function developerText(dev: DeveloperContent, where = 'developer_content'): string {
  const sections: string[] = [];
  if (dev.instructions !== undefined) sections.push('# Instructions', dev.instructions);
  if (dev.tools !== undefined && Object.keys(dev.tools).length > 0) sections.push(toolsText(dev.tools, where));
  return sections.join('\n\n');
}

/** Whether a developer message declares at least one tool in the `functions` namespace. */
export function hasFunctionTools(messages: readonly Message[]): boolean {
  return messages.some((m) => m.content.some((c) => c.type === 'developer_content' && (c.tools?.['functions']?.tools.length ?? 0) > 0));
}

/** Indices of the messages kept under a CoT-dropping mode. */
export function keptMessageIndices(messages: readonly Message[], mode: DropAnalysis, keepLastTurn = false): number[] {
  const all = messages.map((_, i) => i);
  if (mode === 'none') return all;
  if (mode === 'library') {
    let lastAssistantIsFinal = false;
    for (let i = messages.length - 1; i >= 0; i--) {
      if (messages[i]!.author.role === 'assistant') {
        lastAssistantIsFinal = messages[i]!.channel === 'final';
        break;
      }
    }
    if (!lastAssistantIsFinal) return all;
    const firstFinal = messages.findIndex((m) => m.channel === 'final');
    return all.filter((i) => !(i < firstFinal && messages[i]!.channel === 'analysis'));
  }
  // completed-turns: walking backwards, remember whether the current turn (up to the previous
  // user message) has already reached a final answer; drop its analysis-channel messages if so.
  // This includes built-in tool calls on analysis and their results, which belong to the CoT.
  const kept: number[] = [];
  let turnFinished = false;
  let inLastTurn = true;
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i]!;
    if (m.author.role === 'user') {
      turnFinished = false;
      inLastTurn = false;
    } else if (m.author.role === 'assistant' && m.channel === 'final' && !(keepLastTurn && inLastTurn)) turnFinished = true;
    if (!(turnFinished && m.channel === 'analysis')) kept.push(i);
  }
  return kept.reverse();
}

function renderConversationInto(convo: Conversation, out: number[], options: RenderConversationOptions, keepLastTurn = false): void {
  const tok = options.tokenizer ?? getTokenizer();
  const msgs = convo.messages;
  const fnTools = hasFunctionTools(msgs);
  for (const i of keptMessageIndices(msgs, options.dropAnalysis ?? 'completed-turns', keepLastTurn)) {
    renderMessageInto(msgs[i]!, out, tok, fnTools, `messages[${i}]`);
  }
}

/** Renders every message (after dropping analysis per `dropAnalysis`, default 'completed-turns'). */
export function renderConversation(convo: Conversation, options: RenderConversationOptions = {}): number[] {
  const out: number[] = [];
  renderConversationInto(convo, out, options);
  return out;
}

/** The prompt for sampling: the conversation followed by `<|start|>{nextRole}`. */
export function renderConversationForCompletion(
  convo: Conversation,
  nextRole: Role = 'assistant',
  options: RenderConversationOptions = {},
): number[] {
  const out: number[] = [];
  renderConversationInto(convo, out, options);
  out.push(SPECIAL.start);
  for (const id of (options.tokenizer ?? getTokenizer()).encodeOrdinary(nextRole)) out.push(id);
  return out;
}

/** For training targets: like renderConversation, but a last assistant `final` message ends with
 *  `<|return|>` (what the model samples) instead of `<|end|>` (what history stores). Under
 *  'completed-turns' the last turn keeps its analysis: it is the target the model learns to write. */
export function renderConversationForTraining(convo: Conversation, options: RenderConversationOptions = {}): number[] {
  const out: number[] = [];
  renderConversationInto(convo, out, options, true);
  const last = convo.messages[convo.messages.length - 1];
  if (last !== undefined && last.author.role === 'assistant' && last.channel === 'final' && out.length > 0) {
    out[out.length - 1] = SPECIAL.return;
  }
  return out;
}

/** Token ids as text, special tokens written by name ("<|start|>user<|message|>..."). Bytes that
 *  are not valid UTF-8 (a cut multi-byte character) become U+FFFD. */
export function tokensToText(ids: readonly number[], tokenizer: Tokenizer = getTokenizer()): string {
  return new TextDecoder('utf-8', { fatal: false }).decode(tokenizer.decodeBytes(ids));
}
