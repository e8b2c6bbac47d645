// The chat page at `/`: the static files under web/ (shipped in the package, no build step), served
// with their content types and a Content-Security-Policy that lets the page load only its own
// files and talk only to this server, plus /config.json telling the page the model, the built-in
// tools and the default effort. The page uses the public /v1/responses API like any client.
import { readFileSync } from 'node:fs';
import type { Env, Hono } from 'hono';
import type { ServerContext } from './common.ts';

/** Everything the page may load: its own files and its own API, nothing inline, nothing elsewhere. */
export const PAGE_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const FILES: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/index.html': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/markdown.js': { file: 'markdown.js', type: 'text/javascript; charset=utf-8' },
  '/stream.js': { file: 'stream.js', type: 'text/javascript; charset=utf-8' },
  '/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' },
  '/favicon.svg': { file: 'favicon.svg', type: 'image/svg+xml' },
};

const WEB_DIR = new URL('./web/', import.meta.url);

const pageHeaders = (type: string): Record<string, string> => ({
  'content-type': type,
  'content-security-policy': PAGE_CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  // The files change with the package version; revalidating keeps an upgraded server's page current.
  'cache-control': 'no-cache',
});

/** Adds the chat page's routes to `app`. The files are read once, on first request. */
export function mountWebPage<E extends Env>(app: Hono<E>, ctx: ServerContext): void {
  const cache = new Map<string, Buffer>();
  for (const [path, { file, type }] of Object.entries(FILES)) {
    app.get(path, (c) => {
      let body = cache.get(file);
      if (body === undefined) {
        body = readFileSync(new URL(file, WEB_DIR));
        cache.set(file, body);
      }
      return c.body(new Uint8Array(body), 200, pageHeaders(type));
    });
  }
  app.get('/config.json', (c) =>
    c.json(
      { model: ctx.modelName, tools: Object.keys(ctx.tools).filter((k) => ctx.tools[k as keyof typeof ctx.tools] !== undefined), default_effort: ctx.defaultEffort },
      200,
      { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' },
    ),
  );
}
