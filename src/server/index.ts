// Public surface of the OpenAI-compatible server: createServer() (used by `gptoss serve` and by
// tests, which start it in-process on port 0) and the pieces other tools may reuse.
export { createServer, type GptossServer, type RunningServer, type ServerOptions } from './app.ts';
export { ApiError, type ApiErrorBody } from './errors.ts';
export type { BuiltinToolFactories } from './common.ts';
export { ResponseStore } from './store.ts';
