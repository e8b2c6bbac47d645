// JSON interchange in the official library's shape (Message.to_dict/from_dict, serde of chat.rs):
//   {"role", "name"?, "recipient"?, "content": "text" | [{"type": "text"|"system_content"|"developer_content", ...}],
//    "channel"?, "content_type"?}
// Writing follows the Rust serializer (a lone text content becomes a plain string; system/developer
// content lists every field, null when unset). Reading accepts what either Python or Rust writes;
// a system_content field that is absent takes the library's default (as Python's from_dict does),
// while an explicit null removes it. Every problem is a UserError naming the JSON path.
import { UserError } from '../errors.ts';
import { describe, validateToolSchema } from './schema.ts';
import {
  DEFAULT_CHANNELS,
  DEFAULT_KNOWLEDGE_CUTOFF,
  DEFAULT_MODEL_IDENTITY,
  REASONING_EFFORTS,
  ROLES,
  isRole,
  type ChannelConfig,
  type Content,
  type Conversation,
  type DeveloperContent,
  type JsonObject,
  type JsonValue,
  type Message,
  type ReasoningEffort,
  type SystemContent,
  type ToolDescription,
  type ToolNamespaceConfig,
  type ToolNamespaces,
} from './types.ts';

// ---------------------------------------------------------------------------------------------
// Writing

const EFFORT_JSON: Record<ReasoningEffort, string> = { low: 'Low', medium: 'Medium', high: 'High' };

function toolsToJSON(tools: ToolNamespaces | undefined): JsonValue {
  if (tools === undefined) return null;
  const out: JsonObject = {};
  for (const [key, ns] of Object.entries(tools)) {
    out[key] = {
      name: ns.name,
      description: ns.description ?? null,
      tools: ns.tools.map((t) => ({ name: t.name, description: t.description, parameters: t.parameters ?? null })),
    };
  }
  return out;
}

export function contentToJSON(c: Content): JsonObject {
  switch (c.type) {
    case 'text':
      return { type: 'text', text: c.text };
    case 'system_content':
      return {
        type: 'system_content',
        model_identity: c.modelIdentity ?? null,
        reasoning_effort: c.reasoningEffort === undefined ? null : EFFORT_JSON[c.reasoningEffort],
        tools: toolsToJSON(c.tools),
        conversation_start_date: c.conversationStartDate ?? null,
        knowledge_cutoff: c.knowledgeCutoff ?? null,
        channel_config:
          c.channelConfig === undefined
            ? null
            : { valid_channels: [...c.channelConfig.validChannels], channel_required: c.channelConfig.channelRequired },
      };
    case 'developer_content':
      return { type: 'developer_content', instructions: c.instructions ?? null, tools: toolsToJSON(c.tools) };
  }
}

export function messageToJSON(m: Message): JsonObject {
  const out: JsonObject = { role: m.author.role };
  if (m.author.name !== undefined) out['name'] = m.author.name;
  if (m.recipient !== undefined) out['recipient'] = m.recipient;
  const only = m.content.length === 1 ? m.content[0]! : undefined;
  out['content'] = only !== undefined && only.type === 'text' ? only.text : m.content.map(contentToJSON);
  if (m.channel !== undefined) out['channel'] = m.channel;
  if (m.contentType !== undefined) out['content_type'] = m.contentType;
  return out;
}

export function conversationToJSON(c: Conversation): JsonObject {
  return { messages: c.messages.map(messageToJSON) };
}

// ---------------------------------------------------------------------------------------------
// Reading

function bad(path: string, what: string): never {
  throw new UserError('input', `${path}: ${what}`);
}

function isObject(v: JsonValue | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function expectObject(v: JsonValue | undefined, path: string): JsonObject {
  if (!isObject(v)) bad(path, `expected an object, got ${describe(v)}`);
  return v;
}

function checkKeys(o: JsonObject, allowed: readonly string[], path: string): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) bad(`${path}.${k}`, `unknown field (expected one of: ${allowed.join(', ')})`);
  }
}

/** An optional string: absent or null -> undefined. */
function optString(o: JsonObject, key: string, path: string): string | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') bad(`${path}.${key}`, `expected a string, got ${describe(v)}`);
  return v;
}

function reqString(o: JsonObject, key: string, path: string): string {
  const v = o[key];
  if (typeof v !== 'string') bad(`${path}.${key}`, v === undefined ? 'missing (a string is required)' : `expected a string, got ${describe(v)}`);
  return v;
}

