// Turns a --model / --grader argument into a Sampler: an http(s) URL is an OpenAI-compatible base
// URL (e.g. http://127.0.0.1:8000/v1, optionally `URL#model-name`); anything else is a local model
// (a folder or hub repo id), served in-process by our own server on a loopback port so the eval
// talks to it exactly as it would to a remote endpoint, under the same token cap and time limit.
// No spec at all is the default local model, as chat and serve pick it (checkpoint/resolve.ts).
import { HttpSampler, type HttpSamplerOptions } from './http-sampler.ts';
import type { Sampler } from './types.ts';

export type SamplerSettings = Pick<HttpSamplerOptions, 'apiKey' | 'timeoutMs' | 'maxTokens'>;

export async function openSampler(spec: string | undefined, settings: SamplerSettings = {}): Promise<Sampler> {
  if (spec !== undefined && /^https?:\/\//i.test(spec)) {
    const [baseUrl, model] = spec.split('#', 2) as [string, string | undefined];
    return new HttpSampler({ ...settings, baseUrl, ...(model !== undefined && model !== '' ? { model } : {}) });
  }
  return openLocalSampler(spec, settings);
}

async function openLocalSampler(model: string | undefined, settings: SamplerSettings): Promise<Sampler> {
  const { startLocalServer } = await import('./local.ts');
  const server = await startLocalServer(model !== undefined ? { model } : {});
  // The in-process server has no key; the user's key is for remote endpoints only.
  const { apiKey: _remoteKey, ...limits } = settings;
  const http = new HttpSampler({ ...limits, baseUrl: server.baseUrl });
  return {
    label: `${server.description} (in-process)`,
    complete: (messages, opts) => http.complete(messages, opts),
    close: () => server.close(),
  };
}
