// `gptoss logits`: runs token ids through the model and prints the logits as JSON, the last
// position's ({"logits": [...]}) or every position's ({"logits": [[...], ...]}). External checks
// compare these against other implementations, so the shape is fixed.
import { loadEngine } from '../engine/local.ts';
import { boolFlag, parseFlags, stringFlag } from './args.ts';
import { UserError } from '../errors.ts';
import { MODEL_FLAG_HELP, MODEL_FLAG_OPTIONS, engineOptions, modelDir, parseTokenList } from './model-flags.ts';

const HELP = `usage: gptoss logits --model DIR --tokens 1,2,3 [--all-positions] [--json]

Prints the model's logits (float32, one per vocabulary id) after the given token ids as JSON:
{"logits": [...]} for the last position, {"logits": [[...], ...]} with --all-positions.

  --tokens IDS       comma-separated token ids
  --all-positions    logits at every position, not only the last
  --json             JSON output (the default and only format; accepted for scripts)
${MODEL_FLAG_HELP}`;

export async function run(argv: string[]): Promise<number> {
  const p = parseFlags(argv, {
    ...MODEL_FLAG_OPTIONS,
    tokens: { type: 'string' },
    'all-positions': { type: 'boolean' },
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  }, false);
  if (boolFlag(p, 'help')) {
    console.log(HELP);
    return 0;
  }
  const dir = modelDir(p);
  const raw = stringFlag(p, 'tokens');
  if (raw === undefined) throw new UserError('usage', '--tokens IDS is required (e.g. --tokens 1,2,3)');
  const tokens = parseTokenList(raw, 'tokens');
  const engine = await loadEngine(dir, engineOptions(p));
  try {
    const V = engine.info.vocabSize;
    const bad = tokens.findIndex((id) => id >= V);
    if (bad >= 0) throw new UserError('input', `token id ${tokens[bad]} at index ${bad} is outside the vocabulary of ${dir} (0..${V - 1})`);
    if (tokens.length > engine.info.contextLength) {
      throw new UserError('context', `${tokens.length} tokens do not fit the context window of ${engine.info.contextLength} tokens (see --context)`);
    }
    const seq = engine.createSequence();
    if (boolFlag(p, 'all-positions')) {
      const all = await engine.stepAll(seq, tokens);
      // Row by row: one string of every row would exceed V8's string limit for long prompts.
      process.stdout.write('{"logits":[');
      for (let t = 0; t < tokens.length; t++) {
        process.stdout.write((t > 0 ? ',' : '') + JSON.stringify(Array.from(all.subarray(t * V, (t + 1) * V))));
      }
      process.stdout.write(']}\n');
    } else {
      const [logits] = await engine.step([{ sequence: seq, tokens }]);
      process.stdout.write(`{"logits":${JSON.stringify(Array.from(logits!))}}\n`);
    }
  } finally {
    await engine.close();
  }
  return 0;
}
