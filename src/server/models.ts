// GET /v1/models and /v1/models/{id}: the served model (aliases are accepted in requests but not
// listed: the list names what is actually served).
import type { Hono } from 'hono';
import type { ServerContext } from './common.ts';
import { ApiError } from './errors.ts';
import type { JsonRecord } from './validate.ts';

export function mountModels(app: Hono, ctx: ServerContext): void {
  const models = (): JsonRecord[] => [{ id: ctx.modelName, object: 'model', created: 0, owned_by: 'gptoss' }];
  app.get('/v1/models', (c) => c.json({ object: 'list', data: models() }));
  app.get('/v1/models/:id{.+}', (c) => {
    const id = c.req.param('id');
    if (!ctx.modelIds.has(id)) throw new ApiError(404, `The model '${id}' does not exist`, { param: 'model', code: 'model_not_found' });
    return c.json({ id, object: 'model', created: 0, owned_by: 'gptoss' });
  });
}
