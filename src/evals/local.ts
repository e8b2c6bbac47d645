// Serves a local model (a checkpoint folder or a cached hub repository; without one, the default
// model chat and serve run) in-process on a loopback port, so an evaluation talks to it through the
// same OpenAI-compatible API as to any endpoint. The embedded gpt-oss-nano brings the tools it was
// trained with, as `gptoss serve` gives it them.
import { resolveModel } from '../checkpoint/resolve.ts';
import { serverTools, trainedTools } from '../server/startup.ts';

export interface LocalServer {
  baseUrl: string;
  description: string;
  close(): Promise<void>;
}

export async function startLocalServer(options: { model?: string; contextLength?: number }): Promise<LocalServer> {
  const resolved = await resolveModel(options.model);
  const { loadEngine } = await import('../engine/local.ts');
  const { createServer } = await import('../server/index.ts');
  const chosen = await trainedTools(resolved.dir, { python: false, none: false });
  const tools = await serverTools({ ...(chosen.browser !== undefined ? { browser: chosen.browser } : {}), python: chosen.python });
  const engine = await loadEngine(resolved.dir, options.contextLength !== undefined ? { contextLength: options.contextLength } : {});
  // Request logs would interleave with the progress bar; the eval reports its own totals.
  const server = createServer({ engine, tools, toolsByDefault: chosen.trained === true, log: () => {} });
  const running = await server.listen(0, '127.0.0.1');
  return {
    baseUrl: `${running.url}/v1`,
    description: resolved.description,
    close: async () => {
      await running.close();
      await engine.close();
    },
  };
}
