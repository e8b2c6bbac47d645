// `gptoss chat`: talk to the model in the terminal, with its reasoning visible on request and the
// browser (over a local document folder) and python tools working. Interactive when stdin is a
// terminal; otherwise (or with a prompt argument) one prompt in, the answer out, for scripts.
import { UserError } from '../errors.ts';
import { readRegularFile } from '../files.ts';
import type { AgentResult } from '../engine/agent.ts';
import type { Engine } from '../engine/engine.ts';
import { describeGenerationDefaults } from '../checkpoint/generation.ts';
import { resolveModel, type ResolvedModel } from '../checkpoint/resolve.ts';
import type { CitationSource, Tool } from '../tools/index.ts';
import { boolFlag, numberFlag, parseEffort, parseFlags, readStdin, stringFlag } from './args.ts';
import { AnswerPrinter } from './chat/printer.ts';
import type { CommandContext } from './context.ts';
import { ADAPTER_FLAG_OPTIONS, COMPUTE_FLAG_OPTIONS, adapterOption, computeOptions } from './model-flags.ts';
import type { LoadEngineOptions } from '../engine/local.ts';
import { runRepl } from './chat/repl.ts';
import { ChatSession } from './chat/session.ts';
import { openDocuments, trainedTools } from '../server/startup.ts';

const USAGE = `usage: gptoss chat [options] [PROMPT...]

Talk to gpt-oss in the terminal. With stdin not a terminal, or with PROMPT, answers one prompt
(read from stdin when PROMPT is absent), prints the final answer on stdout and exits.

options:
  --model DIR|REPO        checkpoint folder or hub repository id (default: $GPTOSS_MODEL, then
                          openai/gpt-oss-20b from the hub cache, then the embedded gpt-oss-nano,
                          which comes with its browser (over its documents) and python tools)
  -r, --reasoning-effort low|medium|high   (default medium)
  --developer TEXT        developer instructions (the system prompt); @FILE reads a file
  --browser DOCS_DIR      enable the browser tool over a folder of Markdown, text and HTML files
  --python                enable the python tool (sandboxed, no files, no network)
  --no-tools              no tools, even with the embedded gpt-oss-nano
  --show-reasoning        show the chain of thought (dim; on stderr in script mode)
  --raw                   show the completion as the model writes it (harmony tokens by name)
  --context N             context window in tokens (default 8192, or the model's if smaller)
  --max-tokens N          most tokens per answer (default: until the window is full; 256 for
                          random weights, which never end an answer)
  --temperature T         sampling temperature (0 = greedy; default the model's generation_config.json,
                          else 1.0; gpt-oss-nano's is greedy)
  --top-p P               nucleus sampling (default the model's, else 1.0)
  --seed S                random seed (once per session; turns continue the stream), for reproducible answers
  --max-tool-calls N      tool calls per answer (default 16)
  --adapter DIR           a LoRA adapter (PEFT folder, e.g. from gptoss finetune) merged at load
  --backend wasm|reference|webgpu|auto, --threads N   compute backend (default wasm)
  --expert-activations q8|split|f16   int8 experts (wasm default, like llama.cpp), exact (~1.4x slower decode), or f16 (webgpu default)
  --kv-cache f32|bf16             KV cache element type (default bf16 with q8, f32 with split)
  --unembedding bf16|int8         int8: read an int8 copy of the unembedding (faster decode, +0.65 GB;
                                  default bf16, the weights as stored)

commands in the chat: /effort low|medium|high, /reasoning on|off, /reset, /save FILE.json,
/load FILE.json, /help, /quit. Ctrl-C stops the answer; Ctrl-C twice at the prompt (or Ctrl-D) exits.`;

/** The answer length for random weights when --max-tokens is not given (they never end an answer). */
const RANDOM_WEIGHTS_MAX_TOKENS = 256;
/** chat's context window when --context is absent (the model's own default when that is smaller), as the reference chat. */
const CHAT_CONTEXT_LENGTH = 8192;

export interface ChatSettings {
  showReasoning: boolean;
  maxTokens: number | undefined;
  color: boolean;
}

