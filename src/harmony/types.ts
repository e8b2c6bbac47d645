// The harmony data model (conversations, messages, system/developer content, tool namespaces) and
// small builders for the common cases. Mirrors the official library's data model field for field,
// so that JSON written here is read by the Python/Rust harmony library and vice versa (json.ts).

/** Who wrote a message. `tool` messages carry the tool's name (e.g. "functions.get_weather"). */
export type Role = 'system' | 'developer' | 'user' | 'assistant' | 'tool';
export const ROLES: readonly Role[] = ['system', 'developer', 'user', 'assistant', 'tool'];

export function isRole(s: string): s is Role {
  return (ROLES as readonly string[]).includes(s);
}

export interface Author {
  role: Role;
  name?: string;
}

export type ReasoningEffort = 'low' | 'medium' | 'high';
export const REASONING_EFFORTS: readonly ReasoningEffort[] = ['low', 'medium', 'high'];

/** Any JSON value (tool parameter schemas are kept as plain JSON). */
export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;
export interface JsonObject {
  [key: string]: JsonValue;
}

export interface TextContent {
  type: 'text';
  text: string;
}

export interface ChannelConfig {
  /** Channels the model may write to; when empty the system message says nothing about channels. */
  validChannels: string[];
  /** Adds "Channel must be included for every message." */
  channelRequired: boolean;
}

export interface ToolDescription {
  name: string;
  description: string;
  /** A JSON Schema (object), rendered as a TypeScript-like type in the prompt. */
  parameters?: JsonObject;
}

export interface ToolNamespaceConfig {
  name: string;
  description?: string;
  tools: ToolDescription[];
}

/** Tool namespaces keyed by namespace name; they are rendered sorted by name, as the library does. */
export type ToolNamespaces = Record<string, ToolNamespaceConfig>;

/** The content of the system message. Absent fields are not rendered. */
export interface SystemContent {
  type: 'system_content';
  modelIdentity?: string;
  reasoningEffort?: ReasoningEffort;
  /** Built-in tools (browser, python). */
  tools?: ToolNamespaces;
  /** "Current date: ..." (ISO date, e.g. 2025-06-28). */
  conversationStartDate?: string;
  /** "Knowledge cutoff: ..." (e.g. 2024-06). */
  knowledgeCutoff?: string;
  channelConfig?: ChannelConfig;
}

/** The content of the developer message: the instructions (the API's "system prompt") and function tools. */
export interface DeveloperContent {
  type: 'developer_content';
  instructions?: string;
  tools?: ToolNamespaces;
}

export type Content = TextContent | SystemContent | DeveloperContent;

export interface Message {
  author: Author;
  /** Tool name for a tool call (e.g. "functions.get_weather", "browser.search", "python"); "assistant" for tool results. */
  recipient?: string;
  /** "analysis" | "commentary" | "final" for assistant messages (any string is carried through). */
  channel?: string;
  /** e.g. "<|constrain|>json" for JSON tool arguments, "code" for some built-in calls. */
  contentType?: string;
  content: Content[];
}

export interface Conversation {
  messages: Message[];
}

// ---------------------------------------------------------------------------------------------
// Builders

export const DEFAULT_MODEL_IDENTITY = 'You are ChatGPT, a large language model trained by OpenAI.';
export const DEFAULT_KNOWLEDGE_CUTOFF = '2024-06';
export const DEFAULT_CHANNELS: readonly string[] = ['analysis', 'commentary', 'final'];

type Nullable<T> = { [K in keyof T]?: T[K] | null };

/**
 * System content with the library's defaults (identity, medium effort, cutoff 2024-06, required
 * channels analysis/commentary/final). Pass `null` to remove a default, e.g. `{ knowledgeCutoff: null }`.
 */
export function systemContent(fields: Nullable<Omit<SystemContent, 'type'>> = {}): SystemContent {
  const out: SystemContent = {
    type: 'system_content',
    modelIdentity: DEFAULT_MODEL_IDENTITY,
    reasoningEffort: 'medium',
    knowledgeCutoff: DEFAULT_KNOWLEDGE_CUTOFF,
    channelConfig: requireChannels(DEFAULT_CHANNELS),
  };
  const o = out as unknown as Record<string, unknown>;
  for (const [k, v] of Object.entries(fields)) {
    if (v === null) delete o[k];
    else if (v !== undefined) o[k] = v;
  }
  return out;
}

export function requireChannels(channels: readonly string[]): ChannelConfig {
  return { validChannels: [...channels], channelRequired: true };
}

export function developerContent(
  fields: { instructions?: string; tools?: ToolNamespaces; functionTools?: ToolDescription[] } = {},
): DeveloperContent {
  const out: DeveloperContent = { type: 'developer_content' };
  if (fields.instructions !== undefined) out.instructions = fields.instructions;
  if (fields.tools !== undefined) out.tools = { ...fields.tools };
  if (fields.functionTools !== undefined) out.tools = { ...out.tools, functions: functionsNamespace(fields.functionTools) };
  return out;
}

