// `gptoss serve`: the OpenAI-compatible HTTP server (Responses API and Chat Completions) on one
// engine with continuous batching. Binds to loopback unless told otherwise; with an API key every
// /v1 request needs it. Logs one line per request and never prompt or output text unless
// --log-content is given.
import type { Engine } from '../engine/engine.ts';
import { describeGenerationDefaults } from '../checkpoint/generation.ts';
import { resolveModel } from '../checkpoint/resolve.ts';
import { HostGuard } from '../server/guard.ts';
import { boolFlag, numberFlag, parseEffort, parseFlags, stringFlag } from './args.ts';
import type { CommandContext } from './context.ts';
import { ADAPTER_FLAG_OPTIONS, COMPUTE_FLAG_OPTIONS, adapterOption, computeOptions } from './model-flags.ts';
import { listen, serverTools, trainedTools } from '../server/startup.ts';

const HELP = `usage: gptoss serve [options]

OpenAI-compatible server: POST /v1/responses, POST /v1/chat/completions, GET /v1/models, GET /health.

options:
  --model DIR|REPO        checkpoint folder or hub repository id (default: $GPTOSS_MODEL, the hub
                          cache's openai/gpt-oss-20b, else the embedded gpt-oss-nano, served with
                          its browser (over its documents) and python tools)
  --host ADDR             address to bind (default 127.0.0.1; anything else exposes the server)
  --port N                port (default 8000; 0 picks a free one)
  --api-key KEY           require "Authorization: Bearer KEY" (default: $GPTOSS_API_KEY if set)
  --browser DOCS_DIR      enable the browser tool (browser_search / web_search) over local documents
  --python                enable the python tool (code_interpreter) in a sandbox
  --no-tools              no built-in tools, even with the embedded gpt-oss-nano
  --max-concurrency N     requests generating at once; more get HTTP 429 (default 16)
  --context N             context window per request in tokens (default: the model's)
  --reasoning-effort E    default effort when a request names none: low|medium|high (default medium)
  --model-name NAME       model id clients use (default: the checkpoint's name); gpt-oss-20b and
                          gpt-oss-120b are accepted as aliases
  --adapter DIR           a LoRA adapter (PEFT folder, e.g. from gptoss finetune) merged at load
  --backend wasm|reference|webgpu|auto, --threads N   engine backend and worker threads
  --expert-activations q8|split|f16   int8 experts (wasm default, like llama.cpp), exact (~1.4x slower decode), or f16 (webgpu default)
  --kv-cache f32|bf16             KV cache element type (default bf16 with q8, f32 with split)
  --unembedding bf16|int8         int8: read an int8 copy of the unembedding (faster decode, +0.65 GB;
                                  default bf16, the weights as stored)
  --max-output-tokens N   most tokens one request may generate (default: until the context is full)
  --cors ORIGINS          let web pages from these origins (comma-separated, or *) call the API
  --allowed-hosts HOSTS   Host header values to accept besides loopback names and the bound address
                          (comma-separated: name, name:port, or * for any; e.g. behind a proxy)
  --log-content           also log prompts and outputs (off by default: they may hold private data)
`;

