// Reading a request body: only `application/json` (a browser can send text/plain across origins
// without asking first), never more than the byte limit even when the client streams it chunked
// with no Content-Length (the limit is counted while reading, and reading stops at once), and no
// JSON nested deeper than the server's own recursive code can walk. A client that goes away
// mid-upload is a disconnect, not a server fault.
import { ApiError, ClientGoneError } from './errors.ts';

/**
 * Deepest JSON nesting accepted anywhere in a body: room for a tool schema nested 100 deep inside
 * its request, far beyond what any real request needs.
 */
export const MAX_JSON_NESTING = 256;

/** The media type of a Content-Type header value, lower case, without parameters. */
function mediaType(header: string | undefined): string {
  return (header ?? '').split(';')[0]!.trim().toLowerCase();
}

/** A 415 unless the request says its body is JSON. */
export function requireJson(contentType: string | undefined): void {
  const type = mediaType(contentType);
  if (type !== 'application/json') {
    const got = type === '' ? 'no Content-Type' : `Content-Type '${type.slice(0, 100)}'`;
    throw new ApiError(415, `Request bodies must be JSON sent with Content-Type: application/json (got ${got}).`, { code: 'unsupported_media_type' });
  }
}

function tooLarge(maxBytes: number): ApiError {
  return new ApiError(413, `Request body exceeds the limit of ${maxBytes} bytes.`, { code: 'request_too_large' });
}

/** The body's bytes, refusing (413) as soon as more than `maxBytes` have arrived. */
export async function readLimited(request: Request, maxBytes: number): Promise<Buffer> {
  const declared = request.headers.get('content-length');
  if (declared !== null && Number(declared) > maxBytes) throw tooLarge(maxBytes);
  if (request.body === null) return Buffer.alloc(0);
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    let next: Awaited<ReturnType<typeof reader.read>>;
    try {
      next = await reader.read();
    } catch {
      // The body stream only fails when the connection does: the client aborted or reset it.
      throw new ClientGoneError();
    }
    if (next.done) break;
    total += next.value.byteLength;
    if (total > maxBytes) {
      // Stop pulling from the socket: after the 413 (sent with Connection: close, see app.ts) the
      // HTTP layer discards a bounded amount of what is still in flight, then closes the connection.
      reader.cancel().catch(() => {});
      throw tooLarge(maxBytes);
    }
    chunks.push(next.value);
  }
  return Buffer.concat(chunks, total);
}

/**
 * How deeply the JSON text nests arrays and objects, scanning bytes (strings skipped); stops as soon
 * as `limit` is passed. JSON.parse itself copes with any depth, but stringifying the value again or
 * walking it recursively would overflow the stack.
 */
export function jsonNesting(bytes: Uint8Array, limit: number): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (inString) {
      if (b === 0x5c) i++; // the escaped byte cannot end the string
      else if (b === 0x22) inString = false;
    } else if (b === 0x22) inString = true;
    else if (b === 0x7b || b === 0x5b) {
      if (++depth > deepest && (deepest = depth) > limit) return deepest;
    } else if (b === 0x7d || b === 0x5d) depth--;
  }
  return deepest;
}

/** The parsed JSON body of a request (415, 413 or 400 when it is not acceptable). */
export async function readJsonBody(request: Request, maxBytes: number): Promise<unknown> {
  requireJson(request.headers.get('content-type') ?? undefined);
  const bytes = await readLimited(request, maxBytes);
  if (jsonNesting(bytes, MAX_JSON_NESTING) > MAX_JSON_NESTING) {
    throw new ApiError(400, `The JSON body of your request nests arrays and objects more than ${MAX_JSON_NESTING} levels deep.`, { code: 'invalid_json' });
  }
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw new ApiError(400, `We could not parse the JSON body of your request: ${(e as Error).message}`, { code: 'invalid_json' });
  }
}
