// `gptoss render`: conversation JSON (the official harmony to_dict shape) -> the harmony prompt,
// as text with special tokens written by name, or as token ids.
import { boolFlag, parseEffort, parseFlags, readStdin, stringFlag } from './args.ts';
import { UserError } from '../errors.ts';
import { readRegularFile } from '../files.ts';
import {
  conversationFromJSONText,
  isRole,
  renderConversation,
  renderConversationForCompletion,
  renderConversationForTraining,
  tokensToText,
  type Conversation,
  type DropAnalysis,
  type ReasoningEffort,
  type Role,
} from '../harmony/index.ts';

const HELP = `usage: gptoss render FILE.json [options]     (FILE "-" reads stdin)

Renders a conversation ({"messages": [...]} as written by the harmony library's to_dict) into the
harmony prompt gpt-oss reads, printed as text with the special tokens written by name.

  --tokens                    print the token ids (space-separated) instead of the text
  --for completion|training|history
                              completion (default): the prompt for sampling, ending "<|start|>ROLE"
                              training: a last assistant "final" message ends with <|return|>
                              history: the messages alone
  --next-role ROLE            the role that speaks next (completion only; default assistant)
  --drop-analysis MODE        completed-turns (default): drop the analysis of answered turns
                              library: the official library's auto_drop_analysis
                              none: keep every analysis message
  --reasoning-effort LEVEL    set low|medium|high in the system message`;

const MODES: readonly DropAnalysis[] = ['completed-turns', 'library', 'none'];

export async function run(argv: string[]): Promise<number> {
  const p = parseFlags(argv, {
    tokens: { type: 'boolean' },
    for: { type: 'string' },
    'next-role': { type: 'string' },
    'drop-analysis': { type: 'string' },
    'reasoning-effort': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (boolFlag(p, 'help')) {
    console.log(HELP);
    return 0;
  }
  if (p.positionals.length !== 1) throw new UserError('usage', `expected one conversation file (or "-" for stdin), got ${p.positionals.length}; see --help`);
  const file = p.positionals[0]!;
  const purpose = stringFlag(p, 'for') ?? 'completion';
  if (!['completion', 'training', 'history'].includes(purpose)) throw new UserError('usage', `--for must be completion, training or history, got "${purpose}"`);
  const nextRole = stringFlag(p, 'next-role') ?? 'assistant';
  if (!isRole(nextRole)) throw new UserError('usage', `--next-role must be one of system, developer, user, assistant, tool, got "${nextRole}"`);
  const drop = stringFlag(p, 'drop-analysis') ?? 'completed-turns';
  if (!(MODES as readonly string[]).includes(drop)) throw new UserError('usage', `--drop-analysis must be ${MODES.join(', ')}, got "${drop}"`);
  const effortFlag = stringFlag(p, 'reasoning-effort');
  const effort = effortFlag === undefined ? undefined : parseEffort(effortFlag, '--reasoning-effort');

  // A regular file only: a FIFO would be waited on forever, a folder is no conversation.
  const text = file === '-' ? await readStdin() : readRegularFile(file, 'input');
  const source = file === '-' ? 'stdin' : file;
  let convo = conversationFromJSONText(text, source);
  if (effort !== undefined) convo = setEffort(convo, effort, source);

  const options = { dropAnalysis: drop as DropAnalysis };
  let ids: number[];
  try {
    ids =
      purpose === 'training'
        ? renderConversationForTraining(convo, options)
        : purpose === 'history'
          ? renderConversation(convo, options)
          : renderConversationForCompletion(convo, nextRole as Role, options);
  } catch (e) {
    if (e instanceof UserError) throw new UserError(e.kind, `${source}: ${e.message}`);
    throw e;
  }
  process.stdout.write(boolFlag(p, 'tokens') ? `${ids.join(' ')}\n` : `${tokensToText(ids)}\n`);
  return 0;
}

function setEffort(convo: Conversation, effort: ReasoningEffort, source: string): Conversation {
  let found = false;
  const messages = convo.messages.map((m) => ({
    ...m,
    content: m.content.map((c) => {
      if (c.type !== 'system_content') return c;
      found = true;
      return { ...c, reasoningEffort: effort };
    }),
  }));
  if (!found) throw new UserError('input', `${source}: --reasoning-effort needs a system message with system_content to set it in`);
  return { messages };
}
