// Which tool a message is for, worked out once per message from its header's recipient and
// carried on the loop's events, so the loop, the structured-output constraint, the server's
// front ends and the library all agree on it.
import { ToolRegistry } from '../tools/registry.ts';

/**
 * What a message is, by its recipient: output for the reader (`none`: no recipient; `addressed`:
 * a recipient that is no tool, such as `all` or `assistant`), a call of a declared function, a
 * call a built-in tool runs, or a call of something that does not exist (the loop answers it with
 * an error).
 */
export type RecipientTarget =
  | { kind: 'none' }
  | { kind: 'addressed'; recipient: string }
  | { kind: 'function'; recipient: string; name: string }
  /** `tool` is the tool's name; `recipient` is the call as the tool receives it (misrouted `functions.search` becomes `browser.search`). */
  | { kind: 'builtin'; recipient: string; tool: string }
  | { kind: 'unknown'; recipient: string; function: boolean };

/** Recipients that address no tool: a message to these is ordinary output. */
const NOT_A_TOOL = new Set(['all', 'assistant', 'user']);

const NONE: RecipientTarget = { kind: 'none' };

/** Classifies recipients against one turn's tools and declared functions. */
export class RecipientClassifier {
  readonly tools: ToolRegistry;
  readonly functionNames: ReadonlySet<string>;

  constructor(tools: ToolRegistry, functionNames: Iterable<string>) {
    this.tools = tools;
    this.functionNames = new Set(functionNames);
  }

  classify(recipient: string | undefined): RecipientTarget {
    if (recipient === undefined) return NONE;
    if (NOT_A_TOOL.has(recipient)) return { kind: 'addressed', recipient };
    if (recipient.startsWith('functions.')) {
      const name = recipient.slice('functions.'.length);
      if (this.functionNames.has(name)) return { kind: 'function', recipient, name };
      // The reference server sends misrouted functions.search/open/find to the browser.
      const browser = `browser.${name}`;
      if (this.tools.route(browser) !== undefined) return { kind: 'builtin', recipient: browser, tool: 'browser' };
      return { kind: 'unknown', recipient, function: true };
    }
    const tool = this.tools.route(recipient);
    return tool !== undefined ? { kind: 'builtin', recipient, tool: tool.name } : { kind: 'unknown', recipient, function: false };
  }

  /** Everything the model may call, for error messages. */
  available(): string[] {
    return [...this.tools.recipients(), ...[...this.functionNames].map((f) => `functions.${f}`)];
  }
}

/** True for a message that is a tool call (its content is arguments or code, not text for the reader). */
export function isToolCall(target: RecipientTarget): boolean {
  return target.kind !== 'none' && target.kind !== 'addressed';
}