export async function run(argv: string[], context: CommandContext = {}): Promise<number> {
  const p = parseFlags(argv, {
    model: { type: 'string' },
    'reasoning-effort': { type: 'string', short: 'r' },
    developer: { type: 'string' },
    browser: { type: 'string' },
    python: { type: 'boolean' },
    'no-tools': { type: 'boolean' },
    'show-reasoning': { type: 'boolean' },
    raw: { type: 'boolean' },
    context: { type: 'string' },
    'max-tokens': { type: 'string' },
    temperature: { type: 'string' },
    'top-p': { type: 'string' },
    seed: { type: 'string' },
    'max-tool-calls': { type: 'string' },
    ...COMPUTE_FLAG_OPTIONS,
    ...ADAPTER_FLAG_OPTIONS,
    help: { type: 'boolean', short: 'h' },
  });
  if (boolFlag(p, 'help')) {
    console.log(USAGE);
    return 0;
  }
  const effort = parseEffort(stringFlag(p, 'reasoning-effort') ?? 'medium', '--reasoning-effort');
  const contextFlag = numberFlag(p, 'context', { min: 16, integer: true });
  const maxTokensFlag = numberFlag(p, 'max-tokens', { min: 1, integer: true });
  const temperature = numberFlag(p, 'temperature', { min: 0 });
  const topP = numberFlag(p, 'top-p', { min: 0, max: 1 });
  const seed = numberFlag(p, 'seed', { integer: true });
  const maxToolCalls = numberFlag(p, 'max-tool-calls', { min: 0, integer: true });
  const compute = { ...computeOptions(p), ...adapterOption(p) };
  let developer = stringFlag(p, 'developer');
  if (developer?.startsWith('@') === true) developer = readTextFile(developer.slice(1), '--developer');
  const showReasoning = boolFlag(p, 'show-reasoning');
  const raw = boolFlag(p, 'raw');

  const interactive = p.positionals.length === 0 && process.stdin.isTTY === true;
  let prompt: string | undefined;
  if (!interactive) {
    prompt = p.positionals.length > 0 ? p.positionals.join(' ') : (await readStdin()).trim();
    if (prompt === '') throw new UserError('usage', 'no prompt: pass one as an argument or on stdin');
  }

  const side = interactive ? process.stdout : process.stderr;
  // The model is resolved (not loaded) first: the embedded gpt-oss-nano brings the tools it was
  // trained with. Then the tools: a bad --browser folder should fail before minutes of model loading.
  const resolved = context.engine === undefined ? await resolveModel(stringFlag(p, 'model')) : undefined;
  const chosen = await trainedTools(resolved?.dir, { ...optional('browser', stringFlag(p, 'browser')), python: boolFlag(p, 'python'), none: boolFlag(p, 'no-tools') });
  if (chosen.line !== undefined) side.write(`${chosen.line}\n`);
  const tools: Tool[] = [];
  let citations: CitationSource | undefined;
  const browserDir = chosen.browser;
  if (browserDir !== undefined) {
    const { BrowserSession } = await import('../tools/index.ts');
    // The files left out are told on stderr once the index is ready (the chat starts before that).
    const browser = new BrowserSession(await openDocuments(browserDir, (line) => void process.stderr.write(`${line}\n`)));
    tools.push(browser);
    citations = browser;
  }
  if (chosen.python) {
    const { PythonTool, defaultSandboxPool } = await import('../tools/index.ts');
    tools.push(new PythonTool());
    // Load an interpreter in the background now: the first call then does not wait for it.
    defaultSandboxPool().fill();
  }

  const engine = await openEngine(context.engine, resolved, contextFlag, compute, side, maxTokensFlag === undefined);
  // Random weights never write <|return|>: without a cap an answer would run until the window is full.
  const maxTokens = maxTokensFlag ?? (engine.info.randomWeights ? RANDOM_WEIGHTS_MAX_TOKENS : undefined);
  // The checkpoint chose how to sample (the nano: greedy): say so, since the flags would otherwise.
  const modelSampling = describeGenerationDefaults(engine.info.sampling);
  if (modelSampling !== undefined && temperature === undefined && topP === undefined) side.write(`sampling: ${modelSampling}, as the model's generation_config.json asks (--temperature T to change)\n`);
  const session = new ChatSession(engine, {
    reasoningEffort: effort,
    tools,
    ...(developer !== undefined ? { instructions: developer } : {}),
    ...(maxToolCalls !== undefined ? { maxToolCalls } : {}),
    sampling: { ...(temperature !== undefined ? { temperature } : {}), ...(topP !== undefined ? { topP } : {}) },
    ...(seed !== undefined ? { seed } : {}),
    // Ctrl-C is honoured between prompt chunks, not only once the whole prompt is processed.
    prefillChunk: 256,
  });
  const color = process.stdout.isTTY === true && noColorUnset();
  try {
    if (interactive) {
      return await runRepl(session, { showReasoning, raw, maxTokens, color, citations, tools: tools.map((t) => t.name) });
    }
    return await answerOnce(session, prompt!, { showReasoning, raw, maxTokens, color: process.stderr.isTTY === true && noColorUnset(), citations });
  } finally {
    session.close();
    await engine.close();
    await closeTools(tools);
  }
}

