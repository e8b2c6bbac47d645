// The tools of one conversation, routed by recipient: `browser.search` goes to the tool named
// `browser`, `python` to `python`. Unknown recipients and tools that throw become tool messages the
// model can read, never exceptions.
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

  /** Namespaces for the system message, sorted by name as harmony renders them. */
  namespaces(): ToolNamespaceConfig[] {
    return this.list()
      .map((t) => t.namespace())
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async run(call: ToolCall, signal?: AbortSignal): Promise<ToolOutput> {
    const tool = this.route(call.recipient);
    if (tool === undefined) {
      const available = this.list().map((t) => t.name).join(', ') || 'none';
      return { author: call.recipient, content: `Unknown tool \`${call.recipient}\`. Available tools: ${available}.`, error: 'unknown tool' };
    }
    try {
      return await tool.run(call, signal);
    } catch (e) {
      if (signal?.aborted === true) throw e;
      return { author: call.recipient, content: `Error running \`${call.recipient}\`: ${errorText(e)}`, error: errorText(e) };
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.list().map((t) => t.close?.()));
  }
}
