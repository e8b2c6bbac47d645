// What a library caller names as "the model" for batch work (evaluations, classification) turned
// into the evaluation harness's Sampler: a loaded Model, served in-process on loopback so that it
// answers exactly as `gptoss serve` would, or an OpenAI-compatible base URL (`URL#model` picks the
// model). Closing the sampler stops the in-process server; the Model stays open.
import { UserError } from '../errors.ts';
import { HttpSampler, openSampler, type Sampler } from '../evals/index.ts';
import type { Model } from './model.ts';
import { startServer } from './server.ts';

export interface TargetSettings {
  /** API key of URL endpoints (an in-process Model needs none). */
  apiKey?: string;
  /** Most tokens per answer. */
  maxTokens?: number;
}

/** A Sampler over `target`; `what` names the option in errors (`model`, `grader`). */
export async function openTarget(target: Model | string, settings: TargetSettings = {}, what = 'model'): Promise<Sampler> {
  const limits = settings.maxTokens !== undefined ? { maxTokens: settings.maxTokens } : {};
  if (typeof target === 'string') {
    if (!/^https?:\/\//i.test(target)) throw new UserError('usage', `${what} "${target}" is not an http(s) URL; pass a Model from loadModel() for a local model`);
    return openSampler(target, { ...limits, ...(settings.apiKey !== undefined ? { apiKey: settings.apiKey } : {}) });
  }
  const server = await startServer(target);
  const http = new HttpSampler({ ...limits, baseUrl: server.baseUrl });
  return { label: `${target.name} (in-process)`, complete: (messages, opts) => http.complete(messages, opts), close: () => server.close() };
}
