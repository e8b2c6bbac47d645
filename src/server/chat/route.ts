// The Chat Completions route: POST /v1/chat/completions, one turn, streamed as chunks or answered
// with the completion object collected from the same events.
import type { Hono } from 'hono';
import { newId, nowSeconds } from '../common.ts';
import type { RouteKit, TurnReply } from '../route-kit.ts';
import type { JsonRecord } from '../validate.ts';
import { ChatBuilder, chatUsage, finishReasonOf } from './events.ts';
import { parseChatRequest } from './request.ts';

export function mountChat(app: Hono, kit: RouteKit): void {
  const { ctx } = kit;

  app.post('/v1/chat/completions', async (c) => {
    const body = await kit.readBody(c);
    const request = parseChatRequest(ctx, body, kit.room());
    const id = newId('chatcmpl').replace('_', '-');
    const created = nowSeconds();
    const chunk = (delta: JsonRecord, finish: string | null = null, extra: JsonRecord = {}): JsonRecord => ({
      id,
      object: 'chat.completion.chunk',
      created,
      model: ctx.modelName,
      system_fingerprint: 'gptoss',
      choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }],
      ...extra,
    });
    return kit.serveTurn(c, {
      turn: request.turn,
      stream: request.stream,
      logPrompt: () => JSON.stringify(body['messages']),
      promptParam: 'messages',
      formatParam: 'response_format',
      reply: (send): TurnReply => {
        const builder = new ChatBuilder(
          request.logprobs,
          send === undefined
            ? undefined
            : (delta, logprobs) => {
                const entry = chunk(delta);
                if (logprobs !== undefined) (entry['choices'] as JsonRecord[])[0]!['logprobs'] = { content: logprobs, refusal: null };
                send(undefined, entry);
              },
          request.citations,
        );
        send?.(undefined, chunk({ role: 'assistant', content: '' }));
        return {
          onEvent: (e) => builder.onEvent(e),
          logOutput: () => builder.content,
          finish: (result) => {
            const finish = finishReasonOf(result, builder);
            if (send !== undefined) {
              send(undefined, chunk({}, finish, request.includeUsage ? { usage: null } : {}));
              if (request.includeUsage) send(undefined, { ...chunk({}), choices: [], usage: chatUsage(result) });
              send(undefined, '[DONE]');
            }
            const message: JsonRecord = {
              role: 'assistant',
              content: builder.toolCalls.length > 0 && builder.content === '' ? null : builder.content,
              // (a preamble written before a tool call is content too, as harmony means it for the user)
              reasoning: builder.reasoning,
              reasoning_content: builder.reasoning,
              refusal: null,
              annotations: builder.annotations,
            };
            if (builder.toolCalls.length > 0) message['tool_calls'] = builder.toolCalls as unknown as JsonRecord[];
            return {
              id,
              object: 'chat.completion',
              created,
              model: ctx.modelName,
              system_fingerprint: 'gptoss',
              choices: [{ index: 0, message, finish_reason: finish, logprobs: request.logprobs ? { content: builder.tokenLogprobs, refusal: null } : null }],
              usage: chatUsage(result),
            };
          },
        };
      },
    });
  });
}