/** Returns a copy of `content` with the namespace added (replacing one of the same name). */
export function withTools<T extends SystemContent | DeveloperContent>(content: T, ns: ToolNamespaceConfig): T {
  return { ...content, tools: { ...content.tools, [ns.name]: ns } };
}

export function functionsNamespace(tools: ToolDescription[]): ToolNamespaceConfig {
  return { name: 'functions', tools: [...tools] };
}

export function toolDescription(name: string, description: string, parameters?: JsonObject): ToolDescription {
  return parameters === undefined ? { name, description } : { name, description, parameters };
}

/** The built-in browser tool namespace, word for word as the official library declares it. */
export function browserToolNamespace(): ToolNamespaceConfig {
  return {
    name: 'browser',
    description:
      'Tool for browsing.\n' +
      'The `cursor` appears in brackets before each browsing display: `[{cursor}]`.\n' +
      'Cite information from the tool using the following format:\n' +
      '`【{cursor}†L{line_start}(-L{line_end})?】`, for example: `【6†L9-L11】` or `【8†L3】`.\n' +
      'Do not quote more than 10 words directly from the tool output.\n' +
      'sources=web (default: web)',
    tools: [
      {
        name: 'search',
        description: 'Searches for information related to `query` and displays `topn` results.',
        parameters: {
          type: 'object',
          properties: { query: { type: 'string' }, topn: { type: 'number', default: 10 }, source: { type: 'string' } },
          required: ['query'],
        },
      },
      {
        name: 'open',
        description:
          'Opens the link `id` from the page indicated by `cursor` starting at line number `loc`, showing `num_lines` lines.\n' +
          'Valid link ids are displayed with the formatting: `【{id}†.*】`.\n' +
          'If `cursor` is not provided, the most recent page is implied.\n' +
          'If `id` is a string, it is treated as a fully qualified URL associated with `source`.\n' +
          'If `loc` is not provided, the viewport will be positioned at the beginning of the document or centered on the most relevant passage, if available.\n' +
          'Use this function without `id` to scroll to a new location of an opened page.',
        parameters: {
          type: 'object',
          properties: {
            id: { type: ['number', 'string'], default: -1 },
            cursor: { type: 'number', default: -1 },
            loc: { type: 'number', default: -1 },
            num_lines: { type: 'number', default: -1 },
            view_source: { type: 'boolean', default: false },
            source: { type: 'string' },
          },
        },
      },
      {
        name: 'find',
        description: 'Finds exact matches of `pattern` in the current page, or the page given by `cursor`.',
        parameters: {
          type: 'object',
          properties: { pattern: { type: 'string' }, cursor: { type: 'number', default: -1 } },
          required: ['pattern'],
        },
      },
    ],
  };
}

/** The built-in python tool namespace (a description only; the model sends raw code to "python"). */
export function pythonToolNamespace(): ToolNamespaceConfig {
  return {
    name: 'python',
    description:
      'Use this tool to execute Python code in your chain of thought. The code will not be shown to the user. This tool should be used for internal reasoning, but not for code that is intended to be visible to the user (e.g. when creating plots, tables, or files).\n\n' +
      "When you send a message containing Python code to python, it will be executed in a stateful Jupyter notebook environment. python will respond with the output of the execution or time out after 120.0 seconds. The drive at '/mnt/data' can be used to save and persist user files. Internet access for this session is UNKNOWN. Depends on the cluster.",
    tools: [],
  };
}

export function text(t: string): TextContent {
  return { type: 'text', text: t };
}

export interface MessageFields {
  channel?: string;
  recipient?: string;
  contentType?: string;
}

/** A message from an author (or role) with one content (a string becomes text content). */
export function createMessage(author: Author | Role, content: string | Content | Content[], fields: MessageFields = {}): Message {
  const a: Author = typeof author === 'string' ? { role: author } : { ...author };
  const contents = Array.isArray(content) ? content : [typeof content === 'string' ? text(content) : content];
  const m: Message = { author: a, content: contents };
  if (fields.recipient !== undefined) m.recipient = fields.recipient;
  if (fields.channel !== undefined) m.channel = fields.channel;
  if (fields.contentType !== undefined) m.contentType = fields.contentType;
  return m;
}

/** Shorthands: `message.user('hi')`, `message.assistant('4', { channel: 'final' })`, `message.tool('functions.f', '{...}')`. */
export const message = {
  system: (content: SystemContent | string = systemContent()): Message => createMessage('system', content),
  developer: (content: DeveloperContent | string): Message => createMessage('developer', content),
  user: (t: string): Message => createMessage('user', t),
  assistant: (t: string, fields: MessageFields = {}): Message => createMessage('assistant', t, fields),
  /** A tool's answer: author is the tool (e.g. "functions.get_weather"), addressed to the assistant. */
  tool: (name: string, t: string, fields: MessageFields = {}): Message =>
    createMessage({ role: 'tool', name }, t, { recipient: 'assistant', ...fields }),
};

export function conversation(messages: Message[]): Conversation {
  return { messages: [...messages] };
}

/** The concatenated text of a message's text contents. */
export function messageText(m: Message): string {
  let s = '';
  for (const c of m.content) if (c.type === 'text') s += c.text;
  return s;
}
