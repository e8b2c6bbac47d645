// Training examples from harmony conversations: token ids and which of them carry loss. Each
// assistant turn (the messages after a user message, up to the next one) becomes one example:
// the conversation up to the end of that turn, rendered exactly as renderConversationForTraining
// renders it (earlier turns' analysis dropped, the turn's own analysis kept, a final answer ending
// in <|return|>), with loss on the tokens the model writes in that turn. A turn-per-example split
// is what makes every turn's supervision right: in history an earlier final answer ends with
// <|end|>, which the model never samples. Data files hold one conversation per line (JSONL),
// either in OpenAI chat format (harmony/chat-format.ts converts it) or in the JSON shape
// harmony/json.ts reads; errors name the line.
import { UserError } from '../errors.ts';
import {
  conversationFromChatJSON, conversationFromJSON, hasFunctionTools, isHarmonyConversationJSON, parseJsonText, keptMessageIndices, renderConversationForTraining, renderMessage,
  type Conversation, type Message,
} from '../harmony/index.ts';
import { getTokenizer, SPECIAL, type Tokenizer } from '../tokenizer/index.ts';

export interface TrainingExample {
  tokens: number[];
  /** trained[i]: whether token i is one the model writes (its prediction carries loss). */
  trained: boolean[];
  /** Where it came from, for messages: "FILE:LINE turn N". */
  source: string;
  /** Which conversation of its file it came from (0-based), so splits keep a conversation's turns together. */
  conversation?: number;
}

/**
 * The examples of one conversation, one per assistant turn. The tokens trained are those of the
 * turn's assistant messages, except the `<|start|>assistant` that opens the turn and the one after
 * each tool result: the prompt supplies those, the model writes the rest (a second assistant
 * message right after an assistant message, e.g. the final answer after the analysis, is written
 * by the model header and all).
 */
export function trainingExamples(convo: Conversation, source = 'conversation', tokenizer: Tokenizer = getTokenizer()): TrainingExample[] {
  const messages = convo.messages;
  // Turn 0 is whatever precedes the first user message; each user message opens the next turn.
  const turnStarts = [0];
  messages.forEach((m, i) => {
    if (m.author.role === 'user') turnStarts.push(i + 1);
  });
  const examples: TrainingExample[] = [];
  turnStarts.forEach((start, turn) => {
    const end = turn + 1 < turnStarts.length ? turnStarts[turn + 1]! - 1 : messages.length; // exclusive; the next user message is not part of the turn
    if (!messages.slice(start, end).some((m) => m.author.role === 'assistant')) return;
    examples.push(renderTurn(messages.slice(0, end), start, `${source} turn ${examples.length + 1}`, tokenizer));
  });
  if (examples.length === 0) throw new UserError('input', `${source}: the conversation has no assistant message to learn from`);
  return examples;
}

function renderTurn(messages: Message[], turnStart: number, source: string, tokenizer: Tokenizer): TrainingExample {
  const tokens: number[] = [];
  const trained: boolean[] = [];
  const fnTools = hasFunctionTools(messages);
  const kept = keptMessageIndices(messages, 'completed-turns', true);
  let previousRole: string | undefined;
  for (const i of kept) {
    const m = messages[i]!;
    const ids = renderMessage(m, { conversationHasFunctionTools: fnTools, tokenizer });
    const learns = i >= turnStart && m.author.role === 'assistant';
    // The header the prompt supplies: <|start|> and the role's tokens.
    const supplied = learns && previousRole !== 'assistant' ? 1 + tokenizer.encodeOrdinary(m.author.role).length : 0;
    ids.forEach((id, j) => {
      tokens.push(id);
      trained.push(learns && j >= supplied);
    });
    previousRole = m.author.role;
  }
  const last = messages[messages.length - 1]!;
  if (last.author.role === 'assistant' && last.channel === 'final') tokens[tokens.length - 1] = SPECIAL.return;
  const reference = renderConversationForTraining({ messages }, { tokenizer });
  if (reference.length !== tokens.length || reference.some((id, i) => id !== tokens[i])) {
    throw new Error(`${source}: the per-message rendering differs from renderConversationForTraining`);
  }
  return { tokens, trained, source };
}

/**
 * Reads JSONL text (one conversation per line; blank lines skipped) into training examples. Each
 * line is an OpenAI chat-format conversation or a harmony one (isHarmonyConversationJSON tells
 * which). A line that is not JSON, has an unknown role or no assistant message fails naming the line.
 */
export function readConversationsJsonl(text: string, source: string, tokenizer: Tokenizer = getTokenizer()): TrainingExample[] {
  const examples: TrainingExample[] = [];
  const lines = text.split('\n');
  let conversation = 0;
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    const where = `${source}:${i + 1}`;
    const json = parseJsonText(line, where);
    let convo: Conversation;
    try {
      convo = isHarmonyConversationJSON(json) ? conversationFromJSON(json) : conversationFromChatJSON(json);
    } catch (e) {
      if (e instanceof UserError) throw new UserError('input', `${where}: ${e.message}`);
      throw e;
    }
    for (const e of trainingExamples(convo, where, tokenizer)) examples.push({ ...e, conversation });
    conversation++;
  });
  if (examples.length === 0) throw new UserError('input', `${source}: no conversations`);
  return examples;
}
