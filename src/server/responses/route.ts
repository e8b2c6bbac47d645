// The Responses API's routes: POST /v1/responses (one turn, streamed or not, stored when asked),
// GET and DELETE /v1/responses/{id} on the store.
import type { Hono } from 'hono';
import { newId, nowSeconds } from '../common.ts';
import { ApiError } from '../errors.ts';
import type { RouteKit, TurnReply } from '../route-kit.ts';
import type { JsonRecord } from '../validate.ts';
import { ResponseBuilder, recordCallIds, responseObject, statusOf } from './events.ts';
import { parseResponsesRequest } from './request.ts';

export function mountResponses(app: Hono, kit: RouteKit): void {
  const { ctx } = kit;

  app.post('/v1/responses', async (c) => {
    const body = await kit.readBody(c);
    const request = parseResponsesRequest(ctx, body, kit.room());
    const id = newId('resp');
    const createdAt = nowSeconds();
    const base = { id, createdAt, model: ctx.modelName, echo: request.echo };
    return kit.serveTurn(c, {
      turn: request.turn,
      stream: request.stream,
      logPrompt: () => JSON.stringify(body['input']),
      promptParam: 'input',
      formatParam: 'text.format',
      reply: (send): TurnReply => {
        const builder = new ResponseBuilder(send === undefined ? undefined : (e) => send(e.type, e as unknown as JsonRecord), request.citations, request.summarize);
        builder.send('response.created', { response: responseObject({ ...base, status: 'in_progress', output: [] }) });
        builder.send('response.in_progress', { response: responseObject({ ...base, status: 'in_progress', output: [] }) });
        return {
          onEvent: (e) => builder.onEvent(e),
          logOutput: (result) => result.finalText,
          finish: (result) => {
            const status = statusOf(result);
            const json = responseObject({ ...base, status, output: builder.output, result });
            if (request.store) {
              recordCallIds(result.messages, builder);
              ctx.store.put({ id, response: json, turns: [...request.turns, ...result.messages], items: [...request.inputItems, ...builder.output] });
            }
            builder.send(status === 'completed' ? 'response.completed' : 'response.incomplete', { response: json });
            return json;
          },
        };
      },
    });
  });

  app.get('/v1/responses/:id', (c) => {
    const stored = ctx.store.get(c.req.param('id'));
    if (stored === undefined) throw new ApiError(404, `Response with id '${c.req.param('id')}' not found.`, { param: 'response_id', code: 'response_not_found' });
    return c.json(stored.response as JsonRecord);
  });
  app.delete('/v1/responses/:id', (c) => {
    const id = c.req.param('id');
    if (!ctx.store.delete(id)) throw new ApiError(404, `Response with id '${id}' not found.`, { param: 'response_id', code: 'response_not_found' });
    return c.json({ id, object: 'response', deleted: true });
  });
}
