// `gptoss tokenize`: text on stdin (or --text) -> o200k_harmony token ids on one line.
import { boolFlag, parseFlags, readStdinBytes, stringFlag } from './args.ts';
import { UserError } from '../errors.ts';
import { findUtf8Problem, getTokenizer } from '../tokenizer/index.ts';

const HELP = `usage: gptoss tokenize [--json] [--allow-special] [--count] [--text TEXT] < input.txt

Encodes UTF-8 text with the o200k_harmony tokenizer (gpt-oss) and prints the token ids on one
line, separated by spaces. The input is encoded exactly as given, including a final newline.

  --text TEXT       encode TEXT instead of reading stdin
  --json            print a JSON array of ids
  --allow-special   recognise special tokens written as text ("<|start|>" -> 200006); by default
                    they are ordinary text, as user content must be
  --count           print only the number of tokens`;

export async function run(argv: string[]): Promise<number> {
  const p = parseFlags(argv, {
    text: { type: 'string' },
    json: { type: 'boolean' },
    'allow-special': { type: 'boolean' },
    count: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  }, false);
  if (boolFlag(p, 'help')) {
    console.log(HELP);
    return 0;
  }
  let text = stringFlag(p, 'text');
  if (text === undefined) {
    const bytes = await readStdinBytes();
    const problem = findUtf8Problem(bytes);
    if (problem !== null) throw new UserError('input', `stdin is not valid UTF-8 at byte ${problem.offset}`);
    text = bytes.toString('utf8');
  }
  const tokenizer = getTokenizer();
  const ids = boolFlag(p, 'allow-special') ? tokenizer.encode(text, { allowedSpecial: 'all' }) : tokenizer.encodeOrdinary(text);
  if (boolFlag(p, 'count')) process.stdout.write(`${ids.length}\n`);
  else if (boolFlag(p, 'json')) process.stdout.write(`${JSON.stringify(ids)}\n`);
  else process.stdout.write(`${ids.join(' ')}\n`);
  return 0;
}
