// The tools a library caller gives a chat: the built-in browser (over a folder of local documents)
// and python sandbox, and the caller's own functions with a JSON Schema and a handler. Turns them
// into what the agent loop takes: built-in tool instances, function descriptions for the developer
// message, strict argument schemas, and one function-call handler.
import type { FunctionCall, FunctionHandler } from '../engine/agent.ts';
import type { Tool } from '../tools/index.ts';
import { compileSchema, type JsonSchema } from '../engine/constrained.ts';
import { UserError } from '../errors.ts';
import { validateToolSchema, type JsonObject, type JsonValue, type ToolDescription } from '../harmony/index.ts';

/** What a function handler receives besides the arguments. */
export interface ToolContext {
  /** Aborted when the chat is aborted (or its consumer stops reading): stop the work. */
  signal: AbortSignal;
}

/**
 * A function of the caller's that the model may call (`functions.<name>` in harmony). The loop
 * runs `handler` with the parsed arguments and gives the model its result, then goes on.
 */
export interface FunctionTool<Args extends JsonObject = JsonObject> {
  type: 'function';
  /** 1-64 letters, digits, `_` or `-`. */
  name: string;
  /** What the function does, for the model. */
  description?: string;
  /** JSON Schema of the arguments object (rendered for the model as a TypeScript type). */
  parameters?: JsonObject;
  /** Constrain the model's arguments to `parameters` while sampling (always valid JSON of that shape). */
  strict?: boolean;
  /**
   * Answers a call inside the turn. A string is given to the model as it is, anything else as
   * JSON; a thrown error becomes an error message the model reads. Without handlers (on every
   * function of the chat) a call ends the turn with finishReason 'tool-calls' for you to answer:
   * send the conversation again with the call and a `tool` message holding the result.
   */
  handler?(args: Args, context: ToolContext): JsonValue | Promise<JsonValue>;
}

/** The built-in browser tool (search, open, find) over a folder of local documents (.md, .txt, .html). */
export interface BrowserTool {
  type: 'browser';
  /** The folder whose documents the browser searches and opens. */
  documents: string;
}

/** The built-in python tool: code runs in a sandboxed interpreter (no files, network or processes). */
export interface PythonTool {
  type: 'python';
}

/** A tool for a chat: a function of yours, or a built-in. */
export type ToolDefinition = FunctionTool | BrowserTool | PythonTool;

/** The agent loop's view of a chat's tools. */
export interface PreparedTools {
  builtin: Tool[];
  functionTools: ToolDescription[];
  /** Argument schemas of the strict functions, by name. */
  strictSchemas: Map<string, JsonSchema>;
  onFunctionCall: FunctionHandler | undefined;
}

/** Checks the definitions and builds the tools; a bad definition is a UserError('usage'|'input'). */
export async function prepareTools(tools: readonly ToolDefinition[]): Promise<PreparedTools> {
  const builtin: Tool[] = [];
  const functions = new Map<string, FunctionTool>();
  const functionTools: ToolDescription[] = [];
  const strictSchemas = new Map<string, JsonSchema>();
  const seen = new Set<string>();
  for (const [i, tool] of tools.entries()) {
    const where = `tools[${i}]`;
    const type: unknown = (tool as { type?: unknown }).type;
    if (type === 'browser' || type === 'python') {
      if (seen.has(type)) throw new UserError('usage', `${where}: the ${type} tool is given twice`);
      seen.add(type);
    }
    if (type === 'browser') {
      const { documents } = tool as BrowserTool;
      if (typeof documents !== 'string' || documents === '') throw new UserError('usage', `${where}.documents must be a folder of documents`);
      const { BrowserSession, LocalDocsBackend } = await import('../tools/index.ts');
      builtin.push(new BrowserSession(await LocalDocsBackend.open(documents)));
    } else if (type === 'python') {
      const { PythonTool } = await import('../tools/index.ts');
      builtin.push(new PythonTool());
    } else if (type === 'function') {
      const fn = tool as FunctionTool;
      if (typeof fn.name !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(fn.name)) {
        throw new UserError('usage', `${where}.name must be 1-64 letters, digits, '_' or '-', got ${JSON.stringify(fn.name)}`);
      }
      if (functions.has(fn.name)) throw new UserError('usage', `${where}: a function named "${fn.name}" is given twice`);
      if (fn.handler !== undefined && typeof fn.handler !== 'function') throw new UserError('usage', `${where}.handler must be a function`);
      const description: ToolDescription = { name: fn.name, description: fn.description ?? '' };
      if (fn.parameters !== undefined) {
        validateToolSchema(fn.parameters, `${where}.parameters`);
        description.parameters = fn.parameters;
        if (fn.strict === true) {
          compileSchema(fn.parameters);
          strictSchemas.set(fn.name, fn.parameters);
        }
      }
      functions.set(fn.name, fn);
      functionTools.push(description);
    } else {
      throw new UserError('usage', `${where}.type must be function, browser or python, got ${JSON.stringify(type)}`);
    }
  }
  const withHandler = [...functions.values()].filter((f) => f.handler !== undefined).length;
  if (withHandler > 0 && withHandler < functions.size) {
    throw new UserError('usage', 'tools: give every function a handler (answered inside the turn) or none (each call ends the turn for you to answer)');
  }
  const onFunctionCall: FunctionHandler | undefined =
    withHandler === 0
      ? undefined
      : async (call: FunctionCall, signal?: AbortSignal): Promise<string> => {
          // The loop only hands over calls to declared names with arguments that parse as JSON.
          const fn = functions.get(call.name)!;
          const args: unknown = JSON.parse(call.arguments);
          if (typeof args !== 'object' || args === null || Array.isArray(args)) throw new Error('the arguments must be a JSON object');
          const result = await fn.handler!(args as JsonObject, { signal: signal ?? new AbortController().signal });
          return typeof result === 'string' ? result : (JSON.stringify(result) ?? 'null');
        };
  return { builtin, functionTools, strictSchemas, onFunctionCall };
}