function readTools(v: JsonValue, path: string): ToolNamespaces {
  const o = expectObject(v, path);
  const out: ToolNamespaces = {};
  for (const [key, raw] of Object.entries(o)) {
    const p = `${path}.${key}`;
    const nsObj = expectObject(raw, p);
    checkKeys(nsObj, ['name', 'description', 'tools'], p);
    const ns: ToolNamespaceConfig = { name: optString(nsObj, 'name', p) ?? key, tools: [] };
    const desc = optString(nsObj, 'description', p);
    if (desc !== undefined) ns.description = desc;
    const tools = nsObj['tools'];
    if (tools !== undefined && tools !== null) {
      if (!Array.isArray(tools)) bad(`${p}.tools`, `expected a list of tools, got ${describe(tools)}`);
      ns.tools = tools.map((t, i) => readTool(t, `${p}.tools[${i}]`));
    }
    out[key] = ns;
  }
  return out;
}

function readTool(v: JsonValue, path: string): ToolDescription {
  const o = expectObject(v, path);
  checkKeys(o, ['name', 'description', 'parameters'], path);
  const t: ToolDescription = { name: reqString(o, 'name', path), description: optString(o, 'description', path) ?? '' };
  const params = o['parameters'];
  if (params !== undefined && params !== null) {
    validateToolSchema(params, `${path}.parameters`);
    t.parameters = params as JsonObject;
  }
  return t;
}

function readEffort(v: JsonValue, path: string): ReasoningEffort {
  const s = typeof v === 'string' ? v.toLowerCase() : undefined;
  if (s === undefined || !(REASONING_EFFORTS as readonly string[]).includes(s)) {
    bad(path, `expected "low", "medium" or "high", got ${describe(v)}`);
  }
  return s as ReasoningEffort;
}

function readChannelConfig(v: JsonValue, path: string): ChannelConfig {
  const o = expectObject(v, path);
  checkKeys(o, ['valid_channels', 'channel_required'], path);
  const ch = o['valid_channels'];
  if (!Array.isArray(ch) || !ch.every((c) => typeof c === 'string')) bad(`${path}.valid_channels`, `expected a list of channel names, got ${describe(ch)}`);
  const req = o['channel_required'];
  if (typeof req !== 'boolean') bad(`${path}.channel_required`, `expected true or false, got ${describe(req)}`);
  return { validChannels: ch as string[], channelRequired: req };
}

const SYSTEM_FIELDS = ['type', 'model_identity', 'reasoning_effort', 'tools', 'conversation_start_date', 'knowledge_cutoff', 'channel_config'];

function readSystemContent(o: JsonObject, path: string): SystemContent {
  checkKeys(o, SYSTEM_FIELDS, path);
  const sys: SystemContent = { type: 'system_content' };
  // Absent -> the library default; null -> unset.
  const identity = o['model_identity'] === undefined ? DEFAULT_MODEL_IDENTITY : optString(o, 'model_identity', path);
  if (identity !== undefined) sys.modelIdentity = identity;
  const effort = o['reasoning_effort'];
  if (effort === undefined) sys.reasoningEffort = 'medium';
  else if (effort !== null) sys.reasoningEffort = readEffort(effort, `${path}.reasoning_effort`);
  const tools = o['tools'];
  if (tools !== undefined && tools !== null) sys.tools = readTools(tools, `${path}.tools`);
  const date = optString(o, 'conversation_start_date', path);
  if (date !== undefined) sys.conversationStartDate = date;
  const cutoff = o['knowledge_cutoff'] === undefined ? DEFAULT_KNOWLEDGE_CUTOFF : optString(o, 'knowledge_cutoff', path);
  if (cutoff !== undefined) sys.knowledgeCutoff = cutoff;
  const cc = o['channel_config'];
  if (cc === undefined) sys.channelConfig = { validChannels: [...DEFAULT_CHANNELS], channelRequired: true };
  else if (cc !== null) sys.channelConfig = readChannelConfig(cc, `${path}.channel_config`);
  return sys;
}

function readDeveloperContent(o: JsonObject, path: string): DeveloperContent {
  checkKeys(o, ['type', 'instructions', 'tools'], path);
  const dev: DeveloperContent = { type: 'developer_content' };
  const instructions = optString(o, 'instructions', path);
  if (instructions !== undefined) dev.instructions = instructions;
  const tools = o['tools'];
  if (tools !== undefined && tools !== null) dev.tools = readTools(tools, `${path}.tools`);
  return dev;
}

