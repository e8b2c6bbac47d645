// OpenAI chat-format conversations ({"messages": [...], "tools"?: [...], "reasoning_effort"?})
// as harmony conversations, the way gpt-oss sees them: system and developer messages become the
// developer instructions, function tools the developer's `functions` namespace, an assistant's
// reasoning (`reasoning_content`, `thinking` or `reasoning`) an analysis message, its `tool_calls`
// commentary calls to functions.NAME with JSON arguments, its text the final answer (or a
// commentary preamble beside tool calls), and a tool message the answer of the function its
// `tool_call_id` names. The system message carries the effort and no date, so the same line
// always renders to the same tokens. Every problem is a UserError naming the JSON path.
import { UserError } from '../errors.ts';
import { describe, validateToolSchema } from './schema.ts';
import {
  REASONING_EFFORTS, createMessage, developerContent, systemContent,
  type Conversation, type JsonObject, type JsonValue, type Message, type ReasoningEffort, type ToolDescription,
} from './types.ts';

export const CHAT_ROLES = ['system', 'developer', 'user', 'assistant', 'tool'] as const;

function bad(path: string, what: string): never {
  throw new UserError('input', `${path}: ${what}`);
}

function isObject(v: JsonValue | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function optString(o: JsonObject, key: string, path: string): string | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') bad(`${path}.${key}`, `expected a string, got ${describe(v)}`);
  return v;
}

/** A message's `content`: a string, or a list of {"type": "text", "text"} parts (joined). */
function contentText(v: JsonValue | undefined, path: string): string {
  if (v === undefined || v === null) return '';
  if (typeof v === 'string') return v;
  if (!Array.isArray(v)) bad(path, `expected a string or a list of text parts, got ${describe(v)}`);
  return v.map((part, i) => {
    if (!isObject(part) || (part['type'] !== 'text' && part['type'] !== 'input_text' && part['type'] !== 'output_text') || typeof part['text'] !== 'string') {
      bad(`${path}[${i}]`, `only text parts ({"type": "text", "text": "..."}) can be used, got ${describe(part)}`);
    }
    return part['text'];
  }).join('');
}

/** A `tools` entry: {"type": "function", "function": {"name", "description"?, "parameters"?}}. */
function functionTool(v: JsonValue, path: string): ToolDescription {
  if (!isObject(v) || v['type'] !== 'function' || !isObject(v['function'])) bad(path, `expected {"type": "function", "function": {...}}, got ${describe(v)}`);
  const fn = v['function'];
  const fp = `${path}.function`;
  const name = optString(fn, 'name', fp);
  if (name === undefined || !/^[A-Za-z0-9_-]{1,64}$/.test(name)) bad(`${fp}.name`, 'must be 1-64 letters, digits, "_" or "-"');
  const tool: ToolDescription = { name, description: optString(fn, 'description', fp) ?? '' };
  const parameters = fn['parameters'];
  if (parameters !== undefined && parameters !== null) {
    if (!isObject(parameters)) bad(`${fp}.parameters`, `expected a JSON schema object, got ${describe(parameters)}`);
    validateToolSchema(parameters, `${fp}.parameters`);
    const props = parameters['properties'];
    // A function without parameters renders as `() => any`, as the server renders it.
    if (!(isObject(props) && Object.keys(props).length === 0 && parameters['required'] === undefined)) tool.parameters = parameters;
  }
  return tool;
}

