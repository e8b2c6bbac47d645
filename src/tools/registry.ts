// The tools of one conversation, routed by recipient: `browser.search` goes to the tool named
// `browser`, `python` to `python`. The agent loop runs built-in tools through it; unknown
// recipients and tools that throw become tool messages the model can read, never exceptions.
import { errorText } from './errors.ts';
import type { Tool, ToolCall, ToolOutput } from './tool.ts';
import type { ToolNamespaceConfig } from '../harmony/index.ts';

export class ToolRegistry {
  private readonly tools = new Map<string, Tool>();

  constructor(tools: readonly Tool[] = []) {
    for (const t of tools) this.add(t);
  }

  add(tool: Tool): this {
    this.tools.set(tool.name, tool);
    return this;
  }

  get(name: string): Tool | undefined {
    return this.tools.get(name);
  }

  list(): Tool[] {
    return [...this.tools.values()];
  }

  /** The tool a recipient addresses ("browser.open" -> browser), if registered. */
  route(recipient: string): Tool | undefined {
    const name = recipient.split('.')[0] ?? recipient;
    return this.tools.get(name);
  }

  /** Namespaces for the system message, sorted by name. */
  namespaces(): ToolNamespaceConfig[] {
    return this.list()
      .map((t) => t.namespace())
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** The recipients the tools answer: `browser.search`, ..., or the bare name of a tool without functions (`python`). */
  recipients(): string[] {
    const names: string[] = [];
    for (const t of this.tools.values()) {
      const ns = t.namespace();
      if (ns.tools.length === 0) names.push(t.name);
      else for (const fn of ns.tools) names.push(`${t.name}.${fn.name}`);
    }
    return names;
  }

  /** Runs a call; an unknown recipient or a tool that throws is answered with an error the model reads. */
  async run(call: ToolCall, signal?: AbortSignal): Promise<ToolOutput> {
    const tool = this.route(call.recipient);
    if (tool === undefined) return toolError(unknownToolText(call.recipient, this.recipients()));
    try {
      return await tool.run(call, signal);
    } catch (e) {
      return toolError(`Error: ${call.recipient} failed: ${errorText(e)}`);
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.list().map((t) => t.close?.()));
  }
}

/** A failed call's output: the error text is what the model reads. */
export function toolError(text: string): ToolOutput {
  return { content: text, error: text };
}

/** The answer to a call of a tool that does not exist, listing what does. */
export function unknownToolText(recipient: string, available: readonly string[]): string {
  return `Error: unknown tool "${recipient}". ${availableText(available)}`;
}

export function availableText(available: readonly string[]): string {
  return available.length === 0 ? 'No tools are available.' : `Available tools: ${available.join(', ')}.`;
}
