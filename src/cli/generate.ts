// `gptoss generate`: continues a prompt with the local engine. The prompt is text (wrapped in a
// harmony conversation: system + user, then `<|start|>assistant`) or, with --raw, text or token
// ids fed as they are. Prints the continuation as it is produced, or {"tokens", "text"} with --json.
import { generate, ASSISTANT_ACTION_STOP_TOKENS } from '../engine/generate.ts';
import { loadEngine } from '../engine/local.ts';
import { UserError } from '../errors.ts';
import { conversation, message, renderConversationForCompletion } from '../harmony/index.ts';
import { Utf8StreamDecoder, getTokenizer, type Tokenizer } from '../tokenizer/index.ts';
import { boolFlag, numberFlag, parseFlags, stringFlag } from './args.ts';
import { MODEL_FLAG_HELP, MODEL_FLAG_OPTIONS, engineOptions, parseTokenList } from './model-flags.ts';

const HELP = `usage: gptoss generate [--model DIR|REPO] (--prompt TEXT | --tokens IDS) [options]

Continues a prompt. By default the prompt is a user message in a harmony conversation and
generation stops at <|return|> or <|call|>; with --raw the prompt is fed as is and generation
stops only at --max-tokens (or at a --stop id).

  --prompt TEXT      the prompt text
  --tokens IDS       the prompt as comma-separated token ids (implies --raw)
  --raw              do not wrap the prompt in harmony
  --max-tokens N     most tokens to generate (default 256)
  --temperature T    sampling temperature (0 = greedy; default the model's generation_config.json,
                     else 1.0)
  --top-p P          nucleus sampling (default the model's, else 1.0 = off)
  --seed S           random seed (same seed, same continuation)
  --stop IDS         also stop at these token ids
  --json             print {"tokens": [...], "text": "..."} instead of streaming text
${MODEL_FLAG_HELP}
Without --model the model is chosen as chat chooses it ($GPTOSS_MODEL, openai/gpt-oss-20b from the
hub cache, else the embedded gpt-oss-nano).`;

/** Text of token ids, special tokens as their names, invalid UTF-8 as U+FFFD. */
function textOf(tokenizer: Tokenizer, decoder: Utf8StreamDecoder, id: number): string {
  const name = tokenizer.tokenName(id);
  if (name !== undefined) return decoder.flush().text + name;
  return decoder.push(tokenizer.tokenBytes(id));
}

export async function run(argv: string[]): Promise<number> {
  const p = parseFlags(argv, {
    ...MODEL_FLAG_OPTIONS,
    prompt: { type: 'string' },
    tokens: { type: 'string' },
    raw: { type: 'boolean' },
    'max-tokens': { type: 'string' },
    temperature: { type: 'string' },
    'top-p': { type: 'string' },
    seed: { type: 'string' },
    stop: { type: 'string' },
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  }, false);
  if (boolFlag(p, 'help')) {
    console.log(HELP);
    return 0;
  }
  const { resolveModel } = await import('../checkpoint/resolve.ts');
  const dir = (await resolveModel(stringFlag(p, 'model'))).dir;
  const promptText = stringFlag(p, 'prompt');
  const tokenList = stringFlag(p, 'tokens');
  if ((promptText === undefined) === (tokenList === undefined)) throw new UserError('usage', 'give exactly one of --prompt TEXT or --tokens IDS');
  const raw = boolFlag(p, 'raw') || tokenList !== undefined;
  const maxTokens = numberFlag(p, 'max-tokens', { min: 1, integer: true }) ?? 256;
  // Unset flags leave the model's generation_config.json defaults (EngineInfo.sampling) in force.
  const temperature = numberFlag(p, 'temperature', { min: 0 });
  const topP = numberFlag(p, 'top-p');
  if (topP !== undefined && !(topP > 0 && topP <= 1)) throw new UserError('usage', `--top-p must be in (0, 1], got ${topP}`);
  const seed = numberFlag(p, 'seed', { integer: true });
  const stopRaw = stringFlag(p, 'stop');
  const extraStops = stopRaw === undefined ? [] : parseTokenList(stopRaw, 'stop');
  const stopTokens = raw ? extraStops : [...ASSISTANT_ACTION_STOP_TOKENS, ...extraStops];
  const json = boolFlag(p, 'json');

  const tokenizer = getTokenizer();
  let prompt: number[];
  if (tokenList !== undefined) prompt = parseTokenList(tokenList, 'tokens');
  else if (raw) prompt = tokenizer.encodeOrdinary(promptText!);
  else prompt = renderConversationForCompletion(conversation([message.system(), message.user(promptText!)]));
  if (prompt.length === 0) throw new UserError('usage', 'the prompt is empty');

  const engine = await loadEngine(dir, engineOptions(p));
  try {
    const V = engine.info.vocabSize;
    const bad = prompt.findIndex((id) => id >= V);
    if (bad >= 0) throw new UserError('input', `prompt token id ${prompt[bad]} at index ${bad} is outside the vocabulary of ${dir} (0..${V - 1})`);
    if (engine.info.randomWeights && !json) process.stderr.write(`gptoss: ${engine.info.name} has random weights (a synthetic checkpoint): expect gibberish\n`);
    const decoder = new Utf8StreamDecoder();
    let text = '';
    const seq = engine.createSequence();
    const result = await generate(engine, seq, prompt, {
      sampling: { ...(temperature !== undefined ? { temperature } : {}), ...(topP !== undefined ? { topP } : {}) },
      ...(seed === undefined ? {} : { seed }),
      maxTokens,
      stopTokens,
      onToken: ({ token }) => {
        const piece = textOf(tokenizer, decoder, token);
        text += piece;
        if (!json) process.stdout.write(piece);
      },
    });
    const tail = decoder.flush().text;
    text += tail;
    if (json) process.stdout.write(`${JSON.stringify({ model: engine.info.name, tokens: result.tokens, text })}\n`);
    else process.stdout.write(`${tail}\n`);
    // A full window is an outcome, not an error, but the user must not mistake it for the end.
    if (result.finishReason === 'context') {
      process.stderr.write(`gptoss generate: stopped after ${result.tokens.length} tokens: the context window of ${engine.info.contextLength} tokens is full (see --context)\n`);
    }
  } finally {
    await engine.close();
  }
  return 0;
}
