// Server-sent events over fetch: EventSource cannot POST or send an Authorization header, so the
// page reads the response body as a stream and splits it into events itself.

/** An HTTP error answered by the server, with OpenAI's error body when there is one. */
export class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/**
 * POSTs `body` to `url` and calls `onEvent(data)` with each event's parsed JSON data, in order.
 * Resolves when the stream ends; rejects with HttpError for a non-2xx answer, or the abort error
 * when `signal` aborts.
 */
export async function postStream(url, body, { apiKey, signal, onEvent }) {
  const headers = { 'content-type': 'application/json', accept: 'text/event-stream' };
  if (apiKey) headers.authorization = `Bearer ${apiKey}`;
  const response = await fetch(url, { method: 'POST', headers, body: JSON.stringify(body), signal });
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      const json = await response.json();
      if (json && json.error && typeof json.error.message === 'string') message = json.error.message;
    } catch {
      // not JSON: keep the status line
    }
    throw new HttpError(response.status, message);
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value.replace(/\r\n?/g, '\n');
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block
        .split('\n')
        .filter((l) => l.startsWith('data:'))
        .map((l) => l.slice(l.startsWith('data: ') ? 6 : 5))
        .join('\n');
      if (data === '' || data === '[DONE]') continue;
      onEvent(JSON.parse(data));
    }
  }
}
