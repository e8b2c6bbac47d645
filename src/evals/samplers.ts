// Turns a --model / --grader argument into a Sampler: an http(s) URL is an OpenAI-compatible base
// URL (e.g. http://127.0.0.1:8000/v1, optionally `URL#model-name`); anything else is a local model
// (a folder or hub repo id), served in-process by our own server on a loopback port so the eval
// talks to it exactly as it would to a remote endpoint.
import { HttpSampler } from './http-sampler.ts';
import type { Sampler } from './types.ts';

export async function openSampler(spec: string, options: { apiKey?: string } = {}): Promise<Sampler> {
  if (/^https?:\/\//i.test(spec)) {
    const [baseUrl, model] = spec.split('#', 2) as [string, string | undefined];
    return new HttpSampler({ baseUrl, ...(model !== undefined && model !== '' ? { model } : {}), ...(options.apiKey !== undefined ? { apiKey: options.apiKey } : {}) });
  }
  return openLocalSampler(spec);
}

async function openLocalSampler(model: string): Promise<Sampler> {
  const { startLocalServer } = await import('./local.ts');
  const server = await startLocalServer({ model });
  const http = new HttpSampler({ baseUrl: server.baseUrl });
  return {
    label: `${model} (in-process)`,
    complete: (messages, opts) => http.complete(messages, opts),
    close: () => server.close(),
  };
}
