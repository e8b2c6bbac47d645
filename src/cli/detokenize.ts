// `gptoss detokenize`: token ids (arguments or stdin, separated by spaces or commas) -> text.
import { boolFlag, parseFlags, parseIdList, readStdin } from './args.ts';
import { findUtf8Problem, getTokenizer } from '../tokenizer/index.ts';

const HELP = `usage: gptoss detokenize [--json] [ID ...]   (or ids on stdin)

Decodes o200k_harmony token ids to text and writes it to stdout exactly (no newline added).
Ids may be separated by spaces, commas or newlines; a JSON array also works. Special tokens are
written as their text ("<|start|>"). Ids out of range, or ids whose bytes end inside a multi-byte
UTF-8 character or are not valid UTF-8, are errors (exit status 2).

  --json   print {"text": ..., "tokens": [{"id", "text" | "bytes" (hex), "special"?}]}`;

export async function run(argv: string[]): Promise<number> {
  const p = parseFlags(argv, { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } });
  if (boolFlag(p, 'help')) {
    console.log(HELP);
    return 0;
  }
  const ids = p.positionals.length > 0 ? parseIdList(p.positionals.join(' '), 'arguments') : parseIdList(await readStdin(), 'stdin');
  const tokenizer = getTokenizer();
  const text = tokenizer.decode(ids);
  if (!boolFlag(p, 'json')) {
    process.stdout.write(text);
    return 0;
  }
  const tokens = ids.map((id) => {
    const bytes = tokenizer.tokenBytes(id);
    const special = tokenizer.isSpecial(id) ? { special: true } : {};
    return findUtf8Problem(bytes) === null
      ? { id, text: Buffer.from(bytes).toString('utf8'), ...special }
      : { id, bytes: Buffer.from(bytes).toString('hex') };
  });
  process.stdout.write(`${JSON.stringify({ text, tokens })}\n`);
  return 0;
}
