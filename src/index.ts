// The gptoss package entry: the public, typed library API (src/api/ wraps the engine, agent loop,
// server and evals for it). Everything else under src/ is private to the package: only this
// module is in package.json's `exports`.
//
//   import { loadModel } from 'gptoss';
//   const model = await loadModel();
//   for await (const e of model.chat('Hello')) if (e.type === 'text-delta') process.stdout.write(e.text);
//   await model.close();

export { loadModel, type LoadModelOptions, type Model } from './api/model.ts';
export type {
  ChatEvent,
  ChatFinishReason,
  ChatMessage,
  ChatOptions,
  ChatResult,
  ChatUsage,
  SamplingOptions,
  TextMessage,
  ToolCallMessage,
  ToolResultMessage,
} from './api/chat.ts';
export type { BrowserTool, FunctionTool, PythonTool, ToolContext, ToolDefinition } from './api/tools.ts';
export { decode, encode, parseCompletion, renderPrompt, type EncodeOptions, type FunctionDeclaration, type ParsedMessage, type RenderOptions } from './api/harmony.ts';
export { startServer, type RunningServer, type ServerOptions } from './api/server.ts';
export { runEval, type ClassificationMetrics, type EvalMetric, type EvalOptions, type EvalResult, type LabelMetrics } from './api/eval.ts';
export { classify, type Classification, type ClassificationFailure, type ClassifyInput, type ClassifyOptions, type ClassifyResult } from './api/classify.ts';
export { GptossError, type GptossErrorCode } from './api/errors.ts';
export type { JsonObject, JsonValue, ReasoningEffort } from './harmony/index.ts';