/** The harmony messages of chat `messages` (no system/developer head) and the instructions they carry. */
export function chatMessagesToHarmony(messages: readonly JsonValue[], path = 'messages'): { instructions: string[]; messages: Message[] } {
  const out: Message[] = [];
  const instructions: string[] = [];
  const callNames = new Map<string, string>();
  messages.forEach((raw, i) => {
    const mp = `${path}[${i}]`;
    if (!isObject(raw)) bad(mp, `expected a message object, got ${describe(raw)}`);
    const role = raw['role'];
    if (typeof role !== 'string' || !(CHAT_ROLES as readonly string[]).includes(role)) {
      bad(`${mp}.role`, `${role === undefined ? 'missing' : `unknown role ${describe(role)}`} (expected one of: ${CHAT_ROLES.join(', ')})`);
    }
    switch (role) {
      case 'system':
      case 'developer':
        instructions.push(contentText(raw['content'], `${mp}.content`));
        break;
      case 'user':
        out.push(createMessage('user', contentText(raw['content'], `${mp}.content`)));
        break;
      case 'assistant': {
        const reasoning = optString(raw, 'reasoning_content', mp) ?? optString(raw, 'thinking', mp) ?? optString(raw, 'reasoning', mp);
        if (reasoning !== undefined && reasoning !== '') out.push(createMessage('assistant', reasoning, { channel: 'analysis' }));
        const content = contentText(raw['content'], `${mp}.content`);
        const callsRaw = raw['tool_calls'];
        if (callsRaw !== undefined && callsRaw !== null && !Array.isArray(callsRaw)) bad(`${mp}.tool_calls`, `expected a list, got ${describe(callsRaw)}`);
        const calls = (callsRaw ?? []) as JsonValue[];
        // Text beside tool calls is a preamble on commentary, before them; otherwise the final answer.
        if (content !== '') out.push(createMessage('assistant', content, { channel: calls.length > 0 ? 'commentary' : 'final' }));
        calls.forEach((c, j) => {
          const cp = `${mp}.tool_calls[${j}]`;
          if (!isObject(c) || !isObject(c['function'])) bad(cp, `expected {"id", "type": "function", "function": {"name", "arguments"}}, got ${describe(c)}`);
          const name = optString(c['function'], 'name', `${cp}.function`);
          if (name === undefined || name === '') bad(`${cp}.function.name`, 'missing');
          const args = c['function']['arguments'];
          const argsText = args === undefined || args === null ? '{}' : typeof args === 'string' ? args : JSON.stringify(args);
          const id = optString(c, 'id', cp);
          if (id !== undefined) callNames.set(id, name);
          out.push(createMessage('assistant', argsText, { channel: 'commentary', recipient: `functions.${name}`, contentType: '<|constrain|>json' }));
        });
        if (reasoning === undefined && content === '' && calls.length === 0) bad(mp, 'an assistant message needs content, reasoning or tool_calls');
        break;
      }
      case 'tool': {
        const id = optString(raw, 'tool_call_id', mp);
        const name = (id !== undefined ? callNames.get(id) : undefined) ?? optString(raw, 'name', mp);
        if (name === undefined) {
          bad(id !== undefined ? `${mp}.tool_call_id` : mp, id !== undefined ? `"${id}" matches no earlier assistant tool call` : 'a tool message needs the tool_call_id of the call it answers (or the function\'s name)');
        }
        out.push(createMessage({ role: 'tool', name: `functions.${name}` }, contentText(raw['content'], `${mp}.content`), { recipient: 'assistant', channel: 'commentary' }));
        break;
      }
    }
  });
  return { instructions, messages: out };
}

/**
 * A chat-format conversation object as a whole harmony conversation: a system message (the line's
 * `reasoning_effort`, default medium; no date), a developer message when there are instructions
 * or tools, then the messages.
 */
export function conversationFromChatJSON(v: JsonValue, path = '(conversation)'): Conversation {
  if (!isObject(v)) bad(path, `expected {"messages": [...]}, got ${describe(v)}`);
  const list = v['messages'];
  if (!Array.isArray(list)) bad('messages', list === undefined ? 'missing (a list of messages is required)' : `expected a list, got ${describe(list)}`);
  const effortRaw = v['reasoning_effort'];
  if (effortRaw !== undefined && effortRaw !== null && (typeof effortRaw !== 'string' || !(REASONING_EFFORTS as readonly string[]).includes(effortRaw))) {
    bad('reasoning_effort', `expected one of ${REASONING_EFFORTS.join(', ')}, got ${describe(effortRaw)}`);
  }
  const toolsRaw = v['tools'];
  if (toolsRaw !== undefined && toolsRaw !== null && !Array.isArray(toolsRaw)) bad('tools', `expected a list, got ${describe(toolsRaw)}`);
  const tools = ((toolsRaw ?? []) as JsonValue[]).map((t, i) => functionTool(t, `tools[${i}]`));
  const { instructions, messages } = chatMessagesToHarmony(list);
  const head: Message[] = [createMessage('system', systemContent({ reasoningEffort: (effortRaw ?? 'medium') as ReasoningEffort }))];
  const text = instructions.filter((s) => s !== '').join('\n\n');
  if (text !== '' || tools.length > 0) {
    head.push(createMessage('developer', developerContent({
      ...(text !== '' ? { instructions: text } : {}),
      ...(tools.length > 0 ? { functionTools: tools } : {}),
    })));
  }
  return { messages: [...head, ...messages] };
}

/**
 * Whether a parsed JSON line is in harmony's own JSON shape rather than chat format: a message
 * with a harmony-only field (channel, recipient, content_type) or a typed system/developer content.
 * Anything else (plain role/content messages included) reads as chat format, where an assistant's
 * text is its final answer.
 */
export function isHarmonyConversationJSON(v: JsonValue): boolean {
  const list = Array.isArray(v) ? v : isObject(v) ? v['messages'] : undefined;
  if (!Array.isArray(list)) return false;
  return list.some((m) => isObject(m) && (
    'channel' in m || 'recipient' in m || 'content_type' in m ||
    (Array.isArray(m['content']) && m['content'].some((c) => isObject(c) && (c['type'] === 'system_content' || c['type'] === 'developer_content')))
  ));
}
