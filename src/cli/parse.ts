// `gptoss parse`: a completion (token ids, or text with the special tokens written by name) on
// stdin -> harmony messages as JSON; `--stream` shows what the streaming parser sees per token.
import { boolFlag, parseFlags, parseIdList, readStdin, stringFlag } from './args.ts';
import { quoted, UserError } from '../errors.ts';
import { getTokenizer, SPECIAL } from '../tokenizer/index.ts';
import { isRole, messageToJSON, StreamParser, type Role } from '../harmony/index.ts';

const HELP = `usage: gptoss parse [options] < completion

Reads a gpt-oss completion on stdin and prints its harmony messages as JSON
({"messages": [...]} in the harmony library's to_dict shape).

The input is either token ids (separated by spaces, commas or newlines; a JSON array works too)
or text with the special tokens written by name ("<|channel|>final<|message|>Hi<|return|>").

  --role ROLE|none   the role of a completion that starts inside a header (after the prompt's
                     "<|start|>assistant"). Default: none if the input starts with <|start|>,
                     else assistant
  --lenient          recover from malformed output instead of failing; what was repaired or
                     dropped is listed under "dropped"
  --stream           print one JSON line per token: state, role, channel, recipient, content
                     type, the text delta, and each message as it completes
  --ids | --text     force the input kind (default: ids if it is only numbers)`;

export async function run(argv: string[]): Promise<number> {
  const p = parseFlags(argv, {
    role: { type: 'string' },
    lenient: { type: 'boolean' },
    stream: { type: 'boolean' },
    ids: { type: 'boolean' },
    text: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  }, false);
  if (boolFlag(p, 'help')) {
    console.log(HELP);
    return 0;
  }
  if (boolFlag(p, 'ids') && boolFlag(p, 'text')) throw new UserError('usage', '--ids and --text exclude each other');
  const roleFlag = stringFlag(p, 'role');
  if (roleFlag !== undefined && roleFlag !== 'none' && !isRole(roleFlag)) {
    throw new UserError('usage', `--role must be one of system, developer, user, assistant, tool or none, got ${quoted(roleFlag)}`);
  }
  const input = await readStdin();
  const asIds = boolFlag(p, 'ids') || (!boolFlag(p, 'text') && /^[\s,[\]\d-]*\d[\s,[\]\d-]*$/.test(input));
  const tokens = asIds ? parseIdList(input, 'stdin') : getTokenizer().encode(input.replace(/\r?\n$/, ''), { allowedSpecial: 'all' });
  if (tokens.length === 0) throw new UserError('input', 'stdin: no completion to parse (the input is empty)');
  const role: Role | undefined =
    roleFlag === 'none' ? undefined : roleFlag !== undefined ? (roleFlag as Role) : tokens[0] === SPECIAL.start ? undefined : 'assistant';

  const parser = new StreamParser({ role, strict: !boolFlag(p, 'lenient') });
  const stream = boolFlag(p, 'stream');
  const out = (v: unknown): void => {
    process.stdout.write(`${JSON.stringify(v)}\n`);
  };
  const emit = (e: ReturnType<StreamParser['process']>): void => {
    if (!stream) return;
    const line: Record<string, unknown> = { position: e.position, token: e.token ?? 'eos', state: e.state };
    if (parser.currentRole !== undefined) line['role'] = parser.currentRole;
    if (parser.currentAuthorName !== undefined) line['name'] = parser.currentAuthorName;
    if (parser.currentChannel !== undefined) line['channel'] = parser.currentChannel;
    if (parser.currentRecipient !== undefined) line['recipient'] = parser.currentRecipient;
    if (parser.currentContentType !== undefined) line['content_type'] = parser.currentContentType;
    if (e.delta !== undefined) line['delta'] = e.delta;
    if (e.completed !== undefined) line['message'] = messageToJSON(e.completed);
    out(line);
  };
  for (const t of tokens) emit(parser.process(t));
  emit(parser.processEos());

  const result: Record<string, unknown> = { messages: parser.messages.map(messageToJSON) };
  if (boolFlag(p, 'lenient')) result['dropped'] = parser.dropped;
  if (stream) out(result);
  else process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  return 0;
}