export async function run(argv: string[], context: CommandContext = {}): Promise<number> {
  const p = parseFlags(
    argv,
    {
      model: { type: 'string' },
      host: { type: 'string' },
      port: { type: 'string' },
      'api-key': { type: 'string' },
      browser: { type: 'string' },
      python: { type: 'boolean' },
      'no-tools': { type: 'boolean' },
      'max-concurrency': { type: 'string' },
      context: { type: 'string' },
      'reasoning-effort': { type: 'string' },
      'model-name': { type: 'string' },
      ...COMPUTE_FLAG_OPTIONS,
      ...ADAPTER_FLAG_OPTIONS,
      'log-content': { type: 'boolean' },
      cors: { type: 'string' },
      'allowed-hosts': { type: 'string' },
      'max-output-tokens': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    false,
  );
  if (boolFlag(p, 'help')) {
    process.stdout.write(HELP);
    return 0;
  }
  const host = stringFlag(p, 'host') ?? '127.0.0.1';
  const port = numberFlag(p, 'port', { min: 0, max: 65535, integer: true }) ?? 8000;
  const maxConcurrency = numberFlag(p, 'max-concurrency', { min: 1, max: 4096, integer: true }) ?? 16;
  const contextLength = numberFlag(p, 'context', { min: 16, integer: true });
  const compute = { ...computeOptions(p), ...adapterOption(p) };
  const maxOutputTokens = numberFlag(p, 'max-output-tokens', { min: 1, integer: true });
  const apiKey = stringFlag(p, 'api-key') ?? (process.env['GPTOSS_API_KEY'] || undefined);
  const effortText = stringFlag(p, 'reasoning-effort');
  const effortFlag = effortText === undefined ? undefined : parseEffort(effortText, '--reasoning-effort');
  const listFlag = (name: string): string[] | undefined =>
    stringFlag(p, name)
      ?.split(',')
      .map((o) => o.trim())
      .filter((o) => o !== '');
  const corsOrigins = listFlag('cors');
  const allowedHosts = listFlag('allowed-hosts');
  const browserDir = stringFlag(p, 'browser');
  // A bad entry fails now, not after the model has loaded.
  if (allowedHosts !== undefined) new HostGuard(allowedHosts);

  // The model is resolved (not loaded) first: the embedded gpt-oss-nano brings the tools it was
  // trained with. Then the tools: a bad --browser folder fails before the model loads.
  const resolved = context.engine === undefined ? await resolveModel(stringFlag(p, 'model')) : undefined;
  const chosen = await trainedTools(resolved?.dir, { ...(browserDir !== undefined ? { browser: browserDir } : {}), python: boolFlag(p, 'python'), none: boolFlag(p, 'no-tools') });
  const report = (line: string): void => void process.stderr.write(`${line}\n`);
  if (chosen.line !== undefined) report(chosen.line);
  const tools = await serverTools({ ...(chosen.browser !== undefined ? { browser: chosen.browser } : {}), python: chosen.python, report });
  if (tools.python !== undefined) {
    const { defaultSandboxPool } = await import('../tools/index.ts');
    // Load an interpreter in the background now: the first call then does not wait for it.
    defaultSandboxPool().fill();
  }

  let engine: Engine;
  if (context.engine !== undefined || resolved === undefined) {
    engine = context.engine!;
  } else {
    const { loadEngine, resolveBackend } = await import('../engine/local.ts');
    const backend = await resolveBackend(compute.backend);
    process.stderr.write(`loading ${resolved.description}${compute.adapter !== undefined ? ` with the adapter ${compute.adapter}` : ''} (${backend.line})…\n`);
    engine = await loadEngine(resolved.dir, {
      ...(contextLength !== undefined ? { contextLength } : {}),
      ...compute,
      backend: backend.backend,
      // Requests are read and streamed replies flushed while the workers compute a prefill chunk.
      offload: true,
    });
  }
  if (engine.info.randomWeights) {
    process.stderr.write(`warning: ${engine.info.name} has RANDOM weights (a synthetic checkpoint): its answers are gibberish.\n`);
  }

  const { createServer } = await import('../server/index.ts');
  const server = createServer({
    engine,
    ...(stringFlag(p, 'model-name') !== undefined ? { modelName: stringFlag(p, 'model-name')! } : {}),
    aliases: ['gpt-oss-20b', 'gpt-oss-120b'].filter((a) => a !== (stringFlag(p, 'model-name') ?? engine.info.name)),
    ...(apiKey !== undefined ? { apiKey } : {}),
    maxConcurrency,
    ...(maxOutputTokens !== undefined ? { maxOutputTokens } : {}),
    tools,
    toolsByDefault: chosen.trained === true,
    logContent: boolFlag(p, 'log-content'),
    ...(corsOrigins !== undefined ? { corsOrigins } : {}),
    ...(allowedHosts !== undefined ? { allowedHosts } : {}),
    ...(effortFlag !== undefined ? { defaultEffort: effortFlag } : {}),
  });
  let running;
  try {
    running = await listen(server, port, host, { port: '--port', host: '--host' });
  } catch (e) {
    await engine.close();
    throw e;
  }
  const loopback = host === '127.0.0.1' || host === 'localhost' || host === '::1';
  process.stderr.write(`serving ${server.context.modelName} on ${running.url}/v1 (context ${server.engine.info.contextLength} tokens, up to ${maxConcurrency} requests at once)\n`);
  process.stderr.write(`chat page: ${running.url}/\n`);
  const modelSampling = describeGenerationDefaults(server.engine.info.sampling);
  if (modelSampling !== undefined) process.stderr.write(`sampling defaults: ${modelSampling} (the model's generation_config.json); a request's own settings win\n`);
  if (!loopback && apiKey === undefined) process.stderr.write(`warning: listening on ${host} without --api-key: anyone who can reach this address can use the model\n`);
  if (boolFlag(p, 'log-content')) process.stderr.write('warning: --log-content writes prompts and outputs to the log\n');

  await new Promise<void>((resolve) => {
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  process.stderr.write('shutting down\n');
  await running.close();
  await server.engine.close();
  if (tools.python !== undefined) {
    const { defaultSandboxPool } = await import('../tools/index.ts');
    void defaultSandboxPool().close();
  }
  return 0;
}