export function contentFromJSON(v: JsonValue, path: string): Content {
  const o = expectObject(v, path);
  const type = o['type'];
  switch (type) {
    case 'text':
      checkKeys(o, ['type', 'text'], path);
      return { type: 'text', text: reqString(o, 'text', path) };
    case 'system_content':
      return readSystemContent(o, path);
    case 'developer_content':
      return readDeveloperContent(o, path);
    default:
      return bad(`${path}.type`, `unknown content type ${describe(type)} (expected "text", "system_content" or "developer_content")`);
  }
}

const MESSAGE_FIELDS = ['role', 'name', 'recipient', 'content', 'channel', 'content_type'];

export function messageFromJSON(v: JsonValue, path = 'message'): Message {
  const o = expectObject(v, path);
  checkKeys(o, MESSAGE_FIELDS, path);
  const role = o['role'];
  if (typeof role !== 'string' || !isRole(role)) {
    bad(`${path}.role`, `${role === undefined ? 'missing' : `unknown role ${describe(role)}`} (expected one of: ${ROLES.join(', ')})`);
  }
  const m: Message = { author: { role }, content: [] };
  const name = optString(o, 'name', path);
  if (name !== undefined) m.author.name = name;
  const recipient = optString(o, 'recipient', path);
  if (recipient !== undefined) m.recipient = recipient;
  const content = o['content'];
  if (typeof content === 'string') m.content = [{ type: 'text', text: content }];
  else if (Array.isArray(content)) m.content = content.map((c, i) => contentFromJSON(c, `${path}.content[${i}]`));
  else bad(`${path}.content`, content === undefined ? 'missing (a string or a list of contents is required)' : `expected a string or a list, got ${describe(content)}`);
  m.content.forEach((c, i) => {
    if (c.type === 'system_content' && role !== 'system') bad(`${path}.content[${i}]`, `system_content may only appear in a system message, found in a ${role} message`);
    if (c.type === 'developer_content' && role !== 'developer') bad(`${path}.content[${i}]`, `developer_content may only appear in a developer message, found in a ${role} message`);
  });
  if (role === 'tool' && name === undefined) bad(`${path}.name`, 'a tool message needs the name of the tool that answered (e.g. "functions.get_weather")');
  const channel = optString(o, 'channel', path);
  if (channel !== undefined) m.channel = channel;
  const ct = optString(o, 'content_type', path);
  if (ct !== undefined) m.contentType = ct;
  return m;
}

/** Reads `{"messages": [...]}` (the official Conversation JSON) or a bare list of messages. */
export function conversationFromJSON(v: JsonValue): Conversation {
  let list: JsonValue | undefined;
  if (Array.isArray(v)) list = v;
  else if (isObject(v)) {
    checkKeys(v, ['messages'], '(conversation)');
    list = v['messages'];
    if (!Array.isArray(list)) bad('messages', list === undefined ? 'missing (a list of messages is required)' : `expected a list, got ${describe(list)}`);
  } else bad('(conversation)', `expected {"messages": [...]} or a list of messages, got ${describe(v)}`);
  return { messages: list.map((m, i) => messageFromJSON(m, `messages[${i}]`)) };
}

/** Parses JSON text; a syntax error becomes a UserError with line and column. */
export function parseJsonText(text: string, source = 'input'): JsonValue {
  try {
    return JSON.parse(text) as JsonValue;
  } catch (e) {
    const msg = (e as Error).message;
    const pos = /position (\d+)/.exec(msg);
    let where = '';
    if (pos !== null) {
      const offset = Number(pos[1]);
      const before = text.slice(0, offset).split('\n');
      where = ` at line ${before.length}, column ${before[before.length - 1]!.length + 1}`;
    }
    const reason = msg.replace(/\s*in JSON at position \d+.*$/, '').replace(/^JSON\.parse: /, '');
    throw new UserError('input', `${source}: invalid JSON${where}: ${reason}`);
  }
}

/** Conversation JSON text -> Conversation (syntax and shape errors name the place). */
export function conversationFromJSONText(text: string, source = 'input'): Conversation {
  const v = parseJsonText(text, source);
  try {
    return conversationFromJSON(v);
  } catch (e) {
    if (e instanceof UserError) throw new UserError('input', `${source}: ${e.message}`);
    throw e;
  }
}
