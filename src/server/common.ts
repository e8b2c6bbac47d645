// What both API front ends share: the server context handed to handlers, function-tool parsing
// (OpenAI tool definitions -> harmony ToolDescriptions, strict schemas for constrained arguments),
// built-in tools by their API names and the browser that answers citations, prompt assembly and ids.
import { randomUUID } from 'node:crypto';
import { compileSchema, type JsonSchema } from '../engine/constrained.ts';
import { isUserError } from '../errors.ts';
import type { Engine } from '../engine/engine.ts';
import { promptHead as harmonyPromptHead, validateToolSchema, type JsonObject, type Message, type ReasoningEffort, type ToolDescription } from '../harmony/index.ts';
import type { CitationSource, Tool } from '../tools/index.ts';
import { invalid } from './errors.ts';
import type { ResponseStore } from './store.ts';
import { isRecord, optBool, optString, record, type Json, type JsonRecord } from './validate.ts';

export interface BuiltinToolFactories {
  /** A fresh browser per request (its page stack is per conversation). */
  browser?: () => Tool;
  python?: () => Tool;
}

export interface ServerContext {
  engine: Engine;
  modelName: string;
  /** Model ids accepted in requests (the served name and its aliases). */
  modelIds: ReadonlySet<string>;
  tools: BuiltinToolFactories;
  /** Requests that name no tools get every built-in tool (see ServerOptions.toolsByDefault). */
  toolsByDefault: boolean;
  store: ResponseStore;
  logContent: boolean;
  log: (line: string) => void;
  /** Default reasoning effort when the request names none. */
  defaultEffort: ReasoningEffort;
}

export function newId(prefix: string): string {
  return `${prefix}_${randomUUID().replace(/-/g, '')}`;
}

export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

export interface ParsedFunction {
  tool: ToolDescription;
  strict: boolean;
}

/** A function tool definition; `fn` holds name/description/parameters/strict (Chat nests them under `function`). */
export function parseFunction(fn: JsonRecord, param: string): ParsedFunction {
  const name = optString(fn, 'name', `${param}.name`);
  if (name === undefined || !/^[A-Za-z0-9_-]{1,64}$/.test(name)) throw invalid(`${param}.name`, `${param}.name must be 1-64 letters, digits, '_' or '-'`);
  const description = optString(fn, 'description', `${param}.description`) ?? '';
  const strict = optBool(fn, 'strict', `${param}.strict`) ?? false;
  const parameters = fn['parameters'];
  const tool: ToolDescription = { name, description };
  if (parameters !== undefined && parameters !== null) {
    const schema = record(parameters, `${param}.parameters`);
    try {
      validateToolSchema(schema as JsonObject, `${param}.parameters`);
    } catch (e) {
      throw invalid(`${param}.parameters`, (e as Error).message);
    }
    // A function without parameters renders as `() => any` in the prompt.
    const props = schema['properties'];
    if (!(isRecord(props) && Object.keys(props).length === 0 && schema['required'] === undefined)) tool.parameters = schema as JsonObject;
  }
  return { tool, strict };
}

/** Strict functions' schemas for constrained decoding of their arguments. */
export function strictSchemas(functions: readonly ParsedFunction[], param = 'tools'): Map<string, JsonSchema> {
  const out = new Map<string, JsonSchema>();
  for (const f of functions) {
    if (!f.strict) continue;
    const schema = (f.tool.parameters ?? { type: 'object', properties: {}, additionalProperties: false }) as JsonSchema;
    out.set(f.tool.name, checkedSchema(schema, `${param}[${f.tool.name}].parameters`));
  }
  return out;
}

/** The schema, once it is known to compile into a decoding constraint (a 400 naming it if not). */
function checkedSchema(schema: JsonSchema, param: string): JsonSchema {
  try {
    compileSchema(schema);
  } catch (e) {
    if (isUserError(e)) throw invalid(param, `${param}: ${e.message}`);
    throw e;
  }
  return schema;
}

/** The built-in tool a request names, or a 400 when the server was started without it. */
export function builtinTool(ctx: ServerContext, kind: 'browser' | 'python', param: string): Tool {
  const factory = kind === 'browser' ? ctx.tools.browser : ctx.tools.python;
  if (factory === undefined) {
    const flag = kind === 'browser' ? '--browser DOCS_DIR' : '--python';
    throw invalid(param, `the ${kind} tool is not enabled on this server (start it with ${flag})`);
  }
  return factory();
}

/**
 * The built-in tools of a request that names no tools: all the server has, browser then python (the
 * order gpt-oss-nano's corpus declares them in), when it offers them by default; else none.
 */
export function defaultBuiltins(ctx: ServerContext): Tool[] {
  if (!ctx.toolsByDefault) return [];
  return [ctx.tools.browser?.(), ctx.tools.python?.()].filter((t): t is Tool => t !== undefined);
}

/** The request's browser, whose pages the answer's citation marks refer to; none without one. */
export function citationSource(builtins: readonly Tool[]): CitationSource | undefined {
  const browser = builtins.find((b) => b.name === 'browser');
  return browser !== undefined && 'pageAt' in browser && 'pageStack' in browser ? (browser as unknown as CitationSource) : undefined;
}

/** The system and developer messages of a request. */
export function promptHead(options: {
  effort: ReasoningEffort;
  instructions: string | undefined;
  builtinTools: readonly Tool[];
  functionTools: readonly ToolDescription[];
}): Message[] {
  return harmonyPromptHead({
    reasoningEffort: options.effort,
    toolNamespaces: options.builtinTools.map((t) => t.namespace()),
    functionTools: options.functionTools,
    ...(options.instructions !== undefined && options.instructions !== '' ? { instructions: options.instructions } : {}),
  });
}

/** The JSON schema of a `json_schema` format (Responses `text.format`, Chat `response_format.json_schema`). */
export function formatSchema(schema: Json | undefined, param: string): JsonSchema {
  if (schema === undefined) throw invalid(param, `${param} is required for json_schema`);
  return checkedSchema(typeof schema === 'boolean' ? schema : record(schema, param), param);
}

/** Instructions that tell the model about the required output format (the constraint enforces it). */
export function formatInstructions(instructions: string | undefined, schema: JsonSchema | undefined, name: string | undefined): string | undefined {
  if (schema === undefined) return instructions;
  const note =
    schema === true || (isRecord(schema) && Object.keys(schema).length === 1 && schema['type'] === 'object')
      ? '# Response Formats\n\nAnswer with a single JSON object.'
      : `# Response Formats\n\n## ${name ?? 'response'}\n\n${JSON.stringify(schema)}`;
  return instructions === undefined || instructions === '' ? note : `${instructions}\n\n${note}`;
}
