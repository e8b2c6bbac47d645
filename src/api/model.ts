// Loading a model for library callers: resolve what to run (a folder, a hub repository id, or the
// default chain ending at the embedded gpt-oss-nano), load it onto a compute backend, and hand back
// a Model whose chat() and complete() run turns on it (with the tools gpt-oss-nano was trained
// with when it is that model and the caller names no tools). The engine stays private to the library:
// other parts of it (the server) find a Model's engine through engineOf().
import type { Engine } from '../engine/engine.ts';
import { resolveModel } from '../checkpoint/resolve.ts';
import { UserError } from '../errors.ts';
import { chatEvents, collectChat, type ChatEvent, type ChatMessage, type ChatOptions, type ChatResult } from './chat.ts';
import { translateErrors } from './errors.ts';
import type { ToolDefinition } from './tools.ts';

/** Where a model comes from and how it runs. */
export interface LoadModelOptions {
  /**
   * A checkpoint folder or a hub repository id (e.g. `openai/gpt-oss-20b`, already downloaded with
   * `gptoss pull`). Default: $GPTOSS_MODEL, else gpt-oss-20b from the hub cache, else the embedded
   * gpt-oss-nano (a small model trained for clinical arithmetic through python and drug facts
   * through the browser over the documents it ships with).
   */
  model?: string;
  /**
   * `wasm` (WebAssembly SIMD on worker threads, the default), `reference` (plain TypeScript, slow),
   * `webgpu` (a GPU through WebGPU) or `auto` (webgpu when a real GPU adapter exists, else wasm).
   */
  backend?: 'wasm' | 'reference' | 'webgpu' | 'auto';
  /** Worker threads of the wasm backend. Default: the machine's cores. */
  threads?: number;
  /** Tokens per sequence the model serves (default and most: the model's context length). */
  contextLength?: number;
  /** Expert activations: `q8` (int8, the wasm default), `split` (exact f32, slower) or `f16` (the webgpu default where the adapter has shader-f16). */
  expertActivations?: 'q8' | 'split' | 'f16';
  /** A LoRA adapter folder (PEFT, e.g. from `gptoss finetune`) merged into the weights at load (attention in BF16, adapted experts in float). */
  adapter?: string;
  /** KV cache element type: `bf16` (half the memory, the default with `q8`) or `f32` (exact, the default with `split`). */
  kvCacheType?: 'f32' | 'bf16';
  /** `int8`: read an int8 copy of the unembedding made at load (+0.65 GB for gpt-oss; faster decode, logits within the bf16 tolerance). Default `bf16`. */
  unembedding?: 'bf16' | 'int8';
  /** The wasm backend keeps the event loop free during large ops (prefill chunks, the unembedding): for apps that serve I/O while the model computes (`startServer`). Default false. */
  offload?: boolean;
}

/** A loaded model. Close it when done: it holds worker threads and the weights' memory. */
export interface Model {
  /** The checkpoint's name (its folder, or the repository id). */
  readonly name: string;
  /** Where it was loaded from, in words. */
  readonly description: string;
  /** Longest conversation (prompt plus output) in tokens. */
  readonly contextLength: number;
  /** True for synthetic checkpoints (such as the demo model): the output is gibberish. */
  readonly randomWeights: boolean;
  /**
   * The tools a chat gets when its options name none: for the embedded gpt-oss-nano the browser
   * over its documents and python (what it was trained with); for other models none. Pass
   * `tools: []` for a chat without them.
   */
  readonly defaultTools: readonly ToolDefinition[];
  /**
   * Runs one chat turn and streams its events: reasoning and text deltas, tool calls and results,
   * usage, and a final `done`. `messages` may be a string (one user message). The turn starts
   * when the iteration does; stopping the iteration early aborts it. Turns on one model may run at once; they take turns on the
   * model's compute.
   */
  chat(messages: readonly ChatMessage[] | string, options?: ChatOptions): AsyncIterable<ChatEvent>;
  /** Runs one chat turn to its end and returns the answer, reasoning, tool calls and usage. */
  complete(messages: readonly ChatMessage[] | string, options?: ChatOptions): Promise<ChatResult>;
  /** Frees the model (worker threads, memory). Running turns fail; the model cannot be used again. Closing twice is harmless. */
  close(): Promise<void>;
  /**
   * The same as close(), for `await using model = await loadModel()` (TypeScript 5.2+, with
   * `esnext.disposable` in `lib` or Node's types): the model is closed when the scope ends, also on a throw.
   */
  [Symbol.asyncDispose](): Promise<void>;
}

