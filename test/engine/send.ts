// For tests of the agent loop itself: a user message appended to a session's conversation and the
// loop run to the answer (the step every client takes through the turn API, here without it).
import type { AgentResult, AgentSession, RunOptions } from '../../src/engine/agent.ts';
import { createMessage } from '../../src/harmony/index.ts';

export function send(session: AgentSession, text: string, options: RunOptions = {}): Promise<AgentResult> {
  session.conversation.messages.push(createMessage('user', text));
  return session.run(options);
}