async function closeTools(tools: readonly Tool[]): Promise<void> {
  for (const t of tools) await (t as { close?: () => Promise<void> }).close?.();
  if (tools.some((t) => t.name === 'python')) {
    const { defaultSandboxPool } = await import('../tools/index.ts');
    // Not awaited: the pool's warm interpreters are unref'd, so awaiting their exit could leave
    // nothing keeping the event loop alive; they are killed either way.
    void defaultSandboxPool().close();
  }
}

function readTextFile(path: string, origin: string): string {
  try {
    return readRegularFile(path, 'usage');
  } catch (e) {
    // The file's own message ("PATH: why"), under the flag that named it.
    throw new UserError('usage', `${origin} @${(e as Error).message}`);
  }
}

/** The engine: the caller's (CommandContext), else the resolved checkpoint. Says so when weights are random. */
async function openEngine(
  given: Engine | undefined,
  resolved: ResolvedModel | undefined,
  contextFlag: number | undefined,
  compute: LoadEngineOptions,
  side: NodeJS.WritableStream,
  capped: boolean,
): Promise<Engine> {
  let engine: Engine;
  if (given !== undefined || resolved === undefined) {
    engine = given!;
  } else {
    const { defaultContextLength, loadEngine, resolveBackend } = await import('../engine/local.ts');
    const backend = await resolveBackend(compute.backend);
    side.write(`loading ${resolved.description}${compute.adapter !== undefined ? ` with the adapter ${compute.adapter}` : ''} (${backend.line})…\n`);
    const started = performance.now();
    // The same default as every other command (the embedded models' included), at most chat's own.
    const contextLength = contextFlag ?? Math.min(CHAT_CONTEXT_LENGTH, await defaultContextLength(resolved.dir));
    engine = await loadEngine(resolved.dir, {
      ...compute,
      backend: backend.backend,
      contextLength,
      // Each new turn drops the previous turn's reasoning from the prompt, so the KV cache is cut
      // back by that turn's length; sliding-window layers keep this much history so that cut does
      // not force recomputing the whole conversation.
      kvRewind: Math.min(contextLength, 2048),
    });
    side.write(`loaded ${engine.info.name} in ${((performance.now() - started) / 1000).toFixed(1)} s (context ${engine.info.contextLength} tokens)\n`);
  }
  if (engine.info.randomWeights) {
    side.write(
      `warning: ${engine.info.name} has RANDOM weights (a synthetic checkpoint), so its answers are gibberish.\n` +
        '         Pass --model DIR|REPO (or set GPTOSS_MODEL) to chat with a real gpt-oss checkpoint;\n' +
        '         --raw shows the tokens it writes even when they do not form harmony messages.\n' +
        (capped ? `         Answers stop after ${RANDOM_WEIGHTS_MAX_TOKENS} tokens (--max-tokens N to change).\n` : ''),
    );
  }
  return engine;
}

/** Script mode: one prompt, the final answer on stdout. */
async function answerOnce(
  session: ChatSession,
  prompt: string,
  settings: { showReasoning: boolean; raw: boolean; maxTokens: number | undefined; color: boolean; citations: CitationSource | undefined },
): Promise<number> {
  const printer = new AnswerPrinter({
    out: process.stdout,
    side: process.stderr,
    showReasoning: settings.showReasoning,
    color: settings.color,
    thinkingIndicator: false,
    stats: settings.showReasoning,
    raw: settings.raw,
    ...(settings.citations !== undefined ? { citations: settings.citations } : {}),
  });
  const controller = new AbortController();
  const onSigint = (): void => controller.abort();
  process.on('SIGINT', onSigint);
  let result: AgentResult;
  try {
    result = await session.send(prompt, {
      signal: controller.signal,
      onEvent: (e) => printer.handle(e),
      ...(settings.maxTokens !== undefined ? { maxTokens: settings.maxTokens } : {}),
    });
  } finally {
    process.off('SIGINT', onSigint);
  }
  return result.finishReason === 'abort' ? 130 : 0;
}

/** The NO_COLOR convention: colour is off when the variable is set to a non-empty value. */
function noColorUnset(): boolean {
  const v = process.env['NO_COLOR'];
  return v === undefined || v === '';
}

/** `{ [key]: value }` when value is defined, else `{}` (exact optional properties). */
function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}