const engines = new WeakMap<Model, Engine>();

/** The engine behind a Model made by this library (for the server); a UserError for anything else. */
export function engineOf(model: Model): Engine {
  const engine = engines.get(model);
  if (engine === undefined) throw new UserError('usage', 'model must be a Model returned by loadModel()');
  return engine;
}

/** A Model over an engine that is already running (the library's own tests inject scripted engines). */
export function modelFromEngine(engine: Engine, description: string = engine.info.name, defaultTools: readonly ToolDefinition[] = []): Model {
  let closed = false;
  const withTools = (options: ChatOptions = {}): ChatOptions => (options.tools === undefined && defaultTools.length > 0 ? { ...options, tools: defaultTools } : options);
  const model: Model = {
    name: engine.info.name,
    description,
    contextLength: engine.info.contextLength,
    randomWeights: engine.info.randomWeights,
    defaultTools,
    chat: (messages, options) => chatEvents(engine, messages, withTools(options)),
    complete: (messages, options) => collectChat(chatEvents(engine, messages, withTools(options))),
    close: async () => {
      if (closed) return;
      closed = true;
      await engine.close();
    },
    [Symbol.asyncDispose]: () => model.close(),
  };
  engines.set(model, engine);
  return model;
}

/**
 * Loads a model: `loadModel()` runs the default (see LoadModelOptions.model), `loadModel({ model:
 * 'openai/gpt-oss-20b' })` a cached download, `loadModel({ model: './my-checkpoint' })` a folder.
 * Never downloads anything. Fails with a GptossError (code `usage`, `checkpoint` or `memory`).
 */
export async function loadModel(options: LoadModelOptions = {}): Promise<Model> {
  return translateErrors(async () => {
    const threads = options.threads;
    if (threads !== undefined && (!Number.isInteger(threads) || threads < 1 || threads > 256)) {
      throw new UserError('usage', `threads must be an integer from 1 to 256, got ${String(threads)}`);
    }
    const resolved = await resolveModel(options.model);
    const { loadEngine } = await import('../engine/local.ts');
    const engine = await loadEngine(resolved.dir, {
      ...(options.backend !== undefined ? { backend: options.backend } : {}),
      ...(options.threads !== undefined ? { threads: options.threads } : {}),
      ...(options.contextLength !== undefined ? { contextLength: options.contextLength } : {}),
      ...(options.expertActivations !== undefined ? { expertActivations: options.expertActivations } : {}),
      ...(options.adapter !== undefined ? { adapter: options.adapter } : {}),
      ...(options.kvCacheType !== undefined ? { kvCacheType: options.kvCacheType } : {}),
      ...(options.unembedding !== undefined ? { unembedding: options.unembedding } : {}),
      ...(options.offload !== undefined ? { offload: options.offload } : {}),
    });
    return modelFromEngine(engine, resolved.description, await trainedToolDefinitions(resolved.dir));
  });
}

/**
 * The tools the embedded gpt-oss-nano was trained with (the browser over the documents it ships
 * with, and python), so its system message is the one its corpus renders; none for other models.
 */
export async function trainedToolDefinitions(dir: string): Promise<ToolDefinition[]> {
  const { isEmbeddedNano, nanoDocsDir } = await import('../checkpoint/nano.ts');
  return isEmbeddedNano(dir) ? [{ type: 'browser', documents: nanoDocsDir() }, { type: 'python' }] : [];
}
